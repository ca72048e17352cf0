// SPDX-License-Identifier: GPL-3.0-or-later
// The verifier on protocol v2: every refusal reason, the order of checks, which
// refusals may be answered sealed, replay state, no cooldown, the unsynchronised
// clock's advance, catalogue requests and the pairing exchange. The clock is
// injected through VerifyInput::now; frames are sealed as a phone seals them.
#include "core/auth/verifier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/sealed.h"

namespace bzs::core::auth {
namespace {

using core::protocol::Bytes;
using core::protocol::CatalogueBody;
using core::protocol::CommandBody;
using core::protocol::RequestType;

// A multiple of 30 plus 10, so kNow - 30 and kNow + 30 are the neighbouring TOTP steps.
constexpr std::int64_t kNow = 1'700'000'010;
constexpr std::int64_t kStepSeconds = 30;
constexpr std::int64_t kStep = kNow / kStepSeconds;
constexpr std::int64_t kDay = 86400;
// Offset of the sealed body in a request frame.
constexpr std::size_t kBody = core::protocol::kRequestHeaderLen;

core::protocol::SealNonce nonce(std::uint8_t seed) {
    core::protocol::SealNonce n{};
    for (std::size_t i = 0; i < n.size(); ++i) {
        n[i] = static_cast<std::uint8_t>(seed + 7 * i);
    }
    return n;
}

ActionRules with_args(std::optional<std::string> pattern, std::vector<std::string> choices = {}) {
    ActionRules r;
    r.allow_args = true;
    r.arg_pattern = std::move(pattern);
    r.arg_choices = std::move(choices);
    return r;
}

// Members are public so that tests can build cases from lambdas.
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
        dev_.permitted_actions = {"lights.on", "echo", "free", "badpattern", "level"};
        rules_["lights.on"] = ActionRules{};
        rules_["echo"] = with_args(std::string("[a-z]+"));
        rules_["free"] = with_args(std::nullopt);
        rules_["badpattern"] = with_args(std::string("([a-z"));
        rules_["level"] = with_args(std::nullopt, {"low", "high"});
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

    // A valid command body for `in_` as it stands: the Pi's time, the issued
    // challenge and the current code.
    [[nodiscard]] CommandBody body(const std::string& action = "lights.on",
                                   std::vector<std::string> args = {}) const {
        CommandBody b;
        b.timestamp = in_.now;
        b.challenge = challenge_;
        b.totp = code_at(in_.now);
        b.action = action;
        b.args = std::move(args);
        return b;
    }
    [[nodiscard]] CatalogueBody catalogue_body() const {
        CatalogueBody b;
        b.timestamp = in_.now;
        b.challenge = challenge_;
        b.totp = code_at(in_.now);
        return b;
    }
    [[nodiscard]] std::uint32_t code_at(std::int64_t t) const {
        return core::crypto::totp(secret_, t, dev_.totp);
    }
    [[nodiscard]] std::uint64_t next() const { return in_.replay.last_counter + 1; }
    // `plaintext` sealed for this device under `counter` (default: the next one).
    [[nodiscard]] Bytes seal(RequestType type, const Bytes& plaintext,
                             std::optional<std::uint64_t> counter = std::nullopt,
                             const Bytes* key_secret = nullptr) const {
        const Bytes& s = key_secret ? *key_secret : secret_;
        return core::protocol::seal_request(type, dev_.id, counter.value_or(next()), nonce(3),
                                            core::protocol::device_seal_keys(s).request.view(),
                                            plaintext);
    }
    [[nodiscard]] Bytes frame(const CommandBody& b,
                              std::optional<std::uint64_t> counter = std::nullopt) const {
        return seal(RequestType::Command, core::protocol::encode_body(b), counter);
    }
    [[nodiscard]] Bytes frame() const { return frame(body()); }

    // Runs the verifier and checks what must hold for every decision.
    Decision run(const Bytes& f) {
        Decision d = verify(f, core::protocol::decode_request_header(f), in_);
        expect_no_secret(d.detail);
        EXPECT_FALSE(d.detail.empty());
        if (d.accepted()) {
            EXPECT_TRUE(d.command || d.catalogue);
            EXPECT_TRUE(d.matched_step);
            EXPECT_TRUE(d.sealed_reply);
        } else {
            // Refusals never advance the replay state.
            EXPECT_EQ(d.replay.last_counter, in_.replay.last_counter) << d.detail;
        }
        EXPECT_FALSE(d.pair);
        return d;
    }
    Decision run(const CommandBody& b) { return run(frame(b)); }

