// SPDX-License-Identifier: GPL-3.0-or-later
#include "client/exchange.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <utility>

#include "bluez/names.h"
#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/names.h"

namespace bzs::client {

namespace {

using core::protocol::Bytes;
using core::protocol::ByteView;
using core::protocol::ResponseType;
using core::protocol::Status;

// Statuses of protocol v2's pairing that this build's Status enum may not have yet.
constexpr std::uint8_t kCodeUsed = 0x1D;
constexpr std::uint8_t kCodeExpired = 0x1E;

using namespace bluez::names;  // D-Bus names (bluez/names.h)

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& ch : out) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    return out;
}

std::string seconds_text(std::chrono::milliseconds d) {
    const auto ms = d.count();
    if (ms % 1000 == 0) {
        return std::to_string(ms / 1000) + " s";
    }
    return std::to_string(ms) + " ms";
}

// A hint for the refusals a user can do something about.
std::string refusal_hint(Status s) {
    switch (s) {
        case Status::StaleTimestamp:
        case Status::BadTotp:
            return "; check that this computer's clock is right (timedatectl)";
        case Status::Malformed:
            return "; this bluezscript and the Pi's bluezscriptd may not speak the same protocol";
        case Status::Replayed:
            return "; is this pairing also used on another computer? Each client needs its own "
                   "pairing";
        case Status::RateLimited:
            return "; too many failed attempts: try again later";
        case Status::UnknownAction:
            return "; see `bluezscript actions list` on the Pi";
        case Status::NotPermitted:
            return "; allow it on the Pi with `bluezscript pair allow DEVICE ACTION`";
        case Status::Internal:
            return "; the Pi could not save its state (see its log)";
        default:
            return "";
    }
}

}  // namespace

bool is_bonding_required(const GattError& e) {
    const std::string msg = lower(e.message);
    if (e.name == kErrNotPermitted && msg.find("paired") != std::string::npos) {
        return true;
    }
    for (const char* code : {"0x05", "0x0f", "0x0c"}) {
        if (msg.find(std::string("att error: ") + code) != std::string::npos) {
            return true;
        }
    }
    return false;
}

bool is_bond_refusal(const GattError& e) {
    return e.name == "org.bluez.Error.AuthenticationRejected" ||
           e.name == "org.bluez.Error.AuthenticationFailed";
}

std::optional<std::string> bond_failure(const GattError* err) {
    if (err == nullptr || err->name == "org.bluez.Error.AlreadyExists") {
        return std::nullopt;
    }
    if (is_bond_refusal(*err)) {
        return "bond refused by the Pi (is its pairing window open? run `bluezscript pair add` "
               "on the Pi)";
    }
    return "bonding with the Pi failed: " + err->to_string();
}

namespace {

// "3 h", "5 min", "45 s", "2 days": a clock difference for people.
std::string duration_text(std::int64_t seconds) {
    constexpr std::int64_t kHour = 3600;
    if (seconds < 120) {
        return std::to_string(seconds) + " s";
    }
    if (seconds < 2 * kHour) {
        return std::to_string((seconds + 30) / 60) + " min";
    }
    if (seconds < 48 * kHour) {
        return std::to_string((seconds + 1800) / 3600) + " h";
    }
    return std::to_string((seconds + 43200) / 86400) + " days";
}

// Why a plain refusal came, in words, with what to do.
std::string refusal_text(std::uint8_t status) {
    switch (status) {
        case kCodeUsed:
            return "this code was already used — ask the owner for a new one (`bluezscript pair "
                   "code NAME`)";
        case kCodeExpired:
            return "this code has expired — ask the owner for a new one (`bluezscript pair code "
                   "NAME`)";
        case static_cast<std::uint8_t>(Status::UnknownDevice):
            return "the Pi does not know this device (not paired yet, or removed on the Pi)";
        case static_cast<std::uint8_t>(Status::Revoked):
            return "this device was revoked on the Pi";
        case static_cast<std::uint8_t>(Status::BadMac):
            return "the Pi could not authenticate the request";
        case static_cast<std::uint8_t>(Status::RateLimited):
            return "too many failed attempts: try again later";
        case static_cast<std::uint8_t>(Status::UnknownVersion):
            return "the Pi does not speak protocol 2 (update bluezscriptd on the Pi)";
        case static_cast<std::uint8_t>(Status::Malformed):
            return "the Pi could not read the request";
        default:
            return "";
    }
}

// Why the Pi refused a pair request (plain or sealed), with what to do.
std::string pair_refusal_text(std::uint8_t status) {
    if (status == static_cast<std::uint8_t>(Status::BadMac)) {
        return "the code does not match (was the whole link copied?)";
    }
    std::string why = refusal_text(status);
    if (why.empty()) {
        if (const auto s = core::protocol::status_from_byte(status)) {
            why = std::string(core::protocol::status_message(*s));
        }
    }
    return why;
}

}  // namespace

