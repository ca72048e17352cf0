// SPDX-License-Identifier: GPL-3.0-or-later
// service::Owner on real pieces: a Store on a SQLite file in a temporary folder, a
// Registry over a folder of shell scripts and, for run-now, a Runner on a real
// EventLoop. Each operation is checked through the store afterwards; the same
// operation from the CLI and from the web must leave the same audit text but for
// who did it.
#include "service/owner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "actions/registry.h"
#include "actions/runner.h"
#include "config/config.h"
#include "core/crypto/fernet.h"
#include "core/protocol/link.h"
#include "core/protocol/pair_exchange.h"
#include "loop/event_loop.h"
#include "service/settings.h"
#include "store/keyfile.h"
#include "store/store.h"
#include "test_support.h"

namespace bzs::service {
namespace {

using ::testing::HasSubstr;
constexpr std::int64_t kNow = 1'700'000'000;

class OwnerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        loop::EventLoop::block_signals({SIGCHLD});
        ASSERT_EQ(::mkdir((dir / "actions").c_str(), 0700), 0);
        test::write_file(dir / "actions" / "hello",
                         "#!/bin/sh\necho \"hello $BLUEZSCRIPT_DEVICE_NAME via "
                         "$BLUEZSCRIPT_TRANSPORT\"\n",
                         0700);
        test::write_file(dir / "actions" / "fail", "#!/bin/sh\nexit 4\n", 0700);
        test::write_file(dir / "actions" / "other", "#!/bin/sh\necho other\n", 0700);
        cfg = config::default_config();
        cfg.daemon.state_dir = dir / "state";
        cfg.daemon.actions_dir = dir / "actions";
        cfg.daemon.pi_name = "test-pi";
        cfg.web.https_address = "";  // the canonical bluezscript:// link
        cfg.pairing.window_seconds = 120;
        registry = actions::Registry::load(cfg.daemon.actions_dir, cfg.actions);
        ASSERT_EQ(registry.list().size(), 3U);

        auto key = core::crypto::Fernet::from_base64(core::crypto::Fernet::generate_key_base64());
        ASSERT_TRUE(key);
        store::KeyRing ring;
        ring.add(1, std::move(*key));
        st = std::make_unique<store::Store>(dir / "state.db", std::move(ring));
        owner = std::make_unique<Owner>(
            *st, cfg,
            OwnerOptions{[this] { return now; },
                         [this](util::LogLevel, const std::string& m) { log.push_back(m); },
                         nullptr});
    }

    store::DeviceInfo device(const std::string& name) {
        auto d = st->find_device(name);
        EXPECT_TRUE(d) << name;
        return d.value_or(store::DeviceInfo{});
    }
    std::vector<store::AuditEntry> audit() { return st->audit(store::AuditFilter{}); }

    test::TempDir dir;
    config::Config cfg;
    actions::Registry registry;
    std::unique_ptr<store::Store> st;
    std::int64_t now = kNow;
    std::vector<std::string> log;
    std::unique_ptr<Owner> owner;
};

// --- pair ---

TEST_F(OwnerTest, PairCreatesAPendingDeviceOpensTheWindowAndForgetsAnEarlierPasskey) {
    write_pending_passkey(*st,
                          {"/org/bluez/hci0/dev_X", "old phone", "123456", "display", kNow - 5});
    const auto r = owner->pair(Origin::Cli, registry, "alice-phone", {"hello"});
    ASSERT_TRUE(r) << r.refused().message;
    EXPECT_EQ(r->device.name, "alice-phone");
    EXPECT_EQ(r->device.actions, std::vector<std::string>{"hello"});
    EXPECT_EQ(r->device.state(), store::DeviceState::Pending);
    EXPECT_EQ(r->window_seconds, 120);
    EXPECT_EQ(r->code_expires, kNow + 120);
    EXPECT_EQ(r->app_uri, "");  // no HTTPS, no app_url: no app link
    EXPECT_EQ(r->qr_link(), r->uri);
    EXPECT_EQ(device("alice-phone").id_hex, r->device.id_hex);
    EXPECT_EQ(read_pairing_window(*st), PairingWindow{kNow + 120});
    EXPECT_EQ(st->setting(kPairingWindowKey), std::to_string(kNow + 120));
    EXPECT_FALSE(read_pending_passkey(*st));  // the CLI resets it too now
    EXPECT_TRUE(audit().empty());             // pairing is not an audit event
    ASSERT_EQ(log.size(), 1U);
    EXPECT_EQ(log[0], "cli: device " + r->device.id_hex +
                          " created by the owner, pending until its phone pairs; code and BLE "
                          "pairing window open for 120 s");
}

