// SPDX-License-Identifier: GPL-3.0-or-later
// The inside of Store, shared by the files that implement it (store.cpp,
// schema.cpp, devices.cpp, authorize.cpp, audit.cpp, settings.cpp,
// web_sessions.cpp, rotation.cpp): the Impl struct and the device-row helpers.
// Internal to src/store; nothing outside this folder includes it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/sqlite.h"
#include "store/store.h"

namespace bzs::store {

// SQLite's integers are signed 64-bit; counters are unsigned on the wire. The
// conversion is modular in C++20, so the round trip is exact.
inline std::int64_t to_db(std::uint64_t v) {
    return static_cast<std::int64_t>(v);
}
inline std::uint64_t from_db_u64(std::int64_t v) {
    return static_cast<std::uint64_t>(v);
}
inline std::uint32_t from_db_u32(std::int64_t v) {
    return v < 0 ? 0U
                 : static_cast<std::uint32_t>(
                       std::min<std::int64_t>(v, std::numeric_limits<std::uint32_t>::max()));
}

inline std::string id_hex(const core::protocol::DeviceId& id) {
    return core::crypto::hex_encode(id);
}

bool is_hex(std::string_view s);
std::string to_lower(std::string s);
/// A fresh random audit request id (32 hex digits).
std::string new_request_id();

/// Every column of a device row, in the order read_device() expects.
#define BZS_DEVICE_COLUMNS                                                                    \
    "id, name, created, last_used, revoked_at, secret_token, key_id, totp_alg, totp_digits, " \
    "totp_period, last_counter, ble_address, ble_bond_removed_at, paired_at, code_token, "    \
    "code_key_id, code_expires"

struct DeviceRow {
    core::protocol::DeviceId id{};
    std::string name;
    std::int64_t created = 0;
    std::optional<std::int64_t> last_used;
    std::optional<std::int64_t> revoked_at;
    std::string secret_token;
    std::uint32_t key_id = 0;
    core::crypto::TotpParams totp;
    core::auth::ReplayState replay;
    std::optional<std::string> ble_address;  ///< schema 5
    std::optional<std::int64_t> ble_bond_removed_at;
    // schema 6: the pairing exchange
    std::optional<std::int64_t> paired_at;  ///< nullopt: pending
    std::string code_token;                 ///< Fernet token of the one-time code; "" once used
    std::uint32_t code_key_id = 0;
    std::optional<std::int64_t> code_expires;
    [[nodiscard]] bool pending() const { return !revoked_at && !paired_at; }
};

/// The current row of a statement that selects BZS_DEVICE_COLUMNS.
DeviceRow read_device(const sql::Stmt& st);
/// Steps such a statement to its end: every remaining row.
std::vector<DeviceRow> read_devices(sql::Stmt& st);

struct Store::Impl {
    std::filesystem::path path;
    std::optional<std::filesystem::path> keyfile;
    KeyRing keys;
    sql::Db db;

    Impl(std::filesystem::path p, std::optional<std::filesystem::path> kf, KeyRing k)
        : path(std::move(p)), keyfile(std::move(kf)), keys(std::move(k)), db(path) {}

    // store.cpp
    void configure();
    void reload_keys();

    // schema.cpp
    void migrate();
    /// The schema version recorded in the database (PRAGMA user_version).
    int user_version();

    // devices.cpp
    std::optional<DeviceRow> device_row(const core::protocol::DeviceId& id);
    DeviceRow require_device(const core::protocol::DeviceId& id);
    std::vector<std::string> actions_of(const core::protocol::DeviceId& id);
    DeviceInfo info_of(const DeviceRow& r);
    core::crypto::SecretBytes decrypt(const DeviceRow& r, const KeyRing* also = nullptr);
    /// Decrypts any Fernet token of this store (a secret, a code, the Pi's key)
    /// under master key `key_id`, looked up in `also` first, then the loaded ring,
    /// then the key file read again. `what` names it in errors ("the secret of
    /// device ..."); never the token.
    core::crypto::SecretBytes open_token(const std::string& token, std::uint32_t key_id,
                                         const std::string& what, const KeyRing* also = nullptr);
    std::pair<std::string, std::uint32_t> encrypt(const core::crypto::SecretBytes& secret,
                                                  std::int64_t now);
    /// A pending row gives a record with pending = true and no secret.
    core::auth::DeviceRecord record_of(const DeviceRow& r);
    /// The decrypted one-time code of a pending row (KeyFileError/StoreError if
    /// it cannot be decrypted).
    core::crypto::SecretBytes decrypt_code(const DeviceRow& r);
    /// Completes a pairing inside the caller's transaction: stores `secret`
    /// encrypted, sets paired_at = now, forgets the code.
    void activate_device(const DeviceRow& r, const core::crypto::SecretBytes& secret,
                         std::int64_t now);
    std::optional<DeviceInfo> find(const std::string& q);

    // settings.cpp
    std::optional<std::string> get_setting(const std::string& key);
    void put_setting(const std::string& key, const std::string& value);
    /// The persisted clock floor (settings key "clock_floor"); 0 when unset.
    std::int64_t clock_floor();
    /// Raises the persisted clock floor to `v` (never lowers it).
    void raise_clock_floor(std::int64_t v);
    /// The Pi's P-256 key pair (settings "pi_key_private" Fernet token and
    /// "pi_key_public" hex), created on first use.
    std::pair<core::crypto::SecretBytes, core::protocol::PublicKey> pi_key();

    // audit.cpp
    std::int64_t insert_audit(std::int64_t now, const std::optional<std::string>& device_hex,
                              const std::string& action, const std::string& transport,
                              core::protocol::Status status, const std::string& detail,
                              const std::string& request_id, bool completed);
};

}  // namespace bzs::store