const std::string& ExchangeRequest::pi_name() const {
    return kind == ExchangeKind::Pair && link ? link->pi_name : credential.pi_name;
}

const core::protocol::PiId& ExchangeRequest::pi_id() const {
    return kind == ExchangeKind::Pair && link ? link->pi_id : credential.pi_id;
}

std::string status_byte_name(std::uint8_t status) {
    if (status == kCodeUsed) {
        return "code_used";
    }
    if (status == kCodeExpired) {
        return "code_expired";
    }
    if (const auto s = core::protocol::status_from_byte(status)) {
        return std::string(core::protocol::status_name(*s));
    }
    return "status_" + std::to_string(status);
}

std::string clock_note(const core::protocol::ResponseHead& head, std::int64_t local_now) {
    const std::int64_t diff = head.pi_time - local_now;
    const std::int64_t off = diff < 0 ? -diff : diff;
    if (!head.synced && off >= 120) {
        return "the Pi's clock is " + duration_text(off) + (diff < 0 ? " behind" : " ahead") +
               " (it has no network time); it learns the time from your commands";
    }
    if (head.synced && off >= 60) {
        return "your computer's clock is " + duration_text(off) +
               " off (the Pi's clock is synchronised; check timedatectl)";
    }
    return {};
}

ExchangeOutcome outcome_of(Status status, const core::protocol::CommandResult& r,
                           std::string_view action) {
    ExchangeOutcome o;
    o.command_sent = true;
    o.status = status;
    o.action_exit = r.exit_code;
    const std::string name(core::protocol::status_name(status));
    const std::string act = "action '" + std::string(action) + "'";
    const auto code = static_cast<std::uint8_t>(status);
    if (code >= 0x10) {
        o.exit = TriggerExit::Refused;
        o.message =
            "the Pi refused the command: " + std::string(core::protocol::status_message(status)) +
            " (" + name + ")" + refusal_hint(status);
        return o;
    }
    o.output = r.output;
    switch (status) {
        case Status::Ok:
            o.exit = TriggerExit::Ok;
            break;
        case Status::ActionFailed:
            o.exit = TriggerExit::ActionFailed;
            o.message = r.exit_code < 0
                            ? act + " was killed by signal " + std::to_string(-r.exit_code)
                            : act + " failed with exit code " + std::to_string(r.exit_code);
            o.message += " (" + name + ")";
            break;
        case Status::ActionTimeout:
            o.exit = TriggerExit::ActionFailed;
            o.message = act + " was stopped at its timeout (" + name + ")";
            break;
        case Status::ActionBusy:
            o.exit = TriggerExit::ActionFailed;
            o.message = act + " is already running on the Pi (" + name + ")";
            break;
        default:
            o.exit = TriggerExit::ActionFailed;
            o.message = "the Pi could not start " + act + " (" + name + ")";
            break;
    }
    return o;
}

ResponseCheck check_response(ByteView frame, ResponseType expected, ByteView response_key,
                             std::uint64_t counter, const core::protocol::SealTag& tag) {
    using V = ResponseCheck::Verdict;
    ResponseCheck out;
    // A plain refusal is read here, not by open_response: its status byte may be one
    // this build's Status enum does not know yet.
    if (frame.size() == core::protocol::kRefusalLen && frame[0] == core::protocol::kVersion2 &&
        frame[1] == static_cast<std::uint8_t>(ResponseType::Refusal) && frame[2] == 0 &&
        frame[3] == core::protocol::kRefusalLen) {
        std::uint64_t c = 0;
        for (std::size_t i = 4; i < 12; ++i) {
            c = (c << 8U) | frame[i];
        }
        if (c != counter && c != 0) {
            out.verdict = V::Stale;
            out.detail = "a refusal of counter " + std::to_string(c) + ", this request used " +
                         std::to_string(counter);
            return out;
        }
        out.verdict = V::Refusal;
        out.refusal = frame[12];
        out.detail = status_byte_name(frame[12]);
        return out;
    }
    auto opened = core::protocol::open_response(frame, response_key, tag);
    if (!opened.response) {
        out.verdict = V::Malformed;
        out.detail = opened.error;
        return out;
    }
    const auto& r = *opened.response;
    if (r.counter != counter) {
        out.verdict = V::Stale;
        out.detail = "it answers counter " + std::to_string(r.counter) + ", this request used " +
                     std::to_string(counter);
        return out;
    }
    if (!r.authentic) {
        out.verdict = V::NotAuthenticated;
        out.detail = "it does not open with this pairing's key as the answer to this request";
        return out;
    }
    if (r.type != expected) {
        out.verdict = V::Malformed;
        out.detail = "an answer of type " + std::to_string(static_cast<int>(r.type)) +
                     " to a request expecting " + std::to_string(static_cast<int>(expected));
        return out;
    }
    out.verdict = V::Authentic;
    out.response = r;
    return out;
}

