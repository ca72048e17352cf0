// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/crypto/fernet.h"

#include <openssl/evp.h>

#include <array>
#include <limits>
#include <memory>

namespace bzs::core::crypto {

namespace {

constexpr std::uint8_t kFernetVersion = 0x80;
constexpr std::size_t kHeader = 1 + 8 + 16;  // version, timestamp, IV
constexpr std::size_t kHmacLen = 32;
constexpr std::size_t kBlock = 16;
constexpr std::int64_t kMaxClockSkew = 60;

struct CipherCtxDeleter {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

// AES-128-CBC with PKCS#7. Returns nullopt only when decryption padding is bad.
std::optional<Bytes> aes128_cbc(bool encrypt, ByteView key, ByteView iv, ByteView in) {
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx || EVP_CipherInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr, key.data(), iv.data(),
                                  encrypt ? 1 : 0) != 1) {
        throw CryptoError("AES init failed");
    }
    Bytes out(in.size() + kBlock);
    int len1 = 0;
    int len2 = 0;
    if (EVP_CipherUpdate(ctx.get(), out.data(), &len1, in.data(), static_cast<int>(in.size())) !=
        1) {
        throw CryptoError("AES update failed");
    }
    if (EVP_CipherFinal_ex(ctx.get(), out.data() + len1, &len2) != 1) {
        if (encrypt) {
            throw CryptoError("AES final failed");
        }
        cleanse(out.data(), out.size());
        return std::nullopt;
    }
    out.resize(static_cast<std::size_t>(len1) + static_cast<std::size_t>(len2));
    return out;
}

}  // namespace

std::string_view fernet_error_name(FernetError e) {
    switch (e) {
        case FernetError::BadEncoding:
            return "token is not valid base64url";
        case FernetError::BadVersion:
            return "token version is not 0x80";
        case FernetError::BadLength:
            return "token is too short or not block aligned";
        case FernetError::BadMac:
            return "token HMAC does not verify";
        case FernetError::BadPadding:
            return "token padding is invalid";
        case FernetError::Expired:
            return "token is older than its TTL";
        case FernetError::FromFuture:
            return "token timestamp is too far in the future";
    }
    return "invalid token";
}

Fernet::Fernet(const SecretBytes& key) {
    if (key.size() != 32) {
        throw std::invalid_argument("a Fernet key is 32 bytes");
    }
    signing_ = SecretBytes(key.view().subspan(0, 16));
    encryption_ = SecretBytes(key.view().subspan(16, 16));
}

std::optional<Fernet> Fernet::from_base64(std::string_view key_b64) {
    auto raw = base64url_decode(key_b64);
    if (!raw || raw->size() != 32) {
        if (raw) {
            cleanse(raw->data(), raw->size());
        }
        return std::nullopt;
    }
    SecretBytes key(*raw);
    cleanse(raw->data(), raw->size());
    return Fernet(key);
}

std::string Fernet::generate_key_base64() {
    SecretBytes key(32);
    random_bytes(std::span<std::uint8_t>(key.data(), key.size()));
    return base64url_encode(key.view());
}

std::string Fernet::encrypt(ByteView plaintext, std::int64_t now) const {
    std::array<std::uint8_t, 16> iv{};
    random_bytes(iv);
    return encrypt_with_iv(plaintext, now, iv);
}

std::string Fernet::encrypt_with_iv(ByteView plaintext, std::int64_t now, ByteView iv16) const {
    if (iv16.size() != 16) {
        throw std::invalid_argument("Fernet IV is 16 bytes");
    }
    Bytes token;
    token.reserve(kHeader + plaintext.size() + kBlock + kHmacLen);
    token.push_back(kFernetVersion);
    const auto ts = static_cast<std::uint64_t>(now);
    for (int i = 7; i >= 0; --i) {
        token.push_back(static_cast<std::uint8_t>(ts >> (8U * static_cast<unsigned>(i))));
    }
    token.insert(token.end(), iv16.begin(), iv16.end());
    Bytes ct = *aes128_cbc(true, encryption_.view(), iv16, plaintext);
    token.insert(token.end(), ct.begin(), ct.end());
    Bytes mac = hmac(Hash::Sha256, signing_.view(), token);
    token.insert(token.end(), mac.begin(), mac.end());
    return base64url_encode(token);
}

Fernet::Result Fernet::decrypt(std::string_view token, std::int64_t now,
                               std::optional<std::int64_t> ttl_seconds) const {
    Result r;
    auto raw = base64url_decode(token);
    if (!raw) {
        r.error = FernetError::BadEncoding;
        return r;
    }
    const Bytes& t = *raw;
    if (t.empty()) {
        r.error = FernetError::BadLength;
        return r;
    }
    if (t[0] != kFernetVersion) {
        r.error = FernetError::BadVersion;
        return r;
    }
    if (t.size() < kHeader + kBlock + kHmacLen || (t.size() - kHeader - kHmacLen) % kBlock != 0) {
        r.error = FernetError::BadLength;
        return r;
    }
    std::uint64_t ts = 0;
    for (std::size_t i = 1; i <= 8; ++i) {
        ts = (ts << 8U) | t[i];
    }
    if (ttl_seconds) {
        // The timestamp is not yet authenticated here: no arithmetic on it may overflow.
        if (ts > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            r.error = FernetError::FromFuture;
            return r;
        }
        const auto stamp = static_cast<std::int64_t>(ts);
        if (stamp < now - *ttl_seconds) {
            r.error = FernetError::Expired;
            return r;
        }
        if (now + kMaxClockSkew < stamp) {
            r.error = FernetError::FromFuture;
            return r;
        }
    }
    const ByteView body(t.data(), t.size() - kHmacLen);
    const ByteView mac(t.data() + t.size() - kHmacLen, kHmacLen);
    if (!ct_equal(hmac(Hash::Sha256, signing_.view(), body), mac)) {
        r.error = FernetError::BadMac;
        return r;
    }
    const ByteView iv(t.data() + 9, 16);
    const ByteView ct(t.data() + kHeader, t.size() - kHeader - kHmacLen);
    auto pt = aes128_cbc(false, encryption_.view(), iv, ct);
    if (!pt) {
        r.error = FernetError::BadPadding;
        return r;
    }
    r.plaintext = SecretBytes(*pt);
    cleanse(pt->data(), pt->size());
    return r;
}

}  // namespace bzs::core::crypto
