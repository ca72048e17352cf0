// SPDX-License-Identifier: GPL-3.0-or-later
// Tests of Store::authorize on protocol v2 (verify + persist in one transaction),
// of the pairing exchange it completes, of what the database files contain (never
// a device secret, pairing code, derived key or the Pi's private key in any
// encoding), and of master key rotation with a running Store.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <latch>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "pair_device.h"
#include "phone.h"
#include "store/keyfile.h"
#include "store/store.h"
#include "store_fixture.h"
#include "test_support.h"

namespace bzs::store {
namespace {

using core::protocol::Status;
using test::Phone;
using testing::challenge_of;
using testing::kNow;
using testing::RawDb;
using testing::request_for;

constexpr std::int64_t kStep = 30;
constexpr std::int64_t kCodeSeconds = 300;

class AuthorizeTest : public ::testing::Test {
  protected:
    test::TempDir dir;
    std::filesystem::path db_path = dir / "bluezscript.db";
    std::filesystem::path key_path = dir / "master.key";
    std::unique_ptr<Store> store = std::make_unique<Store>(db_path, key_path);
    core::protocol::Nonce challenge = challenge_of(7);

    void reopen() {
        store.reset();
        store = std::make_unique<Store>(db_path, key_path);
    }

    // An active device paired a while before kNow.
    Phone paired(const std::string& name, const std::vector<std::string>& actions,
                 Store* s = nullptr) {
        return test::pair_device(s != nullptr ? *s : *store, name, actions, kNow - 100);
    }

    Authorization send(const core::protocol::Bytes& frame, std::int64_t now,
                       core::auth::Policy policy = {}) {
        AuthorizeRequest req = request_for(frame, now, challenge);
        req.policy = policy;
        return store->authorize(req);
    }

    AuditEntry newest_audit() {
        AuditFilter f;
        f.limit = 1;
        const auto rows = store->audit(f);
        if (rows.empty()) {
            ADD_FAILURE() << "no audit rows";
            return {};
        }
        return rows[0];
    }

    std::int64_t audit_count() {
        AuditFilter f;
        f.limit = 0;
        return static_cast<std::int64_t>(store->audit(f).size());
    }
};

bool same(const core::crypto::SecretBytes& a, const core::crypto::SecretBytes& b) {
    return core::crypto::ct_equal(a.view(), b.view());
}

TEST_F(AuthorizeTest, AcceptsAValidFrameAndPersistsEverything) {
    Phone ph = paired("phone", {"open"});
    const auto audits_before = audit_count();
    const auto frame = ph.frame("open", kNow, challenge);
    const auto a = send(frame, kNow);
    ASSERT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    EXPECT_TRUE(a.decision.accepted());
    EXPECT_TRUE(a.decision.sealed_reply);
    ASSERT_TRUE(a.device);
    EXPECT_EQ(a.device->name, "phone");
    EXPECT_EQ(a.device->last_used, kNow);
    ASSERT_TRUE(a.decision.header);
    EXPECT_EQ(a.decision.header->counter, 1U);
    ASSERT_TRUE(a.decision.command);
    EXPECT_EQ(a.decision.command->action, "open");
    EXPECT_EQ(a.request_id.size(), 32U);
    EXPECT_TRUE(core::crypto::hex_decode(a.request_id));
    EXPECT_TRUE(same(a.response_key, ph.response_key()));

    const auto replay = store->replay_state(ph.id);
    EXPECT_EQ(replay.last_counter, 1U);
    EXPECT_EQ(store->clock_floor(), kNow);
    EXPECT_EQ(store->find_device("phone")->last_used, kNow);

    EXPECT_EQ(audit_count(), audits_before + 1);
    const auto row = newest_audit();
    EXPECT_EQ(row.id, a.audit_id);
    EXPECT_EQ(row.status, "ok");
    EXPECT_FALSE(row.completed);
    EXPECT_EQ(row.device_name, "phone");
    EXPECT_EQ(row.device_id_hex, core::crypto::hex_encode(ph.id));
    EXPECT_EQ(row.action, "open");
    EXPECT_EQ(row.transport, "ble");
    EXPECT_EQ(row.request_id, a.request_id);
    EXPECT_EQ(row.time, kNow);

    store->complete_audit(a.audit_id, Status::ActionFailed, 3, 120, kNow + 1);
    const auto done = newest_audit();
    EXPECT_TRUE(done.completed);
    EXPECT_EQ(done.status, "action_failed");
    EXPECT_EQ(done.exit_code, 3);
    EXPECT_EQ(done.duration_ms, 120);
    EXPECT_THROW(store->complete_audit(a.audit_id, Status::Ok, 0, 1, kNow + 2), StoreError);

    // One second later, the same TOTP step, a higher counter: accepted again.
    const auto b = send(ph.frame("open", kNow + 1, challenge), kNow + 1);
    EXPECT_EQ(b.decision.status, Status::Ok) << b.decision.detail;
    EXPECT_EQ(store->replay_state(ph.id).last_counter, 2U);
    EXPECT_EQ(store->clock_floor(), kNow + 1);
}

TEST_F(AuthorizeTest, EachRefusalIsAuditedWithItsReasonAndAdvancesNothing) {
    Phone ph = paired("phone", {"open"});
    ASSERT_EQ(send(ph.frame("open", kNow, challenge), kNow).decision.status, Status::Ok);
    const auto before = store->replay_state(ph.id);
    const auto audits_before = audit_count();
    const core::auth::Policy policy;

    const std::int64_t later = kNow + 2 * kStep;  // a fresh TOTP step
    Phone impostor = ph;
    impostor.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));

