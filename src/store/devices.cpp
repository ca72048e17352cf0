// SPDX-License-Identifier: GPL-3.0-or-later
// Devices: their rows, permitted actions and the owner's commands on them, and
// their secrets, kept only as Fernet tokens under the master key.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/crypto/fernet.h"
#include "core/protocol/names.h"
#include "core/protocol/pair_exchange.h"
#include "store/store_impl.h"
#include "util/clock.h"

namespace bzs::store {

namespace {

using core::protocol::quote_for_message;

void validate_device_name(const std::string& name) {
    if (const auto problem = core::protocol::device_name_problem(name)) {
        throw StoreError(*problem);
    }
}

std::set<std::string> validate_actions(const std::vector<std::string>& actions) {
    std::set<std::string> out;
    for (const auto& a : actions) {
        if (!core::protocol::valid_action_name(a)) {
            throw StoreError("invalid action name " + quote_for_message(a) +
                             ": it must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ and not end "
                             "in .toml");
        }
        out.insert(a);
    }
    return out;
}

void validate_totp(const core::crypto::TotpParams& t) {
    if (t.digits < 6 || t.digits > 8) {
        throw StoreError("TOTP digits must be 6, 7 or 8 (got " + std::to_string(t.digits) + ")");
    }
    if (t.step_seconds < 1 || t.step_seconds > 3600) {
        throw StoreError("TOTP period must be 1 to 3600 seconds (got " +
                         std::to_string(t.step_seconds) + ")");
    }
}

/// allow/deny: at least one name, each valid.
std::set<std::string> requested_actions(const std::vector<std::string>& actions) {
    if (actions.empty()) {
        throw StoreError("no action names given");
    }
    return validate_actions(actions);
}

/// Runs `sql` (?1 = device id, ?2 = action) once per action: add, allow and
/// deny differ only in the statement.
void for_each_action(sql::Db& db, const char* sql, const core::protocol::DeviceId& id,
                     const std::set<std::string>& actions) {
    sql::Stmt st(db, sql);
    for (const auto& a : actions) {
        st.reset();
        st.bind(1, id).bind(2, a).run();
    }
}

/// "device 'name' (id hex)", as errors about a device's state name it.
std::string describe(const DeviceRow& r) {
    return "device " + quote_for_message(r.name) + " (id " + id_hex(r.id) + ")";
}

// "AA:BB:CC:DD:EE:FF": six pairs of hex digits joined by colons, as BlueZ writes them.
bool ble_address_form(const std::string& a) {
    if (a.size() != 17) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        const char c = a[i];
        const bool hex = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
        if (i % 3 == 2 ? c != ':' : !hex) {
            return false;
        }
    }
    return true;
}

std::string to_upper(std::string s) {
    for (char& c : s) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return s;
}

}  // namespace

DeviceRow read_device(const sql::Stmt& st) {
    DeviceRow r;
    const auto id = st.blob(0);
    if (id.size() != r.id.size()) {
        throw StoreError("a device row has an id of " + std::to_string(id.size()) + " bytes");
    }
    std::copy(id.begin(), id.end(), r.id.begin());
    r.name = st.text(1);
    r.created = st.int64(2);
    r.last_used = st.opt_int64(3);
    r.revoked_at = st.opt_int64(4);
    r.secret_token = st.text(5);
    r.key_id = from_db_u32(st.int64(6));
    const auto alg = core::crypto::parse_hash(st.text(7));
    if (!alg) {
        throw StoreError("device " + id_hex(r.id) + " has an unknown TOTP algorithm");
    }
    r.totp.hash = *alg;
    r.totp.digits = static_cast<int>(st.int64(8));
    r.totp.step_seconds = static_cast<int>(st.int64(9));
    r.replay.last_counter = from_db_u64(st.int64(10));
    r.ble_address = st.opt_text(11);
    r.ble_bond_removed_at = st.opt_int64(12);
    r.paired_at = st.opt_int64(13);
    r.code_token = st.text(14);
    r.code_key_id = from_db_u32(st.int64(15));
    r.code_expires = st.opt_int64(16);
    return r;
}

std::vector<DeviceRow> read_devices(sql::Stmt& st) {
    std::vector<DeviceRow> rows;
    while (st.step()) {
        rows.push_back(read_device(st));
    }
    return rows;
}

std::optional<DeviceRow> Store::Impl::device_row(const core::protocol::DeviceId& id) {
    sql::Stmt st(db, "SELECT " BZS_DEVICE_COLUMNS " FROM devices WHERE id = ?1");
    st.bind(1, id);
    if (!st.step()) {
        return std::nullopt;
    }
    return read_device(st);
}

