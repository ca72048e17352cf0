// SPDX-License-Identifier: GPL-3.0-or-later
// Tests of the pure crypto layer (core/crypto/crypto.h): RFC vectors read from the shared
// vectors folder, TOTP windows, a cross-check against oathtool, encodings, HMAC and
// the small helpers.
#include "core/crypto/crypto.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "test_support.h"
#include "vectors.h"

namespace bzs::core::crypto {
namespace {

using bzs::test::load_vectors;
using nlohmann::json;

Bytes ascii(std::string_view s) {
    return {s.begin(), s.end()};
}

Bytes unhex(std::string_view s) {
    auto b = hex_decode(s);
    if (!b) {
        throw std::invalid_argument("bad hex in test data");
    }
    return *b;
}

std::string hex(const SecretBytes& s) {
    return hex_encode(s.view());
}

Hash hash_of(const json& name) {
    auto h = parse_hash(name.get<std::string>());
    if (!h) {
        throw std::invalid_argument("unknown hash in test data");
    }
    return *h;
}

// ---- RFC vectors ----

TEST(CryptoVectors, Rfc4226Hotp) {
    json v;
    ASSERT_NO_FATAL_FAILURE(load_vectors("rfc4226-hotp.json", v));
    const Bytes secret = ascii(v.at("secret_ascii").get<std::string>());
    const int digits = v.at("digits").get<int>();
    const Hash h = hash_of(v.at("algorithm"));
    ASSERT_EQ(v.at("cases").size(), 10U);
    for (const auto& c : v.at("cases")) {
        const auto counter = c.at("counter").get<std::uint64_t>();
        SCOPED_TRACE("counter " + std::to_string(counter));
        EXPECT_EQ(format_code(hotp(secret, counter, digits, h), digits),
                  c.at("code").get<std::string>());
    }
}

TEST(CryptoVectors, Rfc6238Totp) {
    json v;
    ASSERT_NO_FATAL_FAILURE(load_vectors("rfc6238-totp.json", v));
    ASSERT_EQ(v.at("cases").size(), 18U);
    std::set<Hash> hashes_seen;
    for (const auto& c : v.at("cases")) {
        const auto t = c.at("time").get<std::int64_t>();
        const std::string alg = c.at("algorithm").get<std::string>();
        SCOPED_TRACE(alg + " at " + std::to_string(t));
        const Bytes secret = ascii(c.at("secret_ascii").get<std::string>());
        TotpParams p;
        p.hash = hash_of(c.at("algorithm"));
        p.digits = c.at("digits").get<int>();
        p.step_seconds = c.at("step_seconds").get<int>();
        hashes_seen.insert(p.hash);
        const std::string expect = c.at("code").get<std::string>();
        EXPECT_EQ(format_code(totp(secret, t, p), p.digits), expect);
        // The same code verifies at that time and names that time's step.
        const auto matched =
            totp_verify(secret, static_cast<std::uint32_t>(std::stoul(expect)), t, p);
        ASSERT_TRUE(matched.has_value());
        EXPECT_EQ(*matched, totp_step(t, p.step_seconds));
    }
    EXPECT_EQ(hashes_seen.size(), 3U);
}

TEST(CryptoVectors, Rfc5869Hkdf) {
    json v;
    ASSERT_NO_FATAL_FAILURE(load_vectors("rfc5869-hkdf.json", v));
    ASSERT_EQ(v.at("cases").size(), 7U);
    for (const auto& c : v.at("cases")) {
        SCOPED_TRACE(c.at("case").get<std::string>());
        // A null or absent salt means "not provided", which hkdf() takes as empty.
        Bytes salt;
        if (c.contains("salt") && !c.at("salt").is_null()) {
            salt = unhex(c.at("salt").get<std::string>());
        }
        const auto len = c.at("length").get<std::size_t>();
        const SecretBytes okm = hkdf(hash_of(c.at("hash")), unhex(c.at("ikm").get<std::string>()),
                                     salt, unhex(c.at("info").get<std::string>()), len);
        EXPECT_EQ(okm.size(), len);
        EXPECT_EQ(hex(okm), c.at("okm").get<std::string>());
    }
}

// ---- TOTP windows, steps and digits ----

class TotpWindow : public ::testing::Test {
  protected:
    const Bytes secret = ascii("12345678901234567890");  // RFC 6238 SHA-1 secret
    static constexpr std::int64_t kNow = 1111111111;
    const std::int64_t now_step = totp_step(kNow, 30);
    [[nodiscard]] std::uint32_t code_at(std::int64_t step) const {
        return hotp(secret, static_cast<std::uint64_t>(step), 6, Hash::Sha1);
    }
};

TEST_F(TotpWindow, AcceptsNeighbouringStepsAndReportsWhich) {
    const TotpParams p;  // window 1
    for (std::int64_t d : {-1, 0, 1}) {
        SCOPED_TRACE(d);
        const auto m = totp_verify(secret, code_at(now_step + d), kNow, p);
        ASSERT_TRUE(m.has_value());
        EXPECT_EQ(*m, now_step + d);
    }
}

TEST_F(TotpWindow, RejectsStepsTwoAway) {
    const TotpParams p;
    EXPECT_FALSE(totp_verify(secret, code_at(now_step - 2), kNow, p).has_value());
    EXPECT_FALSE(totp_verify(secret, code_at(now_step + 2), kNow, p).has_value());
}

TEST_F(TotpWindow, WindowZeroAcceptsOnlyTheCurrentStep) {
    TotpParams p;
    p.window = 0;
    EXPECT_EQ(totp_verify(secret, code_at(now_step), kNow, p), now_step);
    EXPECT_FALSE(totp_verify(secret, code_at(now_step - 1), kNow, p).has_value());
    EXPECT_FALSE(totp_verify(secret, code_at(now_step + 1), kNow, p).has_value());
}

TEST_F(TotpWindow, WiderWindowAcceptsFurtherSteps) {
    TotpParams p;
    p.window = 2;
    EXPECT_EQ(totp_verify(secret, code_at(now_step - 2), kNow, p), now_step - 2);
    EXPECT_EQ(totp_verify(secret, code_at(now_step + 2), kNow, p), now_step + 2);
    EXPECT_FALSE(totp_verify(secret, code_at(now_step + 3), kNow, p).has_value());
}

// Refusing a reused step is the verifier's job (src/core/verifier, tested in
// tests/unit/core/auth/verifier_test.cpp): it compares the matched step with the last
// accepted one. What it relies on is checked here: the same code presented twice,
// even a step later, reports the same step.
TEST_F(TotpWindow, SameCodeTwiceReportsTheSameStep) {
    const TotpParams p;
    const std::uint32_t code = code_at(now_step);
    const auto first = totp_verify(secret, code, kNow, p);
    const auto again = totp_verify(secret, code, kNow, p);
    const auto next_step = totp_verify(secret, code, kNow + 30, p);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(again, first);
    EXPECT_EQ(next_step, first);
}

TEST_F(TotpWindow, WrongCodeRejected) {
    const TotpParams p;
    const std::uint32_t code = code_at(now_step);
    EXPECT_FALSE(totp_verify(secret, (code + 1) % 1000000U, kNow, p).has_value());
    EXPECT_FALSE(totp_verify(ascii("another secret......"), code, kNow, p).has_value());
}

TEST(Totp, StepIsFloorDivision) {
    EXPECT_EQ(totp_step(0, 30), 0);
    EXPECT_EQ(totp_step(29, 30), 0);
    EXPECT_EQ(totp_step(30, 30), 1);
    EXPECT_EQ(totp_step(59, 30), 1);
    EXPECT_EQ(totp_step(-1, 30), -1);
    EXPECT_EQ(totp_step(-30, 30), -1);
    EXPECT_EQ(totp_step(-31, 30), -2);
    EXPECT_EQ(totp_step(1111111111, 60), 18518518);
}

TEST(Totp, SixSevenAndEightDigitsTruncateTheSameValue) {
    // RFC 6238 SHA-1 at T=1111111109 is 07081804 with 8 digits; fewer digits keep
    // the low-order ones, and the 6-digit form needs its leading zero.
    const Bytes secret = ascii("12345678901234567890");
    TotpParams p;
    p.digits = 8;
    EXPECT_EQ(format_code(totp(secret, 1111111109, p), 8), "07081804");
    p.digits = 7;
    EXPECT_EQ(format_code(totp(secret, 1111111109, p), 7), "7081804");
    p.digits = 6;
    EXPECT_EQ(format_code(totp(secret, 1111111109, p), 6), "081804");
    EXPECT_EQ(totp(secret, 1111111109, p), 81804U);
}

TEST(Totp, FormatCodePadsWithZeros) {
    EXPECT_EQ(format_code(0, 6), "000000");
    EXPECT_EQ(format_code(7, 7), "0000007");
    EXPECT_EQ(format_code(42, 8), "00000042");
    EXPECT_EQ(format_code(123456, 6), "123456");
    EXPECT_EQ(format_code(99999999, 8), "99999999");
}

TEST(Totp, DigitsOutsideSixToEightThrow) {
    const Bytes secret = ascii("12345678901234567890");
    for (int d : {-1, 0, 5, 9, 10}) {
        SCOPED_TRACE(d);
        EXPECT_THROW((void)hotp(secret, 1, d), std::invalid_argument);
        TotpParams p;
        p.digits = d;
        EXPECT_THROW((void)totp(secret, 59, p), std::invalid_argument);
        EXPECT_THROW((void)totp_verify(secret, 0, 59, p), std::invalid_argument);
    }
    for (int d : {6, 7, 8}) {
        EXPECT_NO_THROW((void)hotp(secret, 1, d));
    }
}

// A step of zero or less is a configuration error that must be reported, not a
// division by zero. Each call runs in a child so a crash fails this test only.
// Exits 0 when the call throws std::invalid_argument, 1 when it returns.
template <typename F>
[[noreturn]] void exit_zero_if_invalid_argument(F f) {
    try {
        f();
    } catch (const std::invalid_argument&) {
        std::exit(0);
    }
    std::exit(1);
}

TEST(Totp, NonPositiveStepThrows) {
    const Bytes secret = ascii("12345678901234567890");
    for (int step : {0, -30}) {
        SCOPED_TRACE(step);
        TotpParams p;
        p.step_seconds = step;
        EXPECT_EXIT(exit_zero_if_invalid_argument([&] { (void)totp_step(59, p.step_seconds); }),
                    ::testing::ExitedWithCode(0), "");
        EXPECT_EXIT(exit_zero_if_invalid_argument([&] { (void)totp(secret, 59, p); }),
                    ::testing::ExitedWithCode(0), "");
        EXPECT_EXIT(exit_zero_if_invalid_argument([&] { (void)totp_verify(secret, 0, 59, p); }),
                    ::testing::ExitedWithCode(0), "");
    }
}

TEST(Totp, ParseHashNames) {
    EXPECT_EQ(parse_hash("SHA1"), Hash::Sha1);
    EXPECT_EQ(parse_hash("sha256"), Hash::Sha256);
    EXPECT_EQ(parse_hash("Sha-512"), Hash::Sha512);
    EXPECT_FALSE(parse_hash("MD5").has_value());
    EXPECT_FALSE(parse_hash("").has_value());
    for (Hash h : {Hash::Sha1, Hash::Sha256, Hash::Sha512}) {
        EXPECT_EQ(parse_hash(hash_name(h)), h);
    }
}

// ---- cross-check with oathtool ----

// Runs oathtool with the base32 secret on stdin ("-"), so it never appears in argv.
std::string oathtool(const std::vector<std::string>& args, const Bytes& secret) {
    std::vector<std::string> argv{"oathtool"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.emplace_back("-");
    const auto r = test::run_command(argv, {}, base32_encode(secret) + "\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string out = r.out;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
        out.pop_back();
    }
    return out;
}

TEST(OathtoolCrossCheck, TotpMatchesForRandomSecretsAndTimes) {
    ASSERT_TRUE(test::have_program("oathtool")) << "oathtool is required (apt install oathtool)";
    // A fresh seed each run widens coverage; it is printed so a failure can be replayed.
    const auto seed = std::random_device{}();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const std::array<std::pair<Hash, std::size_t>, 3> kinds{
        {{Hash::Sha1, 20}, {Hash::Sha256, 32}, {Hash::Sha512, 64}}};
    for (const auto& [h, key_len] : kinds) {
        for (int digits : {6, 7, 8}) {
            for (int i = 0; i < 2; ++i) {
                Bytes secret(key_len + rng() % 8);
                for (auto& b : secret) {
                    b = static_cast<std::uint8_t>(rng());
                }
                const auto t = static_cast<std::int64_t>(rng() % 4'000'000'000ULL);
                TotpParams p;
                p.hash = h;
                p.digits = digits;
                SCOPED_TRACE(std::string(hash_name(h)) + " digits " + std::to_string(digits) +
                             " t " + std::to_string(t));
                const std::string theirs =
                    oathtool({"--totp=" + std::string(hash_name(h)), "-b",
                              "--digits=" + std::to_string(digits), "--time-step-size=30s",
                              "--now=@" + std::to_string(t)},
                             secret);
                EXPECT_EQ(format_code(totp(secret, t, p), digits), theirs);
            }
        }
    }
}

TEST(OathtoolCrossCheck, HotpMatchesForRandomCounters) {
    ASSERT_TRUE(test::have_program("oathtool")) << "oathtool is required (apt install oathtool)";
    const auto seed = std::random_device{}();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 4; ++i) {
        Bytes secret(20);
        for (auto& b : secret) {
            b = static_cast<std::uint8_t>(rng());
        }
        const std::uint64_t counter = rng() % 1'000'000'000ULL;
        SCOPED_TRACE("counter " + std::to_string(counter));
        const std::string theirs =
            oathtool({"-b", "--digits=6", "--counter=" + std::to_string(counter)}, secret);
        EXPECT_EQ(format_code(hotp(secret, counter, 6), 6), theirs);
    }
}

// ---- HMAC and SHA-256 ----

TEST(Hmac, Rfc2202Sha1) {
    // RFC 2202 test cases 1 and 2.
    EXPECT_EQ(hex_encode(hmac(Hash::Sha1, Bytes(20, 0x0b), ascii("Hi There"))),
              "b617318655057264e28bc0b6fb378c8ef146be00");
    EXPECT_EQ(hex_encode(hmac(Hash::Sha1, ascii("Jefe"), ascii("what do ya want for nothing?"))),
              "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
}

TEST(Hmac, Rfc4231Case2) {
    const Bytes key = ascii("Jefe");
    const Bytes data = ascii("what do ya want for nothing?");
    EXPECT_EQ(hex_encode(hmac(Hash::Sha256, key, data)),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_EQ(hex_encode(hmac(Hash::Sha512, key, data)),
              "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
              "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
}

TEST(Hmac, Sha256OfAbc) {
    // FIPS 180-2 example.
    EXPECT_EQ(hex_encode(sha256(ascii("abc"))),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// ---- encodings ----

TEST(Base32, Rfc4648Vectors) {
    const std::vector<std::pair<std::string, std::string>> v{{"", ""},
                                                             {"f", "MY======"},
                                                             {"fo", "MZXQ===="},
                                                             {"foo", "MZXW6==="},
                                                             {"foob", "MZXW6YQ="},
                                                             {"fooba", "MZXW6YTB"},
                                                             {"foobar", "MZXW6YTBOI======"}};
    for (const auto& [plain, enc] : v) {
        SCOPED_TRACE(plain);
        EXPECT_EQ(base32_encode(ascii(plain)), enc);
        EXPECT_EQ(base32_decode(enc), ascii(plain));
    }
}

TEST(Base32, UnpaddedAndCaseInsensitiveDecode) {
    EXPECT_EQ(base32_encode(ascii("foobar"), false), "MZXW6YTBOI");
    EXPECT_EQ(base32_encode(ascii("f"), false), "MY");
    EXPECT_EQ(base32_decode("MZXW6YTBOI"), ascii("foobar"));
    EXPECT_EQ(base32_decode("mzxw6ytboi"), ascii("foobar"));
    EXPECT_EQ(base32_decode("mZxW6yTbOi======"), ascii("foobar"));
    EXPECT_EQ(base32_decode("MY"), ascii("f"));
}

TEST(Base32, RejectsInvalidCharacters) {
    EXPECT_FALSE(base32_decode("MZXW6YT1").has_value());  // '1' is not in the alphabet
    EXPECT_FALSE(base32_decode("MZXW6YT8").has_value());
    EXPECT_FALSE(base32_decode("MZXW 6YT").has_value());
    EXPECT_FALSE(base32_decode("MZ=W6YTB").has_value());  // padding inside the text
    EXPECT_FALSE(base32_decode("MZXW6YT-").has_value());
}

TEST(Base32, RejectsNonCanonicalTrailingBits) {
    // "MY" is 'f'; "MZ" carries the same byte with non-zero leftover bits.
    EXPECT_FALSE(base32_decode("MZ").has_value());
    EXPECT_FALSE(base32_decode("MZXR").has_value());   // "fo" is MZXQ
    EXPECT_FALSE(base32_decode("MZXW7").has_value());  // "foo" is MZXW6
}

TEST(Base32, RejectsImpossibleLengths) {
    // Unpadded lengths of 1, 3 and 6 (mod 8) encode no whole number of bytes.
    EXPECT_FALSE(base32_decode("M").has_value());
    EXPECT_FALSE(base32_decode("MZX").has_value());
    EXPECT_FALSE(base32_decode("MZXW6Y").has_value());
    EXPECT_FALSE(base32_decode("MZXW6YTBO").has_value());
}

TEST(Base32, RoundTripsRandomData) {
    for (std::size_t n = 0; n < 70; ++n) {
        const Bytes b = random_bytes(n);
        EXPECT_EQ(base32_decode(base32_encode(b)), b) << n;
        EXPECT_EQ(base32_decode(base32_encode(b, false)), b) << n;
    }
}

TEST(Base64Url, Rfc4648Vectors) {
    const std::vector<std::pair<std::string, std::string>> v{{"", ""},
                                                             {"f", "Zg=="},
                                                             {"fo", "Zm8="},
                                                             {"foo", "Zm9v"},
                                                             {"foob", "Zm9vYg=="},
                                                             {"fooba", "Zm9vYmE="},
                                                             {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, enc] : v) {
        SCOPED_TRACE(plain);
        EXPECT_EQ(base64url_encode(ascii(plain)), enc);
        EXPECT_EQ(base64url_decode(enc), ascii(plain));
    }
}

TEST(Base64Url, UsesTheUrlAlphabet) {
    const Bytes b{0xfb, 0xff, 0xbf};
    EXPECT_EQ(base64url_encode(b), "-_-_");
    EXPECT_EQ(base64url_decode("-_-_"), b);
    EXPECT_FALSE(base64url_decode("+/+/").has_value());  // standard alphabet refused
}

TEST(Base64Url, RoundTripsRandomData) {
    for (std::size_t n = 0; n < 70; ++n) {
        const Bytes b = random_bytes(n);
        const std::string s = base64url_encode(b);
        EXPECT_EQ(s.size() % 4, 0U) << n;
        EXPECT_EQ(base64url_decode(s), b) << n;
    }
}

TEST(Base64Url, RejectsBadInput) {
    EXPECT_FALSE(base64url_decode("Z").has_value());      // impossible length
    EXPECT_FALSE(base64url_decode("Zg===").has_value());  // too much padding
    EXPECT_FALSE(base64url_decode("Zh==").has_value());   // non-zero leftover bits
    EXPECT_FALSE(base64url_decode("Zm9v!A==").has_value());
    EXPECT_FALSE(base64url_decode("Zm=v").has_value());  // padding inside the text
}

TEST(Hex, RoundTripAndCase) {
    const Bytes b{0x00, 0x01, 0xab, 0xff};
    EXPECT_EQ(hex_encode(b), "0001abff");
    EXPECT_EQ(hex_decode("0001abff"), b);
    EXPECT_EQ(hex_decode("0001ABFF"), b);
    EXPECT_EQ(hex_decode(""), Bytes{});
    const Bytes r = random_bytes(33);
    EXPECT_EQ(hex_decode(hex_encode(r)), r);
}

TEST(Hex, RejectsBadInput) {
    EXPECT_FALSE(hex_decode("abc").has_value());  // odd length
    EXPECT_FALSE(hex_decode("zz").has_value());
    EXPECT_FALSE(hex_decode("0g").has_value());
    EXPECT_FALSE(hex_decode("0x00").has_value());
    EXPECT_FALSE(hex_decode("00 1").has_value());
}

// ---- comparison, randomness, SecretBytes ----

TEST(CtEqual, ComparesContentAndLength) {
    const Bytes a{1, 2, 3, 4};
    Bytes last = a;
    last.back() ^= 0x01;
    EXPECT_TRUE(ct_equal(a, Bytes{1, 2, 3, 4}));
    EXPECT_FALSE(ct_equal(a, last));
    EXPECT_FALSE(ct_equal(a, Bytes{1, 2, 3}));
    EXPECT_FALSE(ct_equal(Bytes{1, 2, 3}, a));
    EXPECT_TRUE(ct_equal(Bytes{}, Bytes{}));
    EXPECT_FALSE(ct_equal(Bytes{}, a));
}

TEST(RandomBytes, RightSizeAndDistinct) {
    EXPECT_TRUE(random_bytes(0).empty());
    std::set<Bytes> seen;
    for (int i = 0; i < 16; ++i) {
        const Bytes b = random_bytes(32);
        EXPECT_EQ(b.size(), 32U);
        seen.insert(b);
    }
    EXPECT_EQ(seen.size(), 16U);  // a repeat of 256 random bits would mean a broken RNG

    std::array<std::uint8_t, 24> buf{};
    random_bytes(buf);
    std::array<std::uint8_t, 24> buf2{};
    random_bytes(buf2);
    EXPECT_NE(buf, buf2);
}

TEST(SecretBytesTest, MoveLeavesSourceEmpty) {
    const Bytes v{9, 8, 7};
    SecretBytes a{ByteView(v)};
    SecretBytes b(std::move(a));
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the property under test
    EXPECT_EQ(a.size(), 0U);
    EXPECT_EQ(Bytes(b.view().begin(), b.view().end()), v);

    SecretBytes c(4);
    c = std::move(b);
    EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(Bytes(c.view().begin(), c.view().end()), v);
}

TEST(SecretBytesTest, CopyIsIndependentAndClearEmpties) {
    const Bytes v{1, 2, 3, 4, 5};
    SecretBytes a{ByteView(v)};
    SecretBytes b(a);
    a.clear();
    EXPECT_TRUE(a.empty());
    EXPECT_EQ(a.size(), 0U);
    EXPECT_EQ(Bytes(b.view().begin(), b.view().end()), v);
    SecretBytes zeros(8);
    EXPECT_EQ(zeros.size(), 8U);
    EXPECT_EQ(Bytes(zeros.view().begin(), zeros.view().end()), Bytes(8, 0));
}

}  // namespace
}  // namespace bzs::core::crypto
