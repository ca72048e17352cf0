// SPDX-License-Identifier: GPL-3.0-or-later
// The client's command exchange against a fake Pi transport whose answers are built
// with the real protocol encoder: outcomes, exit codes, refusals of answers that are
// not authenticated or not for this command, fragments, bonding.
#include <gtest/gtest.h>

#include <algorithm>
#include <type_traits>

#include "client/exchange.h"
#include "core/crypto/crypto.h"

namespace bzs::client {
namespace {

using core::protocol::Bytes;
using core::protocol::Status;
using Chrc = GattTransport::Chrc;

constexpr std::int64_t kNow = 1'700'000'010;

core::protocol::Pairing make_pairing() {
    core::protocol::Pairing p;
    p.pi_id.fill(0x5A);
    p.pi_name = "kitchen";
    p.device_id.fill(0x17);
    p.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    return p;
}

std::string info_for(const core::protocol::Pairing& p) {
    return R"({"v":1,"name":")" + p.pi_name + R"(","pi":")" + core::crypto::hex_encode(p.pi_id) +
           "\"}";
}

// A Pi behind the transport interface. It decodes each request with the real
// decoder and answers with a response produced by `respond` (default: ok), MACed
// with the pairing's response key unless `mac_key` is set. Callbacks are posted to
// the loop, as the interface requires.
class FakePi : public GattTransport {
  public:
    FakePi(loop::EventLoop& loop, const core::protocol::Pairing& p)
        : info(info_for(p)), loop_(loop), keys_(core::protocol::derive_keys(p.secret.view())) {}

    // --- behaviour ---
    std::string info;
    bool require_bond = false;
    bool bonded = false;
    std::optional<GattError> pair_error;
    bool notify = true;
    std::size_t mtu = 517;
    std::optional<std::size_t> drop_fragment;  ///< index of a notification that gets lost
    bool echo_reads = false;                   ///< report Result reads as a Value change (BlueZ)
    int empty_result_reads = 0;                ///< Result reads that find no answer yet
    bool never_answer = false;
    std::function<core::protocol::Response(const core::protocol::Request&)> respond;
    std::function<void(core::protocol::Response&)> tamper;  ///< after respond
    std::optional<Bytes> mac_key;                           ///< another key (empty = zero MAC)

    // --- what happened ---
    std::vector<std::string> ops;
    std::vector<core::protocol::Request> requests;
    std::vector<core::protocol::Nonce> challenges;
    bool request_mac_ok = false;
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

    void write_command(core::protocol::ByteView frame, Done done) override {
        ops.push_back("write Command");
        if (require_bond && !bonded) {
            post_error(done, "org.bluez.Error.NotPermitted", "Not paired");
            return;
        }
        auto dec = core::protocol::decode_request(frame);
        EXPECT_TRUE(dec.request.has_value()) << dec.error.detail;
        if (!dec.request) {
            return;
        }
        const Bytes mac = core::crypto::hmac(core::crypto::Hash::Sha256, keys_.request_mac.view(),
                                             frame.first(dec.mac_input_len));
        request_mac_ok = core::crypto::ct_equal(mac, dec.request->mac);
        requests.push_back(*dec.request);
        loop_.post([this, done] {
            done(nullptr);
            write_acked = true;
        });
        if (never_answer) {
            return;
        }
        core::protocol::Response r;
        r.counter = dec.request->counter;
        std::copy_n(dec.request->mac.begin(), core::protocol::kTagLen, r.tag.begin());
        r.status = Status::Ok;
        r.output = "lights: on\n";
        if (respond) {
            r = respond(*dec.request);
        }
        if (tamper) {
            tamper(r);
        }
        result_ = core::protocol::encode_response(
            r, mac_key ? core::protocol::ByteView(*mac_key) : keys_.response_mac.view());
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
    core::protocol::DeviceKeys keys_;
    Notify on_value_;
    bool subscribed_ = false;
    Bytes result_;
};

// One exchange on a fresh loop, with hooks that record what they were asked.
class ExchangeTest : public ::testing::Test {
  protected:
    core::protocol::Pairing pairing = make_pairing();
    loop::EventLoop loop;
    FakePi pi{loop, pairing};
    std::uint64_t next_counter = 41;
    bool counter_store_fails = false;
    std::vector<std::int64_t> accepted_steps;
    std::vector<std::string> notices;
    ExchangeTiming timing;
    std::string action = "lights.on";
    std::vector<std::string> args;
    std::unique_ptr<Exchange> exchange;

