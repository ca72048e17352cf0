// SPDX-License-Identifier: GPL-3.0-or-later
// Authorising request frames: the device's decrypted record and its replay
// state (or, for a pair request, the pending device's code and the Pi's key),
// read and written in one transaction around auth::verify / verify_pair, with
// the clock floor.
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "core/auth/throttle.h"
#include "core/auth/verification_clock.h"
#include "core/protocol/names.h"
#include "store/store_impl.h"

namespace bzs::store {

namespace {

bool is_pair(const core::protocol::HeaderDecode& hd) {
    return hd.header && hd.header->type == core::protocol::RequestType::Pair;
}

}  // namespace

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
        const core::protocol::HeaderDecode hd = core::protocol::decode_request_header(frame);
        if (!hd.header) {
            return false;
        }
        sql::Transaction txn(I.db, /*immediate=*/false);
        const auto row = I.device_row(hd.header->device_id);
        if (!row || row->revoked_at) {
            return false;
        }
        if (is_pair(hd)) {
            // A phone pairing during a flood: its code is what it proves.
            if (!row->pending() || !row->code_expires) {
                return false;
            }
            const core::crypto::SecretBytes code = I.decrypt_code(*row);
            txn.commit();
            return core::protocol::open_request(
                       frame, core::protocol::pair_seal_keys(code.view()).request.view())
                .has_value();
        }
        if (row->pending()) {
            return false;
        }
        const auto record = I.record_of(*row);
        txn.commit();
        return core::auth::authenticates(frame, hd, &record);
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
    core::protocol::HeaderDecode hd;
    try {
        out.request_id = new_request_id();
        hd = core::protocol::decode_request_header(req.frame);
        // Read (or create) the Pi's identity before the write transaction: both
        // take their own.
        std::optional<std::pair<core::crypto::SecretBytes, core::protocol::PublicKey>> pi_key;
        core::protocol::PiId pi{};
        if (is_pair(hd)) {
            pi = pi_id();
            sql::Transaction key_txn(I.db);  // creating the key on first use writes
            pi_key = I.pi_key();
            key_txn.commit();
        }
        // IMMEDIATE: take the write lock before reading the state we will update,
        // so two processes cannot both accept the same counter or code.
        sql::Transaction txn(I.db);
        std::optional<DeviceRow> row;
        std::optional<core::auth::DeviceRecord> record;
        if (hd.header) {
            claimed_hex = id_hex(hd.header->device_id);
            row = I.device_row(hd.header->device_id);
            if (row) {
                out.device = I.info_of(*row);
                record = I.record_of(*row);
                record->totp.window = req.policy.totp_window;
            }
        }

        core::auth::Decision d;
        if (is_pair(hd)) {
            core::auth::PairInput in;
            in.now = req.system_now != 0 ? req.system_now : req.now;
            in.device = record ? &*record : nullptr;
            if (row && row->pending() && row->code_expires) {
                in.code = I.decrypt_code(*row);
                in.code_expires = *row->code_expires;
            }
            in.pi_id = pi;
            in.pi_private = std::move(pi_key->first);
            in.pi_public = pi_key->second;
            in.expected_challenge = req.expected_challenge;
            in.require_challenge = req.policy.require_challenge;
            d = core::auth::verify_pair(req.frame, hd, in);
            if (d.sealed_reply) {
                out.response_key = core::protocol::pair_seal_keys(in.code.view()).response;
            }
            if (d.accepted()) {
                I.activate_device(*row, d.pair->secret, d.verified_at);
                out.device = I.info_of(*I.device_row(row->id));
            }
        } else {
            core::auth::VerifyInput in;
            in.now = req.now;
            in.clock_synchronized = req.clock_synchronized;
            in.expected_challenge = req.expected_challenge;
            in.actions = req.actions;
            in.policy = req.policy;
            if (record) {
                in.device = &*record;
                in.replay = row->replay;
            }
            d = core::auth::verify(req.frame, hd, in);
            if (d.command) {
                action = d.command->action;
            }
            // Only a request whose seal opened earns a sealed answer (Decision::sealed_reply).
            if (record && d.sealed_reply) {
                out.response_key = core::protocol::device_seal_keys(record->secret.view()).response;
            }
            if (row && d.accepted()) {
                // Replay state only ever moves forward on an accepted request.
                sql::Stmt rp(I.db,
                             "UPDATE devices SET last_counter = ?1, last_used = ?2 WHERE id = ?3");
                rp.bind(1, to_db(d.replay.last_counter))
                    .bind(2, d.verified_at)
                    .bind(3, row->id)
                    .run();
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
        }
        // An accepted catalogue request changes only the counter: no audit row.
        const bool quiet_catalogue = d.accepted() && d.catalogue.has_value();
        if (!quiet_catalogue) {
            const bool running = d.accepted() && d.command.has_value();
            // At V as the checks used it: after the clock-advance row, never before it.
            const std::int64_t at = d.clock_advanced_to ? d.verified_at : req.now;
            out.audit_id = I.insert_audit(at, claimed_hex, action, req.transport, d.status,
                                          d.detail, out.request_id, /*completed=*/!running);
        }
        txn.commit();

        if (out.device && d.accepted() && !d.pair) {
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
    out.decision.header = hd.header;
    // A request whose seal opened still gets a sealed answer (response_key was set
    // before the write failed): "internal, nothing ran" from the Pi itself.
    out.decision.sealed_reply = !out.response_key.empty();
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
