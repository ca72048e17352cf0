// SPDX-License-Identifier: GPL-3.0-or-later
// The daemon/CLI config: defaults, strict parsing with precise messages, path
// resolution, the derived policy, and the shipped file and docs staying in step.
#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "test_support.h"

namespace bzs::config {
namespace {

namespace fs = std::filesystem;

std::string hostname() {
    std::array<char, HOST_NAME_MAX + 1> buf{};
    EXPECT_EQ(gethostname(buf.data(), buf.size() - 1), 0);
    return buf.data();
}

/// The ConfigError message parse_config throws for `text`; fails the test if none.
std::string error_of(std::string_view text, std::string_view source = "t.toml") {
    try {
        parse_config(text, source);
    } catch (const ConfigError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no ConfigError for:\n" << text;
    return {};
}

/// `[section]\nkey = value\n`: a key on line 2.
std::string one_key(const std::string& dotted, const std::string& value) {
    const auto dot = dotted.find('.');
    return "[" + dotted.substr(0, dot) + "]\n" + dotted.substr(dot + 1) + " = " + value + "\n";
}

// The keys the brief specifies, written out independently of the parser's table.
const std::vector<std::string> kSpecifiedKeys = {
    "daemon.state_dir",
    "daemon.actions_dir",
    "daemon.pi_name",
    "daemon.log_level",
    "ble.enabled",
    "ble.adapter",
    "ble.local_name",
    "ble.require_bonding",
    "ble.challenge_ttl_seconds",
    "security.max_clock_skew_seconds",
    "security.totp_window",
    "security.totp_digits",
    "security.totp_algorithm",
    "security.totp_period_seconds",
    "security.require_challenge",
    "security.max_clock_advance_seconds",
    "limits.link_max_failures_per_minute",
    "limits.global_max_failures_per_minute",
    "limits.global_lockout_seconds",
    "actions.default_timeout_seconds",
    "actions.default_output_limit_bytes",
    "actions.kill_grace_seconds",
    "pairing.window_seconds",
    "pairing.app_url",
    "web.enabled",
    "web.https_address",
    "web.https_port",
    "web.http_address",
    "web.http_port",
    "web.cert_file",
    "web.key_file",
    "web.session_idle_minutes",
    "web.session_absolute_hours",
    "web.signin_max_attempts_per_15min",
    "web.app_dir",
};

struct IntRange {
    std::string key;
    std::int64_t min;
    std::int64_t max;
};
const std::vector<IntRange> kIntRanges = {
    {"ble.challenge_ttl_seconds", 5, 300},
    {"security.max_clock_skew_seconds", 30, 3600},
    {"security.totp_window", 0, 2},
    {"security.totp_digits", 6, 8},
    {"security.totp_period_seconds", 15, 300},
    {"security.max_clock_advance_seconds", 60, 315360000},
    {"limits.link_max_failures_per_minute", 1, 10000},
    {"limits.global_max_failures_per_minute", 1, 100000},
    {"limits.global_lockout_seconds", 1, 86400},
    {"actions.default_timeout_seconds", 1, 3600},
    {"actions.default_output_limit_bytes", 0, 65536},
    {"actions.kill_grace_seconds", 0, 60},
    {"pairing.window_seconds", 30, 3600},
};

TEST(ConfigDefaults, MatchTheSpecifiedValues) {
    const Config c = default_config();
    EXPECT_EQ(c.daemon.state_dir, fs::path("/var/lib/bluezscript"));
    EXPECT_EQ(c.daemon.actions_dir, fs::path("/etc/bluezscript/actions.d"));
    EXPECT_EQ(c.daemon.pi_name, hostname());
    EXPECT_EQ(c.daemon.log_level, LogLevel::Info);
    EXPECT_TRUE(c.ble.enabled);
    EXPECT_EQ(c.ble.adapter, "");
    EXPECT_EQ(c.ble.local_name, "");
    EXPECT_TRUE(c.ble.require_bonding);
    EXPECT_EQ(c.ble.challenge_ttl_seconds, 30);
    EXPECT_EQ(c.security.max_clock_skew_seconds, 300);
    EXPECT_EQ(c.security.totp_window, 1);
    EXPECT_EQ(c.security.totp_digits, 6);
    EXPECT_EQ(c.security.totp_algorithm, core::crypto::Hash::Sha1);
    EXPECT_EQ(c.security.totp_period_seconds, 30);
    EXPECT_TRUE(c.security.require_challenge);
    EXPECT_EQ(c.security.max_clock_advance_seconds, 31536000);
    EXPECT_EQ(c.limits.link_max_failures_per_minute, 10u);
    EXPECT_EQ(c.limits.global_max_failures_per_minute, 30u);
    EXPECT_EQ(c.limits.global_lockout_seconds, 60);
    EXPECT_EQ(c.actions.default_timeout_seconds, 30);
    EXPECT_EQ(c.actions.default_output_limit_bytes, 4096u);
    EXPECT_EQ(c.actions.kill_grace_seconds, 2);
    EXPECT_EQ(c.pairing.window_seconds, 300);
    EXPECT_EQ(c.pairing.app_url, "");
    EXPECT_EQ(c.db_path(), fs::path("/var/lib/bluezscript/bluezscript.db"));
    EXPECT_EQ(c.keyfile_path(), fs::path("/var/lib/bluezscript/master.key"));
    EXPECT_EQ(c.advertised_name(), hostname());
}

TEST(ConfigDefaults, EmptyFileAndEmptyTablesGiveTheDefaults) {
    EXPECT_EQ(parse_config("", "/etc/bluezscript/bluezscript.toml"), default_config());
    EXPECT_EQ(parse_config("# nothing\n[daemon]\n[ble]\n[security]\n[limits]\n[actions]\n"
                           "[pairing]\n",
                           "/etc/bluezscript/bluezscript.toml"),
              default_config());
}

TEST(ConfigParse, FullFileGivesEveryValue) {
    const std::string text = R"(
[daemon]
state_dir = "/srv/bzs/state"
actions_dir = "/srv/bzs/actions"
pi_name = "garage-pi"
log_level = "debug"

[ble]
enabled = false
adapter = "hci1"
local_name = "Garage"
require_bonding = false
challenge_ttl_seconds = 45

[security]
max_clock_skew_seconds = 120
totp_window = 2
totp_digits = 8
totp_algorithm = "SHA256"
totp_period_seconds = 60
require_challenge = false
max_clock_advance_seconds = 86400

[limits]
link_max_failures_per_minute = 3
global_max_failures_per_minute = 20
global_lockout_seconds = 90

[actions]
default_timeout_seconds = 120
default_output_limit_bytes = 0
kill_grace_seconds = 5

[pairing]
window_seconds = 600
app_url = "https://example.org/bluezscript/"
)";
    const Config c = parse_config(text, "full.toml");
    EXPECT_EQ(c.daemon.state_dir, fs::path("/srv/bzs/state"));
    EXPECT_EQ(c.daemon.actions_dir, fs::path("/srv/bzs/actions"));
    EXPECT_EQ(c.daemon.pi_name, "garage-pi");
    EXPECT_EQ(c.daemon.log_level, LogLevel::Debug);
    EXPECT_FALSE(c.ble.enabled);
    EXPECT_EQ(c.ble.adapter, "hci1");
    EXPECT_EQ(c.ble.local_name, "Garage");
    EXPECT_FALSE(c.ble.require_bonding);
    EXPECT_EQ(c.ble.challenge_ttl_seconds, 45);
    EXPECT_EQ(c.security.max_clock_skew_seconds, 120);
    EXPECT_EQ(c.security.totp_window, 2);
    EXPECT_EQ(c.security.totp_digits, 8);
    EXPECT_EQ(c.security.totp_algorithm, core::crypto::Hash::Sha256);
    EXPECT_EQ(c.security.totp_period_seconds, 60);
    EXPECT_FALSE(c.security.require_challenge);
    EXPECT_EQ(c.security.max_clock_advance_seconds, 86400);
    EXPECT_EQ(c.limits.link_max_failures_per_minute, 3u);
    EXPECT_EQ(c.limits.global_max_failures_per_minute, 20u);
    EXPECT_EQ(c.limits.global_lockout_seconds, 90);
    EXPECT_EQ(c.actions.default_timeout_seconds, 120);
    EXPECT_EQ(c.actions.default_output_limit_bytes, 0u);
    EXPECT_EQ(c.actions.kill_grace_seconds, 5);
    EXPECT_EQ(c.pairing.window_seconds, 600);
    EXPECT_EQ(c.pairing.app_url, "https://example.org/bluezscript/");
    EXPECT_EQ(c.advertised_name(), "Garage");
}

TEST(ConfigParse, ChoicesMapToTheirValues) {
    const std::vector<std::pair<std::string, LogLevel>> levels = {{"error", LogLevel::Error},
                                                                  {"warning", LogLevel::Warning},
                                                                  {"info", LogLevel::Info},
                                                                  {"debug", LogLevel::Debug}};
    for (const auto& [name, level] : levels) {
        EXPECT_EQ(parse_config(one_key("daemon.log_level", "\"" + name + "\""), "t.toml")
                      .daemon.log_level,
                  level);
        EXPECT_EQ(log_level_name(level), name);
    }
    const std::vector<std::pair<std::string, core::crypto::Hash>> hashes = {
        {"SHA1", core::crypto::Hash::Sha1},
        {"SHA256", core::crypto::Hash::Sha256},
        {"SHA512", core::crypto::Hash::Sha512}};
    for (const auto& [name, hash] : hashes) {
        EXPECT_EQ(parse_config(one_key("security.totp_algorithm", "\"" + name + "\""), "t.toml")
                      .security.totp_algorithm,
                  hash);
    }
}

TEST(ConfigParse, DottedKeysAndInlineTablesAreAccepted) {
    const Config c = parse_config(
        "security.totp_window = 0\nble = { enabled = false, challenge_ttl_seconds = 60 }\n",
        "t.toml");
    EXPECT_EQ(c.security.totp_window, 0);
    EXPECT_FALSE(c.ble.enabled);
    EXPECT_EQ(c.ble.challenge_ttl_seconds, 60);
}

TEST(ConfigParse, RangeLimitsThemselvesAreAccepted) {
    for (const auto& r : kIntRanges) {
        for (const std::int64_t v : {r.min, r.max}) {
            const std::string text = one_key(r.key, std::to_string(v));
            EXPECT_NO_THROW(parse_config(text, "t.toml")) << text;
        }
    }
}

TEST(ConfigErrors, MessageNamesFileLineKeyAndExpectation) {
    std::string text(11, '\n');  // the key lands on line 12
    text += "limits.link_max_failures_per_minute = 0\n";
    EXPECT_EQ(error_of(text, "run/bluezscript.toml"),
              "run/bluezscript.toml:12: limits.link_max_failures_per_minute: expected an integer "
              "in 1..10000, got 0");
}

TEST(ConfigErrors, UnknownKeyInEverySectionIsRejected) {
    std::set<std::string> sections;
    for (const auto& k : known_keys()) sections.insert(k.substr(0, k.find('.')));
    EXPECT_EQ(sections.size(), 7u);  // daemon ble security limits actions pairing web
    for (const auto& s : sections) {
        const std::string msg = error_of("[" + s + "]\n\nbogus_key = 1\n");
        EXPECT_NE(msg.find("t.toml:3: unknown key " + s + ".bogus_key"), std::string::npos) << msg;
    }
    // A misspelt security key must not fall back silently to its default.
    const std::string msg = error_of("[security]\nrequre_challenge = false\n");
    EXPECT_NE(msg.find("security.requre_challenge"), std::string::npos) << msg;
    EXPECT_NE(msg.find("require_challenge"), std::string::npos) << msg;  // lists the real keys
}

TEST(ConfigErrors, UnknownTableIsRejected) {
    std::string msg = error_of("[daemon]\n[daemons]\nx = 1\n");
    EXPECT_NE(msg.find("t.toml:2: unknown table [daemons]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[daemon]"), std::string::npos) << msg;  // lists the known tables

    msg = error_of("[daemon.extra]\nx = 1\n");
    EXPECT_NE(msg.find("unknown key daemon.extra"), std::string::npos) << msg;

    msg = error_of("log_level = \"info\"\n");
    EXPECT_NE(msg.find("t.toml:1: unknown key log_level"), std::string::npos) << msg;
}

TEST(ConfigErrors, WrongTypeIsRejected) {
    struct Case {
        std::string key, value, expected;
    };
    const std::vector<Case> cases = {
        {"ble.enabled", "\"yes\"", "ble.enabled: expected true or false, got a string"},
        {"ble.enabled", "1", "ble.enabled: expected true or false, got an integer"},
        {"ble.challenge_ttl_seconds", "\"30\"",
         "ble.challenge_ttl_seconds: expected an integer in 5..300, got a string"},
        {"security.totp_window", "1.0",
         "security.totp_window: expected an integer in 0..2, got a floating-point number"},
        {"daemon.state_dir", "42", "daemon.state_dir: expected a non-empty path, got an integer"},
        {"daemon.log_level", "3",
         "daemon.log_level: expected one of \"error\", \"warning\", "
         "\"info\", \"debug\", got an integer"},
        {"pairing.app_url", "[\"https://x\"]", "pairing.app_url: expected"},
        {"limits.global_lockout_seconds", "1979-05-27",
         "limits.global_lockout_seconds: expected an integer in 1..86400, got a date"},
    };
    for (const auto& c : cases) {
        const std::string msg = error_of(one_key(c.key, c.value));
        EXPECT_NE(msg.find("t.toml:2: " + c.expected), std::string::npos) << msg;
    }
    const std::string msg = error_of("[pairing]\napp_url = [\"https://x\"]\n");
    EXPECT_NE(msg.find("got an array"), std::string::npos) << msg;

    const std::string table_msg = error_of("daemon = 5\n");
    EXPECT_NE(table_msg.find("t.toml:1: daemon: expected a table, got an integer"),
              std::string::npos)
        << table_msg;
}

TEST(ConfigErrors, OutOfRangeNamesTheRange) {
    for (const auto& r : kIntRanges) {
        for (const std::int64_t v : {r.min - 1, r.max + 1}) {
            const std::string msg = error_of(one_key(r.key, std::to_string(v)));
            const std::string want = "t.toml:2: " + r.key + ": expected an integer in " +
                                     std::to_string(r.min) + ".." + std::to_string(r.max) +
                                     ", got " + std::to_string(v);
            EXPECT_NE(msg.find(want), std::string::npos) << msg;
        }
    }
    // Huge values are refused, not wrapped into the narrower field.
    const std::string msg = error_of(one_key("limits.link_max_failures_per_minute", "4294967301"));
    EXPECT_NE(msg.find("got 4294967301"), std::string::npos) << msg;
}

TEST(ConfigErrors, BadStringValuesAreRejected) {
    struct Case {
        std::string key, value, got;
    };
    const std::vector<Case> cases = {
        {"daemon.log_level", "\"verbose\"", "got \"verbose\""},
        {"daemon.log_level", "\"INFO\"", "got \"INFO\""},
        {"security.totp_algorithm", "\"MD5\"", "got \"MD5\""},
        {"security.totp_algorithm", "\"sha1\"", "got \"sha1\""},
        {"daemon.state_dir", "\"\"", "got \"\""},
        {"daemon.actions_dir", "\"a\\nb\"", "got \"a\\x0ab\""},
        {"daemon.pi_name", "\"\"", "got \"\""},
        {"daemon.pi_name", "\"" + std::string(65, 'p') + "\"", "got \"ppp"},
        {"ble.local_name", "\"tab\\there\"", "got \"tab\\x09here\""},
        {"ble.adapter", "\"wlan0\"", "got \"wlan0\""},
        {"ble.adapter", "\"hci\"", "got \"hci\""},
        {"pairing.app_url", "\"http://example.org/app/\"", "got \"http://example.org/app/\""},
        {"pairing.app_url", "\"https://example.org/app/#x\"", "got"},
        {"pairing.app_url", "\"https://\"", "got \"https://\""},
        {"pairing.app_url", "\"ftp://example.org/\"", "got \"ftp://example.org/\""},
    };
    for (const auto& c : cases) {
        const std::string msg = error_of(one_key(c.key, c.value));
        EXPECT_NE(msg.find("t.toml:2: " + c.key + ": expected "), std::string::npos) << msg;
        EXPECT_NE(msg.find(c.got), std::string::npos) << msg;
    }
    const std::string msg = error_of(one_key("daemon.log_level", "\"verbose\""));
    EXPECT_NE(msg.find("one of \"error\", \"warning\", \"info\", \"debug\""), std::string::npos)
        << msg;
}

TEST(ConfigParse, GoodStringValuesAreAccepted) {
    EXPECT_EQ(parse_config(one_key("ble.adapter", "\"hci12\""), "t.toml").ble.adapter, "hci12");
    for (const std::string url :
         {"https://example.org/app/", "https://pi.local:8443/", "http://localhost:8080/app/",
          "http://127.0.0.1/", "http://[::1]:9000/"}) {
        EXPECT_EQ(
            parse_config(one_key("pairing.app_url", "\"" + url + "\""), "t.toml").pairing.app_url,
            url);
    }
    const std::string name(64, 'n');
    EXPECT_EQ(parse_config(one_key("daemon.pi_name", "\"" + name + "\""), "t.toml").daemon.pi_name,
              name);
    EXPECT_EQ(parse_config(one_key("daemon.pi_name", "\"Küche\""), "t.toml").daemon.pi_name,
              "Küche");
}

TEST(ConfigErrors, SyntaxErrorHasItsLine) {
    std::string msg = error_of("[daemon]\nlog_level = \"info\"\nstate_dir = = \"x\"\n");
    EXPECT_NE(msg.find("t.toml:3: TOML syntax error: "), std::string::npos) << msg;
    EXPECT_NE(msg.find("column"), std::string::npos) << msg;

    msg = error_of("[ble]\nenabled = true\n\nenabled = false\n");  // duplicate key
    EXPECT_NE(msg.find("t.toml:4: TOML syntax error: "), std::string::npos) << msg;

    msg = error_of("[limits\n");
    EXPECT_NE(msg.find("t.toml:1: TOML syntax error: "), std::string::npos) << msg;
}

TEST(ConfigErrors, AllProblemsAreReportedInLineOrder) {
    const std::string msg = error_of(
        "[pairing]\nwindow_seconds = 1\n[ble]\nenabled = 3\n[daemon]\nlog_level = \"x\"\n");
    const auto a = msg.find("t.toml:2: pairing.window_seconds");
    const auto b = msg.find("t.toml:4: ble.enabled");
    const auto c = msg.find("t.toml:6: daemon.log_level");
    ASSERT_NE(a, std::string::npos) << msg;
    ASSERT_NE(b, std::string::npos) << msg;
    ASSERT_NE(c, std::string::npos) << msg;
    EXPECT_LT(a, b);
    EXPECT_LT(b, c);
}

// Keys of earlier versions are refused with the reason they went, not as unknown.
TEST(ConfigErrors, RemovedKeysSayWhy) {
    std::string msg = error_of("[limits]\ndevice_max_failures = 5\n");
    EXPECT_NE(msg.find("t.toml:2: limits.device_max_failures: this setting was removed (paired "
                       "devices are no longer locked out); delete the line"),
              std::string::npos)
        << msg;
    for (const char* key : {"device_lockout_seconds", "device_lockout_max_seconds",
                            "global_max_attempts_per_minute"}) {
        msg = error_of("[limits]\n" + std::string(key) + " = 60\n");
        EXPECT_NE(msg.find("limits." + std::string(key) + ": this setting was removed ("),
                  std::string::npos)
            << msg;
    }
    // Only in their own section: elsewhere the name is merely unknown.
    msg = error_of("[security]\ndevice_max_failures = 5\n");
    EXPECT_NE(msg.find("unknown key security.device_max_failures"), std::string::npos) << msg;
}

TEST(ConfigPaths, RelativePathsResolveAgainstTheFileFolder) {
    test::TempDir dir;
    fs::create_directory(dir / "run");
    const fs::path file = dir / "run" / "bluezscript.toml";
    test::write_file(file, "[daemon]\nstate_dir = \"state\"\nactions_dir = \"../actions.d/\"\n");
    const Config c = load_config(file);
    EXPECT_EQ(c.daemon.state_dir, dir.path() / "run" / "state");
    EXPECT_EQ(c.daemon.actions_dir, dir.path() / "actions.d");
    EXPECT_EQ(c.db_path(), dir.path() / "run" / "state" / "bluezscript.db");
    EXPECT_EQ(c.keyfile_path(), dir.path() / "run" / "state" / "master.key");

    // parse_config resolves against the folder of its source name the same way.
    const Config p = parse_config("[daemon]\nstate_dir = \"./s\"\n", "/opt/bzs/conf/b.toml");
    EXPECT_EQ(p.daemon.state_dir, fs::path("/opt/bzs/conf/s"));
    EXPECT_EQ(p.daemon.actions_dir, fs::path("/etc/bluezscript/actions.d"));

    // Absolute paths are kept as written.
    const Config a = parse_config("[daemon]\nstate_dir = \"/var/tmp/x\"\n", "/opt/b.toml");
    EXPECT_EQ(a.daemon.state_dir, fs::path("/var/tmp/x"));
}

TEST(ConfigPaths, RelativeSourceNameResolvesFromTheWorkingDirectory) {
    const Config c = parse_config("[daemon]\nstate_dir = \"state\"\n", "run/bluezscript.toml");
    EXPECT_EQ(c.daemon.state_dir, fs::current_path() / "run" / "state");
}

TEST(ConfigLoad, MissingFileDirectoryAndBadContentAreErrors) {
    test::TempDir dir;
    try {
        load_config(dir / "absent.toml");
        ADD_FAILURE() << "no error for a missing file";
    } catch (const ConfigError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find((dir / "absent.toml").string()), std::string::npos) << msg;
        EXPECT_NE(msg.find("no such file"), std::string::npos) << msg;
    }
    try {
        load_config(dir.path());
        ADD_FAILURE() << "no error for a directory";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
    }
    const fs::path bad = dir / "bad.toml";
    test::write_file(bad, "[ble]\nenabled = \"no\"\n");
    try {
        load_config(bad);
        ADD_FAILURE() << "no error for a bad value";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find(bad.string() + ":2: ble.enabled"), std::string::npos)
            << e.what();
    }
}