    struct Case {
        const char* name;
        core::protocol::Bytes frame;
        Status expected;
        bool sealed;  // the seal opened: the answer is sealed for the phone
    };
    std::vector<Case> cases;
    cases.push_back({"wrong key", impostor.frame("open", later, challenge), Status::BadMac, false});
    {
        auto b = ph.body("open", later, challenge);
        b.timestamp = later - 1000;
        cases.push_back({"old timestamp",
                         ph.seal(core::protocol::RequestType::Command,
                                 core::protocol::encode_body(b), ++ph.counter),
                         Status::StaleTimestamp, true});
    }
    cases.push_back({"reused counter",
                     ph.seal(core::protocol::RequestType::Command,
                             core::protocol::encode_body(ph.body("open", later, challenge)), 1),
                     Status::Replayed, true});
    cases.push_back(
        {"wrong challenge", ph.frame("open", later, challenge_of(9)), Status::Replayed, true});
    {
        auto b = ph.body("open", later, challenge);
        b.totp = (b.totp + 1) % 1'000'000;
        cases.push_back({"wrong code",
                         ph.seal(core::protocol::RequestType::Command,
                                 core::protocol::encode_body(b), ++ph.counter),
                         Status::BadTotp, true});
    }
    cases.push_back(
        {"unknown action", ph.frame("launch", later, challenge), Status::UnknownAction, true});
    cases.push_back(
        {"not permitted", ph.frame("reboot", later, challenge), Status::NotPermitted, true});
    cases.push_back(
        {"arguments", ph.frame("open", later, challenge, {"x"}), Status::BadArguments, true});
    {
        auto plain = core::protocol::encode_body(ph.body("open", later, challenge));
        plain.push_back(0);
        cases.push_back({"malformed body",
                         ph.seal(core::protocol::RequestType::Command, plain, ++ph.counter),
                         Status::Malformed, true});
    }

    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto a = send(c.frame, later, policy);
        EXPECT_EQ(a.decision.status, c.expected)
            << core::protocol::status_name(a.decision.status) << ": " << a.decision.detail;
        EXPECT_FALSE(a.decision.detail.empty());
        EXPECT_EQ(a.decision.sealed_reply, c.sealed);
        // Only a request whose seal opened earns a sealed answer, under this
        // device's response key.
        if (c.sealed) {
            EXPECT_TRUE(same(a.response_key, ph.response_key()));
        } else {
            EXPECT_TRUE(a.response_key.empty());
        }
        ASSERT_TRUE(a.decision.header);
        const auto row = newest_audit();
        EXPECT_EQ(row.id, a.audit_id);
        EXPECT_EQ(row.status, core::protocol::status_name(c.expected));
        EXPECT_EQ(row.detail, a.decision.detail);
        EXPECT_TRUE(row.completed);
        EXPECT_EQ(row.device_name, "phone");
        const auto after = store->replay_state(ph.id);
        EXPECT_EQ(after.last_counter, before.last_counter);
        EXPECT_EQ(store->find_device("phone")->last_used, kNow);
        EXPECT_EQ(store->clock_floor(), kNow);
    }
    // Every attempt has its row.
    EXPECT_EQ(audit_count(), audits_before + static_cast<std::int64_t>(cases.size()));
}

// A row left "running" by a daemon that stopped mid-action is closed at the next
// start, with its status saying the result is unknown; completed rows stay as they are.
TEST_F(AuthorizeTest, UnfinishedRowsAreClosedAsInternal) {
    Phone ph = paired("phone", {"open"});
    const auto pairing_rows = audit_count();
    const auto a = send(ph.frame("open", kNow, challenge), kNow);
    ASSERT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    const auto refused = send(ph.frame("nope", kNow + kStep, challenge), kNow + kStep);
    ASSERT_FALSE(refused.decision.accepted());

    EXPECT_EQ(store->close_unfinished_audit(), 1);
    const auto rows = store->audit({});
    ASSERT_EQ(rows.size(), static_cast<std::size_t>(pairing_rows) + 2);
    const auto& closed = rows[1];
    EXPECT_EQ(closed.id, a.audit_id);
    EXPECT_TRUE(closed.completed);
    EXPECT_EQ(closed.status, "internal");
    EXPECT_NE(closed.detail.find("result is unknown"), std::string::npos) << closed.detail;
    EXPECT_EQ(rows[0].status, core::protocol::status_name(refused.decision.status));
    EXPECT_EQ(store->close_unfinished_audit(), 0);
}

TEST_F(AuthorizeTest, RevokedUnknownPendingAndMalformedArePlain) {
    Phone revoked = paired("old", {"open"});
    store->revoke_device(revoked.id, kNow - 50);
    const auto r = send(revoked.frame("open", kNow, challenge), kNow);
    EXPECT_EQ(r.decision.status, Status::Revoked);
    EXPECT_FALSE(r.decision.sealed_reply);
    EXPECT_TRUE(r.response_key.empty());  // refused before its seal was opened
    EXPECT_EQ(newest_audit().status, "revoked");
    EXPECT_EQ(store->replay_state(revoked.id).last_counter, 0U);

    Phone stranger = Phone::stranger();
    const auto u = send(stranger.frame("open", kNow, challenge), kNow);
    EXPECT_EQ(u.decision.status, Status::UnknownDevice);
    EXPECT_TRUE(u.response_key.empty());  // no key to seal with
    EXPECT_FALSE(u.device);
    ASSERT_TRUE(u.decision.header);
    EXPECT_FALSE(u.decision.command);  // the action is sealed: nobody read it
    auto row = newest_audit();
    EXPECT_EQ(row.status, "unknown_device");
    EXPECT_EQ(row.device_id_hex, core::crypto::hex_encode(stranger.id));
    EXPECT_FALSE(row.device_name);
    EXPECT_EQ(row.action, "");

    // A pending device never authenticates anything, even with a guessed secret.
    const NewPairing p = store->add_device("new", {"open"}, kNow - 10, kCodeSeconds);
    Phone pending = Phone::stranger();
    pending.id = p.device.id;
    const auto n = send(pending.frame("open", kNow, challenge), kNow);
    EXPECT_EQ(n.decision.status, Status::UnknownDevice);
    EXPECT_NE(n.decision.detail.find("not paired yet"), std::string::npos) << n.decision.detail;
    EXPECT_TRUE(n.response_key.empty());
    row = newest_audit();
    EXPECT_EQ(row.status, "unknown_device");
    EXPECT_EQ(row.device_name, "new");
    EXPECT_TRUE(store->find_device("new")->pending());

    const core::protocol::Bytes junk{2, 1, 2, 3};
    const auto m = send(junk, kNow);
    EXPECT_EQ(m.decision.status, Status::Malformed);
    EXPECT_TRUE(m.response_key.empty());
    EXPECT_FALSE(m.decision.header);
    row = newest_audit();
    EXPECT_EQ(row.status, "malformed");
    EXPECT_EQ(row.detail, m.decision.detail);
    EXPECT_FALSE(row.device_id_hex);

    core::protocol::Bytes v1 = revoked.frame("open", kNow, challenge);
    v1[0] = 1;
    EXPECT_EQ(send(v1, kNow).decision.status, Status::UnknownVersion);
    EXPECT_EQ(newest_audit().status, "unknown_version");
}

