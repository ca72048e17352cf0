// SPDX-License-Identifier: GPL-3.0-or-later
#include "cli/owner.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "actions/registry.h"
#include "actions/runner.h"
#include "config/config.h"
#include "qr/qr.h"
#include "service/json_views.h"
#include "service/owner.h"
#include "service/state.h"
#include "service/time_text.h"
#include "util/clock.h"

namespace bzs::cli {

namespace {

using nlohmann::json;

/// Thrown for mistakes in what the owner typed; printed without a stack of detail.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

config::Config load(const Common& c) {
    return config::load_config(
        config::select_config_path(c.config_flag, std::getenv("BLUEZSCRIPT_CONFIG")));
}

std::string format_time(std::optional<std::int64_t> t) {
    return service::format_unix_time(t, service::TimeZone::Local);
}

std::string join(const std::vector<std::string>& v, const char* sep = ",") {
    std::string s;
    for (const auto& x : v) {
        if (!s.empty()) {
            s += sep;
        }
        s += x;
    }
    return s;
}

store::DeviceInfo must_find(store::Store& st, const std::string& device) {
    auto d = st.find_device(device);
    if (!d) {
        throw UsageError("no device named or with id '" + device +
                         "' (see: bluezscript pair list)");
    }
    return *d;
}

actions::Registry load_actions(const config::Config& cfg) {
    return actions::Registry::load(cfg.daemon.actions_dir, cfg.actions);
}

/// Prints the owner service's refusal as it words it. A mistake in what was typed
/// (an unknown action, arguments) exits 2 like other usage errors; the rest 1.
int refused(const service::Refused& r) {
    std::cerr << "bluezscript: " << r.message << '\n';
    return r.kind == service::Refusal::UnknownAction || r.kind == service::Refusal::BadArguments
               ? 2
               : 1;
}

// Parses --since: an ISO date/time (UTC) or a duration ago like 30m, 2h, 7d.
std::int64_t parse_since(const std::string& s, std::int64_t now) {
    if (!s.empty() && std::isdigit(static_cast<unsigned char>(s[0])) != 0 &&
        std::string("smhd").find(s.back()) != std::string::npos &&
        s.find('-') == std::string::npos) {
        std::int64_t n = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size() - 1, n);
        if (ec == std::errc() && p == s.data() + s.size() - 1) {
            const std::int64_t unit = s.back() == 's'   ? 1
                                      : s.back() == 'm' ? 60
                                      : s.back() == 'h' ? 3600
                                                        : 86400;
            return now - n * unit;
        }
    }
    std::tm tm{};
    const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == nullptr || *end != '\0') {
        tm = {};
        end = strptime(s.c_str(), "%Y-%m-%d", &tm);
    }
    if (end == nullptr || *end != '\0') {
        throw UsageError("--since '" + s +
                         "': expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS (UTC) or 30m/2h/7d");
    }
    return timegm(&tm);
}

template <typename F>
int guarded(F&& f) {
    try {
        return f();
    } catch (const UsageError& e) {
        std::cerr << "bluezscript: " << e.what() << '\n';
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "bluezscript: " << e.what() << '\n';
        return 1;
    }
}

}  // namespace

