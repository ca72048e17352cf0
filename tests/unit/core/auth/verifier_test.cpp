// SPDX-License-Identifier: GPL-3.0-or-later
// The verifier: every refusal reason, the order of checks, replay state, no
// cooldown and the unsynchronised clock's advance. The clock is injected through VerifyInput::now
// and frames are built with encode_request and crypto::totp, as a phone would.
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
constexpr std::int64_t kDay = 86400;

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
    void carry(const Decision& d) { in_.replay = d.replay; }

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
    EXPECT_EQ(d.verified_at, kNow);
    EXPECT_FALSE(d.clock_advanced_to);
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
    EXPECT_FALSE(d.mac_verified);
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
}

TEST_F(VerifierTest, Revoked) {
    dev_.revoked = true;
    const Decision d = run(request());
    EXPECT_EQ(d.status, Status::Revoked);
    EXPECT_FALSE(d.mac_verified);
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
        const std::string want = std::to_string(off < 0 ? -off : off) + " s " +
                                 (off < 0 ? "behind" : "ahead of") + " the Pi's clock";
        EXPECT_NE(d.detail.find(want), std::string::npos) << d.detail;
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
    const Decision ok = run(request());
    ASSERT_EQ(ok.status, Status::Ok) << ok.detail;
    EXPECT_EQ(ok.matched_step, kNow / 60);
    Request r = request();
    r.totp = core::crypto::totp(secret_, kNow);  // SHA1, 6 digits, 30 s: not this device's
    EXPECT_EQ(run(r).status, Status::BadTotp);
}

// No cooldown: one TOTP step serves any number of commands, in any order of
// steps inside the window; only counter and challenge make a frame single-use.
TEST_F(VerifierTest, OneStepServesManyCommands) {
    for (int i = 0; i < 3; ++i) {
        const Decision d = run(request());
        ASSERT_EQ(d.status, Status::Ok) << i << ": " << d.detail;
        EXPECT_EQ(d.matched_step, kStep);
        carry(d);
    }
    EXPECT_EQ(in_.replay.last_counter, 13U);
}

TEST_F(VerifierTest, AnEarlierStepAfterALaterOneIsAccepted) {
    Request r = request();
    r.totp = code_at(kNow + 30);
    const Decision first = run(r);
    ASSERT_EQ(first.status, Status::Ok) << first.detail;
    carry(first);
    r = request();
    r.totp = code_at(kNow - 30);
    const Decision second = run(r);
    EXPECT_EQ(second.status, Status::Ok) << second.detail;
    EXPECT_EQ(second.matched_step, kStep - 1);
}