TEST_F(OwnerTest, ThePairingLinkCarriesThePiTheDeviceAndTheStoredCode) {
    const auto r = owner->pair(Origin::Cli, registry, "alice phone", {"hello"});
    ASSERT_TRUE(r) << r.refused().message;
    EXPECT_EQ(r->uri.rfind("bluezscript://pair?v=2&", 0), 0U) << r->uri;
    EXPECT_EQ(r->uri.find("actions="), std::string::npos) << "the catalogue gives the buttons";
    const auto parsed = core::protocol::parse_link(r->uri);
    ASSERT_TRUE(parsed.link) << parsed.error;
    const auto& l = *parsed.link;
    EXPECT_EQ(l.pi_id, st->pi_id());
    EXPECT_EQ(l.pi_key, core::protocol::key_fingerprint(st->pi_public_key()));
    EXPECT_EQ(l.pi_name, "test-pi");
    EXPECT_EQ(l.device_id, r->device.id);
    EXPECT_EQ(l.label, "alice phone");
    EXPECT_EQ(l.totp.digits, cfg.totp().digits);
    EXPECT_EQ(l.totp.step_seconds, cfg.totp().step_seconds);
    const auto pending = st->load_pending(r->device.id);
    ASSERT_TRUE(pending);
    EXPECT_TRUE(core::crypto::ct_equal(l.code.view(), pending->code.view()));

    // With an app to open, the app link carries the same pairing after '#'.
    cfg.pairing.app_url = "https://app.example/bzs/";
    const auto a = owner->pair(Origin::Web, registry, "bob", {});
    ASSERT_TRUE(a) << a.refused().message;
    EXPECT_EQ(a->app_uri.rfind("https://app.example/bzs/#v=2&", 0), 0U) << a->app_uri;
    EXPECT_EQ(a->qr_link(), a->app_uri);
    const auto app = core::protocol::parse_link(a->app_uri);
    const auto canonical = core::protocol::parse_link(a->uri);
    ASSERT_TRUE(app.link && canonical.link);
    EXPECT_EQ(app.link->device_id, canonical.link->device_id);
    EXPECT_TRUE(core::crypto::ct_equal(app.link->code.view(), canonical.link->code.view()));
}

TEST_F(OwnerTest, NewCodeReplacesTheCodeOfAPendingDeviceAndReopensTheWindow) {
    const auto r = owner->pair(Origin::Cli, registry, "alice-phone", {});
    ASSERT_TRUE(r);
    now += 500;
    write_pending_passkey(*st, {"/org/bluez/hci0/dev_X", "phone", "123456", "display", now});
    const auto n = owner->new_code(Origin::Web, device("alice-phone"));
    ASSERT_TRUE(n) << n.refused().message;
    EXPECT_EQ(n->device.id, r->device.id);
    EXPECT_EQ(n->code_expires, now + 120);
    EXPECT_EQ(read_pairing_window(*st), PairingWindow{now + 120});
    EXPECT_FALSE(read_pending_passkey(*st));
    const auto old_link = core::protocol::parse_link(r->uri);
    const auto new_link = core::protocol::parse_link(n->uri);
    ASSERT_TRUE(old_link.link && new_link.link);
    EXPECT_FALSE(core::crypto::ct_equal(old_link.link->code.view(), new_link.link->code.view()));
    EXPECT_TRUE(core::crypto::ct_equal(st->load_pending(r->device.id)->code.view(),
                                       new_link.link->code.view()));
    EXPECT_EQ(log.back(),
              "web: new pairing code for device " + r->device.id_hex + "; valid for 120 s");
    EXPECT_EQ(st->list_devices().size(), 1U);
}