namespace {

/// "14:05" in local time (the owner's terminal), or the full text if out of range.
std::string clock_time(std::int64_t t) {
    const std::string full = service::format_unix_time(t, service::TimeZone::Local, false);
    return full.size() == 16 ? full.substr(11) : full;
}

/// What `pair add` and `pair code` print: the links, a QR code and when the code ends.
int print_pairing(const Common& c, const PairAddOptions& o, const service::Paired& p,
                  std::int64_t now) {
    if (c.json) {
        json j{{"device", service::device_json(p.device)},
               {"uri", p.uri},
               {"code_expires", p.code_expires}};
        if (!p.app_uri.empty()) {
            j["app_uri"] = p.app_uri;
        }
        std::cout << j.dump(2) << '\n';
        return 0;
    }
    std::cout << "Device '" << p.device.name << "' (id " << p.device.id_hex
              << ") is waiting for its phone to pair.\n"
              << "Allowed actions: "
              << (p.device.actions.empty() ? "(none)" : join(p.device.actions, ", ")) << "\n\n";
    if (!o.no_qr) {
        const bool ansi = !o.ascii_qr && ::isatty(STDOUT_FILENO) != 0;
        std::cout << qr::to_terminal(qr::encode(p.qr_link()), ansi) << '\n';
    }
    std::cout << "Pairing link (holds a one-time code):\n" << p.uri << "\n";
    if (!p.app_uri.empty()) {
        std::cout << "App link (open it on the phone):\n" << p.app_uri << "\n";
    }
    const std::int64_t minutes = (std::max<std::int64_t>(p.code_expires - now, 0) + 59) / 60;
    std::cout << "\nThe code expires at " << clock_time(p.code_expires) << " (in " << minutes
              << " min); it works once. The BLE pairing window is open until then: bond the "
                 "phone now.\n";
    return 0;
}

}  // namespace

int pair_add(const Common& c, const PairAddOptions& o) {
    return guarded([&] {
        const auto cfg = load(c);
        const auto reg = load_actions(cfg);
        auto st = service::open_state(cfg);
        // Creates the pending device and opens the BLE pairing window
        // (service/owner.h); the links are the ones the web UI shows too.
        const std::int64_t now = util::wall_clock_now();
        auto paired = service::Owner(*st, cfg, {[now] { return now; }, {}, {}})
                          .pair(service::Origin::Cli, reg, o.name, o.actions);
        if (!paired) {
            return refused(paired.refused());
        }
        return print_pairing(c, o, *paired, now);
    });
}

int pair_code(const Common& c, const PairAddOptions& o) {
    return guarded([&] {
        const auto cfg = load(c);
        auto st = service::open_state(cfg);
        const auto d = must_find(*st, o.name);
        const std::int64_t now = util::wall_clock_now();
        auto paired = service::Owner(*st, cfg, {[now] { return now; }, {}, {}})
                          .new_code(service::Origin::Cli, d);
        if (!paired) {
            return refused(paired.refused());
        }
        return print_pairing(c, o, *paired, now);
    });
}

/// The STATUS column of `pair list`.
std::string list_state(const store::DeviceInfo& d, std::int64_t now) {
    if (d.state() != store::DeviceState::Pending) {
        return store::device_state_name(d.state());
    }
    if (d.code_expires && *d.code_expires > now) {
        return "pending (code expires " + clock_time(*d.code_expires) + ")";
    }
    return "pending (code expired)";
}

int pair_list(const Common& c, bool include_revoked) {
    return guarded([&] {
        const auto cfg = load(c);
        auto st = service::open_state(cfg);
        const auto devices = st->list_devices(include_revoked);
        if (c.json) {
            json arr = json::array();
            for (const auto& d : devices) {
                arr.push_back(service::device_json(d));
            }
            std::cout << arr.dump(2) << '\n';
            return 0;
        }
        if (devices.empty()) {
            std::cout
                << "No paired devices. Pair one with: bluezscript pair add NAME --actions ACTION\n";
            return 0;
        }
        const std::int64_t now = util::wall_clock_now();
        std::printf("%-12s %-20s %-19s %-19s %-17s %-29s %s\n", "ID", "NAME", "ADDED", "LAST USED",
                    "BLE ADDRESS", "STATUS", "ACTIONS");
        for (const auto& d : devices) {
            std::printf("%-12s %-20s %-19s %-19s %-17s %-29s %s\n", d.id_hex.substr(0, 12).c_str(),
                        d.name.c_str(), format_time(d.created).c_str(),
                        format_time(d.last_used).c_str(), d.ble_address.value_or("-").c_str(),
                        list_state(d, now).c_str(), join(d.actions).c_str());
        }
        return 0;
    });
}

