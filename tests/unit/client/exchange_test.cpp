// SPDX-License-Identifier: GPL-3.0-or-later
// The client's protocol v2 exchanges against a fake Pi transport that plays the Pi
// with the real core functions (sealed frames, pairing derivation, catalogue
// pages): pairing and its refusals, commands, the catalogue, answers that are not
// authentic or not for this request, fragments, bonding.
#include <gtest/gtest.h>

#include <algorithm>
#include <type_traits>

#include "client/exchange.h"
#include "core/crypto/crypto.h"
#include "core/crypto/ecdh_gcm.h"

namespace bzs::client {
namespace {

using core::protocol::Bytes;
using core::protocol::ByteView;
using core::protocol::ResponseType;
using core::protocol::Status;
using Chrc = GattTransport::Chrc;

constexpr std::int64_t kNow = 1'700'000'010;
constexpr std::uint8_t kCodeUsed = 0x1D;

// The Pi's side: its key, its id, the device it issued a code for, and once
// paired the device's secret and replay state.
struct PiState {
    core::crypto::P256KeyPair key = core::crypto::p256_generate();
    core::protocol::PiId pi_id{};
    std::string name = "kitchen";
    core::protocol::DeviceId device_id{};
    core::crypto::SecretBytes code = core::crypto::SecretBytes(core::crypto::random_bytes(16));
    bool active = false;  ///< paired: the code is used
    core::crypto::SecretBytes secret;
    std::uint64_t last_counter = 0;

    PiState() {
        pi_id.fill(0x5A);
        device_id.fill(0x17);
    }

    [[nodiscard]] core::protocol::PairingLink link() const {
        core::protocol::PairingLink l;
        l.pi_id = pi_id;
        l.pi_key = core::protocol::key_fingerprint(key.public_key);
        l.pi_name = name;
        l.device_id = device_id;
        l.code = code;
        l.label = "laptop";
        return l;
    }

    // Pairs the device as the Pi would have, for tests that start paired.
    Credential pair_now() {
        active = true;
        secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
        Credential c;
        c.pi_id = pi_id;
        c.pi_name = name;
        std::copy(key.public_key.begin(), key.public_key.end(), c.pi_public.begin());
        c.device_id = device_id;
        c.label = "laptop";
        c.secret = secret;
        return c;
    }
};

std::string info_for(const PiState& s, std::int64_t time = kNow, bool synced = true) {
    return R"({"v":2,"name":")" + s.name + R"(","pi":")" + core::crypto::hex_encode(s.pi_id) +
           R"(","pk":")" + core::crypto::hex_encode(s.key.public_key) + R"(","time":)" +
           std::to_string(time) + R"(,"synced":)" + (synced ? "true" : "false") + "}";
}

// A Pi behind the transport interface. Each request is opened and checked with the
// core functions and answered as the daemon would (sealed, or a plain refusal).
// Callbacks are posted to the loop, as the interface requires.
class FakePi : public GattTransport {
  public:
    FakePi(loop::EventLoop& loop, PiState& state) : info(info_for(state)), pi(state), loop_(loop) {}

    // --- behaviour ---
    std::string info;
    PiState& pi;
    bool require_bond = false;
    bool bonded = false;
    std::optional<GattError> pair_error;
    bool notify = true;
    std::size_t mtu = 517;
    std::optional<std::size_t> drop_fragment;  ///< index of a notification that gets lost
    bool echo_reads = false;                   ///< report Result reads as a Value change (BlueZ)
    int empty_result_reads = 0;                ///< Result reads that find no answer yet
    bool never_answer = false;
    bool lose_pair_result = false;       ///< pairs, but its pair result never arrives
    bool wrong_confirm = false;          ///< answers a pair request with another confirmation
    std::optional<Status> pair_status;   ///< a sealed pair refusal with this status
    std::optional<std::uint8_t> refuse;  ///< answer every request with this plain refusal
    core::protocol::ResponseHead head{Status::Ok, kNow, true};
    std::function<std::pair<Status, core::protocol::CommandResult>(
        const core::protocol::CommandBody&)>
        respond;
    std::function<void(Bytes&)> tamper;  ///< on the response frame
    std::vector<core::protocol::CatalogueEntry> catalogue;

    // --- what happened ---
    std::vector<std::string> ops;
    std::vector<core::protocol::RequestHeader> headers;
    std::vector<core::protocol::CommandBody> commands;
    std::vector<core::protocol::CatalogueBody> catalogue_requests;
    std::vector<core::protocol::Nonce> challenges;
    bool write_acked = false;  ///< the write's reply reached the exchange

    void read(Chrc chrc, ReadDone done) override {
        const char* names[] = {"Info", "Challenge", "Command", "Result"};
        ops.push_back(std::string("read ") + names[static_cast<int>(chrc)]);
        if (chrc != Chrc::Info && require_bond && !bonded) {
            post_error(done, "org.bluez.Error.NotPermitted", "Not paired");
            return;
        }
        Bytes value;
        if (chrc == Chrc::Info) {
            value.assign(info.begin(), info.end());
        } else if (chrc == Chrc::Challenge) {
            core::protocol::Nonce n{};
            core::crypto::random_bytes(n);
            challenges.push_back(n);
            value.assign(n.begin(), n.end());
        } else if (chrc == Chrc::Result) {
            if (empty_result_reads > 0) {
                --empty_result_reads;
            } else {
                value = result_;
            }
            if (echo_reads && !value.empty()) {
                // bluetoothd announces the freshly read value before it replies.
                loop_.post([this, value] { deliver(value); });
            }
        }
        loop_.post([done, value] { done(value, nullptr); });
    }