TEST(ConfigPiName, HostnameUnlessSet) {
    EXPECT_EQ(parse_config("", "t.toml").daemon.pi_name, hostname());
    const Config c = parse_config("[daemon]\npi_name = \"shed\"\n", "t.toml");
    EXPECT_EQ(c.daemon.pi_name, "shed");
    EXPECT_EQ(c.advertised_name(), "shed");
}

TEST(ConfigDerived, PolicyAndTotpMapTheirKeys) {
    const Config c = parse_config(R"(
[security]
max_clock_skew_seconds = 90
totp_window = 2
totp_digits = 7
totp_algorithm = "SHA512"
totp_period_seconds = 45
require_challenge = false
max_clock_advance_seconds = 600
[limits]
link_max_failures_per_minute = 4
global_max_failures_per_minute = 33
global_lockout_seconds = 123
)",
                                  "t.toml");
    const core::auth::Policy p = c.policy();
    EXPECT_EQ(p.max_clock_skew_seconds, 90);
    EXPECT_EQ(p.totp_window, 2);
    EXPECT_FALSE(p.require_challenge);
    EXPECT_EQ(p.max_clock_advance_seconds, 600);
    EXPECT_EQ(p.limits.link_max_failures_per_minute, 4u);
    EXPECT_EQ(p.limits.global_max_failures_per_minute, 33u);
    EXPECT_EQ(p.limits.global_lockout_seconds, 123);

    const core::crypto::TotpParams t = c.totp();
    EXPECT_EQ(t.hash, core::crypto::Hash::Sha512);
    EXPECT_EQ(t.digits, 7);
    EXPECT_EQ(t.step_seconds, 45);
    EXPECT_EQ(t.window, 2);
}

