// SPDX-License-Identifier: GPL-3.0-or-later
#include "cli/client.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "client/pairing_store.h"
#include "client/trigger.h"
#include "core/crypto/crypto.h"
#include "core/protocol/pairing_uri.h"
#include "loop/event_loop.h"
#include "service/time_text.h"
#include "util/clock.h"

namespace bzs::cli {

namespace {

using client::PairingStore;
using client::PairingStoreError;
using client::TriggerExit;

constexpr int kUsage = static_cast<int>(TriggerExit::Usage);

int usage_error(const std::string& message) {
    std::cerr << "bluezscript: " << message << '\n';
    return kUsage;
}

template <typename F>
int guarded(F&& f) {
    try {
        return f();
    } catch (const PairingStoreError& e) {
        return usage_error(e.what());
    } catch (const std::exception& e) {
        std::cerr << "bluezscript: " << e.what() << '\n';
        return 1;
    }
}

void wipe(std::string& s) {
    if (!s.empty()) {
        core::crypto::cleanse(s.data(), s.size());
    }
    s.clear();
}

std::string trim(const std::string& s) {
    std::size_t b = 0;
    std::size_t e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b])) != 0) {
        ++b;
    }
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])) != 0) {
        --e;
    }
    return s.substr(b, e - b);
}

std::string format_time(std::int64_t t) {
    return service::format_unix_time(t, service::TimeZone::Local, /*with_seconds=*/false);
}

bool valid_adapter(const std::string& a) {
    if (a.size() < 4 || a.rfind("hci", 0) != 0) {
        return false;
    }
    return std::all_of(a.begin() + 3, a.end(),
                       [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)) != 0; });
}

}  // namespace

int client_import(const ClientImportOptions& o) {
    return guarded([&] {
        std::string text = o.uri;
        if (text.empty() || text == "-") {
            // Reading the URI from stdin keeps the secret out of shell history.
            if (isatty(STDIN_FILENO) != 0) {
                std::cerr << "Paste the pairing URI and press Enter:\n";
            }
            std::getline(std::cin, text);
        }
        std::string uri = trim(text);
        wipe(text);
        if (uri.empty()) {
            return usage_error(
                "no pairing URI given (pass it as an argument, or - to read it "
                "from stdin)");
        }
        auto parsed = core::protocol::parse_pairing(uri);
        wipe(uri);
        if (!parsed.pairing) {
            return usage_error("not a valid pairing URI: " + parsed.error);
        }
        PairingStore store(PairingStore::default_root());
        const auto result = store.import(*parsed.pairing, o.name, o.force);
        const auto& c = result.pairing;
        std::cout << (result.replaced ? "Replaced" : "Imported") << " pairing '" << c.name
                  << "' for Pi '" << c.pairing.pi_name << "'";
        if (!c.pairing.device_name.empty()) {
            std::cout << " (this device: " << c.pairing.device_name << ")";
        }
        std::cout << "\n  file: " << c.file.string()
                  << "\n  It holds the device secret: keep it private (mode 0600), like an SSH "
                     "key.\n";
        return 0;
    });
}

int client_list(bool json) {
    return guarded([&] {
        PairingStore store(PairingStore::default_root());
        const auto all = store.list();
        if (json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& s : all) {
                nlohmann::json j{{"name", s.name},
                                 {"pi_name", s.pi_name},
                                 {"pi_id", s.pi_id_hex},
                                 {"device_id", s.device_id_hex},
                                 {"device_label", s.device_label},
                                 {"counter", s.counter},
                                 {"imported", s.imported},
                                 {"file", s.file.string()}};
                j["problem"] =
                    s.problem.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.problem);
                out.push_back(j);
            }
            std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
            return 0;
        }
        if (all.empty()) {
            std::cout << "No pairings. Import one with: bluezscript client import URI\n";
            return 0;
        }
        for (const auto& s : all) {
            if (!s.problem.empty() && s.pi_id_hex.empty()) {
                std::cout << s.name << "  (unusable: " << s.problem
                          << ")\n  file: " << s.file.string() << '\n';
                continue;
            }
            std::cout << s.name << "\n  Pi:       " << s.pi_name << " (id " << s.pi_id_hex
                      << ")\n  device:   "
                      << (s.device_label.empty() ? std::string("-") : s.device_label) << " (id "
                      << s.device_id_hex << ")\n  counter:  " << s.counter
                      << "\n  imported: " << format_time(s.imported)
                      << "\n  file:     " << s.file.string() << '\n';
            if (!s.problem.empty()) {
                std::cout << "  PROBLEM:  " << s.problem << '\n';
            }
        }
        return 0;
    });
}

int client_remove(const std::string& name) {
    return guarded([&] {
        PairingStore store(PairingStore::default_root());
        const auto s = store.remove(name);
        std::cout << "Removed pairing '" << s.name << "' (" << s.file.string() << ").\n"
                  << "The Pi still accepts this device until its owner runs `bluezscript pair "
                     "revoke` there.\n";
        return 0;
    });
}

int trigger(const TriggerCliOptions& o) {
    if (auto err = client::check_command(o.action, o.args); !err.empty()) {
        return usage_error(err);
    }
    if (!o.adapter.empty() && !valid_adapter(o.adapter)) {
        return usage_error("--adapter '" + o.adapter + "': expected hciN, e.g. hci0");
    }
    if (o.timeout < 1 || o.timeout > 3600) {
        return usage_error("--timeout must be 1..3600 seconds");
    }
    if (o.wait < 1 || o.wait > 86400) {
        return usage_error("--wait must be 1..86400 seconds");
    }
    try {
        PairingStore store(PairingStore::default_root());
        const client::ClientPairing pairing = store.find(o.pi);

        client::ExchangeRequest request{pairing.pairing, o.action, o.args};
        client::TriggerOptions options;
        options.adapter = o.adapter;
        options.scan_timeout = std::chrono::seconds(o.timeout);
        options.timing.response_timeout = std::chrono::seconds(o.wait);
        client::ExchangeHooks hooks;
        hooks.reserve_counter = [&store, &pairing] { return store.reserve_counter(pairing); };
        hooks.accepted = [&store, &pairing](std::int64_t step) {
            store.record_accepted_step(pairing, step);
        };
        hooks.clock = util::wall_clock_now;
        const bool quiet = o.quiet;
        hooks.notice = [quiet](const std::string& line) {
            if (!quiet) {
                std::cerr << "bluezscript: " << line << '\n';
            }
        };

        loop::EventLoop::block_signals({SIGINT, SIGTERM});
        loop::EventLoop loop;
        client::Trigger run(loop, std::move(request), options, hooks);
        auto on_signal = [&run](const signalfd_siginfo&) { run.cancel(); };
        loop::Source sigint = loop.add_signal(SIGINT, on_signal);
        loop::Source sigterm = loop.add_signal(SIGTERM, on_signal);
        run.start();
        loop.run_until([&run] { return run.done(); });

        const auto& out = run.outcome();
        if (!out.output.empty()) {
            std::cout << out.output << std::flush;
        }
        if (!out.message.empty()) {
            std::cerr << "bluezscript: " << out.message << '\n';
        }
        return static_cast<int>(out.exit);
    } catch (const PairingStoreError& e) {
        return usage_error(e.what());
    } catch (const std::exception& e) {
        std::cerr << "bluezscript: " << e.what() << '\n';
        return static_cast<int>(TriggerExit::Bluetooth);
    }
}

}  // namespace bzs::cli
