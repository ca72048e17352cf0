// SPDX-License-Identifier: GPL-3.0-or-later
#include "service/json_views.h"

namespace bzs::service {

namespace {
template <typename T>
nlohmann::json or_null(const std::optional<T>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
}  // namespace

nlohmann::json device_json(const store::DeviceInfo& d) {
    nlohmann::json j{{"id", d.id_hex},         {"name", d.name},
                     {"created", d.created},   {"actions", d.actions},
                     {"revoked", d.revoked()}, {"state", store::device_state_name(d.state())}};
    j["last_used"] = or_null(d.last_used);
    j["revoked_at"] = or_null(d.revoked_at);
    j["ble_address"] = or_null(d.ble_address);
    j["ble_bond_removed_at"] = or_null(d.ble_bond_removed_at);
    j["paired_at"] = or_null(d.paired_at);
    j["code_expires"] = or_null(d.code_expires);
    return j;
}

nlohmann::json audit_json(const store::AuditEntry& a) {
    nlohmann::json j{{"id", a.id},
                     {"time", a.time},
                     {"action", a.action},
                     {"transport", a.transport},
                     {"status", a.status},
                     {"detail", a.detail},
                     {"request_id", a.request_id},
                     {"completed", a.completed}};
    j["device_id"] = or_null(a.device_id_hex);
    j["device_name"] = or_null(a.device_name);
    j["exit_code"] = or_null(a.exit_code);
    j["duration_ms"] = or_null(a.duration_ms);
    return j;
}

}  // namespace bzs::service
