// SPDX-License-Identifier: GPL-3.0-or-later
// Fernet symmetric tokens, exactly per the specification
// (https://github.com/fernet/spec): version 0x80, 64-bit big-endian timestamp,
// 128-bit IV, AES-128-CBC with PKCS#7 padding, HMAC-SHA256 over everything before
// it, base64url with padding. Interoperable with Python's cryptography.Fernet.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/crypto/crypto.h"

namespace bzs::core::crypto {

/// Why a token was refused. Never carries key material or plaintext.
enum class FernetError {
    BadEncoding,
    BadVersion,
    BadLength,
    BadMac,
    BadPadding,
    Expired,
    FromFuture
};
std::string_view fernet_error_name(FernetError e);

class Fernet {
  public:
    /// A key is 32 bytes: signing key (16) || encryption key (16).
    explicit Fernet(const SecretBytes& key);
    /// Parses the base64url form Python's Fernet.generate_key() produces.
    static std::optional<Fernet> from_base64(std::string_view key_b64);
    /// A fresh random key, base64url encoded (for key files).
    static std::string generate_key_base64();

    /// Encrypts with a fresh random IV and the given timestamp.
    [[nodiscard]] std::string encrypt(ByteView plaintext, std::int64_t now) const;
    /// Deterministic variant for test vectors only.
    [[nodiscard]] std::string encrypt_with_iv(ByteView plaintext, std::int64_t now,
                                              ByteView iv16) const;

    struct Result {
        std::optional<SecretBytes> plaintext;
        FernetError error = FernetError::BadEncoding;
        [[nodiscard]] bool ok() const { return plaintext.has_value(); }
    };
    /// Verifies then decrypts. With `ttl_seconds`, refuses tokens older than the TTL;
    /// always refuses tokens more than 60 s from the future (the spec's clock skew)
    /// when a TTL is given, as Python does.
    [[nodiscard]] Result decrypt(std::string_view token, std::int64_t now,
                                 std::optional<std::int64_t> ttl_seconds = std::nullopt) const;

  private:
    SecretBytes signing_;
    SecretBytes encryption_;
};

}  // namespace bzs::core::crypto
