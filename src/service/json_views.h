// SPDX-License-Identifier: GPL-3.0-or-later
// The JSON shapes of devices and audit rows, shared by `bluezscript --json` and the
// web UI's /api/v1/ so that owners' scripts see one format (docs/web.md).
#pragma once

#include <nlohmann/json.hpp>

#include "store/store.h"

namespace bzs::service {

/// {"id","name","created","last_used","revoked","revoked_at","actions","ble_address",
///  "ble_bond_removed_at","state","paired_at","code_expires"}: state is "pending",
/// "active" or "revoked"; code_expires is set only while pending; absent values are
/// null. Never a secret or a code.
nlohmann::json device_json(const store::DeviceInfo& d);

/// {"id","time","device_id","device_name","action","transport","status","detail",
///  "exit_code","duration_ms","request_id","completed"}; absent values are null.
nlohmann::json audit_json(const store::AuditEntry& a);

}  // namespace bzs::service
