// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/crypto/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <memory>

namespace bzs::core::crypto {

// ---- SecretBytes ----

SecretBytes::SecretBytes(std::size_t n) : buf_(n, 0) {}
SecretBytes::SecretBytes(ByteView v) : buf_(v.begin(), v.end()) {}
SecretBytes::SecretBytes(const SecretBytes& o) : buf_(o.buf_) {}
SecretBytes& SecretBytes::operator=(const SecretBytes& o) {
    if (this != &o) {
        clear();
        buf_ = o.buf_;
    }
    return *this;
}
SecretBytes::SecretBytes(SecretBytes&& o) noexcept : buf_(std::move(o.buf_)) {
    o.buf_.clear();
}
SecretBytes& SecretBytes::operator=(SecretBytes&& o) noexcept {
    if (this != &o) {
        clear();
        buf_ = std::move(o.buf_);
        o.buf_.clear();
    }
    return *this;
}
SecretBytes::~SecretBytes() {
    clear();
}
void SecretBytes::clear() {
    cleanse(buf_.data(), buf_.size());
    buf_.clear();
}

void cleanse(void* p, std::size_t n) {
    if (p != nullptr && n > 0) {
        OPENSSL_cleanse(p, n);
    }
}

// ---- randomness and comparison ----

void random_bytes(std::span<std::uint8_t> out) {
    if (out.empty()) {
        return;
    }
    if (out.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
        RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
        throw CryptoError("RAND_bytes failed");
    }
}

Bytes random_bytes(std::size_t n) {
    Bytes b(n);
    random_bytes(b);
    return b;
}

bool ct_equal(ByteView a, ByteView b) {
    if (a.size() != b.size()) {
        return false;
    }
    if (a.empty()) {
        return true;
    }
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// ---- hashes, HMAC, HKDF ----

namespace {

const char* digest_name(Hash h) {
    switch (h) {
        case Hash::Sha1:
            return "SHA1";
        case Hash::Sha256:
            return "SHA256";
        case Hash::Sha512:
            return "SHA512";
    }
    return "SHA256";
}

struct MacDeleter {
    void operator()(EVP_MAC* m) const { EVP_MAC_free(m); }
};
struct MacCtxDeleter {
    void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};
struct KdfDeleter {
    void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
};
struct KdfCtxDeleter {
    void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

// Fetched once: EVP_MAC_fetch is comparatively slow and the algorithm object is
// immutable and thread-safe.
EVP_MAC* hmac_algorithm() {
    static std::unique_ptr<EVP_MAC, MacDeleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!mac) {
        throw CryptoError("HMAC not available");
    }
    return mac.get();
}

}  // namespace

std::optional<Hash> parse_hash(std::string_view name) {
    std::string up(name);
    std::transform(up.begin(), up.end(), up.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    up.erase(std::remove(up.begin(), up.end(), '-'), up.end());
    if (up == "SHA1") {
        return Hash::Sha1;
    }
    if (up == "SHA256") {
        return Hash::Sha256;
    }
    if (up == "SHA512") {
        return Hash::Sha512;
    }
    return std::nullopt;
}

std::string_view hash_name(Hash h) {
    return digest_name(h);
}

Bytes hmac(Hash h, ByteView key, ByteView data) {
    std::unique_ptr<EVP_MAC_CTX, MacCtxDeleter> ctx(EVP_MAC_CTX_new(hmac_algorithm()));
    if (!ctx) {
        throw CryptoError("EVP_MAC_CTX_new failed");
    }
    std::array<OSSL_PARAM, 2> params{
        OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>(digest_name(h)), 0),
        OSSL_PARAM_construct_end()};
    // An empty key is legal for HMAC; OpenSSL wants a non-null pointer.
    static const std::uint8_t zero = 0;
    const std::uint8_t* k = key.empty() ? &zero : key.data();
    if (EVP_MAC_init(ctx.get(), k, key.size(), params.data()) != 1 ||
        EVP_MAC_update(ctx.get(), data.data(), data.size()) != 1) {
        throw CryptoError("HMAC failed");
    }
    Bytes out(EVP_MAX_MD_SIZE);
    std::size_t len = 0;
    if (EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1) {
        throw CryptoError("HMAC final failed");
    }
    out.resize(len);
    return out;
}

Bytes sha256(ByteView data) {
    Bytes out(32);
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1) {
        throw CryptoError("SHA-256 failed");
    }
    out.resize(len);
    return out;
}

SecretBytes hkdf(Hash h, ByteView ikm, ByteView salt, ByteView info, std::size_t length) {
    std::unique_ptr<EVP_KDF, KdfDeleter> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
    if (!kdf) {
        throw CryptoError("HKDF not available");
    }
    std::unique_ptr<EVP_KDF_CTX, KdfCtxDeleter> ctx(EVP_KDF_CTX_new(kdf.get()));
    if (!ctx) {
        throw CryptoError("EVP_KDF_CTX_new failed");
    }
    std::array<OSSL_PARAM, 5> params{};
    std::size_t n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>(digest_name(h)), 0);
    params[n++] =
        OSSL_PARAM_construct_octet_string("key", const_cast<std::uint8_t*>(ikm.data()), ikm.size());
    if (!salt.empty()) {
        params[n++] = OSSL_PARAM_construct_octet_string(
            "salt", const_cast<std::uint8_t*>(salt.data()), salt.size());
    }
    params[n++] = OSSL_PARAM_construct_octet_string("info", const_cast<std::uint8_t*>(info.data()),
                                                    info.size());
    params[n] = OSSL_PARAM_construct_end();
    SecretBytes out(length);
    if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params.data()) != 1) {
        throw CryptoError("HKDF derive failed");
    }
    return out;
}