    ExchangeOutcome run() {
        ExchangeRequest req{pairing, action, args};
        ExchangeHooks hooks;
        hooks.reserve_counter = [this]() -> std::uint64_t {
            pi.ops.push_back("reserve counter");
            if (counter_store_fails) {
                throw std::runtime_error("disk full");
            }
            return ++next_counter;
        };
        hooks.accepted = [this](std::int64_t step) { accepted_steps.push_back(step); };
        hooks.clock = [] { return kNow; };
        hooks.notice = [this](const std::string& line) { notices.push_back(line); };
        std::optional<ExchangeOutcome> out;
        exchange = std::make_unique<Exchange>(loop, pi, std::move(req), hooks, timing,
                                              [&out](const ExchangeOutcome& o) { out = o; });
        exchange->start();
        loop.run_until([&out] { return out.has_value(); });
        return *out;
    }

    // An answer with `status`, echoing counter and tag (what the real Pi does).
    static core::protocol::Response answer(const core::protocol::Request& req, Status status,
                                           std::string output = {}, std::int32_t exit_code = 0) {
        core::protocol::Response r;
        r.counter = req.counter;
        std::copy_n(req.mac.begin(), core::protocol::kTagLen, r.tag.begin());
        r.status = status;
        r.exit_code = exit_code;
        r.output = output.empty() ? std::string(core::protocol::status_message(status)) : output;
        return r;
    }
};

TEST_F(ExchangeTest, OkAnswerOverNotificationsAfterAFullyAuthenticatedRequest) {
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Ok);
    EXPECT_EQ(out.output, "lights: on\n");
    EXPECT_TRUE(out.message.empty());
    EXPECT_TRUE(out.command_sent);
    EXPECT_EQ(out.status, Status::Ok);

    const std::vector<std::string> expected = {"read Info", "subscribe Result", "read Challenge",
                                               "reserve counter", "write Command"};
    EXPECT_EQ(pi.ops, expected);  // no Result read: the notification carried the answer

    ASSERT_EQ(pi.requests.size(), 1U);
    const auto& req = pi.requests[0];
    EXPECT_TRUE(pi.request_mac_ok);
    EXPECT_EQ(req.device_id, pairing.device_id);
    EXPECT_EQ(req.counter, 42U);
    EXPECT_EQ(req.timestamp, kNow);
    EXPECT_EQ(req.challenge, pi.challenges.at(0));
    EXPECT_EQ(req.totp, core::crypto::totp(pairing.secret.view(), kNow, pairing.totp));
    EXPECT_EQ(req.action, "lights.on");
    EXPECT_TRUE(req.args.empty());
    EXPECT_EQ(accepted_steps, std::vector<std::int64_t>{core::crypto::totp_step(kNow, 30)});
}

TEST_F(ExchangeTest, ArgumentsTravelInTheRequest) {
    action = "volume";
    args = {"42", "", "caf\xC3\xA9"};
    EXPECT_EQ(run().exit, TriggerExit::Ok);
    ASSERT_EQ(pi.requests.size(), 1U);
    EXPECT_EQ(pi.requests[0].action, "volume");
    EXPECT_EQ(pi.requests[0].args, args);
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
        accepted_steps.clear();
        pi.respond = [c](const core::protocol::Request& r) {
            return answer(r, c.status, "partial output\n", c.code);
        };
        const auto out = run();
        EXPECT_EQ(out.exit, TriggerExit::ActionFailed);
        EXPECT_EQ(out.output, "partial output\n");
        EXPECT_NE(out.message.find(c.says), std::string::npos) << out.message;
        EXPECT_NE(out.message.find("action 'lights.on'"), std::string::npos) << out.message;
        EXPECT_EQ(accepted_steps.size(), 1U);  // accepted: reported to the pairing store
    }
}