TEST_F(OwnerTest, NewCodeIsRefusedForRevokedDevices) {
    const auto r = owner->pair(Origin::Cli, registry, "alice-phone", {});
    ASSERT_TRUE(r);
    ASSERT_TRUE(owner->revoke(Origin::Cli, device("alice-phone")));
    const auto n = owner->new_code(Origin::Cli, device(r->device.id_hex));
    ASSERT_FALSE(n);
    EXPECT_EQ(n.refused().kind, Refusal::AlreadyRevoked);
    EXPECT_EQ(n.refused().message, "device 'alice-phone' is revoked; add it again to pair a phone");
    // An active device (paired_at set) is refused with the owner's way out.
    store::DeviceInfo active = device(r->device.id_hex);
    active.revoked_at.reset();
    active.paired_at = kNow;
    const auto p = owner->new_code(Origin::Cli, active);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.refused().kind, Refusal::AlreadyPaired);
    EXPECT_EQ(p.refused().message,
              "device 'alice-phone' is already paired; revoke it and add it again to pair another "
              "phone");
}

TEST_F(OwnerTest, PairRefusalsCreateNothingAndSayWhy) {
    auto r = owner->pair(Origin::Web, registry, "", {"hello"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().kind, Refusal::EmptyName);
    EXPECT_EQ(r.refused().message, "Choose a name for the device.");

    r = owner->pair(Origin::Web, registry, "x", {"hello", "nope"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().kind, Refusal::UnknownAction);
    EXPECT_EQ(r.refused().message, "There is no action named 'nope'.");

    ASSERT_TRUE(owner->pair(Origin::Web, registry, "erin", {}));
    r = owner->pair(Origin::Web, registry, "erin", {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().kind, Refusal::StoreRefused);
    EXPECT_THAT(r.refused().message, HasSubstr("already exists"));

    EXPECT_EQ(st->list_devices().size(), 1U);
}

// --- revoke ---

TEST_F(OwnerTest, RevokeAuditsTheSameTextWhoeverAsks) {
    const auto a = st->add_device("a", {}, kNow, 300).device;
    const auto b = st->add_device("b", {}, kNow, 300).device;
    now += 10;
    const auto ra = owner->revoke(Origin::Cli, a);
    ASSERT_TRUE(ra) << ra.refused().message;
    EXPECT_TRUE(ra->revoked());
    EXPECT_EQ(ra->revoked_at, kNow + 10);
    ASSERT_TRUE(owner->revoke(Origin::Web, b));
    const auto rows = audit();
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(rows[0].transport, "web");
    EXPECT_EQ(rows[0].detail, "revoked by the owner (web UI)");
    EXPECT_EQ(rows[0].device_id_hex, b.id_hex);
    EXPECT_EQ(rows[1].transport, "cli");
    EXPECT_EQ(rows[1].detail, "revoked by the owner (command line)");
    EXPECT_EQ(rows[1].status, "revoked");
    EXPECT_EQ(rows[1].time, kNow + 10);
    EXPECT_EQ(log.back(), "web: device " + b.id_hex + " revoked by the owner");
}

TEST_F(OwnerTest, RevokingTwiceIsRefusedWithoutAnotherAuditRow) {
    const auto a = st->add_device("a", {}, kNow, 300).device;
    ASSERT_TRUE(owner->revoke(Origin::Cli, a));
    const auto r = owner->revoke(Origin::Cli, device(a.id_hex));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().kind, Refusal::AlreadyRevoked);
    EXPECT_EQ(r.refused().message, "This device is already revoked.");
    EXPECT_EQ(audit().size(), 1U);
}

// --- BLE bonds of revoked devices ---

TEST_F(OwnerTest, RevokingCallsTheRevokeHookAfterTheRevocationIsStored) {
    const auto a = st->add_device("a", {}, kNow, 300).device;
    std::vector<bool> revoked_when_called;
    Owner hooked(
        *st, cfg,
        OwnerOptions{[this] { return now; }, nullptr,
                     [&] { revoked_when_called.push_back(st->find_device("a")->revoked()); }});
    ASSERT_TRUE(hooked.revoke(Origin::Web, a));
    EXPECT_EQ(revoked_when_called, std::vector<bool>{true});
    // A refused revocation changes nothing, so there is nothing to sweep.
    EXPECT_FALSE(hooked.revoke(Origin::Web, device("a")));
    EXPECT_EQ(revoked_when_called.size(), 1U);
}

TEST_F(OwnerTest, BondsToRemoveAreGroupedByAddressAndRemovalIsAuditedPerDevice) {
    const auto a = st->add_device("a", {}, kNow, 300).device;
    const auto b = st->add_device("b", {}, kNow + 1, 300).device;
    const auto c = st->add_device("c", {}, kNow + 2, 300).device;
    st->set_device_address(a.id, "AA:AA:AA:AA:AA:01");
    st->set_device_address(b.id, "AA:AA:AA:AA:AA:01");  // the same phone, paired twice
    st->set_device_address(c.id, "CC:CC:CC:CC:CC:03");
    for (const auto& d : {a, b, c}) {
        ++now;  // revoked one after the other: the order bonds_to_remove keeps
        ASSERT_TRUE(owner->revoke(Origin::Cli, d));
    }
    const auto todo = owner->bonds_to_remove();
    ASSERT_EQ(todo.size(), 2U);
    EXPECT_EQ(todo[0].address, "AA:AA:AA:AA:AA:01");
    ASSERT_EQ(todo[0].devices.size(), 2U);
    EXPECT_EQ(todo[0].devices[0].name, "a");
    EXPECT_EQ(todo[0].devices[1].name, "b");
    EXPECT_EQ(todo[1].address, "CC:CC:CC:CC:CC:03");

    const auto before = audit().size();
    now = kNow + 5;
    owner->bond_removed(todo[0]);
    const auto rows = audit();
    ASSERT_EQ(rows.size(), before + 2);
    EXPECT_EQ(rows[1].detail, "BLE bond of 'a' (AA:AA:AA:AA:AA:01) removed");
    EXPECT_EQ(rows[1].device_id_hex, a.id_hex);
    EXPECT_EQ(rows[0].detail, "BLE bond of 'b' (AA:AA:AA:AA:AA:01) removed");
    EXPECT_EQ((std::pair{rows[0].transport, rows[0].status}),
              (std::pair{std::string("ble"), std::string("revoked")}));
    EXPECT_EQ(rows[0].time, kNow + 5);
    EXPECT_EQ(log.back(), "BLE bond of 'b' (AA:AA:AA:AA:AA:01) removed");
    EXPECT_EQ(device(a.id_hex).ble_bond_removed_at, kNow + 5);
    // Removed bonds are not asked for again; the other one still is.
    const auto left = owner->bonds_to_remove();
    ASSERT_EQ(left.size(), 1U);
    EXPECT_EQ(left[0].address, "CC:CC:CC:CC:CC:03");
}

// --- rename ---

TEST_F(OwnerTest, RenameChangesTheNameOrSaysWhyNot) {
    const auto a = st->add_device("a", {}, kNow, 300).device;
    st->add_device("taken", {}, kNow, 300);
    auto r = owner->rename(Origin::Web, a, "alice");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->name, "alice");
    EXPECT_EQ(device(a.id_hex).name, "alice");
    EXPECT_EQ(log.back(), "web: device " + a.id_hex + " renamed by the owner");

    r = owner->rename(Origin::Cli, a, "");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().kind, Refusal::EmptyName);
    EXPECT_EQ(r.refused().message, "The new name must not be empty.");
    r = owner->rename(Origin::Cli, a, "taken");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().kind, Refusal::StoreRefused);
    EXPECT_EQ(device(a.id_hex).name, "alice");
    EXPECT_TRUE(audit().empty());
}

