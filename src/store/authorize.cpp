// SPDX-License-Identifier: GPL-3.0-or-later
// Authorising frames: the device's decrypted record, its replay and rate state
// and the Pi-wide rate state, read and written in one transaction around
// auth::verify.
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "store/store_impl.h"

namespace bzs::store {

core::auth::GlobalRateState Store::Impl::load_global() {
    sql::Stmt st(db,
                 "SELECT window_start, attempts, failures, locked_until FROM global_rate "
                 "WHERE id = 1");
    core::auth::GlobalRateState g;
    if (st.step()) {
        g.window_start = st.int64(0);
        g.attempts = from_db_u32(st.int64(1));
        g.failures = from_db_u32(st.int64(2));
        g.locked_until = st.int64(3);
    }
    return g;
}

void Store::Impl::save_global(const core::auth::GlobalRateState& g) {
    sql::Stmt st(db,
                 "INSERT INTO global_rate (id, window_start, attempts, failures, locked_until) "
                 "VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET "
                 "window_start = excluded.window_start, attempts = excluded.attempts, "
                 "failures = excluded.failures, locked_until = excluded.locked_until");
    st.bind(1, g.window_start).bind(2, g.attempts).bind(3, g.failures).bind(4, g.locked_until);
    st.run();
}

std::optional<core::auth::DeviceRecord> Store::load_device(const core::protocol::DeviceId& id) {
    auto& I = *impl_;
    sql::Transaction txn(I.db, /*immediate=*/false);
    const auto r = I.device_row(id);
    if (!r) {
        return std::nullopt;
    }
    auto rec = I.record_of(*r);
    txn.commit();
    return rec;
}

core::auth::ReplayState Store::replay_state(const core::protocol::DeviceId& id) {
    return impl_->require_device(id).replay;
}

core::auth::DeviceRateState Store::device_rate_state(const core::protocol::DeviceId& id) {
    return impl_->require_device(id).rate;
}

core::auth::GlobalRateState Store::global_rate_state() {
    return impl_->load_global();
}

Authorization Store::authorize(const AuthorizeRequest& req) {
    auto& I = *impl_;
    Authorization out;
    std::optional<std::string> claimed_hex;
    std::string action;
    try {
        out.request_id = new_request_id();
        // IMMEDIATE: take the write lock before reading the state we will update,
        // so two processes cannot both accept the same counter.
        sql::Transaction txn(I.db);
        const core::protocol::DecodeResult decoded = core::protocol::decode_request(req.frame);
        std::optional<DeviceRow> row;
        std::optional<core::auth::DeviceRecord> record;
        core::auth::VerifyInput in;
        in.now = req.now;
        in.expected_challenge = req.expected_challenge;
        in.actions = req.actions;
        in.policy = req.policy;
        in.global_rate = I.load_global();
        if (decoded.request) {
            out.request = decoded.request;
            claimed_hex = id_hex(decoded.request->device_id);
            action = decoded.request->action;
            row = I.device_row(decoded.request->device_id);
            if (row) {
                out.device = I.info_of(*row);
                record = I.record_of(*row);
                record->totp.window = req.policy.totp_window;
                in.device = &*record;
                in.replay = row->replay;
                in.device_rate = row->rate;
            }
        }

        core::auth::Decision d = core::auth::verify(req.frame, decoded, in);
        // Only a verified request earns a MACed answer (see Decision::mac_verified).
        if (record && d.mac_verified) {
            out.response_key = core::protocol::derive_keys(record->secret.view()).response_mac;
        }

        if (row) {
            sql::Stmt rate(I.db,
                           "UPDATE devices SET consecutive_failures = ?1, lockouts = ?2, "
                           "locked_until = ?3 WHERE id = ?4");
            rate.bind(1, d.device_rate.consecutive_failures)
                .bind(2, d.device_rate.lockouts)
                .bind(3, d.device_rate.locked_until)
                .bind(4, row->id)
                .run();
            if (d.accepted()) {
                // Replay state only ever moves forward on an accepted command.
                sql::Stmt rp(I.db,
                             "UPDATE devices SET last_counter = ?1, last_totp_step = ?2, "
                             "last_used = ?3 WHERE id = ?4");
                rp.bind(1, to_db(d.replay.last_counter))
                    .bind(2, d.replay.last_totp_step)
                    .bind(3, req.now)
                    .bind(4, row->id)
                    .run();
            }
        }
        I.save_global(d.global_rate);
        out.audit_id = I.insert_audit(req.now, claimed_hex, action, req.transport, d.status,
                                      d.detail, out.request_id, /*completed=*/!d.accepted());
        txn.commit();

        if (out.device) {
            out.device->consecutive_failures = d.device_rate.consecutive_failures;
            out.device->locked_until = d.device_rate.locked_until;
            if (d.accepted()) {
                out.device->last_used = req.now;
            }
        }
        out.decision = std::move(d);
        return out;
    } catch (const std::exception& e) {
        // The transaction was rolled back while unwinding: nothing advanced.
        out.decision = core::auth::Decision{};
        out.decision.detail = std::string("could not save state: ") + e.what();
    } catch (...) {
        out.decision = core::auth::Decision{};
        out.decision.detail = "could not save state: unknown error";
    }
    out.decision.status = core::protocol::Status::Internal;
    out.audit_id = 0;
    try {
        // Best effort: leave a trail of the failure if the database takes writes.
        if (out.request_id.empty()) {
            out.request_id = new_request_id();
        }
        sql::Transaction txn(I.db);
        out.audit_id = I.insert_audit(req.now, claimed_hex, action, req.transport,
                                      core::protocol::Status::Internal, out.decision.detail,
                                      out.request_id, /*completed=*/true);
        txn.commit();
    } catch (...) {
        out.audit_id = 0;
    }
    return out;
}

}  // namespace bzs::store