DeviceRow Store::Impl::require_device(const core::protocol::DeviceId& id) {
    auto r = device_row(id);
    if (!r) {
        throw StoreError("no device with id " + id_hex(id));
    }
    return std::move(*r);
}

std::vector<std::string> Store::Impl::actions_of(const core::protocol::DeviceId& id) {
    sql::Stmt st(db, "SELECT action FROM device_actions WHERE device_id = ?1 ORDER BY action");
    st.bind(1, id);
    std::vector<std::string> out;
    while (st.step()) {
        out.push_back(st.text(0));
    }
    return out;
}

DeviceInfo Store::Impl::info_of(const DeviceRow& r) {
    DeviceInfo d;
    d.id = r.id;
    d.id_hex = id_hex(r.id);
    d.name = r.name;
    d.created = r.created;
    d.last_used = r.last_used;
    d.revoked_at = r.revoked_at;
    d.actions = actions_of(r.id);
    d.ble_address = r.ble_address;
    d.ble_bond_removed_at = r.ble_bond_removed_at;
    d.paired_at = r.paired_at;
    d.code_expires = r.pending() ? r.code_expires : std::nullopt;
    d.totp = r.totp;
    return d;
}

core::crypto::SecretBytes Store::Impl::open_token(const std::string& token, std::uint32_t key_id,
                                                  const std::string& what, const KeyRing* also) {
    const core::crypto::Fernet* f = also != nullptr ? also->find(key_id) : nullptr;
    if (f == nullptr) {
        f = keys.find(key_id);
    }
    if (f == nullptr && keyfile) {
        // The CLI may have rotated the master key while we run: read the file once.
        reload_keys();
        f = keys.find(key_id);
    }
    if (f == nullptr) {
        throw StoreError(what + " is encrypted with master key " + std::to_string(key_id) +
                         ", which is not in " +
                         (keyfile ? "the key file " + keyfile->string() : "the loaded key ring"));
    }
    // The real time, not a request's: Fernet refuses tokens from the future.
    auto res = f->decrypt(token, util::wall_clock_now());
    if (!res.ok()) {
        throw StoreError("cannot decrypt " + what + " with master key " + std::to_string(key_id) +
                         " (" + std::string(core::crypto::fernet_error_name(res.error)) +
                         "); the key file does not match the database");
    }
    return std::move(*res.plaintext);
}

core::crypto::SecretBytes Store::Impl::decrypt(const DeviceRow& r, const KeyRing* also) {
    if (r.secret_token.empty()) {
        throw StoreError("device " + id_hex(r.id) + " has no secret yet: it is not paired");
    }
    return open_token(r.secret_token, r.key_id, "the secret of device " + id_hex(r.id), also);
}

core::crypto::SecretBytes Store::Impl::decrypt_code(const DeviceRow& r) {
    if (!r.pending() || r.code_token.empty()) {
        throw StoreError("device " + id_hex(r.id) + " has no pairing code: it is not pending");
    }
    return open_token(r.code_token, r.code_key_id, "the pairing code of device " + id_hex(r.id));
}

std::pair<std::string, std::uint32_t> Store::Impl::encrypt(const core::crypto::SecretBytes& secret,
                                                           std::int64_t now) {
    // Never encrypt under a key another process has already rotated away: the
    // database records the newest master key id it has used.
    const auto recorded = get_setting("master_key_id");
    std::uint32_t newest = 0;
    if (recorded) {
        try {
            newest = static_cast<std::uint32_t>(std::stoul(*recorded));
        } catch (const std::exception&) {
            throw StoreError("setting master_key_id is not a number");
        }
    }
    if (newest > keys.current_id()) {
        reload_keys();
        if (newest > keys.current_id()) {
            throw StoreError("the database uses master key " + std::to_string(newest) +
                             " but the newest loaded key is " + std::to_string(keys.current_id()) +
                             (keyfile ? " (key file " + keyfile->string() + ")" : ""));
        }
    }
    const std::uint32_t id = keys.current_id();
    std::string token = keys.current().encrypt(secret.view(), now);
    if (id > newest) {
        put_setting("master_key_id", std::to_string(id));
    }
    return {std::move(token), id};
}

core::auth::DeviceRecord Store::Impl::record_of(const DeviceRow& r) {
    core::auth::DeviceRecord rec;
    rec.id = r.id;
    rec.name = r.name;
    rec.revoked = r.revoked_at.has_value();
    // A pending device has no secret yet; a revoked one that never paired neither.
    rec.pending = r.pending();
    if (!r.secret_token.empty()) {
        rec.secret = decrypt(r);
    }
    rec.totp = r.totp;
    const auto acts = actions_of(r.id);
    rec.permitted_actions.insert(acts.begin(), acts.end());
    return rec;
}