    void write_command(ByteView frame, Done done) override {
        ops.push_back("write Command");
        if (require_bond && !bonded) {
            post_error(done, "org.bluez.Error.NotPermitted", "Not paired");
            return;
        }
        loop_.post([this, done] {
            done(nullptr);
            write_acked = true;
        });
        result_.clear();
        const auto dec = core::protocol::decode_request_header(frame);
        EXPECT_TRUE(dec.header.has_value()) << dec.error.detail;
        if (!dec.header) {
            return;
        }
        headers.push_back(*dec.header);
        Bytes answer = this->answer(*dec.header, frame);
        if (never_answer || answer.empty()) {
            return;
        }
        if (tamper) {
            tamper(answer);
        }
        result_ = answer;
        if (notify && subscribed_) {
            auto parts = core::protocol::fragment(result_, mtu);
            if (drop_fragment) {
                parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(*drop_fragment));
            }
            // One callback for all: notifications arrive in order, as on the bus.
            loop_.post([this, parts] {
                for (const auto& part : parts) {
                    deliver(part);
                }
            });
        }
    }

    void subscribe_result(Notify on_value, Done done) override {
        ops.push_back("subscribe Result");
        if (require_bond && !bonded) {
            post_error(done, "org.bluez.Error.NotPermitted", "Not paired");
            return;
        }
        on_value_ = std::move(on_value);
        subscribed_ = true;
        loop_.post([done] { done(nullptr); });
    }

    [[nodiscard]] bool paired() const override { return bonded; }

    void pair(Done done) override {
        ops.push_back("pair");
        if (pair_error) {
            const GattError e = *pair_error;
            loop_.post([done, e] { done(&e); });
            return;
        }
        bonded = true;
        loop_.post([done] { done(nullptr); });
    }

    /// Delivers a notification as if from the Pi (any bytes).
    void deliver(const Bytes& value) {
        if (on_value_) {
            on_value_(value);
        }
    }

    [[nodiscard]] std::size_t count(const std::string& op) const {
        return static_cast<std::size_t>(std::count(ops.begin(), ops.end(), op));
    }

  protected:
    template <class D>
    void post_error(D done, const char* name, const char* message) {
        const GattError e{name, message};
        if constexpr (std::is_invocable_v<D, const Bytes&, const GattError*>) {
            loop_.post([done, e] { done({}, &e); });
        } else {
            loop_.post([done, e] { done(&e); });
        }
    }

    loop::EventLoop& loop_;

  private:
    static core::protocol::SealNonce nonce() {
        core::protocol::SealNonce n{};
        core::crypto::random_bytes(n);
        return n;
    }

    // The daemon's answer to one request frame (empty: none).
    Bytes answer(const core::protocol::RequestHeader& h, ByteView frame) {
        using core::protocol::RequestType;
        if (refuse) {
            Bytes b = core::protocol::encode_refusal(h.counter, Status::Malformed);
            b.back() = *refuse;
            return b;
        }
        const auto tag = core::protocol::request_tag(frame);
        if (h.type == RequestType::Pair) {
            return answer_pair(h, frame, tag);
        }
        if (!pi.active) {
            return core::protocol::encode_refusal(h.counter, Status::UnknownDevice);
        }
        const auto keys = core::protocol::device_seal_keys(pi.secret.view());
        const auto plain = core::protocol::open_request(frame, keys.request.view());
        if (!plain) {
            return core::protocol::encode_refusal(h.counter, Status::BadMac);
        }
        auto sealed_status = [&](Status s) {
            auto hd = head;
            hd.status = s;
            return hd;
        };
        if (h.counter <= pi.last_counter) {
            return core::protocol::seal_command_result(h.counter, tag, nonce(),
                                                       keys.response.view(),
                                                       sealed_status(Status::Replayed), 0, "");
        }
        pi.last_counter = h.counter;
        if (h.type == RequestType::Catalogue) {
            const auto body = core::protocol::decode_catalogue_body(*plain);
            EXPECT_TRUE(body.body.has_value()) << body.error;
            catalogue_requests.push_back(*body.body);
            EXPECT_EQ(body.body->totp,
                      core::crypto::totp(pi.secret.view(), body.body->timestamp, {}));
            return core::protocol::seal_response(
                ResponseType::CatalogueResult, h.counter, tag, nonce(), keys.response.view(), head,
                core::protocol::encode_catalogue_page(catalogue, body.body->first));
        }
        const auto body = core::protocol::decode_command_body(*plain);
        EXPECT_TRUE(body.body.has_value()) << body.error;
        commands.push_back(*body.body);
        std::pair<Status, core::protocol::CommandResult> r{Status::Ok, {0, "lights: on\n"}};
        if (respond) {
            r = respond(*body.body);
        }
        return core::protocol::seal_command_result(h.counter, tag, nonce(), keys.response.view(),
                                                   sealed_status(r.first), r.second.exit_code,
                                                   r.second.output);
    }

    Bytes answer_pair(const core::protocol::RequestHeader& h, ByteView frame,
                      const core::protocol::SealTag& tag) {
        if (h.device_id != pi.device_id) {
            return core::protocol::encode_refusal(0, Status::UnknownDevice);
        }
        if (pi.active) {
            return core::protocol::encode_refusal(0, static_cast<Status>(kCodeUsed));
        }
        const auto keys = core::protocol::pair_seal_keys(pi.code.view());
        const auto plain = core::protocol::open_request(frame, keys.request.view());
        if (!plain) {
            return core::protocol::encode_refusal(0, Status::BadMac);
        }
        if (pair_status) {
            auto hd = head;
            hd.status = *pair_status;
            return core::protocol::seal_response(
                ResponseType::PairResult, 0, tag, nonce(), keys.response.view(), hd,
                core::protocol::pair_result_rest(std::nullopt, "the challenge is not this link's"));
        }
        const auto body = core::protocol::decode_pair_body(*plain);
        EXPECT_TRUE(body.body.has_value()) << body.error;
        EXPECT_EQ(body.body->challenge, challenges.back());
        const auto t = core::protocol::pair_transcript(pi.pi_id, pi.device_id, pi.key.public_key,
                                                       body.body->phone_public);
        auto d = core::protocol::pair_derive(pi.key.private_scalar.view(), body.body->phone_public,
                                             pi.code.view(), t);
        EXPECT_TRUE(d.has_value());
        pi.active = true;
        pi.secret = d->secret;
        if (lose_pair_result) {
            return {};
        }
        auto confirm = d->confirm;
        if (wrong_confirm) {
            confirm[0] ^= 0x01;
        }
        return core::protocol::seal_response(ResponseType::PairResult, 0, tag, nonce(),
                                             keys.response.view(), head,
                                             core::protocol::pair_result_rest(confirm, "paired"));
    }

    Notify on_value_;
    bool subscribed_ = false;
    Bytes result_;
};

