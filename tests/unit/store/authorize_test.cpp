// SPDX-License-Identifier: GPL-3.0-or-later
// Tests of Store::authorize (verify + persist in one transaction), of what the
// database files contain (never a device secret in any encoding), and of master
// key rotation with a running Store.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <latch>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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

TEST_F(AuthorizeTest, AcceptsAValidFrameAndPersistsEverything) {
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    Phone ph = Phone::from(p);
    const auto a = send(ph.frame("open", kNow, challenge), kNow);
    ASSERT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    EXPECT_TRUE(a.decision.accepted());
    ASSERT_TRUE(a.device);
    EXPECT_EQ(a.device->name, "phone");
    EXPECT_EQ(a.device->last_used, kNow);
    ASSERT_TRUE(a.request);
    EXPECT_EQ(a.request->counter, 1U);
    EXPECT_EQ(a.request_id.size(), 32U);
    EXPECT_TRUE(core::crypto::hex_decode(a.request_id));
    const auto keys = core::protocol::derive_keys(p.secret.view());
    EXPECT_TRUE(core::crypto::ct_equal(a.response_key.view(), keys.response_mac.view()));

    const auto replay = store->replay_state(p.device.id);
    EXPECT_EQ(replay.last_counter, 1U);
    EXPECT_EQ(store->clock_floor(), kNow);
    EXPECT_EQ(store->find_device("phone")->last_used, kNow);

    const auto row = newest_audit();
    EXPECT_EQ(row.id, a.audit_id);
    EXPECT_EQ(row.status, "ok");
    EXPECT_FALSE(row.completed);
    EXPECT_EQ(row.device_name, "phone");
    EXPECT_EQ(row.device_id_hex, p.device.id_hex);
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
    EXPECT_EQ(store->replay_state(p.device.id).last_counter, 2U);
    EXPECT_EQ(store->clock_floor(), kNow + 1);
}

TEST_F(AuthorizeTest, EachRefusalIsAuditedWithItsReasonAndAdvancesNothing) {
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    Phone ph = Phone::from(p);
    ASSERT_EQ(send(ph.frame("open", kNow, challenge), kNow).decision.status, Status::Ok);
    const auto before = store->replay_state(p.device.id);
    const core::auth::Policy policy;

    const std::int64_t later = kNow + 2 * kStep;  // a fresh TOTP step
    Phone impostor = ph;
    impostor.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));

    struct Case {
        const char* name;
        core::protocol::Bytes frame;
        std::int64_t now;
        Status expected;
    };
    std::vector<Case> cases;
    cases.push_back({"wrong key", impostor.frame("open", later, challenge), later, Status::BadMac});
    {
        auto r = ph.request("open", later, challenge);
        r.timestamp = later - 1000;
        cases.push_back({"old timestamp", ph.encode(r), later, Status::StaleTimestamp});
    }
    {
        auto r = ph.request("open", later, challenge);
        r.counter = 1;  // already accepted
        cases.push_back({"reused counter", ph.encode(r), later, Status::Replayed});
    }
    cases.push_back(
        {"wrong challenge", ph.frame("open", later, challenge_of(9)), later, Status::Replayed});
    {
        auto r = ph.request("open", later, challenge);
        r.totp = (r.totp + 1) % 1'000'000;
        cases.push_back({"wrong code", ph.encode(r), later, Status::BadTotp});
    }
    cases.push_back(
        {"unknown action", ph.frame("launch", later, challenge), later, Status::UnknownAction});
    cases.push_back(
        {"not permitted", ph.frame("reboot", later, challenge), later, Status::NotPermitted});

    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto a = send(c.frame, c.now, policy);
        EXPECT_EQ(a.decision.status, c.expected)
            << core::protocol::status_name(a.decision.status) << ": " << a.decision.detail;
        EXPECT_FALSE(a.decision.detail.empty());
        // A refusal is MACed only once the request's own MAC verified.
        EXPECT_EQ(a.response_key.empty(), c.expected == Status::BadMac);
        ASSERT_TRUE(a.request);
        const auto row = newest_audit();
        EXPECT_EQ(row.id, a.audit_id);
        EXPECT_EQ(row.status, core::protocol::status_name(c.expected));
        EXPECT_EQ(row.detail, a.decision.detail);
        EXPECT_TRUE(row.completed);
        EXPECT_EQ(row.device_name, "phone");
        const auto after = store->replay_state(p.device.id);
        EXPECT_EQ(after.last_counter, before.last_counter);
        EXPECT_EQ(store->find_device("phone")->last_used, kNow);
        EXPECT_EQ(store->clock_floor(), kNow);
    }
    // Every attempt has its row: the accepted one plus one per refusal.
    EXPECT_EQ(audit_count(), static_cast<std::int64_t>(cases.size()) + 1);
}