    void expect_no_secret(const std::string& detail) const {
        const auto keys = core::protocol::device_seal_keys(secret_);
        for (const std::string& s :
             {core::crypto::hex_encode(secret_), core::crypto::base32_encode(secret_, false),
              core::crypto::hex_encode(keys.request.view()),
              core::crypto::hex_encode(keys.response.view())}) {
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
    const Decision d = run(frame());
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    EXPECT_TRUE(d.accepted());
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_EQ(d.detail, "accepted");
    ASSERT_TRUE(d.command);
    EXPECT_EQ(d.command->action, "lights.on");
    EXPECT_FALSE(d.catalogue);
    ASSERT_TRUE(d.header);
    EXPECT_EQ(d.header->counter, 11U);
    EXPECT_EQ(d.matched_step, kStep);
    EXPECT_EQ(d.replay.last_counter, 11U);
    EXPECT_EQ(d.verified_at, kNow);
    EXPECT_FALSE(d.clock_advanced_to);
}

TEST_F(VerifierTest, CountersMayJump) {
    const Decision d = run(frame(body(), 1'000'000));
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    EXPECT_EQ(d.replay.last_counter, 1'000'000U);
}

// --- header ---

TEST_F(VerifierTest, ATruncatedFrameIsMalformedAndPlain) {
    Bytes f = frame();
    f.pop_back();
    const Decision d = run(f);
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_FALSE(d.sealed_reply);
    EXPECT_FALSE(d.header);
}

TEST_F(VerifierTest, AnotherVersionIsUnknownAndPlain) {
    for (const int v : {0x00, 0x01, 0x03}) {
        Bytes f = frame();
        f[0] = static_cast<std::uint8_t>(v);
        const Decision d = run(f);
        EXPECT_EQ(d.status, Status::UnknownVersion) << v;
        EXPECT_FALSE(d.sealed_reply);
    }
}

// The header's length field is authenticated data: a frame that says it is
// longer or shorter than it is never reaches the seal.
TEST_F(VerifierTest, ALengthFieldThatIsNotTheFramesSizeIsMalformed) {
    Bytes f = frame();
    f[3] = static_cast<std::uint8_t>(f[3] + 1);
    const Decision d = run(f);
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_FALSE(d.sealed_reply);
}

TEST_F(VerifierTest, APairRequestIsNotACommand) {
    const Decision d = run(seal(RequestType::Pair, Bytes(81, 0x01)));
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_FALSE(d.sealed_reply);
}

// --- device ---

TEST_F(VerifierTest, UnknownDevice) {
    in_.device = nullptr;
    const Decision d = run(frame());
    EXPECT_EQ(d.status, Status::UnknownDevice);
    EXPECT_FALSE(d.sealed_reply);
    EXPECT_NE(d.detail.find(core::crypto::hex_encode(dev_.id)), std::string::npos) << d.detail;
}

TEST_F(VerifierTest, APendingDeviceIsNotPairedYet) {
    dev_.pending = true;
    dev_.secret = core::crypto::SecretBytes();
    const Decision d = run(frame());
    EXPECT_EQ(d.status, Status::UnknownDevice);
    EXPECT_NE(d.detail.find("not paired yet"), std::string::npos) << d.detail;
    EXPECT_FALSE(d.sealed_reply);
    EXPECT_FALSE(d.command);
}

TEST_F(VerifierTest, Revoked) {
    dev_.revoked = true;
    const Decision d = run(frame());
    EXPECT_EQ(d.status, Status::Revoked);
    EXPECT_FALSE(d.sealed_reply);
    EXPECT_FALSE(d.command);
}

// --- seal ---

TEST_F(VerifierTest, EveryAlteredByteIsRefusedPlain) {
    const Bytes good = frame(body("echo", {"abc", "de"}));
    for (std::size_t i = 0; i < good.size(); ++i) {
        Bytes f = good;
        f[i] ^= 0x01;
        const Decision d = run(f);
        EXPECT_FALSE(d.accepted()) << "byte " << i;
        EXPECT_FALSE(d.sealed_reply) << "byte " << i;
        EXPECT_FALSE(d.command) << "byte " << i;
        if (i >= 20) {  // past version, type, length and device id: only the seal catches it
            EXPECT_EQ(d.status, Status::BadMac) << "byte " << i;
        }
    }
}

TEST_F(VerifierTest, BadMacWithAnotherDevicesSecret) {
    const Bytes other(32, 0x11);
    const Decision d =
        run(seal(RequestType::Command, core::protocol::encode_body(body()), std::nullopt, &other));
    EXPECT_EQ(d.status, Status::BadMac);
    EXPECT_FALSE(d.sealed_reply);
    EXPECT_FALSE(d.command);
}

// The response key is not the request key: a frame sealed like a Pi's answer
// does not open.
TEST_F(VerifierTest, BadMacUnderTheResponseKey) {
    const Bytes f =
        core::protocol::seal_request(RequestType::Command, dev_.id, next(), nonce(9),
                                     core::protocol::device_seal_keys(secret_).response.view(),
                                     core::protocol::encode_body(body()));
    EXPECT_EQ(run(f).status, Status::BadMac);
}

// --- body (authenticated, so answered sealed) ---

TEST_F(VerifierTest, AMalformedBodyThatOpenedIsSealed) {
    Bytes plain = core::protocol::encode_body(body());
    plain.push_back(0x00);  // a trailing byte
    Decision d = run(seal(RequestType::Command, plain));
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_FALSE(d.command);
    ASSERT_TRUE(d.header);

    plain = core::protocol::encode_body(body());
    plain[28] = 0;  // action_len 0
    d = run(seal(RequestType::Command, plain));
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_TRUE(d.sealed_reply);

    Bytes cat = core::protocol::encode_body(catalogue_body());
    cat.push_back(0x00);
    d = run(seal(RequestType::Catalogue, cat));
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_FALSE(d.catalogue);
}

// --- counter and challenge ---

TEST_F(VerifierTest, ReplayedCounterEqualOrLower) {
    for (std::uint64_t c : {10U, 9U, 0U}) {
        const Decision d = run(frame(body(), c));
        EXPECT_EQ(d.status, Status::Replayed) << c;
        EXPECT_TRUE(d.sealed_reply);
        EXPECT_NE(d.detail.find("not above the last accepted 10"), std::string::npos);
    }
}

TEST_F(VerifierTest, TheSameFrameTwiceIsReplayed) {
    const Bytes f = frame();
    const Decision first = run(f);
    ASSERT_EQ(first.status, Status::Ok);
    carry(first);
    EXPECT_EQ(run(f).status, Status::Replayed);
}

TEST_F(VerifierTest, WrongChallenge) {
    CommandBody b = body();
    b.challenge[0] ^= 0xFF;
    const Decision d = run(b);
    EXPECT_EQ(d.status, Status::Replayed);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_NE(d.detail.find("challenge does not match"), std::string::npos);
}

TEST_F(VerifierTest, MissingChallengeWhenRequired) {
    in_.expected_challenge.reset();
    const Decision d = run(frame());
    EXPECT_EQ(d.status, Status::Replayed);
    EXPECT_NE(d.detail.find("no live challenge"), std::string::npos);
}

TEST_F(VerifierTest, NoChallengeNeededWhenNotRequired) {
    in_.expected_challenge.reset();
    in_.policy.require_challenge = false;
    CommandBody b = body();
    b.challenge = {};
    EXPECT_EQ(run(b).status, Status::Ok);
    // An issued challenge is still checked when the policy does not require one.
    in_.expected_challenge = challenge_;
    EXPECT_EQ(run(b).status, Status::Replayed);
}

// --- clock ---

TEST_F(VerifierTest, TimestampWithin300SecondsEitherWay) {
    for (std::int64_t off : {-300, 300, -1, 1}) {
        CommandBody b = body();
        b.timestamp = kNow + off;
        EXPECT_EQ(run(b).status, Status::Ok) << off;
    }
    for (std::int64_t off : {-301, 301, -100000, 100000}) {
        CommandBody b = body();
        b.timestamp = kNow + off;
        const Decision d = run(b);
        EXPECT_EQ(d.status, Status::StaleTimestamp) << off;
        EXPECT_TRUE(d.sealed_reply);
        const std::string want = std::to_string(off < 0 ? -off : off) + " s " +
                                 (off < 0 ? "behind" : "ahead of") + " the Pi's clock";
        EXPECT_NE(d.detail.find(want), std::string::npos) << d.detail;
    }
}

TEST_F(VerifierTest, ExtremeTimestampsAreStale) {
    for (std::int64_t ts :
         {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}) {
        CommandBody b = body();
        b.timestamp = ts;
        EXPECT_EQ(run(b).status, Status::StaleTimestamp) << ts;
    }
}

TEST_F(VerifierTest, ClockSkewPolicyIsHonoured) {
    in_.policy.max_clock_skew_seconds = 30;
    CommandBody b = body();
    b.timestamp = kNow + 31;
    EXPECT_EQ(run(b).status, Status::StaleTimestamp);
    b.timestamp = kNow - 30;
    EXPECT_EQ(run(b).status, Status::Ok);
}

// --- TOTP ---

TEST_F(VerifierTest, BadTotp) {
    CommandBody b = body();
    b.totp = (b.totp + 1) % 1'000'000;
    const Decision d = run(b);
    EXPECT_EQ(d.status, Status::BadTotp);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_EQ(d.detail.find(core::crypto::format_code(code_at(kNow), 6)), std::string::npos);
}

TEST_F(VerifierTest, TotpOneStepEitherSideAccepted) {
    for (int steps : {-1, 1}) {
        CommandBody b = body();
        b.totp = code_at(kNow + kStepSeconds * steps);
        const Decision d = run(b);
        EXPECT_EQ(d.status, Status::Ok) << steps;
        EXPECT_EQ(d.matched_step, kStep + steps);
    }
}

TEST_F(VerifierTest, TotpTwoStepsAwayRejected) {
    for (int steps : {-2, 2}) {
        CommandBody b = body();
        b.totp = code_at(kNow + kStepSeconds * steps);
        EXPECT_EQ(run(b).status, Status::BadTotp) << steps;
    }
}

TEST_F(VerifierTest, TotpWindowPolicyIsHonoured) {
    in_.policy.totp_window = 0;
    CommandBody b = body();
    b.totp = code_at(kNow - 30);
    EXPECT_EQ(run(b).status, Status::BadTotp);
    in_.policy.totp_window = 2;
    b.totp = code_at(kNow - 60);
    EXPECT_EQ(run(b).status, Status::Ok);
}

// The step is checked against the Pi's clock, not the frame's timestamp.
TEST_F(VerifierTest, TotpUsesThePisClock) {
    CommandBody b = body();
    b.timestamp = kNow + 200;  // within the skew limit
    b.totp = code_at(kNow + 200);
    EXPECT_EQ(run(b).status, Status::BadTotp);
}

TEST_F(VerifierTest, TotpFromOtherTotpParameters) {
    dev_.totp.hash = core::crypto::Hash::Sha256;
    dev_.totp.digits = 8;
    dev_.totp.step_seconds = 60;
    const Decision ok = run(body());
    ASSERT_EQ(ok.status, Status::Ok) << ok.detail;
    EXPECT_EQ(ok.matched_step, kNow / 60);
    CommandBody b = body();
    b.totp = core::crypto::totp(secret_, kNow);  // SHA1, 6 digits, 30 s: not this device's
    EXPECT_EQ(run(b).status, Status::BadTotp);
}

// No cooldown: one TOTP step serves any number of commands, in any order of
// steps inside the window; only counter and challenge make a frame single-use.
TEST_F(VerifierTest, OneStepServesManyCommands) {
    for (int i = 0; i < 3; ++i) {
        const Decision d = run(frame());
        ASSERT_EQ(d.status, Status::Ok) << i << ": " << d.detail;
        EXPECT_EQ(d.matched_step, kStep);
        carry(d);
    }
    EXPECT_EQ(in_.replay.last_counter, 13U);
}

TEST_F(VerifierTest, AnEarlierStepAfterALaterOneIsAccepted) {
    CommandBody b = body();
    b.totp = code_at(kNow + 30);
    const Decision first = run(b);
    ASSERT_EQ(first.status, Status::Ok) << first.detail;
    carry(first);
    b = body();
    b.totp = code_at(kNow - 30);
    const Decision second = run(b);
    EXPECT_EQ(second.status, Status::Ok) << second.detail;
    EXPECT_EQ(second.matched_step, kStep - 1);
}

// Two commands one second apart both run; replaying either is still refused.
TEST_F(VerifierTest, TwoCommandsOneSecondApartThenReplays) {
    const Bytes a = frame();
    const Decision da = run(a);
    ASSERT_EQ(da.status, Status::Ok) << da.detail;
    carry(da);
    in_.now = kNow + 1;
    const Bytes b = frame();
    const Decision db = run(b);
    ASSERT_EQ(db.status, Status::Ok) << db.detail;
    carry(db);
    EXPECT_EQ(run(a).status, Status::Replayed);
    EXPECT_EQ(run(b).status, Status::Replayed);
}

// --- action, permission, arguments ---

TEST_F(VerifierTest, UnknownAction) {
    const Decision d = run(body("nosuch"));
    EXPECT_EQ(d.status, Status::UnknownAction);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_NE(d.detail.find("'nosuch'"), std::string::npos);
    in_.actions = nullptr;
    EXPECT_EQ(run(body()).status, Status::UnknownAction);
}

TEST_F(VerifierTest, NotPermitted) {
    const Decision d = run(body("secret-room"));
    EXPECT_EQ(d.status, Status::NotPermitted);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_NE(d.detail.find("'secret-room'"), std::string::npos);
}

TEST_F(VerifierTest, ArgumentsToAnActionWithoutAllowArgs) {
    const Decision d = run(body("lights.on", {"x"}));
    EXPECT_EQ(d.status, Status::BadArguments);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_EQ(d.detail, "the action takes no arguments");
}

TEST_F(VerifierTest, ArgumentPatternMustMatchWholeArgument) {
    EXPECT_EQ(run(body("echo", {"abc", "xyz"})).status, Status::Ok);
    for (const auto& [args, index] : std::vector<std::pair<std::vector<std::string>, int>>{
             {{"ab1"}, 0}, {{"abc1"}, 0}, {{"1abc"}, 0}, {{""}, 0}, {{"abc", "ABC"}, 1}}) {
        const Decision d = run(body("echo", args));
        EXPECT_EQ(d.status, Status::BadArguments) << args.back();
        EXPECT_NE(d.detail.find("argument " + std::to_string(index) + " does not match"),
                  std::string::npos)
            << d.detail;
    }
}

TEST_F(VerifierTest, ArgumentCountLimitOfTheAction) {
    rules_["free"].max_args = 2;
    EXPECT_EQ(run(body("free", {"a", "b"})).status, Status::Ok);
    const Decision d = run(body("free", {"a", "b", "c"}));
    EXPECT_EQ(d.status, Status::BadArguments);
    EXPECT_EQ(d.detail, "3 arguments given; the action takes at most 2");
}

TEST_F(VerifierTest, AllowArgsWithoutPatternAcceptsAny) {
    EXPECT_EQ(run(body("free", {"Any thing", "--x=1", "\xe2\x98\x95"})).status, Status::Ok);
}

TEST_F(VerifierTest, InvalidPatternRefusesArguments) {
    const Decision d = run(body("badpattern", {"abc"}));
    EXPECT_EQ(d.status, Status::BadArguments);
    EXPECT_EQ(d.detail, "the action's argument pattern is invalid");
    EXPECT_EQ(run(body("badpattern")).status, Status::Ok);  // no args, no pattern needed
}

TEST_F(VerifierTest, ArgumentChoicesMustBeOneOfThemExactly) {
    EXPECT_EQ(run(body("level", {"low"})).status, Status::Ok);
    EXPECT_EQ(run(body("level", {"high", "low"})).status, Status::Ok);
    EXPECT_EQ(run(body("level")).status, Status::Ok);
    for (const auto& [args, index] : std::vector<std::pair<std::vector<std::string>, int>>{
             {{"medium"}, 0}, {{"Low"}, 0}, {{"low "}, 0}, {{""}, 0}, {{"low", "lo"}, 1}}) {
        const Decision d = run(body("level", args));
        EXPECT_EQ(d.status, Status::BadArguments) << args.back();
        EXPECT_EQ(d.detail,
                  "argument " + std::to_string(index) + " is not one of the action's choices");
    }
}

TEST_F(VerifierTest, ChoicesNeedAllowArgsAndHonourMaxArgs) {
    rules_["level"].max_args = 1;
    EXPECT_EQ(run(body("level", {"low", "high"})).status, Status::BadArguments);
    rules_["level"].allow_args = false;
    const Decision d = run(body("level", {"low"}));
    EXPECT_EQ(d.status, Status::BadArguments);
    EXPECT_EQ(d.detail, "the action takes no arguments");
}

// --- catalogue requests ---

TEST_F(VerifierTest, ACatalogueRequestIsAccepted) {
    CatalogueBody b = catalogue_body();
    b.first = 3;
    const Decision d = run(seal(RequestType::Catalogue, core::protocol::encode_body(b)));
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    EXPECT_EQ(d.detail, "catalogue sent");
    ASSERT_TRUE(d.catalogue);
    EXPECT_EQ(d.catalogue->first, 3);
    EXPECT_FALSE(d.command);
    EXPECT_EQ(d.replay.last_counter, 11U);  // it advances the counter like a command
    EXPECT_TRUE(d.sealed_reply);
}

// Whatever the device may run, a catalogue request names no action: nothing in
// the action checks can refuse it.
TEST_F(VerifierTest, ACatalogueNeedsNoPermittedAction) {
    dev_.permitted_actions.clear();
    in_.actions = nullptr;
    const Decision d =
        run(seal(RequestType::Catalogue, core::protocol::encode_body(catalogue_body())));
    EXPECT_EQ(d.status, Status::Ok) << d.detail;
}

TEST_F(VerifierTest, CatalogueRequestsPassTheSameFreshnessChecks) {
    auto cat = [&](const std::function<void(CatalogueBody&)>& edit,
                   std::optional<std::uint64_t> counter = std::nullopt) {
        CatalogueBody b = catalogue_body();
        edit(b);
        return run(seal(RequestType::Catalogue, core::protocol::encode_body(b), counter));
    };
    EXPECT_EQ(cat([](CatalogueBody&) {}, 10).status, Status::Replayed);
    EXPECT_EQ(cat([](CatalogueBody& b) { b.challenge[5] ^= 1; }).status, Status::Replayed);
    EXPECT_EQ(cat([](CatalogueBody& b) { b.timestamp -= 301; }).status, Status::StaleTimestamp);
    EXPECT_EQ(cat([](CatalogueBody& b) { b.totp = (b.totp + 1) % 1'000'000; }).status,
              Status::BadTotp);
    dev_.revoked = true;
    EXPECT_EQ(cat([](CatalogueBody&) {}).status, Status::Revoked);
    dev_.revoked = false;
    dev_.pending = true;
    EXPECT_EQ(cat([](CatalogueBody&) {}).status, Status::UnknownDevice);
}

// --- order ---

// The first failing check wins, in the documented order: header, device known,
// not revoked, seal, body, counter, challenge, timestamp, TOTP, action,
// permitted, args.
TEST_F(VerifierTest, OrderOfChecks) {
    Bytes forged = frame();
    forged[forged.size() - 1] ^= 1;
    // unknown device before revoked and seal
    in_.device = nullptr;
    EXPECT_EQ(run(forged).status, Status::UnknownDevice);
    in_.device = &dev_;
    // revoked before pending and seal
    dev_.revoked = true;
    dev_.pending = true;
    EXPECT_EQ(run(forged).status, Status::Revoked);
    dev_.revoked = false;
    // pending before seal
    EXPECT_EQ(run(forged).status, Status::UnknownDevice);
    dev_.pending = false;
    // seal before counter
    Bytes old = frame(body(), 1);
    old[kBody] ^= 1;
    EXPECT_EQ(run(old).status, Status::BadMac);
    // body before counter
    Bytes plain = core::protocol::encode_body(body());
    plain.push_back(0);
    EXPECT_EQ(run(seal(RequestType::Command, plain, 1)).status, Status::Malformed);
    // counter before challenge (both "replayed"; the detail tells which)
    CommandBody b = body();
    b.challenge = {};
    EXPECT_NE(run(frame(b, 1)).detail.find("counter"), std::string::npos);
    // counter before timestamp: an old frame is replayed, whatever its time
    b = body();
    b.timestamp = kNow - 100000;
    EXPECT_EQ(run(frame(b, 1)).status, Status::Replayed);
    // challenge before timestamp
    b = body();
    b.timestamp = kNow + 100000;
    b.challenge[0] ^= 1;
    const Decision ch = run(b);
    EXPECT_EQ(ch.status, Status::Replayed);
    EXPECT_NE(ch.detail.find("challenge"), std::string::npos);
    // timestamp before TOTP
    b = body();
    b.timestamp = kNow - 1000;
    b.totp = 0;
    EXPECT_EQ(run(b).status, Status::StaleTimestamp);
    // TOTP before action
    b = body("nosuch");
    b.totp = (b.totp + 1) % 1'000'000;
    EXPECT_EQ(run(b).status, Status::BadTotp);
    // unknown action before permission; permission before arguments
    EXPECT_EQ(run(body("nosuch", {"1"})).status, Status::UnknownAction);
    EXPECT_EQ(run(body("secret-room", {"1"})).status, Status::NotPermitted);
}

// A clock refusal is only ever given to a frame that opened and passed counter
// and challenge.
TEST_F(VerifierTest, ClockRefusalsOnlyForAuthenticFreshFrames) {
    CommandBody b = body();
    b.timestamp = kNow + 5000;
    const Decision d = run(b);
    EXPECT_EQ(d.status, Status::StaleTimestamp);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_FALSE(d.clock_advanced_to);  // a synchronised clock never moves
}

// --- authenticates: the seal alone ---

TEST_F(VerifierTest, AuthenticatesIsTheSealCheckAlone) {
    CommandBody b = body("nosuch");
    b.timestamp = 0;                 // would be stale
    const Bytes good = frame(b, 1);  // would be replayed
    auto auth = [&](const Bytes& f, const DeviceRecord* d) {
        return authenticates(f, core::protocol::decode_request_header(f), d);
    };
    EXPECT_TRUE(auth(good, &dev_));
    const Bytes cat =
        seal(RequestType::Catalogue, core::protocol::encode_body(catalogue_body()), 1);
    EXPECT_TRUE(auth(cat, &dev_));
    Bytes bad = good;
    bad[kBody + 2] ^= 1;
    EXPECT_FALSE(auth(bad, &dev_));
    EXPECT_FALSE(auth(good, nullptr));
    const Bytes junk{2, 1, 0};
    EXPECT_FALSE(auth(junk, &dev_));
    dev_.revoked = true;
    EXPECT_FALSE(auth(good, &dev_));
    dev_.revoked = false;
    dev_.pending = true;
    EXPECT_FALSE(auth(good, &dev_));
    dev_.pending = false;
    DeviceRecord other = dev_;
    other.id[0] ^= 1;  // same secret, another id: the frame does not name it
    EXPECT_FALSE(auth(good, &other));
    // A pair request never authenticates as a command, even under the device's key.
    const Bytes pair = seal(RequestType::Pair, Bytes(81, 0x04), 0);
    EXPECT_FALSE(auth(pair, &dev_));
}

// --- an unsynchronised clock (docs/protocol.md, "Clock") ---

class UnsyncedVerifierTest : public VerifierTest {
  public:
    UnsyncedVerifierTest() {
        in_.clock_synchronized = false;
        in_.now = kNow - 3 * kDay;  // the Pi's clock is three days behind
    }
    // A body as the phone sends it: its own (right) time and code.
    [[nodiscard]] CommandBody phone_body() const {
        CommandBody b = body();
        b.timestamp = kNow;
        b.totp = code_at(kNow);
        return b;
    }
};

TEST_F(UnsyncedVerifierTest, AnAuthenticTimestampAdvancesTheClock) {
    const Decision d = run(phone_body());
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    ASSERT_TRUE(d.clock_advanced_to);
    EXPECT_EQ(*d.clock_advanced_to, kNow);
    EXPECT_EQ(d.verified_at, kNow);
}

TEST_F(UnsyncedVerifierTest, ACatalogueRequestAdvancesTheClockToo) {
    CatalogueBody b = catalogue_body();
    b.timestamp = kNow;
    b.totp = code_at(kNow);
    const Decision d = run(seal(RequestType::Catalogue, core::protocol::encode_body(b)));
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    EXPECT_EQ(d.clock_advanced_to, kNow);
}

TEST_F(UnsyncedVerifierTest, TheSameTimestampSynchronisedIsStale) {
    in_.clock_synchronized = true;
    const Decision d = run(phone_body());
    EXPECT_EQ(d.status, Status::StaleTimestamp);
    EXPECT_FALSE(d.clock_advanced_to);
}

TEST_F(UnsyncedVerifierTest, WithinTheSkewTheClockDoesNotMove) {
    in_.now = kNow - 20;  // within the skew and one TOTP step
    const Decision d = run(phone_body());
    EXPECT_EQ(d.status, Status::Ok) << d.detail;
    EXPECT_FALSE(d.clock_advanced_to);
}

TEST_F(UnsyncedVerifierTest, TheAdvanceIsBounded) {
    in_.policy.max_clock_advance_seconds = 3 * kDay - 1;
    const Decision d = run(phone_body());
    EXPECT_EQ(d.status, Status::StaleTimestamp);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_FALSE(d.clock_advanced_to);
    EXPECT_NE(d.detail.find("259200 s ahead of the Pi's unsynchronised clock"), std::string::npos)
        << d.detail;
    in_.policy.max_clock_advance_seconds = 3 * kDay;
    EXPECT_EQ(run(phone_body()).status, Status::Ok);
}

// Never backwards: a phone behind V is stale, unsynchronised or not.
TEST_F(UnsyncedVerifierTest, APhoneBehindIsStaleAndTheClockStays) {
    in_.now = kNow;
    CommandBody b = phone_body();
    b.timestamp = kNow - 3600;
    b.totp = code_at(kNow - 3600);
    const Decision d = run(b);
    EXPECT_EQ(d.status, Status::StaleTimestamp);
    EXPECT_NE(d.detail.find("3600 s behind"), std::string::npos) << d.detail;
    EXPECT_FALSE(d.clock_advanced_to);
}

// Only a fresh, authentic frame moves the clock: forged or replayed ones are
// refused before the timestamp is looked at.
TEST_F(UnsyncedVerifierTest, ForgedOrReplayedFramesNeverMoveTheClock) {
    Bytes forged = frame(phone_body());
    forged[kBody] ^= 1;
    const Decision bad = run(forged);
    EXPECT_EQ(bad.status, Status::BadMac);
    EXPECT_FALSE(bad.clock_advanced_to);

    const Decision replayed = run(frame(phone_body(), 5));
    EXPECT_EQ(replayed.status, Status::Replayed);
    EXPECT_FALSE(replayed.clock_advanced_to);

    CommandBody wrong = phone_body();
    wrong.challenge[3] ^= 1;
    EXPECT_FALSE(run(wrong).clock_advanced_to);
}

// After the advance the accepted frame is still single-use.
TEST_F(UnsyncedVerifierTest, ReplayAfterAnAdvanceIsRefused) {
    const Bytes f = frame(phone_body());
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
    CommandBody b = phone_body();
    b.totp = code_at(in_.now);  // the Pi's old time: wrong after the advance
    const Decision d = run(b);
    EXPECT_EQ(d.status, Status::BadTotp);
    ASSERT_TRUE(d.clock_advanced_to);
    EXPECT_EQ(*d.clock_advanced_to, kNow);
}

TEST_F(UnsyncedVerifierTest, ExtremeTimestampsNeverOverflow) {
    in_.policy.max_clock_advance_seconds = 315'360'000;
    for (std::int64_t ts :
         {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}) {
        CommandBody b = phone_body();
        b.timestamp = ts;
        const Decision d = run(b);
        EXPECT_EQ(d.status, Status::StaleTimestamp) << ts;
        EXPECT_FALSE(d.clock_advanced_to);
    }
    in_.now = std::numeric_limits<std::int64_t>::min();
    CommandBody b = phone_body();
    b.timestamp = std::numeric_limits<std::int64_t>::max();
    EXPECT_EQ(run(b).status, Status::StaleTimestamp);
}

// --- the pairing exchange ---

class VerifyPairTest : public ::testing::Test {
  public:
    VerifyPairTest() : pi_key_(core::crypto::p256_generate()) {
        for (std::size_t i = 0; i < 16; ++i) {
            dev_.id[i] = static_cast<std::uint8_t>(0x70 + i);
            pi_id_[i] = static_cast<std::uint8_t>(0xA0 ^ i);
            challenge_[i] = static_cast<std::uint8_t>(0x11 * i);
            code_bytes_.push_back(static_cast<std::uint8_t>(0xC0 + 5 * i));
        }
        dev_.name = "new phone";
        dev_.pending = true;
        std::copy(pi_key_.public_key.begin(), pi_key_.public_key.end(), pi_public_.begin());
        in_.now = kNow;
        in_.device = &dev_;
        in_.code = core::crypto::SecretBytes(code_bytes_);
        in_.code_expires = kNow + 300;
        in_.pi_id = pi_id_;
        in_.pi_private = pi_key_.private_scalar;
        in_.pi_public = pi_public_;
        in_.expected_challenge = challenge_;
        phone_key_ = core::crypto::p256_generate();
    }

    [[nodiscard]] core::protocol::PairBody body() const {
        core::protocol::PairBody b;
        b.challenge = challenge_;
        std::copy(phone_key_.public_key.begin(), phone_key_.public_key.end(),
                  b.phone_public.begin());
        return b;
    }
    // A pair request sealed under `code` (default: the device's).
    [[nodiscard]] Bytes frame(const core::protocol::PairBody& b, std::uint64_t counter = 0,
                              const Bytes* code = nullptr) const {
        return core::protocol::seal_request(
            RequestType::Pair, dev_.id, counter, nonce(5),
            core::protocol::pair_seal_keys(code ? *code : code_bytes_).request.view(),
            core::protocol::encode_body(b));
    }
    [[nodiscard]] Bytes frame() const { return frame(body()); }

    Decision run(const Bytes& f) const {
        Decision d = verify_pair(f, core::protocol::decode_request_header(f), in_);
        EXPECT_FALSE(d.detail.empty());
        EXPECT_EQ(d.accepted(), d.pair.has_value()) << d.detail;
        for (const std::string& s : {core::crypto::hex_encode(code_bytes_),
                                     core::crypto::base32_encode(code_bytes_, false),
                                     core::crypto::hex_encode(pi_key_.private_scalar.view())}) {
            for (std::size_t i = 0; i + 8 <= s.size(); i += 4) {
                EXPECT_EQ(d.detail.find(s.substr(i, 8)), std::string::npos) << d.detail;
            }
        }
        return d;
    }

    core::crypto::P256KeyPair pi_key_;
    core::crypto::P256KeyPair phone_key_;
    core::protocol::PublicKey pi_public_{};
    core::protocol::PiId pi_id_{};
    Bytes code_bytes_;
    DeviceRecord dev_;
    core::protocol::Nonce challenge_{};
    PairInput in_;
};

TEST_F(VerifyPairTest, OkDerivesTheSecretThePhoneDerived) {
    const Decision d = run(frame());
    ASSERT_EQ(d.status, Status::Ok) << d.detail;
    EXPECT_EQ(d.detail, "paired");
    EXPECT_TRUE(d.sealed_reply);
    ASSERT_TRUE(d.header);
    EXPECT_EQ(d.header->type, RequestType::Pair);
    ASSERT_TRUE(d.pair);
    const auto phone = core::protocol::pair_derive(
        phone_key_.private_scalar.view(), pi_public_, code_bytes_,
        core::protocol::pair_transcript(pi_id_, dev_.id, pi_public_, body().phone_public));
    ASSERT_TRUE(phone);
    EXPECT_TRUE(core::crypto::ct_equal(d.pair->secret.view(), phone->secret.view()));
    EXPECT_EQ(d.pair->confirm, phone->confirm);
    EXPECT_EQ(d.pair->secret.size(), 32U);
    EXPECT_FALSE(d.command);
    EXPECT_FALSE(d.catalogue);
}

// Two exchanges with two ephemeral keys give two secrets.
TEST_F(VerifyPairTest, EveryExchangeGivesANewSecret) {
    const Decision a = run(frame());
    phone_key_ = core::crypto::p256_generate();
    const Decision b = run(frame());
    ASSERT_TRUE(a.pair && b.pair);
    EXPECT_FALSE(core::crypto::ct_equal(a.pair->secret.view(), b.pair->secret.view()));
    EXPECT_NE(a.pair->confirm, b.pair->confirm);
}

TEST_F(VerifyPairTest, UnknownDevice) {
    in_.device = nullptr;
    const Decision d = run(frame());
    EXPECT_EQ(d.status, Status::UnknownDevice);
    EXPECT_FALSE(d.sealed_reply);
}

TEST_F(VerifyPairTest, Revoked) {
    dev_.revoked = true;
    const Decision d = run(frame());
    EXPECT_EQ(d.status, Status::Revoked);
    EXPECT_FALSE(d.sealed_reply);
}

// An active device's code was used: the same code again is code_used, plain,
// even though it would still open the seal.
TEST_F(VerifyPairTest, AnActiveDeviceAnswersCodeUsed) {
    dev_.pending = false;
    dev_.secret = core::crypto::SecretBytes(Bytes(32, 0x22));
    const Decision d = run(frame());
    EXPECT_EQ(d.status, Status::CodeUsed);
    EXPECT_FALSE(d.sealed_reply);
    EXPECT_NE(d.detail.find("already paired"), std::string::npos) << d.detail;
}

TEST_F(VerifyPairTest, ACounterOtherThanZeroIsMalformed) {
    const Decision d = run(frame(body(), 1));
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_FALSE(d.sealed_reply);
    EXPECT_NE(d.detail.find("counter must be 0"), std::string::npos) << d.detail;
}

TEST_F(VerifyPairTest, AWrongCodeIsBadMac) {
    Bytes wrong = code_bytes_;
    wrong[0] ^= 1;
    const Decision d = run(frame(body(), 0, &wrong));
    EXPECT_EQ(d.status, Status::BadMac);
    EXPECT_FALSE(d.sealed_reply);
    // An altered byte anywhere after the device id is caught by the seal.
    const Bytes good = frame();
    for (std::size_t i = 28; i < good.size(); ++i) {
        Bytes f = good;
        f[i] ^= 0x80;
        EXPECT_EQ(run(f).status, Status::BadMac) << "byte " << i;
    }
}

// A command sealed with a device key is not a pair request, nor the reverse.
TEST_F(VerifyPairTest, OtherRequestTypesAreMalformed) {
    Bytes f = frame();
    f[1] = static_cast<std::uint8_t>(RequestType::Command);
    const Decision d = run(f);
    EXPECT_NE(d.status, Status::Ok);
    EXPECT_FALSE(d.sealed_reply);
}

TEST_F(VerifyPairTest, AWrongChallengeIsReplayedAndSealed) {
    core::protocol::PairBody b = body();
    b.challenge[7] ^= 1;
    const Decision d = run(frame(b));
    EXPECT_EQ(d.status, Status::Replayed);
    EXPECT_TRUE(d.sealed_reply);  // it opened with the code: the phone may learn why
    in_.expected_challenge.reset();
    const Decision none = run(frame());
    EXPECT_EQ(none.status, Status::Replayed);
    EXPECT_NE(none.detail.find("no live challenge"), std::string::npos);
    in_.require_challenge = false;
    EXPECT_EQ(run(frame()).status, Status::Ok);
}

TEST_F(VerifyPairTest, AKeyOffTheCurveIsMalformed) {
    core::protocol::PairBody b = body();
    b.phone_public[64] ^= 1;  // Y changed: not on the curve
    Decision d = run(frame(b));
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_NE(d.detail.find("not a P-256 point"), std::string::npos) << d.detail;

    b = body();
    b.phone_public[0] = 0x02;  // compressed prefix
    EXPECT_EQ(run(frame(b)).status, Status::Malformed);
    b.phone_public.fill(0);
    EXPECT_EQ(run(frame(b)).status, Status::Malformed);
}

TEST_F(VerifyPairTest, AnExpiredCodeIsRefused) {
    in_.now = in_.code_expires - 1;
    EXPECT_EQ(run(frame()).status, Status::Ok);
    in_.now = in_.code_expires;
    Decision d = run(frame());
    EXPECT_EQ(d.status, Status::CodeExpired);
    EXPECT_TRUE(d.sealed_reply);
    EXPECT_NE(d.detail.find("expired 0 s ago"), std::string::npos) << d.detail;
    in_.now = in_.code_expires + 3600;
    d = run(frame());
    EXPECT_EQ(d.status, Status::CodeExpired);
    EXPECT_NE(d.detail.find("expired 3600 s ago"), std::string::npos) << d.detail;
}

// The documented order: device, revoked, code used, counter, seal, challenge,
// key, window.
TEST_F(VerifyPairTest, OrderOfChecks) {
    in_.now = in_.code_expires + 10;  // expired throughout
    Bytes wrong = code_bytes_;
    wrong[3] ^= 1;
    core::protocol::PairBody bad = body();
    bad.challenge[0] ^= 1;
    bad.phone_public[64] ^= 1;
    dev_.revoked = true;
    EXPECT_EQ(run(frame(bad, 1, &wrong)).status, Status::Revoked);
    dev_.revoked = false;
    dev_.pending = false;
    EXPECT_EQ(run(frame(bad, 1, &wrong)).status, Status::CodeUsed);
    dev_.pending = true;
    EXPECT_EQ(run(frame(bad, 1, &wrong)).status, Status::Malformed);  // counter
    EXPECT_EQ(run(frame(bad, 0, &wrong)).status, Status::BadMac);
    EXPECT_EQ(run(frame(bad)).status, Status::Replayed);
    bad.challenge = challenge_;
    EXPECT_EQ(run(frame(bad)).status, Status::Malformed);  // key
    EXPECT_EQ(run(frame()).status, Status::CodeExpired);
}

// verify() never pairs and verify_pair() never runs a command.
TEST_F(VerifyPairTest, VerifyRefusesAPairRequest) {
    VerifyInput vi;
    vi.now = kNow;
    vi.device = &dev_;
    vi.expected_challenge = challenge_;
    const Bytes f = frame();
    const Decision d = verify(f, core::protocol::decode_request_header(f), vi);
    EXPECT_EQ(d.status, Status::Malformed);
    EXPECT_FALSE(d.pair);
    EXPECT_FALSE(d.sealed_reply);
}

}  // namespace
}  // namespace bzs::core::auth