// One exchange on a fresh loop, with hooks that record what they were asked.
class ExchangeTest : public ::testing::Test {
  protected:
    PiState state;
    Credential credential = state.pair_now();
    loop::EventLoop loop;
    FakePi pi{loop, state};
    std::uint64_t next_counter = 41;
    bool counter_store_fails = false;
    bool pairing_store_fails = false;
    std::vector<std::pair<Credential, std::uint64_t>> stored;
    std::vector<std::string> notices;
    ExchangeTiming timing;
    std::string action = "lights.on";
    std::vector<std::string> args;
    std::int64_t now = kNow;

    ExchangeHooks hooks() {
        ExchangeHooks h;
        h.reserve_counter = [this]() -> std::uint64_t {
            pi.ops.push_back("reserve counter");
            if (counter_store_fails) {
                throw std::runtime_error("disk full");
            }
            return ++next_counter;
        };
        h.store_pairing = [this](const Credential& c, std::uint64_t counter) {
            pi.ops.push_back("store pairing");
            if (pairing_store_fails) {
                throw std::runtime_error("disk full");
            }
            stored.emplace_back(c, counter);
        };
        h.clock = [this] { return now; };
        h.notice = [this](const std::string& line) { notices.push_back(line); };
        return h;
    }

    ExchangeOutcome run_on(GattTransport& t, ExchangeRequest req) {
        std::optional<ExchangeOutcome> out;
        Exchange ex(loop, t, std::move(req), hooks(), timing,
                    [&out](const ExchangeOutcome& o) { out = o; });
        ex.start();
        loop.run_until([&out] { return out.has_value(); });
        return *out;
    }

    ExchangeOutcome run() {
        ExchangeRequest req;
        req.kind = ExchangeKind::Command;
        req.credential = credential;
        req.action = action;
        req.args = args;
        return run_on(pi, std::move(req));
    }

    ExchangeOutcome catalogue() {
        ExchangeRequest req;
        req.kind = ExchangeKind::Catalogue;
        req.credential = credential;
        return run_on(pi, std::move(req));
    }

    ExchangeOutcome pair(std::optional<core::protocol::PairingLink> link = std::nullopt) {
        ExchangeRequest req;
        req.kind = ExchangeKind::Pair;
        req.link = link ? std::move(link) : state.link();
        return run_on(pi, std::move(req));
    }

    // The Pi before pairing: a pending device with a code.
    void unpaired() {
        state.active = false;
        state.secret = core::crypto::SecretBytes();
        state.last_counter = 0;
    }
};

// ------------------------------------------------------------------ pairing

TEST_F(ExchangeTest, PairingDerivesTheSecretThePiStoredAndStoresItOnlyAfterTheConfirmation) {
    unpaired();
    const auto out = pair();
    EXPECT_EQ(out.exit, TriggerExit::Ok) << out.message;
    EXPECT_TRUE(out.message.empty()) << out.message;
    const std::vector<std::string> expected = {"read Info", "subscribe Result", "read Challenge",
                                               "write Command", "store pairing"};
    EXPECT_EQ(pi.ops, expected);
    ASSERT_EQ(pi.headers.size(), 1U);
    EXPECT_EQ(pi.headers[0].type, core::protocol::RequestType::Pair);
    EXPECT_EQ(pi.headers[0].counter, 0U);
    EXPECT_EQ(pi.headers[0].device_id, state.device_id);

    ASSERT_EQ(stored.size(), 1U);
    const Credential& c = stored[0].first;
    EXPECT_EQ(stored[0].second, 0U);
    EXPECT_TRUE(state.active);
    EXPECT_TRUE(core::crypto::ct_equal(c.secret.view(), state.secret.view()));
    EXPECT_EQ(c.secret.view().size(), 32U);
    EXPECT_EQ(c.pi_id, state.pi_id);
    EXPECT_EQ(c.device_id, state.device_id);
    EXPECT_EQ(c.pi_name, "kitchen");
    EXPECT_EQ(c.label, "laptop");
    EXPECT_TRUE(std::equal(c.pi_public.begin(), c.pi_public.end(), state.key.public_key.begin(),
                           state.key.public_key.end()));
    ASSERT_TRUE(out.paired.has_value());
}

TEST_F(ExchangeTest, PairedSecretWorksForACommandAfterwards) {
    unpaired();
    ASSERT_EQ(pair().exit, TriggerExit::Ok);
    credential = stored.at(0).first;
    pi.ops.clear();
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Ok) << out.message;
    EXPECT_EQ(out.output, "lights: on\n");
}

