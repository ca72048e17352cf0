// SPDX-License-Identifier: GPL-3.0-or-later
#include "service/settings.h"

#include <charconv>

namespace bzs::service {

namespace {

using nlohmann::json;

std::string stored(store::Store& st, const char* key) {
    return st.setting(key).value_or("");
}

/// A JSON object, or nullopt (empty, not JSON, not an object).
std::optional<json> parse_object(std::string_view text) {
    if (text.empty()) {
        return std::nullopt;
    }
    auto j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {  // a parse error gives a discarded value, not an object
        return std::nullopt;
    }
    return j;
}

/// Reads `key` into `out` when present; false when present with the wrong type.
template <typename T>
bool field(const json& j, const char* key, T& out) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        return true;
    }
    if constexpr (std::is_same_v<T, bool>) {
        if (!it->is_boolean()) {
            return false;
        }
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string()) {
            return false;
        }
    } else if constexpr (std::is_unsigned_v<T>) {
        if (!it->is_number_unsigned()) {
            return false;
        }
    } else {
        if (!it->is_number_integer()) {
            return false;
        }
    }
    out = it->get<T>();
    return true;
}

}  // namespace

// --- pairing window ---

std::string encode_pairing_window(const PairingWindow& w) {
    return std::to_string(w.until);
}

std::optional<PairingWindow> decode_pairing_window(std::string_view text) {
    if (text.empty()) {
        return PairingWindow{};
    }
    std::int64_t until = 0;
    const auto* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, until);
    if (ec != std::errc() || p != end) {
        return std::nullopt;
    }
    return PairingWindow{until};
}

PairingWindow read_pairing_window(store::Store& st) {
    return decode_pairing_window(stored(st, kPairingWindowKey)).value_or(PairingWindow{});
}

void write_pairing_window(store::Store& st, const PairingWindow& w) {
    st.set_setting(kPairingWindowKey, encode_pairing_window(w));
}

// --- pending passkey ---

std::string encode_pending_passkey(const PendingPasskey& p) {
    return json{{"device", p.device},
                {"peer", p.peer},
                {"passkey", p.passkey},
                {"kind", p.kind},
                {"time", p.time}}
        .dump();
}

std::optional<PendingPasskey> decode_pending_passkey(std::string_view text) {
    const auto j = parse_object(text);
    if (!j) {
        return std::nullopt;
    }
    PendingPasskey p;
    if (!field(*j, "device", p.device) || !field(*j, "peer", p.peer) ||
        !field(*j, "kind", p.kind) || !field(*j, "time", p.time)) {
        return std::nullopt;
    }
    const auto it = j->find("passkey");
    if (it == j->end()) {
        return std::nullopt;
    }
    if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
        p.passkey = std::to_string(it->get<std::int64_t>());
        if (p.passkey.size() < 6) {
            p.passkey.insert(0, 6 - p.passkey.size(), '0');
        }
    } else if (it->is_string() && !it->get<std::string>().empty()) {
        p.passkey = it->get<std::string>();
    } else {
        return std::nullopt;
    }
    return p;
}

std::optional<PendingPasskey> read_pending_passkey(store::Store& st) {
    return decode_pending_passkey(stored(st, kPendingPasskeyKey));
}

void write_pending_passkey(store::Store& st, const PendingPasskey& p) {
    st.set_setting(kPendingPasskeyKey, encode_pending_passkey(p));
}

void clear_pending_passkey(store::Store& st) {
    st.set_setting(kPendingPasskeyKey, "");
}

// --- BLE status ---

nlohmann::json ble_status_json(const BleStatus& s) {
    return json{{"enabled", s.enabled}, {"summary", s.summary},         {"adapter", s.adapter},
                {"powered", s.powered}, {"advertising", s.advertising}, {"connected", s.connected},
                {"time", s.time}};
}

std::string encode_ble_status(const BleStatus& s) {
    return ble_status_json(s).dump();
}

std::optional<BleStatus> decode_ble_status(std::string_view text) {
    const auto j = parse_object(text);
    if (!j) {
        return std::nullopt;
    }
    BleStatus s;
    if (!field(*j, "enabled", s.enabled) || !field(*j, "summary", s.summary) ||
        !field(*j, "adapter", s.adapter) || !field(*j, "powered", s.powered) ||
        !field(*j, "advertising", s.advertising) || !field(*j, "connected", s.connected) ||
        !field(*j, "time", s.time)) {
        return std::nullopt;
    }
    return s;
}

std::optional<BleStatus> read_ble_status(store::Store& st) {
    return decode_ble_status(stored(st, kBleStatusKey));
}

void write_ble_status(store::Store& st, const BleStatus& s) {
    st.set_setting(kBleStatusKey, encode_ble_status(s));
}

// --- admin password ---

std::string encode_admin_password(const AdminPasswordHash& h) {
    return h.hash;
}

AdminPasswordHash decode_admin_password(std::string_view text) {
    return AdminPasswordHash{std::string(text)};
}

AdminPasswordHash read_admin_password(store::Store& st) {
    return decode_admin_password(stored(st, kAdminPasswordKey));
}

void write_admin_password(store::Store& st, const AdminPasswordHash& h) {
    st.set_setting(kAdminPasswordKey, encode_admin_password(h));
}

}  // namespace bzs::service
