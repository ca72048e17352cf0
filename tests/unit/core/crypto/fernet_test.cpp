// SPDX-License-Identifier: GPL-3.0-or-later
// Tests of Fernet tokens (core/crypto/fernet.h): the specification's vectors, every way a
// token can be refused, and interoperability with Python's cryptography.Fernet
// through tests/tools/fernet_interop.py.
#include "core/crypto/fernet.h"

#include <gtest/gtest.h>

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "test_support.h"
#include "vectors.h"

namespace bzs::core::crypto {
namespace {

using bzs::test::load_vectors;
using nlohmann::json;

constexpr std::int64_t kT = 1'700'000'000;  // an arbitrary fixed "now"
constexpr std::array<std::size_t, 6> kSizes{0, 1, 15, 16, 17, 100};

Bytes ascii(std::string_view s) {
    return {s.begin(), s.end()};
}
Bytes bytes_of(const SecretBytes& s) {
    return {s.view().begin(), s.view().end()};
}

// "ok", or the name of the refusal: readable in failure messages.
std::string_view outcome(const Fernet::Result& r) {
    return r.ok() ? std::string_view("ok") : fernet_error_name(r.error);
}
std::string_view name(FernetError e) {
    return fernet_error_name(e);
}

Bytes pattern(std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) {
        b[i] = static_cast<std::uint8_t>(i * 7 + 3);
    }
    return b;
}

// RFC 3339 "YYYY-MM-DDTHH:MM:SS" followed by "Z" or "+HH:MM"/"-HH:MM" -> unix seconds.
std::int64_t parse_rfc3339(std::string_view s) {
    auto num = [&](std::size_t pos, std::size_t len) {
        int v = 0;
        const auto* first = s.data() + pos;
        const auto [p, ec] = std::from_chars(first, first + len, v);
        if (ec != std::errc{} || p != first + len) {
            throw std::invalid_argument("bad RFC 3339 time in test data");
        }
        return v;
    };
    if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':') {
        throw std::invalid_argument("bad RFC 3339 time in test data");
    }
    using namespace std::chrono;
    const year_month_day date{year{num(0, 4)}, month{static_cast<unsigned>(num(5, 2))},
                              day{static_cast<unsigned>(num(8, 2))}};
    if (!date.ok()) {
        throw std::invalid_argument("bad RFC 3339 date in test data");
    }
    std::int64_t t = sys_days{date}.time_since_epoch() / seconds{1};
    t += num(11, 2) * 3600 + num(14, 2) * 60 + num(17, 2);
    const std::string_view zone = s.substr(19);
    if (zone == "Z") {
        return t;
    }
    if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':') {
        throw std::invalid_argument("bad RFC 3339 offset in test data");
    }
    const int offset = num(20, 2) * 3600 + num(23, 2) * 60;
    // Local time = UTC + offset, so UTC = local - offset.
    return zone[0] == '+' ? t - offset : t + offset;
}

TEST(FernetHelpers, ParseRfc3339) {
    EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
    EXPECT_EQ(parse_rfc3339("1970-01-01T01:00:00+01:00"), 0);
    EXPECT_EQ(parse_rfc3339("2001-09-09T01:46:40Z"), 1000000000);
    EXPECT_EQ(parse_rfc3339("1985-10-26T01:20:00-07:00"), 499162800);
}

// ---- the specification's vectors ----

TEST(FernetVectors, Generate) {
    json v;
    ASSERT_NO_FATAL_FAILURE(load_vectors("fernet/generate.json", v));
    ASSERT_EQ(v.size(), 1U);
    for (const auto& c : v) {
        auto f = Fernet::from_base64(c.at("secret").get<std::string>());
        ASSERT_TRUE(f.has_value());
        Bytes iv;
        for (const auto& b : c.at("iv")) {
            iv.push_back(b.get<std::uint8_t>());
        }
        const std::int64_t now = parse_rfc3339(c.at("now").get<std::string>());
        EXPECT_EQ(f->encrypt_with_iv(ascii(c.at("src").get<std::string>()), now, iv),
                  c.at("token").get<std::string>());
    }
}

TEST(FernetVectors, Verify) {
    json v;
    ASSERT_NO_FATAL_FAILURE(load_vectors("fernet/verify.json", v));
    ASSERT_EQ(v.size(), 1U);
    for (const auto& c : v) {
        auto f = Fernet::from_base64(c.at("secret").get<std::string>());
        ASSERT_TRUE(f.has_value());
        const std::int64_t now = parse_rfc3339(c.at("now").get<std::string>());
        const auto r =
            f->decrypt(c.at("token").get<std::string>(), now, c.at("ttl_sec").get<std::int64_t>());
        ASSERT_EQ(outcome(r), "ok");
        EXPECT_EQ(bytes_of(*r.plaintext), ascii(c.at("src").get<std::string>()));
    }
}