TEST_F(ExchangeTest, ACodeAlreadyUsedIsRefusedWithWhatToDoAndNothingIsStored) {
    // The device is active: someone used the code first.
    const auto out = pair();
    EXPECT_EQ(out.exit, TriggerExit::Refused);
    EXPECT_NE(out.message.find("this code was already used — ask the owner for a new one "
                               "(`bluezscript pair code NAME`)"),
              std::string::npos)
        << out.message;
    EXPECT_NE(out.message.find("code_used"), std::string::npos) << out.message;
    EXPECT_TRUE(stored.empty());
    EXPECT_FALSE(out.paired.has_value());
}

TEST_F(ExchangeTest, AWrongCodeIsRefusedAsNotMatching) {
    unpaired();
    auto link = state.link();
    link.code = core::crypto::SecretBytes(core::crypto::random_bytes(16));
    const auto out = pair(std::move(link));
    EXPECT_EQ(out.exit, TriggerExit::Refused);
    EXPECT_NE(out.message.find("the code does not match"), std::string::npos) << out.message;
    EXPECT_TRUE(stored.empty());
    EXPECT_FALSE(state.active);
}

TEST_F(ExchangeTest, EveryPlainPairRefusalHasItsOwnMessage) {
    unpaired();
    const std::vector<std::pair<std::uint8_t, const char*>> cases = {
        {0x1E, "this code has expired"},
        {static_cast<std::uint8_t>(Status::UnknownDevice), "does not know this device"},
        {static_cast<std::uint8_t>(Status::Revoked), "revoked"},
        {static_cast<std::uint8_t>(Status::RateLimited), "try again later"},
    };
    for (const auto& [status, says] : cases) {
        SCOPED_TRACE(status_byte_name(status));
        pi.refuse = status;
        const auto out = pair();
        EXPECT_EQ(out.exit, TriggerExit::Refused);
        EXPECT_NE(out.message.find(says), std::string::npos) << out.message;
        EXPECT_NE(out.message.find(status_byte_name(status)), std::string::npos) << out.message;
    }
    EXPECT_TRUE(stored.empty());
}

TEST_F(ExchangeTest, ASealedPairRefusalGivesThePisReasonAndStoresNothing) {
    unpaired();
    pi.pair_status = Status::Replayed;
    const auto out = pair();
    EXPECT_EQ(out.exit, TriggerExit::Refused);
    EXPECT_EQ(out.status, Status::Replayed);
    EXPECT_NE(out.message.find("pairing refused by the Pi: " +
                               std::string(core::protocol::status_message(Status::Replayed)) +
                               " (replayed)"),
              std::string::npos)
        << out.message;
    EXPECT_NE(out.message.find("the challenge is not this link's"), std::string::npos)
        << out.message;
    EXPECT_TRUE(stored.empty());
}

TEST_F(ExchangeTest, APiKeyThatDoesNotMatchTheLinkIsRefusedBeforeAnythingIsSent) {
    unpaired();
    auto link = state.link();
    link.pi_key[0] ^= 0x01;
    const auto out = pair(std::move(link));
    EXPECT_TRUE(out.wrong_pi);
    EXPECT_FALSE(out.command_sent);
    EXPECT_NE(out.message.find("does not match the link's fingerprint"), std::string::npos)
        << out.message;
    EXPECT_EQ(pi.ops, std::vector<std::string>{"read Info"});
    EXPECT_TRUE(stored.empty());
    EXPECT_FALSE(state.active);
}

TEST_F(ExchangeTest, AConfirmationThatDoesNotMatchIsRefusedAndNothingIsStored) {
    unpaired();
    pi.wrong_confirm = true;
    const auto out = pair();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("confirmation does not match"), std::string::npos) << out.message;
    EXPECT_NE(out.message.find("nothing was stored"), std::string::npos) << out.message;
    EXPECT_TRUE(stored.empty());
    EXPECT_EQ(pi.count("store pairing"), 0U);
}

TEST_F(ExchangeTest, ALostPairResultIsConfirmedByACatalogueRequestThenStored) {
    unpaired();
    pi.lose_pair_result = true;
    timing.notify_grace = std::chrono::milliseconds(1);
    timing.reread_interval = std::chrono::milliseconds(1);
    timing.response_timeout = std::chrono::milliseconds(30);
    const auto out = pair();
    EXPECT_EQ(out.exit, TriggerExit::Ok) << out.message;
    ASSERT_EQ(pi.headers.size(), 2U);
    EXPECT_EQ(pi.headers[1].type, core::protocol::RequestType::Catalogue);
    EXPECT_EQ(pi.headers[1].counter, 1U);
    ASSERT_EQ(pi.catalogue_requests.size(), 1U);
    EXPECT_EQ(pi.catalogue_requests[0].challenge, pi.challenges.back());
    ASSERT_EQ(stored.size(), 1U);
    EXPECT_EQ(stored[0].second, 1U);  // the counter the confirming request used
    EXPECT_TRUE(core::crypto::ct_equal(stored[0].first.secret.view(), state.secret.view()));
    EXPECT_TRUE(std::any_of(notices.begin(), notices.end(), [](const std::string& n) {
        return n.find("confirms the pairing") != std::string::npos;
    }));
}

TEST_F(ExchangeTest, ALostPairResultThatThePiDidNotStoreEndsWithNothingStored) {
    unpaired();
    pi.never_answer = true;  // neither the pair request nor the confirmation
    timing.notify_grace = std::chrono::milliseconds(1);
    timing.reread_interval = std::chrono::milliseconds(1);
    timing.response_timeout = std::chrono::milliseconds(30);
    const auto out = pair();
    EXPECT_EQ(out.exit, TriggerExit::NotFound);
    EXPECT_NE(out.message.find("nothing was stored"), std::string::npos) << out.message;
    EXPECT_TRUE(stored.empty());
}