TEST(ConfigDerived, DefaultPolicyEqualsTheVerifierDefaults) {
    // The verifier's own defaults and the config defaults describe the same policy.
    const core::auth::Policy want;
    const core::auth::Policy got = default_config().policy();
    EXPECT_EQ(got.max_clock_skew_seconds, want.max_clock_skew_seconds);
    EXPECT_EQ(got.totp_window, want.totp_window);
    EXPECT_EQ(got.require_challenge, want.require_challenge);
    EXPECT_EQ(got.max_clock_advance_seconds, want.max_clock_advance_seconds);
    EXPECT_EQ(got.limits.link_max_failures_per_minute, want.limits.link_max_failures_per_minute);
    EXPECT_EQ(got.limits.global_max_failures_per_minute,
              want.limits.global_max_failures_per_minute);
    EXPECT_EQ(got.limits.global_lockout_seconds, want.limits.global_lockout_seconds);
}

TEST(ConfigKeys, ParserAcceptsExactlyTheSpecifiedKeys) {
    EXPECT_EQ(known_keys(), kSpecifiedKeys);
    // The parser knows each key: a value of no valid kind is a type error for that
    // key, never an "unknown key".
    for (const auto& k : known_keys()) {
        const std::string msg = error_of(one_key(k, "{ x = 1 }"));
        EXPECT_NE(msg.find("t.toml:2: " + k + ": expected "), std::string::npos) << msg;
        EXPECT_NE(msg.find("got a table"), std::string::npos) << msg;
    }
}