// A row left "running" by a daemon that stopped mid-action is closed at the next
// start, with its status saying the result is unknown; completed rows stay as they are.
TEST_F(AuthorizeTest, UnfinishedRowsAreClosedAsInternal) {
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    Phone ph = Phone::from(p);
    const auto a = send(ph.frame("open", kNow, challenge), kNow);
    ASSERT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    const auto refused = send(ph.frame("nope", kNow + kStep, challenge), kNow + kStep);
    ASSERT_FALSE(refused.decision.accepted());

    EXPECT_EQ(store->close_unfinished_audit(), 1);
    const auto rows = store->audit({});
    ASSERT_EQ(rows.size(), 2U);
    const auto& closed = rows[1];
    EXPECT_EQ(closed.id, a.audit_id);
    EXPECT_TRUE(closed.completed);
    EXPECT_EQ(closed.status, "internal");
    EXPECT_NE(closed.detail.find("result is unknown"), std::string::npos) << closed.detail;
    EXPECT_EQ(rows[0].status, core::protocol::status_name(refused.decision.status));
    EXPECT_EQ(store->close_unfinished_audit(), 0);
}

TEST_F(AuthorizeTest, RevokedUnknownAndMalformed) {
    const auto p = store->add_device("old", {"open"}, kNow - 100);
    store->revoke_device(p.device.id, kNow - 50);
    Phone revoked = Phone::from(p);
    const auto r = send(revoked.frame("open", kNow, challenge), kNow);
    EXPECT_EQ(r.decision.status, Status::Revoked);
    EXPECT_TRUE(r.response_key.empty());  // refused before its MAC was checked
    EXPECT_EQ(newest_audit().status, "revoked");
    EXPECT_EQ(store->replay_state(p.device.id).last_counter, 0U);

    Phone stranger = Phone::stranger();
    const auto u = send(stranger.frame("open", kNow, challenge), kNow);
    EXPECT_EQ(u.decision.status, Status::UnknownDevice);
    EXPECT_TRUE(u.response_key.empty());  // no key to MAC with
    EXPECT_FALSE(u.device);
    ASSERT_TRUE(u.request);
    auto row = newest_audit();
    EXPECT_EQ(row.status, "unknown_device");
    EXPECT_EQ(row.device_id_hex, core::crypto::hex_encode(stranger.id));
    EXPECT_FALSE(row.device_name);
    EXPECT_EQ(row.action, "open");

    const core::protocol::Bytes junk{1, 1, 2, 3};
    const auto m = send(junk, kNow);
    EXPECT_EQ(m.decision.status, Status::Malformed);
    EXPECT_TRUE(m.response_key.empty());
    EXPECT_FALSE(m.request);
    row = newest_audit();
    EXPECT_EQ(row.status, "malformed");
    EXPECT_EQ(row.detail, m.decision.detail);
    EXPECT_FALSE(row.device_id_hex);
}