TEST_F(ExchangeTest, APairingThatCannotBeStoredSaysTheCodeIsUsed) {
    unpaired();
    pairing_store_fails = true;
    const auto out = pair();
    EXPECT_EQ(out.exit, TriggerExit::Usage);
    EXPECT_NE(out.message.find("disk full"), std::string::npos);
    EXPECT_NE(out.message.find("ask the owner for a new code"), std::string::npos);
}

// ------------------------------------------------------------------ commands

TEST_F(ExchangeTest, OkAnswerOverNotificationsAfterASealedRequest) {
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Ok);
    EXPECT_EQ(out.output, "lights: on\n");
    EXPECT_TRUE(out.message.empty());
    EXPECT_TRUE(out.clock_note.empty());
    EXPECT_TRUE(out.command_sent);
    EXPECT_EQ(out.status, Status::Ok);

    const std::vector<std::string> expected = {"read Info", "subscribe Result", "read Challenge",
                                               "reserve counter", "write Command"};
    EXPECT_EQ(pi.ops, expected);  // no Result read: the notification carried the answer

    ASSERT_EQ(pi.commands.size(), 1U);
    const auto& h = pi.headers.at(0);
    const auto& body = pi.commands[0];
    EXPECT_EQ(h.type, core::protocol::RequestType::Command);
    EXPECT_EQ(h.device_id, state.device_id);
    EXPECT_EQ(h.counter, 42U);
    EXPECT_EQ(body.timestamp, kNow);
    EXPECT_EQ(body.challenge, pi.challenges.at(0));
    EXPECT_EQ(body.totp, core::crypto::totp(state.secret.view(), kNow, {}));
    EXPECT_EQ(body.action, "lights.on");
    EXPECT_TRUE(body.args.empty());
}

TEST_F(ExchangeTest, EveryRequestHasAFreshNonce) {
    run();
    run();
    ASSERT_EQ(pi.headers.size(), 2U);
    EXPECT_NE(pi.headers[0].nonce, pi.headers[1].nonce);
}

TEST_F(ExchangeTest, ArgumentsTravelInTheRequest) {
    action = "volume";
    args = {"42", "", "caf\xC3\xA9"};
    EXPECT_EQ(run().exit, TriggerExit::Ok);
    ASSERT_EQ(pi.commands.size(), 1U);
    EXPECT_EQ(pi.commands[0].action, "volume");
    EXPECT_EQ(pi.commands[0].args, args);
}

TEST_F(ExchangeTest, ActionResultsMapToExitOneWithTheirOutput) {
    struct Case {
        Status status;
        std::int32_t code;
        const char* says;
    };
    for (const Case c : {Case{Status::ActionFailed, 3, "failed with exit code 3 (action_failed)"},
                         Case{Status::ActionFailed, -9, "killed by signal 9"},
                         Case{Status::ActionTimeout, -15, "stopped at its timeout"},
                         Case{Status::ActionBusy, 0, "already running"},
                         Case{Status::ActionStartFailed, 0, "could not start"}}) {
        SCOPED_TRACE(std::string(core::protocol::status_name(c.status)));
        pi.respond = [c](const core::protocol::CommandBody&) {
            return std::pair{c.status, core::protocol::CommandResult{c.code, "partial output\n"}};
        };
        const auto out = run();
        EXPECT_EQ(out.exit, TriggerExit::ActionFailed);
        EXPECT_EQ(out.output, "partial output\n");
        EXPECT_NE(out.message.find(c.says), std::string::npos) << out.message;
        EXPECT_NE(out.message.find("action 'lights.on'"), std::string::npos) << out.message;
    }
}

TEST_F(ExchangeTest, EverySealedRefusalIsExitThreeWithThePisReason) {
    for (const Status s :
         {Status::StaleTimestamp, Status::BadTotp, Status::Replayed, Status::UnknownAction,
          Status::NotPermitted, Status::BadArguments, Status::Internal, Status::Malformed}) {
        SCOPED_TRACE(std::string(core::protocol::status_name(s)));
        pi.respond = [s](const core::protocol::CommandBody&) {
            return std::pair{s, core::protocol::CommandResult{}};
        };
        const auto out = run();
        EXPECT_EQ(out.exit, TriggerExit::Refused);
        EXPECT_EQ(out.status, s);
        EXPECT_TRUE(out.output.empty());
        EXPECT_NE(out.message.find(std::string(core::protocol::status_message(s)) + " (" +
                                   std::string(core::protocol::status_name(s)) + ")"),
                  std::string::npos)
            << out.message;
    }
}

TEST_F(ExchangeTest, APlainRefusalIsNotTakenForThePisAnswer) {
    pi.refuse = static_cast<std::uint8_t>(Status::Revoked);
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("unauthenticated answer: revoked"), std::string::npos)
        << out.message;
    EXPECT_FALSE(out.status.has_value());
    EXPECT_TRUE(out.output.empty());
}

TEST_F(ExchangeTest, ATamperedSealedAnswerIsRefusedAndNotShown) {
    pi.respond = [](const core::protocol::CommandBody&) {
        return std::pair{Status::Ok, core::protocol::CommandResult{0, "secret output\n"}};
    };
    pi.tamper = [](Bytes& frame) { frame[30] ^= 0x01; };  // a byte of the sealed body
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("not authenticated by the Pi"), std::string::npos) << out.message;
    EXPECT_TRUE(out.output.empty());
    EXPECT_FALSE(out.status.has_value());
    // The notification alone did not decide: Result, this link's own answer, did.
    EXPECT_EQ(pi.count("read Result"), 1U);
}

