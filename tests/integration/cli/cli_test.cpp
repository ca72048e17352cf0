// SPDX-License-Identifier: GPL-3.0-or-later
// The built `bluezscript` binary on a temporary state folder: every subcommand run
// as an owner would, its output and exit status checked, and its effect checked by
// opening the same database and key file with the Store afterwards.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/crypto/crypto.h"
#include "core/protocol/link.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/protocol.h"
#include "state_dir.h"
#include "store/keyfile.h"
#include "store/sqlite.h"
#include "store/store.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using bzs::test::CommandResult;
using bzs::test::lines_of;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kCli = std::string(BZS_BIN_DIR) + "/bluezscript";

std::string describe(const CommandResult& r) {
    return "exit " + std::to_string(r.exit_code) + "\n--- stdout:\n" + r.out + "--- stderr:\n" +
           r.err;
}

/// The value of `key` in the URI's query, or "".
std::string query_param(const std::string& uri, const std::string& key) {
    const auto q = uri.find_first_of("?#");
    if (q == std::string::npos) {
        return {};
    }
    std::istringstream in(uri.substr(q + 1));
    for (std::string kv; std::getline(in, kv, '&');) {
        if (kv.rfind(key + "=", 0) == 0) {
            return kv.substr(key.size() + 1);
        }
    }
    return {};
}

