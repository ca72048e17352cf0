// SPDX-License-Identifier: GPL-3.0-or-later
// Authorising frames: the device's decrypted record and its replay state, read
// and written in one transaction around auth::verify, with the clock floor.
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "core/auth/throttle.h"
#include "core/auth/verification_clock.h"
#include "core/protocol/names.h"
#include "store/store_impl.h"

namespace bzs::store {

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

bool Store::authenticates(core::protocol::ByteView frame) {
    auto& I = *impl_;
    try {
        const core::protocol::DecodeResult decoded = core::protocol::decode_request(frame);
        if (!decoded.request) {
            return false;
        }
        sql::Transaction txn(I.db, /*immediate=*/false);
        const auto row = I.device_row(decoded.request->device_id);
        if (!row || row->revoked_at) {
            return false;
        }
        const auto record = I.record_of(*row);
        txn.commit();
        return core::auth::authenticates(frame, decoded, &record);
    } catch (...) {
        return false;
    }
}

std::int64_t Store::clock_floor() {
    return impl_->clock_floor();
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
        in.clock_synchronized = req.clock_synchronized;
        in.expected_challenge = req.expected_challenge;
        in.actions = req.actions;
        in.policy = req.policy;
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
            }
        }

        core::auth::Decision d = core::auth::verify(req.frame, decoded, in);
        // Only a verified request earns a MACed answer (see Decision::mac_verified).
        if (record && d.mac_verified) {
            out.response_key = core::protocol::derive_keys(record->secret.view()).response_mac;
        }

        if (row && d.accepted()) {
            // Replay state only ever moves forward on an accepted command.
            sql::Stmt rp(I.db,
                         "UPDATE devices SET last_counter = ?1, last_used = ?2 WHERE id = ?3");
            rp.bind(1, to_db(d.replay.last_counter)).bind(2, d.verified_at).bind(3, row->id).run();
        }
        if (d.clock_advanced_to && out.device) {
            const std::uint64_t by =
                core::auth::seconds_between(req.now, *d.clock_advanced_to).value_or(0);
            I.insert_audit(d.verified_at, claimed_hex, "", req.transport,
                           core::protocol::Status::Ok,
                           "clock advanced by " + core::auth::describe_duration(by) +
                               " from the timestamp of device " +
                               core::protocol::quote_for_message(out.device->name) +
                               " (the Pi's clock is not synchronised)",
                           new_request_id(), /*completed=*/true);
        }
        if (d.accepted() || d.clock_advanced_to) {
            I.raise_clock_floor(d.verified_at);
        }
        out.audit_id = I.insert_audit(d.verified_at, claimed_hex, action, req.transport, d.status,
                                      d.detail, out.request_id, /*completed=*/!d.accepted());
        txn.commit();

        if (out.device && d.accepted()) {
            out.device->last_used = d.verified_at;
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