TEST_F(ExchangeTest, ARequestThePiCannotOpenGetsAPlainBadMac) {
    // The Pi holds another secret for this device (e.g. paired again elsewhere): it
    // cannot open the request and refuses plainly.
    state.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("unauthenticated answer: bad_mac"), std::string::npos)
        << out.message;
}

TEST_F(ExchangeTest, AnAnswerToAnotherCounterIsStale) {
    pi.tamper = [](Bytes& frame) { frame[11] ^= 0x01; };  // the clear counter
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("stale response: it answers counter 43, this request used 42"),
              std::string::npos)
        << out.message;
}

TEST_F(ExchangeTest, TheCounterIsReservedBeforeTheRequestIsWrittenAndNeverReused) {
    run();
    run();
    const auto reserve = std::find(pi.ops.begin(), pi.ops.end(), "reserve counter");
    const auto write = std::find(pi.ops.begin(), pi.ops.end(), "write Command");
    EXPECT_LT(reserve - pi.ops.begin(), write - pi.ops.begin());
    ASSERT_EQ(pi.headers.size(), 2U);
    EXPECT_EQ(pi.headers[0].counter, 42U);
    EXPECT_EQ(pi.headers[1].counter, 43U);
}

TEST_F(ExchangeTest, ACounterBelowThePisIsAnsweredReplayed) {
    state.last_counter = 100;
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Refused);
    EXPECT_EQ(out.status, Status::Replayed);
}

TEST_F(ExchangeTest, CounterThatCannotBeStoredStopsBeforeSending) {
    counter_store_fails = true;
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Usage);
    EXPECT_NE(out.message.find("disk full"), std::string::npos);
    EXPECT_EQ(pi.count("write Command"), 0U);
    EXPECT_FALSE(out.command_sent);
}

TEST_F(ExchangeTest, AnUnsyncedPiFarBehindIsExplained) {
    pi.head = {Status::Ok, kNow - 3 * 3600, false};
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Ok);
    EXPECT_EQ(out.clock_note,
              "the Pi's clock is 3 h behind (it has no network time); it learns the time from "
              "your commands");
}

TEST_F(ExchangeTest, ASyncedPiSaysThisComputersClockIsOff) {
    now = kNow + 5 * 60;
    const auto out = run();
    EXPECT_NE(out.clock_note.find("your computer's clock is 5 min off"), std::string::npos)
        << out.clock_note;
}

TEST_F(ExchangeTest, FragmentedNotificationsAreReassembled) {
    pi.mtu = 23;  // 19 bytes per fragment
    const std::string long_output(300, 'x');
    pi.respond = [&](const core::protocol::CommandBody&) {
        return std::pair{Status::Ok, core::protocol::CommandResult{0, long_output}};
    };
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Ok);
    EXPECT_EQ(out.output, long_output);
    EXPECT_EQ(pi.count("read Result"), 0U);
}

TEST_F(ExchangeTest, LostFragmentFallsBackToReadingResult) {
    pi.mtu = 23;
    pi.drop_fragment = 1;
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Ok);
    EXPECT_EQ(out.output, "lights: on\n");
    EXPECT_EQ(pi.count("read Result"), 1U);
}

TEST_F(ExchangeTest, WithoutNotificationsResultIsReadUntilTheAnswerIsThere) {
    pi.notify = false;
    pi.echo_reads = true;       // the read value also comes back as a Value change
    pi.empty_result_reads = 2;  // the action still runs for two reads
    timing.notify_grace = std::chrono::milliseconds(1);
    timing.reread_interval = std::chrono::milliseconds(1);
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Ok);
    EXPECT_EQ(out.output, "lights: on\n");
    EXPECT_EQ(pi.count("read Result"), 3U);
}

TEST_F(ExchangeTest, NoAnswerEndsAtTheResponseTimeoutWithExitFour) {
    pi.never_answer = true;
    timing.notify_grace = std::chrono::milliseconds(1);
    timing.reread_interval = std::chrono::milliseconds(1);
    timing.response_timeout = std::chrono::milliseconds(50);
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::NotFound);
    EXPECT_TRUE(out.command_sent);
    EXPECT_NE(out.message.find("no answer from the Pi within 50 ms"), std::string::npos)
        << out.message;
    EXPECT_NE(out.message.find("the action may have run"), std::string::npos);
}

TEST_F(ExchangeTest, AnotherPisInfoEndsWithWrongPiBeforeAnythingIsSent) {
    PiState other;
    other.pi_id.fill(0x00);
    other.name = "garage";
    pi.info = info_for(other);
    const auto out = run();
    EXPECT_TRUE(out.wrong_pi);
    EXPECT_FALSE(out.command_sent);
    EXPECT_NE(out.message.find("Pi 'garage' (id 00000000...)"), std::string::npos) << out.message;
    EXPECT_EQ(pi.ops, std::vector<std::string>{"read Info"});

    pi.info = R"({"v":1,"name":"kitchen","pi":"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"})";
    pi.ops.clear();
    const auto v1 = run();
    EXPECT_TRUE(v1.wrong_pi);
    EXPECT_NE(v1.message.find("protocol 1, not 2"), std::string::npos) << v1.message;
}

TEST_F(ExchangeTest, LinkLossAfterTheWriteSaysTheActionMayHaveRun) {
    pi.never_answer = true;
    ExchangeRequest req;
    req.credential = credential;
    req.action = action;
    std::optional<ExchangeOutcome> out;
    Exchange ex(loop, pi, std::move(req), hooks(), timing,
                [&out](const ExchangeOutcome& o) { out = o; });
    ex.start();
    loop.run_until([&] { return out.has_value() || pi.write_acked; });
    ASSERT_FALSE(out.has_value());
    ex.link_lost();
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->exit, TriggerExit::Bluetooth);
    EXPECT_TRUE(out->command_sent);
    EXPECT_NE(out->message.find("the action may have run"), std::string::npos) << out->message;
}