/// Every spelling of a secret that could leak: raw bytes and the usual text encodings.
std::vector<std::string> encodings_of(const bzs::core::crypto::SecretBytes& secret) {
    const auto v = secret.view();
    std::string raw(v.begin(), v.end());
    std::string b32 = bzs::core::crypto::base32_encode(v, false);
    std::string b32_lower = b32;
    std::transform(b32_lower.begin(), b32_lower.end(), b32_lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string hex = bzs::core::crypto::hex_encode(v);
    std::string hex_upper = hex;
    std::transform(hex_upper.begin(), hex_upper.end(), hex_upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    std::string b64 = bzs::core::crypto::base64url_encode(v);
    b64 = b64.substr(0, b64.find('='));
    return {raw, b32, b32_lower, hex, hex_upper, b64};
}

class CliTest : public ::testing::Test, protected bzs::test::StateDir {
  protected:
    void SetUp() override {
        ASSERT_TRUE(fs::exists(kCli)) << kCli << " is not built";
        ASSERT_EQ(::mkdir(actions_dir.c_str(), 0700), 0);
        script("hello", "echo \"hello from $BLUEZSCRIPT_TRANSPORT\"\n");
        bzs::test::write_file(actions_dir / "hello.toml", "description = \"Say hello\"\n", 0600);
        script("other", "echo other\n");
        script("fail", "echo 'about to fail'\nexit 4\n");
        write_config("");
    }

    /// Runs `bluezscript ARGS` with BLUEZSCRIPT_CONFIG naming the test's config.
    CommandResult cli(const std::vector<std::string>& args) const {
        std::vector<std::string> argv{kCli};
        argv.insert(argv.end(), args.begin(), args.end());
        return bzs::test::run_command(argv, {"BLUEZSCRIPT_CONFIG=" + config.string()});
    }

    /// Runs and expects exit 0 and nothing on stderr.
    CommandResult ok(const std::vector<std::string>& args) const {
        auto r = cli(args);
        EXPECT_EQ(r.exit_code, 0) << describe(r);
        EXPECT_EQ(r.err, "") << describe(r);
        return r;
    }

    /// Runs and expects a failure: non-zero exit, a message on stderr, nothing on stdout.
    CommandResult fails(const std::vector<std::string>& args) const {
        auto r = cli(args);
        EXPECT_NE(r.exit_code, 0) << describe(r);
        EXPECT_EQ(r.out, "") << "errors must not go to stdout\n" << describe(r);
        EXPECT_THAT(r.err, HasSubstr("bluezscript")) << describe(r);
        return r;
    }

    json ok_json(const std::vector<std::string>& args) const {
        std::vector<std::string> a{"--json"};
        a.insert(a.end(), args.begin(), args.end());
        const auto r = ok(a);
        EXPECT_TRUE(json::accept(r.out)) << describe(r);
        return json::accept(r.out) ? json::parse(r.out) : json();
    }

    /// `pair add` with --no-qr; returns the pairing URI it printed.
    std::string pair(const std::string& name, const std::string& actions = "hello") {
        const auto r = ok({"pair", "add", name, "--actions", actions, "--no-qr"});
        return uri_in(r.out);
    }

    static std::string uri_in(const std::string& out) {
        for (const auto& l : lines_of(out)) {
            if (l.rfind("bluezscript://pair?", 0) == 0) {
                return l;
            }
        }
        ADD_FAILURE() << "no pairing URI in:\n" << out;
        return {};
    }

    static bzs::core::protocol::PairingLink parse(const std::string& uri) {
        auto p = bzs::core::protocol::parse_link(uri);
        EXPECT_TRUE(p.link) << p.error;
        return p.link ? std::move(*p.link) : bzs::core::protocol::PairingLink{};
    }

    /// Writes what the daemon's pairing exchange leaves (secret stored, code gone),
    /// through SQLite as another process would; returns the secret.
    bzs::core::crypto::SecretBytes activate(const bzs::core::protocol::DeviceId& id) const {
        bzs::core::crypto::SecretBytes secret(bzs::core::crypto::random_bytes(32));
        const auto ring = bzs::store::load_keyfile(key_path);
        bzs::store::sql::Db db(db_path);
        bzs::store::sql::Stmt up(
            db,
            "UPDATE devices SET secret_token = ?1, key_id = ?2, paired_at = ?3, "
            "code_token = '', code_key_id = 0, code_expires = NULL WHERE id = ?4");
        const std::int64_t now = std::time(nullptr);
        up.bind(1, ring.current().encrypt(secret.view(), now))
            .bind(2, ring.current_id())
            .bind(3, now)
            .bind(4, id)
            .run();
        return secret;
    }

    /// Moves a pending device's code expiry (SQLite, as another process would).
    void set_code_expires(const bzs::core::protocol::DeviceId& id, std::int64_t t) const {
        bzs::store::sql::Db db(db_path);
        bzs::store::sql::Stmt up(db, "UPDATE devices SET code_expires = ?1 WHERE id = ?2");
        up.bind(1, t).bind(2, id).run();
    }

    /// The Store on the files the CLI used (as the daemon would open them).
    std::unique_ptr<bzs::store::Store> open_store() const {
        return std::make_unique<bzs::store::Store>(db_path, key_path);
    }

    std::vector<bzs::store::AuditEntry> audit() const {
        bzs::store::AuditFilter f;
        f.limit = 0;
        return open_store()->audit(f);
    }
};

// --- help ----------------------------------------------------------------------------

TEST_F(CliTest, HelpOfEverySubcommandExitsZeroAndNamesItsOptions) {
    const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> cases = {
        {{}, {"--config", "--json", "pair", "actions", "log", "keys"}},
        {{"pair"}, {"add", "code", "list", "revoke", "rename", "allow", "deny"}},
        {{"pair", "add"}, {"name", "--actions", "--no-qr", "--plain-qr"}},
        {{"pair", "code"}, {"device", "--no-qr", "--plain-qr"}},
        {{"pair", "list"}, {"--active"}},
        {{"pair", "revoke"}, {"device"}},
        {{"pair", "rename"}, {"device", "new-name"}},
        {{"pair", "allow"}, {"device", "actions"}},
        {{"pair", "deny"}, {"device", "actions"}},
        {{"actions"}, {"list", "run"}},
        {{"actions", "list"}, {"list"}},
        {{"actions", "run"}, {"name", "args"}},
        {{"log"},
         {"--device", "--accepted", "--refused", "--status", "--since", "--limit", "--page"}},
        {{"keys"}, {"rotate"}},
        {{"keys", "rotate"}, {"rotate"}},
    };
    for (const auto& [path, words] : cases) {
        auto args = path;
        args.emplace_back("--help");
        // Help needs no configuration: run it without one.
        std::vector<std::string> argv{kCli};
        argv.insert(argv.end(), args.begin(), args.end());
        const auto r =
            bzs::test::run_command(argv, {"BLUEZSCRIPT_CONFIG=" + (dir / "none").string()});
        std::string name = "bluezscript";
        for (const auto& p : path) {
            name += " " + p;
        }
        EXPECT_EQ(r.exit_code, 0) << name << "\n" << describe(r);
        for (const auto& w : words) {
            EXPECT_THAT(r.out, HasSubstr(w)) << name << " --help does not mention " << w;
        }
    }
}

// README: "Every subcommand has --help; --json gives machine-readable output": owners
// type the global options after the subcommand too.
TEST_F(CliTest, GlobalOptionsMayFollowTheSubcommand) {
    pair("alice-phone");
    auto r = ok({"pair", "list", "--json"});
    EXPECT_TRUE(json::accept(r.out)) << describe(r);
    r = bzs::test::run_command({kCli, "pair", "list", "--config", config.string()});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_THAT(r.out, HasSubstr("alice-phone"));
}

TEST_F(CliTest, UnknownSubcommandOrOptionIsAUsageError) {
    auto r = cli({"pair", "frobnicate"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr("frobnicate"));
    r = cli({"log", "--bogus"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr("--bogus"));
}

// --- pair add --------------------------------------------------------------------------

TEST_F(CliTest, PairAddPrintsAV2LinkWithTheStoredCodeAndAPlainQrCode) {
    const std::int64_t before = std::time(nullptr);
    const auto r = ok({"pair", "add", "alice-phone", "--actions", "hello", "--plain-qr"});
    const std::int64_t after = std::time(nullptr);
    EXPECT_THAT(r.out, HasSubstr("alice-phone"));
    // A QR code drawn with block characters, before the link.
    EXPECT_THAT(r.out, HasSubstr("\u2588"));
    EXPECT_THAT(r.out, Not(HasSubstr("\x1b[")));  // --plain-qr: no terminal colours
    EXPECT_THAT(r.out, HasSubstr("The code expires at "));
    EXPECT_THAT(r.out, HasSubstr("(in 5 min); it works once."));
    const auto uri = uri_in(r.out);
    EXPECT_THAT(uri, HasSubstr("bluezscript://pair?v=2&"));
    // No secret and no actions hint: the phone gets its buttons from the catalogue.
    EXPECT_EQ(query_param(uri, "secret"), "");
    EXPECT_EQ(query_param(uri, "actions"), "");
    const auto p = parse(uri);
    EXPECT_EQ(p.label, "alice-phone");
    EXPECT_EQ(p.pi_name, "test-pi");
    EXPECT_EQ(p.totp.digits, 6);
    EXPECT_EQ(p.totp.step_seconds, 30);
    EXPECT_EQ(p.code.size(), bzs::core::protocol::kPairCodeLen);

    auto st = open_store();
    const auto d = st->find_device("alice-phone");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->id, p.device_id);
    EXPECT_EQ(d->state(), bzs::store::DeviceState::Pending);
    EXPECT_EQ(d->actions, std::vector<std::string>{"hello"});
    const auto pending = st->load_pending(p.device_id);
    ASSERT_TRUE(pending);
    EXPECT_TRUE(bzs::core::crypto::ct_equal(pending->code.view(), p.code.view()))
        << "the link's code is not the one the store decrypts";
    EXPECT_EQ(p.pi_id, st->pi_id());
    EXPECT_EQ(p.pi_key, bzs::core::protocol::key_fingerprint(st->pi_public_key()));
    // The code and the BLE pairing window last pairing.window_seconds (300 by default).
    EXPECT_GE(pending->code_expires, before + 300);
    EXPECT_LE(pending->code_expires, after + 300);
    const auto window = st->setting("pairing_window_until");
    ASSERT_TRUE(window);
    EXPECT_EQ(std::stoll(*window), pending->code_expires);
    // The state the CLI created is private.
    struct stat sd {};
    ASSERT_EQ(::stat(state_dir.c_str(), &sd), 0);
    EXPECT_EQ(sd.st_mode & 0777, 0700U);
}

// `status` tells added from paired devices, and shows the key fingerprint that
// every pairing link carries as its pk.
TEST_F(CliTest, StatusCountsPendingDevicesAndShowsThePiKey) {
    const auto added = parse(uri_in(ok({"pair", "add", "carol", "--no-qr"}).out));
    const auto human = ok({"status"});
    EXPECT_THAT(human.out, HasSubstr("0 active, 1 waiting for their phone (pending)"));
    const std::string pk = bzs::core::crypto::hex_encode(added.pi_key);
    EXPECT_THAT(human.out, HasSubstr("Pi key:    SHA-256 " + pk));
    const auto j = nlohmann::json::parse(ok({"status", "--json"}).out);
    EXPECT_EQ(j["devices_active"], 0);
    EXPECT_EQ(j["devices_pending"], 1);
    EXPECT_EQ(j["pi_key_fingerprint_sha256"], pk);
}

TEST_F(CliTest, PairAddNoQrPrintsOnlyTheLinks) {
    const auto r = ok({"pair", "add", "bob", "--actions", "hello,other", "--no-qr"});
    EXPECT_THAT(r.out, Not(HasSubstr("\u2588")));
    EXPECT_THAT(r.out, Not(HasSubstr("\u2580")));
    // The web UI is off in this config: no app link.
    EXPECT_THAT(r.out, Not(HasSubstr("App link")));
    const auto p = parse(uri_in(r.out));
    const auto d = open_store()->find_device(bzs::core::crypto::hex_encode(p.device_id));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->actions, (std::vector<std::string>{"hello", "other"}));
}

TEST_F(CliTest, PairAddShowsTheAppLinkWhenThePiServesTheApp) {
    write_config("[pairing]\napp_url = \"https://app.example/bzs/\"\n");
    const auto added = ok_json({"pair", "add", "carol", "--actions", "hello"});
    ASSERT_TRUE(added["app_uri"].is_string()) << added.dump();
    const std::string app = added["app_uri"].get<std::string>();
    EXPECT_EQ(app.rfind("https://app.example/bzs/#v=2&", 0), 0U) << app;
    const auto a = parse(app);
    const auto u = parse(added["uri"].get<std::string>());
    EXPECT_EQ(a.device_id, u.device_id);
    EXPECT_TRUE(bzs::core::crypto::ct_equal(a.code.view(), u.code.view()));
    const auto r = ok({"pair", "code", "carol", "--no-qr"});
    EXPECT_THAT(r.out,
                HasSubstr("App link (open it on the phone):\nhttps://app.example/bzs/#v=2&"));
}

TEST_F(CliTest, JsonOutputsParse) {
    const std::int64_t before = std::time(nullptr);
    const auto added = ok_json({"pair", "add", "carol", "--actions", "hello"});
    EXPECT_EQ(added["device"]["name"], "carol");
    EXPECT_EQ(added["device"]["actions"], json::array({"hello"}));
    EXPECT_EQ(added["device"]["state"], "pending");
    EXPECT_TRUE(added["device"]["paired_at"].is_null());
    ASSERT_TRUE(added["uri"].is_string());
    EXPECT_FALSE(added.contains("app_uri")) << "the web UI is off: no app link";
    ASSERT_TRUE(added["code_expires"].is_number_integer());
    EXPECT_GE(added["code_expires"].get<std::int64_t>(), before + 300);
    EXPECT_EQ(added["device"]["code_expires"], added["code_expires"]);
    const auto p = parse(added["uri"].get<std::string>());
    EXPECT_EQ(bzs::core::crypto::hex_encode(p.device_id), added["device"]["id"].get<std::string>());

    const auto list = ok_json({"pair", "list"});
    ASSERT_TRUE(list.is_array());
    ASSERT_EQ(list.size(), 1U);
    EXPECT_EQ(list[0]["name"], "carol");
    EXPECT_EQ(list[0]["revoked"], false);
    EXPECT_EQ(list[0]["state"], "pending");
    EXPECT_EQ(list[0]["code_expires"], added["code_expires"]);

    const auto acts = ok_json({"actions", "list"});
    ASSERT_TRUE(acts["actions"].is_array());
    EXPECT_EQ(acts["actions"].size(), 3U);
    EXPECT_EQ(acts["actions"][1]["name"], "hello");
    EXPECT_EQ(acts["actions"][1]["description"], "Say hello");

    ok({"actions", "run", "hello"});
    const auto log = ok_json({"log"});
    ASSERT_TRUE(log.is_array());
    ASSERT_EQ(log.size(), 1U);
    EXPECT_EQ(log[0]["action"], "hello");
    EXPECT_EQ(log[0]["transport"], "cli");
    EXPECT_EQ(log[0]["status"], "ok");
}

// --- pair code ------------------------------------------------------------------------

TEST_F(CliTest, PairCodeGivesANewCodeAndTheOldOneStopsWorking) {
    const auto first = parse(pair("alice-phone"));
    const auto again = ok_json({"pair", "code", "alice-phone"});
    const auto second = parse(again["uri"].get<std::string>());
    EXPECT_EQ(second.device_id, first.device_id);
    EXPECT_EQ(second.label, "alice-phone");
    EXPECT_FALSE(bzs::core::crypto::ct_equal(second.code.view(), first.code.view()));
    EXPECT_EQ(again["device"]["state"], "pending");
    EXPECT_TRUE(again["code_expires"].is_number_integer());
    auto st = open_store();
    const auto pending = st->load_pending(first.device_id);
    ASSERT_TRUE(pending);
    EXPECT_TRUE(bzs::core::crypto::ct_equal(pending->code.view(), second.code.view()));
    EXPECT_EQ(pending->code_expires, again["code_expires"].get<std::int64_t>());
    EXPECT_EQ(st->list_devices().size(), 1U) << "a new code makes no new device";
    // By id prefix too, with the human output.
    const auto hex = bzs::core::crypto::hex_encode(first.device_id);
    const auto r = ok({"pair", "code", hex.substr(0, 8), "--no-qr"});
    EXPECT_THAT(r.out, HasSubstr("it works once"));
    EXPECT_EQ(parse(uri_in(r.out)).device_id, first.device_id);
}

TEST_F(CliTest, PairCodeIsRefusedForUnknownPairedAndRevokedDevices) {
    const auto unknown = fails({"pair", "code", "nobody", "--no-qr"});
    EXPECT_EQ(unknown.exit_code, 2);
    EXPECT_THAT(unknown.err, HasSubstr("no device named or with id 'nobody'"));

    const auto paired = parse(pair("alice-phone"));
    activate(paired.device_id);
    const auto active = fails({"pair", "code", "alice-phone", "--no-qr"});
    EXPECT_EQ(active.exit_code, 1);
    EXPECT_THAT(active.err, HasSubstr("device 'alice-phone' is already paired; revoke it and add "
                                      "it again to pair another phone"));

    const auto gone = parse(pair("bob-phone"));
    ok({"pair", "revoke", "bob-phone"});
    const auto revoked = fails({"pair", "code", "bob-phone", "--no-qr"});
    EXPECT_EQ(revoked.exit_code, 1);
    EXPECT_THAT(revoked.err, HasSubstr("device 'bob-phone' is revoked"));
    EXPECT_FALSE(open_store()->load_pending(gone.device_id));
}

TEST_F(CliTest, PairAddForgetsThePasskeyOfAnEarlierBonding) {
    // As the web UI does: a passkey the agent stored for an earlier bonding must not
    // be shown for this one.
    pair("carol");
    open_store()->set_setting("pairing_passkey", R"({"passkey":"123456","time":1})");
    pair("dan");
    EXPECT_EQ(open_store()->setting("pairing_passkey"), "");
}

TEST_F(CliTest, PairAddWithAnUnknownActionCreatesNothing) {
    const auto r = fails({"pair", "add", "dave", "--actions", "hello,nosuch", "--no-qr"});
    EXPECT_THAT(r.err, HasSubstr("'nosuch'"));
    EXPECT_THAT(r.err, Not(HasSubstr("'hello'")));
    const auto list = ok_json({"pair", "list"});
    EXPECT_EQ(list, json::array());
}

TEST_F(CliTest, DuplicateNameIsRefused) {
    pair("erin");
    const auto r = fails({"pair", "add", "erin", "--actions", "hello", "--no-qr"});
    EXPECT_THAT(r.err, HasSubstr("erin"));
    EXPECT_THAT(r.err, HasSubstr("already exists"));
    EXPECT_EQ(open_store()->list_devices().size(), 1U);
}

// --- pair list / rename / allow / deny / revoke ------------------------------------------

TEST_F(CliTest, PairListShowsEachDevicesState) {
    const auto p = parse(pair("alice-phone", "hello,other"));
    const auto hex = bzs::core::crypto::hex_encode(p.device_id);
    auto r = ok({"pair", "list"});
    EXPECT_THAT(r.out, HasSubstr(hex.substr(0, 12)));
    EXPECT_THAT(r.out, HasSubstr("alice-phone"));
    EXPECT_THAT(r.out, HasSubstr("pending (code expires "));
    EXPECT_THAT(r.out, HasSubstr("hello,other"));

    set_code_expires(p.device_id, std::time(nullptr) - 1);
    EXPECT_THAT(ok({"pair", "list"}).out, HasSubstr("pending (code expired)"));

    activate(p.device_id);
    r = ok({"pair", "list"});
    EXPECT_THAT(r.out, HasSubstr("active"));
    EXPECT_THAT(r.out, Not(HasSubstr("pending")));
    const auto j = ok_json({"pair", "list"});
    EXPECT_EQ(j[0]["state"], "active");
    EXPECT_TRUE(j[0]["code_expires"].is_null());
    EXPECT_TRUE(j[0]["paired_at"].is_number_integer());
}

TEST_F(CliTest, PairListWithoutDevicesSaysSo) {
    const auto r = ok({"pair", "list"});
    EXPECT_THAT(r.out, HasSubstr("No paired devices"));
}

TEST_F(CliTest, RenameAllowDenyChangeTheStore) {
    const auto p = parse(pair("alice-phone", "hello"));
    const auto hex = bzs::core::crypto::hex_encode(p.device_id);

    ok({"pair", "rename", "alice-phone", "alice-tablet"});
    auto d = open_store()->find_device(hex);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->name, "alice-tablet");

    // By id prefix, as pair list shows it.
    const auto allowed = ok({"pair", "allow", hex.substr(0, 12), "other", "fail"});
    EXPECT_THAT(allowed.out, HasSubstr("fail, hello, other"));
    d = open_store()->find_device(hex);
    EXPECT_EQ(d->actions, (std::vector<std::string>{"fail", "hello", "other"}));

    ok({"pair", "deny", "alice-tablet", "hello", "fail"});
    d = open_store()->find_device(hex);
    EXPECT_EQ(d->actions, (std::vector<std::string>{"other"}));

    // Allowing an action that does not exist changes nothing.
    const auto r = fails({"pair", "allow", "alice-tablet", "nosuch"});
    EXPECT_THAT(r.err, HasSubstr("'nosuch'"));
    EXPECT_EQ(open_store()->find_device(hex)->actions, (std::vector<std::string>{"other"}));

    // An unknown device is named in the error.
    const auto u = fails({"pair", "rename", "nobody", "x"});
    EXPECT_THAT(u.err, HasSubstr("'nobody'"));
}

TEST_F(CliTest, RevokeShowsInListAndIsAudited) {
    const auto p = parse(pair("alice-phone", "hello"));
    const auto hex = bzs::core::crypto::hex_encode(p.device_id);
    const auto r = ok({"pair", "revoke", "alice-phone"});
    EXPECT_THAT(r.out, HasSubstr("Revoked"));

    const auto list = ok({"pair", "list"});
    EXPECT_THAT(list.out, HasSubstr("revoked"));
    EXPECT_THAT(ok({"pair", "list", "--active"}).out, HasSubstr("No paired devices"));
    EXPECT_TRUE(open_store()->find_device(hex)->revoked());

    const auto rows = audit();
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].status, "revoked");
    EXPECT_EQ(rows[0].transport, "cli");
    EXPECT_EQ(rows[0].device_id_hex, hex);

    const auto log = ok({"log"});
    EXPECT_THAT(log.out, HasSubstr("revoked by the owner"));

    // Revoking twice is an error, not a silent success.
    const auto again = fails({"pair", "revoke", hex});
    EXPECT_THAT(again.err, HasSubstr("already revoked"));
}