// ---- HOTP / TOTP ----

std::uint32_t hotp(ByteView secret, std::uint64_t counter, int digits, Hash h) {
    if (digits < 6 || digits > 8) {
        throw std::invalid_argument("HOTP digits must be 6..8");
    }
    std::array<std::uint8_t, 8> msg{};
    for (int i = 7; i >= 0; --i) {
        msg[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(counter & 0xFFU);
        counter >>= 8U;
    }
    Bytes mac = hmac(h, secret, msg);
    const std::size_t offset = mac.back() & 0x0FU;
    const std::uint32_t bin = (static_cast<std::uint32_t>(mac[offset] & 0x7FU) << 24U) |
                              (static_cast<std::uint32_t>(mac[offset + 1]) << 16U) |
                              (static_cast<std::uint32_t>(mac[offset + 2]) << 8U) |
                              static_cast<std::uint32_t>(mac[offset + 3]);
    cleanse(mac.data(), mac.size());
    std::uint32_t mod = 1;
    for (int i = 0; i < digits; ++i) {
        mod *= 10U;
    }
    return bin % mod;
}

std::string format_code(std::uint32_t code, int digits) {
    if (digits < 6 || digits > 8) {
        throw std::invalid_argument("code digits must be 6..8");
    }
    std::string s = std::to_string(code);
    if (s.size() < static_cast<std::size_t>(digits)) {
        s.insert(0, static_cast<std::size_t>(digits) - s.size(), '0');
    }
    return s;
}

std::int64_t totp_step(std::int64_t unix_time, int step_seconds) {
    if (step_seconds <= 0) {
        throw std::invalid_argument("TOTP step must be a positive number of seconds");
    }
    // Floor division so times before the epoch do not round toward zero.
    std::int64_t q = unix_time / step_seconds;
    if (unix_time % step_seconds != 0 && unix_time < 0) {
        --q;
    }
    return q;
}

std::uint32_t totp(ByteView secret, std::int64_t unix_time, const TotpParams& p) {
    const std::int64_t step = totp_step(unix_time, p.step_seconds);
    return hotp(secret, static_cast<std::uint64_t>(step), p.digits, p.hash);
}

std::optional<std::int64_t> totp_verify(ByteView secret, std::uint32_t code, std::int64_t unix_time,
                                        const TotpParams& p) {
    const std::int64_t now_step = totp_step(unix_time, p.step_seconds);
    std::optional<std::int64_t> matched;
    // Every step in the window is computed and compared, match or not, so the
    // time taken does not reveal which step matched.
    const int window = std::max(p.window, 0);
    for (std::int64_t d = -window; d <= window; ++d) {
        const std::int64_t step = now_step + d;
        if (step < 0) {
            continue;
        }
        const std::uint32_t expect =
            hotp(secret, static_cast<std::uint64_t>(step), p.digits, p.hash);
        std::array<std::uint8_t, 4> a{};
        std::array<std::uint8_t, 4> b{};
        for (std::size_t i = 0; i < 4; ++i) {
            a[i] = static_cast<std::uint8_t>(expect >> (8U * i));
            b[i] = static_cast<std::uint8_t>(code >> (8U * i));
        }
        if (ct_equal(a, b) && !matched) {
            matched = step;
        }
    }
    return matched;
}

// ---- encodings ----

namespace {
constexpr std::string_view kB32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::string_view kB64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Base32 and base64url share this: `bits` per character of `alphabet`, most
// significant first; leftover bits must be zero, otherwise the text is not
// canonical. `fold_case` maps ASCII letters to upper case first (base32 only).
std::optional<Bytes> decode_radix(std::string_view text, std::string_view alphabet,
                                  unsigned bits_per_char, bool fold_case) {
    Bytes out;
    out.reserve(text.size() * bits_per_char / 8);
    std::uint32_t buffer = 0;
    unsigned bits = 0;
    for (char c : text) {
        if (fold_case && c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');  // ASCII only, whatever the locale
        }
        const std::size_t v = alphabet.find(c);
        if (v == std::string_view::npos) {
            return std::nullopt;
        }
        buffer = (buffer << bits_per_char) | static_cast<std::uint32_t>(v);
        bits += bits_per_char;
        if (bits >= 8) {
            out.push_back(static_cast<std::uint8_t>(buffer >> (bits - 8)));
            bits -= 8;
        }
    }
    if (bits > 0 && (buffer & ((1U << bits) - 1U)) != 0) {
        return std::nullopt;
    }
    return out;
}
}  // namespace

std::string base32_encode(ByteView data, bool pad) {
    std::string out;
    out.reserve((data.size() + 4) / 5 * 8);
    std::uint32_t buffer = 0;
    int bits = 0;
    for (std::uint8_t byte : data) {
        buffer = (buffer << 8U) | byte;
        bits += 8;
        while (bits >= 5) {
            out.push_back(kB32[(buffer >> static_cast<unsigned>(bits - 5)) & 0x1FU]);
            bits -= 5;
        }
    }
    if (bits > 0) {
        out.push_back(kB32[(buffer << static_cast<unsigned>(5 - bits)) & 0x1FU]);
    }
    if (pad) {
        while (out.size() % 8 != 0) {
            out.push_back('=');
        }
    }
    return out;
}

std::optional<Bytes> base32_decode(std::string_view text) {
    while (!text.empty() && text.back() == '=') {
        text.remove_suffix(1);
    }
    // Valid unpadded lengths mod 8 are 0, 2, 4, 5, 7 (RFC 4648 section 6).
    const std::size_t rem = text.size() % 8;
    if (rem == 1 || rem == 3 || rem == 6) {
        return std::nullopt;
    }
    return decode_radix(text, kB32, 5, true);
}

std::string base64url_encode(ByteView data) {
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        const std::uint32_t v = (static_cast<std::uint32_t>(data[i]) << 16U) |
                                (static_cast<std::uint32_t>(data[i + 1]) << 8U) | data[i + 2];
        out.push_back(kB64Url[(v >> 18U) & 63U]);
        out.push_back(kB64Url[(v >> 12U) & 63U]);
        out.push_back(kB64Url[(v >> 6U) & 63U]);
        out.push_back(kB64Url[v & 63U]);
    }
    const std::size_t rest = data.size() - i;
    if (rest == 1) {
        const std::uint32_t v = static_cast<std::uint32_t>(data[i]) << 16U;
        out.push_back(kB64Url[(v >> 18U) & 63U]);
        out.push_back(kB64Url[(v >> 12U) & 63U]);
        out.append("==");
    } else if (rest == 2) {
        const std::uint32_t v = (static_cast<std::uint32_t>(data[i]) << 16U) |
                                (static_cast<std::uint32_t>(data[i + 1]) << 8U);
        out.push_back(kB64Url[(v >> 18U) & 63U]);
        out.push_back(kB64Url[(v >> 12U) & 63U]);
        out.push_back(kB64Url[(v >> 6U) & 63U]);
        out.push_back('=');
    }
    return out;
}

std::optional<Bytes> base64url_decode(std::string_view text) {
    std::size_t pad = 0;
    while (!text.empty() && text.back() == '=') {
        text.remove_suffix(1);
        ++pad;
    }
    // Padding, when present, must complete the last quantum exactly.
    if (pad > 2 || text.size() % 4 == 1 || (pad > 0 && (text.size() + pad) % 4 != 0)) {
        return std::nullopt;
    }
    return decode_radix(text, kB64Url, 6, false);
}

std::string hex_encode(ByteView data) {
    static constexpr std::string_view kHex = "0123456789abcdef";
    std::string out;
    out.reserve(data.size() * 2);
    for (std::uint8_t b : data) {
        out.push_back(kHex[b >> 4U]);
        out.push_back(kHex[b & 0x0FU]);
    }
    return out;
}

std::optional<Bytes> hex_decode(std::string_view text) {
    if (text.size() % 2 != 0) {
        return std::nullopt;
    }
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    };
    Bytes out(text.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = nibble(text[2 * i]);
        const int lo = nibble(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
    }
    return out;
}

}  // namespace bzs::core::crypto