void Store::Impl::activate_device(const DeviceRow& r, const core::crypto::SecretBytes& secret,
                                  std::int64_t now) {
    if (!r.pending()) {
        throw StoreError(describe(r) + " is not pending; it cannot be paired");
    }
    auto [token, key_id] = encrypt(secret, now);
    sql::Stmt up(db,
                 "UPDATE devices SET secret_token = ?1, key_id = ?2, paired_at = ?3, "
                 "code_token = '', code_key_id = 0, code_expires = NULL WHERE id = ?4 AND "
                 "paired_at IS NULL AND revoked_at IS NULL");
    up.bind(1, token).bind(2, key_id).bind(3, now).bind(4, r.id).run();
    if (db.changes() != 1) {
        throw StoreError(describe(r) + " changed while it was being paired");
    }
}

std::optional<DeviceInfo> Store::Impl::find(const std::string& q) {
    {
        sql::Stmt st(db, "SELECT " BZS_DEVICE_COLUMNS
                         " FROM devices WHERE name = ?1 ORDER BY revoked_at IS NOT NULL");
        st.bind(1, q);
        const std::vector<DeviceRow> rows = read_devices(st);
        if (!rows.empty()) {
            if (!rows.front().revoked_at) {
                return info_of(rows.front());
            }
            if (rows.size() == 1) {
                return info_of(rows.front());
            }
            throw StoreError(std::to_string(rows.size()) + " revoked devices are named " +
                             quote_for_message(q) + "; use the device id instead");
        }
    }
    if (q.size() < 6 || q.size() > 32 || !is_hex(q)) {
        return std::nullopt;
    }
    const std::string prefix = to_upper(q);
    sql::Stmt st(
        db, "SELECT " BZS_DEVICE_COLUMNS " FROM devices WHERE substr(hex(id), 1, length(?1)) = ?1");
    st.bind(1, prefix);
    const std::vector<DeviceRow> rows = read_devices(st);
    if (rows.empty()) {
        return std::nullopt;
    }
    if (rows.size() > 1) {
        throw StoreError("device id prefix " + quote_for_message(q) + " matches " +
                         std::to_string(rows.size()) + " devices; give more characters");
    }
    return info_of(rows.front());
}

const char* device_state_name(DeviceState s) {
    switch (s) {
        case DeviceState::Pending:
            return "pending";
        case DeviceState::Active:
            return "active";
        case DeviceState::Revoked:
            return "revoked";
    }
    return "unknown";
}

namespace {

/// A fresh one-time code for a pending device (core::protocol::kPairCodeLen bytes).
core::crypto::SecretBytes fresh_code() {
    core::crypto::SecretBytes code(core::protocol::kPairCodeLen);
    core::crypto::random_bytes(std::span<std::uint8_t>(code.data(), code.size()));
    return code;
}

void validate_code_seconds(std::int64_t code_seconds) {
    // Up to a day: a code is meant to be used at once, and cleanup counts from expiry.
    if (code_seconds < 1 || code_seconds > 86'400) {
        throw StoreError("the pairing code's lifetime must be 1 to 86400 seconds (got " +
                         std::to_string(code_seconds) + ")");
    }
}

}  // namespace

NewPairing Store::add_device(const std::string& name, const std::vector<std::string>& actions,
                             std::int64_t now, std::int64_t code_seconds,
                             const core::crypto::TotpParams& totp) {
    validate_device_name(name);
    const auto acts = validate_actions(actions);
    validate_totp(totp);
    validate_code_seconds(code_seconds);
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    {
        sql::Stmt st(I.db, "SELECT hex(id) FROM devices WHERE name = ?1 AND revoked_at IS NULL");
        st.bind(1, name);
        if (st.step()) {
            throw StoreError("a device named " + quote_for_message(name) + " already exists (id " +
                             to_lower(st.text(0)) + "); choose another name or revoke it first");
        }
    }
    core::protocol::DeviceId id{};
    do {
        core::crypto::random_bytes(id);
    } while (I.device_row(id));

    // Pending: no secret yet (secret_token stays ''; key_id, which must be >= 1,
    // names the code's key until the exchange stores S).
    core::crypto::SecretBytes code = fresh_code();
    auto [token, key_id] = I.encrypt(code, now);
    const std::int64_t expires = now + code_seconds;

    sql::Stmt ins(I.db,
                  "INSERT INTO devices (id, name, created, secret_token, key_id, totp_alg, "
                  "totp_digits, totp_period, code_token, code_key_id, code_expires) VALUES "
                  "(?1, ?2, ?3, '', ?4, ?5, ?6, ?7, ?8, ?4, ?9)");
    ins.bind(1, id)
        .bind(2, name)
        .bind(3, now)
        .bind(4, key_id)
        .bind(5, core::crypto::hash_name(totp.hash))
        .bind(6, totp.digits)
        .bind(7, totp.step_seconds)
        .bind(8, token)
        .bind(9, expires);
    ins.run();
    for_each_action(I.db, "INSERT INTO device_actions (device_id, action) VALUES (?1, ?2)", id,
                    acts);
    NewPairing p;
    p.device = I.info_of(I.require_device(id));
    txn.commit();
    p.code = std::move(code);
    p.code_expires = expires;
    p.totp = totp;
    return p;
}

