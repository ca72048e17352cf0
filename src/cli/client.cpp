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
#include "core/protocol/link.h"
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

namespace {

// Runs one exchange with the Pi of `request` on a loop of its own, SIGINT/SIGTERM
// cancelling it, and prints its messages (stderr) and clock note.
client::ExchangeOutcome run_exchange(client::ExchangeRequest request,
                                     const client::TriggerOptions& options,
                                     client::ExchangeHooks hooks, bool quiet) {
    hooks.clock = util::wall_clock_now;
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
    client::ExchangeOutcome out = run.outcome();
    if (!out.message.empty()) {
        std::cerr << "bluezscript: " << out.message << '\n';
    }
    if (!out.clock_note.empty()) {
        std::cerr << "bluezscript: note: " << out.clock_note << '\n';
    }
    return out;
}

// The common checks of --adapter and --timeout; an error sentence or "".
std::string check_find_options(const std::string& adapter, int timeout) {
    if (!adapter.empty() && !valid_adapter(adapter)) {
        return "--adapter '" + adapter + "': expected hciN, e.g. hci0";
    }
    if (timeout < 1 || timeout > 3600) {
        return "--timeout must be 1..3600 seconds";
    }
    return {};
}

// Text from the Pi for a terminal: control characters shown as '?'.
std::string printable(std::string_view s) {
    std::string out(s);
    for (auto& ch : out) {
        const auto u = static_cast<unsigned char>(ch);
        if (u < 0x20 || u == 0x7F) {
            ch = '?';
        }
    }
    return out;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v) {
        out += (out.empty() ? "" : sep) + s;
    }
    return out;
}

// What arguments an action takes, in words.
std::string arguments_rule(const core::protocol::CatalogueEntry& e) {
    using core::protocol::ArgKind;
    const std::string up_to = "up to " + std::to_string(e.max_args);
    switch (e.kind) {
        case ArgKind::None:
            return "none";
        case ArgKind::Free:
            return up_to + ", free text";
        case ArgKind::Pattern:
            return up_to + ", each matching " + printable(e.pattern);
        case ArgKind::Choices:
            return up_to + ", each one of " + printable(join(e.choices, "|"));
    }
    return "?";
}

const char* kind_name(core::protocol::ArgKind k) {
    using core::protocol::ArgKind;
    switch (k) {
        case ArgKind::None:
            return "none";
        case ArgKind::Free:
            return "free";
        case ArgKind::Pattern:
            return "pattern";
        case ArgKind::Choices:
            return "choices";
    }
    return "none";
}

}  // namespace

int client_pair(const ClientPairOptions& o) {
    if (auto err = check_find_options(o.adapter, o.timeout); !err.empty()) {
        return usage_error(err);
    }
    return guarded([&] {
        std::string text = o.link;
        if (text.empty() || text == "-") {
            // Reading the link from stdin keeps the code out of shell history.
            if (isatty(STDIN_FILENO) != 0) {
                std::cerr << "Paste the pairing link and press Enter:\n";
            }
            std::getline(std::cin, text);
        }
        std::string link_text = trim(text);
        wipe(text);
        if (link_text.empty()) {
            return usage_error(
                "no pairing link given (pass it as an argument, or - to read it from stdin)");
        }
        auto parsed = core::protocol::parse_link(link_text);
        wipe(link_text);
        if (!parsed.link) {
            // parse_link's errors name the field and never hold the code.
            return usage_error("not a valid pairing link: " + parsed.error);
        }
        PairingStore store(PairingStore::default_root());
        // Before the code is used: a pairing that could not be stored would waste it.
        store.check_new(parsed.link->pi_id, parsed.link->device_id, o.name);

        client::ExchangeRequest request;
        request.kind = client::ExchangeKind::Pair;
        request.link = std::move(parsed.link);
        client::TriggerOptions options;
        options.adapter = o.adapter;
        options.scan_timeout = std::chrono::seconds(o.timeout);
        options.timing.response_timeout = std::chrono::seconds(15);
        client::ExchangeHooks hooks;
        std::optional<client::ClientPairing> stored;
        hooks.store_pairing = [&](const client::Credential& c, std::uint64_t counter) {
            stored = store.add(c, o.name, counter);
        };
        const auto out = run_exchange(std::move(request), options, hooks, o.quiet);
        if (out.exit != TriggerExit::Ok || !stored) {
            return static_cast<int>(out.exit);
        }
        const auto& k = stored->credential;
        std::cout << "Paired with Pi '" << printable(k.pi_name) << "' as '" << stored->name << "'";
        if (!k.label.empty()) {
            std::cout << " (this device: " << printable(k.label) << ")";
        }
        std::cout << "\n  file: " << stored->file.string()
                  << "\n  It holds the device secret: keep it private (mode 0600), like an SSH "
                     "key.\n  Its actions: bluezscript client actions "
                  << stored->name << '\n';
        return 0;
    });
}

