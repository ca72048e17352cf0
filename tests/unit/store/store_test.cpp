// SPDX-License-Identifier: GPL-3.0-or-later
// Tests of the pairing store (store/store.h) on real SQLite files: schema and
// migrations, pragmas, devices and their permissions, settings, the audit log.
#include "store/store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/pair_exchange.h"
#include "phone.h"
#include "store_fixture.h"
#include "test_support.h"

namespace bzs::store {
namespace {

using test::mode_of;
using testing::fresh_ring;
using testing::kNow;
using testing::RawDb;

/// How long a new device's pairing code works in these tests (pairing.window_seconds).
constexpr std::int64_t kCodeSeconds = 300;

/// Expects `fn` to throw StoreError whose message contains `needle`.
template <typename Fn>
void expect_store_error(Fn&& fn, const std::string& needle) {
    testing::expect_error<StoreError>(std::forward<Fn>(fn), "StoreError", needle);
}

class StoreTest : public ::testing::Test {
  protected:
    test::TempDir dir;
    std::filesystem::path db_path = dir / "bluezscript.db";
    KeyRing ring = fresh_ring();
    std::unique_ptr<Store> store = std::make_unique<Store>(db_path, ring);

    void reopen() {
        store.reset();
        store = std::make_unique<Store>(db_path, ring);
    }

    /// Makes a pending device active as a completed pairing leaves it (secret
    /// stored, code forgotten), written through a second connection: the exchange
    /// itself is Store::authorize's and is tested with it.
    core::crypto::SecretBytes activate(const core::protocol::DeviceId& id, std::int64_t at) {
        core::crypto::SecretBytes secret(core::crypto::random_bytes(32));
        RawDb raw(db_path);
        sql::Stmt up(raw.db(),
                     "UPDATE devices SET secret_token = ?1, key_id = 1, paired_at = ?2, "
                     "code_token = '', code_key_id = 0, code_expires = NULL WHERE id = ?3");
        up.bind(1, ring.current().encrypt(secret.view(), at)).bind(2, at).bind(3, id).run();
        return secret;
    }

    /// The one-time code stored for `id`, decrypted with the test's ring.
    std::optional<core::crypto::SecretBytes> stored_code(const core::protocol::DeviceId& id) {
        RawDb raw(db_path);
        sql::Stmt st(raw.db(), "SELECT code_token FROM devices WHERE id = ?1");
        st.bind(1, id);
        if (!st.step() || st.text(0).empty()) {
            return std::nullopt;
        }
        auto plain = ring.current().decrypt(st.text(0), kNow);
        if (!plain.ok()) {
            return std::nullopt;
        }
        return std::move(*plain.plaintext);
    }
};

// --- schema, pragmas, file modes ---

TEST_F(StoreTest, FreshDatabaseIsAtTheCurrentSchemaVersion) {
    EXPECT_GE(Store::schema_version_current(), 2);
    EXPECT_EQ(store->schema_version(), Store::schema_version_current());
    RawDb raw(db_path);
    EXPECT_EQ(raw.count("PRAGMA user_version"), Store::schema_version_current());
    for (const char* table : {"settings", "devices", "device_actions", "audit", "sessions"}) {
        sql::Stmt st(raw.db(),
                     "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1");
        st.bind(1, table);
        ASSERT_TRUE(st.step());
        EXPECT_EQ(st.int64(0), 1) << "missing table " << table;
    }
}

TEST_F(StoreTest, ReopeningIsIdempotent) {
    const auto p = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    reopen();
    reopen();
    EXPECT_EQ(store->schema_version(), Store::schema_version_current());
    const auto devices = store->list_devices();
    ASSERT_EQ(devices.size(), 1U);
    EXPECT_EQ(devices[0].id, p.device.id);
}

TEST_F(StoreTest, UsesWalJournalAndPrivateFiles) {
    store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    RawDb raw(db_path);
    EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(mode_of(db_path), 0600U);
    const auto wal = db_path.string() + "-wal";
    ASSERT_TRUE(std::filesystem::exists(wal));
    EXPECT_EQ(mode_of(wal), 0600U);
}

TEST(StoreOpen, CreatesTheDatabase0600WhateverTheUmask) {
    test::TempDir dir;
    const mode_t old = ::umask(0);
    {
        Store s(dir / "db", fresh_ring());
        s.add_device("phone", {}, kNow, kCodeSeconds);
    }
    ::umask(old);
    EXPECT_EQ(mode_of(dir / "db"), 0600U);
}

TEST(StoreOpen, RefusesADatabaseOthersCanRead) {
    test::TempDir dir;
    const auto db = dir / "db";
    { Store s(db, fresh_ring()); }
    ASSERT_EQ(::chmod(db.c_str(), 0644), 0);
    try {
        Store s(db, fresh_ring());
        ADD_FAILURE() << "opened a world-readable database";
    } catch (const KeyFileError& e) {
        EXPECT_NE(std::string(e.what()).find("database " + db.string() +
                                             " is readable by group/others (mode 0644)"),
                  std::string::npos)
            << e.what();
    }
}

TEST(StoreOpen, RefusesAnEmptyKeyRing) {
    test::TempDir dir;
    EXPECT_THROW(Store(dir / "db", KeyRing{}), KeyFileError);
}

TEST(StoreOpen, RefusesANewerSchema) {
    test::TempDir dir;
    const auto db = dir / "db";
    { Store s(db, fresh_ring()); }
    {
        RawDb raw(db);
        raw.exec("PRAGMA user_version = 99");
    }
    try {
        Store s(db, fresh_ring());
        ADD_FAILURE() << "opened a database from the future";
    } catch (const StoreError& e) {
        EXPECT_NE(std::string(e.what()).find("has schema version 99, newer than this program "
                                             "supports (" +
                                             std::to_string(Store::schema_version_current()) + ")"),
                  std::string::npos)
            << e.what();
    }
}

// The schema as version 1 shipped it, written out by hand (not taken from
// store.cpp) so that changing migration 1 by mistake breaks this test.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE devices (
    id BLOB PRIMARY KEY NOT NULL CHECK (typeof(id) = 'blob' AND length(id) = 16),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created INTEGER NOT NULL, last_used INTEGER, revoked_at INTEGER,
    secret_token TEXT NOT NULL, key_id INTEGER NOT NULL CHECK (key_id >= 1),
    totp_alg TEXT NOT NULL CHECK (totp_alg IN ('SHA1', 'SHA256', 'SHA512')),
    totp_digits INTEGER NOT NULL CHECK (totp_digits BETWEEN 6 AND 8),
    totp_period INTEGER NOT NULL CHECK (totp_period >= 1),
    last_totp_step INTEGER, last_counter INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0, lockouts INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE UNIQUE INDEX devices_active_name ON devices(name) WHERE revoked_at IS NULL;
CREATE TABLE device_actions (
    device_id BLOB NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    action TEXT NOT NULL, PRIMARY KEY (device_id, action)) WITHOUT ROWID;
CREATE TABLE global_rate (id INTEGER PRIMARY KEY CHECK (id = 1), window_start INTEGER NOT NULL,
    attempts INTEGER NOT NULL, failures INTEGER NOT NULL, locked_until INTEGER NOT NULL);
CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,
    device_id_hex TEXT, action TEXT NOT NULL DEFAULT '', transport TEXT NOT NULL,
    status TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', exit_code INTEGER,
    duration_ms INTEGER, request_id TEXT NOT NULL UNIQUE, completed INTEGER NOT NULL DEFAULT 1);
PRAGMA user_version = 1;
)sql";

