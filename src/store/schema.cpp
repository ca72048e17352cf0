// SPDX-License-Identifier: GPL-3.0-or-later
// The database schema and its migrations (PRAGMA user_version).
#include <iterator>
#include <string>

#include "store/store_impl.h"

namespace bzs::store {

namespace {

// Schema. Each step runs once, in its own transaction, and sets user_version to
// its number. Never edit a released step: append a new one.
struct Migration {
    int version;
    const char* what;
    const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, "create the initial tables", R"sql(
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE devices (
    id                   BLOB PRIMARY KEY NOT NULL CHECK (typeof(id) = 'blob' AND length(id) = 16),
    name                 TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created              INTEGER NOT NULL,
    last_used            INTEGER,
    revoked_at           INTEGER,
    secret_token         TEXT NOT NULL,
    key_id               INTEGER NOT NULL CHECK (key_id >= 1),
    totp_alg             TEXT NOT NULL CHECK (totp_alg IN ('SHA1', 'SHA256', 'SHA512')),
    totp_digits          INTEGER NOT NULL CHECK (totp_digits BETWEEN 6 AND 8),
    totp_period          INTEGER NOT NULL CHECK (totp_period >= 1),
    last_totp_step       INTEGER,
    last_counter         INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    lockouts             INTEGER NOT NULL DEFAULT 0,
    locked_until         INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Names identify active devices to owners; revoked ones may share a name.
CREATE UNIQUE INDEX devices_active_name ON devices(name) WHERE revoked_at IS NULL;

CREATE TABLE device_actions (
    device_id BLOB NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    action    TEXT NOT NULL,
    PRIMARY KEY (device_id, action)
) WITHOUT ROWID;

CREATE TABLE global_rate (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    window_start INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
);

CREATE TABLE audit (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    time          INTEGER NOT NULL,
    device_id_hex TEXT,
    action        TEXT NOT NULL DEFAULT '',
    transport     TEXT NOT NULL,
    status        TEXT NOT NULL,
    detail        TEXT NOT NULL DEFAULT '',
    exit_code     INTEGER,
    duration_ms   INTEGER,
    request_id    TEXT NOT NULL UNIQUE,
    completed     INTEGER NOT NULL DEFAULT 1
);
)sql"},
    {2, "index the audit log for queries by device and time", R"sql(
CREATE INDEX audit_device ON audit(device_id_hex, id);
CREATE INDEX audit_time ON audit(time);
)sql"},
    {3, "web UI sessions and sign-in attempts", R"sql(
-- Only a SHA-256 of each session token is kept: a copied database opens no session.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL CHECK (length(token_hash) = 64),
    csrf       TEXT NOT NULL,
    created    INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    client     TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE TABLE signin_attempts (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    client TEXT NOT NULL,
    time   INTEGER NOT NULL
);
CREATE INDEX signin_attempts_client ON signin_attempts(client, time);
)sql"},
    {4, "protocol v2 freshness: no cooldown, no stored lockouts", R"sql(
-- Rate limits now live in the daemon's memory and only count unauthenticated
-- frames (core/auth/throttle.h); one TOTP step may serve many commands.
ALTER TABLE devices DROP COLUMN last_totp_step;
ALTER TABLE devices DROP COLUMN consecutive_failures;
ALTER TABLE devices DROP COLUMN lockouts;
ALTER TABLE devices DROP COLUMN locked_until;
DROP TABLE global_rate;
)sql"},
    {5, "BLE addresses of devices, for removing a revoked device's bond", R"sql(
-- The BLE address a device's accepted commands last came from ("AA:BB:CC:DD:EE:FF").
ALTER TABLE devices ADD COLUMN ble_address TEXT
    CHECK (ble_address IS NULL OR length(ble_address) = 17);
-- When the daemon removed BlueZ's bond of a revoked device (NULL: not yet).
ALTER TABLE devices ADD COLUMN ble_bond_removed_at INTEGER;
CREATE INDEX devices_ble_address ON devices(ble_address) WHERE ble_address IS NOT NULL;
)sql"},
    {6, "protocol v2 pairing: pending devices with a one-time code", R"sql(
-- When the pairing exchange stored the device's secret; NULL while pending.
-- Devices paired before version 2 keep their secret, which now is S.
ALTER TABLE devices ADD COLUMN paired_at INTEGER;
UPDATE devices SET paired_at = created;
-- A pending device's one-time code: a Fernet token under master key code_key_id
-- ('' and 0 once used or revoked), working until code_expires. A pending
-- device's secret_token is '' (SQLite cannot drop NOT NULL without rebuilding a
-- table that device_actions references).
ALTER TABLE devices ADD COLUMN code_token TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN code_key_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN code_expires INTEGER;
CREATE INDEX devices_pending ON devices(code_expires)
    WHERE paired_at IS NULL AND revoked_at IS NULL;
)sql"},
};

constexpr int kSchemaVersion = kMigrations[std::size(kMigrations) - 1].version;

}  // namespace

int Store::Impl::user_version() {
    sql::Stmt st(db, "PRAGMA user_version");
    st.step();
    return static_cast<int>(st.int64(0));
}

void Store::Impl::migrate() {
    const int found = user_version();
    if (found > kSchemaVersion) {
        throw StoreError("database " + path.string() + " has schema version " +
                         std::to_string(found) + ", newer than this program supports (" +
                         std::to_string(kSchemaVersion) + "); upgrade BlueZscript");
    }
    for (const auto& m : kMigrations) {
        if (m.version <= found) {
            continue;
        }
        sql::Transaction txn(db);
        // Another process may have migrated while we waited for the lock.
        if (user_version() >= m.version) {
            continue;
        }
        db.exec(m.sql, "database " + path.string() + ": schema migration " +
                           std::to_string(m.version) + " (" + m.what + ") failed");
        // PRAGMA takes no parameters; the value is a compile-time constant.
        const std::string set = "PRAGMA user_version = " + std::to_string(m.version);
        db.exec(set.c_str(), "cannot record schema version");
        txn.commit();
    }
}

int Store::schema_version_current() {
    return kSchemaVersion;
}

int Store::schema_version() const {
    return impl_->user_version();
}

}  // namespace bzs::store