int pair_revoke(const Common& c, const std::string& device) {
    return guarded([&] {
        const auto cfg = load(c);
        auto st = service::open_state(cfg);
        const auto d = must_find(*st, device);
        if (const auto r = service::Owner(*st, cfg).revoke(service::Origin::Cli, d); !r) {
            return refused(r.refused());
        }
        std::cout << "Revoked '" << d.name << "' (id " << d.id_hex
                  << "); its commands are refused from now on.\n";
        // The CLI only writes the database; bluezscriptd finds the revocation.
        if (d.ble_address) {
            std::cout << "bluezscriptd removes its BLE bond (" << *d.ble_address
                      << ") at its next check (within 30 s, or now: systemctl reload "
                         "bluezscriptd).\n";
        } else {
            std::cout << "Its BLE address is not known (it never sent an accepted command), so "
                         "bluezscriptd cannot remove its BLE bond; remove it with bluetoothctl "
                         "if it has one.\n";
        }
        return 0;
    });
}

int pair_rename(const Common& c, const std::string& device, const std::string& new_name) {
    return guarded([&] {
        const auto cfg = load(c);
        auto st = service::open_state(cfg);
        const auto d = must_find(*st, device);
        if (const auto r = service::Owner(*st, cfg).rename(service::Origin::Cli, d, new_name); !r) {
            return refused(r.refused());
        }
        std::cout << "Renamed '" << d.name << "' to '" << new_name << "'.\n";
        return 0;
    });
}

int pair_allow(const Common& c, const std::string& device, const std::vector<std::string>& actions,
               bool allow) {
    return guarded([&] {
        const auto cfg = load(c);
        const auto reg = load_actions(cfg);
        auto st = service::open_state(cfg);
        const auto d = must_find(*st, device);
        service::Owner owner(*st, cfg);
        const auto after = allow ? owner.allow(service::Origin::Cli, reg, d, actions)
                                 : owner.deny(service::Origin::Cli, reg, d, actions);
        if (!after) {
            return refused(after.refused());
        }
        std::cout << "'" << after->name << "' may now run: "
                  << (after->actions.empty() ? "(nothing)" : join(after->actions, ", ")) << '\n';
        return 0;
    });
}

int actions_list(const Common& c) {
    return guarded([&] {
        const auto cfg = load(c);
        const auto reg = actions::Registry::load(cfg.daemon.actions_dir, cfg.actions);
        if (c.json) {
            json arr = json::array();
            for (const auto& a : reg.list()) {
                json j{{"name", a.name},
                       {"description", a.description},
                       {"timeout", a.timeout.count()},
                       {"output_limit", a.output_limit},
                       {"allow_args", a.allow_args},
                       {"concurrent", a.concurrent}};
                j["arg_pattern"] = a.arg_pattern ? json(*a.arg_pattern) : json(nullptr);
                arr.push_back(j);
            }
            json problems = json::array();
            for (const auto& p : reg.problems()) {
                problems.push_back({{"file", p.file},
                                    {"kind", actions::problem_kind_name(p.kind)},
                                    {"reason", p.reason}});
            }
            std::cout << json{{"actions", arr}, {"problems", problems}}.dump(2) << '\n';
            return 0;
        }
        std::cout << "Actions in " << cfg.daemon.actions_dir.string() << ":\n";
        if (reg.list().empty()) {
            std::cout << "  (none)\n";
        }
        for (const auto& a : reg.list()) {
            std::printf("  %-20s %4llds  %s%s\n", a.name.c_str(),
                        static_cast<long long>(a.timeout.count()),
                        a.description.empty() ? "(no description)" : a.description.c_str(),
                        a.allow_args ? "  [takes arguments]" : "");
        }
        for (const auto& p : reg.problems()) {
            std::cerr << "  " << actions::problem_kind_name(p.kind) << ": " << p.file << ": "
                      << p.reason << '\n';
        }
        return 0;
    });
}

