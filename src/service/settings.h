// SPDX-License-Identifier: GPL-3.0-or-later
// The Pi-wide settings the daemon, the CLI and the web UI share through the store's
// key/value table (store::Store::setting), each as a typed value with one codec.
// The stored text is the format existing databases hold (an upgraded Pi keeps its
// settings): docs/ble.md and docs/web.md describe it. Reading never throws for a
// damaged value: it yields the safe default documented on each reader, so a broken
// row can never open the pairing window, show a passkey or sign anyone in.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "store/store.h"

namespace bzs::service {

// --- the pairing window ------------------------------------------------------------

/// Settings key: unix seconds as decimal text ("" or absent: never opened).
inline constexpr const char* kPairingWindowKey = "pairing_window_until";

/// The owner's BLE bonding window: open while now < until.
struct PairingWindow {
    std::int64_t until = 0;  ///< unix seconds; 0 = closed
    [[nodiscard]] bool open(std::int64_t now) const { return now < until; }
    /// Seconds left, never negative.
    [[nodiscard]] std::int64_t remaining(std::int64_t now) const {
        return until > now ? until - now : 0;
    }
    bool operator==(const PairingWindow&) const = default;
};

/// "1700000300".
std::string encode_pairing_window(const PairingWindow& w);
/// "" gives a closed window; nullopt when the text is not a plain decimal integer.
std::optional<PairingWindow> decode_pairing_window(std::string_view text);
/// Absent or damaged: closed (until = 0). Throws store::StoreError only when the
/// database cannot be read.
PairingWindow read_pairing_window(store::Store& st);
void write_pairing_window(store::Store& st, const PairingWindow& w);

// --- the passkey of the bonding in progress ------------------------------------------

/// Settings key: the JSON object below, or "" once the pairing ended.
inline constexpr const char* kPendingPasskeyKey = "pairing_passkey";

/// What the daemon's pairing agent last showed or asked for, kept for the web UI.
/// Stored as {"device","kind","passkey","peer","time"}.
struct PendingPasskey {
    std::string device;     ///< BlueZ device object path
    std::string peer;       ///< "Alias (AA:BB:...)"
    std::string passkey;    ///< six digits, zero-padded, or a PIN code
    std::string kind;       ///< "display-passkey", "display-pin", ...
    std::int64_t time = 0;  ///< unix seconds when the agent stored it
    bool operator==(const PendingPasskey&) const = default;
};

std::string encode_pending_passkey(const PendingPasskey& p);
/// nullopt for "" (no pairing in progress) and for damaged text (not a JSON object,
/// no usable passkey). A numeric passkey (older writers) becomes six zero-padded
/// digits; absent string fields are empty and an absent time is 0.
std::optional<PendingPasskey> decode_pending_passkey(std::string_view text);
/// Absent or damaged: nullopt (no passkey is shown).
std::optional<PendingPasskey> read_pending_passkey(store::Store& st);
void write_pending_passkey(store::Store& st, const PendingPasskey& p);
/// Stores "" (the pairing ended or a new window opened).
void clear_pending_passkey(store::Store& st);

// --- the BLE status the daemon publishes ------------------------------------------

/// Settings key: the JSON object below (the daemon is the only writer).
inline constexpr const char* kBleStatusKey = "ble_status";

/// Stored as {"advertising","adapter","connected","enabled","powered","summary","time"}.
struct BleStatus {
    bool enabled = false;
    std::string summary;
    std::string adapter;
    bool powered = false;
    bool advertising = false;
    std::uint64_t connected = 0;  ///< how many devices are connected
    std::int64_t time = 0;        ///< unix seconds when the daemon wrote it
    bool operator==(const BleStatus&) const = default;
};

nlohmann::json ble_status_json(const BleStatus& s);
std::string encode_ble_status(const BleStatus& s);
/// nullopt for "" and for damaged text (not a JSON object, a field of the wrong type).
/// Absent fields keep their defaults.
std::optional<BleStatus> decode_ble_status(std::string_view text);
/// Absent or damaged: nullopt ("the daemon has not reported yet").
std::optional<BleStatus> read_ble_status(store::Store& st);
void write_ble_status(store::Store& st, const BleStatus& s);

// --- the web UI's admin password ------------------------------------------------

/// Settings key: the hash text (core/crypto/password.h format), "" or absent: none.
inline constexpr const char* kAdminPasswordKey = "admin_password_hash";

/// The admin password's hash; the text is stored as it is.
struct AdminPasswordHash {
    std::string hash;  ///< core::crypto::hash_password's output; empty = not set
    [[nodiscard]] bool set() const { return !hash.empty(); }
    bool operator==(const AdminPasswordHash&) const = default;
};

std::string encode_admin_password(const AdminPasswordHash& h);
/// Never damaged at this level: any text is kept (verify_password judges it).
AdminPasswordHash decode_admin_password(std::string_view text);
/// Absent: not set.
AdminPasswordHash read_admin_password(store::Store& st);
void write_admin_password(store::Store& st, const AdminPasswordHash& h);

}  // namespace bzs::service