TEST_F(ExchangeTest, EveryAuthenticatedRefusalIsExitThreeWithThePisReason) {
    for (const Status s :
         {Status::StaleTimestamp, Status::BadTotp, Status::ReusedTotp, Status::Replayed,
          Status::UnknownAction, Status::NotPermitted, Status::BadArguments, Status::Internal,
          Status::RateLimited, Status::Malformed, Status::UnknownDevice}) {
        SCOPED_TRACE(std::string(core::protocol::status_name(s)));
        pi.respond = [s](const core::protocol::Request& r) { return answer(r, s); };
        const auto out = run();
        EXPECT_EQ(out.exit, TriggerExit::Refused);
        EXPECT_EQ(out.status, s);
        EXPECT_TRUE(out.output.empty());
        EXPECT_NE(out.message.find(std::string(core::protocol::status_message(s)) + " (" +
                                   std::string(core::protocol::status_name(s)) + ")"),
                  std::string::npos)
            << out.message;
    }
    EXPECT_TRUE(accepted_steps.empty());  // refusals are not reported as accepted
}

TEST_F(ExchangeTest, ZeroMacAnswerIsNotAuthenticatedAndItsClaimIsNotShown) {
    pi.mac_key = Bytes{};  // the Pi's answer to a device it does not know
    pi.respond = [](const core::protocol::Request& r) { return answer(r, Status::Revoked); };
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("response not authenticated by the Pi"), std::string::npos);
    EXPECT_NE(out.message.find("no MAC"), std::string::npos) << out.message;
    EXPECT_EQ(out.message.find(core::protocol::status_message(Status::Revoked)), std::string::npos);
    EXPECT_FALSE(out.status.has_value());
    EXPECT_TRUE(out.output.empty());
    EXPECT_TRUE(accepted_steps.empty());
}

TEST_F(ExchangeTest, AnswerMacedWithAnotherKeyIsRefused) {
    pi.mac_key = core::crypto::random_bytes(32);
    pi.respond = [](const core::protocol::Request& r) { return answer(r, Status::Ok, "forged\n"); };
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("MAC does not verify"), std::string::npos) << out.message;
    EXPECT_TRUE(out.output.empty());
}

TEST_F(ExchangeTest, AnswerWithAnotherTagIsRefusedAsStale) {
    pi.tamper = [](core::protocol::Response& r) { r.tag[0] ^= 0x01; };
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("stale response"), std::string::npos) << out.message;
    EXPECT_NE(out.message.find("tag"), std::string::npos) << out.message;
    EXPECT_TRUE(out.output.empty());
    // The notification alone did not decide: Result, this link's own answer, did.
    EXPECT_EQ(pi.count("read Result"), 1U);
}

TEST_F(ExchangeTest, AnswerToAnOlderCounterIsRefusedAsStale) {
    pi.tamper = [](core::protocol::Response& r) { r.counter -= 1; };
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::NotAuthenticated);
    EXPECT_NE(out.message.find("stale response: it answers counter 41, this command used 42"),
              std::string::npos)
        << out.message;
}