// ---- refusals ----

class FernetRefusal : public ::testing::Test {
  protected:
    FernetRefusal() : key(random_bytes(32)), fernet(SecretBytes(key)) {}

    // Appends a valid HMAC to `body` and encodes it: a token that passes the MAC
    // check whatever its other fields say.
    [[nodiscard]] std::string seal(const Bytes& body) const {
        const Bytes signing(key.begin(), key.begin() + 16);
        Bytes t = body;
        const Bytes mac = hmac(Hash::Sha256, signing, body);
        t.insert(t.end(), mac.begin(), mac.end());
        return base64url_encode(t);
    }
    [[nodiscard]] Bytes raw_token(ByteView plaintext, std::int64_t now) const {
        auto raw = base64url_decode(fernet.encrypt(plaintext, now));
        if (!raw) {
            throw std::runtime_error("encrypt produced bad base64");
        }
        return *raw;
    }
    static Bytes without_mac(const Bytes& raw) {
        if (raw.size() < 32) {
            throw std::logic_error("token shorter than its MAC");
        }
        return {raw.begin(), raw.end() - 32};
    }
    static Bytes with_timestamp(Bytes raw, std::uint64_t ts) {
        for (std::size_t i = 0; i < 8; ++i) {
            raw[1 + i] = static_cast<std::uint8_t>(ts >> (8U * (7 - i)));
        }
        return raw;
    }

    Bytes key;
    Fernet fernet;
};

TEST_F(FernetRefusal, BadVersionByte) {
    for (std::uint8_t version : std::initializer_list<std::uint8_t>{0x00, 0x7f, 0x81, 0xff}) {
        Bytes raw = raw_token(pattern(5), kT);
        raw[0] = version;
        EXPECT_EQ(outcome(fernet.decrypt(base64url_encode(raw), kT)),
                  name(FernetError::BadVersion));
        // Even with a MAC that verifies, the version is refused.
        EXPECT_EQ(outcome(fernet.decrypt(seal(without_mac(raw)), kT)),
                  name(FernetError::BadVersion));
    }
}

TEST_F(FernetRefusal, TruncatedToken) {
    const Bytes raw = raw_token(pattern(20), kT);  // 25 + 32 + 32 bytes
    for (std::size_t len :
         std::initializer_list<std::size_t>{1, 9, 25, 57, 72, raw.size() - 1, raw.size() - 16}) {
        SCOPED_TRACE(len);
        const Bytes cut(raw.begin(), raw.begin() + static_cast<std::ptrdiff_t>(len));
        EXPECT_EQ(
            outcome(fernet.decrypt(base64url_encode(cut), kT)),
            len == raw.size() - 16 ? name(FernetError::BadMac) : name(FernetError::BadLength));
    }
    // A ciphertext that is not whole blocks is refused even with a valid MAC.
    Bytes body = without_mac(raw);
    body.pop_back();
    EXPECT_EQ(outcome(fernet.decrypt(seal(body), kT)), name(FernetError::BadLength));
    // No ciphertext block at all.
    body.resize(25);
    EXPECT_EQ(outcome(fernet.decrypt(seal(body), kT)), name(FernetError::BadLength));
}

TEST_F(FernetRefusal, FlippedByteAnywhereFailsTheMac) {
    const Bytes raw = raw_token(pattern(17), kT);
    // Every byte after the version: timestamp, IV, ciphertext and the MAC itself.
    for (std::size_t i = 1; i < raw.size(); ++i) {
        Bytes t = raw;
        t[i] ^= 0x01;
        EXPECT_EQ(outcome(fernet.decrypt(base64url_encode(t), kT)), name(FernetError::BadMac))
            << "byte " << i;
    }
    EXPECT_EQ(outcome(fernet.decrypt(base64url_encode(raw), kT)), "ok");
}

TEST_F(FernetRefusal, BadBase64) {
    const std::string token = fernet.encrypt(pattern(5), kT);
    std::string plus = token;
    plus[10] = '+';  // standard alphabet, not base64url
    EXPECT_EQ(outcome(fernet.decrypt(plus, kT)), name(FernetError::BadEncoding));
    std::string star = token;
    star[3] = '*';
    EXPECT_EQ(outcome(fernet.decrypt(star, kT)), name(FernetError::BadEncoding));
    EXPECT_EQ(outcome(fernet.decrypt(token + "A", kT)), name(FernetError::BadEncoding));
    EXPECT_EQ(outcome(fernet.decrypt(" " + token, kT)), name(FernetError::BadEncoding));
}