TEST(StoreMigration, UpgradesAVersion1DatabaseKeepingItsData) {
    test::TempDir dir;
    const auto db = dir / "v1.db";
    const KeyRing ring = fresh_ring();
    core::crypto::SecretBytes secret(32);
    core::crypto::random_bytes(std::span<std::uint8_t>(secret.data(), secret.size()));
    core::protocol::DeviceId id{};
    id.fill(0xAB);
    {
        testing::RawDb raw(db);
        raw.exec(kSchemaV1);
        sql::Stmt dev(raw.db(),
                      "INSERT INTO devices (id, name, created, secret_token, key_id, totp_alg, "
                      "totp_digits, totp_period, last_counter) "
                      "VALUES (?1, 'old phone', 1600000000, ?2, 1, 'SHA1', 6, 30, 41)");
        dev.bind(1, id).bind(2, ring.current().encrypt(secret.view(), kNow)).run();
        raw.exec("INSERT INTO device_actions VALUES (x'ABABABABABABABABABABABABABABABAB', 'open')");
        raw.exec("INSERT INTO settings VALUES ('pi_id', '00112233445566778899aabbccddeeff')");
        raw.exec(
            "INSERT INTO audit (time, device_id_hex, action, transport, status, request_id) "
            "VALUES (1600000001, 'abababababababababababababababab', 'open', 'ble', 'ok', "
            "'r1')");
        EXPECT_EQ(raw.count("PRAGMA user_version"), 1);
        EXPECT_EQ(raw.count("SELECT count(*) FROM sqlite_master WHERE name = 'audit_device'"), 0);
    }
    ::chmod(db.c_str(), 0600);

    Store s(db, ring);
    EXPECT_EQ(s.schema_version(), Store::schema_version_current());
    {
        RawDb raw(db);
        EXPECT_EQ(raw.count("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                            "('audit_device', 'audit_time')"),
                  2);
    }
    const auto found = s.find_device("old phone");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->id, id);
    EXPECT_EQ(found->actions, std::vector<std::string>{"open"});
    EXPECT_EQ(s.replay_state(id).last_counter, 41U);
    const auto rec = s.load_device(id);
    ASSERT_TRUE(rec);
    EXPECT_TRUE(core::crypto::ct_equal(rec->secret.view(), secret.view()));
    EXPECT_EQ(core::crypto::hex_encode(s.pi_id()), "00112233445566778899aabbccddeeff");
    const auto rows = s.audit({});
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].device_name, "old phone");
    EXPECT_EQ(rows[0].request_id, "r1");
}

// Migrations 2 and 3 as they shipped, by hand, on top of kSchemaV1: a version 3
// database as the previous release left it.
constexpr const char* kSchemaV2V3 = R"sql(
CREATE INDEX audit_device ON audit(device_id_hex, id);
CREATE INDEX audit_time ON audit(time);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL CHECK (length(token_hash) = 64),
    csrf TEXT NOT NULL, created INTEGER NOT NULL, last_seen INTEGER NOT NULL,
    client TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE signin_attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, client TEXT NOT NULL,
    time INTEGER NOT NULL);
CREATE INDEX signin_attempts_client ON signin_attempts(client, time);
PRAGMA user_version = 3;
)sql";

// Migration 4 drops the stored lockouts and TOTP step (rate limits moved to
// memory, no cooldown) and keeps everything else; the device still works.
TEST(StoreMigration, Version3To4DropsLockoutStateAndKeepsTheRest) {
    test::TempDir dir;
    const auto db = dir / "v3.db";
    const KeyRing ring = fresh_ring();
    core::crypto::SecretBytes secret(32);
    core::crypto::random_bytes(std::span<std::uint8_t>(secret.data(), secret.size()));
    core::protocol::DeviceId id{};
    id.fill(0xCD);
    {
        testing::RawDb raw(db);
        raw.exec(kSchemaV1);
        raw.exec(kSchemaV2V3);
        sql::Stmt dev(raw.db(),
                      "INSERT INTO devices (id, name, created, secret_token, key_id, totp_alg, "
                      "totp_digits, totp_period, last_totp_step, last_counter, "
                      "consecutive_failures, lockouts, locked_until) "
                      "VALUES (?1, 'locked phone', 1600000000, ?2, 1, 'SHA1', 6, 30, "
                      "56666667, 7, 4, 2, 9999999999)");
        dev.bind(1, id).bind(2, ring.current().encrypt(secret.view(), kNow)).run();
        raw.exec("INSERT INTO device_actions VALUES (x'CDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCD', 'open')");
        raw.exec("INSERT INTO global_rate VALUES (1, 1600000000, 50, 40, 9999999999)");
        const std::string session =
            "INSERT INTO sessions VALUES ('" + std::string(64, 'a') + "', 'csrf', 1, 2, 'x')";
        raw.exec(session.c_str());
        raw.exec(
            "INSERT INTO audit (time, device_id_hex, action, transport, status, request_id) "
            "VALUES (1600000001, 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd', 'open', 'ble', "
            "'reused_totp', 'r1')");
        EXPECT_EQ(raw.count("PRAGMA user_version"), 3);
    }
    ::chmod(db.c_str(), 0600);

    Store s(db, ring);
    EXPECT_EQ(s.schema_version(), Store::schema_version_current());
    {
        RawDb raw(db);
        EXPECT_GE(raw.count("PRAGMA user_version"), 4);
        EXPECT_EQ(raw.count("SELECT count(*) FROM sqlite_master WHERE name = 'global_rate'"), 0);
        EXPECT_EQ(raw.count("SELECT count(*) FROM pragma_table_info('devices') WHERE name IN "
                            "('last_totp_step', 'consecutive_failures', 'lockouts', "
                            "'locked_until')"),
                  0);
        EXPECT_EQ(raw.count("SELECT count(*) FROM sessions"), 1);
        EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
    }
    const auto found = s.find_device("locked phone");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->actions, std::vector<std::string>{"open"});
    EXPECT_EQ(s.replay_state(id).last_counter, 7U);
    // Formerly locked out until 2286: now it simply authenticates.
    test::Phone ph;
    ph.id = id;
    ph.secret = secret;
    ph.counter = 7;
    const auto challenge = testing::challenge_of(3);
    const auto frame = ph.frame("open", kNow, challenge);
    const auto a = s.authorize(testing::request_for(frame, kNow, challenge));
    EXPECT_EQ(a.decision.status, core::protocol::Status::Ok) << a.decision.detail;
    const auto rows = s.audit({});
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(rows[1].status, "reused_totp");  // old rows keep their words
}

