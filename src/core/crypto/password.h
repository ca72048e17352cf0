// SPDX-License-Identifier: GPL-3.0-or-later
// The web UI's admin password, stored only as a slow hash: scrypt (RFC 7914)
// through OpenSSL, encoded as a self-describing string so the parameters can be
// raised later without breaking stored hashes.
//
//   scrypt$<N>$<r>$<p>$<salt base64url>$<hash base64url>
//
// Defaults: N = 2^15, r = 8, p = 1 (32 MiB of memory, tens of milliseconds on a
// Raspberry Pi 4), a 16-byte random salt and a 32-byte hash.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bzs::core::crypto {

/// A malformed hash string, or scrypt refused the parameters. Never contains the password.
class PasswordError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct ScryptParams {
    std::uint64_t n = std::uint64_t{1} << 15;  ///< CPU/memory cost, a power of two
    std::uint32_t r = 8;                       ///< block size
    std::uint32_t p = 1;                       ///< parallelism
};

/// The shortest password `bluezscript admin passwd` accepts.
inline constexpr std::size_t kMinPasswordLength = 10;

/// Hashes `password` with a fresh random salt; returns the encoded string above.
std::string hash_password(std::string_view password, const ScryptParams& params = {});

/// True if `password` matches `encoded` (constant-time comparison of the hashes).
/// Throws PasswordError if `encoded` is not a well-formed scrypt string or asks for
/// parameters beyond N = 2^20, r = 32, p = 16 (a tampered row must not exhaust memory).
bool verify_password(std::string_view password, std::string_view encoded);

}  // namespace bzs::core::crypto