// --- permissions ---

TEST_F(OwnerTest, SetPermissionsChecksOnlyTheActionsGained) {
    const auto a = st->add_device("a", {"hello", "fail"}, kNow, 300).device;
    // "gone" vanished from the actions folder but may stay permitted.
    const auto empty = actions::Registry{};
    auto r = owner->set_permissions(Origin::Web, empty, a, {"hello"});
    ASSERT_TRUE(r) << r.refused().message;
    EXPECT_EQ(r->actions, std::vector<std::string>{"hello"});

    r = owner->set_permissions(Origin::Web, registry, device("a"), {"hello", "nope"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().kind, Refusal::UnknownAction);
    EXPECT_EQ(r.refused().message, "There is no action named 'nope'.");
    EXPECT_EQ(device("a").actions, std::vector<std::string>{"hello"});

    r = owner->set_permissions(Origin::Web, registry, device("a"), {"other", "fail"});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actions, (std::vector<std::string>{"fail", "other"}));
    EXPECT_EQ(log.back(), "web: permissions of device " + a.id_hex + " changed by the owner");
}

TEST_F(OwnerTest, AllowAndDenyAddToAndTakeFromWhatIsPermitted) {
    const auto a = st->add_device("a", {"hello"}, kNow, 300).device;
    auto r = owner->allow(Origin::Cli, registry, a, {"other", "hello"});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actions, (std::vector<std::string>{"hello", "other"}));
    r = owner->allow(Origin::Cli, registry, *r, {"nosuch"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().message, "There is no action named 'nosuch'.");
    r = owner->deny(Origin::Cli, registry, device("a"), {"hello", "never-allowed"});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->actions, std::vector<std::string>{"other"});
}

