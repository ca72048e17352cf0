// SPDX-License-Identifier: GPL-3.0-or-later
// The settings table: small key/value Pi-wide state (pi_id, master_key_id,
// clock_floor, ...).
#include <cstdint>
#include <exception>
#include <optional>
#include <string>

#include "core/crypto/ecdh_gcm.h"
#include "store/store_impl.h"
#include "util/clock.h"

namespace bzs::store {

std::optional<std::string> Store::Impl::get_setting(const std::string& key) {
    sql::Stmt st(db, "SELECT value FROM settings WHERE key = ?1");
    st.bind(1, key);
    if (!st.step()) {
        return std::nullopt;
    }
    return st.text(0);
}

void Store::Impl::put_setting(const std::string& key, const std::string& value) {
    sql::Stmt st(db,
                 "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    st.bind(1, key).bind(2, value).run();
}

namespace {
constexpr const char* kClockFloor = "clock_floor";
// The Pi's P-256 key: the private scalar as a Fernet token under master key
// kPiKeyKeyId, the public key in clear (130 hex digits).
constexpr const char* kPiKeyPrivate = "pi_key_private";
constexpr const char* kPiKeyKeyId = "pi_key_key_id";
constexpr const char* kPiKeyPublic = "pi_key_public";
}  // namespace

std::int64_t Store::Impl::clock_floor() {
    const auto v = get_setting(kClockFloor);
    if (!v) {
        return 0;
    }
    try {
        std::size_t used = 0;
        const long long n = std::stoll(*v, &used);
        if (used == v->size()) {
            return n;
        }
    } catch (const std::exception&) {
    }
    throw StoreError("database " + path.string() + ": setting clock_floor is not an integer");
}

void Store::Impl::raise_clock_floor(std::int64_t v) {
    if (v > clock_floor()) {
        put_setting(kClockFloor, std::to_string(v));
    }
}

std::pair<core::crypto::SecretBytes, core::protocol::PublicKey> Store::Impl::pi_key() {
    auto token = get_setting(kPiKeyPrivate);
    if (!token) {
        // First use. The caller's IMMEDIATE transaction (or the single statement
        // here otherwise) keeps two processes from creating two keys.
        auto pair = core::crypto::p256_generate();
        auto [tok, key_id] = encrypt(pair.private_scalar, util::wall_clock_now());
        put_setting(kPiKeyPrivate, tok);
        put_setting(kPiKeyKeyId, std::to_string(key_id));
        put_setting(kPiKeyPublic, core::crypto::hex_encode(pair.public_key));
        token = std::move(tok);
    }
    const auto id_text = get_setting(kPiKeyKeyId).value_or("");
    std::uint32_t key_id = 0;
    try {
        key_id = static_cast<std::uint32_t>(std::stoul(id_text));
    } catch (const std::exception&) {
        throw StoreError("database " + path.string() + ": setting pi_key_key_id is not a number");
    }
    core::crypto::SecretBytes scalar = open_token(*token, key_id, "the Pi's private key");
    // The public key is recomputed from the scalar: a damaged or swapped
    // pi_key_public must not reach a pairing link.
    const auto pair = core::crypto::p256_from_private(scalar.view());
    const auto stored = core::crypto::hex_decode(get_setting(kPiKeyPublic).value_or(""));
    if (!pair || !stored || *stored != pair->public_key ||
        stored->size() != core::protocol::kP256PublicKeyLen) {
        throw StoreError("database " + path.string() +
                         ": the Pi's key pair is damaged (pi_key_public does not match the "
                         "private key)");
    }
    core::protocol::PublicKey pub{};
    std::copy(stored->begin(), stored->end(), pub.begin());
    return {std::move(scalar), pub};
}

std::optional<std::string> Store::setting(const std::string& key) {
    return impl_->get_setting(key);
}

void Store::set_setting(const std::string& key, const std::string& value) {
    if (key.empty()) {
        throw StoreError("setting name must not be empty");
    }
    impl_->put_setting(key, value);
}

}  // namespace bzs::store
