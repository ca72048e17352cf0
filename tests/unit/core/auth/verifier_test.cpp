// SPDX-License-Identifier: GPL-3.0-or-later
// The verifier: every refusal reason, the order of checks, replay state, rate
// limits and lockouts. The clock is injected through VerifyInput::now and frames
// are built with encode_request and crypto::totp, as a phone would.
#include "core/auth/verifier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace bzs::core::auth {
namespace {

using core::protocol::Bytes;
using core::protocol::Request;

// A multiple of 30, so that kNow - 30 and kNow + 30 are the neighbouring TOTP steps.
constexpr std::int64_t kNow = 1'700'000'010;
constexpr std::int64_t kStep = kNow / 30;

// Members are public so that the table-driven test can build cases from lambdas.
class VerifierTest : public ::testing::Test {
  public:
    VerifierTest() {
        secret_.resize(32);
        for (std::size_t i = 0; i < secret_.size(); ++i) {
            secret_[i] = static_cast<std::uint8_t>(0xE1 ^ (i * 29));
        }
        for (std::size_t i = 0; i < 16; ++i) {
            dev_.id[i] = static_cast<std::uint8_t>(0x40 + i);
            challenge_[i] = static_cast<std::uint8_t>(0x90 + 3 * i);
        }
        dev_.name = "phone";
        dev_.secret = core::crypto::SecretBytes(secret_);
        dev_.permitted_actions = {"lights.on", "echo", "free", "badpattern"};
        rules_["lights.on"] = ActionRules{};
        rules_["echo"] = ActionRules{true, std::string("[a-z]+")};
        rules_["free"] = ActionRules{true, std::nullopt};
        rules_["badpattern"] = ActionRules{true, std::string("([a-z")};
        rules_["secret-room"] = ActionRules{};  // exists, but this device may not run it

        in_.now = kNow;
        in_.device = &dev_;
        in_.expected_challenge = challenge_;
        in_.replay.last_counter = 10;
        in_.replay.last_totp_step = kStep - 5;
        in_.actions = [this](const std::string& name) -> std::optional<ActionRules> {
            const auto it = rules_.find(name);
            return it == rules_.end() ? std::nullopt : std::optional<ActionRules>(it->second);
        };
    }

    // A valid request for `in_` as it stands: next counter, the Pi's time, the
    // issued challenge and the current code.
    Request request(const std::string& action = "lights.on",
                    std::vector<std::string> args = {}) const {
        Request r;
        r.device_id = dev_.id;
        r.counter = in_.replay.last_counter + 1;
        r.timestamp = in_.now;
        r.challenge = challenge_;
        r.totp = code_at(in_.now);
        r.action = action;
        r.args = std::move(args);
        return r;
    }
    [[nodiscard]] std::uint32_t code_at(std::int64_t t) const {
        return core::crypto::totp(secret_, t, dev_.totp);
    }
    [[nodiscard]] Bytes frame(const Request& r) const {
        return core::protocol::encode_request(
            r, core::protocol::derive_keys(secret_).request_mac.view());
    }

    // Runs the verifier and checks what must hold for every decision.
    Decision run(const Bytes& f) {
        const Decision d = verify(f, core::protocol::decode_request(f), in_);
        expect_no_secret(d.detail);
        EXPECT_FALSE(d.detail.empty());
        if (d.accepted()) {
            EXPECT_TRUE(d.request);
            EXPECT_TRUE(d.matched_step);
        } else {
            // Refusals never advance the replay state.
            EXPECT_EQ(d.replay.last_counter, in_.replay.last_counter) << d.detail;
            EXPECT_EQ(d.replay.last_totp_step, in_.replay.last_totp_step) << d.detail;
            EXPECT_FALSE(d.request) << d.detail;
        }
        return d;
    }
    Decision run(const Request& r) { return run(frame(r)); }

    void expect_no_secret(const std::string& detail) const {
        const auto keys = core::protocol::derive_keys(secret_);
        for (const std::string& s :
             {core::crypto::hex_encode(secret_), core::crypto::base32_encode(secret_, false),
              core::crypto::hex_encode(keys.request_mac.view()),
              core::crypto::hex_encode(keys.response_mac.view())}) {
            for (std::size_t i = 0; i + 8 <= s.size(); i += 4) {
                EXPECT_EQ(detail.find(s.substr(i, 8)), std::string::npos) << detail;
            }
        }
    }