// --- actions --------------------------------------------------------------------------

TEST_F(CliTest, ActionsListShowsActionsAndRefusesAGroupWritableScript) {
    script("shared", "echo shared\n", 0770);
    const auto r = cli({"actions", "list"});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_THAT(r.out, HasSubstr("hello"));
    EXPECT_THAT(r.out, HasSubstr("Say hello"));
    const auto all = r.out + r.err;
    EXPECT_THAT(all, HasSubstr("refused: shared:"));
    EXPECT_THAT(all, HasSubstr("writable by group or others"));
    // Not offered as an action.
    for (const auto& l : lines_of(r.out)) {
        EXPECT_THAT(l, Not(HasSubstr("shared"))) << "listed as an action: " << l;
    }

    const auto j = ok_json({"actions", "list"});
    ASSERT_EQ(j["problems"].size(), 1U);
    EXPECT_EQ(j["problems"][0]["file"], "shared");
    EXPECT_EQ(j["problems"][0]["kind"], "refused");
    EXPECT_THAT(j["problems"][0]["reason"].get<std::string>(), HasSubstr("mode 0770"));

    // And it cannot be granted.
    const auto add = fails({"pair", "add", "x", "--actions", "shared", "--no-qr"});
    EXPECT_THAT(add.err, HasSubstr("'shared'"));
}