int actions_run(const Common& c, const std::string& name, const std::vector<std::string>& args) {
    return guarded([&] {
        const auto cfg = load(c);
        const auto reg = load_actions(cfg);
        // Refused before the state is opened: a typo leaves no trace.
        const auto action = service::Owner::check_run(reg, name, args);
        if (!action) {
            return refused(action.refused());
        }
        auto st = service::open_state(cfg);
        actions::RunnerOptions ro;
        ro.kill_grace = std::chrono::seconds(cfg.actions.kill_grace_seconds);
        const auto run =
            service::Owner(*st, cfg).run_blocking(service::Origin::Cli, reg, name, args, ro);
        if (!run) {
            return refused(run.refused());
        }
        const auto& result = *run;
        const auto status = actions::to_protocol_status(result.status);
        std::cout << result.output;
        if (!result.output.empty() && result.output.back() != '\n') {
            std::cout << '\n';
        }
        if (result.truncated) {
            std::cerr << "bluezscript: output truncated at " << (*action)->output_limit
                      << " bytes\n";
        }
        if (status != core::protocol::Status::Ok) {
            std::cerr << "bluezscript: " << name << ": " << core::protocol::status_message(status)
                      << " (exit " << result.exit_code << ")"
                      << (result.error.empty() ? "" : ": " + result.error) << '\n';
            return 1;
        }
        return 0;
    });
}

int show_log(const Common& c, const LogOptions& o) {
    return guarded([&] {
        const auto cfg = load(c);
        auto st = service::open_state(cfg);
        if (o.limit < 1 || o.page < 1) {
            throw UsageError("--limit and --page must be at least 1");
        }
        store::AuditFilter f;
        f.device = o.device;
        f.accepted = o.accepted;
        f.status = o.status;
        if (o.since) {
            f.since = parse_since(*o.since, util::wall_clock_now());
        }
        f.limit = o.limit;
        f.offset = (o.page - 1) * o.limit;
        const auto rows = st->audit(f);
        if (c.json) {
            json arr = json::array();
            for (const auto& r : rows) {
                arr.push_back(service::audit_json(r));
            }
            std::cout << arr.dump(2) << '\n';
            return 0;
        }
        if (rows.empty()) {
            std::cout << "No audit entries match.\n";
            return 0;
        }
        std::printf("%-19s %-16s %-14s %-5s %-20s %s\n", "TIME", "DEVICE", "ACTION", "VIA",
                    "RESULT", "DETAIL");
        for (const auto& r : rows) {
            const std::string dev = r.device_name     ? *r.device_name
                                    : r.device_id_hex ? r.device_id_hex->substr(0, 12)
                                                      : "-";
            std::printf("%-19s %-16s %-14s %-5s %-20s %s\n", format_time(r.time).c_str(),
                        dev.c_str(), r.action.empty() ? "-" : r.action.c_str(), r.transport.c_str(),
                        (r.completed ? r.status : r.status + " (running)").c_str(),
                        r.detail.c_str());
        }
        return 0;
    });
}

int keys_rotate(const Common& c) {
    return guarded([&] {
        const auto cfg = load(c);
        auto st = service::open_state(cfg);
        const auto old_id = st->keys().current_id();
        const auto new_id = store::rotate_keyfile(
            cfg.keyfile_path(), [&](const store::KeyRing& next) { st->reencrypt_all(next); });
        st->audit_event("cli", std::nullopt, "", core::protocol::Status::Ok,
                        "master key rotated from id " + std::to_string(old_id) + " to id " +
                            std::to_string(new_id),
                        util::wall_clock_now());
        std::cout << "Master key rotated (id " << old_id << " -> " << new_id
                  << "); every device secret is re-encrypted and the old key is deleted.\n";
        return 0;
    });
}

}  // namespace bzs::cli