TEST_F(ExchangeTest, FragmentedNotificationsAreReassembled) {
    pi.mtu = 23;  // 19 bytes per fragment
    const std::string long_output(300, 'x');
    pi.respond = [&](const core::protocol::Request& r) {
        return answer(r, Status::Ok, long_output);
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
    Gate gate(loop, pairing);
    gate.require_bond = true;
    ExchangeRequest req{pairing, action, args};
    ExchangeHooks hooks;
    hooks.reserve_counter = [this] { return ++next_counter; };
    hooks.clock = [] { return kNow; };
    std::optional<ExchangeOutcome> out;
    Exchange ex(loop, gate, std::move(req), hooks, timing,
                [&out](const ExchangeOutcome& o) { out = o; });
    ex.start();
    loop.run_until([&out] { return out.has_value(); });
    EXPECT_EQ(out->exit, TriggerExit::Ok);
    EXPECT_EQ(gate.count("pair"), 1U);
    EXPECT_EQ(gate.count("write Command"), 2U);
    EXPECT_EQ(gate.count("read Challenge"), 2U);
    ASSERT_EQ(gate.requests.size(), 1U);
    EXPECT_EQ(gate.requests[0].counter, 43U);  // 42 went to the refused write
    EXPECT_EQ(gate.requests[0].challenge, gate.challenges.at(1));
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
    pi.pair_error = GattError{"org.bluez.Error.ConnectionAttemptFailed", "Page Timeout"};
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Bluetooth);
    EXPECT_NE(out.message.find("bonding with the Pi failed: "
                               "org.bluez.Error.ConnectionAttemptFailed: Page Timeout"),
              std::string::npos)
        << out.message;
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
    Stubborn s(loop, pairing);
    s.require_bond = true;
    ExchangeHooks hooks;
    hooks.reserve_counter = [this] { return ++next_counter; };
    hooks.clock = [] { return kNow; };
    std::optional<ExchangeOutcome> out;
    Exchange ex(loop, s, ExchangeRequest{pairing, action, args}, hooks, timing,
                [&out](const ExchangeOutcome& o) { out = o; });
    ex.start();
    loop.run_until([&out] { return out.has_value(); });
    EXPECT_EQ(out->exit, TriggerExit::Bluetooth);
    EXPECT_EQ(s.count("pair"), 1U);
    EXPECT_NE(out->message.find("refuses this computer's bond"), std::string::npos) << out->message;
}

TEST_F(ExchangeTest, AnotherPisInfoEndsWithWrongPiBeforeAnythingIsSent) {
    pi.info = R"({"v":1,"name":"garage","pi":"00112233445566778899aabbccddeeff"})";
    const auto out = run();
    EXPECT_TRUE(out.wrong_pi);
    EXPECT_FALSE(out.command_sent);
    EXPECT_NE(out.message.find("Pi 'garage' (id 00112233...)"), std::string::npos) << out.message;
    EXPECT_EQ(pi.ops, std::vector<std::string>{"read Info"});

    pi.info = "not json";
    pi.ops.clear();
    const auto again = run();
    EXPECT_TRUE(again.wrong_pi);
    EXPECT_NE(again.message.find("not BlueZscript protocol 1"), std::string::npos);
}

TEST_F(ExchangeTest, CounterThatCannotBeStoredStopsBeforeSending) {
    counter_store_fails = true;
    const auto out = run();
    EXPECT_EQ(out.exit, TriggerExit::Usage);
    EXPECT_NE(out.message.find("disk full"), std::string::npos);
    EXPECT_EQ(pi.count("write Command"), 0U);
    EXPECT_FALSE(out.command_sent);
}

TEST_F(ExchangeTest, LinkLossAfterTheWriteSaysTheActionMayHaveRun) {
    pi.never_answer = true;
    ExchangeRequest req{pairing, action, args};
    ExchangeHooks hooks;
    hooks.reserve_counter = [this] { return ++next_counter; };
    hooks.clock = [] { return kNow; };
    std::optional<ExchangeOutcome> out;
    Exchange ex(loop, pi, std::move(req), hooks, timing,
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
    // 64-byte action: 360 bytes of arguments incl. length bytes fit, one more does not.
    const std::string act(64, 'a');
    std::vector<std::string> fits = {std::string(128, 'x'), std::string(128, 'x'),
                                     std::string(101, 'x')};
    EXPECT_EQ(check_command(act, fits), "");
    fits.back().push_back('x');
    EXPECT_NE(check_command(act, fits).find("513-byte request"), std::string::npos);
}

TEST(ExchangePure, InfoParsing) {
    const auto ok = parse_info(Bytes{'{', '}'});
    EXPECT_FALSE(ok.has_value());
    const std::string text = R"({"v":1,"name":"pi","pi":"5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A"})";
    const auto info = parse_info(Bytes(text.begin(), text.end()));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->name, "pi");
    EXPECT_EQ(info->pi_id_hex, "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
    const std::string v2 = R"({"v":2,"name":"pi","pi":"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"})";
    EXPECT_FALSE(parse_info(Bytes(v2.begin(), v2.end())).has_value());
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