TEST_F(CliTest, ActionsRunRunsTheActionAndAuditsIt) {
    const auto r = ok({"actions", "run", "hello"});
    EXPECT_EQ(r.out, "hello from cli\n");
    const auto rows = audit();
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].action, "hello");
    EXPECT_EQ(rows[0].transport, "cli");
    EXPECT_EQ(rows[0].status, "ok");
    EXPECT_TRUE(rows[0].completed);
}

TEST_F(CliTest, ActionsRunOfAFailingScriptExitsNonZero) {
    const auto r = cli({"actions", "run", "fail"});
    EXPECT_NE(r.exit_code, 0) << describe(r);
    EXPECT_EQ(r.out, "about to fail\n");  // the action's own output, as for a success
    EXPECT_THAT(r.err, HasSubstr("fail"));
    EXPECT_THAT(r.err, HasSubstr("exit 4"));
    const auto rows = audit();
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].status, "action_failed");
    EXPECT_EQ(rows[0].transport, "cli");
}

TEST_F(CliTest, ActionsRunRefusesUnknownActionsAndArguments) {
    auto r = fails({"actions", "run", "nosuch"});
    EXPECT_THAT(r.err, HasSubstr("'nosuch'"));
    r = fails({"actions", "run", "hello", "extra"});
    EXPECT_THAT(r.err, HasSubstr("arguments refused"));
    // Neither ran, so neither is in the log.
    EXPECT_EQ(ok_json({"log"}), json::array());
}

