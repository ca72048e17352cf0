// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/crypto/password.h"

#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <charconv>
#include <vector>

#include "core/crypto/crypto.h"

namespace bzs::core::crypto {

namespace {

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;
constexpr std::uint64_t kMaxN = std::uint64_t{1} << 20;
constexpr std::uint32_t kMaxR = 32;
constexpr std::uint32_t kMaxP = 16;

crypto::Bytes scrypt(std::string_view password, crypto::ByteView salt, const ScryptParams& p,
                     std::size_t out_len) {
    crypto::Bytes out(out_len);
    // 128 * r * N bytes plus slack: OpenSSL's 32 MiB default is exactly too small for r=8, N=2^15.
    const std::uint64_t maxmem = 128 * std::uint64_t{p.r} * (p.n + p.p + 2) + (1u << 20);
    if (EVP_PBE_scrypt(password.data(), password.size(), salt.data(), salt.size(), p.n, p.r, p.p,
                       maxmem, out.data(), out.size()) != 1) {
        throw PasswordError("scrypt failed (N=" + std::to_string(p.n) +
                            ", r=" + std::to_string(p.r) + ", p=" + std::to_string(p.p) + ")");
    }
    return out;
}

template <typename T>
T parse_number(std::string_view s, const char* what) {
    T v{};
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
        throw PasswordError(std::string("password hash: ") + what + " is not a number");
    }
    return v;
}

}  // namespace

std::string hash_password(std::string_view password, const ScryptParams& params) {
    const auto salt = crypto::random_bytes(kSaltBytes);
    const auto hash = scrypt(password, salt, params, kHashBytes);
    return "scrypt$" + std::to_string(params.n) + "$" + std::to_string(params.r) + "$" +
           std::to_string(params.p) + "$" + crypto::base64url_encode(salt) + "$" +
           crypto::base64url_encode(hash);
}

bool verify_password(std::string_view password, std::string_view encoded) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (true) {
        const auto dollar = encoded.find('$', start);
        parts.push_back(encoded.substr(start, dollar - start));
        if (dollar == std::string_view::npos) {
            break;
        }
        start = dollar + 1;
    }
    if (parts.size() != 6 || parts[0] != "scrypt") {
        throw PasswordError("password hash: expected scrypt$N$r$p$salt$hash");
    }
    ScryptParams p;
    p.n = parse_number<std::uint64_t>(parts[1], "N");
    p.r = parse_number<std::uint32_t>(parts[2], "r");
    p.p = parse_number<std::uint32_t>(parts[3], "p");
    if (p.n < 2 || (p.n & (p.n - 1)) != 0 || p.n > kMaxN || p.r < 1 || p.r > kMaxR || p.p < 1 ||
        p.p > kMaxP) {
        throw PasswordError(
            "password hash: parameters out of range (N a power of two up to 2^20, "
            "r 1..32, p 1..16)");
    }
    const auto salt = crypto::base64url_decode(parts[4]);
    const auto want = crypto::base64url_decode(parts[5]);
    if (!salt || salt->empty() || !want || want->size() < 16 || want->size() > 64) {
        throw PasswordError("password hash: salt or hash is not valid base64url");
    }
    const auto got = scrypt(password, *salt, p, want->size());
    return crypto::ct_equal(got, *want);
}

}  // namespace bzs::core::crypto
