// SPDX-License-Identifier: GPL-3.0-or-later
#include "cli/admin.h"

#include <termios.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/config.h"
#include "core/crypto/password.h"
#include "core/crypto/tls_cert.h"
#include "core/protocol/pair_exchange.h"
#include "service/settings.h"
#include "service/state.h"

namespace bzs::cli {

namespace {

using nlohmann::json;

config::Config load(const Common& c) {
    return config::load_config(
        config::select_config_path(c.config_flag, std::getenv("BLUEZSCRIPT_CONFIG")));
}

/// Reads a line from the terminal with echo off (restored even on error).
std::string read_hidden(const std::string& prompt) {
    std::cerr << prompt << std::flush;
    termios old{};
    const bool tty = ::tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    std::string line;
    std::getline(std::cin, line);
    if (tty) {
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        std::cerr << '\n';
    }
    return line;
}

std::string url_host(const std::string& addr) {
    return addr.find(':') != std::string::npos ? "[" + addr + "]" : addr;
}

}  // namespace

int admin_passwd(const Common& c, const PasswdOptions& o) {
    try {
        const auto cfg = load(c);
        std::string pw;
        if (o.from_stdin) {
            std::getline(std::cin, pw);
        } else {
            if (::isatty(STDIN_FILENO) == 0) {
                std::cerr << "bluezscript: stdin is not a terminal; use --stdin to read the "
                             "password from it\n";
                return 2;
            }
            pw = read_hidden("New admin password: ");
            if (read_hidden("Again: ") != pw) {
                std::cerr << "bluezscript: the passwords differ; nothing changed\n";
                return 2;
            }
        }
        if (pw.size() < core::crypto::kMinPasswordLength) {
            std::cerr << "bluezscript: the password must be at least "
                      << core::crypto::kMinPasswordLength << " characters; nothing changed\n";
            return 2;
        }
        auto st = service::open_state(cfg);
        service::write_admin_password(*st, {core::crypto::hash_password(pw)});
        const auto ended = st->delete_all_sessions();
        std::cout << "Admin password set" << (ended > 0 ? "; every web session was signed out" : "")
                  << ".\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "bluezscript: " << e.what() << '\n';
        return 1;
    }
}

int status(const Common& c) {
    try {
        const auto cfg = load(c);
        auto st = service::open_state(cfg);
        // As the daemon last published it; absent or damaged: not known.
        const auto ble = service::read_ble_status(*st);
        std::string fingerprint;
        if (cfg.web.enabled && !cfg.web.https_address.empty()) {
            std::ifstream in(cfg.web_cert_path());
            if (in) {
                std::ostringstream s;
                s << in.rdbuf();
                try {
                    fingerprint = core::crypto::fingerprint_sha256(s.str());
                } catch (const core::crypto::TlsError&) {
                }
            }
        }
        std::vector<std::string> urls;
        if (cfg.web.enabled && !cfg.web.https_address.empty()) {
            urls.push_back("https://" + url_host(cfg.web.https_address) + ":" +
                           std::to_string(cfg.web.https_port) + "/");
        }
        if (cfg.web.enabled && !cfg.web.http_address.empty()) {
            urls.push_back("http://" + url_host(cfg.web.http_address) + ":" +
                           std::to_string(cfg.web.http_port) + "/");
        }
        std::size_t devices = 0;
        std::size_t pending = 0;
        for (const auto& d : st->list_devices(false)) {
            (d.pending() ? pending : devices) += 1;
        }
        // What a pairing link's pk is: lets the owner check a link by eye.
        const std::string pi_key =
            core::crypto::hex_encode(core::protocol::key_fingerprint(st->pi_public_key()));
        const bool has_password = service::read_admin_password(*st).set();
        if (c.json) {
            std::cout << json{{"pi_name", cfg.daemon.pi_name},
                              {"ble", ble ? service::ble_status_json(*ble) : json(nullptr)},
                              {"web_urls", urls},
                              {"cert_fingerprint_sha256",
                               fingerprint.empty() ? json(nullptr) : json(fingerprint)},
                              {"admin_password_set", has_password},
                              {"devices_active", devices},
                              {"devices_pending", pending},
                              {"pi_key_fingerprint_sha256", pi_key}}
                             .dump(2)
                      << '\n';
            return 0;
        }
        std::cout << "Pi:        " << cfg.daemon.pi_name << '\n'
                  << "BLE:       "
                  << (!ble ? std::string("unknown (the daemon has not reported yet)")
                      : ble->summary.empty() ? std::string("?")
                                             : ble->summary)
                  << '\n'
                  << "Devices:   " << devices << " active, " << pending
                  << " waiting for their phone (pending)\n"
                  << "Pi key:    SHA-256 " << pi_key << " (the pk of pairing links)\n"
                  << "Web UI:    ";
        if (urls.empty()) {
            std::cout << "off";
        }
        for (std::size_t i = 0; i < urls.size(); ++i) {
            std::cout << (i ? "  " : "") << urls[i];
        }
        std::cout << '\n';
        if (!fingerprint.empty()) {
            std::cout << "TLS certificate SHA-256: " << fingerprint << '\n';
        }
        if (cfg.web.enabled && !has_password) {
            std::cout << "No admin password yet: set one with `bluezscript admin passwd`.\n";
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "bluezscript: " << e.what() << '\n';
        return 1;
    }
}

}  // namespace bzs::cli