// --- log --------------------------------------------------------------------------------

class CliLogTest : public CliTest {
  protected:
    void SetUp() override {
        CliTest::SetUp();
        alice_hex = bzs::core::crypto::hex_encode(parse(pair("alice-phone")).device_id);
        // First, a row from two hours ago, written as the daemon would.
        open_store()->audit_event("ble", alice_hex, "hello", bzs::core::protocol::Status::BadMac,
                                  "old attempt", std::time(nullptr) - 7200);
        ok({"actions", "run", "hello"});                          // ok
        EXPECT_NE(cli({"actions", "run", "fail"}).exit_code, 0);  // action_failed
        ok({"pair", "revoke", "alice-phone"});                    // revoked
    }

    std::vector<std::string> statuses(const std::vector<std::string>& args) {
        std::vector<std::string> a{"log"};
        a.insert(a.end(), args.begin(), args.end());
        const auto j = ok_json(a);
        std::vector<std::string> out;
        for (const auto& row : j) {
            out.push_back(row["status"].get<std::string>());
        }
        return out;
    }

    std::string alice_hex;
};

TEST_F(CliLogTest, ShowsEverythingNewestFirst) {
    EXPECT_EQ(statuses({}),
              (std::vector<std::string>{"revoked", "action_failed", "ok", "bad_mac"}));
    const auto text = ok({"log"});
    EXPECT_THAT(text.out, HasSubstr("old attempt"));
    EXPECT_THAT(text.out, HasSubstr("alice-phone"));
}