// ------------------------------------------------------------------ catalogue

core::protocol::CatalogueEntry entry(std::string name, std::string description) {
    core::protocol::CatalogueEntry e;
    e.name = std::move(name);
    e.description = std::move(description);
    return e;
}

TEST_F(ExchangeTest, TheCatalogueIsReadPageByPageWithAFreshRequestEach) {
    // Long descriptions: four entries of ~110 bytes per page, so 10 need 3 pages.
    for (int i = 0; i < 10; ++i) {
        auto e = entry("action" + std::to_string(i), std::string(100, 'd'));
        if (i == 3) {
            e.confirm = true;
            e.kind = core::protocol::ArgKind::Choices;
            e.max_args = 1;
            e.choices = {"low", "high"};
        }
        pi.catalogue.push_back(e);
    }
    const auto out = catalogue();
    EXPECT_EQ(out.exit, TriggerExit::Ok) << out.message;
    ASSERT_EQ(out.catalogue.size(), 10U);
    for (std::size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(out.catalogue[i].name, "action" + std::to_string(i));
    }
    EXPECT_TRUE(out.catalogue[3].confirm);
    EXPECT_EQ(out.catalogue[3].choices, (std::vector<std::string>{"low", "high"}));
    std::vector<int> firsts;
    for (const auto& r : pi.catalogue_requests) {
        firsts.push_back(r.first);
    }
    EXPECT_EQ(firsts, (std::vector<int>{0, 4, 8}));
    EXPECT_EQ(pi.count("read Challenge"), pi.catalogue_requests.size());
    EXPECT_EQ(pi.count("reserve counter"), pi.catalogue_requests.size());
}

TEST_F(ExchangeTest, AnEmptyCatalogueIsAnAnswerToo) {
    const auto out = catalogue();
    EXPECT_EQ(out.exit, TriggerExit::Ok);
    EXPECT_TRUE(out.catalogue.empty());
    EXPECT_EQ(pi.catalogue_requests.size(), 1U);
}

TEST_F(ExchangeTest, APlainRefusalOfTheCatalogueIsUnauthenticated) {
    pi.refuse = static_cast<std::uint8_t>(Status::UnknownDevice);
    const auto out = catalogue();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("unauthenticated answer: unknown_device"), std::string::npos)
        << out.message;
}

// ------------------------------------------------------------------ bonding

TEST_F(ExchangeTest, BondsOnceWhenThePiRequiresItThenStartsOverWithANewCounter) {
    pi.require_bond = true;
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Ok);
    EXPECT_EQ(pi.count("pair"), 1U);
    EXPECT_EQ(pi.count("write Command"), 1U);
    const auto pair_at = std::find(pi.ops.begin(), pi.ops.end(), "pair");
    const auto subscribe_after = std::find(pair_at, pi.ops.end(), "subscribe Result");
    EXPECT_NE(subscribe_after, pi.ops.end());
    EXPECT_TRUE(std::any_of(notices.begin(), notices.end(), [](const std::string& n) {
        return n.find("bonding") != std::string::npos;
    }));
}

TEST_F(ExchangeTest, WriteRefusedForLackOfBondBondsAndSendsAFreshRequest) {
    // Subscription and challenge are open, only Command needs the bond (the
    // counter of the refused write is skipped, never reused).
    struct Gate : FakePi {
        using FakePi::FakePi;
        void subscribe_result(Notify on_value, Done done) override {
            const bool saved = require_bond;
            require_bond = false;
            FakePi::subscribe_result(std::move(on_value), std::move(done));
            require_bond = saved;
        }
        void read(Chrc chrc, ReadDone done) override {
            const bool saved = require_bond;
            require_bond = false;
            FakePi::read(chrc, std::move(done));
            require_bond = saved;
        }
    };
    Gate gate(loop, state);
    gate.require_bond = true;
    ExchangeRequest req;
    req.credential = credential;
    req.action = action;
    const auto out = run_on(gate, std::move(req));
    EXPECT_EQ(out.exit, TriggerExit::Ok);
    EXPECT_EQ(gate.count("pair"), 1U);
    EXPECT_EQ(gate.count("write Command"), 2U);
    EXPECT_EQ(gate.count("read Challenge"), 2U);
    ASSERT_EQ(gate.commands.size(), 1U);
    EXPECT_EQ(gate.headers.at(0).counter, 43U);  // 42 went to the refused write
    EXPECT_EQ(gate.commands[0].challenge, gate.challenges.at(1));
}

TEST_F(ExchangeTest, BondRefusedByThePiIsABluetoothError) {
    pi.require_bond = true;
    for (const char* name :
         {"org.bluez.Error.AuthenticationRejected", "org.bluez.Error.AuthenticationFailed"}) {
        pi.pair_error = GattError{name, "Authentication Rejected"};
        pi.ops.clear();
        const auto out = run();
        EXPECT_EQ(out.exit, TriggerExit::Bluetooth);
        EXPECT_NE(out.message.find("bond refused by the Pi (is its pairing window open? run "
                                   "`bluezscript pair add` on the Pi)"),
                  std::string::npos)
            << out.message;
        EXPECT_EQ(pi.count("write Command"), 0U);
        EXPECT_EQ(pi.count("reserve counter"), 0U);
    }
}