std::string check_command(std::string_view action, const std::vector<std::string>& args) {
    const bool name_ok = core::protocol::valid_action_name(action);
    if (!name_ok) {
        return "action name '" + std::string(action) +
               "' is not valid: " + std::string(core::protocol::kActionNameRule);
    }
    if (args.size() > core::protocol::kMaxArgs) {
        return "too many arguments: " + std::to_string(args.size()) + " (at most " +
               std::to_string(core::protocol::kMaxArgs) + ")";
    }
    // header 40, timestamp 8, challenge 16, totp 4, action_len, argc, GCM tag 16
    std::size_t size = 86 + action.size();
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        const std::string which = "argument " + std::to_string(i + 1);
        if (a.size() > core::protocol::kMaxArgLen) {
            return which + " is " + std::to_string(a.size()) + " bytes long (at most " +
                   std::to_string(core::protocol::kMaxArgLen) + ")";
        }
        if (std::any_of(a.begin(), a.end(), [](char ch) {
                const auto u = static_cast<unsigned char>(ch);
                return u < 0x20 || u == 0x7F;
            })) {
            return which +
                   " contains a control character (tab, newline, escape...), which the "
                   "protocol does not carry";
        }
        size += 1 + a.size();
    }
    if (size > core::protocol::kMaxFrame) {
        return "the action and its arguments make a " + std::to_string(size) +
               "-byte request; at most " + std::to_string(core::protocol::kMaxFrame) + " fit";
    }
    return {};
}

std::optional<PiInfo> parse_info(ByteView value) {
    const std::string text(value.begin(), value.end());
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return std::nullopt;
    }
    const auto v = j.find("v");
    if (v == j.end() || !v->is_number_integer()) {
        return std::nullopt;
    }
    PiInfo info;
    info.version = v->get<int>();
    if (info.version != 2) {
        return info;
    }
    const auto pi = j.find("pi");
    const auto name = j.find("name");
    const auto pk = j.find("pk");
    const auto time = j.find("time");
    const auto synced = j.find("synced");
    if (pi == j.end() || !pi->is_string() || name == j.end() || !name->is_string() ||
        pk == j.end() || !pk->is_string() || time == j.end() || !time->is_number_integer() ||
        synced == j.end() || !synced->is_boolean()) {
        return std::nullopt;
    }
    const auto id = core::crypto::hex_decode(pi->get<std::string>());
    const auto key = core::crypto::hex_decode(pk->get<std::string>());
    if (!id || id->size() != 16 || !key || key->size() != info.pi_public.size()) {
        return std::nullopt;
    }
    info.name = name->get<std::string>();
    info.pi_id_hex = core::crypto::hex_encode(*id);
    std::copy(key->begin(), key->end(), info.pi_public.begin());
    info.time = time->get<std::int64_t>();
    info.synced = synced->get<bool>();
    return info;
}

namespace {

core::protocol::SealNonce fresh_nonce() {
    core::protocol::SealNonce n{};
    core::crypto::random_bytes(n);
    return n;
}

}  // namespace

Bytes seal_device_request(const Credential& c, const core::protocol::SealKeys& keys,
                          std::uint64_t counter, const core::protocol::CommandBody& body) {
    const Bytes plain = core::protocol::encode_body(body);
    return core::protocol::seal_request(core::protocol::RequestType::Command, c.device_id, counter,
                                        fresh_nonce(), keys.request.view(), plain);
}

Bytes seal_device_request(const Credential& c, const core::protocol::SealKeys& keys,
                          std::uint64_t counter, const core::protocol::CatalogueBody& body) {
    const Bytes plain = core::protocol::encode_body(body);
    return core::protocol::seal_request(core::protocol::RequestType::Catalogue, c.device_id,
                                        counter, fresh_nonce(), keys.request.view(), plain);
}