TEST_F(CliLogTest, FiltersByOutcomeStatusAndDevice) {
    EXPECT_EQ(statuses({"--refused"}),
              (std::vector<std::string>{"revoked", "action_failed", "bad_mac"}));
    EXPECT_EQ(statuses({"--accepted"}), (std::vector<std::string>{"ok"}));
    EXPECT_EQ(statuses({"--status", "action_failed"}), (std::vector<std::string>{"action_failed"}));
    EXPECT_EQ(statuses({"--device", "alice-phone"}),
              (std::vector<std::string>{"revoked", "bad_mac"}));
    EXPECT_EQ(statuses({"--device", alice_hex.substr(0, 8)}),
              (std::vector<std::string>{"revoked", "bad_mac"}));
}

TEST_F(CliLogTest, PagesThroughWithLimitAndPage) {
    EXPECT_EQ(statuses({"--limit", "2"}), (std::vector<std::string>{"revoked", "action_failed"}));
    EXPECT_EQ(statuses({"--limit", "2", "--page", "2"}),
              (std::vector<std::string>{"ok", "bad_mac"}));
    EXPECT_EQ(statuses({"-n", "3", "--page", "2"}), (std::vector<std::string>{"bad_mac"}));
    EXPECT_EQ(statuses({"--limit", "2", "--page", "3"}), std::vector<std::string>{});
    const auto r = fails({"log", "--limit", "0"});
    EXPECT_THAT(r.err, HasSubstr("--limit"));
}

TEST_F(CliLogTest, SinceTakesADurationOrADate) {
    EXPECT_EQ(statuses({"--since", "1h"}),
              (std::vector<std::string>{"revoked", "action_failed", "ok"}));
    EXPECT_EQ(statuses({"--since", "3h"}).size(), 4U);
    EXPECT_EQ(statuses({"--since", "2000-01-01"}).size(), 4U);
    EXPECT_EQ(statuses({"--since", "2999-01-01T00:00:00"}), std::vector<std::string>{});
}

TEST_F(CliLogTest, BadSinceIsAUsageErrorThatSaysWhatIsExpected) {
    for (const std::string bad : {"yesterday", "1w", "2024-13-45", "h"}) {
        const auto r = fails({"log", "--since", bad});
        EXPECT_EQ(r.exit_code, 2) << bad;
        EXPECT_THAT(r.err, HasSubstr("--since '" + bad + "'"));
        EXPECT_THAT(r.err, HasSubstr("YYYY-MM-DD"));
    }
}

TEST_F(CliLogTest, UnknownStatusOrDeviceIsAnError) {
    auto r = fails({"log", "--status", "nonsense"});
    EXPECT_THAT(r.err, HasSubstr("nonsense"));
    r = fails({"log", "--device", "nobody"});
    EXPECT_THAT(r.err, HasSubstr("nobody"));
}

// --- keys rotate ------------------------------------------------------------------------

/// The "<id> <key>" lines of a key file.
std::vector<std::pair<std::string, std::string>> key_lines(const fs::path& p) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& l : lines_of(bzs::test::read_file(p))) {
        if (l.empty() || l[0] == '#') {
            continue;
        }
        const auto sp = l.find(' ');
        out.emplace_back(l.substr(0, sp), sp == std::string::npos ? "" : l.substr(sp + 1));
    }
    return out;
}

TEST_F(CliTest, KeysRotateReplacesTheKeyAndSecretsStillDecrypt) {
    const auto p = parse(pair("alice-phone"));
    const auto paired = parse(pair("bob-phone")).device_id;
    const auto secret = activate(paired);
    const auto pi_key = open_store()->pi_public_key();
    const auto before = key_lines(key_path);
    ASSERT_EQ(before.size(), 1U);
    EXPECT_EQ(before[0].first, "1");

    const auto r = ok({"keys", "rotate"});
    EXPECT_THAT(r.out, HasSubstr("1 -> 2"));
    const auto after = key_lines(key_path);
    ASSERT_EQ(after.size(), 1U);
    EXPECT_EQ(after[0].first, "2");
    EXPECT_NE(after[0].second, before[0].second);
    EXPECT_THAT(bzs::test::read_file(key_path), Not(HasSubstr(before[0].second)))
        << "the old key must be gone";
    struct stat sk {};
    ASSERT_EQ(::stat(key_path.c_str(), &sk), 0);
    EXPECT_EQ(sk.st_mode & 0777, 0600U);

    EXPECT_THAT(ok({"pair", "list"}).out, HasSubstr("alice-phone"));
    auto st = open_store();
    EXPECT_EQ(st->keys().current_id(), 2U);
    const auto pending = st->load_pending(p.device_id);
    ASSERT_TRUE(pending);
    EXPECT_TRUE(bzs::core::crypto::ct_equal(pending->code.view(), p.code.view()));
    EXPECT_TRUE(bzs::core::crypto::ct_equal(st->load_device(paired)->secret.view(), secret.view()));

    // The key file alone (no old key) decrypts every secret, code and the Pi's key.
    auto ring = bzs::store::load_keyfile(key_path);
    EXPECT_EQ(ring.size(), 1U);
    bzs::store::Store fixed(db_path, std::move(ring));
    EXPECT_TRUE(
        bzs::core::crypto::ct_equal(fixed.load_pending(p.device_id)->code.view(), p.code.view()));
    EXPECT_TRUE(
        bzs::core::crypto::ct_equal(fixed.load_device(paired)->secret.view(), secret.view()));
    EXPECT_EQ(fixed.pi_public_key(), pi_key);

    // A second rotation works on top of the first.
    EXPECT_THAT(ok({"keys", "rotate"}).out, HasSubstr("2 -> 3"));
    EXPECT_TRUE(bzs::core::crypto::ct_equal(open_store()->load_pending(p.device_id)->code.view(),
                                            p.code.view()));
}