// An unsynchronised Pi days behind: the phone's authentic timestamp moves V
// forward, with its own audit row before the command's, and the floor persists.
TEST_F(AuthorizeTest, ClockAdvanceIsAuditedAndRaisesThePersistedFloor) {
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    Phone ph = Phone::from(p);
    const std::int64_t behind = kNow - (3 * 86400 + 4 * 3600);
    const auto frame = ph.frame("open", kNow, challenge);
    AuthorizeRequest req = request_for(frame, behind, challenge);
    req.clock_synchronized = false;
    const auto a = store->authorize(req);
    ASSERT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    ASSERT_TRUE(a.decision.clock_advanced_to);
    EXPECT_EQ(*a.decision.clock_advanced_to, kNow);

    const auto rows = store->audit({});
    ASSERT_EQ(rows.size(), 2U);
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

// The floor never goes down, and refusals before the clock checks leave it.
TEST_F(AuthorizeTest, ClockFloorOnlyRises) {
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    Phone ph = Phone::from(p);
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

// Store::authenticates is the MAC check alone, and writes nothing.
TEST_F(AuthorizeTest, AuthenticatesIsReadOnly) {
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    const auto gone = store->add_device("gone", {"open"}, kNow - 100);
    store->revoke_device(gone.device.id, kNow - 50);
    Phone ph = Phone::from(p);
    Phone impostor = ph;
    impostor.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    RawDb raw(db_path);
    const auto changes_before = raw.count("PRAGMA data_version");
    EXPECT_TRUE(store->authenticates(ph.frame("nosuch", 0, challenge_of(1))));
    EXPECT_FALSE(store->authenticates(impostor.frame("open", kNow, challenge)));
    EXPECT_FALSE(store->authenticates(Phone::from(gone).frame("open", kNow, challenge)));
    EXPECT_FALSE(store->authenticates(Phone::stranger().frame("open", kNow, challenge)));
    EXPECT_FALSE(store->authenticates(core::protocol::Bytes{1, 1, 0}));
    EXPECT_EQ(audit_count(), 0);
    EXPECT_EQ(store->replay_state(p.device.id).last_counter, 0U);
    EXPECT_EQ(raw.count("PRAGMA data_version"), changes_before);
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
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    Phone ph = Phone::from(p);
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
    EXPECT_EQ(store->replay_state(p.device.id).last_counter, 10U);
}

// "If that write fails the action does not run": a real trigger, installed by
// another connection, makes the audit insert fail inside authorize.
TEST_F(AuthorizeTest, FailedWriteYieldsInternalAndAdvancesNothing) {
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    Phone ph = Phone::from(p);
    ASSERT_EQ(send(ph.frame("open", kNow, challenge), kNow).decision.status, Status::Ok);
    const auto replay_before = store->replay_state(p.device.id);
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
    // The phone still gets a MACed answer, echoing its counter.
    EXPECT_FALSE(a.response_key.empty());
    ASSERT_TRUE(a.request);
    EXPECT_EQ(a.request->counter, 2U);

    const auto replay_after = store->replay_state(p.device.id);
    EXPECT_EQ(replay_after.last_counter, replay_before.last_counter);
    EXPECT_EQ(store->find_device("phone")->last_used, kNow);
    EXPECT_EQ(store->clock_floor(), kNow);
    EXPECT_EQ(audit_count(), rows_before);

    // Nothing was consumed: once writes work again the very same frame is accepted.
    raw.exec("DROP TRIGGER fail_audit");
    const auto retry = send(frame, later);
    EXPECT_EQ(retry.decision.status, Status::Ok) << retry.decision.detail;
    EXPECT_EQ(store->replay_state(p.device.id).last_counter, 2U);
}

TEST_F(AuthorizeTest, FailedDeviceUpdateAlsoRollsBack) {
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    Phone ph = Phone::from(p);
    RawDb raw(db_path);
    raw.exec(
        "CREATE TRIGGER fail_update BEFORE UPDATE ON devices "
        "BEGIN SELECT RAISE(ABORT, 'read-only medium'); END;");
    const auto a = send(ph.frame("open", kNow, challenge), kNow);
    EXPECT_EQ(a.decision.status, Status::Internal);
    EXPECT_NE(a.decision.detail.find("read-only medium"), std::string::npos);
    EXPECT_EQ(store->replay_state(p.device.id).last_counter, 0U);
    EXPECT_EQ(store->clock_floor(), 0);
    // The failure itself is recorded in a separate best-effort row.
    const auto row = newest_audit();
    EXPECT_EQ(row.id, a.audit_id);
    EXPECT_EQ(row.status, "internal");
    EXPECT_EQ(row.detail, a.decision.detail);
    EXPECT_EQ(row.device_id_hex, p.device.id_hex);
}

TEST_F(AuthorizeTest, UndecryptableSecretIsInternalNotARefusal) {
    const auto p = store->add_device("phone", {"open"}, kNow - 100);
    Phone ph = Phone::from(p);
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
    EXPECT_TRUE(a.response_key.empty());
    EXPECT_EQ(wrong.replay_state(p.device.id).last_counter, 0U);
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

std::string strip_padding(std::string s) {
    while (!s.empty() && s.back() == '=') {
        s.pop_back();
    }
    return s;
}

TEST_F(AuthorizeTest, DatabaseFilesNeverContainASecret) {
    std::vector<NewPairing> pairings;
    for (const char* name : {"phone-1", "phone-2", "tablet-3"}) {
        pairings.push_back(store->add_device(name, {"open"}, kNow - 100));
    }
    std::int64_t now = kNow;
    for (auto& p : pairings) {
        Phone ph = Phone::from(p);
        EXPECT_EQ(send(ph.frame("open", now, challenge), now).decision.status, Status::Ok);
        EXPECT_EQ(send(ph.frame("reboot", now + kStep, challenge), now + kStep).decision.status,
                  Status::NotPermitted);
        now += 2 * kStep;
    }
    store->rename_device(pairings[0].device.id, "phone-one");
    store->revoke_device(pairings[2].device.id, now);

    // Each secret in every encoding a careless implementation might store.
    std::vector<std::pair<std::string, std::vector<std::uint8_t>>> needles;
    for (const auto& p : pairings) {
        const auto raw = testing::bytes_of(p.secret);
        const std::string hex = core::crypto::hex_encode(raw);
        const std::string b32 = core::crypto::base32_encode(raw);
        const std::string b64 = core::crypto::base64url_encode(raw);
        auto add = [&](const std::string& what, std::string_view text) {
            needles.emplace_back(p.device.name + " " + what,
                                 std::vector<std::uint8_t>(text.begin(), text.end()));
        };
        needles.emplace_back(p.device.name + " raw", raw);
        // The first 16 bytes alone, in case a prefix were stored.
        needles.emplace_back(p.device.name + " raw prefix",
                             std::vector<std::uint8_t>(raw.begin(), raw.begin() + 16));
        add("hex", hex);
        add("HEX", upper(hex));
        add("base32", b32);
        add("base32 unpadded", strip_padding(b32));
        add("base64url", strip_padding(b64));
        const auto keys = core::protocol::derive_keys(raw);
        needles.emplace_back(p.device.name + " request key", testing::bytes_of(keys.request_mac));
        needles.emplace_back(p.device.name + " response key", testing::bytes_of(keys.response_mac));
    }
    // Lower-case base32 too (decoders are case-insensitive).
    for (const auto& p : pairings) {
        std::string b32 = strip_padding(core::crypto::base32_encode(testing::bytes_of(p.secret)));
        std::transform(b32.begin(), b32.end(), b32.begin(),
                       [](char c) { return static_cast<char>(std::tolower(c)); });
        needles.emplace_back(p.device.name + " base32 lower case",
                             std::vector<std::uint8_t>(b32.begin(), b32.end()));
    }

    const std::vector<std::filesystem::path> files = {db_path, db_path.string() + "-wal",
                                                      db_path.string() + "-journal",
                                                      db_path.string() + "-shm"};
    std::string token;
    {
        RawDb raw(db_path);
        sql::Stmt st(raw.db(), "SELECT secret_token FROM devices WHERE name = 'phone-2'");
        ASSERT_TRUE(st.step());
        token = st.text(0);
    }
    auto scan = [&](const char* stage) {
        SCOPED_TRACE(stage);
        std::size_t scanned = 0;
        bool saw_name = false;
        bool saw_token = false;
        for (const auto& f : files) {
            if (!std::filesystem::exists(f)) {
                continue;
            }
            const auto bytes = file_bytes(f);
            scanned += bytes.size();
            // The scan can see content: names and tokens are there in plain text.
            saw_name = saw_name || contains(bytes, std::string_view("phone-one"));
            saw_token = saw_token || contains(bytes, token);
            for (const auto& [what, needle] : needles) {
                EXPECT_FALSE(contains(bytes, needle)) << what << " found in " << f;
            }
        }
        EXPECT_GT(scanned, 0U);
        EXPECT_TRUE(saw_name) << "the scan did not find a device name: is it reading the files?";
        EXPECT_TRUE(saw_token) << "the scan did not find a stored token";
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
    std::vector<NewPairing> pairings;
    for (const char* name : {"a", "b", "c"}) {
        pairings.push_back(store->add_device(name, {"open"}, kNow - 100));
    }
    store->revoke_device(pairings[2].device.id, kNow - 50);
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
        for (const auto& p : pairings) {
            const auto rec = fresh.load_device(p.device.id);
            ASSERT_TRUE(rec);
            EXPECT_TRUE(core::crypto::ct_equal(rec->secret.view(), p.secret.view()));
        }
        Store stale(db_path, old_ring);  // no key file to reload from
        try {
            (void)stale.load_device(pairings[0].device.id);
            ADD_FAILURE() << "the old key ring still decrypts";
        } catch (const StoreError& e) {
            EXPECT_NE(std::string(e.what()).find("is encrypted with master key 2, which is not in "
                                                 "the loaded key ring"),
                      std::string::npos)
                << e.what();
        }
    }

    // The daemon's Store still holds key 1 only; it reloads the key file and works.
    EXPECT_EQ(store->keys().current_id(), 1U);
    Phone ph = Phone::from(pairings[0]);
    const auto a = send(ph.frame("open", kNow, challenge), kNow);
    EXPECT_EQ(a.decision.status, Status::Ok) << a.decision.detail;
    EXPECT_EQ(store->keys().current_id(), 2U);
}

TEST_F(AuthorizeTest, AStoreWithAnOldRingNeverEncryptsUnderARetiredKey) {
    store->add_device("a", {}, kNow);
    // A second Store (the daemon) loaded key 1 before the rotation.
    Store daemon(db_path, key_path);
    {
        Store cli(db_path, key_path);
        rotate_keyfile(key_path, [&](const KeyRing& next) { cli.reencrypt_all(next); });
    }
    const auto p = daemon.add_device("paired after rotation", {"open"}, kNow);
    {
        RawDb raw(db_path);
        EXPECT_EQ(raw.count("SELECT count(*) FROM devices WHERE key_id <> 2"), 0);
    }
    Store fresh(db_path, load_keyfile(key_path));
    const auto rec = fresh.load_device(p.device.id);
    ASSERT_TRUE(rec);
    EXPECT_TRUE(core::crypto::ct_equal(rec->secret.view(), p.secret.view()));

    // Without a key file to reload, it refuses instead of using key 1.
    Store stale(db_path, testing::fresh_ring(1));
    try {
        stale.add_device("x", {}, kNow);
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