TEST_F(FernetRefusal, ExpiredWithTtl) {
    const std::string token = fernet.encrypt(pattern(5), kT);
    EXPECT_EQ(outcome(fernet.decrypt(token, kT + 60, 60)), "ok");  // exactly at the TTL
    EXPECT_EQ(outcome(fernet.decrypt(token, kT + 61, 60)), name(FernetError::Expired));
    EXPECT_EQ(outcome(fernet.decrypt(token, kT + 1, 0)), name(FernetError::Expired));
    // Without a TTL the age does not matter.
    EXPECT_EQ(outcome(fernet.decrypt(token, kT + 1'000'000)), "ok");
}

TEST_F(FernetRefusal, FromTheFutureWithTtl) {
    const std::string token = fernet.encrypt(pattern(5), kT);
    EXPECT_EQ(outcome(fernet.decrypt(token, kT - 60, 3600)), "ok");  // within the 60 s skew
    EXPECT_EQ(outcome(fernet.decrypt(token, kT - 61, 3600)), name(FernetError::FromFuture));
    EXPECT_EQ(outcome(fernet.decrypt(token, kT - 1'000'000)), "ok");  // no TTL, no clock check
}

// The timestamp is read before the MAC is checked, so it is attacker-controlled:
// extreme values must give a clean refusal, not signed overflow.
TEST_F(FernetRefusal, ExtremeTimestampsAreFromTheFuture) {
    const Bytes body = without_mac(raw_token(pattern(5), kT));
    for (std::uint64_t ts : {static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
                             std::uint64_t{1} << 63U, ~std::uint64_t{0}}) {
        SCOPED_TRACE(ts);
        EXPECT_EQ(outcome(fernet.decrypt(seal(with_timestamp(body, ts)), kT, 60)),
                  name(FernetError::FromFuture));
    }
}

TEST_F(FernetRefusal, WrongKey) {
    const std::string token = fernet.encrypt(pattern(5), kT);
    const Fernet other(SecretBytes(random_bytes(32)));
    EXPECT_EQ(outcome(other.decrypt(token, kT)), name(FernetError::BadMac));
    // Same signing key, different encryption key: the MAC passes, the padding fails
    // or the plaintext differs; it never yields the original plaintext.
    Bytes k2 = key;
    k2[31] ^= 0x80;
    const auto r = Fernet(SecretBytes(k2)).decrypt(token, kT);
    if (r.ok()) {
        EXPECT_NE(bytes_of(*r.plaintext), pattern(5));
    } else {
        EXPECT_EQ(outcome(r), name(FernetError::BadPadding));
    }
}

TEST_F(FernetRefusal, BadPaddingBehindAValidMac) {
    // 15 bytes of plaintext end in one padding byte 0x01. In CBC the last byte of
    // the IV is XORed into it, so flipping its low bit makes the padding 0x00,
    // which is invalid; re-sealing keeps the MAC valid.
    Bytes body = without_mac(raw_token(pattern(15), kT));
    body[9 + 15] ^= 0x01;
    EXPECT_EQ(outcome(fernet.decrypt(seal(body), kT)), name(FernetError::BadPadding));
}

TEST(FernetErrors, NamesAreDistinct) {
    std::set<std::string_view> names;
    for (FernetError e : {FernetError::BadEncoding, FernetError::BadVersion, FernetError::BadLength,
                          FernetError::BadMac, FernetError::BadPadding, FernetError::Expired,
                          FernetError::FromFuture}) {
        EXPECT_FALSE(name(e).empty());
        names.insert(name(e));
    }
    EXPECT_EQ(names.size(), 7U);
}

// ---- round trips and keys ----

TEST(Fernet, RoundTripsSeveralSizes) {
    const Fernet f(SecretBytes(random_bytes(32)));
    for (std::size_t n : kSizes) {
        SCOPED_TRACE(n);
        const std::string token = f.encrypt(pattern(n), kT);
        const auto raw = base64url_decode(token);
        ASSERT_TRUE(raw.has_value());
        // version + timestamp + IV + PKCS#7-padded ciphertext + HMAC
        EXPECT_EQ(raw->size(), 25 + (n / 16 + 1) * 16 + 32);
        const auto r = f.decrypt(token, kT, 60);
        ASSERT_EQ(outcome(r), "ok");
        EXPECT_EQ(bytes_of(*r.plaintext), pattern(n));
    }
}