int client_actions(const ClientActionsOptions& o) {
    if (auto err = check_find_options(o.adapter, o.timeout); !err.empty()) {
        return usage_error(err);
    }
    return guarded([&] {
        PairingStore store(PairingStore::default_root());
        const client::ClientPairing pairing = store.find(o.pi);
        client::ExchangeRequest request;
        request.kind = client::ExchangeKind::Catalogue;
        request.credential = pairing.credential;
        client::TriggerOptions options;
        options.adapter = o.adapter;
        options.scan_timeout = std::chrono::seconds(o.timeout);
        options.timing.response_timeout = std::chrono::seconds(15);
        client::ExchangeHooks hooks;
        hooks.reserve_counter = [&store, &pairing] { return store.reserve_counter(pairing); };
        const auto out = run_exchange(std::move(request), options, hooks, o.quiet);
        if (out.exit != TriggerExit::Ok) {
            return static_cast<int>(out.exit);
        }
        if (o.json) {
            nlohmann::json arr = nlohmann::json::array();
            for (const auto& e : out.catalogue) {
                nlohmann::json args{{"kind", kind_name(e.kind)}, {"max", e.max_args}};
                if (e.kind == core::protocol::ArgKind::Pattern) {
                    args["pattern"] = e.pattern;
                }
                if (e.kind == core::protocol::ArgKind::Choices) {
                    args["choices"] = e.choices;
                }
                arr.push_back({{"name", e.name},
                               {"description", e.description},
                               {"confirm", e.confirm},
                               {"arguments", args}});
            }
            std::cout << arr.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
            return 0;
        }
        if (out.catalogue.empty()) {
            std::cout << "This device may run no action on Pi '"
                      << printable(pairing.credential.pi_name)
                      << "' (its owner allows them: bluezscript pair allow).\n";
            return 0;
        }
        std::size_t w_name = 4;
        std::size_t w_args = 9;
        for (const auto& e : out.catalogue) {
            w_name = std::max(w_name, e.name.size());
            w_args = std::max(w_args, arguments_rule(e).size());
        }
        auto pad = [](std::string s, std::size_t w) {
            s.resize(std::max(w, s.size()), ' ');
            return s;
        };
        std::cout << pad("NAME", w_name) << "  " << pad("CONFIRM", 7) << "  "
                  << pad("ARGUMENTS", w_args) << "  DESCRIPTION\n";
        for (const auto& e : out.catalogue) {
            std::cout << pad(e.name, w_name) << "  " << pad(e.confirm ? "yes" : "no", 7) << "  "
                      << pad(arguments_rule(e), w_args) << "  " << printable(e.description) << '\n';
        }
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
                                 {"paired", s.paired},
                                 {"file", s.file.string()}};
                j["problem"] =
                    s.problem.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.problem);
                out.push_back(j);
            }
            std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
            return 0;
        }
        if (all.empty()) {
            std::cout << "No pairings. Pair with a Pi with: bluezscript client pair LINK\n";
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
                      << "\n  paired:   " << format_time(s.paired)
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
    if (auto err = check_find_options(o.adapter, o.timeout); !err.empty()) {
        return usage_error(err);
    }
    if (o.wait < 1 || o.wait > 86400) {
        return usage_error("--wait must be 1..86400 seconds");
    }
    try {
        PairingStore store(PairingStore::default_root());
        const client::ClientPairing pairing = store.find(o.pi);

        client::ExchangeRequest request;
        request.kind = client::ExchangeKind::Command;
        request.credential = pairing.credential;
        request.action = o.action;
        request.args = o.args;
        client::TriggerOptions options;
        options.adapter = o.adapter;
        options.scan_timeout = std::chrono::seconds(o.timeout);
        options.timing.response_timeout = std::chrono::seconds(o.wait);
        client::ExchangeHooks hooks;
        hooks.reserve_counter = [&store, &pairing] { return store.reserve_counter(pairing); };
        // The action's output goes to stdout before any message on stderr.
        const auto out = run_exchange(std::move(request), options, hooks, o.quiet);
        if (!out.output.empty()) {
            std::cout << out.output << std::flush;
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