// --- configuration errors -----------------------------------------------------------------

TEST_F(CliTest, MissingConfigFileIsNamed) {
    const auto missing = (dir / "nowhere.toml").string();
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"pair", "list"}, {"actions", "list"}, {"log"}, {"keys", "rotate"}}) {
        std::vector<std::string> argv{kCli};
        argv.insert(argv.end(), args.begin(), args.end());
        const auto r = bzs::test::run_command(argv, {"BLUEZSCRIPT_CONFIG=" + missing});
        EXPECT_NE(r.exit_code, 0) << describe(r);
        EXPECT_EQ(r.out, "") << describe(r);
        EXPECT_THAT(r.err, HasSubstr(missing));
        EXPECT_THAT(r.err, HasSubstr("no such file"));
    }
    EXPECT_FALSE(fs::exists(state_dir));
}

TEST_F(CliTest, ConfigFlagWinsOverTheEnvironment) {
    const auto missing = (dir / "nowhere.toml").string();
    const auto r = bzs::test::run_command({kCli, "--config", config.string(), "pair", "list"},
                                          {"BLUEZSCRIPT_CONFIG=" + missing});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
}

TEST_F(CliTest, UnknownConfigKeyIsNamed) {
    write_config("requre_bonding = true\n");
    const auto r = fails({"pair", "list"});
    EXPECT_THAT(r.err, HasSubstr(config.string()));
    EXPECT_THAT(r.err, HasSubstr("ble.requre_bonding"));
    EXPECT_FALSE(fs::exists(state_dir));
}

TEST_F(CliTest, BadConfigValueIsNamed) {
    write_config("[security]\ntotp_digits = 12\n");
    const auto r = fails({"pair", "add", "x", "--actions", "hello"});
    EXPECT_THAT(r.err, HasSubstr("security.totp_digits"));
    EXPECT_THAT(r.err, HasSubstr("6..8"));
}

TEST_F(CliTest, NonPrivateStateIsRefusedWithTheFix) {
    pair("alice-phone");
    ASSERT_EQ(::chmod(key_path.c_str(), 0644), 0);
    const auto r = fails({"pair", "list"});
    EXPECT_THAT(r.err, HasSubstr(key_path.string()));
    EXPECT_THAT(r.err, HasSubstr("chmod 600"));
}

// --- secrets ------------------------------------------------------------------------------

TEST_F(CliTest, PairingCodeAppearsNowhereButInThePairingOutput) {
    // Hold a connection open so the WAL file stays and can be searched too.
    ASSERT_EQ(::mkdir(state_dir.c_str(), 0700), 0);
    auto holder = open_store();
    const auto r = ok({"pair", "add", "alice-phone", "--actions", "hello", "--no-qr"});
    const auto uri = uri_in(r.out);
    const auto p = parse(uri);
    const std::string b32 = query_param(uri, "code");
    ASSERT_FALSE(b32.empty());
    ASSERT_THAT(uri, HasSubstr(b32));
    ok({"actions", "run", "hello"});
    ok({"pair", "allow", "alice-phone", "other"});
    // A refused command in the log, as the daemon writes it.
    holder->audit_event("ble", bzs::core::crypto::hex_encode(p.device_id), "hello",
                        bzs::core::protocol::Status::BadMac, "test", std::time(nullptr));

    std::vector<std::pair<std::string, std::string>> places;
    for (const auto* f : {"bluezscript.db", "bluezscript.db-wal", "bluezscript.db-shm"}) {
        if (fs::exists(state_dir / f)) {
            places.emplace_back(f, bzs::test::read_file(state_dir / f));
        }
    }
    ASSERT_TRUE(fs::exists(state_dir / "bluezscript.db-wal"));
    for (const auto& args :
         std::vector<std::vector<std::string>>{{"pair", "list"},
                                               {"--json", "pair", "list"},
                                               {"log"},
                                               {"--json", "log"},
                                               {"log", "--device", "alice-phone"},
                                               {"actions", "list"}}) {
        const auto out = ok(args);
        std::string name;
        for (const auto& a : args) {
            name += a + " ";
        }
        places.emplace_back(name, out.out + out.err);
    }
    auto codes = encodings_of(p.code);
    codes.push_back(b32);
    for (const auto& [where, content] : places) {
        for (const auto& code : codes) {
            EXPECT_EQ(content.find(code), std::string::npos) << "the code appears in " << where;
        }
    }
}

}  // namespace

// --- client (this computer as a BLE client): what is checked before any Bluetooth ---

class CliClientTest : public CliTest {
  protected:
    fs::path xdg = dir / "xdg";