TEST(ConfigFiles, ShippedFileEqualsTheDefaults) {
    const fs::path file = fs::path(BZS_SOURCE_DIR) / "packaging" / "bluezscript.toml";
    const Config shipped = load_config(file);
    Config want = default_config();
    // Only pi_name may differ; it is commented out, so it is the hostname here too.
    want.daemon.pi_name = shipped.daemon.pi_name;
    EXPECT_EQ(shipped, want);
    EXPECT_EQ(shipped.daemon.pi_name, hostname());
}

TEST(ConfigFiles, ShippedFileListsEveryKey) {
    const std::string text =
        test::read_file(fs::path(BZS_SOURCE_DIR) / "packaging" / "bluezscript.toml");
    const std::regex header(R"(^\[(\w+)\]\s*$)");
    const std::regex setting(R"(^(\w+)\s*=)");
    const std::regex commented(R"(^#\s*(\w+)\s*=)");
    std::set<std::string> set_keys;
    std::set<std::string> commented_keys;
    std::string section;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_match(line, m, header)) {
            section = m[1];
        } else if (std::regex_search(line, m, setting)) {
            set_keys.insert(section + "." + std::string(m[1]));
        } else if (std::regex_search(line, m, commented)) {
            commented_keys.insert(section + "." + std::string(m[1]));
        }
    }
    for (const auto& k : known_keys()) {
        if (k == "daemon.pi_name") {
            EXPECT_EQ(set_keys.count(k), 0u) << "pi_name must stay commented out";
            EXPECT_EQ(commented_keys.count(k), 1u) << k;
        } else {
            EXPECT_EQ(set_keys.count(k), 1u) << k << " missing from packaging/bluezscript.toml";
        }
    }
}