// A catalogue request changes only the counter: accepted ones leave no audit row
// (a phone reads it often), refused ones are audited like commands.
TEST_F(AuthorizeTest, AnAcceptedCatalogueIsNotAuditedButAdvancesTheCounter) {
    Phone ph = paired("phone", {"open"});
    const auto rows = audit_count();
    const auto a = send(ph.catalogue(kNow, challenge), kNow);
    ASSERT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    ASSERT_TRUE(a.decision.catalogue);
    EXPECT_FALSE(a.decision.command);
    EXPECT_TRUE(same(a.response_key, ph.response_key()));
    EXPECT_EQ(audit_count(), rows);
    EXPECT_EQ(store->replay_state(ph.id).last_counter, 1U);
    EXPECT_EQ(store->clock_floor(), kNow);

    // The same request again: replayed, and that is audited.
    ph.counter = 0;
    const auto again = send(ph.catalogue(kNow, challenge), kNow);
    EXPECT_EQ(again.decision.status, Status::Replayed);
    EXPECT_EQ(audit_count(), rows + 1);
    EXPECT_EQ(newest_audit().status, "replayed");
}

// An unsynchronised Pi days behind: the phone's authentic timestamp moves V
// forward, with its own audit row before the command's, and the floor persists.
TEST_F(AuthorizeTest, ClockAdvanceIsAuditedAndRaisesThePersistedFloor) {
    Phone ph = paired("phone", {"open"});
    const auto pairing_rows = audit_count();
    const std::int64_t behind = kNow - (3 * 86400 + 4 * 3600);
    const auto frame = ph.frame("open", kNow, challenge);
    AuthorizeRequest req = request_for(frame, behind, challenge);
    req.clock_synchronized = false;
    const auto a = store->authorize(req);
    ASSERT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    ASSERT_TRUE(a.decision.clock_advanced_to);
    EXPECT_EQ(*a.decision.clock_advanced_to, kNow);

    const auto rows = store->audit({});
    ASSERT_EQ(rows.size(), static_cast<std::size_t>(pairing_rows) + 2);
    EXPECT_EQ(rows[0].id, a.audit_id);
    EXPECT_EQ(rows[0].time, kNow);  // the command at the advanced V
    EXPECT_EQ(rows[1].status, "ok");
    EXPECT_EQ(rows[1].action, "");
    EXPECT_EQ(rows[1].time, kNow);
    EXPECT_EQ(rows[1].device_name, "phone");
    EXPECT_EQ(rows[1].detail,
              "clock advanced by 3 d 4 h from the timestamp of device 'phone' (the Pi's clock "
              "is not synchronised)");
    reopen();
    EXPECT_EQ(store->clock_floor(), kNow);
    EXPECT_EQ(store->find_device("phone")->last_used, kNow);
}

// An accepted catalogue request moves an unsynchronised clock too (audited), even
// though the request itself leaves no row.
TEST_F(AuthorizeTest, ACatalogueRequestAdvancesTheClockWithARow) {
    Phone ph = paired("phone", {"open"});
    const auto rows = audit_count();
    const auto frame = ph.catalogue(kNow, challenge);
    AuthorizeRequest req = request_for(frame, kNow - 86400, challenge);
    req.clock_synchronized = false;
    const auto a = store->authorize(req);
    ASSERT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    EXPECT_EQ(a.decision.clock_advanced_to, kNow);
    EXPECT_EQ(audit_count(), rows + 1);
    EXPECT_NE(newest_audit().detail.find("clock advanced by 1 d"), std::string::npos)
        << newest_audit().detail;
    EXPECT_EQ(store->clock_floor(), kNow);
}

// The floor never goes down, and refusals before the clock checks leave it.
TEST_F(AuthorizeTest, ClockFloorOnlyRises) {
    Phone ph = paired("phone", {"open"});
    EXPECT_EQ(store->clock_floor(), 0);
    ASSERT_EQ(send(ph.frame("open", kNow, challenge), kNow).decision.status, Status::Ok);
    // A synchronised clock that was stepped back a little still accepts, but the
    // floor stays at the latest V.
    ASSERT_EQ(send(ph.frame("open", kNow - 10, challenge), kNow - 10).decision.status, Status::Ok);
    EXPECT_EQ(store->clock_floor(), kNow);
    Phone impostor = ph;
    impostor.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    const auto forged = impostor.frame("open", kNow + 1000, challenge);
    AuthorizeRequest req = request_for(forged, kNow, challenge);
    req.clock_synchronized = false;
    EXPECT_EQ(store->authorize(req).decision.status, Status::BadMac);
    EXPECT_EQ(store->clock_floor(), kNow);
}