TEST_F(ExchangeTest, ABondThePiStillRefusesIsNotRetriedForever) {
    // pair() "succeeds" but the Pi keeps refusing: one attempt only.
    struct Stubborn : FakePi {
        using FakePi::FakePi;
        void pair(Done done) override {
            ops.push_back("pair");
            loop_.post([done] { done(nullptr); });
        }
    };
    Stubborn s(loop, state);
    s.require_bond = true;
    ExchangeRequest req;
    req.credential = credential;
    req.action = action;
    const auto out = run_on(s, std::move(req));
    EXPECT_EQ(out.exit, TriggerExit::Bluetooth);
    EXPECT_EQ(s.count("pair"), 1U);
    EXPECT_NE(out.message.find("refuses this computer's bond"), std::string::npos) << out.message;
}

// ------------------------------------------------------------------ pure parts

TEST(ExchangePure, CommandChecksNameTheProblem) {
    EXPECT_EQ(check_command("lights.on", {"a", ""}), "");
    EXPECT_NE(check_command("", {}).find("is not valid"), std::string::npos);
    EXPECT_NE(check_command(".hidden", {}).find("is not valid"), std::string::npos);
    EXPECT_NE(check_command("caf\xC3\xA9", {}).find("is not valid"), std::string::npos);
    EXPECT_NE(check_command(std::string(65, 'a'), {}).find("is not valid"), std::string::npos);
    EXPECT_EQ(check_command(std::string(64, 'a'), {}), "");
    EXPECT_NE(check_command("a", std::vector<std::string>(9, "x")).find("too many arguments: 9"),
              std::string::npos);
    EXPECT_NE(check_command("a", {"ok", "tab\there"}).find("argument 2 contains a control"),
              std::string::npos);
    EXPECT_NE(check_command("a", {std::string(129, 'x')}).find("argument 1 is 129 bytes"),
              std::string::npos);
    // 64-byte action: 362 bytes of arguments incl. length bytes fit, one more does not.
    const std::string act(64, 'a');
    std::vector<std::string> fits = {std::string(128, 'x'), std::string(128, 'x'),
                                     std::string(103, 'x')};
    EXPECT_EQ(check_command(act, fits), "");
    core::protocol::CommandBody body;
    body.action = act;
    body.args = fits;
    const auto keys = core::protocol::device_seal_keys(core::crypto::random_bytes(32));
    Credential c;
    EXPECT_EQ(seal_device_request(c, keys, 1, body).size(), core::protocol::kMaxFrame);
    fits.back().push_back('x');
    EXPECT_NE(check_command(act, fits).find("513-byte request"), std::string::npos);
}

TEST(ExchangePure, InfoParsing) {
    EXPECT_FALSE(parse_info(Bytes{'{', '}'}).has_value());
    PiState s;
    const std::string text = info_for(s, 1234, false);
    const auto info = parse_info(Bytes(text.begin(), text.end()));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->version, 2);
    EXPECT_EQ(info->name, "kitchen");
    EXPECT_EQ(info->pi_id_hex, "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
    EXPECT_TRUE(std::equal(info->pi_public.begin(), info->pi_public.end(), s.key.public_key.begin(),
                           s.key.public_key.end()));
    EXPECT_EQ(info->time, 1234);
    EXPECT_FALSE(info->synced);
    const std::string v1 = R"({"v":1,"name":"pi","pi":"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"})";
    const auto old = parse_info(Bytes(v1.begin(), v1.end()));
    ASSERT_TRUE(old.has_value());
    EXPECT_EQ(old->version, 1);
    const std::string short_pk = R"({"v":2,"name":"pi","pi":"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",)"
                                 R"("pk":"04ab","time":1,"synced":true})";
    EXPECT_FALSE(parse_info(Bytes(short_pk.begin(), short_pk.end())).has_value());
}

TEST(ExchangePure, ClockNotes) {
    using H = core::protocol::ResponseHead;
    EXPECT_EQ(clock_note(H{Status::Ok, 1000, false}, 1000 + 119), "");
    EXPECT_EQ(clock_note(H{Status::Ok, 1000, false}, 1000 + 3 * 3600),
              "the Pi's clock is 3 h behind (it has no network time); it learns the time from "
              "your commands");
    EXPECT_NE(clock_note(H{Status::Ok, 1000 + 600, false}, 1000).find("10 min ahead"),
              std::string::npos);
    EXPECT_EQ(clock_note(H{Status::Ok, 1000, true}, 1000 + 59), "");
    EXPECT_NE(clock_note(H{Status::Ok, 1000, true}, 1000 - 300)
                  .find("your computer's clock is 5 min off"),
              std::string::npos);
}

TEST(ExchangePure, StatusBytesHaveNamesIncludingThePairingOnes) {
    EXPECT_EQ(status_byte_name(0x1D), "code_used");
    EXPECT_EQ(status_byte_name(0x1E), "code_expired");
    EXPECT_EQ(status_byte_name(0x13), "revoked");
    EXPECT_EQ(status_byte_name(0xEE), "status_238");
}

TEST(ExchangePure, BondingErrorsAreRecognised) {
    EXPECT_TRUE(is_bonding_required({"org.bluez.Error.NotPermitted", "Not paired"}));
    EXPECT_TRUE(
        is_bonding_required({"org.bluez.Error.Failed", "Operation failed with ATT error: 0x05"}));
    EXPECT_FALSE(is_bonding_required({"org.bluez.Error.NotPermitted", "Write not permitted"}));
    EXPECT_FALSE(is_bonding_required({"org.bluez.Error.Failed", "Not connected"}));
    EXPECT_TRUE(is_bond_refusal({"org.bluez.Error.AuthenticationRejected", ""}));
    EXPECT_FALSE(is_bond_refusal({"org.bluez.Error.AuthenticationCanceled", ""}));
}

}  // namespace
}  // namespace bzs::client