NewPairing Store::new_code(const core::protocol::DeviceId& id, std::int64_t now,
                           std::int64_t code_seconds) {
    validate_code_seconds(code_seconds);
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    const DeviceRow r = I.require_device(id);
    if (r.revoked_at) {
        throw StoreError(describe(r) + " is revoked; add it again to pair a phone");
    }
    if (r.paired_at) {
        throw StoreError(describe(r) +
                         " is already paired; revoke it and add it again to pair another phone");
    }
    core::crypto::SecretBytes code = fresh_code();
    auto [token, key_id] = I.encrypt(code, now);
    const std::int64_t expires = now + code_seconds;
    // The old token is overwritten (secure_delete): the old code stops working now.
    sql::Stmt up(I.db,
                 "UPDATE devices SET code_token = ?1, code_key_id = ?2, key_id = ?2, "
                 "code_expires = ?3 WHERE id = ?4");
    up.bind(1, token).bind(2, key_id).bind(3, expires).bind(4, id).run();
    NewPairing p;
    p.device = I.info_of(I.require_device(id));
    txn.commit();
    p.code = std::move(code);
    p.code_expires = expires;
    p.totp = r.totp;
    return p;
}

std::optional<PendingRecord> Store::load_pending(const core::protocol::DeviceId& id) {
    auto& I = *impl_;
    sql::Transaction txn(I.db, /*immediate=*/false);
    const auto r = I.device_row(id);
    if (!r || !r->pending()) {
        return std::nullopt;
    }
    PendingRecord out;
    out.id = r->id;
    out.name = r->name;
    out.code = I.decrypt_code(*r);
    out.code_expires = r->code_expires.value_or(0);
    txn.commit();
    return out;
}

std::vector<std::string> Store::remove_expired_pending(std::int64_t now,
                                                       std::int64_t grace_seconds) {
    if (grace_seconds < 0) {
        throw StoreError("the grace period of expired pairing codes must not be negative");
    }
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    std::vector<DeviceRow> rows;
    {
        sql::Stmt st(I.db, "SELECT " BZS_DEVICE_COLUMNS
                           " FROM devices WHERE paired_at IS NULL AND revoked_at IS NULL AND "
                           "code_expires IS NOT NULL AND code_expires <= ?1 ORDER BY "
                           "code_expires, id");
        st.bind(1, now - grace_seconds);
        rows = read_devices(st);
    }
    std::vector<std::string> names;
    sql::Stmt del(I.db, "DELETE FROM devices WHERE id = ?1");
    for (const auto& r : rows) {
        del.reset();
        del.bind(1, r.id).run();
        // Written by the daemon's periodic clean-up (docs/security.md).
        I.insert_audit(now, id_hex(r.id), "", "daemon", core::protocol::Status::CodeExpired,
                       "pairing code expired unused; device removed", new_request_id(),
                       /*completed=*/true);
        names.push_back(r.name);
    }
    txn.commit();
    return names;
}

std::vector<DeviceInfo> Store::list_devices(bool include_revoked) {
    auto& I = *impl_;
    sql::Transaction txn(I.db, /*immediate=*/false);
    sql::Stmt st(I.db, "SELECT " BZS_DEVICE_COLUMNS
                       " FROM devices WHERE ?1 OR revoked_at IS NULL ORDER BY created, name, id");
    st.bind(1, include_revoked ? 1 : 0);
    std::vector<DeviceInfo> out;
    for (const DeviceRow& r : read_devices(st)) {
        out.push_back(I.info_of(r));
    }
    txn.commit();
    return out;
}

std::optional<DeviceInfo> Store::find_device(const std::string& name_or_id) {
    auto& I = *impl_;
    sql::Transaction txn(I.db, /*immediate=*/false);
    auto r = I.find(name_or_id);
    txn.commit();
    return r;
}