// Store::authenticates is the seal check alone, and writes nothing.
TEST_F(AuthorizeTest, AuthenticatesIsReadOnly) {
    Phone ph = paired("phone", {"open"});
    Phone gone = paired("gone", {"open"});
    store->revoke_device(gone.id, kNow - 50);
    const NewPairing p = store->add_device("new", {"open"}, kNow - 10, kCodeSeconds);
    Phone pending = Phone::stranger();
    pending.id = p.device.id;
    Phone impostor = ph;
    impostor.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    const auto rows = audit_count();
    RawDb raw(db_path);
    const auto changes_before = raw.count("PRAGMA data_version");
    EXPECT_TRUE(store->authenticates(ph.frame("nosuch", 0, challenge_of(1))));
    EXPECT_TRUE(store->authenticates(ph.catalogue(0, challenge_of(1))));
    EXPECT_FALSE(store->authenticates(impostor.frame("open", kNow, challenge)));
    EXPECT_FALSE(store->authenticates(gone.frame("open", kNow, challenge)));
    EXPECT_FALSE(store->authenticates(pending.frame("open", kNow, challenge)));
    EXPECT_FALSE(store->authenticates(Phone::stranger().frame("open", kNow, challenge)));
    // A phone pairing with its code authenticates (the Pi-wide limit lets it through);
    // a wrong code, or a pair request for an active device, does not.
    EXPECT_TRUE(store->authenticates(test::pair_attempt(*store, p).frame));
    NewPairing wrong = p;
    wrong.code = core::crypto::SecretBytes(core::crypto::random_bytes(16));
    EXPECT_FALSE(store->authenticates(test::pair_attempt(*store, wrong).frame));
    NewPairing active = p;
    active.device.id = ph.id;
    EXPECT_FALSE(store->authenticates(test::pair_attempt(*store, active).frame));
    EXPECT_FALSE(store->authenticates(core::protocol::Bytes{2, 1, 0}));
    EXPECT_EQ(audit_count(), rows);
    EXPECT_EQ(store->replay_state(ph.id).last_counter, 0U);
    EXPECT_TRUE(store->find_device("new")->pending());
    EXPECT_EQ(raw.count("PRAGMA data_version"), changes_before);
}

// A lost master key must not be replaced while secrets encrypted with it exist:
// the new key would turn every command of every phone into `internal`.
TEST_F(AuthorizeTest, LostKeyFileBesideSecretsRefusesToStart) {
    (void)store->pi_public_key();  // the Pi's key: one encrypted secret
    store.reset();
    std::filesystem::remove(key_path);
    try {
        Store again(db_path, key_path);
        ADD_FAILURE() << "a new master key was made beside encrypted secrets";
    } catch (const KeyFileError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find(key_path.string() + " is missing"), std::string::npos) << m;
        EXPECT_NE(m.find("holds 1 secret(s)"), std::string::npos) << m;
        EXPECT_NE(m.find("Restore master.key from your backup"), std::string::npos) << m;
    }
    EXPECT_FALSE(std::filesystem::exists(key_path)) << "no key file may be created";

    // With devices too, and the count says so.
    {
        Store fresh(dir / "other.db", key_path);
        (void)fresh.add_device("phone", {"open"}, kNow, 300);
        (void)fresh.pi_public_key();
    }
    std::filesystem::remove(key_path);
    EXPECT_THROW(Store(dir / "other.db", key_path), KeyFileError);

    // A database that holds nothing encrypted yet gets a key as on first start.
    std::filesystem::remove(key_path);
    Store empty(dir / "empty.db", key_path);
    EXPECT_TRUE(std::filesystem::exists(key_path));
}

TEST_F(AuthorizeTest, StoreOpensItsKeyFilePrivately) {
    EXPECT_EQ(test::mode_of(key_path), 0600U);
    EXPECT_EQ(store->keys().current_id(), 1U);
    store.reset();
    ASSERT_EQ(::chmod(key_path.c_str(), 0640), 0);
    EXPECT_THROW(Store(db_path, key_path), KeyFileError);
}

// Two connections (as the daemon and a CLI `run` would have) race to authorize
// the same frame: the IMMEDIATE transaction lets exactly one accept it.
TEST_F(AuthorizeTest, ConcurrentConnectionsNeverAcceptAFrameTwice) {
    Phone ph = paired("phone", {"open"});
    Store other(db_path, key_path);
    for (int round = 0; round < 10; ++round) {
        const std::int64_t now = kNow + round * kStep;
        const auto frame = ph.frame("open", now, challenge);
        Authorization results[2];
        std::latch start(2);
        auto run = [&](Store& s, Authorization& out) {
            const AuthorizeRequest req = request_for(frame, now, challenge);
            start.arrive_and_wait();
            out = s.authorize(req);
        };
        std::thread t1(run, std::ref(*store), std::ref(results[0]));
        std::thread t2(run, std::ref(other), std::ref(results[1]));
        t1.join();
        t2.join();
        const int accepted =
            (results[0].decision.accepted() ? 1 : 0) + (results[1].decision.accepted() ? 1 : 0);
        EXPECT_EQ(accepted, 1) << "round " << round;
        for (const auto& r : results) {
            if (!r.decision.accepted()) {
                EXPECT_EQ(r.decision.status, Status::Replayed) << r.decision.detail;
            }
        }
    }
    EXPECT_EQ(store->replay_state(ph.id).last_counter, 10U);
}