// ------------------------------------------------------------------ Exchange

struct Exchange::Impl {
    using Chrc = GattTransport::Chrc;
    // What the request in flight is; PairConfirm is the catalogue request that
    // confirms a pairing whose result was lost.
    enum class Mode { Command, Catalogue, Pair, PairConfirm };

    // Members from the widest alignment down, so that the struct packs.
    loop::EventLoop& loop;
    GattTransport& transport;
    ExchangeRequest request;
    ExchangeHooks hooks;
    ExchangeTiming timing;
    Done done;
    core::protocol::SealKeys keys;  ///< the device's, or the code's when pairing
    /// Callbacks hold a weak_ptr to this: they do nothing once the Exchange is gone.
    std::shared_ptr<Impl*> token = std::make_shared<Impl*>(this);
    PiInfo info;

    // The request in flight.
    std::uint64_t sequence = 0;  ///< of the request in flight: late reads of another are ignored
    std::uint64_t counter = 0;
    core::protocol::Reassembler reassembler;
    Bytes last_read;
    std::string last_rejection;
    std::string note;  ///< clock note of the last authentic answer
    loop::Source grace_timer;
    loop::Source deadline_timer;

    // Catalogue.
    std::vector<core::protocol::CatalogueEntry> entries;

    // Pairing.
    std::optional<core::protocol::PairSecret> derived;
    std::uint64_t confirm_counter = 0;

    int read_failures = 0;
    Mode mode;
    core::protocol::SealTag tag{};
    ResponseType expected = ResponseType::CommandResult;
    std::uint8_t next_first = 0;
    bool finished = false;
    bool pair_tried = false;
    bool subscribed = false;
    bool command_sent = false;
    bool waiting = false;
    bool result_read_pending = false;

    Impl(loop::EventLoop& l, GattTransport& t, ExchangeRequest r, ExchangeHooks h,
         ExchangeTiming tm, Done d)
        : loop(l),
          transport(t),
          request(std::move(r)),
          hooks(std::move(h)),
          timing(tm),
          done(std::move(d)),
          keys(request.kind == ExchangeKind::Pair
                   ? core::protocol::pair_seal_keys(request.link->code.view())
                   : core::protocol::device_seal_keys(request.credential.secret.view())),
          mode(request.kind == ExchangeKind::Pair        ? Mode::Pair
               : request.kind == ExchangeKind::Catalogue ? Mode::Catalogue
                                                         : Mode::Command) {}

    // Wraps a callback so that it runs only while the exchange exists and is not over.
    template <class F>
    auto guard(F f) {
        return [weak = std::weak_ptr<Impl*>(token), f = std::move(f)](auto&&... args) {
            auto alive = weak.lock();
            if (!alive || (*alive)->finished) {
                return;
            }
            f(std::forward<decltype(args)>(args)...);
        };
    }

    void notice(const std::string& line) const {
        if (hooks.notice) {
            hooks.notice(line);
        }
    }

    [[nodiscard]] bool pairing() const { return mode == Mode::Pair || mode == Mode::PairConfirm; }

    void finish(ExchangeOutcome o) {
        if (finished) {
            return;
        }
        finished = true;
        waiting = false;
        grace_timer.reset();
        deadline_timer.reset();
        o.command_sent = o.command_sent || command_sent;
        if (o.clock_note.empty()) {
            o.clock_note = note;
        }
        // Last: the owner may destroy the Exchange from inside `done`.
        Done d = std::move(done);
        d(o);
    }

    void fail(TriggerExit exit, std::string message) {
        ExchangeOutcome o;
        o.exit = exit;
        o.message = std::move(message);
        finish(std::move(o));
    }

    // A GATT operation failed: bond once when the Pi wants a bonded link, then
    // `retry`; anything else ends the exchange.
    void on_gatt_error(const std::string& what, const GattError& e, std::function<void()> retry) {
        if (!is_bonding_required(e)) {
            fail(TriggerExit::Bluetooth, what + ": " + e.to_string());
            return;
        }
        waiting = false;
        if (pair_tried || transport.paired()) {
            fail(TriggerExit::Bluetooth,
                 what +
                     ": the Pi requires a bonded link and refuses this computer's bond "
                     "(it may have forgotten it: remove the Pi here with `bluetoothctl "
                     "remove ADDRESS`, open the pairing window on the Pi and try again)");
            return;
        }
        pair_tried = true;
        notice(
            "the Pi requires a bonded link: bonding now (the Pi's pairing window must be "
            "open)");
        transport.pair(guard([this, retry = std::move(retry)](const GattError* err) {
            if (auto why = bond_failure(err)) {
                fail(TriggerExit::Bluetooth, *why);
                return;
            }
            notice("bonded with the Pi");
            retry();
        }));
    }