// Two commands one second apart both run; replaying either is still refused.
TEST_F(VerifierTest, TwoCommandsOneSecondApartThenReplays) {
    const Bytes a = frame(request());
    const Decision da = run(a);
    ASSERT_EQ(da.status, Status::Ok) << da.detail;
    carry(da);
    in_.now = kNow + 1;
    const Bytes b = frame(request());
    const Decision db = run(b);
    ASSERT_EQ(db.status, Status::Ok) << db.detail;
    carry(db);
    EXPECT_EQ(run(a).status, Status::Replayed);
    EXPECT_EQ(run(b).status, Status::Replayed);
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

// The first failing check wins, in the documented order: decode, device known,
// not revoked, MAC, counter, challenge, timestamp, TOTP, action, permitted, args.
TEST_F(VerifierTest, OrderOfChecks) {
    // unknown device before revoked and MAC
    in_.device = nullptr;
    EXPECT_EQ(run(request()).status, Status::UnknownDevice);
    in_.device = &dev_;
    // revoked before MAC
    dev_.revoked = true;
    Bytes f = frame(request());
    f[55] = 'n';
    EXPECT_EQ(run(f).status, Status::Revoked);
    dev_.revoked = false;
    // MAC before counter
    Request r = request();
    r.counter = 1;
    f = frame(r);
    f[55] = 'n';
    EXPECT_EQ(run(f).status, Status::BadMac);
    // counter before challenge (both "replayed"; the detail tells which)
    r = request();
    r.counter = 1;
    r.challenge = {};
    EXPECT_NE(run(r).detail.find("counter"), std::string::npos);
    // counter before timestamp: an old frame is replayed, whatever its time
    r = request();
    r.timestamp = kNow - 100000;
    r.counter = 1;
    EXPECT_EQ(run(r).status, Status::Replayed);
    // challenge before timestamp
    r = request();
    r.timestamp = kNow + 100000;
    r.challenge[0] ^= 1;
    const Decision ch = run(r);
    EXPECT_EQ(ch.status, Status::Replayed);
    EXPECT_NE(ch.detail.find("challenge"), std::string::npos);
    // timestamp before TOTP
    r = request();
    r.timestamp = kNow - 1000;
    r.totp = 0;
    EXPECT_EQ(run(r).status, Status::StaleTimestamp);
    // TOTP before action
    r = request("nosuch");
    r.totp = (r.totp + 1) % 1'000'000;
    EXPECT_EQ(run(r).status, Status::BadTotp);
    // unknown action before permission; permission before arguments
    EXPECT_EQ(run(request("nosuch", {"1"})).status, Status::UnknownAction);
    EXPECT_EQ(run(request("secret-room", {"1"})).status, Status::NotPermitted);
}

// A clock refusal is only ever given to a frame that passed MAC, counter and
// challenge; everything before it has mac_verified as the MAC check left it.
TEST_F(VerifierTest, ClockRefusalsOnlyForAuthenticFreshFrames) {
    Request r = request();
    r.timestamp = kNow + 5000;
    const Decision d = run(r);
    EXPECT_EQ(d.status, Status::StaleTimestamp);
    EXPECT_TRUE(d.mac_verified);
    EXPECT_FALSE(d.clock_advanced_to);  // a synchronised clock never moves
}

TEST_F(VerifierTest, AuthenticatesIsTheMacCheckAlone) {
    Request r = request("nosuch");
    r.counter = 1;    // would be replayed
    r.timestamp = 0;  // would be stale
    const Bytes good = frame(r);
    EXPECT_TRUE(authenticates(good, core::protocol::decode_request(good), &dev_));
    Bytes bad = good;
    bad[56] ^= 1;  // "nosuch" becomes "nnsuch"
    EXPECT_FALSE(authenticates(bad, core::protocol::decode_request(bad), &dev_));
    EXPECT_FALSE(authenticates(good, core::protocol::decode_request(good), nullptr));
    const Bytes junk{1, 1, 0};
    EXPECT_FALSE(authenticates(junk, core::protocol::decode_request(junk), &dev_));
    dev_.revoked = true;
    EXPECT_FALSE(authenticates(good, core::protocol::decode_request(good), &dev_));
    dev_.revoked = false;
    DeviceRecord other = dev_;
    other.id[0] ^= 1;  // same secret, another id: the frame does not name it
    EXPECT_FALSE(authenticates(good, core::protocol::decode_request(good), &other));
}

// --- an unsynchronised clock (docs/protocol.md, section 9) ---

class UnsyncedVerifierTest : public VerifierTest {
  public:
    UnsyncedVerifierTest() {
        in_.clock_synchronized = false;
        in_.now = kNow - 3 * kDay;  // the Pi's clock is three days behind
    }
    // A frame as the phone sends it: its own (right) time and code.
    [[nodiscard]] Request phone_request() const {
        Request r = request();
        r.timestamp = kNow;
        r.totp = code_at(kNow);
        return r;
    }
};

TEST_F(UnsyncedVerifierTest, AnAuthenticTimestampAdvancesTheClock) {
    const Decision d = run(phone_request());
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    ASSERT_TRUE(d.clock_advanced_to);
    EXPECT_EQ(*d.clock_advanced_to, kNow);
    EXPECT_EQ(d.verified_at, kNow);
}

TEST_F(UnsyncedVerifierTest, TheSameTimestampSynchronisedIsStale) {
    in_.clock_synchronized = true;
    const Decision d = run(phone_request());
    EXPECT_EQ(d.status, Status::StaleTimestamp);
    EXPECT_FALSE(d.clock_advanced_to);
}

TEST_F(UnsyncedVerifierTest, WithinTheSkewTheClockDoesNotMove) {
    in_.now = kNow - 20;  // within the skew and one TOTP step
    const Decision d = run(phone_request());
    EXPECT_EQ(d.status, Status::Ok) << d.detail;
    EXPECT_FALSE(d.clock_advanced_to);
}

TEST_F(UnsyncedVerifierTest, TheAdvanceIsBounded) {
    in_.policy.max_clock_advance_seconds = 3 * kDay - 1;
    const Decision d = run(phone_request());
    EXPECT_EQ(d.status, Status::StaleTimestamp);
    EXPECT_FALSE(d.clock_advanced_to);
    EXPECT_NE(d.detail.find("259200 s ahead of the Pi's unsynchronised clock"), std::string::npos)
        << d.detail;
    in_.policy.max_clock_advance_seconds = 3 * kDay;
    EXPECT_EQ(run(phone_request()).status, Status::Ok);
}

// Never backwards: a phone behind V is stale, unsynchronised or not.
TEST_F(UnsyncedVerifierTest, APhoneBehindIsStaleAndTheClockStays) {
    in_.now = kNow;
    Request r = phone_request();
    r.timestamp = kNow - 3600;
    r.totp = code_at(kNow - 3600);
    const Decision d = run(r);
    EXPECT_EQ(d.status, Status::StaleTimestamp);
    EXPECT_NE(d.detail.find("3600 s behind"), std::string::npos) << d.detail;
    EXPECT_FALSE(d.clock_advanced_to);
}

// Only a fresh, authentic frame moves the clock: forged or replayed ones are
// refused before the timestamp is looked at.
TEST_F(UnsyncedVerifierTest, ForgedOrReplayedFramesNeverMoveTheClock) {
    Bytes forged = frame(phone_request());
    forged[55] = 'n';
    const Decision bad = run(forged);
    EXPECT_EQ(bad.status, Status::BadMac);
    EXPECT_FALSE(bad.clock_advanced_to);

    Request old = phone_request();
    old.counter = 5;
    const Decision replayed = run(old);
    EXPECT_EQ(replayed.status, Status::Replayed);
    EXPECT_FALSE(replayed.clock_advanced_to);

    Request wrong = phone_request();
    wrong.challenge[3] ^= 1;
    EXPECT_FALSE(run(wrong).clock_advanced_to);
}

// After the advance the accepted frame is still single-use.
TEST_F(UnsyncedVerifierTest, ReplayAfterAnAdvanceIsRefused) {
    const Bytes f = frame(phone_request());
    const Decision d = run(f);
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    carry(d);
    in_.now = *d.clock_advanced_to;
    const Decision again = run(f);
    EXPECT_EQ(again.status, Status::Replayed);
    EXPECT_FALSE(again.clock_advanced_to);
}

// The advance is decided before TOTP; a wrong code is still refused, with the
// advance reported (the timestamp was authentic and fresh).
TEST_F(UnsyncedVerifierTest, TotpIsCheckedAgainstTheAdvancedClock) {
    Request r = phone_request();
    r.totp = code_at(in_.now);  // the Pi's old time: wrong after the advance
    const Decision d = run(r);
    EXPECT_EQ(d.status, Status::BadTotp);
    ASSERT_TRUE(d.clock_advanced_to);
    EXPECT_EQ(*d.clock_advanced_to, kNow);
}

TEST_F(UnsyncedVerifierTest, ExtremeTimestampsNeverOverflow) {
    in_.policy.max_clock_advance_seconds = 315'360'000;
    for (std::int64_t ts :
         {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}) {
        Request r = phone_request();
        r.timestamp = ts;
        const Decision d = run(r);
        EXPECT_EQ(d.status, Status::StaleTimestamp) << ts;
        EXPECT_FALSE(d.clock_advanced_to);
    }
    in_.now = std::numeric_limits<std::int64_t>::min();
    Request r = phone_request();
    r.timestamp = std::numeric_limits<std::int64_t>::max();
    EXPECT_EQ(run(r).status, Status::StaleTimestamp);
}

}  // namespace
}  // namespace bzs::core::auth