TEST(ConfigFiles, DocsDescribeEveryKey) {
    const std::string doc = test::read_file(fs::path(BZS_SOURCE_DIR) / "docs" / "configuration.md");
    for (const auto& k : known_keys()) {
        EXPECT_NE(doc.find("`" + k + "`"), std::string::npos)
            << k << " is not documented in docs/configuration.md";
    }
}

TEST(ConfigPath, SelectionOrder) {
    EXPECT_EQ(select_config_path("/a.toml", "/b.toml"), fs::path("/a.toml"));
    EXPECT_EQ(select_config_path("", "/b.toml"), fs::path("/b.toml"));
    EXPECT_EQ(select_config_path("", ""), fs::path("/etc/bluezscript/bluezscript.toml"));
    EXPECT_EQ(select_config_path("", nullptr), fs::path(kDefaultConfigPath));
    EXPECT_EQ(kConfigEnvVar, "BLUEZSCRIPT_CONFIG");
}

// ---- [web]

TEST(ConfigWeb, DefaultsServeHttpsOnAllAddressesAndHttpOnLoopback) {
    const Config c = default_config();
    EXPECT_TRUE(c.web.enabled);
    EXPECT_EQ(c.web.https_address, "0.0.0.0");
    EXPECT_EQ(c.web.https_port, 8443);
    EXPECT_EQ(c.web.http_address, "127.0.0.1");
    EXPECT_EQ(c.web.http_port, 8080);
    EXPECT_TRUE(c.web.cert_file.empty());
    EXPECT_EQ(c.web.session_idle_minutes, 30);
    EXPECT_EQ(c.web.session_absolute_hours, 12);
    EXPECT_EQ(c.web.signin_max_attempts_per_15min, 5);
    EXPECT_EQ(c.web.app_dir, fs::path("/usr/share/bluezscript/app"));
    EXPECT_EQ(c.web_cert_path(), c.daemon.state_dir / "web-cert.pem");
    EXPECT_EQ(c.web_key_path(), c.daemon.state_dir / "web-key.pem");
}