    void start() {
        transport.read(Chrc::Info, guard([this](const Bytes& value, const GattError* err) {
                           if (err != nullptr) {
                               on_gatt_error("cannot read the Pi's Info", *err,
                                             [this] { start(); });
                               return;
                           }
                           on_info(value);
                       }));
    }

    void wrong_pi(std::string message) {
        ExchangeOutcome o;
        o.exit = TriggerExit::NotFound;
        o.wrong_pi = true;
        o.message = std::move(message);
        finish(std::move(o));
    }

    void on_info(const Bytes& value) {
        const auto parsed = parse_info(value);
        if (!parsed) {
            wrong_pi("this device's Info is not BlueZscript's");
            return;
        }
        if (parsed->version != 2) {
            wrong_pi("this device speaks BlueZscript protocol " + std::to_string(parsed->version) +
                     ", not 2 (update bluezscriptd there)");
            return;
        }
        const std::string want = core::crypto::hex_encode(request.pi_id());
        if (parsed->pi_id_hex != want) {
            wrong_pi("this device is Pi '" + parsed->name + "' (id " +
                     parsed->pi_id_hex.substr(0, 8) + "...), not the Pi of the " +
                     (mode == Mode::Pair ? "link" : "pairing"));
            return;
        }
        if (mode == Mode::Pair &&
            !core::crypto::ct_equal(core::protocol::key_fingerprint(parsed->pi_public),
                                    request.link->pi_key)) {
            wrong_pi("a device claims to be Pi '" + parsed->name +
                     "' but its public key does not match the link's fingerprint (pk): it is "
                     "not the Pi that made the link, or the link was altered; nothing was sent "
                     "to it");
            return;
        }
        info = *parsed;
        subscribe();
    }

    void subscribe() {
        if (subscribed) {
            read_challenge();
            return;
        }
        transport.subscribe_result(guard([this](ByteView v) { on_notification(v); }),
                                   guard([this](const GattError* err) {
                                       if (err != nullptr) {
                                           on_gatt_error("cannot subscribe to the Pi's results",
                                                         *err, [this] { subscribe(); });
                                           return;
                                       }
                                       subscribed = true;
                                       read_challenge();
                                   }));
    }

    void read_challenge() {
        transport.read(Chrc::Challenge, guard([this](const Bytes& value, const GattError* err) {
                           if (err != nullptr) {
                               on_gatt_error("cannot read a challenge from the Pi", *err,
                                             [this] { subscribe(); });
                               return;
                           }
                           if (value.size() != core::protocol::kNonceLen) {
                               fail(TriggerExit::Bluetooth, "the Pi's challenge is " +
                                                                std::to_string(value.size()) +
                                                                " bytes, expected 16");
                               return;
                           }
                           core::protocol::Nonce ch{};
                           std::copy(value.begin(), value.end(), ch.begin());
                           send(ch);
                       }));
    }

    // The pair request: a fresh ephemeral key, S and the confirmation derived from
    // it, the Pi's key and the code (kept until the answer is checked).
    Bytes pair_frame(const core::protocol::Nonce& challenge) {
        const core::crypto::P256KeyPair e = core::crypto::p256_generate();
        const auto transcript = core::protocol::pair_transcript(
            request.link->pi_id, request.link->device_id, info.pi_public, e.public_key);
        derived = core::protocol::pair_derive(e.private_scalar.view(), info.pi_public,
                                              request.link->code.view(), transcript);
        if (!derived) {
            throw std::runtime_error("the Pi's public key is not a valid P-256 point");
        }
        core::protocol::PairBody body;
        body.challenge = challenge;
        std::copy(e.public_key.begin(), e.public_key.end(), body.phone_public.begin());
        core::protocol::SealNonce nonce{};
        core::crypto::random_bytes(nonce);
        return core::protocol::seal_request(core::protocol::RequestType::Pair,
                                            request.link->device_id, 0, nonce, keys.request.view(),
                                            core::protocol::encode_body(body));
    }