    // Feeds a decision's state back, as the store would persist it.
    void carry(const Decision& d) {
        in_.replay = d.replay;
        in_.device_rate = d.device_rate;
        in_.global_rate = d.global_rate;
    }

    Bytes secret_;
    DeviceRecord dev_;
    core::protocol::Nonce challenge_{};
    std::map<std::string, ActionRules> rules_;
    VerifyInput in_;
};

TEST_F(VerifierTest, Accepted) {
    const Decision d = run(request());
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    EXPECT_TRUE(d.accepted());
    EXPECT_EQ(d.detail, "accepted");
    EXPECT_EQ(d.request->action, "lights.on");
    EXPECT_EQ(d.matched_step, kStep);
    EXPECT_EQ(d.replay.last_counter, 11U);
    EXPECT_EQ(d.replay.last_totp_step, kStep);
    EXPECT_EQ(d.device_rate.consecutive_failures, 0U);
    EXPECT_EQ(d.global_rate.attempts, 1U);
    EXPECT_EQ(d.global_rate.failures, 0U);
}

TEST_F(VerifierTest, CountersMayJump) {
    Request r = request();
    r.counter = 1'000'000;
    const Decision d = run(r);
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    EXPECT_EQ(d.replay.last_counter, 1'000'000U);
}

TEST_F(VerifierTest, Malformed) {
    Bytes f = frame(request());
    f.pop_back();
    f.pop_back();
    const Decision d = run(f);
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_EQ(d.device_rate.consecutive_failures, 0U);
    EXPECT_EQ(d.global_rate.failures, 1U);
}

TEST_F(VerifierTest, UnknownVersion) {
    Bytes f = frame(request());
    f[0] = 2;
    const Decision d = run(f);
    EXPECT_EQ(d.status, Status::UnknownVersion);
    EXPECT_NE(d.detail.find("version 2"), std::string::npos);
}

TEST_F(VerifierTest, UnknownDevice) {
    in_.device = nullptr;
    const Decision d = run(request());
    EXPECT_EQ(d.status, Status::UnknownDevice);
    EXPECT_EQ(d.global_rate.failures, 1U);
}

TEST_F(VerifierTest, Revoked) {
    dev_.revoked = true;
    const Decision d = run(request());
    EXPECT_EQ(d.status, Status::Revoked);
    EXPECT_EQ(d.device_rate.consecutive_failures, 0U);
}

TEST_F(VerifierTest, BadMacWhenTheActionNameIsChanged) {
    Bytes f = frame(request());
    ASSERT_EQ(f[55], 'l');  // first byte of "lights.on"
    f[55] = 'n';            // "nights.on": still a well-formed name
    ASSERT_TRUE(core::protocol::decode_request(f).request);
    const Decision d = run(f);
    EXPECT_EQ(d.status, Status::BadMac);
    EXPECT_EQ(d.detail, "request MAC does not verify");
}

// Swapping in another permitted action of the same length keeps the frame valid
// but not its MAC: the action cannot be exchanged in transit.
TEST_F(VerifierTest, BadMacWhenActionOrArgsAreSwapped) {
    const Bytes good = frame(request("echo", {"abc"}));
    Bytes swapped = good;
    const std::string other = "free";
    std::copy(other.begin(), other.end(), swapped.begin() + 55);
    ASSERT_EQ(core::protocol::decode_request(swapped).request->action, "free");
    EXPECT_EQ(run(swapped).status, Status::BadMac);

    Bytes arg = good;
    arg[arg.size() - core::protocol::kMacLen - 1] = 'd';  // "abd"
    ASSERT_EQ(core::protocol::decode_request(arg).request->args.at(0), "abd");
    EXPECT_EQ(run(arg).status, Status::BadMac);
}

TEST_F(VerifierTest, EveryAlteredByteThatStillDecodesIsBadMac) {
    const Bytes good = frame(request("echo", {"abc", "de"}));
    for (std::size_t i = 0; i < good.size(); ++i) {
        Bytes f = good;
        f[i] ^= 0x01;
        const auto decoded = core::protocol::decode_request(f);
        if (!decoded.request) {
            continue;  // refused as malformed before any MAC check
        }
        const Decision d = verify(f, decoded, in_);
        EXPECT_EQ(d.status, Status::BadMac) << "byte " << i;
    }
}

TEST_F(VerifierTest, BadMacWithAnotherDevicesSecret) {
    const Request r = request();
    const Bytes f = core::protocol::encode_request(
        r, core::protocol::derive_keys(Bytes(32, 0x11)).request_mac.view());
    EXPECT_EQ(run(f).status, Status::BadMac);
}

TEST_F(VerifierTest, TimestampWithin300SecondsEitherWay) {
    for (std::int64_t off : {-300, 300, -1, 1}) {
        Request r = request();
        r.timestamp = kNow + off;
        EXPECT_EQ(run(r).status, Status::Ok) << off;
    }
    for (std::int64_t off : {-301, 301, -100000, 100000}) {
        Request r = request();
        r.timestamp = kNow + off;
        const Decision d = run(r);
        EXPECT_EQ(d.status, Status::StaleTimestamp) << off;
        EXPECT_NE(d.detail.find(std::to_string(off) + " s from the Pi's clock"), std::string::npos)
            << d.detail;
    }
}

TEST_F(VerifierTest, ExtremeTimestampsAreStale) {
    for (std::int64_t ts :
         {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}) {
        Request r = request();
        r.timestamp = ts;
        EXPECT_EQ(run(r).status, Status::StaleTimestamp) << ts;
    }
}

TEST_F(VerifierTest, ClockSkewPolicyIsHonoured) {
    in_.policy.max_clock_skew_seconds = 30;
    Request r = request();
    r.timestamp = kNow + 31;
    EXPECT_EQ(run(r).status, Status::StaleTimestamp);
    r.timestamp = kNow - 30;
    EXPECT_EQ(run(r).status, Status::Ok);
}

TEST_F(VerifierTest, BadTotp) {
    Request r = request();
    r.totp = (r.totp + 1) % 1'000'000;
    const Decision d = run(r);
    EXPECT_EQ(d.status, Status::BadTotp);
    EXPECT_EQ(d.detail.find(core::crypto::format_code(code_at(kNow), 6)), std::string::npos);
}

TEST_F(VerifierTest, TotpOneStepEitherSideAccepted) {
    for (int steps : {-1, 1}) {
        Request r = request();
        r.totp = code_at(kNow + 30 * steps);
        const Decision d = run(r);
        EXPECT_EQ(d.status, Status::Ok) << steps;
        EXPECT_EQ(d.matched_step, kStep + steps);
        EXPECT_EQ(d.replay.last_totp_step, kStep + steps);
    }
}

TEST_F(VerifierTest, TotpTwoStepsAwayRejected) {
    for (int steps : {-2, 2}) {
        Request r = request();
        r.totp = code_at(kNow + 30 * steps);
        EXPECT_EQ(run(r).status, Status::BadTotp) << steps;
    }
}

TEST_F(VerifierTest, TotpWindowPolicyIsHonoured) {
    in_.policy.totp_window = 0;
    Request r = request();
    r.totp = code_at(kNow - 30);
    EXPECT_EQ(run(r).status, Status::BadTotp);
    in_.policy.totp_window = 2;
    r.totp = code_at(kNow - 60);
    EXPECT_EQ(run(r).status, Status::Ok);
}

// The step is checked against the Pi's clock, not the frame's timestamp.
TEST_F(VerifierTest, TotpUsesThePisClock) {
    Request r = request();
    r.timestamp = kNow + 200;  // within the skew limit
    r.totp = code_at(kNow + 200);
    EXPECT_EQ(run(r).status, Status::BadTotp);
}

TEST_F(VerifierTest, TotpFromOtherTotpParameters) {
    dev_.totp.hash = core::crypto::Hash::Sha256;
    dev_.totp.digits = 8;
    dev_.totp.step_seconds = 60;
    in_.replay.last_totp_step = kNow / 60 - 1;  // steps count in 60 s units now
    const Decision ok = run(request());
    ASSERT_EQ(ok.status, Status::Ok) << ok.detail;
    EXPECT_EQ(ok.matched_step, kNow / 60);
    Request r = request();
    r.totp = core::crypto::totp(secret_, kNow);  // SHA1, 6 digits, 30 s: not this device's
    EXPECT_EQ(run(r).status, Status::BadTotp);
}

TEST_F(VerifierTest, ReusedTotpSameStep) {
    in_.replay.last_totp_step = kStep;
    const Decision d = run(request());
    EXPECT_EQ(d.status, Status::ReusedTotp);
    EXPECT_NE(d.detail.find(std::to_string(kStep)), std::string::npos);
}

TEST_F(VerifierTest, ReusedTotpOlderStep) {
    in_.replay.last_totp_step = kStep;
    Request r = request();
    r.totp = code_at(kNow - 30);
    EXPECT_EQ(run(r).status, Status::ReusedTotp);
}

// After a command used step s+1 (a phone clock a little ahead), the current
// step s is used up too: steps only move forward.
TEST_F(VerifierTest, OneAcceptedCommandPerStep) {
    Request r = request();
    r.totp = code_at(kNow + 30);
    const Decision first = run(r);
    ASSERT_EQ(first.status, Status::Ok);
    carry(first);
    EXPECT_EQ(run(request()).status, Status::ReusedTotp);
    in_.now = kNow + 60;
    EXPECT_EQ(run(request()).status, Status::Ok);
}

TEST_F(VerifierTest, ReplayedCounterEqualOrLower) {
    for (std::uint64_t c : {10U, 9U, 0U}) {
        Request r = request();
        r.counter = c;
        const Decision d = run(r);
        EXPECT_EQ(d.status, Status::Replayed) << c;
        EXPECT_NE(d.detail.find("not above the last accepted 10"), std::string::npos);
    }
}

TEST_F(VerifierTest, TheSameFrameTwiceIsReplayed) {
    const Bytes f = frame(request());
    const Decision first = run(f);
    ASSERT_EQ(first.status, Status::Ok);
    carry(first);
    EXPECT_EQ(run(f).status, Status::Replayed);
}

TEST_F(VerifierTest, WrongChallenge) {
    Request r = request();
    r.challenge[0] ^= 0xFF;
    const Decision d = run(r);
    EXPECT_EQ(d.status, Status::Replayed);
    EXPECT_NE(d.detail.find("challenge does not match"), std::string::npos);
}

TEST_F(VerifierTest, MissingChallengeWhenRequired) {
    in_.expected_challenge.reset();
    const Decision d = run(request());
    EXPECT_EQ(d.status, Status::Replayed);
    EXPECT_NE(d.detail.find("no live challenge"), std::string::npos);
}

TEST_F(VerifierTest, NoChallengeNeededWhenNotRequired) {
    in_.expected_challenge.reset();
    in_.policy.require_challenge = false;
    Request r = request();
    r.challenge = {};
    EXPECT_EQ(run(r).status, Status::Ok);
    // An issued challenge is still checked when the policy does not require one.
    in_.expected_challenge = challenge_;
    EXPECT_EQ(run(r).status, Status::Replayed);
}

TEST_F(VerifierTest, UnknownAction) {
    const Decision d = run(request("nosuch"));
    EXPECT_EQ(d.status, Status::UnknownAction);
    EXPECT_NE(d.detail.find("'nosuch'"), std::string::npos);
    in_.actions = nullptr;
    EXPECT_EQ(run(request()).status, Status::UnknownAction);
}

TEST_F(VerifierTest, NotPermitted) {
    const Decision d = run(request("secret-room"));
    EXPECT_EQ(d.status, Status::NotPermitted);
    EXPECT_NE(d.detail.find("'secret-room'"), std::string::npos);
}

TEST_F(VerifierTest, ArgumentsToAnActionWithoutAllowArgs) {
    const Decision d = run(request("lights.on", {"x"}));
    EXPECT_EQ(d.status, Status::BadArguments);
    EXPECT_EQ(d.detail, "the action takes no arguments");
}

TEST_F(VerifierTest, ArgumentPatternMustMatchWholeArgument) {
    EXPECT_EQ(run(request("echo", {"abc", "xyz"})).status, Status::Ok);
    for (const auto& [args, index] : std::vector<std::pair<std::vector<std::string>, int>>{
             {{"ab1"}, 0}, {{"abc1"}, 0}, {{"1abc"}, 0}, {{""}, 0}, {{"abc", "ABC"}, 1}}) {
        const Decision d = run(request("echo", args));
        EXPECT_EQ(d.status, Status::BadArguments) << args.back();
        EXPECT_NE(d.detail.find("argument " + std::to_string(index) + " does not match"),
                  std::string::npos)
            << d.detail;
    }
}

TEST_F(VerifierTest, ArgumentCountLimitOfTheAction) {
    rules_["free"].max_args = 2;
    EXPECT_EQ(run(request("free", {"a", "b"})).status, Status::Ok);
    const Decision d = run(request("free", {"a", "b", "c"}));
    EXPECT_EQ(d.status, Status::BadArguments);
    EXPECT_EQ(d.detail, "3 arguments given; the action takes at most 2");
    EXPECT_EQ(d.device_rate.consecutive_failures, 0U);
}

TEST_F(VerifierTest, AllowArgsWithoutPatternAcceptsAny) {
    EXPECT_EQ(run(request("free", {"Any thing", "--x=1", "\xe2\x98\x95"})).status, Status::Ok);
}

TEST_F(VerifierTest, InvalidPatternRefusesArguments) {
    const Decision d = run(request("badpattern", {"abc"}));
    EXPECT_EQ(d.status, Status::BadArguments);
    EXPECT_EQ(d.detail, "the action's argument pattern is invalid");
    EXPECT_EQ(run(request("badpattern")).status, Status::Ok);  // no args, no pattern needed
}

// The first failing check wins, in the documented order.
TEST_F(VerifierTest, OrderOfChecks) {
    // revoked before MAC
    dev_.revoked = true;
    Bytes f = frame(request());
    f[55] = 'n';
    EXPECT_EQ(run(f).status, Status::Revoked);
    dev_.revoked = false;
    // MAC before timestamp
    Request r = request();
    r.timestamp = kNow + 1000;
    f = frame(r);
    f[55] = 'n';
    EXPECT_EQ(run(f).status, Status::BadMac);
    // timestamp before counter
    r = request();
    r.timestamp = kNow + 1000;
    r.counter = 1;
    EXPECT_EQ(run(r).status, Status::StaleTimestamp);
    // counter before challenge (both "replayed"; the detail tells which)
    r = request();
    r.counter = 1;
    r.challenge = {};
    EXPECT_NE(run(r).detail.find("counter"), std::string::npos);
    // challenge before TOTP
    r = request();
    r.challenge = {};
    r.totp = 0;
    EXPECT_NE(run(r).detail.find("challenge"), std::string::npos);
    // TOTP before action
    r = request("nosuch");
    r.totp = (r.totp + 1) % 1'000'000;
    EXPECT_EQ(run(r).status, Status::BadTotp);
    // unknown action before permission; permission before arguments
    EXPECT_EQ(run(request("nosuch", {"1"})).status, Status::UnknownAction);
    EXPECT_EQ(run(request("secret-room", {"1"})).status, Status::NotPermitted);
}

// Which refusals count towards the device's lockout: those that say the sender
// does not hold the secret or is replaying; not those about the action, and not
// those that never reached authentication.
TEST_F(VerifierTest, WhichFailuresCountTowardsTheDevice) {
    struct Case {
        const char* name;
        std::function<Bytes(VerifierTest&)> make;
        Status status;
        bool counts;
    };
    const std::vector<Case> cases = {
        {"malformed",
         [](VerifierTest&) {
             return Bytes{1, 1, 0};
         },
         Status::Malformed, false},
        {"unknown_version",
         [](VerifierTest& t) {
             Bytes f = t.frame(t.request());
             f[0] = 9;
             return f;
         },
         Status::UnknownVersion, false},
        {"bad_mac",
         [](VerifierTest& t) {
             Bytes f = t.frame(t.request());
             f[55] = 'n';
             return f;
         },
         Status::BadMac, true},
        {"stale_timestamp",
         [](VerifierTest& t) {
             Request r = t.request();
             r.timestamp += 301;
             return t.frame(r);
         },
         Status::StaleTimestamp, true},
        {"replayed counter",
         [](VerifierTest& t) {
             Request r = t.request();
             r.counter = 3;
             return t.frame(r);
         },
         Status::Replayed, true},
        {"replayed challenge",
         [](VerifierTest& t) {
             Request r = t.request();
             r.challenge[5] ^= 1;
             return t.frame(r);
         },
         Status::Replayed, true},
        {"bad_totp",
         [](VerifierTest& t) {
             Request r = t.request();
             r.totp = t.code_at(kNow + 90);
             return t.frame(r);
         },
         Status::BadTotp, true},
        {"reused_totp",
         [](VerifierTest& t) {
             Request r = t.request();
             r.totp = t.code_at(kNow - 30);
             t.in_.replay.last_totp_step = kStep - 1;
             return t.frame(r);
         },
         Status::ReusedTotp, true},
        {"unknown_action", [](VerifierTest& t) { return t.frame(t.request("nosuch")); },
         Status::UnknownAction, false},
        {"not_permitted", [](VerifierTest& t) { return t.frame(t.request("secret-room")); },
         Status::NotPermitted, false},
        {"bad_arguments", [](VerifierTest& t) { return t.frame(t.request("echo", {"1"})); },
         Status::BadArguments, false},
    };
    for (const auto& c : cases) {
        VerifierTest& t = *this;
        t.in_.replay = {10, kStep - 5};
        t.in_.device_rate = {};
        t.in_.global_rate = {};
        const Bytes f = c.make(t);
        const Decision d = run(f);
        EXPECT_EQ(d.status, c.status) << c.name;
        EXPECT_EQ(d.device_rate.consecutive_failures, c.counts ? 1U : 0U) << c.name;
        EXPECT_EQ(d.global_rate.failures, 1U) << c.name;  // every refusal counts Pi-wide
    }
}

TEST_F(VerifierTest, DeviceLockoutAfterFiveFailures) {
    Bytes bad = frame(request());
    bad[55] = 'n';
    for (std::uint32_t i = 1; i <= 5; ++i) {
        const Decision d = run(bad);
        EXPECT_EQ(d.status, Status::BadMac);
        carry(d);
        if (i < 5) {
            EXPECT_EQ(in_.device_rate.consecutive_failures, i);
            EXPECT_EQ(in_.device_rate.locked_until, 0);
        }
    }
    EXPECT_EQ(in_.device_rate.locked_until, kNow + 30);
    EXPECT_EQ(in_.device_rate.lockouts, 1U);

    // Locked: even a valid command is refused, and that refusal counts nothing.
    const Decision locked = run(request());
    EXPECT_EQ(locked.status, Status::RateLimited);
    EXPECT_NE(locked.detail.find("locked out for 30 s"), std::string::npos) << locked.detail;
    EXPECT_EQ(locked.device_rate.consecutive_failures, in_.device_rate.consecutive_failures);
    EXPECT_EQ(locked.global_rate.failures, in_.global_rate.failures);
    in_.now = kNow + 29;
    EXPECT_EQ(run(request()).status, Status::RateLimited);

    in_.now = kNow + 30;
    const Decision ok = run(request());
    ASSERT_EQ(ok.status, Status::Ok) << ok.detail;
    EXPECT_EQ(ok.device_rate.lockouts, 0U);
    EXPECT_EQ(ok.device_rate.locked_until, 0);
}

TEST_F(VerifierTest, LockoutDoublesEachRoundUpToTheMaximum) {
    in_.policy.limits.device_lockout_max_seconds = 100;
    Bytes bad = frame(request());
    bad[55] = 'n';
    std::int64_t t = kNow;
    for (std::int64_t expected : {30, 60, 100, 100}) {
        in_.now = t;
        for (int i = 0; i < 5; ++i) {
            const Decision d = run(bad);
            ASSERT_EQ(d.status, Status::BadMac);
            carry(d);
        }
        EXPECT_EQ(in_.device_rate.locked_until, t + expected);
        t += expected + 61;  // past the lockout and into a fresh global window
    }
}

TEST_F(VerifierTest, SuccessResetsFailuresAndLockouts) {
    Bytes bad = frame(request());
    bad[55] = 'n';
    in_.device_rate.lockouts = 3;
    for (int i = 0; i < 4; ++i) {
        carry(run(bad));
    }
    EXPECT_EQ(in_.device_rate.consecutive_failures, 4U);
    const Decision ok = run(request());
    ASSERT_EQ(ok.status, Status::Ok);
    carry(ok);
    EXPECT_EQ(in_.device_rate.consecutive_failures, 0U);
    EXPECT_EQ(in_.device_rate.lockouts, 0U);
    // Four more failures do not lock: the count started again.
    for (int i = 0; i < 4; ++i) {
        carry(run(bad));
    }
    EXPECT_EQ(in_.device_rate.locked_until, 0);
    // A fifth locks for the first-round 30 s again, not 240 s.
    carry(run(bad));
    EXPECT_EQ(in_.device_rate.locked_until, kNow + 30);
}

// Refusals about the action do not reset the failure count either.
TEST_F(VerifierTest, ActionRefusalsNeitherCountNorReset) {
    in_.device_rate.consecutive_failures = 3;
    const Decision d = run(request("nosuch"));
    EXPECT_EQ(d.status, Status::UnknownAction);
    EXPECT_EQ(d.device_rate.consecutive_failures, 3U);
}

TEST_F(VerifierTest, GlobalAttemptLimit) {
    in_.policy.limits.global_max_attempts_per_minute = 3;
    in_.device = nullptr;
    for (int i = 0; i < 3; ++i) {
        const Decision d = run(request());
        EXPECT_EQ(d.status, Status::UnknownDevice);
        carry(d);
    }
    in_.device = &dev_;
    const Decision limited = run(request());
    EXPECT_EQ(limited.status, Status::RateLimited);
    EXPECT_EQ(limited.detail, "the Pi-wide attempt limit is reached");
    EXPECT_EQ(limited.global_rate.failures, 3U);  // a rate-limited attempt is not a failure
    EXPECT_EQ(limited.device_rate.consecutive_failures, 0U);
    carry(limited);
    in_.now = kNow + 59;
    EXPECT_EQ(run(request()).status, Status::RateLimited);
    in_.now = kNow + 60;  // a new one-minute window
    EXPECT_EQ(run(request()).status, Status::Ok);
}

TEST_F(VerifierTest, GlobalFailureLockout) {
    in_.policy.limits.global_max_failures_per_minute = 3;
    in_.policy.limits.global_lockout_seconds = 45;
    Bytes bad = frame(request());
    bad[55] = 'n';
    for (int i = 0; i < 3; ++i) {
        carry(run(bad));
    }
    EXPECT_EQ(in_.global_rate.locked_until, kNow + 45);
    EXPECT_EQ(in_.device_rate.locked_until, 0);  // the device's own limit is 5

    const Decision d = run(request());
    EXPECT_EQ(d.status, Status::RateLimited);
    EXPECT_EQ(d.detail, "the Pi-wide attempt limit is reached");
    // A frame that does not decode is still reported as such while locked.
    EXPECT_EQ(run(Bytes{1}).status, Status::Malformed);
    in_.now = kNow + 44;
    EXPECT_EQ(run(request()).status, Status::RateLimited);
    in_.now = kNow + 45;
    EXPECT_EQ(run(request()).status, Status::Ok);
}

TEST(RateLimit, GlobalWindowRollsAfterSixtySeconds) {
    GlobalRateState g;
    RateLimitPolicy p;
    p.global_max_attempts_per_minute = 2;
    EXPECT_TRUE(ratelimit::admit_global(g, 1000, p));
    EXPECT_TRUE(ratelimit::admit_global(g, 1030, p));
    EXPECT_FALSE(ratelimit::admit_global(g, 1059, p));
    EXPECT_TRUE(ratelimit::admit_global(g, 1060, p));
    EXPECT_EQ(g.window_start, 1060);
    EXPECT_EQ(g.attempts, 1U);
    // A clock that went backwards starts a new window rather than blocking.
    EXPECT_TRUE(ratelimit::admit_global(g, 500, p));
    EXPECT_EQ(g.window_start, 500);
}

}  // namespace
}  // namespace bzs::core::auth