TEST(ConfigWeb, AppDirIsResolvedAgainstTheConfigFolder) {
    EXPECT_EQ(parse_config("[web]\napp_dir = \"app\"\n", "/etc/bzs/t.toml").web.app_dir,
              fs::path("/etc/bzs/app"));
    EXPECT_EQ(parse_config("[web]\napp_dir = \"/srv/app/\"\n", "/etc/bzs/t.toml").web.app_dir,
              fs::path("/srv/app"));
    const std::string msg = error_of("[web]\napp_dir = \"\"\n");
    EXPECT_NE(msg.find("t.toml:2: web.app_dir: expected a non-empty path"), std::string::npos)
        << msg;
}

TEST(ConfigWeb, PlainHttpOnlyOnLoopback) {
    for (const char* ok : {"127.0.0.1", "127.1.2.3", "::1", ""}) {
        const Config c =
            parse_config(std::string("[web]\nhttp_address = \"") + ok + "\"\n", "t.toml");
        EXPECT_EQ(c.web.http_address, ok);
    }
    for (const char* bad : {"0.0.0.0", "192.168.1.2", "::", "localhost", "128.0.0.1"}) {
        const std::string msg = error_of(std::string("[web]\nhttp_address = \"") + bad + "\"\n");
        EXPECT_NE(msg.find("t.toml:2: web.http_address: expected \"\" (no plain HTTP) or a "
                           "loopback address"),
                  std::string::npos)
            << msg;
    }
}