    // The credential the pairing gives, once S is derived.
    [[nodiscard]] Credential paired_credential() const {
        Credential c;
        c.pi_id = request.link->pi_id;
        c.pi_name = request.link->pi_name;
        c.pi_public = info.pi_public;
        c.device_id = request.link->device_id;
        c.label = request.link->label;
        c.secret = derived->secret;
        c.totp = request.link->totp;
        return c;
    }

    void send(const core::protocol::Nonce& challenge) {
        Bytes frame;
        try {
            switch (mode) {
                case Mode::Command: {
                    core::protocol::CommandBody body;
                    // Stored before anything is sent: a crash can skip a counter, never
                    // reuse one.
                    counter = hooks.reserve_counter();
                    body.timestamp = hooks.clock();
                    body.challenge = challenge;
                    body.totp = core::crypto::totp(request.credential.secret.view(), body.timestamp,
                                                   request.credential.totp);
                    body.action = request.action;
                    body.args = request.args;
                    frame = seal_device_request(request.credential, keys, counter, body);
                    expected = ResponseType::CommandResult;
                    break;
                }
                case Mode::Catalogue:
                case Mode::PairConfirm: {
                    const bool confirm = mode == Mode::PairConfirm;
                    // The confirming request's counter is stored with the pairing.
                    counter = confirm ? ++confirm_counter : hooks.reserve_counter();
                    core::protocol::CatalogueBody body;
                    body.timestamp = hooks.clock();
                    body.challenge = challenge;
                    const Credential& c = confirm ? paired_credential() : request.credential;
                    body.totp = core::crypto::totp(c.secret.view(), body.timestamp, c.totp);
                    body.first = confirm ? 0 : next_first;
                    frame = seal_device_request(c, keys, counter, body);
                    expected = ResponseType::CatalogueResult;
                    break;
                }
                case Mode::Pair:
                    counter = 0;
                    frame = pair_frame(challenge);
                    expected = ResponseType::PairResult;
                    break;
            }
        } catch (const std::exception& e) {
            fail(TriggerExit::Usage, std::string("cannot prepare the request: ") + e.what());
            return;
        }
        tag = core::protocol::request_tag(frame);
        ++sequence;
        waiting = true;
        reassembler.reset();
        last_read.clear();
        read_failures = 0;
        transport.write_command(frame, guard([this](const GattError* err) {
                                    if (err != nullptr) {
                                        waiting = false;
                                        on_gatt_error("cannot send the request to the Pi", *err,
                                                      [this] { subscribe(); });
                                        return;
                                    }
                                    command_sent = true;
                                    deadline_timer = loop.add_timer_relative(
                                        timing.response_timeout, guard([this] { on_deadline(); }));
                                    if (!grace_timer) {
                                        arm_read_timer(timing.notify_grace);
                                    }
                                }));
    }

    void arm_read_timer(std::chrono::milliseconds after) {
        grace_timer = loop.add_timer_relative(after, guard([this] { read_result(); }));
    }

    void on_notification(ByteView value) {
        // BlueZ also reports the value a Result read fetched as a change: that is a
        // whole frame, not a fragment.
        if (!waiting || result_read_pending ||
            (!last_read.empty() &&
             std::equal(value.begin(), value.end(), last_read.begin(), last_read.end()))) {
            return;
        }
        switch (reassembler.push(value)) {
            case core::protocol::Reassembler::State::Done: {
                const Bytes frame = reassembler.frame();
                reassembler.reset();
                evaluate(frame, false);
                break;
            }
            case core::protocol::Reassembler::State::Error:
                // A fragment was lost: the whole frame is in Result.
                read_result();
                break;
            case core::protocol::Reassembler::State::NeedMore:
                arm_read_timer(timing.notify_grace);
                break;
        }
    }

    void read_result() {
        if (result_read_pending || !waiting) {
            return;
        }
        result_read_pending = true;
        grace_timer.reset();
        transport.read(Chrc::Result,
                       guard([this, seq = sequence](const Bytes& value, const GattError* err) {
                           result_read_pending = false;
                           if (!waiting || seq != sequence) {
                               return;  // the answer of an earlier request (catalogue page)
                           }
                           if (err != nullptr) {
                               if (++read_failures >= 3) {
                                   fail(TriggerExit::Bluetooth,
                                        "cannot read the result from the Pi: " + err->to_string());
                                   return;
                               }
                               arm_read_timer(timing.reread_interval);
                               return;
                           }
                           read_failures = 0;
                           if (value.empty()) {
                               // The action still runs: its answer will come.
                               arm_read_timer(timing.reread_interval);
                               return;
                           }
                           last_read = value;
                           evaluate(value, true);
                       }));
    }

