// SPDX-License-Identifier: GPL-3.0-or-later
#include "client/exchange.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <utility>

#include "bluez/names.h"
#include "core/crypto/crypto.h"
#include "core/protocol/names.h"

namespace bzs::client {

namespace {

using core::protocol::Bytes;
using core::protocol::ByteView;
using core::protocol::Status;

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

ExchangeOutcome outcome_of(const core::protocol::Response& r, std::string_view action) {
    ExchangeOutcome o;
    o.command_sent = true;
    o.status = r.status;
    o.action_exit = r.exit_code;
    const std::string name(core::protocol::status_name(r.status));
    const std::string act = "action '" + std::string(action) + "'";
    const auto code = static_cast<std::uint8_t>(r.status);
    if (code >= 0x10) {
        o.exit = TriggerExit::Refused;
        o.message =
            "the Pi refused the command: " + std::string(core::protocol::status_message(r.status)) +
            " (" + name + ")" + refusal_hint(r.status);
        return o;
    }
    o.output = r.output;
    switch (r.status) {
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

ResponseCheck check_response(ByteView frame, ByteView response_key, std::uint64_t counter,
                             const std::array<std::uint8_t, core::protocol::kTagLen>& tag) {
    ResponseCheck out;
    auto dec = core::protocol::decode_response(frame, response_key);
    if (!dec.response) {
        out.verdict = ResponseCheck::Verdict::Malformed;
        out.detail = dec.error;
        return out;
    }
    const core::protocol::Response& r = *dec.response;
    if (r.counter != counter || !core::crypto::ct_equal(r.tag, tag)) {
        out.verdict = ResponseCheck::Verdict::Stale;
        out.detail = r.counter != counter ? "it answers counter " + std::to_string(r.counter) +
                                                ", this command used " + std::to_string(counter)
                                          : "its tag is not this command's";
        return out;
    }
    if (!dec.mac_ok) {
        out.verdict = ResponseCheck::Verdict::NotAuthenticated;
        const bool zero =
            std::all_of(r.mac.begin(), r.mac.end(), [](std::uint8_t b) { return b == 0; });
        out.detail = zero ? "it carries no MAC, which the Pi sends when it does not know this "
                            "device or could not verify the request (was the pairing revoked "
                            "or removed on the Pi?)"
                          : "its MAC does not verify with this pairing's key";
        return out;
    }
    out.verdict = ResponseCheck::Verdict::Accepted;
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
    // version, type, device id, counter, timestamp, challenge, totp, action_len, argc, MAC
    std::size_t size = 55 + action.size() + 1 + core::protocol::kMacLen;
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
    const auto pi = j.find("pi");
    const auto name = j.find("name");
    if (v == j.end() || !v->is_number_integer() || v->get<int>() != 1 || pi == j.end() ||
        !pi->is_string() || name == j.end() || !name->is_string()) {
        return std::nullopt;
    }
    const auto id = core::crypto::hex_decode(pi->get<std::string>());
    if (!id || id->size() != 16) {
        return std::nullopt;
    }
    return PiInfo{name->get<std::string>(), core::crypto::hex_encode(*id)};
}

// ------------------------------------------------------------------ Exchange

struct Exchange::Impl {
    using Chrc = GattTransport::Chrc;

    loop::EventLoop& loop;
    GattTransport& transport;
    ExchangeRequest request;
    ExchangeHooks hooks;
    ExchangeTiming timing;
    Done done;
    core::protocol::DeviceKeys keys;
    /// Callbacks hold a weak_ptr to this: they do nothing once the Exchange is gone.
    std::shared_ptr<Impl*> token = std::make_shared<Impl*>(this);

    bool finished = false;
    bool pair_tried = false;
    bool subscribed = false;
    bool command_sent = false;

    // The request in flight.
    bool waiting = false;
    std::uint64_t counter = 0;
    std::array<std::uint8_t, core::protocol::kTagLen> tag{};
    std::int64_t sent_step = 0;
    core::protocol::Reassembler reassembler;
    bool result_read_pending = false;
    Bytes last_read;
    int read_failures = 0;
    std::string last_rejection;

    loop::Source grace_timer;
    loop::Source deadline_timer;

    Impl(loop::EventLoop& l, GattTransport& t, ExchangeRequest r, ExchangeHooks h,
         ExchangeTiming tm, Done d)
        : loop(l),
          transport(t),
          request(std::move(r)),
          hooks(std::move(h)),
          timing(tm),
          done(std::move(d)),
          keys(core::protocol::derive_keys(request.pairing.secret.view())) {}

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

    void finish(ExchangeOutcome o) {
        if (finished) {
            return;
        }
        finished = true;
        waiting = false;
        grace_timer.reset();
        deadline_timer.reset();
        o.command_sent = o.command_sent || command_sent;
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

    void on_info(const Bytes& value) {
        const auto info = parse_info(value);
        const std::string want = core::crypto::hex_encode(request.pairing.pi_id);
        if (!info || info->pi_id_hex != want) {
            ExchangeOutcome o;
            o.exit = TriggerExit::NotFound;
            o.wrong_pi = true;
            o.message = info ? "this device is Pi '" + info->name + "' (id " +
                                   info->pi_id_hex.substr(0, 8) + "...), not the Pi of the pairing"
                             : "this device's Info is not BlueZscript protocol 1";
            finish(std::move(o));
            return;
        }
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
                           send(value);
                       }));
    }

    void send(const Bytes& challenge) {
        core::protocol::Request req;
        req.device_id = request.pairing.device_id;
        std::copy(challenge.begin(), challenge.end(), req.challenge.begin());
        req.action = request.action;
        req.args = request.args;
        Bytes frame;
        try {
            // Stored before anything is sent: a crash can skip a counter, never reuse one.
            req.counter = hooks.reserve_counter();
            req.timestamp = hooks.clock();
            req.totp = core::crypto::totp(request.pairing.secret.view(), req.timestamp,
                                          request.pairing.totp);
            frame = core::protocol::encode_request(req, keys.request_mac.view());
        } catch (const std::exception& e) {
            fail(TriggerExit::Usage, std::string("cannot prepare the command: ") + e.what());
            return;
        }
        counter = req.counter;
        std::copy_n(frame.end() - static_cast<std::ptrdiff_t>(core::protocol::kMacLen),
                    core::protocol::kTagLen, tag.begin());
        sent_step = core::crypto::totp_step(req.timestamp, request.pairing.totp.step_seconds);
        waiting = true;
        reassembler.reset();
        last_read.clear();
        read_failures = 0;
        transport.write_command(frame, guard([this](const GattError* err) {
                                    if (err != nullptr) {
                                        waiting = false;
                                        on_gatt_error("cannot send the command to the Pi", *err,
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
        transport.read(Chrc::Result, guard([this](const Bytes& value, const GattError* err) {
                           result_read_pending = false;
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

    void evaluate(const Bytes& frame, bool from_read) {
        auto chk = check_response(frame, keys.response_mac.view(), counter, tag);
        using V = ResponseCheck::Verdict;
        switch (chk.verdict) {
            case V::Accepted: {
                ExchangeOutcome o = outcome_of(*chk.response, request.action);
                if (static_cast<std::uint8_t>(chk.response->status) < 0x10 && hooks.accepted) {
                    try {
                        hooks.accepted(sent_step);
                    } catch (const std::exception& e) {
                        notice(std::string("could not record the accepted command: ") + e.what());
                    }
                }
                finish(std::move(o));
                return;
            }
            case V::NotAuthenticated:
                fail(TriggerExit::NotAuthenticated,
                     "response not authenticated by the Pi: " + chk.detail);
                return;
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
                     chk.verdict == V::Stale
                         ? "stale response: " + chk.detail
                         : "the Pi's answer could not be decoded: " + chk.detail);
                return;
        }
    }

    void on_deadline() {
        std::string msg = "no answer from the Pi within " + seconds_text(timing.response_timeout) +
                          "; the command was sent, so the action may have run (see `bluezscript "
                          "log` on the Pi)";
        if (!last_rejection.empty()) {
            msg += "; an answer that was not for this command arrived (" + last_rejection + ")";
        }
        fail(TriggerExit::NotFound, msg);
    }

    void link_lost() {
        if (finished) {
            return;
        }
        fail(TriggerExit::Bluetooth,
             command_sent ? "the connection to the Pi was lost after the command was sent; the "
                            "action may have run (see `bluezscript log` on the Pi)"
                          : "the connection to the Pi was lost");
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
