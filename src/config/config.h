// SPDX-License-Identifier: GPL-3.0-or-later
// The daemon and CLI configuration: one TOML file (docs/configuration.md), parsed
// strictly. Unknown tables and keys, wrong types and out-of-range values are errors
// rather than silently ignored, because a mistyped security setting must not fall
// back to a default without the owner noticing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "config/error.h"
#include "core/auth/verifier.h"
#include "core/crypto/crypto.h"
#include "util/log.h"

namespace bzs::config {

/// Where the installed daemon and CLI look when neither --config nor the
/// environment variable names a file.
inline constexpr std::string_view kDefaultConfigPath = "/etc/bluezscript/bluezscript.toml";
/// Environment variable naming the config file (overridden by --config).
inline constexpr std::string_view kConfigEnvVar = "BLUEZSCRIPT_CONFIG";

using util::LogLevel;
/// "error", "warning", "info", "debug".
std::string_view log_level_name(LogLevel level);

/// [daemon]
struct DaemonSection {
    std::filesystem::path state_dir = "/var/lib/bluezscript";
    std::filesystem::path actions_dir = "/etc/bluezscript/actions.d";
    std::string pi_name;  ///< the hostname when the key is absent (filled at load time)
    LogLevel log_level = LogLevel::Info;
    bool operator==(const DaemonSection&) const = default;
};

/// [ble]
struct BleSection {
    bool enabled = true;
    std::string adapter;     ///< "hciN"; empty = the first powered adapter
    std::string local_name;  ///< advertised name; empty = daemon.pi_name
    bool require_bonding = true;
    std::int64_t challenge_ttl_seconds = 30;
    bool operator==(const BleSection&) const = default;
};

/// [security]
struct SecuritySection {
    std::int64_t max_clock_skew_seconds = 300;
    int totp_window = 1;
    int totp_digits = 6;
    core::crypto::Hash totp_algorithm = core::crypto::Hash::Sha1;
    int totp_period_seconds = 30;
    bool require_challenge = true;
    std::int64_t max_clock_advance_seconds = 31'536'000;  ///< one year
    bool operator==(const SecuritySection&) const = default;
};

/// [limits]
struct LimitsSection {
    std::uint32_t link_max_failures_per_minute = 10;
    std::uint32_t global_max_failures_per_minute = 30;
    std::int64_t global_lockout_seconds = 60;
    bool operator==(const LimitsSection&) const = default;
};

/// [actions]: defaults for actions whose metadata does not set its own.
struct ActionsSection {
    std::int64_t default_timeout_seconds = 30;
    std::size_t default_output_limit_bytes = 4096;
    std::int64_t kill_grace_seconds = 2;
    bool operator==(const ActionsSection&) const = default;
};

/// [pairing]
struct PairingSection {
    std::int64_t window_seconds = 300;
    std::string app_url;  ///< empty = the Pi serves the app itself at /app/ (service/app_link.h)
    bool operator==(const PairingSection&) const = default;
};

/// [web]: the owner's web UI served by the daemon (docs/web.md).
struct WebSection {
    bool enabled = true;
    std::string https_address = "0.0.0.0";  ///< IP literal; empty = no HTTPS listener
    std::int64_t https_port = 8443;
    std::string http_address = "127.0.0.1";  ///< loopback literal only; empty = no plain HTTP
    std::int64_t http_port = 8080;
    std::filesystem::path cert_file;  ///< empty = self-signed in state_dir
    std::filesystem::path key_file;   ///< set together with cert_file
    std::int64_t session_idle_minutes = 30;
    std::int64_t session_absolute_hours = 12;
    std::int64_t signin_max_attempts_per_15min = 5;
    /// The built phone app (clients/web/dist) served at /app/; the .deb installs it here.
    std::filesystem::path app_dir = "/usr/share/bluezscript/app";
    bool operator==(const WebSection&) const = default;
};

/// The whole configuration. A default-constructed Config has an empty pi_name;
/// default_config(), parse_config() and load_config() always fill it in.
struct Config {
    DaemonSection daemon;
    BleSection ble;
    SecuritySection security;
    LimitsSection limits;
    ActionsSection actions;
    PairingSection pairing;
    WebSection web;

    /// The verifier's policy: [security] and [limits].
    [[nodiscard]] core::auth::Policy policy() const;
    /// TOTP parameters given to newly paired devices (and shown in pairing URIs).
    [[nodiscard]] core::crypto::TotpParams totp() const;
    /// state_dir/bluezscript.db
    [[nodiscard]] std::filesystem::path db_path() const;
    /// state_dir/master.key
    [[nodiscard]] std::filesystem::path keyfile_path() const;
    /// web.cert_file, or state_dir/web-cert.pem (the self-signed one).
    [[nodiscard]] std::filesystem::path web_cert_path() const;
    /// web.key_file, or state_dir/web-key.pem.
    [[nodiscard]] std::filesystem::path web_key_path() const;
    /// ble.local_name, or daemon.pi_name when that is empty.
    [[nodiscard]] const std::string& advertised_name() const;

    bool operator==(const Config&) const = default;
};

/// Reads and parses the file at `path`, which must exist. Relative state_dir and
/// actions_dir are resolved against the file's folder. Throws ConfigError naming the
/// file, line and key of every problem found.
Config load_config(const std::filesystem::path& path);

/// Parses TOML text. `source_name` is used in error messages and, as a path, to
/// resolve relative state_dir and actions_dir (against its folder, made absolute).
/// Throws ConfigError.
Config parse_config(std::string_view toml_text, std::string_view source_name);

/// The configuration an empty file gives (pi_name = this machine's hostname).
Config default_config();

/// Every key the parser accepts, as "section.key", in documentation order.
std::vector<std::string> known_keys();

/// The file to load: `flag_value` (from --config) if not empty, else `env_value`
/// (the BLUEZSCRIPT_CONFIG variable; may be null) if not empty, else the default.
std::filesystem::path select_config_path(std::string_view flag_value, const char* env_value);

}  // namespace bzs::config