// "If that write fails the action does not run": a real trigger, installed by
// another connection, makes the audit insert fail inside authorize.
TEST_F(AuthorizeTest, FailedWriteYieldsInternalAndAdvancesNothing) {
    Phone ph = paired("phone", {"open"});
    ASSERT_EQ(send(ph.frame("open", kNow, challenge), kNow).decision.status, Status::Ok);
    const auto replay_before = store->replay_state(ph.id);
    const auto rows_before = audit_count();

    RawDb raw(db_path);
    raw.exec(
        "CREATE TRIGGER fail_audit BEFORE INSERT ON audit "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END;");

    const std::int64_t later = kNow + kStep;
    const auto frame = ph.frame("open", later, challenge);
    const auto a = send(frame, later);
    EXPECT_EQ(a.decision.status, Status::Internal);
    EXPECT_FALSE(a.decision.accepted());
    EXPECT_EQ(a.decision.detail.rfind("could not save state: ", 0), 0U) << a.decision.detail;
    EXPECT_NE(a.decision.detail.find("disk full"), std::string::npos) << a.decision.detail;
    EXPECT_EQ(a.audit_id, 0);
    // The seal opened, so the phone still gets a sealed answer, echoing its counter.
    EXPECT_TRUE(a.decision.sealed_reply);
    EXPECT_TRUE(same(a.response_key, ph.response_key()));
    ASSERT_TRUE(a.decision.header);
    EXPECT_EQ(a.decision.header->counter, 2U);

    const auto replay_after = store->replay_state(ph.id);
    EXPECT_EQ(replay_after.last_counter, replay_before.last_counter);
    EXPECT_EQ(store->find_device("phone")->last_used, kNow);
    EXPECT_EQ(store->clock_floor(), kNow);
    EXPECT_EQ(audit_count(), rows_before);

    // A frame that did not open gets the plain internal refusal.
    Phone impostor = ph;
    impostor.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    const auto forged = send(impostor.frame("open", later, challenge), later);
    EXPECT_EQ(forged.decision.status, Status::Internal);
    EXPECT_FALSE(forged.decision.sealed_reply);
    EXPECT_TRUE(forged.response_key.empty());

    // Nothing was consumed: once writes work again the very same frame is accepted.
    raw.exec("DROP TRIGGER fail_audit");
    const auto retry = send(frame, later);
    EXPECT_EQ(retry.decision.status, Status::Ok) << retry.decision.detail;
    EXPECT_EQ(store->replay_state(ph.id).last_counter, 2U);
}

TEST_F(AuthorizeTest, FailedDeviceUpdateAlsoRollsBack) {
    Phone ph = paired("phone", {"open"});
    RawDb raw(db_path);
    raw.exec(
        "CREATE TRIGGER fail_update BEFORE UPDATE ON devices "
        "BEGIN SELECT RAISE(ABORT, 'read-only medium'); END;");
    const auto a = send(ph.frame("open", kNow, challenge), kNow);
    EXPECT_EQ(a.decision.status, Status::Internal);
    EXPECT_NE(a.decision.detail.find("read-only medium"), std::string::npos);
    EXPECT_TRUE(a.decision.sealed_reply);
    EXPECT_EQ(store->replay_state(ph.id).last_counter, 0U);
    EXPECT_EQ(store->clock_floor(), 0);
    // The failure itself is recorded in a separate best-effort row.
    const auto row = newest_audit();
    EXPECT_EQ(row.id, a.audit_id);
    EXPECT_EQ(row.status, "internal");
    EXPECT_EQ(row.detail, a.decision.detail);
    EXPECT_EQ(row.device_id_hex, core::crypto::hex_encode(ph.id));
}

TEST_F(AuthorizeTest, UndecryptableSecretIsInternalNotARefusal) {
    Phone ph = paired("phone", {"open"});
    store.reset();
    // A Store whose only key is not the one the secret was encrypted with.
    Store wrong(db_path, testing::fresh_ring(5));
    const auto frame = ph.frame("open", kNow, challenge);
    AuthorizeRequest req = request_for(frame, kNow, challenge);
    const auto a = wrong.authorize(req);
    EXPECT_EQ(a.decision.status, Status::Internal);
    EXPECT_NE(a.decision.detail.find("is encrypted with master key 1, which is not in the loaded "
                                     "key ring"),
              std::string::npos)
        << a.decision.detail;
    // No key could be read, so no seal was opened: the answer is plain.
    EXPECT_TRUE(a.response_key.empty());
    EXPECT_FALSE(a.decision.sealed_reply);
    EXPECT_EQ(wrong.replay_state(ph.id).last_counter, 0U);
}

// --- the pairing exchange ---

TEST_F(AuthorizeTest, PairingActivatesTheDeviceAndIsAudited) {
    const NewPairing p = store->add_device("phone", {"open"}, kNow - 10, kCodeSeconds);
    const test::PairAttempt at = test::pair_attempt(*store, p);
    const auto a = test::send_pair(*store, at, kNow, test::pairing_challenge());
    ASSERT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    ASSERT_TRUE(a.decision.pair);
    ASSERT_TRUE(at.expected);
    // The Pi derived what the phone derived, and proves it with the same confirm.
    EXPECT_EQ(a.decision.pair->confirm, at.expected->confirm);
    EXPECT_TRUE(same(a.decision.pair->secret, at.expected->secret));
    EXPECT_TRUE(a.decision.sealed_reply);
    EXPECT_TRUE(same(a.response_key, core::protocol::pair_seal_keys(p.code.view()).response));
    ASSERT_TRUE(a.device);
    EXPECT_EQ(a.device->state(), DeviceState::Active);
    EXPECT_EQ(a.device->paired_at, kNow);
    EXPECT_FALSE(a.device->code_expires);
    EXPECT_FALSE(a.device->last_used);  // pairing is not a command

    const auto row = newest_audit();
    EXPECT_EQ(row.id, a.audit_id);
    EXPECT_EQ(row.status, "ok");
    EXPECT_EQ(row.detail, "paired");
    EXPECT_EQ(row.device_name, "phone");
    EXPECT_EQ(row.device_id_hex, p.device.id_hex);
    EXPECT_TRUE(row.completed);

    // The stored secret is S: the phone's commands authenticate at once.
    const auto rec = store->load_device(p.device.id);
    ASSERT_TRUE(rec);
    EXPECT_FALSE(rec->pending);
    EXPECT_TRUE(same(rec->secret, at.expected->secret));
    EXPECT_FALSE(store->load_pending(p.device.id));
    Phone ph = Phone::paired(p.device.id, at, p.totp);
    EXPECT_EQ(send(ph.frame("open", kNow, challenge), kNow).decision.status, Status::Ok);
}

TEST_F(AuthorizeTest, TheSameCodeAgainIsCodeUsedAndPlain) {
    const NewPairing p = store->add_device("phone", {"open"}, kNow - 10, kCodeSeconds);
    const auto first =
        test::send_pair(*store, test::pair_attempt(*store, p), kNow, test::pairing_challenge());
    ASSERT_EQ(first.decision.status, Status::Ok) << first.decision.detail;
    const auto secret = store->load_device(p.device.id)->secret;

    const auto again =
        test::send_pair(*store, test::pair_attempt(*store, p), kNow + 1, test::pairing_challenge());
    EXPECT_EQ(again.decision.status, Status::CodeUsed);
    EXPECT_FALSE(again.decision.sealed_reply);
    EXPECT_TRUE(again.response_key.empty());
    EXPECT_FALSE(again.decision.pair);
    EXPECT_EQ(newest_audit().status, "code_used");
    EXPECT_EQ(newest_audit().id, again.audit_id);
    // The first pairing stands.
    EXPECT_TRUE(same(store->load_device(p.device.id)->secret, secret));
    EXPECT_EQ(store->find_device("phone")->paired_at, kNow);
}

TEST_F(AuthorizeTest, AnExpiredCodeIsRefusedSealedAndTheDeviceStaysPending) {
    const NewPairing p = store->add_device("phone", {"open"}, kNow - 10, kCodeSeconds);
    const test::PairAttempt at = test::pair_attempt(*store, p);
    const auto a = test::send_pair(*store, at, p.code_expires, test::pairing_challenge());
    EXPECT_EQ(a.decision.status, Status::CodeExpired);
    // It opened with the code: the phone learns why, under the code's key.
    EXPECT_TRUE(a.decision.sealed_reply);
    EXPECT_TRUE(same(a.response_key, core::protocol::pair_seal_keys(p.code.view()).response));
    EXPECT_FALSE(a.decision.pair);
    EXPECT_EQ(newest_audit().status, "code_expired");
    EXPECT_TRUE(store->find_device("phone")->pending());

    // A new code works (the old one does not).
    const NewPairing fresh = store->new_code(p.device.id, kNow + 400, kCodeSeconds);
    const auto old = test::send_pair(*store, test::pair_attempt(*store, p), kNow + 401,
                                     test::pairing_challenge());
    EXPECT_EQ(old.decision.status, Status::BadMac);
    EXPECT_EQ(test::send_pair(*store, test::pair_attempt(*store, fresh), kNow + 401,
                              test::pairing_challenge())
                  .decision.status,
              Status::Ok);
}

// The code's window is judged on the system clock, as `pair add` measured it,
// not on a verification clock that runs ahead.
TEST_F(AuthorizeTest, TheCodesWindowIsJudgedOnTheSystemClock) {
    const NewPairing p = store->add_device("phone", {"open"}, kNow, kCodeSeconds);
    const test::PairAttempt at = test::pair_attempt(*store, p);
    AuthorizeRequest req;
    req.frame = at.frame;
    req.expected_challenge = test::pairing_challenge();
    req.now = kNow + 10 * kCodeSeconds;  // V far ahead
    req.system_now = kNow + kCodeSeconds - 1;
    EXPECT_EQ(store->authorize(req).decision.status, Status::Ok);

    const NewPairing q = store->add_device("tablet", {"open"}, kNow, kCodeSeconds);
    const test::PairAttempt bt = test::pair_attempt(*store, q);
    req.frame = bt.frame;
    req.now = kNow + 1;
    req.system_now = kNow + kCodeSeconds;  // the system clock says: expired
    EXPECT_EQ(store->authorize(req).decision.status, Status::CodeExpired);
}

TEST_F(AuthorizeTest, PairRefusalsBeforeTheSealArePlainAndChangeNothing) {
    const NewPairing p = store->add_device("phone", {"open"}, kNow - 10, kCodeSeconds);
    // A wrong code.
    NewPairing wrong = p;
    wrong.code = core::crypto::SecretBytes(core::crypto::random_bytes(16));
    auto a =
        test::send_pair(*store, test::pair_attempt(*store, wrong), kNow, test::pairing_challenge());
    EXPECT_EQ(a.decision.status, Status::BadMac);
    EXPECT_TRUE(a.response_key.empty());
    EXPECT_EQ(newest_audit().status, "bad_mac");
    EXPECT_EQ(newest_audit().device_name, "phone");
    // A challenge that was not issued: replayed, sealed (it opened).
    a = test::send_pair(*store, test::pair_attempt(*store, p, challenge_of(3)), kNow,
                        test::pairing_challenge());
    EXPECT_EQ(a.decision.status, Status::Replayed);
    EXPECT_TRUE(a.decision.sealed_reply);
    EXPECT_FALSE(a.response_key.empty());
    // An unknown device.
    NewPairing unknown = p;
    core::crypto::random_bytes(unknown.device.id);
    a = test::send_pair(*store, test::pair_attempt(*store, unknown), kNow,
                        test::pairing_challenge());
    EXPECT_EQ(a.decision.status, Status::UnknownDevice);
    EXPECT_TRUE(a.response_key.empty());
    EXPECT_FALSE(a.device);
    EXPECT_TRUE(store->find_device("phone")->pending());

    // Revoked before its code was used.
    const NewPairing r = store->add_device("lost", {"open"}, kNow - 10, kCodeSeconds);
    store->revoke_device(r.device.id, kNow - 5);
    a = test::send_pair(*store, test::pair_attempt(*store, r), kNow, test::pairing_challenge());
    EXPECT_EQ(a.decision.status, Status::Revoked);
    EXPECT_TRUE(a.response_key.empty());
    EXPECT_EQ(newest_audit().status, "revoked");

    // After all that the right code still works.
    EXPECT_EQ(
        test::send_pair(*store, test::pair_attempt(*store, p), kNow, test::pairing_challenge())
            .decision.status,
        Status::Ok);
}

// Two phones race with the same code on two connections: exactly one pairs, the
// other hears code_used, and the stored secret is the winner's.
TEST_F(AuthorizeTest, TwoPairsRacingOnTwoConnectionsPairOnce) {
    Store other(db_path, key_path);
    for (int round = 0; round < 8; ++round) {
        const NewPairing p =
            store->add_device("phone-" + std::to_string(round), {"open"}, kNow, kCodeSeconds);
        const test::PairAttempt attempts[2] = {test::pair_attempt(*store, p),
                                               test::pair_attempt(*store, p)};
        Authorization results[2];
        std::latch start(2);
        auto run = [&](Store& s, int i) {
            start.arrive_and_wait();
            results[i] = test::send_pair(s, attempts[i], kNow, test::pairing_challenge());
        };
        std::thread t1(run, std::ref(*store), 0);
        std::thread t2(run, std::ref(other), 1);
        t1.join();
        t2.join();
        int winner = -1;
        for (int i = 0; i < 2; ++i) {
            if (results[i].decision.accepted()) {
                EXPECT_EQ(winner, -1) << "round " << round << ": paired twice";
                winner = i;
            } else {
                EXPECT_EQ(results[i].decision.status, Status::CodeUsed)
                    << results[i].decision.detail;
            }
        }
        ASSERT_NE(winner, -1) << "round " << round;
        EXPECT_TRUE(
            same(store->load_device(p.device.id)->secret, attempts[winner].expected->secret));
    }
}

TEST_F(AuthorizeTest, AFailedActivationLeavesTheCodeUsable) {
    const NewPairing p = store->add_device("phone", {"open"}, kNow - 10, kCodeSeconds);
    RawDb raw(db_path);
    raw.exec(
        "CREATE TRIGGER fail_update BEFORE UPDATE ON devices "
        "BEGIN SELECT RAISE(ABORT, 'read-only medium'); END;");
    const test::PairAttempt at = test::pair_attempt(*store, p);
    const auto a = test::send_pair(*store, at, kNow, test::pairing_challenge());
    EXPECT_EQ(a.decision.status, Status::Internal);
    EXPECT_NE(a.decision.detail.find("read-only medium"), std::string::npos);
    EXPECT_FALSE(a.decision.pair);  // no confirm may reach the phone
    EXPECT_TRUE(store->find_device("phone")->pending());
    raw.exec("DROP TRIGGER fail_update");
    EXPECT_EQ(test::send_pair(*store, at, kNow, test::pairing_challenge()).decision.status,
              Status::Ok);
}

// --- secrets at rest ---

std::vector<std::uint8_t> file_bytes(const std::filesystem::path& p) {
    const std::string s = test::read_file(p);
    return {s.begin(), s.end()};
}

bool contains(const std::vector<std::uint8_t>& hay, std::span<const std::uint8_t> needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

bool contains(const std::vector<std::uint8_t>& hay, std::string_view needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](char c) { return static_cast<char>(std::toupper(c)); });
    return s;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string strip_padding(std::string s) {
    while (!s.empty() && s.back() == '=') {
        s.pop_back();
    }
    return s;
}

TEST_F(AuthorizeTest, DatabaseFilesNeverContainASecret) {
    // What must never be stored in clear, by name.
    std::vector<std::pair<std::string, core::crypto::SecretBytes>> secrets;
    std::vector<Phone> phones;
    for (const char* name : {"phone-1", "phone-2", "tablet-3"}) {
        const NewPairing p = store->add_device(name, {"open"}, kNow - 100, kCodeSeconds);
        const test::PairAttempt at = test::pair_attempt(*store, p);
        ASSERT_EQ(test::send_pair(*store, at, kNow - 90, test::pairing_challenge()).decision.status,
                  Status::Ok);
        Phone ph = Phone::paired(p.device.id, at, p.totp);
        const auto keys = core::protocol::device_seal_keys(ph.secret.view());
        const auto code_keys = core::protocol::pair_seal_keys(p.code.view());
        secrets.emplace_back(std::string(name) + " S", ph.secret);
        secrets.emplace_back(std::string(name) + " request key", keys.request);
        secrets.emplace_back(std::string(name) + " response key", keys.response);
        secrets.emplace_back(std::string(name) + " code", p.code);
        secrets.emplace_back(std::string(name) + " code request key", code_keys.request);
        secrets.emplace_back(std::string(name) + " code response key", code_keys.response);
        phones.push_back(ph);
    }
    const NewPairing waiting = store->add_device("waiting", {"open"}, kNow, kCodeSeconds);
    secrets.emplace_back("pending code", waiting.code);
    const NewPairing renewed = store->new_code(waiting.device.id, kNow + 1, kCodeSeconds);
    secrets.emplace_back("renewed code", renewed.code);
    secrets.emplace_back("the Pi's private key", store->pi_private_key());

    std::int64_t now = kNow;
    for (auto& ph : phones) {
        EXPECT_EQ(send(ph.frame("open", now, challenge), now).decision.status, Status::Ok);
        EXPECT_EQ(send(ph.frame("reboot", now + kStep, challenge), now + kStep).decision.status,
                  Status::NotPermitted);
        EXPECT_EQ(send(ph.catalogue(now + kStep, challenge), now + kStep).decision.status,
                  Status::Ok);
        now += 2 * kStep;
    }
    store->rename_device(phones[0].id, "phone-one");
    store->revoke_device(phones[2].id, now);

    // Each secret in every encoding a careless implementation might store.
    std::vector<std::pair<std::string, std::vector<std::uint8_t>>> needles;
    for (const auto& entry : secrets) {
        const std::string& name = entry.first;
        const auto raw = testing::bytes_of(entry.second);
        ASSERT_GE(raw.size(), 16U) << name;
        const std::string hex = core::crypto::hex_encode(raw);
        const std::string b32 = core::crypto::base32_encode(raw);
        const std::string b64 = core::crypto::base64url_encode(raw);
        auto add = [&](const std::string& what, std::string_view text) {
            std::string label = name;
            label += " ";
            label += what;
            needles.emplace_back(std::move(label),
                                 std::vector<std::uint8_t>(text.begin(), text.end()));
        };
        needles.emplace_back(name + " raw", raw);
        // The first 16 bytes alone, in case a prefix were stored.
        needles.emplace_back(name + " raw prefix",
                             std::vector<std::uint8_t>(raw.begin(), raw.begin() + 16));
        add("hex", hex);
        add("HEX", upper(hex));
        add("base32", b32);
        add("base32 unpadded", strip_padding(b32));
        add("base32 lower case", lower(strip_padding(b32)));
        add("base64url", strip_padding(b64));
    }

    const std::vector<std::filesystem::path> files = {db_path, db_path.string() + "-wal",
                                                      db_path.string() + "-journal",
                                                      db_path.string() + "-shm"};
    std::string token;
    std::string code_token;
    {
        RawDb raw(db_path);
        token = raw.text("SELECT secret_token FROM devices WHERE name = 'phone-2'");
        code_token = raw.text("SELECT code_token FROM devices WHERE name = 'waiting'");
    }
    ASSERT_FALSE(token.empty());
    ASSERT_FALSE(code_token.empty());
    auto scan = [&](const char* stage) {
        SCOPED_TRACE(stage);
        std::size_t scanned = 0;
        bool saw_name = false;
        bool saw_token = false;
        bool saw_code_token = false;
        for (const auto& f : files) {
            if (!std::filesystem::exists(f)) {
                continue;
            }
            const auto bytes = file_bytes(f);
            scanned += bytes.size();
            // The scan can see content: names and tokens are there in plain text.
            saw_name = saw_name || contains(bytes, std::string_view("phone-one"));
            saw_token = saw_token || contains(bytes, token);
            saw_code_token = saw_code_token || contains(bytes, code_token);
            for (const auto& [what, needle] : needles) {
                EXPECT_FALSE(contains(bytes, needle)) << what << " found in " << f;
            }
        }
        EXPECT_GT(scanned, 0U);
        EXPECT_TRUE(saw_name) << "the scan did not find a device name: is it reading the files?";
        EXPECT_TRUE(saw_token) << "the scan did not find a stored secret token";
        EXPECT_TRUE(saw_code_token) << "the scan did not find a stored code token";
    };
    ASSERT_TRUE(std::filesystem::exists(db_path.string() + "-wal"));
    EXPECT_GT(std::filesystem::file_size(db_path.string() + "-wal"), 0U);
    scan("before checkpoint");
    {
        RawDb raw(db_path);
        raw.exec("PRAGMA wal_checkpoint(FULL)");
    }
    scan("after checkpoint");
    store.reset();  // closing checkpoints and removes the WAL
    scan("after close");
}

// --- key rotation with Stores open ---

TEST_F(AuthorizeTest, RotationReencryptsEverySecretUnderTheNewKeyOnly) {
    std::vector<Phone> phones;
    for (const char* name : {"a", "b", "c"}) {
        phones.push_back(paired(name, {"open"}));
    }
    store->revoke_device(phones[2].id, kNow - 50);
    const KeyRing old_ring = load_keyfile(key_path);
    ASSERT_EQ(old_ring.current_id(), 1U);
    std::vector<std::string> old_tokens;
    {
        RawDb raw(db_path);
        sql::Stmt st(raw.db(), "SELECT secret_token FROM devices");
        while (st.step()) {
            old_tokens.push_back(st.text(0));
        }
    }

    // `bluezscript keys rotate` in another process while the daemon's Store is open.
    std::uint32_t new_id = 0;
    {
        Store cli(db_path, key_path);
        new_id = rotate_keyfile(key_path, [&](const KeyRing& next) { cli.reencrypt_all(next); });
    }
    EXPECT_EQ(new_id, 2U);
    const KeyRing new_ring = load_keyfile(key_path);
    EXPECT_EQ(new_ring.size(), 1U);
    EXPECT_EQ(new_ring.find(1), nullptr);

    {
        RawDb raw(db_path);
        EXPECT_EQ(raw.count("SELECT count(*) FROM devices WHERE key_id <> 2"), 0);
        EXPECT_EQ(raw.count("SELECT count(*) FROM devices"), 3);
        sql::Stmt st(raw.db(), "SELECT secret_token FROM devices");
        while (st.step()) {
            const std::string t = st.text(0);
            EXPECT_TRUE(std::find(old_tokens.begin(), old_tokens.end(), t) == old_tokens.end());
            EXPECT_FALSE(old_ring.current().decrypt(t, kNow).ok()) << "old key still decrypts";
            EXPECT_TRUE(new_ring.current().decrypt(t, kNow).ok());
        }
    }
    // Only the new key decrypts, and the secrets are unchanged.
    {
        Store fresh(db_path, new_ring);
        for (const auto& ph : phones) {
            const auto rec = fresh.load_device(ph.id);
            ASSERT_TRUE(rec);
            EXPECT_TRUE(same(rec->secret, ph.secret));
        }
        Store stale(db_path, old_ring);  // no key file to reload from
        try {
            (void)stale.load_device(phones[0].id);
            ADD_FAILURE() << "the old key ring still decrypts";
        } catch (const StoreError& e) {
            EXPECT_NE(std::string(e.what()).find("is encrypted with master key 2, which is not in "
                                                 "the loaded key ring"),
                      std::string::npos)
                << e.what();
        }
    }

    // The daemon's Store still holds key 1 only; it reloads the key file and works,
    // for commands and for pairing (the Pi's key was re-encrypted too).
    EXPECT_EQ(store->keys().current_id(), 1U);
    const auto a = send(phones[0].frame("open", kNow, challenge), kNow);
    EXPECT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    EXPECT_EQ(store->keys().current_id(), 2U);
    EXPECT_NO_THROW(paired("d", {"open"}));
}

TEST_F(AuthorizeTest, AStoreWithAnOldRingNeverEncryptsUnderARetiredKey) {
    store->add_device("a", {}, kNow, kCodeSeconds);
    // A second Store (the daemon) loaded key 1 before the rotation.
    Store daemon(db_path, key_path);
    (void)daemon.pi_public_key();
    {
        Store cli(db_path, key_path);
        rotate_keyfile(key_path, [&](const KeyRing& next) { cli.reencrypt_all(next); });
    }
    Phone ph = paired("paired after rotation", {"open"}, &daemon);
    {
        RawDb raw(db_path);
        EXPECT_EQ(
            raw.count("SELECT count(*) FROM devices WHERE secret_token <> '' AND key_id <> 2"), 0);
        EXPECT_EQ(raw.count("SELECT count(*) FROM devices WHERE secret_token <> ''"), 1);
        EXPECT_EQ(
            raw.count("SELECT count(*) FROM devices WHERE code_token <> '' AND code_key_id <> 2"),
            0);
    }
    Store fresh(db_path, load_keyfile(key_path));
    const auto rec = fresh.load_device(ph.id);
    ASSERT_TRUE(rec);
    EXPECT_TRUE(same(rec->secret, ph.secret));

    // Without a key file to reload, it refuses instead of using key 1.
    Store stale(db_path, testing::fresh_ring(1));
    try {
        stale.add_device("x", {}, kNow, kCodeSeconds);
        ADD_FAILURE() << "encrypted under a retired key";
    } catch (const StoreError& e) {
        EXPECT_NE(std::string(e.what()).find(
                      "the database uses master key 2 but the newest loaded key is 1"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(fresh.find_device("x"));
}

}  // namespace
}  // namespace bzs::store
