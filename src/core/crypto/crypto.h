// SPDX-License-Identifier: GPL-3.0-or-later
// Pure cryptographic primitives on OpenSSL 3. This module (core/crypto) is the only
// place in the tree that includes OpenSSL headers. Nothing here does I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bzs::core::crypto {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

/// Thrown when the underlying crypto library reports an error (never on bad input
/// that a caller could expect, such as a wrong MAC: those return false/nullopt).
class CryptoError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A byte buffer for key material: wiped (OPENSSL_cleanse) on destruction and on
/// reassignment, never printed. Copies are explicit to keep key copies rare.
class SecretBytes {
  public:
    SecretBytes() = default;
    explicit SecretBytes(std::size_t n);
    explicit SecretBytes(ByteView v);
    SecretBytes(const SecretBytes& o);
    SecretBytes& operator=(const SecretBytes& o);
    SecretBytes(SecretBytes&& o) noexcept;
    SecretBytes& operator=(SecretBytes&& o) noexcept;
    ~SecretBytes();

    std::uint8_t* data() { return buf_.data(); }
    [[nodiscard]] const std::uint8_t* data() const { return buf_.data(); }
    [[nodiscard]] std::size_t size() const { return buf_.size(); }
    [[nodiscard]] bool empty() const { return buf_.empty(); }
    [[nodiscard]] ByteView view() const { return {buf_.data(), buf_.size()}; }
    /// Wipes and empties the buffer.
    void clear();

  private:
    std::vector<std::uint8_t> buf_;
};

/// Overwrites memory so the compiler cannot elide it.
void cleanse(void* p, std::size_t n);

/// Fills `out` from the OS CSPRNG (OpenSSL RAND_bytes). Throws CryptoError on failure.
void random_bytes(std::span<std::uint8_t> out);
Bytes random_bytes(std::size_t n);

/// Constant-time equality; false when lengths differ (length is not secret).
bool ct_equal(ByteView a, ByteView b);

enum class Hash { Sha1, Sha256, Sha512 };
/// "SHA1", "SHA256", "SHA512" (case-insensitive) -> Hash.
std::optional<Hash> parse_hash(std::string_view name);
std::string_view hash_name(Hash h);

Bytes hmac(Hash h, ByteView key, ByteView data);
Bytes sha256(ByteView data);

/// HKDF (RFC 5869). An empty salt means "not provided" (a zero-filled HashLen salt).
SecretBytes hkdf(Hash h, ByteView ikm, ByteView salt, ByteView info, std::size_t length);

/// HOTP (RFC 4226) with dynamic truncation; digits in [6, 8].
std::uint32_t hotp(ByteView secret, std::uint64_t counter, int digits = 6, Hash h = Hash::Sha1);
/// Zero-padded decimal representation of a code.
std::string format_code(std::uint32_t code, int digits);

/// TOTP parameters (RFC 6238).
struct TotpParams {
    Hash hash = Hash::Sha1;
    int digits = 6;
    int step_seconds = 30;
    int window = 1;  ///< steps accepted either side of the current one
};

/// The time step containing unix time `t` (floor division, T0 = 0).
std::int64_t totp_step(std::int64_t unix_time, int step_seconds);
std::uint32_t totp(ByteView secret, std::int64_t unix_time, const TotpParams& p = {});

/// Checks `code` against steps now-window..now+window in constant time per step.
/// Returns the matched step, or nullopt. A caller that must refuse reused steps
/// compares the result with the last accepted step.
std::optional<std::int64_t> totp_verify(ByteView secret, std::uint32_t code, std::int64_t unix_time,
                                        const TotpParams& p = {});

/// RFC 4648 base32 (upper case, '=' padding optional on decode, case-insensitive).
std::string base32_encode(ByteView data, bool pad = true);
std::optional<Bytes> base32_decode(std::string_view text);

/// RFC 4648 base64url (with padding) as used by Fernet.
std::string base64url_encode(ByteView data);
std::optional<Bytes> base64url_decode(std::string_view text);

std::string hex_encode(ByteView data);
std::optional<Bytes> hex_decode(std::string_view text);

}  // namespace bzs::core::crypto