void Store::rename_device(const core::protocol::DeviceId& id, const std::string& new_name) {
    validate_device_name(new_name);
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    const DeviceRow r = I.require_device(id);
    if (!r.revoked_at) {
        sql::Stmt st(I.db,
                     "SELECT hex(id) FROM devices WHERE name = ?1 AND revoked_at IS NULL "
                     "AND id <> ?2");
        st.bind(1, new_name).bind(2, id);
        if (st.step()) {
            throw StoreError("a device named " + quote_for_message(new_name) +
                             " already exists (id " + to_lower(st.text(0)) + ")");
        }
    }
    sql::Stmt up(I.db, "UPDATE devices SET name = ?1 WHERE id = ?2");
    up.bind(1, new_name).bind(2, id).run();
    txn.commit();
}

void Store::revoke_device(const core::protocol::DeviceId& id, std::int64_t now) {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    const DeviceRow r = I.require_device(id);
    if (r.revoked_at) {
        throw StoreError(describe(r) + " is already revoked");
    }
    // A pending device's code goes with it: nothing can pair as a revoked device.
    sql::Stmt up(I.db,
                 "UPDATE devices SET revoked_at = ?1, code_token = '', code_key_id = 0, "
                 "code_expires = NULL WHERE id = ?2");
    up.bind(1, now).bind(2, id).run();
    txn.commit();
}

void Store::allow_actions(const core::protocol::DeviceId& id,
                          const std::vector<std::string>& actions) {
    const auto acts = requested_actions(actions);
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    const DeviceRow r = I.require_device(id);
    if (r.revoked_at) {
        throw StoreError(describe(r) + " is revoked; pair it again instead");
    }
    for_each_action(
        I.db, "INSERT OR IGNORE INTO device_actions (device_id, action) VALUES (?1, ?2)", id, acts);
    txn.commit();
}

void Store::deny_actions(const core::protocol::DeviceId& id,
                         const std::vector<std::string>& actions) {
    const auto acts = requested_actions(actions);
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    I.require_device(id);
    for_each_action(I.db, "DELETE FROM device_actions WHERE device_id = ?1 AND action = ?2", id,
                    acts);
    txn.commit();
}

void Store::remove_device(const core::protocol::DeviceId& id) {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    const DeviceRow r = I.require_device(id);
    if (!r.revoked_at) {
        throw StoreError(describe(r) + " is not revoked; revoke it before removing it");
    }
    sql::Stmt del(I.db, "DELETE FROM devices WHERE id = ?1");
    del.bind(1, id).run();
    txn.commit();
}

void Store::set_device_address(const core::protocol::DeviceId& id, const std::string& address) {
    if (!ble_address_form(address)) {
        throw StoreError("BLE address " + quote_for_message(address) +
                         " is not of the form AA:BB:CC:DD:EE:FF");
    }
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    I.require_device(id);
    sql::Stmt up(I.db, "UPDATE devices SET ble_address = ?1 WHERE id = ?2");
    up.bind(1, to_upper(address)).bind(2, id).run();
    txn.commit();
}

std::vector<DeviceInfo> Store::bonds_to_remove() {
    auto& I = *impl_;
    sql::Transaction txn(I.db, /*immediate=*/false);
    sql::Stmt st(I.db, "SELECT " BZS_DEVICE_COLUMNS
                       " FROM devices AS d WHERE revoked_at IS NOT NULL AND ble_address IS NOT "
                       "NULL AND ble_bond_removed_at IS NULL AND NOT EXISTS (SELECT 1 FROM "
                       "devices AS a WHERE a.revoked_at IS NULL AND a.ble_address = "
                       "d.ble_address) ORDER BY revoked_at, id");
    std::vector<DeviceInfo> out;
    for (const DeviceRow& r : read_devices(st)) {
        out.push_back(I.info_of(r));
    }
    txn.commit();
    return out;
}

std::int64_t Store::mark_bond_removed(const std::string& address, std::int64_t now) {
    auto& I = *impl_;
    sql::Transaction txn(I.db);
    sql::Stmt up(I.db,
                 "UPDATE devices SET ble_bond_removed_at = ?1 WHERE revoked_at IS NOT NULL AND "
                 "ble_address = ?2 AND ble_bond_removed_at IS NULL");
    up.bind(1, now).bind(2, to_upper(address)).run();
    const std::int64_t changed = I.db.changes();  // before commit: this statement's count
    txn.commit();
    return changed;
}

}  // namespace bzs::store
