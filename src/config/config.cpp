// SPDX-License-Identifier: GPL-3.0-or-later
#include "config/config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <utility>

#include <toml++/toml.h>

#include "config/toml_support.h"

namespace bzs::config {

namespace fs = std::filesystem;

namespace {

using detail::has_control_chars;
using detail::line_of;
using detail::type_phrase;
using Problems = detail::Problems;

// ---- The key table: the single list of accepted keys, used by the parser and by
// known_keys() (which the tests check against docs/configuration.md).

enum class Kind { Bool, Int, String, Path, Choice };

/// A parsed, already validated value handed to a key's setter.
struct Value {
    bool b = false;
    std::int64_t i = 0;  ///< Int: the number; Choice: the index into choices
    std::string s;
};
using Setter = void (*)(Config&, const Value&);

struct KeySpec {
    std::string_view section;
    std::string_view name;
    Kind kind = Kind::Bool;
    std::int64_t min = 0;                         ///< Int only
    std::int64_t max = 0;                         ///< Int only
    std::span<const std::string_view> choices{};  ///< Choice only
    bool (*valid)(std::string_view) = nullptr;    ///< String/Path content check
    std::string_view what{};                      ///< String/Path: a valid value, in words
    Setter set = nullptr;
};

constexpr std::size_t kMaxNameBytes = 64;

bool valid_path(std::string_view s) {
    return !s.empty() && !has_control_chars(s);
}

bool valid_name(std::string_view s) {
    return !s.empty() && s.size() <= kMaxNameBytes && !has_control_chars(s);
}

bool valid_optional_name(std::string_view s) {
    return s.empty() || valid_name(s);
}

bool valid_adapter(std::string_view s) {
    if (s.empty()) {
        return true;
    }
    if (!s.starts_with("hci") || s.size() < 4 || s.size() > 6) {
        return false;
    }
    return std::all_of(s.begin() + 3, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The app is reached with Web Bluetooth, which browsers only offer in a secure
// context: https, or plain http on the loopback host. The pairing query is appended
// after '#', so the URL must not carry a fragment of its own.
bool valid_app_url(std::string_view s) {
    if (s.empty()) {
        return true;
    }
    if (s.size() > 2048 || has_control_chars(s) ||
        s.find_first_of(" #") != std::string_view::npos) {
        return false;
    }
    std::string_view rest;
    if (s.starts_with("https://")) {
        rest = s.substr(8);
    } else if (s.starts_with("http://")) {
        rest = s.substr(7);
        const std::string_view host = rest.substr(0, rest.find_first_of("/?"));
        const bool loopback = host == "localhost" || host.starts_with("localhost:") ||
                              host == "127.0.0.1" || host.starts_with("127.0.0.1:") ||
                              host == "[::1]" || host.starts_with("[::1]:");
        if (!loopback) {
            return false;
        }
    } else {
        return false;
    }
    return !rest.empty() && rest.front() != '/' && rest.front() != '?';
}

// An IPv4 or IPv6 literal (no host names: the listener binds exactly this address).
bool is_ip_literal(std::string_view s) {
    if (s.empty() || s.size() > 45) {
        return false;
    }
    const std::string t(s);
    std::array<unsigned char, 16> buf{};
    return inet_pton(AF_INET, t.c_str(), buf.data()) == 1 ||
           inet_pton(AF_INET6, t.c_str(), buf.data()) == 1;
}

bool valid_https_address(std::string_view s) {
    return s.empty() || is_ip_literal(s);
}

// Plain HTTP carries the session cookie in clear text, so it is for this machine only.
bool valid_http_address(std::string_view s) {
    if (s.empty()) {
        return true;
    }
    if (s == "::1") {
        return true;
    }
    const std::string t(s);
    std::array<unsigned char, 4> v4{};
    return inet_pton(AF_INET, t.c_str(), v4.data()) == 1 && v4[0] == 127;
}

bool valid_optional_path(std::string_view s) {
    return !has_control_chars(s);
}

constexpr std::array<std::string_view, 4> kLogLevels = {"error", "warning", "info", "debug"};
constexpr std::array<std::string_view, 3> kHashes = {"SHA1", "SHA256", "SHA512"};

core::crypto::Hash hash_from_index(std::int64_t i) {
    switch (i) {
        case 1:
            return core::crypto::Hash::Sha256;
        case 2:
            return core::crypto::Hash::Sha512;
        default:
            return core::crypto::Hash::Sha1;
    }
}

LogLevel level_from_index(std::int64_t i) {
    switch (i) {
        case 0:
            return LogLevel::Error;
        case 1:
            return LogLevel::Warning;
        case 3:
            return LogLevel::Debug;
        default:
            return LogLevel::Info;
    }
}

// Integer setters narrow only after the range check, so the casts cannot truncate.
#define BZS_INT(sec, key, lo, hi, field, type)                                        \
    KeySpec {                                                                         \
        .section = (sec), .name = (key), .kind = Kind::Int, .min = (lo), .max = (hi), \
        .set = [](Config& c, const Value& v) { c.field = static_cast<type>(v.i); }    \
    }
#define BZS_BOOL(sec, key, field)                               \
    KeySpec {                                                   \
        .section = (sec), .name = (key), .kind = Kind::Bool,    \
        .set = [](Config& c, const Value& v) { c.field = v.b; } \
    }
#define BZS_STRING(sec, key, kind_, check, words, field)                                     \
    KeySpec {                                                                                \
        .section = (sec), .name = (key), .kind = (kind_), .valid = (check), .what = (words), \
        .set = [](Config& c, const Value& v) { c.field = v.s; }                              \
    }

const std::array kKeys = {
    // [daemon]
    BZS_STRING("daemon", "state_dir", Kind::Path, valid_path, "a non-empty path", daemon.state_dir),
    BZS_STRING("daemon", "actions_dir", Kind::Path, valid_path, "a non-empty path",
               daemon.actions_dir),
    BZS_STRING("daemon", "pi_name", Kind::String, valid_name,
               "a name of 1..64 bytes without control characters", daemon.pi_name),
    KeySpec{.section = "daemon",
            .name = "log_level",
            .kind = Kind::Choice,
            .choices = kLogLevels,
            .set = [](Config& c, const Value& v) { c.daemon.log_level = level_from_index(v.i); }},
    // [ble]
    BZS_BOOL("ble", "enabled", ble.enabled),
    BZS_STRING("ble", "adapter", Kind::String, valid_adapter,
               "\"\" (the first powered adapter) or an adapter name such as \"hci0\"", ble.adapter),
    BZS_STRING("ble", "local_name", Kind::String, valid_optional_name,
               "\"\" (use daemon.pi_name) or a name of 1..64 bytes without control characters",
               ble.local_name),
    BZS_BOOL("ble", "require_bonding", ble.require_bonding),
    BZS_INT("ble", "challenge_ttl_seconds", 5, 300, ble.challenge_ttl_seconds, std::int64_t),
    // [security]
    BZS_INT("security", "max_clock_skew_seconds", 30, 3600, security.max_clock_skew_seconds,
            std::int64_t),
    BZS_INT("security", "totp_window", 0, 2, security.totp_window, int),
    BZS_INT("security", "totp_digits", 6, 8, security.totp_digits, int),
    KeySpec{
        .section = "security",
        .name = "totp_algorithm",
        .kind = Kind::Choice,
        .choices = kHashes,
        .set = [](Config& c, const Value& v) { c.security.totp_algorithm = hash_from_index(v.i); }},
    BZS_INT("security", "totp_period_seconds", 15, 300, security.totp_period_seconds, int),
    BZS_BOOL("security", "require_challenge", security.require_challenge),
    BZS_INT("security", "max_clock_advance_seconds", 60, 315360000,
            security.max_clock_advance_seconds, std::int64_t),
    // [limits]
    BZS_INT("limits", "link_max_failures_per_minute", 1, 10000, limits.link_max_failures_per_minute,
            std::uint32_t),
    BZS_INT("limits", "global_max_failures_per_minute", 1, 100000,
            limits.global_max_failures_per_minute, std::uint32_t),
    BZS_INT("limits", "global_lockout_seconds", 1, 86400, limits.global_lockout_seconds,
            std::int64_t),
    // [actions]
    BZS_INT("actions", "default_timeout_seconds", 1, 3600, actions.default_timeout_seconds,
            std::int64_t),
    BZS_INT("actions", "default_output_limit_bytes", 0, 65536, actions.default_output_limit_bytes,
            std::size_t),
    BZS_INT("actions", "kill_grace_seconds", 0, 60, actions.kill_grace_seconds, std::int64_t),
    // [pairing]
    BZS_INT("pairing", "window_seconds", 30, 3600, pairing.window_seconds, std::int64_t),
    BZS_STRING("pairing", "app_url", Kind::String, valid_app_url,
               "\"\" (the Pi serves the app) or an https:// URL without a '#' fragment "
               "(http:// only for localhost)",
               pairing.app_url),
    // [web]
    BZS_BOOL("web", "enabled", web.enabled),
    BZS_STRING("web", "https_address", Kind::String, valid_https_address,
               "\"\" (no HTTPS) or an IPv4/IPv6 address such as \"0.0.0.0\"", web.https_address),
    BZS_INT("web", "https_port", 1, 65535, web.https_port, std::int64_t),
    BZS_STRING("web", "http_address", Kind::String, valid_http_address,
               "\"\" (no plain HTTP) or a loopback address (127.x.x.x or ::1)", web.http_address),
    BZS_INT("web", "http_port", 1, 65535, web.http_port, std::int64_t),
    BZS_STRING("web", "cert_file", Kind::String, valid_optional_path,
               "\"\" (self-signed) or a path without control characters", web.cert_file),
    BZS_STRING("web", "key_file", Kind::String, valid_optional_path,
               "\"\" (self-signed) or a path without control characters", web.key_file),
    BZS_INT("web", "session_idle_minutes", 1, 1440, web.session_idle_minutes, std::int64_t),
    BZS_INT("web", "session_absolute_hours", 1, 720, web.session_absolute_hours, std::int64_t),
    BZS_INT("web", "signin_max_attempts_per_15min", 1, 100, web.signin_max_attempts_per_15min,
            std::int64_t),
    BZS_STRING("web", "app_dir", Kind::Path, valid_path, "a non-empty path", web.app_dir),
};

#undef BZS_INT
#undef BZS_BOOL
#undef BZS_STRING

const KeySpec* find_key(std::string_view section, std::string_view name) {
    for (const auto& k : kKeys) {
        if (k.section == section && k.name == name) {
            return &k;
        }
    }
    return nullptr;
}

/// Section names in table order, without repeats.
std::vector<std::string_view> sections() {
    std::vector<std::string_view> out;
    for (const auto& k : kKeys) {
        if (std::find(out.begin(), out.end(), k.section) == out.end()) {
            out.push_back(k.section);
        }
    }
    return out;
}

std::string keys_of(std::string_view section) {
    std::string out;
    for (const auto& k : kKeys) {
        if (k.section != section) {
            continue;
        }
        if (!out.empty()) {
            out += ", ";
        }
        out += k.name;
    }
    return out;
}

// ---- Messages

/// A string value as shown in an error: quoted, escaped, and cut short.
std::string quote(std::string_view s) {
    constexpr std::size_t kMaxShown = 64;
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
        const auto u = static_cast<unsigned char>(s[i]);
        if (u < 0x20 || u == 0x7f) {
            static constexpr char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 0x0f];
        } else if (s[i] == '"' || s[i] == '\\') {
            out += '\\';
            out += s[i];
        } else {
            out += s[i];
        }
    }
    if (s.size() > kMaxShown) {
        out += "...";
    }
    out += '"';
    return out;
}

std::string expected_phrase(const KeySpec& k) {
    switch (k.kind) {
        case Kind::Bool:
            return "true or false";
        case Kind::Int:
            return "an integer in " + std::to_string(k.min) + ".." + std::to_string(k.max);
        case Kind::Choice: {
            std::string out = "one of ";
            for (std::size_t i = 0; i < k.choices.size(); ++i) {
                if (i > 0) {
                    out += ", ";
                }
                out += quote(k.choices[i]);
            }
            return out;
        }
        case Kind::String:
        case Kind::Path:
            return std::string(k.what);
    }
    return {};
}

/// Checks one value against its key's spec and stores it; false on a problem.
bool apply_value(const KeySpec& k, const toml::node& n, Config& cfg, Problems& problems) {
    const std::string path = std::string(k.section) + "." + std::string(k.name);
    const auto fail = [&](const std::string& got) {
        problems.add(line_of(n), path + ": expected " + expected_phrase(k) + ", got " + got);
        return false;
    };
    Value v;
    switch (k.kind) {
        case Kind::Bool: {
            const auto* b = n.as_boolean();
            if (b == nullptr) {
                return fail(type_phrase(n));
            }
            v.b = b->get();
            break;
        }
        case Kind::Int: {
            const auto* i = n.as_integer();
            if (i == nullptr) {
                return fail(type_phrase(n));
            }
            v.i = i->get();
            if (v.i < k.min || v.i > k.max) {
                return fail(std::to_string(v.i));
            }
            break;
        }
        case Kind::Choice: {
            const auto* s = n.as_string();
            if (s == nullptr) {
                return fail(type_phrase(n));
            }
            const auto it = std::find(k.choices.begin(), k.choices.end(), s->get());
            if (it == k.choices.end()) {
                return fail(quote(s->get()));
            }
            v.i = it - k.choices.begin();
            break;
        }
        case Kind::String:
        case Kind::Path: {
            const auto* s = n.as_string();
            if (s == nullptr) {
                return fail(type_phrase(n));
            }
            if (k.valid != nullptr && !k.valid(s->get())) {
                return fail(quote(s->get()));
            }
            v.s = s->get();
            break;
        }
    }
    k.set(cfg, v);
    return true;
}

/// Makes a configured path absolute against the config file's folder.
fs::path resolve(const fs::path& p, const fs::path& base) {
    fs::path out = p.is_absolute() ? p : base / p;
    out = out.lexically_normal();
    // "state/" and "state" name the same folder; keep one spelling.
    if (!out.has_filename() && out.has_relative_path()) {
        out = out.parent_path();
    }
    return out;
}

std::optional<std::string> machine_hostname() {
    std::array<char, HOST_NAME_MAX + 1> buf{};
    if (gethostname(buf.data(), buf.size() - 1) != 0) {
        return std::nullopt;
    }
    return std::string(buf.data());
}

void fill_pi_name(Config& cfg, const std::string& source) {
    if (!cfg.daemon.pi_name.empty()) {
        return;
    }
    const auto host = machine_hostname();
    if (!host) {
        throw ConfigError(source + ": daemon.pi_name is not set and the hostname cannot be read (" +
                          std::strerror(errno) + "); set daemon.pi_name");
    }
    if (!valid_name(*host)) {
        throw ConfigError(source + ": daemon.pi_name is not set and the hostname " + quote(*host) +
                          " is not a valid name; set daemon.pi_name");
    }
    cfg.daemon.pi_name = *host;
}

// Settings of earlier versions, with why they went: a clearer error than
// "unknown key" for a configuration file written for those versions.
const char* removed_key(std::string_view path) {
    static constexpr std::pair<std::string_view, const char*> kRemoved[] = {
        {"limits.device_max_failures", "paired devices are no longer locked out"},
        {"limits.device_lockout_seconds", "paired devices are no longer locked out"},
        {"limits.device_lockout_max_seconds", "paired devices are no longer locked out"},
        {"limits.global_max_attempts_per_minute",
         "only unauthenticated failures are limited now: see limits.link_max_failures_per_minute "
         "and limits.global_max_failures_per_minute"},
    };
    for (const auto& [name, why] : kRemoved) {
        if (name == path) {
            return why;
        }
    }
    return nullptr;
}

void check_cross_fields(const Config& cfg, const std::map<std::string, std::uint32_t>& lines,
                        Problems& problems) {
    const auto line = [&](const char* preferred, const char* other) -> std::uint32_t {
        if (auto it = lines.find(preferred); it != lines.end()) {
            return it->second;
        }
        if (auto it = lines.find(other); it != lines.end()) {
            return it->second;
        }
        return 0;
    };
    // Half a pair would silently fall back to the self-signed certificate.
    if (cfg.web.cert_file.empty() != cfg.web.key_file.empty()) {
        problems.add(line("web.cert_file", "web.key_file"),
                     "web.cert_file and web.key_file: set both (your own certificate) or neither "
                     "(a self-signed one in daemon.state_dir)");
    }
    if (cfg.web.enabled && !cfg.web.https_address.empty() && !cfg.web.http_address.empty() &&
        cfg.web.https_port == cfg.web.http_port) {
        problems.add(line("web.http_port", "web.https_port"),
                     "web.http_port: expected a port other than web.https_port (" +
                         std::to_string(cfg.web.https_port) + ")");
    }
}

Config parse_with_base(std::string_view text, const std::string& source, const fs::path& base) {
    toml::table root;
    try {
        root = toml::parse(text, source);
    } catch (const toml::parse_error& e) {
        std::string msg = source;
        const auto& where = e.source().begin;
        if (where.line > 0) {
            msg += ":" + std::to_string(where.line);
        }
        msg += ": TOML syntax error: " + std::string(e.description());
        if (where.column > 0) {
            msg += " (column " + std::to_string(where.column) + ")";
        }
        throw ConfigError(msg);
    }

    Config cfg;
    Problems problems(source);
    std::map<std::string, std::uint32_t> lines;  // "section.key" -> line, for cross checks
    const auto known_sections = sections();
    std::string section_list;
    for (const auto s : known_sections) {
        if (!section_list.empty()) {
            section_list += ", ";
        }
        section_list += "[" + std::string(s) + "]";
    }

    for (const auto& [key, node] : root) {
        const std::string_view section = key.str();
        const bool known = std::find(known_sections.begin(), known_sections.end(), section) !=
                           known_sections.end();
        if (!known) {
            if (node.is_table()) {
                problems.add(line_of(node), "unknown table [" + std::string(section) +
                                                "]; expected one of " + section_list);
            } else {
                problems.add(line_of(node), "unknown key " + std::string(section) +
                                                "; every setting belongs in one of " +
                                                section_list);
            }
            continue;
        }
        const toml::table* table = node.as_table();
        if (table == nullptr) {
            problems.add(line_of(node),
                         std::string(section) + ": expected a table, got " + type_phrase(node));
            continue;
        }
        for (const auto& [name, value] : *table) {
            const std::string path = std::string(section) + "." + std::string(name.str());
            const KeySpec* spec = find_key(section, name.str());
            if (const char* why = removed_key(path); spec == nullptr && why != nullptr) {
                problems.add(line_of(value),
                             path + ": this setting was removed (" + why + "); delete the line");
                continue;
            }
            if (spec == nullptr) {
                problems.add(line_of(value), "unknown key " + path + "; [" + std::string(section) +
                                                 "] accepts " + keys_of(section));
                continue;
            }
            if (apply_value(*spec, value, cfg, problems)) {
                lines[path] = line_of(value);
            }
        }
    }
    if (problems.empty()) {
        check_cross_fields(cfg, lines, problems);
    }
    if (!problems.empty()) {
        problems.raise();
    }

    cfg.daemon.state_dir = resolve(cfg.daemon.state_dir, base);
    cfg.daemon.actions_dir = resolve(cfg.daemon.actions_dir, base);
    if (!cfg.web.cert_file.empty()) {
        cfg.web.cert_file = resolve(cfg.web.cert_file, base);
    }
    if (!cfg.web.key_file.empty()) {
        cfg.web.key_file = resolve(cfg.web.key_file, base);
    }
    cfg.web.app_dir = resolve(cfg.web.app_dir, base);
    fill_pi_name(cfg, source);
    return cfg;
}

fs::path folder_of(const fs::path& file) {
    std::error_code ec;
    fs::path abs = file.empty() ? fs::current_path(ec) / "" : fs::absolute(file, ec);
    if (ec) {
        throw ConfigError(file.string() + ": cannot make the path absolute: " + ec.message());
    }
    return abs.lexically_normal().parent_path();
}

}  // namespace

std::string_view log_level_name(LogLevel level) {
    switch (level) {
        case LogLevel::Error:
            return "error";
        case LogLevel::Warning:
            return "warning";
        case LogLevel::Info:
            return "info";
        case LogLevel::Debug:
            return "debug";
    }
    return "info";
}

core::auth::Policy Config::policy() const {
    core::auth::Policy p;
    p.max_clock_skew_seconds = security.max_clock_skew_seconds;
    p.totp_window = security.totp_window;
    p.require_challenge = security.require_challenge;
    p.max_clock_advance_seconds = security.max_clock_advance_seconds;
    p.limits.link_max_failures_per_minute = limits.link_max_failures_per_minute;
    p.limits.global_max_failures_per_minute = limits.global_max_failures_per_minute;
    p.limits.global_lockout_seconds = limits.global_lockout_seconds;
    return p;
}

core::crypto::TotpParams Config::totp() const {
    core::crypto::TotpParams t;
    t.hash = security.totp_algorithm;
    t.digits = security.totp_digits;
    t.step_seconds = security.totp_period_seconds;
    t.window = security.totp_window;
    return t;
}

fs::path Config::db_path() const {
    return daemon.state_dir / "bluezscript.db";
}

fs::path Config::keyfile_path() const {
    return daemon.state_dir / "master.key";
}

fs::path Config::web_cert_path() const {
    return web.cert_file.empty() ? daemon.state_dir / "web-cert.pem" : web.cert_file;
}

fs::path Config::web_key_path() const {
    return web.key_file.empty() ? daemon.state_dir / "web-key.pem" : web.key_file;
}

const std::string& Config::advertised_name() const {
    return ble.local_name.empty() ? daemon.pi_name : ble.local_name;
}

Config load_config(const fs::path& path) {
    const std::string source = path.string();
    std::error_code ec;
    const auto st = fs::status(path, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) {
        throw ConfigError(source + ": cannot read the config file: " + ec.message());
    }
    if (!fs::exists(st)) {
        throw ConfigError(source + ": no such file (choose another with --config or " +
                          std::string(kConfigEnvVar) + ")");
    }
    if (fs::is_directory(st)) {
        throw ConfigError(source + ": is a directory, expected a TOML config file");
    }
    if (!fs::is_regular_file(st)) {
        throw ConfigError(source + ": is not a regular file, expected a TOML config file");
    }
    // A config file is a few kilobytes; refuse anything large instead of reading it.
    constexpr std::uintmax_t kMaxSize = std::uintmax_t{1024} * 1024;
    const auto size = fs::file_size(path, ec);
    if (ec) {
        throw ConfigError(source + ": cannot read the config file: " + ec.message());
    }
    if (size > kMaxSize) {
        throw ConfigError(source + ": is " + std::to_string(size) +
                          " bytes, larger than the 1 MiB a config file may be");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw ConfigError(source + ": cannot open the config file: " + std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        throw ConfigError(source + ": cannot read the config file: " + std::strerror(errno));
    }
    return parse_with_base(text.str(), source, folder_of(path));
}

Config parse_config(std::string_view toml_text, std::string_view source_name) {
    const std::string source(source_name);
    return parse_with_base(toml_text, source, folder_of(fs::path(source)));
}

Config default_config() {
    Config cfg;
    fill_pi_name(cfg, "default config");
    return cfg;
}

std::vector<std::string> known_keys() {
    std::vector<std::string> out;
    out.reserve(kKeys.size());
    for (const auto& k : kKeys) {
        out.push_back(std::string(k.section) + "." + std::string(k.name));
    }
    return out;
}

fs::path select_config_path(std::string_view flag_value, const char* env_value) {
    if (!flag_value.empty()) {
        return fs::path(flag_value);
    }
    if (env_value != nullptr && *env_value != '\0') {
        return fs::path(env_value);
    }
    return fs::path(kDefaultConfigPath);
}

}  // namespace bzs::config
