// SPDX-License-Identifier: GPL-3.0-or-later
// The audit log: rows written by authorize and audit_event, completed when an
// action ends, closed after a crash, and queried by owners.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/protocol/names.h"
#include "store/store_impl.h"

namespace bzs::store {

namespace {

using core::protocol::quote_for_message;

std::optional<core::protocol::Status> status_by_name(std::string_view name) {
    for (int b = 0; b <= 0xFF; ++b) {
        const auto s = core::protocol::status_from_byte(static_cast<std::uint8_t>(b));
        if (s && core::protocol::status_name(*s) == name) {
            return s;
        }
    }
    return std::nullopt;
}

}  // namespace

std::int64_t Store::Impl::insert_audit(std::int64_t now,
                                       const std::optional<std::string>& device_hex,
                                       const std::string& action, const std::string& transport,
                                       core::protocol::Status status, const std::string& detail,
                                       const std::string& request_id, bool completed) {
    sql::Stmt st(db,
                 "INSERT INTO audit (time, device_id_hex, action, transport, status, detail, "
                 "request_id, completed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    st.bind(1, now)
        .bind(2, device_hex)
        .bind(3, action)
        .bind(4, transport)
        .bind(5, core::protocol::status_name(status))
        .bind(6, detail)
        .bind(7, request_id)
        .bind(8, completed ? 1 : 0);
    st.run();
    return db.last_insert_rowid();
}

void Store::complete_audit(std::int64_t audit_id, core::protocol::Status status,
                           std::optional<int> exit_code, std::int64_t duration_ms,
                           [[maybe_unused]] std::int64_t now) {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    sql::Stmt st(I.db,
                 "UPDATE audit SET status = ?1, exit_code = ?2, duration_ms = ?3, completed = 1 "
                 "WHERE id = ?4 AND completed = 0");
    st.bind(1, core::protocol::status_name(status))
        .bind(2, exit_code)
        .bind(3, duration_ms)
        .bind(4, audit_id)
        .run();
    if (I.db.changes() != 1) {
        throw StoreError("audit row " + std::to_string(audit_id) +
                         " does not exist or is already complete");
    }
    txn.commit();
}

std::int64_t Store::close_unfinished_audit() {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    sql::Stmt st(I.db,
                 "UPDATE audit SET status = ?1, completed = 1, detail = detail || ?2 "
                 "WHERE completed = 0");
    st.bind(1, core::protocol::status_name(core::protocol::Status::Internal))
        .bind(2, std::string("; the daemon stopped before the action ended, its result is unknown"))
        .run();
    const std::int64_t n = I.db.changes();
    txn.commit();
    return n;
}

std::int64_t Store::audit_event(const std::string& transport,
                                const std::optional<std::string>& device_hex,
                                const std::string& action, core::protocol::Status status,
                                const std::string& detail, std::int64_t now) {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    const std::int64_t id = I.insert_audit(now, device_hex, action, transport, status, detail,
                                           new_request_id(), /*completed=*/true);
    txn.commit();
    return id;
}

std::vector<AuditEntry> Store::audit(const AuditFilter& f) {
    if (f.limit < 0) {
        throw StoreError("audit limit must not be negative (got " + std::to_string(f.limit) + ")");
    }
    if (f.offset < 0) {
        throw StoreError("audit offset must not be negative (got " + std::to_string(f.offset) +
                         ")");
    }
    if (f.status && !status_by_name(*f.status)) {
        throw StoreError("unknown status " + quote_for_message(*f.status));
    }
    auto& I = *impl_;
    sql::Transaction txn(I.db, /*immediate=*/false);
    std::optional<std::string> device_hex;
    if (f.device) {
        if (auto d = I.find(*f.device)) {
            device_hex = d->id_hex;
        } else if (f.device->size() == 32 && is_hex(*f.device)) {
            // Audit rows also name ids that were never paired (refused frames).
            device_hex = to_lower(*f.device);
        } else {
            throw StoreError("no device is named or has the id " + quote_for_message(*f.device));
        }
    }
    std::optional<std::int64_t> accepted;
    if (f.accepted) {
        accepted = *f.accepted ? 1 : 0;
    }
    sql::Stmt st(I.db,
                 "SELECT a.id, a.time, a.device_id_hex, d.name, a.action, a.transport, a.status, "
                 "a.detail, a.exit_code, a.duration_ms, a.request_id, a.completed "
                 "FROM audit a LEFT JOIN devices d ON lower(hex(d.id)) = a.device_id_hex "
                 "WHERE (?1 IS NULL OR a.device_id_hex = ?1) "
                 "AND (?2 IS NULL OR (?2 = 1) = (a.status = 'ok')) "
                 "AND (?3 IS NULL OR a.status = ?3) "
                 "AND (?4 IS NULL OR a.time >= ?4) "
                 "ORDER BY a.id DESC LIMIT ?5 OFFSET ?6");
    st.bind(1, device_hex)
        .bind(2, accepted)
        .bind(3, f.status)
        .bind(4, f.since)
        .bind(5, f.limit == 0 ? std::int64_t{-1} : f.limit)
        .bind(6, f.offset);
    std::vector<AuditEntry> out;
    while (st.step()) {
        AuditEntry e;
        e.id = st.int64(0);
        e.time = st.int64(1);
        e.device_id_hex = st.opt_text(2);
        e.device_name = st.opt_text(3);
        e.action = st.text(4);
        e.transport = st.text(5);
        e.status = st.text(6);
        e.detail = st.text(7);
        if (const auto code = st.opt_int64(8)) {
            e.exit_code = static_cast<int>(*code);
        }
        e.duration_ms = st.opt_int64(9);
        e.request_id = st.text(10);
        e.completed = st.int64(11) != 0;
        out.push_back(std::move(e));
    }
    txn.commit();
    return out;
}

}  // namespace bzs::store