TEST(ConfigWeb, HttpsAddressMustBeAnIpLiteral) {
    EXPECT_EQ(parse_config("[web]\nhttps_address = \"::\"\n", "t.toml").web.https_address, "::");
    EXPECT_EQ(parse_config("[web]\nhttps_address = \"\"\n", "t.toml").web.https_address, "");
    const std::string msg = error_of("[web]\nhttps_address = \"pi.local\"\n");
    EXPECT_NE(msg.find("web.https_address: expected"), std::string::npos) << msg;
}

TEST(ConfigWeb, CertAndKeyComeTogetherAndResolveAgainstTheConfigFolder) {
    const std::string msg = error_of("[web]\ncert_file = \"c.pem\"\n");
    EXPECT_NE(msg.find("t.toml:2: web.cert_file and web.key_file: set both"), std::string::npos)
        << msg;
    const Config c = parse_config("[web]\ncert_file = \"c.pem\"\nkey_file = \"/k.pem\"\n",
                                  "/etc/bz/bluezscript.toml");
    EXPECT_EQ(c.web_cert_path(), fs::path("/etc/bz/c.pem"));
    EXPECT_EQ(c.web_key_path(), fs::path("/k.pem"));
}

TEST(ConfigWeb, PortsMustDiffer) {
    const std::string msg = error_of("[web]\nhttps_port = 9000\nhttp_port = 9000\n");
    EXPECT_NE(msg.find("web.http_port: expected a port other than web.https_port (9000)"),
              std::string::npos)
        << msg;
}

}  // namespace
}  // namespace bzs::config