    /// Runs `bluezscript ARGS` as a client user: its pairings under `xdg`, a system
    /// bus that does not exist (nothing here may reach Bluetooth).
    CommandResult client(const std::vector<std::string>& args, const std::string& in = {}) const {
        std::vector<std::string> argv{kCli};
        argv.insert(argv.end(), args.begin(), args.end());
        return bzs::test::run_command(
            argv,
            {"XDG_CONFIG_HOME=" + xdg.string(),
             "DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + (dir / "no-bus").string()},
            in);
    }

    static bzs::core::protocol::PairingLink link() {
        bzs::core::protocol::PairingLink l;
        l.pi_id.fill(0x5A);
        l.pi_key.fill(0x11);
        l.pi_name = "kitchen";
        l.device_id.fill(0x17);
        l.code = bzs::core::crypto::SecretBytes(bzs::core::crypto::random_bytes(16));
        l.label = "laptop";
        return l;
    }

    /// The code of `l` as links write it (base32, 26 characters).
    static std::string code_text(const bzs::core::protocol::PairingLink& l) {
        return query_param(bzs::core::protocol::link_to_uri(l), "code");
    }

    void write_pairing_file(const std::string& name, const std::string& json_text) const {
        fs::create_directories(xdg / "bluezscript" / "pairings");
        fs::permissions(xdg / "bluezscript", fs::perms::owner_all);
        fs::permissions(xdg / "bluezscript" / "pairings", fs::perms::owner_all);
        bzs::test::write_file(xdg / "bluezscript" / "pairings" / name, json_text, 0600);
    }
};

TEST_F(CliClientTest, ClientHelpNamesPairActionsListRemove) {
    auto r = client({"client", "--help"});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    for (const char* w : {"pair", "actions", "list", "remove"}) {
        EXPECT_THAT(r.out, HasSubstr(w));
    }
    EXPECT_THAT(r.out, Not(HasSubstr("import")));
    r = client({"client", "pair", "--help"});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    for (const char* w : {"link", "--name", "--adapter", "--timeout", "--quiet"}) {
        EXPECT_THAT(r.out, HasSubstr(w));
    }
}

TEST_F(CliClientTest, PairWithoutALinkSaysHowToGiveOne) {
    const auto r = client({"client", "pair"}, "\n");
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("no pairing link given"));
    EXPECT_EQ(r.out, "");
    EXPECT_FALSE(fs::exists(xdg / "bluezscript" / "pairings"));
}

TEST_F(CliClientTest, AnInvalidLinkNamesTheFieldAndNeverEchoesTheCode) {
    const auto l = link();
    const std::string code = code_text(l);
    ASSERT_EQ(code.size(), 26U);
    std::string uri = bzs::core::protocol::link_to_uri(l);
    // A pk one digit short.
    const auto pk = uri.find("pk=") + 3;
    uri.erase(pk, 1);
    for (const bool from_stdin : {false, true}) {
        const auto r = from_stdin ? client({"client", "pair", "-"}, uri + "\n")
                                  : client({"client", "pair", uri});
        EXPECT_EQ(r.exit_code, 2) << describe(r);
        EXPECT_THAT(r.err, HasSubstr("not a valid pairing link"));
        EXPECT_THAT(r.err, HasSubstr("pk"));
        EXPECT_THAT(r.err, Not(HasSubstr(code)));
        EXPECT_THAT(r.out, Not(HasSubstr(code)));
    }
    // A protocol 1 link.
    const auto r = client(
        {"client", "pair", "bluezscript://pair?v=1&pi=5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a&secret=AB"});
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("not a valid pairing link"));
    EXPECT_FALSE(fs::exists(xdg / "bluezscript" / "pairings"));
}

TEST_F(CliClientTest, BadAdapterTimeoutOrNameAreRefusedBeforeAnyBluetooth) {
    const std::string uri = bzs::core::protocol::link_to_uri(link());
    auto r = client({"client", "pair", uri, "--adapter", "usb0"});
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("--adapter 'usb0': expected hciN"));
    r = client({"client", "pair", uri, "--timeout", "0"});
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("--timeout must be 1..3600"));
    r = client({"client", "pair", uri, "--name", "a/b"});
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("must not contain '/'"));
    r = client({"client", "actions", "--adapter", "x"});
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("--adapter 'x'"));
}

TEST_F(CliClientTest, ADeviceAlreadyPairedHereIsRefusedBeforeTheCodeIsUsed) {
    write_pairing_file(
        "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a-17171717171717171717171717171717.json",
        R"({"version":2,"name":"kitchen","pi_id":"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",)"
        R"("pi_name":"kitchen","pi_public":")" +
            std::string(130, '4') +
            R"(","device_id":"17171717171717171717171717171717","device_label":"laptop",)"
            R"("secret":"TPH6JOLOTNOGGS5V6Q2TZLQ7QRIZ5DBNGXVDWJPUGD557CVWLM4Q",)"
            R"("totp":{"alg":"SHA1","digits":6,"period":30},"counter":4,"paired":1700000000})");
    const auto r = client({"client", "pair", bzs::core::protocol::link_to_uri(link())});
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("already paired here as 'kitchen'"));
    // It still works for list.
    const auto l = client({"client", "list"});
    EXPECT_EQ(l.exit_code, 0) << describe(l);
    EXPECT_THAT(l.out, HasSubstr("kitchen"));
    EXPECT_THAT(l.out, HasSubstr("counter:  4"));
    EXPECT_THAT(l.out, Not(HasSubstr("TPH6JOLOT")));
}

TEST_F(CliClientTest, APairingOfProtocolOneIsListedAsUnusableAndTriggerSaysPairAgain) {
    write_pairing_file("old.json",
                       R"({"version":1,"name":"shed","pi_id":"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",)"
                       R"("pi_name":"shed","device_id":"17171717171717171717171717171717",)"
                       R"("device_label":"","secret":"TPH6JOLOTNOGGS5V6Q2TZLQ7QRIZ5DBN",)"
                       R"("totp":{"alg":"SHA1","digits":6,"period":30},"counter":3,)"
                       R"("last_accepted_step":null,"imported":1700000000})");
    auto r = client({"client", "list"});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_THAT(r.out, HasSubstr("made with protocol 1; pair again with a new link"));
    r = client({"trigger", "hello", "--pi", "shed"});
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("pairing 'shed' was made with protocol 1"));
    r = client({"client", "actions"});
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("protocol 1: pair again with a new link"));
    r = client({"client", "remove", "shed"});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_FALSE(fs::exists(xdg / "bluezscript" / "pairings" / "old.json"));
}

TEST_F(CliClientTest, TriggerWithoutPairingsSaysHowToPair) {
    const auto r = client({"trigger", "hello"});
    EXPECT_EQ(r.exit_code, 2) << describe(r);
    EXPECT_THAT(r.err, HasSubstr("no pairings yet: pair with `bluezscript client pair LINK`"));
}
