// SPDX-License-Identifier: GPL-3.0-or-later
// The pairing URI: both forms, percent-encoding, every refusal, and that the
// secret never appears in an error.
#include "core/protocol/pairing_uri.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

namespace bzs::core::protocol {
namespace {

Bytes secret_bytes() {
    Bytes s(32);
    for (std::size_t i = 0; i < s.size(); ++i) {
        s[i] = static_cast<std::uint8_t>(0x91 + 13 * i);
    }
    return s;
}

Pairing sample() {
    Pairing p;
    for (std::size_t i = 0; i < 16; ++i) {
        p.pi_id[i] = static_cast<std::uint8_t>(0xC0 + i);
        p.device_id[i] = static_cast<std::uint8_t>(0x30 + i);
    }
    p.pi_name = "garage-pi";
    p.secret = core::crypto::SecretBytes(secret_bytes());
    p.totp.hash = core::crypto::Hash::Sha256;
    p.totp.digits = 8;
    p.totp.step_seconds = 60;
    p.device_name = "Alice's phone";
    return p;
}

std::string secret_b32() {
    return core::crypto::base32_encode(secret_bytes(), false);
}

void expect_same(const Pairing& a, const Pairing& b) {
    EXPECT_EQ(a.pi_id, b.pi_id);
    EXPECT_EQ(a.pi_name, b.pi_name);
    EXPECT_EQ(a.device_id, b.device_id);
    EXPECT_TRUE(core::crypto::ct_equal(a.secret.view(), b.secret.view()));
    EXPECT_EQ(a.totp.hash, b.totp.hash);
    EXPECT_EQ(a.totp.digits, b.totp.digits);
    EXPECT_EQ(a.totp.step_seconds, b.totp.step_seconds);
    EXPECT_EQ(a.device_name, b.device_name);
}

// Replaces the value of one field of a URI, or removes the field (nullptr).
std::string with_field(const std::string& uri, const std::string& key, const char* value) {
    const auto start = uri.find(key + "=", uri.find_first_of("?#"));
    const auto end = uri.find('&', start);
    const std::string rest = end == std::string::npos ? "" : uri.substr(end);
    if (value == nullptr) {
        // Drop "key=...", and the '&' that joined it to the previous field.
        const std::string before = uri.substr(0, start);
        if (before.back() == '&') {
            return before.substr(0, before.size() - 1) + rest;
        }
        return before + (rest.empty() ? "" : rest.substr(1));
    }
    return uri.substr(0, start) + key + "=" + value + rest;
}

TEST(PairingUri, CanonicalFormExact) {
    const std::string uri = pairing_to_uri(sample());
    EXPECT_EQ(uri,
              "bluezscript://pair?v=1&pi=c0c1c2c3c4c5c6c7c8c9cacbcccdcecf&name=garage-pi"
              "&dev=303132333435363738393a3b3c3d3e3f&secret=" +
                  secret_b32() + "&alg=SHA256&digits=8&period=60&label=Alice%27s%20phone");
    EXPECT_EQ(secret_b32().find('='), std::string::npos);  // unpadded
}

TEST(PairingUri, RoundTripBothForms) {
    const Pairing p = sample();
    const PairingParse a = parse_pairing(pairing_to_uri(p));
    ASSERT_TRUE(a.pairing) << a.error;
    expect_same(*a.pairing, p);

    const std::string app = pairing_to_app_url(p, "https://pi.local:8443/app/");
    EXPECT_EQ(app.rfind("https://pi.local:8443/app/#v=1&pi=", 0), 0U) << app;
    const PairingParse b = parse_pairing(app);
    ASSERT_TRUE(b.pairing) << b.error;
    expect_same(*b.pairing, p);
}

TEST(PairingUri, AppUrlReplacesAnExistingFragment) {
    const Pairing p = sample();
    const std::string uri = pairing_to_uri(p);
    EXPECT_EQ(pairing_to_app_url(p, "https://h/app/#old&stuff"),
              "https://h/app/#" + uri.substr(uri.find('?') + 1));
}

TEST(PairingUri, NoLabelOmitsTheField) {
    Pairing p = sample();
    p.device_name.clear();
    const std::string uri = pairing_to_uri(p);
    EXPECT_EQ(uri.find("label"), std::string::npos);
    const PairingParse r = parse_pairing(uri);
    ASSERT_TRUE(r.pairing) << r.error;
    EXPECT_TRUE(r.pairing->device_name.empty());
}

TEST(PairingUri, LabelsAndNamesWithSpacesUnicodeAndMarkup) {
    for (const std::string text :
         {"Bob's phone",
          "K\xc3\xbc"
          "che \xe2\x98\x95",
          "<script>alert('x')</script>", "a&b=c#d?e", "100% + 1", "tab\there", "/\\\"'"}) {
        Pairing p = sample();
        p.device_name = text;
        p.pi_name = text;
        const std::string uri = pairing_to_uri(p);
        // Nothing of the text survives unencoded that could split or end the query.
        const std::string query = uri.substr(uri.find('?') + 1);
        for (char c : std::string(" <>'\"&#=?%+\t/\\")) {
            for (const std::string field : {"name=", "label="}) {
                const auto start = query.find(field) + field.size();
                const std::string value = query.substr(start, query.find('&', start) - start);
                if (c == '%') {
                    continue;  // '%' introduces every escape
                }
                EXPECT_EQ(value.find(c), std::string::npos) << text << " in " << field;
            }
        }
        const PairingParse r = parse_pairing(uri);
        ASSERT_TRUE(r.pairing) << r.error;
        EXPECT_EQ(r.pairing->device_name, text);
        EXPECT_EQ(r.pairing->pi_name, text);
    }
}

TEST(PairingUri, PercentEncoding) {
    EXPECT_EQ(percent_encode("AZaz09-._~"), "AZaz09-._~");
    EXPECT_EQ(percent_encode(" "), "%20");
    EXPECT_EQ(percent_encode("+"), "%2B");
    EXPECT_EQ(percent_encode("\xe2\x98\x95"), "%E2%98%95");
    EXPECT_EQ(percent_encode(std::string("\0", 1)), "%00");
    EXPECT_EQ(percent_decode("%e2%98%95"), "\xe2\x98\x95");
    EXPECT_EQ(percent_decode("a+b"), "a+b");  // '+' is not a space here
    EXPECT_EQ(percent_decode("%41%42"), "AB");
    EXPECT_FALSE(percent_decode("%"));
    EXPECT_FALSE(percent_decode("%4"));
    EXPECT_FALSE(percent_decode("a%G1"));
    EXPECT_FALSE(percent_decode("%%41"));
}

TEST(PairingUri, DefaultsWhenTotpFieldsAbsent) {
    std::string uri = pairing_to_uri(sample());
    uri = with_field(with_field(with_field(uri, "alg", nullptr), "digits", nullptr), "period",
                     nullptr);
    const PairingParse r = parse_pairing(uri);
    ASSERT_TRUE(r.pairing) << r.error;
    EXPECT_EQ(r.pairing->totp.hash, core::crypto::Hash::Sha1);
    EXPECT_EQ(r.pairing->totp.digits, 6);
    EXPECT_EQ(r.pairing->totp.step_seconds, 30);
}

TEST(PairingUri, LimitsOfDigitsPeriodAndName) {
    const std::string uri = pairing_to_uri(sample());
    for (const char* d : {"6", "7", "8"}) {
        EXPECT_TRUE(parse_pairing(with_field(uri, "digits", d)).pairing) << d;
    }
    for (const char* s : {"15", "300"}) {
        EXPECT_TRUE(parse_pairing(with_field(uri, "period", s)).pairing) << s;
    }
    for (const char* a : {"SHA1", "sha256", "SHA-512"}) {
        EXPECT_TRUE(parse_pairing(with_field(uri, "alg", a)).pairing) << a;
    }
    EXPECT_TRUE(parse_pairing(with_field(uri, "name", std::string(64, 'n').c_str())).pairing);
    // 64 bytes, not characters: 22 three-byte characters are 66 bytes.
    std::string wide;
    for (int i = 0; i < 22; ++i) {
        wide += "%E2%98%95";
    }
    EXPECT_FALSE(parse_pairing(with_field(uri, "name", wide.c_str())).pairing);
}

struct BadCase {
    const char* what;
    std::string uri;
    std::string error;
};

std::vector<BadCase> bad_cases() {
    const std::string uri = pairing_to_uri(sample());
    const std::string b32 = secret_b32();
    Bytes nineteen = secret_bytes();
    nineteen.resize(19);
    const std::string short_secret = core::crypto::base32_encode(nineteen, false);
    return {
        {"empty", "", "not a pairing URI"},
        {"other scheme", "https://example.org/", "not a pairing URI"},
        {"no query", "bluezscript://pair", "not a pairing URI"},
        {"no v", with_field(uri, "v", nullptr), "lacks the 'v' field"},
        {"no pi", with_field(uri, "pi", nullptr), "lacks the 'pi' field"},
        {"no name", with_field(uri, "name", nullptr), "lacks the 'name' field"},
        {"no dev", with_field(uri, "dev", nullptr), "lacks the 'dev' field"},
        {"no secret", with_field(uri, "secret", nullptr), "lacks the 'secret' field"},
        {"v=2", with_field(uri, "v", "2"), "version '2' is not supported"},
        {"v=01", with_field(uri, "v", "01"), "version '01' is not supported"},
        {"pi short", with_field(uri, "pi", "c0c1"), "'pi' must be 32 hex digits"},
        {"pi odd", with_field(uri, "pi", "c0c1c2c3c4c5c6c7c8c9cacbcccdcec"),
         "'pi' must be 32 hex digits"},
        {"pi not hex", with_field(uri, "pi", "g0c1c2c3c4c5c6c7c8c9cacbcccdcecf"),
         "'pi' must be 32 hex digits"},
        {"dev short", with_field(uri, "dev", "30"), "'dev' must be 32 hex digits"},
        {"dev empty", with_field(uri, "dev", ""), "'dev' must be 32 hex digits"},
        {"secret bad char", with_field(uri, "secret", (b32.substr(0, 51) + "1").c_str()),
         "'secret' must be base32 of at least 20 bytes"},
        {"secret bad length", with_field(uri, "secret", b32.substr(0, 51).c_str()),
         "'secret' must be base32 of at least 20 bytes"},
        {"secret 19 bytes", with_field(uri, "secret", short_secret.c_str()),
         "'secret' must be base32 of at least 20 bytes"},
        {"secret empty", with_field(uri, "secret", ""),
         "'secret' must be base32 of at least 20 bytes"},
        {"name empty", with_field(uri, "name", ""), "'name' must be 1..64 characters"},
        {"name 65", with_field(uri, "name", std::string(65, 'n').c_str()),
         "'name' must be 1..64 characters"},
        {"alg", with_field(uri, "alg", "MD5"), "'alg' must be SHA1, SHA256 or SHA512"},
        {"digits 5", with_field(uri, "digits", "5"), "'digits' must be 6, 7 or 8"},
        {"digits 9", with_field(uri, "digits", "9"), "'digits' must be 6, 7 or 8"},
        {"digits 6x", with_field(uri, "digits", "6x"), "'digits' must be 6, 7 or 8"},
        {"digits empty", with_field(uri, "digits", ""), "'digits' must be 6, 7 or 8"},
        {"period 14", with_field(uri, "period", "14"), "'period' must be 15..300 seconds"},
        {"period 301", with_field(uri, "period", "301"), "'period' must be 15..300 seconds"},
        {"period -30", with_field(uri, "period", "-30"), "'period' must be 15..300 seconds"},
        {"duplicate secret", uri + "&secret=" + b32, "field 'secret' appears twice"},
        {"no '='", uri + "&label", "field without a value"},
        {"bad escape in secret", with_field(uri, "secret", (b32 + "%G").c_str()),
         "bad percent-encoding in field 'secret'"},
        {"bad escape in name", with_field(uri, "name", "a%zz"),
         "bad percent-encoding in field 'name'"},
    };
}

TEST(PairingUri, EveryBadFieldHasASpecificError) {
    for (const auto& c : bad_cases()) {
        const PairingParse r = parse_pairing(c.uri);
        EXPECT_FALSE(r.pairing) << c.what;
        EXPECT_NE(r.error.find(c.error), std::string::npos) << c.what << ": " << r.error;
    }
}

TEST(PairingUri, SecretNeverAppearsInAnError) {
    const std::string hex = core::crypto::hex_encode(secret_bytes());
    const std::string b32 = secret_b32();
    std::string lower_b32 = b32;
    for (auto& ch : lower_b32) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    for (const auto& c : bad_cases()) {
        const PairingParse r = parse_pairing(c.uri);
        // Any 8-character window of the secret would be a leak.
        for (const std::string& s : {hex, b32, lower_b32}) {
            for (std::size_t i = 0; i + 8 <= s.size(); i += 4) {
                EXPECT_EQ(r.error.find(s.substr(i, 8)), std::string::npos)
                    << c.what << ": " << r.error;
            }
        }
    }
}

}  // namespace
}  // namespace bzs::core::protocol