TEST(Fernet, FreshIvEachEncryption) {
    const Fernet f(SecretBytes(random_bytes(32)));
    const std::string a = f.encrypt(pattern(16), kT);
    const std::string b = f.encrypt(pattern(16), kT);
    EXPECT_NE(a, b);
    EXPECT_EQ(outcome(f.decrypt(a, kT)), "ok");
    EXPECT_EQ(outcome(f.decrypt(b, kT)), "ok");
}

TEST(Fernet, KeyHandling) {
    const std::string k = Fernet::generate_key_base64();
    const auto raw = base64url_decode(k);
    ASSERT_TRUE(raw.has_value());
    EXPECT_EQ(raw->size(), 32U);
    EXPECT_NE(Fernet::generate_key_base64(), k);
    EXPECT_TRUE(Fernet::from_base64(k).has_value());

    EXPECT_FALSE(Fernet::from_base64("").has_value());
    EXPECT_FALSE(Fernet::from_base64(base64url_encode(random_bytes(31))).has_value());
    EXPECT_FALSE(Fernet::from_base64(base64url_encode(random_bytes(33))).has_value());
    std::string bad = k;
    bad[0] = '!';
    EXPECT_FALSE(Fernet::from_base64(bad).has_value());

    EXPECT_THROW(Fernet(SecretBytes(31)), std::invalid_argument);
    EXPECT_THROW(Fernet(SecretBytes(64)), std::invalid_argument);
    const Fernet f(SecretBytes(32));
    EXPECT_THROW((void)f.encrypt_with_iv(pattern(3), kT, pattern(15)), std::invalid_argument);
    EXPECT_THROW((void)f.encrypt_with_iv(pattern(3), kT, pattern(17)), std::invalid_argument);
}

// ---- interoperability with Python's cryptography.Fernet ----

class FernetPython : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(std::filesystem::exists("/usr/bin/python3"))
            << "Debian's python3 (with python3-cryptography) is required";
        ASSERT_TRUE(std::filesystem::is_regular_file(script_)) << script_;
    }

    test::CommandResult python(const std::string& command, const std::string& key,
                               const std::string& arg) const {
        return test::run_command({"/usr/bin/python3", script_.string(), command, key, arg});
    }
    static std::string trim(std::string s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
            s.pop_back();
        }
        return s;
    }

    const std::filesystem::path script_ =
        std::filesystem::path(BZS_TOOLS_DIR) / "fernet_interop.py";
    const std::string key_b64_ = Fernet::generate_key_base64();
    const Fernet fernet_ = *Fernet::from_base64(key_b64_);
};

TEST_F(FernetPython, CppEncryptsPythonDecrypts) {
    for (std::size_t n : kSizes) {
        SCOPED_TRACE(n);
        const std::string token = fernet_.encrypt(pattern(n), kT);
        const auto r = python("decrypt", key_b64_, token);
        ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
        EXPECT_EQ(trim(r.out), hex_encode(pattern(n)));
    }
}

TEST_F(FernetPython, PythonEncryptsCppDecrypts) {
    for (std::size_t n : kSizes) {
        SCOPED_TRACE(n);
        const auto r = python("encrypt", key_b64_, hex_encode(pattern(n)));
        ASSERT_EQ(r.exit_code, 0) << r.err;
        // Python stamps its own clock; without a TTL only the cryptography is checked.
        const auto d = fernet_.decrypt(trim(r.out), kT);
        ASSERT_EQ(outcome(d), "ok");
        EXPECT_EQ(bytes_of(*d.plaintext), pattern(n));
    }
}

TEST_F(FernetPython, TamperedTokenRefusedByPython) {
    for (std::size_t n : kSizes) {
        SCOPED_TRACE(n);
        auto raw = base64url_decode(fernet_.encrypt(pattern(n), kT));
        ASSERT_TRUE(raw.has_value());
        (*raw)[raw->size() / 2] ^= 0x40;  // inside the IV or ciphertext
        const std::string tampered = base64url_encode(*raw);
        const auto r = python("decrypt", key_b64_, tampered);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_EQ(trim(r.out), "invalid");
        EXPECT_EQ(outcome(fernet_.decrypt(tampered, kT)), name(FernetError::BadMac));
    }
}

TEST_F(FernetPython, WrongKeyRefusedByPython) {
    const std::string token = fernet_.encrypt(pattern(16), kT);
    const auto r = python("decrypt", Fernet::generate_key_base64(), token);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(trim(r.out), "invalid");
}

}  // namespace
}  // namespace bzs::core::crypto