    // The request in flight is answered: stop its timers before the next one.
    void answered() {
        waiting = false;
        grace_timer.reset();
        deadline_timer.reset();
        last_rejection.clear();
    }

    void evaluate(const Bytes& frame, bool from_read) {
        auto chk = check_response(frame, expected, keys.response.view(), counter, tag);
        using V = ResponseCheck::Verdict;
        switch (chk.verdict) {
            case V::Authentic:
                answered();
                on_authentic(*chk.response);
                return;
            case V::Refusal:
                answered();
                on_refusal(chk.refusal);
                return;
            case V::NotAuthenticated:
            case V::Stale:
            case V::Malformed:
                if (!from_read) {
                    // Notifications reach every subscriber: this may be another
                    // device's answer. Result holds this connection's own answer.
                    last_rejection = chk.detail;
                    read_result();
                    return;
                }
                fail(TriggerExit::NotAuthenticated,
                     chk.verdict == V::NotAuthenticated
                         ? "the answer is not authenticated by the Pi (" + chk.detail +
                               "); it was not shown"
                     : chk.verdict == V::Stale
                         ? "stale response: " + chk.detail
                         : "the Pi's answer could not be decoded: " + chk.detail);
                return;
        }
    }

    void on_refusal(std::uint8_t status) {
        const std::string name = status_byte_name(status);
        if (mode == Mode::Pair) {
            fail(TriggerExit::Refused,
                 "pairing refused: " + pair_refusal_text(status) + " (" + name + ")");
            return;
        }
        if (mode == Mode::PairConfirm) {
            fail(TriggerExit::Refused,
                 "the pair result was lost, and the Pi does not accept the new pairing (" + name +
                     ", unauthenticated): the pairing did not complete and nothing was stored; "
                     "ask the owner for a new code (`bluezscript pair code NAME`)");
            return;
        }
        const std::string why = refusal_text(status);
        fail(TriggerExit::NotAuthenticated,
             "unauthenticated answer: " + name + (why.empty() ? "" : " — " + why) +
                 " (a plain refusal is not sealed, so it may not come from the Pi)");
    }

    void on_authentic(const core::protocol::OpenedResponse& r) {
        if (hooks.clock) {
            note = clock_note(r.head, hooks.clock());
        }
        switch (mode) {
            case Mode::Command:
                on_command_result(r);
                return;
            case Mode::Catalogue:
                on_catalogue_page(r);
                return;
            case Mode::Pair:
                on_pair_result(r);
                return;
            case Mode::PairConfirm:
                // Any sealed answer under the new secret proves the Pi stored it.
                notice(
                    "the Pi's authenticated answer to a catalogue request confirms the "
                    "pairing");
                store_paired(confirm_counter);
                return;
        }
    }

    void on_command_result(const core::protocol::OpenedResponse& r) {
        auto result = core::protocol::decode_command_result(r.rest);
        const bool refused = static_cast<std::uint8_t>(r.head.status) >= 0x10;
        if (!result && !refused) {
            fail(TriggerExit::NotAuthenticated,
                 "the Pi's answer could not be decoded: a command result without exit code");
            return;
        }
        finish(outcome_of(r.head.status, result.value_or(core::protocol::CommandResult{}),
                          request.action));
    }

    void on_catalogue_page(const core::protocol::OpenedResponse& r) {
        if (r.head.status != Status::Ok) {
            ExchangeOutcome o;
            o.exit = TriggerExit::Refused;
            o.status = r.head.status;
            o.message = "the Pi refused the catalogue request: " +
                        std::string(core::protocol::status_message(r.head.status)) + " (" +
                        std::string(core::protocol::status_name(r.head.status)) + ")" +
                        refusal_hint(r.head.status);
            finish(std::move(o));
            return;
        }
        auto page = core::protocol::decode_catalogue_page(r.rest);
        if (!page.page) {
            fail(TriggerExit::NotAuthenticated,
                 "the Pi's catalogue could not be decoded: " + page.error);
            return;
        }
        if (page.page->first != next_first) {
            fail(TriggerExit::NotAuthenticated, "the Pi's catalogue page starts at " +
                                                    std::to_string(page.page->first) + ", not at " +
                                                    std::to_string(next_first) + " as asked");
            return;
        }
        const std::size_t total = page.page->total;
        for (auto& e : page.page->entries) {
            entries.push_back(std::move(e));
        }
        if (entries.size() >= total || page.page->entries.empty()) {
            if (entries.size() < total) {
                fail(TriggerExit::NotAuthenticated, "the Pi's catalogue stopped after " +
                                                        std::to_string(entries.size()) + " of " +
                                                        std::to_string(total) + " actions");
                return;
            }
            ExchangeOutcome o;
            o.status = Status::Ok;
            o.catalogue = std::move(entries);
            finish(std::move(o));
            return;
        }
        next_first = static_cast<std::uint8_t>(entries.size());
        read_challenge();  // each page is a whole authenticated request
    }

