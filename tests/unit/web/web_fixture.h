// SPDX-License-Identifier: GPL-3.0-or-later
// A real web server on an ephemeral loopback port with a temporary state folder, an
// actions folder with one action, an injected clock and a captured log.
#pragma once

#include <httplib.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/crypto/password.h"
#include "service/state.h"
#include "test_support.h"
#include "web/server.h"

namespace bzs::web::test {

inline const std::string kPassword = "correct horse battery";

class WebFixture {
  public:
    /// `tweak` changes the configuration before the server starts.
    explicit WebFixture(bool https = false,
                        const std::function<void(config::Config&)>& tweak = {}) {
        cfg = config::default_config();
        cfg.daemon.state_dir = dir / "state";
        cfg.daemon.actions_dir = dir / "actions";
        cfg.web.https_address = https ? "127.0.0.1" : "";
        cfg.web.signin_max_attempts_per_15min = 3;
        cfg.web.app_dir = dir / "app";  // absent unless a test creates it
        if (tweak) tweak(cfg);
        std::filesystem::create_directories(cfg.daemon.actions_dir);
        std::filesystem::permissions(cfg.daemon.actions_dir, std::filesystem::perms(0700));
        bzs::test::write_file(cfg.daemon.actions_dir / "hello", "#!/bin/sh\necho hi\n", 0700);
        bzs::test::write_file(cfg.daemon.actions_dir / "hello.toml",
                              "description = \"Say <b>hello</b>\"\ntimeout = 10\n", 0600);
        store = service::open_state(cfg);
        // A cheap hash keeps the tests quick; verify reads the parameters from it.
        store->set_setting(kAdminPasswordSetting,
                           core::crypto::hash_password(kPassword, {1024, 8, 1}));
        if (https) {
            fingerprint = ensure_certificate(cfg, &cert_created);
        }
        ServerOptions o;
        o.cfg = cfg;
        o.open_store = [c = cfg] { return service::open_state(c); };
        o.clock = [this] { return now.load(); };
        o.log = [this](LogLevel, const std::string& m) {
            const std::lock_guard lock(log_mu);
            log_lines.push_back(m);
        };
        o.run_action = [this](const std::string& name) {
            const std::lock_guard lock(log_mu);
            runs.push_back(name);
            return RunNowResult{true, "started"};
        };
        o.on_device_revoked = [this] { ++revoked_calls; };
        o.http_port = 0;
        o.https_port = 0;
        server = std::make_unique<Server>(std::move(o));
        server->set_registry(std::make_shared<actions::Registry>(
            actions::Registry::load(cfg.daemon.actions_dir, cfg.actions)));
        server->start();
    }

    httplib::Client client() const {
        httplib::Client c("127.0.0.1", server->http_port());
        c.set_connection_timeout(5);
        c.set_read_timeout(20);
        return c;
    }

    std::string log_text() {
        const std::lock_guard lock(log_mu);
        std::string all;
        for (const auto& l : log_lines) all += l + "\n";
        return all;
    }

    /// Signs in through the form; returns the Cookie header value and the CSRF token.
    struct Session {
        std::string cookie;
        std::string csrf;
    };
    Session sign_in() {
        auto c = client();
        auto page = c.Get("/login");
        const auto login_cookie = cookie_value(page->get_header_value("Set-Cookie"));
        const auto token = login_cookie.substr(login_cookie.find('=') + 1);
        httplib::Headers h{{"Cookie", login_cookie}};
        auto res = c.Post("/login", h, httplib::Params{{"csrf", token}, {"password", kPassword}});
        Session s;
        if (!res || res->status != 303) return s;
        s.cookie = cookie_value(res->get_header_value("Set-Cookie"));
        auto sess = c.Get("/api/v1/session", {{"Cookie", s.cookie}});
        if (sess && sess->status == 200) {
            s.csrf = nlohmann::json::parse(sess->body)["csrf_token"].get<std::string>();
        }
        return s;
    }

    /// "name=value" from a Set-Cookie header.
    static std::string cookie_value(const std::string& set_cookie) {
        return set_cookie.substr(0, set_cookie.find(';'));
    }

    bzs::test::TempDir dir;
    config::Config cfg;
    std::unique_ptr<store::Store> store;
    std::atomic<std::int64_t> now{1'800'000'000};
    std::mutex log_mu;
    std::vector<std::string> log_lines;
    std::vector<std::string> runs;
    std::atomic<int> revoked_calls{0};  ///< ServerOptions::on_device_revoked calls
    std::string fingerprint;
    bool cert_created = false;
    std::unique_ptr<Server> server;  ///< last: stopped before what its hooks use
};

}  // namespace bzs::web::test
