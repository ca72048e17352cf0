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

#include "phone.h"
#include "store_fixture.h"
#include "test_support.h"

namespace bzs::store {
namespace {

using test::mode_of;
using testing::fresh_ring;
using testing::kNow;
using testing::RawDb;

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
    const auto p = store->add_device("phone", {"open"}, kNow);
    reopen();
    reopen();
    EXPECT_EQ(store->schema_version(), Store::schema_version_current());
    const auto devices = store->list_devices();
    ASSERT_EQ(devices.size(), 1U);
    EXPECT_EQ(devices[0].id, p.device.id);
}

TEST_F(StoreTest, UsesWalJournalAndPrivateFiles) {
    store->add_device("phone", {"open"}, kNow);
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
        s.add_device("phone", {}, kNow);
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

// --- foreign keys ---

TEST_F(StoreTest, RemovingADeviceCascadesToItsActions) {
    const auto p = store->add_device("phone", {"open", "status"}, kNow);
    const auto keep = store->add_device("tablet", {"open"}, kNow);
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

TEST_F(StoreTest, AddDeviceReturnsAFreshSecretAndStoresOnlyAToken) {
    const auto a = store->add_device("phone", {"status", "open", "open"}, kNow);
    const auto b =
        store->add_device("tablet", {}, kNow + 5, {core::crypto::Hash::Sha256, 8, 60, 1});
    EXPECT_EQ(a.secret.size(), 32U);
    EXPECT_FALSE(core::crypto::ct_equal(a.secret.view(), b.secret.view()));
    EXPECT_NE(a.device.id, b.device.id);
    EXPECT_EQ(a.device.id_hex, core::crypto::hex_encode(a.device.id));
    EXPECT_EQ(a.device.actions, (std::vector<std::string>{"open", "status"}));
    EXPECT_EQ(a.device.created, kNow);
    EXPECT_FALSE(a.device.last_used);
    EXPECT_FALSE(a.device.revoked());

    RawDb raw(db_path);
    sql::Stmt st(raw.db(),
                 "SELECT secret_token, key_id, totp_alg, totp_digits, totp_period FROM devices "
                 "WHERE id = ?1");
    st.bind(1, b.device.id);
    ASSERT_TRUE(st.step());
    const std::string token = st.text(0);
    EXPECT_EQ(st.int64(1), 1);
    EXPECT_EQ(st.text(2), "SHA256");
    EXPECT_EQ(st.int64(3), 8);
    EXPECT_EQ(st.int64(4), 60);
    // The token is a Fernet token of the secret under the ring's key.
    const auto plain = ring.current().decrypt(token, kNow);
    ASSERT_TRUE(plain.ok());
    EXPECT_TRUE(core::crypto::ct_equal(plain.plaintext->view(), b.secret.view()));

    const auto rec = store->load_device(b.device.id);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->name, "tablet");
    EXPECT_EQ(rec->totp.hash, core::crypto::Hash::Sha256);
    EXPECT_EQ(rec->totp.digits, 8);
    EXPECT_EQ(rec->totp.step_seconds, 60);
    EXPECT_TRUE(core::crypto::ct_equal(rec->secret.view(), b.secret.view()));
    core::protocol::DeviceId unknown{};
    EXPECT_FALSE(store->load_device(unknown));
}

TEST_F(StoreTest, ListFindRenameRevoke) {
    const auto a = store->add_device("phone", {"open"}, kNow);
    const auto b = store->add_device("tablet", {"open"}, kNow + 1);
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
    const auto a = store->add_device("phone", {"open"}, kNow);
    EXPECT_EQ(store->find_device("phone")->ble_address, std::nullopt);
    store->set_device_address(a.device.id, "aa:bb:cc:dd:ee:0f");
    reopen();
    const auto d = store->find_device("phone");
    EXPECT_EQ(d->ble_address, "AA:BB:CC:DD:EE:0F");  // upper case, as BlueZ writes it
    EXPECT_EQ(d->ble_bond_removed_at, std::nullopt);
}

TEST_F(StoreTest, AnAddressOfAnotherFormIsRefusedAndChangesNothing) {
    const auto a = store->add_device("phone", {"open"}, kNow);
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
    const auto known = store->add_device("known", {"open"}, kNow);
    const auto nameless = store->add_device("no-address", {"open"}, kNow + 1);
    const auto active = store->add_device("active", {"open"}, kNow + 2);
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
    const auto old_phone = store->add_device("phone", {"open"}, kNow);
    store->set_device_address(old_phone.device.id, "33:33:33:33:33:33");
    store->revoke_device(old_phone.device.id, kNow + 10);
    const auto again = store->add_device("phone", {"open"}, kNow + 20);
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
    const auto a = store->add_device("phone", {"status", "open"}, kNow);
    const auto b = store->add_device("tablet", {"reboot"}, kNow + 1);
    const auto c = store->add_device("watch", {}, kNow + 2);
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
    const auto a = store->add_device("phone", {}, kNow);
    expect_store_error([&] { store->add_device("phone", {}, kNow); },
                       "a device named 'phone' already exists (id " + a.device.id_hex + ")");
    const auto b = store->add_device("tablet", {}, kNow);
    expect_store_error([&] { store->rename_device(b.device.id, "phone"); },
                       "a device named 'phone' already exists");
    store->rename_device(a.device.id, "phone");  // renaming to its own name is fine
    // Once revoked, the name is free again; find prefers the active device.
    store->revoke_device(a.device.id, kNow);
    const auto c = store->add_device("phone", {}, kNow + 1);
    EXPECT_EQ(store->find_device("phone")->id, c.device.id);
    // Two revoked devices with the same name: the name alone is ambiguous.
    store->revoke_device(c.device.id, kNow + 2);
    expect_store_error([&] { (void)store->find_device("phone"); },
                       "2 revoked devices are named 'phone'; use the device id instead");
}

TEST_F(StoreTest, AmbiguousIdPrefixIsAnError) {
    const auto a = store->add_device("phone", {}, kNow);
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
    expect_store_error([&] { store->add_device("", {}, kNow); },
                       "device name must be 1 to 64 characters long (got 0)");
    expect_store_error([&] { store->add_device(std::string(65, 'x'), {}, kNow); },
                       "device name must be 1 to 64 characters long (got 65)");
    expect_store_error([&] { store->add_device("bad\nname", {}, kNow); },
                       "device name 'bad\\x0aname' contains a control character at position 4");
    expect_store_error([&] { store->add_device("tab\there", {}, kNow); }, "control character");
    expect_store_error([&] { store->add_device("a\xc2\x85z", {}, kNow); }, "control character");
    // U+202E RIGHT-TO-LEFT OVERRIDE could disguise a name in listings.
    expect_store_error([&] { store->add_device("a\xe2\x80\xaez", {}, kNow); }, "control character");
    expect_store_error([&] { store->add_device("\xff\xfe", {}, kNow); },
                       "device name is not valid UTF-8");
    expect_store_error([&] { store->add_device(" phone", {}, kNow); },
                       "must not start or end with a space");
    // 64 characters of multi-byte UTF-8 are fine.
    std::string accents;
    for (int i = 0; i < 64; ++i) {
        accents += "\xc3\xa9";
    }
    EXPECT_NO_THROW(store->add_device(accents, {}, kNow));
    EXPECT_NO_THROW(store->add_device("Ana's phone (2)", {}, kNow));
    expect_store_error(
        [&] {
            store->add_device("ok", {}, kNow, {core::crypto::Hash::Sha1, 5, 30, 1});
        },
        "TOTP digits must be 6, 7 or 8 (got 5)");
    expect_store_error(
        [&] {
            store->add_device("ok", {}, kNow, {core::crypto::Hash::Sha1, 6, 0, 1});
        },
        "TOTP period must be 1 to 3600 seconds (got 0)");
    EXPECT_EQ(store->list_devices().size(), 2U);
}

TEST_F(StoreTest, AllowAndDeny) {
    const auto a = store->add_device("phone", {"open"}, kNow);
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
    expect_store_error([&] { store->add_device("tablet", {"bad name"}, kNow); }, pattern);
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
    const auto a = store->add_device("phone", {"open"}, kNow);
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
    const auto a = store->add_device("phone", {"open"}, kNow);
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