    void on_pair_result(const core::protocol::OpenedResponse& r) {
        if (r.head.status != Status::Ok) {
            // Sealed: the Pi opened the request with the code (e.g. code_expired).
            const auto byte = static_cast<std::uint8_t>(r.head.status);
            const std::string sentence(r.rest.begin(), r.rest.end());
            ExchangeOutcome o;
            o.exit = TriggerExit::Refused;
            o.status = r.head.status;
            o.message = "pairing refused by the Pi: " + pair_refusal_text(byte) + " (" +
                        status_byte_name(byte) + ")";
            if (!sentence.empty()) {
                o.message += ": " + core::protocol::quote_for_message(sentence);
            }
            finish(std::move(o));
            return;
        }
        if (r.rest.size() < core::protocol::kConfirmLen ||
            !core::crypto::ct_equal(ByteView(r.rest).first(core::protocol::kConfirmLen),
                                    derived->confirm)) {
            fail(TriggerExit::NotAuthenticated,
                 "the Pi's confirmation does not match: whoever answered holds the code but not "
                 "the key of the link; nothing was stored (tell the Pi's owner)");
            return;
        }
        store_paired(0);
    }

    void store_paired(std::uint64_t last_counter) {
        Credential c = paired_credential();
        try {
            if (hooks.store_pairing) {
                hooks.store_pairing(c, last_counter);
            }
        } catch (const std::exception& e) {
            fail(TriggerExit::Usage,
                 std::string("the Pi paired this computer, but the pairing cannot be stored: ") +
                     e.what() + "; ask the owner for a new code (`bluezscript pair code NAME`)");
            return;
        }
        ExchangeOutcome o;
        o.status = Status::Ok;
        o.paired = std::move(c);
        finish(std::move(o));
    }

    void on_deadline() {
        if (mode == Mode::Pair && derived) {
            // The Pi may have paired us and the answer got lost: ask under the new
            // secret, whose authentic answer confirms it.
            notice("no pair result within " + seconds_text(timing.response_timeout) +
                   "; asking the Pi whether the pairing was made");
            answered();
            mode = Mode::PairConfirm;
            keys = core::protocol::device_seal_keys(derived->secret.view());
            read_challenge();
            return;
        }
        std::string msg = "no answer from the Pi within " + seconds_text(timing.response_timeout);
        if (mode == Mode::Command) {
            msg +=
                "; the command was sent, so the action may have run (see `bluezscript log` on "
                "the Pi)";
        } else if (mode == Mode::PairConfirm) {
            msg +=
                ", neither to the pairing nor to the request that checks it: whether the Pi "
                "paired this computer is unknown and nothing was stored; ask the owner for a "
                "new code (`bluezscript pair code NAME`)";
        }
        if (!last_rejection.empty()) {
            msg += "; an answer that was not for this request arrived (" + last_rejection + ")";
        }
        fail(TriggerExit::NotFound, msg);
    }

    void link_lost() {
        if (finished) {
            return;
        }
        std::string msg = "the connection to the Pi was lost";
        if (command_sent && mode == Mode::Command) {
            msg +=
                " after the command was sent; the action may have run (see `bluezscript log` "
                "on the Pi)";
        } else if (command_sent && pairing()) {
            msg +=
                " after the pair request was sent; nothing was stored. If the Pi paired this "
                "computer, the code is used: ask the owner for a new one (`bluezscript pair "
                "code NAME`)";
        }
        fail(TriggerExit::Bluetooth, msg);
    }
};

Exchange::Exchange(loop::EventLoop& loop, GattTransport& transport, ExchangeRequest request,
                   ExchangeHooks hooks, ExchangeTiming timing, Done done)
    : impl_(std::make_unique<Impl>(loop, transport, std::move(request), std::move(hooks), timing,
                                   std::move(done))) {}

Exchange::~Exchange() = default;

void Exchange::start() {
    impl_->start();
}

void Exchange::link_lost() {
    impl_->link_lost();
}

bool Exchange::finished() const {
    return impl_->finished;
}

}  // namespace bzs::client