// --- run now ---

TEST_F(OwnerTest, CheckRunNamesTheUnknownActionAndRefusedArguments) {
    auto r = Owner::check_run(registry, "nope", {});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().kind, Refusal::UnknownAction);
    EXPECT_EQ(r.refused().message, "There is no action named 'nope'.");
    r = Owner::check_run(registry, "hello", {"extra"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.refused().kind, Refusal::BadArguments);
    EXPECT_THAT(r.refused().message, HasSubstr("arguments refused"));
    r = Owner::check_run(registry, "hello", {});
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)->name, "hello");
}

TEST_F(OwnerTest, RunBlockingRunsAsTheOwnerAndAuditsIt) {
    const auto r = owner->run_blocking(Origin::Cli, registry, "hello", {}, {});
    ASSERT_TRUE(r) << r.refused().message;
    EXPECT_EQ(r->output, "hello owner (cli) via cli\n");
    auto f = owner->run_blocking(Origin::Cli, registry, "fail", {}, {});
    ASSERT_TRUE(f);
    EXPECT_EQ(f->exit_code, 4);
    const auto rows = audit();
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(rows[1].action, "hello");
    EXPECT_EQ(rows[1].transport, "cli");
    EXPECT_EQ(rows[1].status, "ok");
    EXPECT_EQ(rows[1].detail, "run by the owner from the command line: ok, exit 0");
    EXPECT_EQ(rows[0].status, "action_failed");
    EXPECT_EQ(rows[0].detail, "run by the owner from the command line: failed, exit 4");
    EXPECT_FALSE(owner->run_blocking(Origin::Cli, registry, "nope", {}, {}));
    EXPECT_EQ(audit().size(), 2U);
}

TEST_F(OwnerTest, StartRunAuditsWhenTheActionEnds) {
    loop::EventLoop loop;
    actions::Runner runner(loop);
    const auto r = owner->start_run(Origin::Web, runner, registry, "hello", {});
    ASSERT_TRUE(r) << r.refused().message;
    EXPECT_TRUE(audit().empty());  // written once it ended
    now += 3;
    loop.run_until([&] { return runner.active() == 0; });
    const auto rows = audit();
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].transport, "web");
    EXPECT_EQ(rows[0].action, "hello");
    EXPECT_EQ(rows[0].status, "ok");
    EXPECT_EQ(rows[0].time, kNow + 3);
    EXPECT_EQ(rows[0].detail, "run by the owner from the web UI: ok, exit 0");

    const auto bad = owner->start_run(Origin::Web, runner, registry, "nope", {});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.refused().message, "There is no action named 'nope'.");
}

}  // namespace
}  // namespace bzs::service