// Migrations 4 and 5 as they shipped, by hand, on top of version 3: a version 5
// database as the last release before protocol v2 left it.
constexpr const char* kSchemaV4V5 = R"sql(
ALTER TABLE devices DROP COLUMN last_totp_step;
ALTER TABLE devices DROP COLUMN consecutive_failures;
ALTER TABLE devices DROP COLUMN lockouts;
ALTER TABLE devices DROP COLUMN locked_until;
DROP TABLE global_rate;
ALTER TABLE devices ADD COLUMN ble_address TEXT
    CHECK (ble_address IS NULL OR length(ble_address) = 17);
ALTER TABLE devices ADD COLUMN ble_bond_removed_at INTEGER;
CREATE INDEX devices_ble_address ON devices(ble_address) WHERE ble_address IS NOT NULL;
PRAGMA user_version = 5;
)sql";

// Migration 6: devices paired before v2 are active (their secret is S), revoked
// ones stay revoked, nobody is pending, and new devices start pending.
TEST(StoreMigration, Version5To6MakesExistingDevicesActiveWithTheirSecrets) {
    test::TempDir dir;
    const auto db = dir / "v5.db";
    const KeyRing ring = fresh_ring();
    core::crypto::SecretBytes secret(core::crypto::random_bytes(32));
    core::protocol::DeviceId id{};
    id.fill(0xEF);
    core::protocol::DeviceId gone{};
    gone.fill(0x12);
    {
        testing::RawDb raw(db);
        raw.exec(kSchemaV1);
        raw.exec(kSchemaV2V3);
        raw.exec(kSchemaV4V5);
        sql::Stmt dev(raw.db(),
                      "INSERT INTO devices (id, name, created, last_used, revoked_at, "
                      "secret_token, key_id, totp_alg, totp_digits, totp_period, last_counter, "
                      "ble_address) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 'SHA1', 6, 30, 9, ?7)");
        dev.bind(1, id)
            .bind(2, "old phone")
            .bind(3, std::int64_t{1'600'000'000})
            .bind(4, std::int64_t{1'600'000'500})
            .bind_null(5)
            .bind(6, ring.current().encrypt(secret.view(), kNow))
            .bind(7, "AA:BB:CC:DD:EE:FF")
            .run();
        dev.reset();
        dev.bind(1, gone)
            .bind(2, "lost phone")
            .bind(3, std::int64_t{1'500'000'000})
            .bind_null(4)
            .bind(5, std::int64_t{1'550'000'000})
            .bind(6, ring.current().encrypt(secret.view(), kNow))
            .bind_null(7)
            .run();
        raw.exec("INSERT INTO device_actions VALUES (x'EFEFEFEFEFEFEFEFEFEFEFEFEFEFEFEF', 'open')");
        EXPECT_EQ(raw.count("PRAGMA user_version"), 5);
    }
    ::chmod(db.c_str(), 0600);

    Store s(db, ring);
    EXPECT_EQ(s.schema_version(), Store::schema_version_current());
    {
        RawDb raw(db);
        EXPECT_GE(raw.count("PRAGMA user_version"), 6);
        EXPECT_EQ(raw.count("SELECT count(*) FROM sqlite_master WHERE name = 'devices_pending'"),
                  1);
        EXPECT_EQ(raw.count("SELECT count(*) FROM devices WHERE code_token <> '' OR "
                            "code_key_id <> 0 OR code_expires IS NOT NULL"),
                  0);
        EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
    }
    const auto found = s.find_device("old phone");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->state(), DeviceState::Active);
    EXPECT_EQ(found->paired_at, 1'600'000'000);
    EXPECT_EQ(found->last_used, 1'600'000'500);
    EXPECT_EQ(found->ble_address, "AA:BB:CC:DD:EE:FF");
    EXPECT_EQ(found->actions, std::vector<std::string>{"open"});
    EXPECT_FALSE(found->code_expires);
    EXPECT_EQ(s.replay_state(id).last_counter, 9U);
    const auto rec = s.load_device(id);
    ASSERT_TRUE(rec);
    EXPECT_FALSE(rec->pending);
    EXPECT_TRUE(core::crypto::ct_equal(rec->secret.view(), secret.view()));
    EXPECT_FALSE(s.load_pending(id));
    const auto lost = s.find_device("lost phone");
    ASSERT_TRUE(lost);
    EXPECT_EQ(lost->state(), DeviceState::Revoked);
    EXPECT_EQ(lost->paired_at, 1'500'000'000);
    // Nothing migrated is pending, so the clean-up removes nothing.
    EXPECT_TRUE(s.remove_expired_pending(kNow + 10'000'000).empty());
    const auto fresh = s.add_device("new phone", {"open"}, kNow, kCodeSeconds);
    EXPECT_EQ(fresh.device.state(), DeviceState::Pending);
    expect_store_error([&] { s.add_device("old phone", {}, kNow, kCodeSeconds); },
                       "a device named 'old phone' already exists");
}

// --- foreign keys ---

TEST_F(StoreTest, RemovingADeviceCascadesToItsActions) {
    const auto p = store->add_device("phone", {"open", "status"}, kNow, kCodeSeconds);
    const auto keep = store->add_device("tablet", {"open"}, kNow, kCodeSeconds);
    expect_store_error([&] { store->remove_device(p.device.id); }, "is not revoked");
    store->revoke_device(p.device.id, kNow + 1);
    store->remove_device(p.device.id);
    RawDb raw(db_path);
    const char* q = "SELECT count(*) FROM device_actions WHERE device_id = ?1";
    EXPECT_EQ(raw.count_for(q, p.device.id), 0);
    EXPECT_EQ(raw.count_for(q, keep.device.id), 1);
    EXPECT_FALSE(store->find_device(p.device.id_hex));
    expect_store_error([&] { store->remove_device(p.device.id); }, "no device with id");
}

TEST_F(StoreTest, ForeignKeysAreDeclaredAndEnforced) {
    RawDb raw(db_path);
    raw.exec("PRAGMA foreign_keys = ON");
    EXPECT_THROW(raw.exec("INSERT INTO device_actions VALUES (zeroblob(16), 'open')"), StoreError);
}

// --- devices ---

TEST_F(StoreTest, AddDeviceCreatesAPendingDeviceWithAFreshCodeStoredOnlyAsAToken) {
    const auto a = store->add_device("phone", {"status", "open", "open"}, kNow, kCodeSeconds);
    const auto b =
        store->add_device("tablet", {}, kNow + 5, 60, {core::crypto::Hash::Sha256, 8, 60, 1});
    EXPECT_EQ(a.code.size(), core::protocol::kPairCodeLen);
    EXPECT_FALSE(core::crypto::ct_equal(a.code.view(), b.code.view()));
    EXPECT_EQ(a.code_expires, kNow + kCodeSeconds);
    EXPECT_EQ(b.code_expires, kNow + 5 + 60);
    EXPECT_NE(a.device.id, b.device.id);
    EXPECT_EQ(a.device.id_hex, core::crypto::hex_encode(a.device.id));
    EXPECT_EQ(a.device.actions, (std::vector<std::string>{"open", "status"}));
    EXPECT_EQ(a.device.created, kNow);
    EXPECT_FALSE(a.device.last_used);
    EXPECT_FALSE(a.device.paired_at);
    EXPECT_EQ(a.device.code_expires, kNow + kCodeSeconds);
    EXPECT_TRUE(a.device.pending());
    EXPECT_EQ(a.device.state(), DeviceState::Pending);
    EXPECT_STREQ(device_state_name(a.device.state()), "pending");
    EXPECT_EQ(b.totp.hash, core::crypto::Hash::Sha256);
    EXPECT_EQ(b.device.totp.digits, 8);

    RawDb raw(db_path);
    sql::Stmt st(raw.db(),
                 "SELECT secret_token, key_id, totp_alg, totp_digits, totp_period, code_token, "
                 "code_key_id, code_expires, paired_at FROM devices WHERE id = ?1");
    st.bind(1, b.device.id);
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.text(0), "");  // no secret until the exchange
    EXPECT_EQ(st.int64(1), 1);
    EXPECT_EQ(st.text(2), "SHA256");
    EXPECT_EQ(st.int64(3), 8);
    EXPECT_EQ(st.int64(4), 60);
    EXPECT_EQ(st.int64(6), 1);
    EXPECT_EQ(st.int64(7), kNow + 65);
    EXPECT_FALSE(st.opt_int64(8));
    // The code is a Fernet token under the ring's key, never the code in clear.
    const std::string token = st.text(5);
    EXPECT_EQ(token.find(core::crypto::hex_encode(b.code.view())), std::string::npos);
    const auto plain = ring.current().decrypt(token, kNow);
    ASSERT_TRUE(plain.ok());
    EXPECT_TRUE(core::crypto::ct_equal(plain.plaintext->view(), b.code.view()));

    // The verifier's record: pending, no secret.
    const auto rec = store->load_device(b.device.id);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->name, "tablet");
    EXPECT_TRUE(rec->pending);
    EXPECT_FALSE(rec->revoked);
    EXPECT_EQ(rec->secret.size(), 0U);
    EXPECT_EQ(rec->totp.hash, core::crypto::Hash::Sha256);
    EXPECT_EQ(rec->totp.digits, 8);
    EXPECT_EQ(rec->totp.step_seconds, 60);
    core::protocol::DeviceId unknown{};
    EXPECT_FALSE(store->load_device(unknown));

    // The exchange's view: the decrypted code and its expiry.
    const auto pending = store->load_pending(b.device.id);
    ASSERT_TRUE(pending);
    EXPECT_EQ(pending->name, "tablet");
    EXPECT_EQ(pending->code_expires, kNow + 65);
    EXPECT_TRUE(core::crypto::ct_equal(pending->code.view(), b.code.view()));
    EXPECT_FALSE(store->load_pending(unknown));
    EXPECT_EQ(mode_of(db_path), 0600U);
}

TEST_F(StoreTest, ACodeLifetimeOutsideOneSecondToADayIsRefused) {
    for (const std::int64_t bad : {std::int64_t{0}, std::int64_t{-5}, std::int64_t{86'401}}) {
        expect_store_error([&] { store->add_device("phone", {}, kNow, bad); },
                           "the pairing code's lifetime must be 1 to 86400 seconds (got " +
                               std::to_string(bad) + ")");
    }
    EXPECT_TRUE(store->list_devices().empty());
    const auto a = store->add_device("phone", {}, kNow, kCodeSeconds);
    expect_store_error([&] { store->new_code(a.device.id, kNow, 0); },
                       "the pairing code's lifetime must be 1 to 86400 seconds (got 0)");
    EXPECT_TRUE(
        core::crypto::ct_equal(store->load_pending(a.device.id)->code.view(), a.code.view()));
}

TEST_F(StoreTest, NewCodeReplacesTheOldOneAtOnce) {
    const auto a = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    const auto b = store->new_code(a.device.id, kNow + 100, kCodeSeconds);
    EXPECT_EQ(b.code.size(), core::protocol::kPairCodeLen);
    EXPECT_FALSE(core::crypto::ct_equal(a.code.view(), b.code.view()));
    EXPECT_EQ(b.code_expires, kNow + 100 + kCodeSeconds);
    EXPECT_EQ(b.device.id, a.device.id);
    EXPECT_EQ(b.device.code_expires, kNow + 100 + kCodeSeconds);
    EXPECT_EQ(b.device.actions, std::vector<std::string>{"open"});
    EXPECT_EQ(b.totp.digits, a.totp.digits);
    // Only the new code is stored anywhere the exchange looks.
    const auto pending = store->load_pending(a.device.id);
    ASSERT_TRUE(pending);
    EXPECT_TRUE(core::crypto::ct_equal(pending->code.view(), b.code.view()));
    EXPECT_EQ(pending->code_expires, kNow + 100 + kCodeSeconds);
    const auto stored = stored_code(a.device.id);
    ASSERT_TRUE(stored);
    EXPECT_TRUE(core::crypto::ct_equal(stored->view(), b.code.view()));
    EXPECT_EQ(store->list_devices().size(), 1U);
}

TEST_F(StoreTest, NewCodeIsRefusedForAnUnknownActiveOrRevokedDevice) {
    core::protocol::DeviceId unknown{};
    unknown.fill(0x42);
    expect_store_error([&] { store->new_code(unknown, kNow, kCodeSeconds); },
                       "no device with id " + core::crypto::hex_encode(unknown));

    const auto a = store->add_device("phone", {}, kNow, kCodeSeconds);
    activate(a.device.id, kNow + 10);
    expect_store_error([&] { store->new_code(a.device.id, kNow + 20, kCodeSeconds); },
                       "device 'phone' (id " + a.device.id_hex +
                           ") is already paired; revoke it and add it again to pair another "
                           "phone");
    EXPECT_FALSE(store->load_pending(a.device.id));

    const auto b = store->add_device("tablet", {}, kNow, kCodeSeconds);
    store->revoke_device(b.device.id, kNow + 30);
    expect_store_error(
        [&] { store->new_code(b.device.id, kNow + 40, kCodeSeconds); },
        "device 'tablet' (id " + b.device.id_hex + ") is revoked; add it again to pair a phone");
    EXPECT_FALSE(store->load_pending(b.device.id));
}

TEST_F(StoreTest, AnActiveDeviceHasItsSecretAndNoCode) {
    const auto a = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    const auto secret = activate(a.device.id, kNow + 10);
    const auto d = store->find_device("phone");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->state(), DeviceState::Active);
    EXPECT_EQ(d->paired_at, kNow + 10);
    EXPECT_FALSE(d->code_expires);
    const auto rec = store->load_device(a.device.id);
    ASSERT_TRUE(rec);
    EXPECT_FALSE(rec->pending);
    EXPECT_TRUE(core::crypto::ct_equal(rec->secret.view(), secret.view()));
    EXPECT_FALSE(store->load_pending(a.device.id));
}

TEST_F(StoreTest, RevokingAPendingDeviceForgetsItsCodeAndFreesTheName) {
    const auto a = store->add_device("phone", {}, kNow, kCodeSeconds);
    store->revoke_device(a.device.id, kNow + 1);
    const auto d = store->find_device(a.device.id_hex);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->state(), DeviceState::Revoked);
    EXPECT_FALSE(d->code_expires);
    EXPECT_FALSE(store->load_pending(a.device.id));
    EXPECT_FALSE(stored_code(a.device.id));
    const auto rec = store->load_device(a.device.id);
    ASSERT_TRUE(rec);
    EXPECT_TRUE(rec->revoked);
    EXPECT_FALSE(rec->pending);
    EXPECT_EQ(rec->secret.size(), 0U);
    EXPECT_NO_THROW(store->add_device("phone", {}, kNow + 2, kCodeSeconds));
}

TEST_F(StoreTest, PendingDevicesAreListedWithTheirStateAndHoldTheirName) {
    const auto a = store->add_device("phone", {}, kNow, kCodeSeconds);
    const auto b = store->add_device("tablet", {}, kNow + 1, kCodeSeconds);
    const auto c = store->add_device("watch", {}, kNow + 2, kCodeSeconds);
    activate(b.device.id, kNow + 3);
    store->revoke_device(c.device.id, kNow + 4);
    const auto all = store->list_devices();
    ASSERT_EQ(all.size(), 3U);
    EXPECT_EQ(all[0].state(), DeviceState::Pending);
    EXPECT_EQ(all[0].code_expires, kNow + kCodeSeconds);
    EXPECT_EQ(all[1].state(), DeviceState::Active);
    EXPECT_EQ(all[2].state(), DeviceState::Revoked);
    EXPECT_EQ(store->list_devices(false).size(), 2U);
    EXPECT_EQ(store->find_device("phone")->id, a.device.id);
    // A pending device holds its name like an active one.
    expect_store_error([&] { store->add_device("phone", {}, kNow + 5, kCodeSeconds); },
                       "a device named 'phone' already exists (id " + a.device.id_hex + ")");
    expect_store_error([&] { store->rename_device(b.device.id, "phone"); },
                       "a device named 'phone' already exists");
}

TEST_F(StoreTest, ExpiredPendingDevicesAreRemovedADayAfterTheirCodeExpiredAndAudited) {
    const auto a = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    const auto renewed = store->add_device("renewed", {}, kNow, kCodeSeconds);
    const auto active = store->add_device("active", {}, kNow, kCodeSeconds);
    const auto revoked = store->add_device("revoked", {}, kNow, kCodeSeconds);
    activate(active.device.id, kNow + 10);
    store->revoke_device(revoked.device.id, kNow + 10);
    store->new_code(renewed.device.id, kNow + 1000, kCodeSeconds);
    const std::int64_t expired = kNow + kCodeSeconds;

    // One second short of a day after expiry: still there (the owner may want a new code).
    EXPECT_TRUE(store->remove_expired_pending(expired + 86'399).empty());
    EXPECT_EQ(store->list_devices().size(), 4U);
    EXPECT_TRUE(store->audit({}).empty());

    EXPECT_EQ(store->remove_expired_pending(expired + 86'400), std::vector<std::string>{"phone"});
    EXPECT_FALSE(store->find_device(a.device.id_hex));
    RawDb raw(db_path);
    EXPECT_EQ(
        raw.count_for("SELECT count(*) FROM device_actions WHERE device_id = ?1", a.device.id), 0);
    const auto rows = store->audit({});
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].device_id_hex, a.device.id_hex);
    EXPECT_EQ(rows[0].time, expired + 86'400);
    EXPECT_EQ(rows[0].transport, "daemon");
    EXPECT_EQ(rows[0].status, "code_expired");
    EXPECT_EQ(rows[0].detail, "pairing code expired unused; device removed");
    EXPECT_TRUE(rows[0].completed);

    // Counted from the newest code; active and revoked devices are never removed.
    EXPECT_TRUE(store->remove_expired_pending(kNow + 1000 + kCodeSeconds + 86'399).empty());
    EXPECT_EQ(store->remove_expired_pending(kNow + 1000 + kCodeSeconds + 86'400),
              std::vector<std::string>{"renewed"});
    EXPECT_TRUE(store->remove_expired_pending(kNow + 10'000'000).empty());
    EXPECT_TRUE(store->find_device("active"));
    EXPECT_TRUE(store->find_device("revoked"));
    // A shorter grace, as a caller may choose.
    const auto b = store->add_device("brief", {}, kNow, kCodeSeconds);
    EXPECT_TRUE(store->remove_expired_pending(expired - 1, 0).empty());
    EXPECT_EQ(store->remove_expired_pending(expired, 0), std::vector<std::string>{"brief"});
    EXPECT_FALSE(store->find_device(b.device.id_hex));
    expect_store_error([&] { store->remove_expired_pending(kNow, -1); },
                       "the grace period of expired pairing codes must not be negative");
}

// --- the Pi's key ---

TEST_F(StoreTest, ThePiKeyIsCreatedOnceKeptEncryptedAndPersists) {
    EXPECT_FALSE(store->setting("pi_key_private"));
    const auto pub = store->pi_public_key();
    const auto priv = store->pi_private_key();
    EXPECT_EQ(pub[0], 0x04);
    EXPECT_EQ(priv.size(), core::crypto::kP256ScalarLen);
    const auto pair = core::crypto::p256_from_private(priv.view());
    ASSERT_TRUE(pair);
    EXPECT_TRUE(
        std::equal(pub.begin(), pub.end(), pair->public_key.begin(), pair->public_key.end()));
    EXPECT_EQ(store->setting("pi_key_public"), core::crypto::hex_encode(pub));
    // The scalar is a Fernet token under the master key, not the scalar in clear.
    const auto token = store->setting("pi_key_private");
    ASSERT_TRUE(token);
    EXPECT_EQ(token->find(core::crypto::hex_encode(priv.view())), std::string::npos);
    const auto plain = ring.current().decrypt(*token, kNow);
    ASSERT_TRUE(plain.ok());
    EXPECT_TRUE(core::crypto::ct_equal(plain.plaintext->view(), priv.view()));

    reopen();
    EXPECT_EQ(store->pi_public_key(), pub);
    EXPECT_TRUE(core::crypto::ct_equal(store->pi_private_key().view(), priv.view()));
    // Another process (its own connection) sees the same key.
    Store other(db_path, ring);
    EXPECT_EQ(other.pi_public_key(), pub);
}

TEST_F(StoreTest, APiPublicKeyThatDoesNotMatchThePrivateOneIsRefused) {
    const auto pub = store->pi_public_key();
    auto other = core::crypto::p256_generate();
    store->set_setting("pi_key_public", core::crypto::hex_encode(other.public_key));
    expect_store_error([&] { (void)store->pi_public_key(); },
                       "the Pi's key pair is damaged (pi_key_public does not match the private "
                       "key)");
    store->set_setting("pi_key_public", core::crypto::hex_encode(pub));
    EXPECT_EQ(store->pi_public_key(), pub);
}

// --- master key rotation ---

TEST_F(StoreTest, RotationReencryptsSecretsCodesAndThePiKey) {
    const auto pending = store->add_device("pending", {}, kNow, kCodeSeconds);
    const auto paired = store->add_device("paired", {}, kNow, kCodeSeconds);
    const auto secret = activate(paired.device.id, kNow + 1);
    const auto pub = store->pi_public_key();
    const auto priv = store->pi_private_key();

    const std::string next_key = core::crypto::Fernet::generate_key_base64();
    KeyRing both = ring;
    both.add(2, *core::crypto::Fernet::from_base64(next_key));
    const KeyRing next_only = testing::ring_with(2, next_key);
    store->reencrypt_all(both);
    store.reset();

    // Only the new key from now on: everything must still decrypt.
    Store s(db_path, next_only);
    const auto code = s.load_pending(pending.device.id);
    ASSERT_TRUE(code);
    EXPECT_TRUE(core::crypto::ct_equal(code->code.view(), pending.code.view()));
    EXPECT_TRUE(
        core::crypto::ct_equal(s.load_device(paired.device.id)->secret.view(), secret.view()));
    EXPECT_EQ(s.pi_public_key(), pub);
    EXPECT_TRUE(core::crypto::ct_equal(s.pi_private_key().view(), priv.view()));
    RawDb raw(db_path);
    EXPECT_EQ(raw.count("SELECT count(*) FROM devices WHERE key_id <> 2"), 0);
    EXPECT_EQ(raw.count("SELECT count(*) FROM devices WHERE code_token <> '' AND code_key_id <> 2"),
              0);
    EXPECT_EQ(s.setting("pi_key_key_id"), "2");
}

TEST_F(StoreTest, ListFindRenameRevoke) {
    const auto a = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    const auto b = store->add_device("tablet", {"open"}, kNow + 1, kCodeSeconds);
    auto all = store->list_devices();
    ASSERT_EQ(all.size(), 2U);
    EXPECT_EQ(all[0].name, "phone");
    EXPECT_EQ(all[1].name, "tablet");

    EXPECT_EQ(store->find_device("phone")->id, a.device.id);
    EXPECT_EQ(store->find_device(a.device.id_hex)->id, a.device.id);
    std::string upper = a.device.id_hex.substr(0, 8);
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](char c) { return static_cast<char>(std::toupper(c)); });
    EXPECT_EQ(store->find_device(upper)->id, a.device.id);
    EXPECT_EQ(store->find_device(b.device.id_hex.substr(0, 6))->id, b.device.id);
    EXPECT_FALSE(store->find_device(a.device.id_hex.substr(0, 5)));
    EXPECT_FALSE(store->find_device("nobody"));

    store->rename_device(a.device.id, "old phone");
    EXPECT_FALSE(store->find_device("phone"));
    EXPECT_EQ(store->find_device("old phone")->id, a.device.id);

    store->revoke_device(b.device.id, kNow + 10);
    const auto revoked = store->find_device("tablet");
    ASSERT_TRUE(revoked);
    EXPECT_TRUE(revoked->revoked());
    EXPECT_EQ(revoked->revoked_at, kNow + 10);
    EXPECT_TRUE(store->load_device(b.device.id)->revoked);
    EXPECT_EQ(store->list_devices(false).size(), 1U);
    EXPECT_EQ(store->list_devices(true).size(), 2U);
    expect_store_error([&] { store->revoke_device(b.device.id, kNow + 11); },
                       "device 'tablet' (id " + b.device.id_hex + ") is already revoked");
}

// --- BLE addresses and bonds (schema 5) ---

TEST_F(StoreTest, AMigratedDeviceHasNoAddressUntilOneIsSet) {
    const auto a = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    EXPECT_EQ(store->find_device("phone")->ble_address, std::nullopt);
    store->set_device_address(a.device.id, "aa:bb:cc:dd:ee:0f");
    reopen();
    const auto d = store->find_device("phone");
    EXPECT_EQ(d->ble_address, "AA:BB:CC:DD:EE:0F");  // upper case, as BlueZ writes it
    EXPECT_EQ(d->ble_bond_removed_at, std::nullopt);
}

TEST_F(StoreTest, AnAddressOfAnotherFormIsRefusedAndChangesNothing) {
    const auto a = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    store->set_device_address(a.device.id, "AA:BB:CC:DD:EE:FF");
    for (const std::string bad : {"", "AA:BB:CC:DD:EE", "AA-BB-CC-DD-EE-FF", "AA:BB:CC:DD:EE:FG",
                                  "AA:BB:CC:DD:EE:FF:", "AAB:BCC:DD:EE:FF:"}) {
        expect_store_error([&] { store->set_device_address(a.device.id, bad); },
                           "is not of the form AA:BB:CC:DD:EE:FF");
    }
    EXPECT_EQ(store->find_device("phone")->ble_address, "AA:BB:CC:DD:EE:FF");
    core::protocol::DeviceId unknown{};
    expect_store_error([&] { store->set_device_address(unknown, "AA:BB:CC:DD:EE:FF"); },
                       "no device with id");
}

TEST_F(StoreTest, BondsToRemoveAreRevokedDevicesWithAnAddressNotRemovedYet) {
    const auto known = store->add_device("known", {"open"}, kNow, kCodeSeconds);
    const auto nameless = store->add_device("no-address", {"open"}, kNow + 1, kCodeSeconds);
    const auto active = store->add_device("active", {"open"}, kNow + 2, kCodeSeconds);
    store->set_device_address(known.device.id, "11:11:11:11:11:11");
    store->set_device_address(active.device.id, "22:22:22:22:22:22");
    EXPECT_TRUE(store->bonds_to_remove().empty());  // nothing revoked yet

    store->revoke_device(known.device.id, kNow + 10);
    store->revoke_device(nameless.device.id, kNow + 11);
    auto todo = store->bonds_to_remove();
    ASSERT_EQ(todo.size(), 1U);
    EXPECT_EQ(todo[0].name, "known");
    EXPECT_EQ(todo[0].ble_address, "11:11:11:11:11:11");

    EXPECT_EQ(store->mark_bond_removed("11:11:11:11:11:11", kNow + 20), 1);
    EXPECT_TRUE(store->bonds_to_remove().empty());
    EXPECT_EQ(store->find_device("known")->ble_bond_removed_at, kNow + 20);
    // Only pending rows change; the active device's address is untouched.
    EXPECT_EQ(store->mark_bond_removed("11:11:11:11:11:11", kNow + 30), 0);
    EXPECT_EQ(store->mark_bond_removed("22:22:22:22:22:22", kNow + 30), 0);
    EXPECT_EQ(store->find_device("known")->ble_bond_removed_at, kNow + 20);
    EXPECT_EQ(store->find_device("active")->ble_bond_removed_at, std::nullopt);
}

// The same phone paired again as a new device: the bond belongs to the new one.
TEST_F(StoreTest, ABondAnActiveDeviceUsesIsNotRemovedForARevokedOne) {
    const auto old_phone = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    store->set_device_address(old_phone.device.id, "33:33:33:33:33:33");
    store->revoke_device(old_phone.device.id, kNow + 10);
    const auto again = store->add_device("phone", {"open"}, kNow + 20, kCodeSeconds);
    ASSERT_EQ(store->bonds_to_remove().size(), 1U);
    store->set_device_address(again.device.id, "33:33:33:33:33:33");
    EXPECT_TRUE(store->bonds_to_remove().empty());
    // Once the new device is revoked as well, both records share one removal.
    store->revoke_device(again.device.id, kNow + 30);
    EXPECT_EQ(store->bonds_to_remove().size(), 2U);
    EXPECT_EQ(store->mark_bond_removed("33:33:33:33:33:33", kNow + 40), 2);
    EXPECT_TRUE(store->bonds_to_remove().empty());
}

// list_devices reads all rows, then each device's actions: each keeps its own.
TEST_F(StoreTest, ListedDevicesCarryTheirOwnActions) {
    const auto a = store->add_device("phone", {"status", "open"}, kNow, kCodeSeconds);
    const auto b = store->add_device("tablet", {"reboot"}, kNow + 1, kCodeSeconds);
    const auto c = store->add_device("watch", {}, kNow + 2, kCodeSeconds);
    store->revoke_device(b.device.id, kNow + 3);
    const auto all = store->list_devices();
    ASSERT_EQ(all.size(), 3U);
    EXPECT_EQ(all[0].id, a.device.id);
    EXPECT_EQ(all[0].actions, (std::vector<std::string>{"open", "status"}));
    EXPECT_EQ(all[1].id, b.device.id);
    EXPECT_EQ(all[1].actions, std::vector<std::string>{"reboot"});
    EXPECT_TRUE(all[1].revoked());
    EXPECT_EQ(all[2].id, c.device.id);
    EXPECT_TRUE(all[2].actions.empty());
    const auto active = store->list_devices(false);
    ASSERT_EQ(active.size(), 2U);
    EXPECT_EQ(active[0].name, "phone");
    EXPECT_EQ(active[1].name, "watch");
}

TEST_F(StoreTest, NamesAreUniqueAmongActiveDevices) {
    const auto a = store->add_device("phone", {}, kNow, kCodeSeconds);
    expect_store_error([&] { store->add_device("phone", {}, kNow, kCodeSeconds); },
                       "a device named 'phone' already exists (id " + a.device.id_hex + ")");
    const auto b = store->add_device("tablet", {}, kNow, kCodeSeconds);
    expect_store_error([&] { store->rename_device(b.device.id, "phone"); },
                       "a device named 'phone' already exists");
    store->rename_device(a.device.id, "phone");  // renaming to its own name is fine
    // Once revoked, the name is free again; find prefers the active device.
    store->revoke_device(a.device.id, kNow);
    const auto c = store->add_device("phone", {}, kNow + 1, kCodeSeconds);
    EXPECT_EQ(store->find_device("phone")->id, c.device.id);
    // Two revoked devices with the same name: the name alone is ambiguous.
    store->revoke_device(c.device.id, kNow + 2);
    expect_store_error([&] { (void)store->find_device("phone"); },
                       "2 revoked devices are named 'phone'; use the device id instead");
}

TEST_F(StoreTest, AmbiguousIdPrefixIsAnError) {
    const auto a = store->add_device("phone", {}, kNow, kCodeSeconds);
    {
        // A second device whose id shares the first 7 bytes with the first.
        RawDb raw(db_path);
        sql::Stmt st(raw.db(),
                     "INSERT INTO devices (id, name, created, secret_token, key_id, totp_alg, "
                     "totp_digits, totp_period) SELECT ?1, 'twin', created, secret_token, key_id, "
                     "totp_alg, totp_digits, totp_period FROM devices WHERE id = ?2");
        core::protocol::DeviceId twin = a.device.id;
        twin[15] ^= 0xFF;
        st.bind(1, twin).bind(2, a.device.id).run();
    }
    expect_store_error([&] { (void)store->find_device(a.device.id_hex.substr(0, 14)); },
                       "matches 2 devices; give more characters");
    EXPECT_EQ(store->find_device(a.device.id_hex)->id, a.device.id);
}

TEST_F(StoreTest, DeviceNamesAreValidated) {
    expect_store_error([&] { store->add_device("", {}, kNow, kCodeSeconds); },
                       "device name must be 1 to 64 characters long (got 0)");
    expect_store_error([&] { store->add_device(std::string(65, 'x'), {}, kNow, kCodeSeconds); },
                       "device name must be 1 to 64 characters long (got 65)");
    expect_store_error([&] { store->add_device("bad\nname", {}, kNow, kCodeSeconds); },
                       "device name 'bad\\x0aname' contains a control character at position 4");
    expect_store_error([&] { store->add_device("tab\there", {}, kNow, kCodeSeconds); },
                       "control character");
    expect_store_error([&] { store->add_device("a\xc2\x85z", {}, kNow, kCodeSeconds); },
                       "control character");
    // U+202E RIGHT-TO-LEFT OVERRIDE could disguise a name in listings.
    expect_store_error([&] { store->add_device("a\xe2\x80\xaez", {}, kNow, kCodeSeconds); },
                       "control character");
    expect_store_error([&] { store->add_device("\xff\xfe", {}, kNow, kCodeSeconds); },
                       "device name is not valid UTF-8");
    expect_store_error([&] { store->add_device(" phone", {}, kNow, kCodeSeconds); },
                       "must not start or end with a space");
    // 64 characters of multi-byte UTF-8 are fine.
    std::string accents;
    for (int i = 0; i < 64; ++i) {
        accents += "\xc3\xa9";
    }
    EXPECT_NO_THROW(store->add_device(accents, {}, kNow, kCodeSeconds));
    EXPECT_NO_THROW(store->add_device("Ana's phone (2)", {}, kNow, kCodeSeconds));
    expect_store_error(
        [&] {
            store->add_device("ok", {}, kNow, kCodeSeconds, {core::crypto::Hash::Sha1, 5, 30, 1});
        },
        "TOTP digits must be 6, 7 or 8 (got 5)");
    expect_store_error(
        [&] {
            store->add_device("ok", {}, kNow, kCodeSeconds, {core::crypto::Hash::Sha1, 6, 0, 1});
        },
        "TOTP period must be 1 to 3600 seconds (got 0)");
    EXPECT_EQ(store->list_devices().size(), 2U);
}

TEST_F(StoreTest, AllowAndDeny) {
    const auto a = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    store->allow_actions(a.device.id, {"status", "reboot", "open"});
    EXPECT_EQ(store->find_device("phone")->actions,
              (std::vector<std::string>{"open", "reboot", "status"}));
    store->deny_actions(a.device.id, {"reboot", "not-granted"});
    EXPECT_EQ(store->find_device("phone")->actions, (std::vector<std::string>{"open", "status"}));
    const auto rec = store->load_device(a.device.id);
    EXPECT_EQ(rec->permitted_actions, (std::set<std::string>{"open", "status"}));

    const std::string pattern = "it must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
    const std::vector<std::string> bad_names = {"",     "-lead", ".hidden",           "has space",
                                                "../x", "a/b",   std::string(65, 'a')};
    for (const auto& bad : bad_names) {
        expect_store_error([&] { store->allow_actions(a.device.id, {"ok", bad}); }, pattern);
    }
    expect_store_error([&] { store->allow_actions(a.device.id, {"x\ty"}); },
                       "invalid action name 'x\\x09y'");
    expect_store_error([&] { store->add_device("tablet", {"bad name"}, kNow, kCodeSeconds); },
                       pattern);
    expect_store_error([&] { store->allow_actions(a.device.id, {}); }, "no action names given");
    // A failed call changed nothing.
    EXPECT_EQ(store->find_device("phone")->actions, (std::vector<std::string>{"open", "status"}));
    EXPECT_FALSE(store->find_device("tablet"));
    EXPECT_NO_THROW(store->allow_actions(a.device.id, {std::string(64, 'a'), "A0._-"}));

    store->revoke_device(a.device.id, kNow);
    expect_store_error([&] { store->allow_actions(a.device.id, {"open"}); }, "is revoked");
    EXPECT_NO_THROW(store->deny_actions(a.device.id, {"open"}));
}

TEST_F(StoreTest, UnknownDeviceIsAClearError) {
    core::protocol::DeviceId id{};
    id.fill(0x42);
    const std::string msg = "no device with id " + core::crypto::hex_encode(id);
    expect_store_error([&] { store->rename_device(id, "x"); }, msg);
    expect_store_error([&] { store->revoke_device(id, kNow); }, msg);
    expect_store_error([&] { store->allow_actions(id, {"open"}); }, msg);
    expect_store_error([&] { store->deny_actions(id, {"open"}); }, msg);
    expect_store_error([&] { (void)store->replay_state(id); }, msg);
}

// The device-state refusals share one way of naming the device; pin the full texts.
TEST_F(StoreTest, DeviceStateErrorsNameTheDeviceInFull) {
    const auto a = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    const std::string named = "device 'phone' (id " + a.device.id_hex + ")";
    expect_store_error([&] { store->remove_device(a.device.id); },
                       named + " is not revoked; revoke it before removing it");
    store->revoke_device(a.device.id, kNow + 1);
    expect_store_error([&] { store->revoke_device(a.device.id, kNow + 2); },
                       named + " is already revoked");
    expect_store_error([&] { store->allow_actions(a.device.id, {"status"}); },
                       named + " is revoked; pair it again instead");
    expect_store_error([&] { store->deny_actions(a.device.id, {}); }, "no action names given");
    expect_store_error([&] { store->deny_actions(a.device.id, {"bad name"}); },
                       "invalid action name 'bad name'");
    EXPECT_EQ(store->find_device(a.device.id_hex)->actions, std::vector<std::string>{"open"});
}

// --- settings and Pi identity ---

TEST_F(StoreTest, PiIdIsCreatedOnceAndPersists) {
    const auto id = store->pi_id();
    EXPECT_EQ(store->pi_id(), id);
    reopen();
    EXPECT_EQ(store->pi_id(), id);
    EXPECT_EQ(store->setting("pi_id"), core::crypto::hex_encode(id));
}

TEST_F(StoreTest, Settings) {
    EXPECT_FALSE(store->setting("name"));
    store->set_setting("name", "garage pi");
    store->set_setting("name", "garage");
    EXPECT_EQ(store->setting("name"), "garage");
    reopen();
    EXPECT_EQ(store->setting("name"), "garage");
    expect_store_error([&] { store->set_setting("", "x"); }, "setting name must not be empty");
}

// --- audit log ---

TEST_F(StoreTest, AuditEventsAndFilters) {
    const auto a = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    const std::string stranger = std::string(32, 'f');
    const auto e1 = store->audit_event("cli", a.device.id_hex, "open", core::protocol::Status::Ok,
                                       "owner ran it", kNow);
    const auto e2 =
        store->audit_event("ble", stranger, "open", core::protocol::Status::UnknownDevice,
                           "no paired device has this id", kNow + 10);
    const auto e3 =
        store->audit_event("ble", a.device.id_hex, "open", core::protocol::Status::BadMac,
                           "request MAC does not verify", kNow + 20);
    const auto e4 = store->audit_event("ble", std::nullopt, "", core::protocol::Status::Malformed,
                                       "frame too short", kNow + 30);

    auto ids = [](const std::vector<AuditEntry>& rows) {
        std::vector<std::int64_t> out;
        out.reserve(rows.size());
        for (const auto& r : rows) {
            out.push_back(r.id);
        }
        return out;
    };
    const auto all = store->audit({});
    EXPECT_EQ(ids(all), (std::vector<std::int64_t>{e4, e3, e2, e1}));  // newest first
    EXPECT_EQ(all[3].device_name, "phone");
    EXPECT_EQ(all[3].transport, "cli");
    EXPECT_EQ(all[3].detail, "owner ran it");
    EXPECT_EQ(all[3].status, "ok");
    EXPECT_TRUE(all[3].completed);
    EXPECT_EQ(all[3].request_id.size(), 32U);
    EXPECT_NE(all[3].request_id, all[2].request_id);
    EXPECT_FALSE(all[2].device_name);
    EXPECT_FALSE(all[0].device_id_hex);

    AuditFilter f;
    f.device = "phone";
    EXPECT_EQ(ids(store->audit(f)), (std::vector<std::int64_t>{e3, e1}));
    f.device = a.device.id_hex.substr(0, 8);
    EXPECT_EQ(ids(store->audit(f)), (std::vector<std::int64_t>{e3, e1}));
    f.device = stranger;
    EXPECT_EQ(ids(store->audit(f)), (std::vector<std::int64_t>{e2}));
    f = {};
    f.accepted = true;
    EXPECT_EQ(ids(store->audit(f)), (std::vector<std::int64_t>{e1}));
    f.accepted = false;
    EXPECT_EQ(ids(store->audit(f)), (std::vector<std::int64_t>{e4, e3, e2}));
    f = {};
    f.status = "bad_mac";
    EXPECT_EQ(ids(store->audit(f)), (std::vector<std::int64_t>{e3}));
    f = {};
    f.since = kNow + 10;
    EXPECT_EQ(ids(store->audit(f)), (std::vector<std::int64_t>{e4, e3, e2}));
    f = {};
    f.limit = 2;
    EXPECT_EQ(ids(store->audit(f)), (std::vector<std::int64_t>{e4, e3}));
    f.offset = 2;
    EXPECT_EQ(ids(store->audit(f)), (std::vector<std::int64_t>{e2, e1}));
    f.offset = 4;
    EXPECT_TRUE(store->audit(f).empty());
    f = {};
    f.limit = 0;  // no limit
    EXPECT_EQ(store->audit(f).size(), 4U);

    f = {};
    f.status = "no_such_status";
    expect_store_error([&] { store->audit(f); }, "unknown status 'no_such_status'");
    f = {};
    f.device = "nobody";
    expect_store_error([&] { store->audit(f); }, "no device is named or has the id 'nobody'");
    f = {};
    f.limit = -1;
    expect_store_error([&] { store->audit(f); }, "audit limit must not be negative");
    f = {};
    f.offset = -1;
    expect_store_error([&] { store->audit(f); }, "audit offset must not be negative");
}

TEST_F(StoreTest, CompleteAuditOnlyOnce) {
    const auto id =
        store->audit_event("cli", std::nullopt, "open", core::protocol::Status::Ok, "", kNow);
    // audit_event rows are complete already.
    expect_store_error(
        [&] { store->complete_audit(id, core::protocol::Status::Ok, 0, 5, kNow); },
        "audit row " + std::to_string(id) + " does not exist or is already complete");
    expect_store_error([&] { store->complete_audit(9999, core::protocol::Status::Ok, 0, 5, kNow); },
                       "audit row 9999 does not exist");
}

}  // namespace
}  // namespace bzs::store
