// SPDX-License-Identifier: GPL-3.0-or-later
#include "web/server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "core/crypto/crypto.h"
#include "core/crypto/password.h"
#include "core/protocol/link.h"
#include "qr/qr.h"
#include "service/app_link.h"
#include "service/json_views.h"
#include "service/owner.h"
#include "service/settings.h"
#include "util/clock.h"
#include "web/assets.h"
#include "web/html.h"

namespace bzs::web {

namespace {

using nlohmann::json;
using service::audit_json;
using service::device_json;

constexpr const char* kSessionCookie = "bzs_session";
constexpr const char* kLoginCookie = "bzs_login";
constexpr std::int64_t kSigninWindow = std::int64_t{15} * 60;
constexpr std::int64_t kAuditPageSize = 25;
constexpr const char* kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
// The phone app (/app/): its own scripts and service worker, camera frames for QR
// scanning (blob:/mediastream:), nothing from any other origin.
constexpr const char* kAppCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; worker-src 'self'; "
    "manifest-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'";
constexpr std::uintmax_t kMaxAppFile = 8U << 20U;

std::string random_token() {
    return core::crypto::base64url_encode(core::crypto::random_bytes(32));
}

std::string token_hash(const std::string& token) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(token.data());
    return core::crypto::hex_encode(core::crypto::sha256(core::crypto::ByteView(p, token.size())));
}

bool same_secret(const std::string& a, const std::string& b) {
    return a.size() == b.size() &&
           core::crypto::ct_equal(
               core::crypto::ByteView(reinterpret_cast<const std::uint8_t*>(a.data()), a.size()),
               core::crypto::ByteView(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));
}

std::optional<std::string> cookie(const httplib::Request& req, const std::string& name) {
    const std::string all = req.get_header_value("Cookie");
    std::size_t pos = 0;
    while (pos < all.size()) {
        auto end = all.find(';', pos);
        if (end == std::string::npos) {
            end = all.size();
        }
        std::string item = all.substr(pos, end - pos);
        const auto first = item.find_first_not_of(' ');
        item = first == std::string::npos ? "" : item.substr(first);
        const auto eq = item.find('=');
        if (eq != std::string::npos && item.substr(0, eq) == name) {
            return item.substr(eq + 1);
        }
        pos = end + 1;
    }
    return std::nullopt;
}

void security_headers(httplib::Response& res) {
    // httplib's set_header adds a copy; this runs for handlers and again for error
    // pages, so replace rather than add.
    const auto put = [&res](const char* name, const char* value) {
        res.headers.erase(name);
        res.set_header(name, value);
    };
    put("Content-Security-Policy", kCsp);
    put("X-Frame-Options", "DENY");
    put("Referrer-Policy", "no-referrer");
    put("X-Content-Type-Options", "nosniff");
    put("Cross-Origin-Opener-Policy", "same-origin");
    if (!res.has_header("Cache-Control")) {
        res.set_header("Cache-Control", "no-store");
    }
}

/// "active", "revoked", "pending (code expires 14:05 UTC)" or "pending (code expired)".
std::string device_status(const store::DeviceInfo& d, std::int64_t now) {
    if (!d.pending()) {
        return store::device_state_name(d.state());
    }
    if (d.code_expires && *d.code_expires > now) {
        const std::string t = format_time(*d.code_expires);  // "YYYY-MM-DD HH:MM:SS UTC"
        return "pending (code expires " + (t.size() == 23 ? t.substr(11, 5) + " UTC" : t) + ")";
    }
    return "pending (code expired)";
}

/// "m:ss".
std::string minutes_seconds(std::int64_t s) {
    s = std::max<std::int64_t>(s, 0);
    const std::int64_t sec = s % 60;
    return std::to_string(s / 60) + ":" + (sec < 10 ? "0" : "") + std::to_string(sec);
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
    std::string out;
    for (const auto& x : v) {
        if (!out.empty()) {
            out += sep;
        }
        out += x;
    }
    return out;
}

/// A mistake in what the owner asked for: shown to them with this status.
struct UserError : std::runtime_error {
    int status;
    UserError(int s, const std::string& m) : std::runtime_error(m), status(s) {}
};

/// The owner service's refusal as the answer to a request: its message as it is,
/// with `status`, or by default 409 for a state conflict and 400 otherwise.
[[noreturn]] void refuse(const service::Refused& r, int status = 0) {
    if (status == 0) {
        status = r.kind == service::Refusal::AlreadyRevoked ||
                         r.kind == service::Refusal::NotStarted ||
                         r.kind == service::Refusal::AlreadyPaired
                     ? 409
                     : 400;
    }
    throw UserError(status, r.message);
}

// Fixed flash messages: the redirect names one, so no request text is reflected.
const std::map<std::string, std::string>& flash_texts() {
    static const std::map<std::string, std::string> m = {
        {"renamed", "Device renamed."},
        {"permissions", "Permissions saved."},
        {"revoked", "Device revoked: its commands are refused from now on."},
        {"run-started", "Action started; its result will appear in the audit log."},
    };
    return m;
}

}  // namespace

// ---------------------------------------------------------------------------

struct Server::Impl {
    ServerOptions o;
    std::mutex mu;  // guards registry, ble, pool
    std::shared_ptr<const actions::Registry> registry = std::make_shared<actions::Registry>();
    BleSnapshot ble;
    std::vector<std::unique_ptr<store::Store>> pool;

    std::unique_ptr<httplib::Server> http;
    std::unique_ptr<httplib::Server> https;
    std::thread http_thread;
    std::thread https_thread;
    int http_bound = 0;
    int https_bound = 0;
    bool running = false;

    explicit Impl(ServerOptions opts) : o(std::move(opts)) {
        if (!o.clock) {
            o.clock = util::wall_clock_now;
        }
        if (!o.log) {
            o.log = [](LogLevel, const std::string&) {};
        }
        if (!o.open_store) {
            throw WebError("web server: no store factory");
        }
    }

    // --- shared state ---
    std::shared_ptr<const actions::Registry> actions_snapshot() {
        const std::lock_guard lock(mu);
        return registry;
    }
    BleSnapshot ble_snapshot() {
        const std::lock_guard lock(mu);
        return ble;
    }

    /// A store connection for the current request, returned to the pool afterwards.
    class Lease {
      public:
        Lease(Impl& impl) : impl_(impl) {
            {
                const std::lock_guard lock(impl_.mu);
                if (!impl_.pool.empty()) {
                    st_ = std::move(impl_.pool.back());
                    impl_.pool.pop_back();
                }
            }
            if (!st_) {
                st_ = impl_.o.open_store();
            }
        }
        ~Lease() {
            const std::lock_guard lock(impl_.mu);
            impl_.pool.push_back(std::move(st_));
        }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        store::Store& operator*() { return *st_; }

      private:
        Impl& impl_;
        std::unique_ptr<store::Store> st_;
    };

    struct Ctx {
        const httplib::Request& req;
        httplib::Response& res;
        store::Store& st;
        std::optional<store::WebSession> session;
        bool https = false;
        std::int64_t now = 0;
        [[nodiscard]] std::string csrf() const { return session ? session->csrf : ""; }
    };
    using Handler = void (Impl::*)(Ctx&);
    struct RouteDef {
        const char* method;
        const char* pattern;
        const char* example;
        Access access;
        Handler fn;
    };
    static const std::vector<RouteDef>& table();

    void install(httplib::Server& svr, bool is_https);
    void dispatch(const RouteDef& r, const httplib::Request& req, httplib::Response& res,
                  bool is_https);

    // --- helpers ---
    PageFrame frame(const Ctx& c, const std::string& title, const std::string& active) const {
        return PageFrame{title, active, c.csrf(), o.cfg.daemon.pi_name};
    }
    static void html(Ctx& c, int status, const std::string& doc) {
        c.res.status = status;
        c.res.set_content(doc, "text/html; charset=utf-8");
    }
    static void send_json(Ctx& c, int status, const json& j) {
        c.res.status = status;
        c.res.set_content(j.dump(), "application/json");
    }
    static void redirect(Ctx& c, const std::string& to) {
        c.res.status = 303;
        c.res.set_header("Location", to);
    }
    store::DeviceInfo device_or_404(Ctx& c) {
        const auto d = c.st.find_device(c.req.matches[1].str());
        if (!d || d->id_hex != c.req.matches[1].str()) {
            throw UserError(404, "No device with this id.");
        }
        return *d;
    }
    static json body_json(Ctx& c) {
        if (c.req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
            throw UserError(415, "expected Content-Type: application/json");
        }
        try {
            auto j = json::parse(c.req.body);
            if (!j.is_object()) {
                throw UserError(400, "expected a JSON object");
            }
            return j;
        } catch (const json::exception&) {
            throw UserError(400, "the body is not valid JSON");
        }
    }
    std::string session_cookie(const std::string& token, bool is_https) const {
        return std::string(kSessionCookie) + "=" + token + "; Path=/; HttpOnly; SameSite=Strict" +
               (is_https ? "; Secure" : "");
    }

    // --- owner operations shared by pages and API (service/owner.h does the work) ---
    /// The owner service on this request's store connection, at the request's time.
    service::Owner owner(Ctx& c) const {
        return service::Owner(c.st, o.cfg,
                              {[now = c.now] { return now; }, o.log, o.on_device_revoked});
    }
    void do_rename(Ctx& c, const store::DeviceInfo& d, const std::string& name);
    void do_permissions(Ctx& c, const store::DeviceInfo& d, const std::vector<std::string>& want);
    void do_revoke(Ctx& c, const store::DeviceInfo& d);
    RunNowResult do_run(const std::string& action);
    service::Paired do_pair(Ctx& c, const std::string& name,
                            const std::vector<std::string>& actions);
    service::Paired do_new_code(Ctx& c, const store::DeviceInfo& d);
    /// The Host header the app link names the Pi by (HTTPS only; service/app_link.h).
    static std::string https_host(const Ctx& c) {
        return c.https ? c.req.get_header_value("Host") : std::string();
    }
    /// The pairing page of `d`: its live state, and the QR code and links of a
    /// code made by this request (POST responses only: a GET never shows a code).
    std::string pairing_body(Ctx& c, const store::DeviceInfo& d, const service::Paired* fresh);
    bool signin_allowed(Ctx& c);
    std::optional<std::string> try_signin(Ctx& c, const std::string& password);
    json status_json(Ctx& c);
    std::vector<store::AuditEntry> audit_page(Ctx& c, std::int64_t limit, std::int64_t offset);

    // --- handlers ---
    void get_css(Ctx& c);
    void get_js(Ctx& c);
    void get_app_root(Ctx& c);
    void get_app(Ctx& c);
    void get_login(Ctx& c);
    void post_login(Ctx& c);
    void post_logout(Ctx& c);
    void get_dashboard(Ctx& c);
    void get_devices(Ctx& c);
    void get_device(Ctx& c);
    void post_rename(Ctx& c);
    void post_permissions(Ctx& c);
    void get_revoke(Ctx& c);
    void post_revoke(Ctx& c);
    void get_pair(Ctx& c);
    void post_pair(Ctx& c);
    void get_pairing(Ctx& c);
    void post_code(Ctx& c);
    void api_pairing(Ctx& c);
    void api_code(Ctx& c);
    void get_actions(Ctx& c);
    void post_run(Ctx& c);
    void get_audit(Ctx& c);
    void api_login(Ctx& c);
    void api_logout(Ctx& c);
    void api_session(Ctx& c);
    void api_status(Ctx& c);
    void api_devices(Ctx& c);
    void api_device(Ctx& c);
    void api_rename(Ctx& c);
    void api_permissions(Ctx& c);
    void api_revoke(Ctx& c);
    void api_actions(Ctx& c);
    void api_run(Ctx& c);
    void api_audit(Ctx& c);
    void api_pair(Ctx& c);

    std::string pair_form(Ctx& c, const std::string& error, const std::string& name);
};

#define BZS_ID "([0-9a-f]{32})"
#define BZS_ID_EX "0123456789abcdef0123456789abcdef"
// Only the URL's shape: one path segment. Whether it names an action is the
// registry's answer (service::Owner::check_run), whose names all passed
// core::protocol::valid_action_name: the rule is not written again here.
#define BZS_ACTION "([^/]{1,64})"

const std::vector<Server::Impl::RouteDef>& Server::Impl::table() {
    using I = Impl;
    static const std::vector<RouteDef> t = {
        {"GET", "/static/app\\.css", "/static/app.css", Access::Public, &I::get_css},
        {"GET", "/static/app\\.js", "/static/app.js", Access::Public, &I::get_js},
        {"GET", "/app", "/app", Access::Public, &I::get_app_root},
        {"GET", "/app/(.*)", "/app/index.html", Access::Public, &I::get_app},
        {"GET", "/login", "/login", Access::Public, &I::get_login},
        {"POST", "/login", "/login", Access::Public, &I::post_login},
        {"POST", "/api/v1/login", "/api/v1/login", Access::Public, &I::api_login},
        {"POST", "/logout", "/logout", Access::Page, &I::post_logout},
        {"GET", "/", "/", Access::Page, &I::get_dashboard},
        {"GET", "/devices", "/devices", Access::Page, &I::get_devices},
        {"GET", "/devices/" BZS_ID, "/devices/" BZS_ID_EX, Access::Page, &I::get_device},
        {"POST", "/devices/" BZS_ID "/rename", "/devices/" BZS_ID_EX "/rename", Access::Page,
         &I::post_rename},
        {"POST", "/devices/" BZS_ID "/permissions", "/devices/" BZS_ID_EX "/permissions",
         Access::Page, &I::post_permissions},
        {"GET", "/devices/" BZS_ID "/revoke", "/devices/" BZS_ID_EX "/revoke", Access::Page,
         &I::get_revoke},
        {"POST", "/devices/" BZS_ID "/revoke", "/devices/" BZS_ID_EX "/revoke", Access::Page,
         &I::post_revoke},
        {"GET", "/pair", "/pair", Access::Page, &I::get_pair},
        {"POST", "/pair", "/pair", Access::Page, &I::post_pair},
        {"GET", "/devices/" BZS_ID "/pairing", "/devices/" BZS_ID_EX "/pairing", Access::Page,
         &I::get_pairing},
        {"POST", "/devices/" BZS_ID "/code", "/devices/" BZS_ID_EX "/code", Access::Page,
         &I::post_code},
        {"GET", "/actions", "/actions", Access::Page, &I::get_actions},
        {"POST", "/actions/" BZS_ACTION "/run", "/actions/hello/run", Access::Page, &I::post_run},
        {"GET", "/audit", "/audit", Access::Page, &I::get_audit},
        {"POST", "/api/v1/logout", "/api/v1/logout", Access::Api, &I::api_logout},
        {"GET", "/api/v1/session", "/api/v1/session", Access::Api, &I::api_session},
        {"GET", "/api/v1/status", "/api/v1/status", Access::Api, &I::api_status},
        {"GET", "/api/v1/devices", "/api/v1/devices", Access::Api, &I::api_devices},
        {"GET", "/api/v1/devices/" BZS_ID, "/api/v1/devices/" BZS_ID_EX, Access::Api,
         &I::api_device},
        {"POST", "/api/v1/devices/" BZS_ID "/rename", "/api/v1/devices/" BZS_ID_EX "/rename",
         Access::Api, &I::api_rename},
        {"POST", "/api/v1/devices/" BZS_ID "/permissions",
         "/api/v1/devices/" BZS_ID_EX "/permissions", Access::Api, &I::api_permissions},
        {"POST", "/api/v1/devices/" BZS_ID "/revoke", "/api/v1/devices/" BZS_ID_EX "/revoke",
         Access::Api, &I::api_revoke},
        {"GET", "/api/v1/actions", "/api/v1/actions", Access::Api, &I::api_actions},
        {"POST", "/api/v1/actions/" BZS_ACTION "/run", "/api/v1/actions/hello/run", Access::Api,
         &I::api_run},
        {"GET", "/api/v1/audit", "/api/v1/audit", Access::Api, &I::api_audit},
        {"POST", "/api/v1/pair", "/api/v1/pair", Access::Api, &I::api_pair},
        {"GET", "/api/v1/devices/" BZS_ID "/pairing", "/api/v1/devices/" BZS_ID_EX "/pairing",
         Access::Api, &I::api_pairing},
        {"POST", "/api/v1/devices/" BZS_ID "/code", "/api/v1/devices/" BZS_ID_EX "/code",
         Access::Api, &I::api_code},
    };
    return t;
}

void Server::Impl::install(httplib::Server& svr, bool is_https) {
    for (const auto& r : table()) {
        auto h = [this, &r, is_https](const httplib::Request& req, httplib::Response& res) {
            dispatch(r, req, res, is_https);
        };
        if (std::string_view(r.method) == "GET") {
            svr.Get(r.pattern, h);
        } else {
            svr.Post(r.pattern, h);
        }
    }
    svr.set_error_handler(
        httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
            security_headers(res);
            if (res.body.empty()) {
                res.set_content(res.status == 404 ? "not found\n" : "error\n",
                                "text/plain; charset=utf-8");
            }
            return httplib::Server::HandlerResponse::Handled;
        }));
    svr.set_exception_handler(
        [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
            std::string what = "unknown error";
            try {
                std::rethrow_exception(std::move(ep));
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            o.log(LogLevel::Error, "web: " + req.method + " " + req.path + ": " + what);
            res.status = 500;
            res.set_content("internal error\n", "text/plain; charset=utf-8");
            security_headers(res);
        });
    // Paths only: query strings and bodies are never logged.
    svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
        o.log(LogLevel::Debug, "web: " + req.remote_addr + " " + req.method + " " + req.path +
                                   " -> " + std::to_string(res.status));
    });
    svr.set_payload_max_length(std::size_t{64} * 1024);
    svr.set_read_timeout(10, 0);
}

void Server::Impl::dispatch(const RouteDef& r, const httplib::Request& req, httplib::Response& res,
                            bool is_https) {
    security_headers(res);
    Lease lease(*this);
    Ctx c{req, res, *lease, std::nullopt, is_https, o.clock()};
    if (r.access != Access::Public) {
        if (const auto tok = cookie(req, kSessionCookie); tok && !tok->empty()) {
            c.session =
                c.st.touch_session(token_hash(*tok), c.now, o.cfg.web.session_idle_minutes * 60,
                                   o.cfg.web.session_absolute_hours * 3600);
        }
        if (!c.session) {
            if (r.access == Access::Api) {
                send_json(c, 401, {{"error", "sign in first (POST /api/v1/login)"}});
            } else {
                redirect(c, "/login");
            }
            return;
        }
        if (req.method == "POST") {
            std::string sent = req.get_header_value("X-CSRF-Token");
            if (sent.empty()) {
                sent = req.get_param_value("csrf");
            }
            if (sent.empty() || !same_secret(sent, c.session->csrf)) {
                o.log(LogLevel::Warning, "web: " + req.remote_addr + " " + req.method + " " +
                                             req.path + ": refused, missing or wrong CSRF token");
                if (r.access == Access::Api) {
                    send_json(c, 403, {{"error", "missing or wrong X-CSRF-Token"}});
                } else {
                    html(c, 403,
                         page(frame(c, "Refused", ""),
                              "<h1>Refused</h1><p class=\"card error\" data-testid=\"error\">"
                              "The form was stale or did not come from this site. Reload "
                              "the page and try again.</p>"));
                }
                return;
            }
        }
    }
    try {
        (this->*r.fn)(c);
    } catch (const UserError& e) {
        if (r.access == Access::Api) {
            send_json(c, e.status, {{"error", e.what()}});
        } else {
            html(c, e.status,
                 page(frame(c, "Error", ""),
                      "<h1>Sorry</h1><p class=\"card error\" data-testid=\"error\">" +
                          esc(e.what()) + "</p>"));
        }
    } catch (const store::StoreError& e) {
        // Store messages name the problem (bad name, unknown action), never a secret.
        if (r.access == Access::Api) {
            send_json(c, 400, {{"error", e.what()}});
        } else {
            html(c, 400,
                 page(frame(c, "Error", ""),
                      "<h1>Sorry</h1><p class=\"card error\" data-testid=\"error\">" +
                          esc(e.what()) + "</p>"));
        }
    }
}

// --- static ---

void Server::Impl::get_css(Ctx& c) {
    c.res.set_header("Cache-Control", "no-cache");
    c.res.set_content(std::string(assets::kCss), "text/css; charset=utf-8");
}

void Server::Impl::get_js(Ctx& c) {
    c.res.set_header("Cache-Control", "no-cache");
    c.res.set_content(std::string(assets::kJs), "text/javascript; charset=utf-8");
}

// --- the phone app (web.app_dir, docs/phone-app.md) ---

namespace {

const char* app_content_type(const std::filesystem::path& file) {
    static const std::map<std::string, const char*> types = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".webmanifest", "application/manifest+json"},
        {".png", "image/png"},
        {".svg", "image/svg+xml"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
    };
    const auto it = types.find(file.extension().string());
    return it == types.end() ? nullptr : it->second;
}

}  // namespace

void Server::Impl::get_app_root(Ctx& c) {
    c.res.status = 301;
    c.res.set_header("Location", std::string(service::kAppPath));
}

void Server::Impl::get_app(Ctx& c) {
    namespace fs = std::filesystem;
    const fs::path& dir = o.cfg.web.app_dir;
    std::error_code ec;
    if (!fs::is_regular_file(dir / "index.html", ec)) {
        html(c, 404,
             page(frame(c, "Phone app not installed", ""),
                  "<h1>The phone app is not installed</h1><div class=\"card error\" "
                  "data-testid=\"app-missing\"><p>This Pi serves the BlueZscript phone app "
                  "from <code>" +
                      esc(dir.string()) +
                      "</code> (<code>[web] app_dir</code>), and there is no "
                      "<code>index.html</code> there.</p><p>Install the bluezscript package, "
                      "which ships the app, or build it with <code>make app</code> and point "
                      "<code>app_dir</code> at <code>clients/web/dist</code>; or host the app "
                      "elsewhere and set <code>[pairing] app_url</code>.</p></div>"));
        return;
    }
    std::string rel = c.req.matches[1].str();
    if (rel.empty()) {
        rel = "index.html";
    }
    // Plain names only: no dot segments, no hidden files, nothing to escape app_dir.
    static const std::regex safe(
        R"(^([A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*$)");
    const fs::path file = dir / rel;
    const char* type = app_content_type(file);
    if (!std::regex_match(rel, safe) || type == nullptr || !fs::is_regular_file(file, ec)) {
        c.res.status = 404;
        return;
    }
    // A symlink must not lead outside app_dir either.
    const auto root = fs::canonical(dir, ec).string() + "/";
    const auto real = fs::canonical(file, ec).string();
    const auto size = fs::file_size(file, ec);
    if (ec || real.rfind(root, 0) != 0 || size > kMaxAppFile) {
        c.res.status = 404;
        return;
    }
    std::ifstream in(file, std::ios::binary);
    std::string body(static_cast<std::size_t>(size), '\0');  // size <= kMaxAppFile
    if (!in.read(body.data(), static_cast<std::streamsize>(size))) {
        throw std::runtime_error("cannot read " + file.string());
    }
    c.res.headers.erase("Content-Security-Policy");
    c.res.set_header("Content-Security-Policy", kAppCsp);
    // Revalidated on every load; the service worker keeps the copy for offline use.
    c.res.headers.erase("Cache-Control");
    c.res.set_header("Cache-Control", "no-cache");
    c.res.set_content(body, type);
}

// --- sign-in ---

bool Server::Impl::signin_allowed(Ctx& c) {
    return c.st.signin_failures_since(c.req.remote_addr, c.now - kSigninWindow) <
           o.cfg.web.signin_max_attempts_per_15min;
}

std::optional<std::string> Server::Impl::try_signin(Ctx& c, const std::string& password) {
    const auto hash = service::read_admin_password(c.st);
    if (!hash.set()) {
        throw UserError(403,
                        "No admin password is set yet. On the Pi, run: bluezscript admin passwd");
    }
    bool ok = false;
    try {
        ok = core::crypto::verify_password(password, hash.hash);
    } catch (const core::crypto::PasswordError& e) {
        o.log(LogLevel::Error, std::string("web: the stored admin password hash is unusable: ") +
                                   e.what() + "; set it again with bluezscript admin passwd");
        throw UserError(500,
                        "The stored admin password is unusable; set it again with "
                        "bluezscript admin passwd.");
    }
    if (!ok) {
        c.st.record_signin_failure(c.req.remote_addr, c.now);
        o.log(LogLevel::Warning, "web: failed sign-in from " + c.req.remote_addr);
        return std::nullopt;
    }
    c.st.clear_signin_failures(c.req.remote_addr);
    const std::string token = random_token();
    store::WebSession s{token_hash(token), random_token(), c.now, c.now, c.req.remote_addr};
    c.st.create_session(s);
    c.session = s;
    c.res.set_header("Set-Cookie", session_cookie(token, c.https));
    o.log(LogLevel::Info, "web: owner signed in from " + c.req.remote_addr);
    return s.csrf;
}

void Server::Impl::get_login(Ctx& c) {
    const bool has_password = service::read_admin_password(c.st).set();
    // Double-submit token: the sign-in form is a state change too (it creates a session).
    const std::string token = random_token();
    c.res.set_header("Set-Cookie", std::string(kLoginCookie) + "=" + token +
                                       "; Path=/login; HttpOnly; SameSite=Strict" +
                                       (c.https ? "; Secure" : ""));
    std::string body = "<h1>Sign in</h1>";
    if (!has_password) {
        body +=
            "<p class=\"card error\" data-testid=\"no-password\">No admin password is set yet. "
            "On the Pi, run <code>bluezscript admin passwd</code>.</p>";
    }
    body += "<form method=\"post\" action=\"/login\" class=\"card\" data-testid=\"login-form\">" +
            csrf_field(token) +
            "<label>Password <input type=\"password\" name=\"password\" "
            "autocomplete=\"current-password\" "
            "required autofocus data-testid=\"login-password\"></label>"
            "<button type=\"submit\" data-testid=\"login-submit\">Sign in</button></form>";
    html(c, 200, page(frame(c, "Sign in", ""), body));
}

void Server::Impl::post_login(Ctx& c) {
    const auto want = cookie(c.req, kLoginCookie);
    const std::string sent = c.req.get_param_value("csrf");
    if (!want || want->empty() || !same_secret(*want, sent)) {
        html(c, 403,
             page(frame(c, "Refused", ""),
                  "<h1>Refused</h1><p class=\"card error\" data-testid=\"error\">The sign-in "
                  "form was stale. <a href=\"/login\">Try again</a>.</p>"));
        return;
    }
    if (!signin_allowed(c)) {
        o.log(LogLevel::Warning,
              "web: sign-in from " + c.req.remote_addr + " refused: too many failures");
        html(c, 429,
             page(frame(c, "Too many attempts", ""),
                  "<h1>Too many attempts</h1><p class=\"card error\" data-testid=\"error\">"
                  "Too many failed sign-ins from this address. Wait 15 minutes.</p>"));
        return;
    }
    if (!try_signin(c, c.req.get_param_value("password"))) {
        html(c, 401,
             page(frame(c, "Sign in", ""),
                  "<h1>Sign in</h1><p class=\"card error\" data-testid=\"error\">Wrong "
                  "password.</p><p><a href=\"/login\" data-testid=\"login-retry\">Try "
                  "again</a></p>"));
        return;
    }
    c.res.set_header("Set-Cookie", std::string(kLoginCookie) + "=; Path=/login; Max-Age=0");
    redirect(c, "/");
}

void Server::Impl::post_logout(Ctx& c) {
    c.st.delete_session(c.session->token_hash);
    c.res.set_header("Set-Cookie", std::string(kSessionCookie) +
                                       "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" +
                                       (c.https ? "; Secure" : ""));
    redirect(c, "/login");
}

void Server::Impl::api_login(Ctx& c) {
    // A JSON content type cannot be sent cross-site without a CORS preflight, which
    // this server never grants: that is this route's CSRF protection.
    const auto j = body_json(c);
    if (!signin_allowed(c)) {
        send_json(c, 429,
                  {{"error", "too many failed sign-ins from this address; wait 15 minutes"}});
        return;
    }
    if (!j.contains("password") || !j["password"].is_string()) {
        throw UserError(400, "expected {\"password\": \"...\"}");
    }
    const auto csrf = try_signin(c, j["password"].get<std::string>());
    if (!csrf) {
        send_json(c, 401, {{"error", "wrong password"}});
        return;
    }
    send_json(c, 200, {{"csrf_token", *csrf}});
}

void Server::Impl::api_logout(Ctx& c) {
    c.st.delete_session(c.session->token_hash);
    c.res.set_header("Set-Cookie", std::string(kSessionCookie) + "=; Path=/; Max-Age=0; HttpOnly");
    send_json(c, 200, {{"signed_out", true}});
}

void Server::Impl::api_session(Ctx& c) {
    send_json(c, 200,
              {{"csrf_token", c.session->csrf},
               {"created", c.session->created},
               {"client", c.session->client},
               {"expires_idle", c.now + o.cfg.web.session_idle_minutes * 60},
               {"expires_absolute", c.session->created + o.cfg.web.session_absolute_hours * 3600}});
}

// --- dashboard ---

json Server::Impl::status_json(Ctx& c) {
    const auto b = ble_snapshot();
    const auto devices = c.st.list_devices(false);
    const auto window = service::read_pairing_window(c.st);
    return {
        {"pi_name", o.cfg.daemon.pi_name},
        {"ble",
         {{"enabled", b.enabled},
          {"summary", b.summary},
          {"adapter", b.adapter},
          {"powered", b.powered},
          {"advertising", b.advertising},
          {"connected", b.connected}}},
        {"devices_active", std::count_if(devices.begin(), devices.end(),
                                         [](const store::DeviceInfo& d) { return !d.pending(); })},
        {"devices_pending", std::count_if(devices.begin(), devices.end(),
                                          [](const store::DeviceInfo& d) { return d.pending(); })},
        {"actions", actions_snapshot()->list().size()},
        {"pairing_window_remaining", window.remaining(c.now)}};
}

void Server::Impl::get_dashboard(Ctx& c) {
    const auto s = status_json(c);
    const auto b = ble_snapshot();
    std::string body =
        "<h1>Dashboard</h1><section class=\"card\" data-testid=\"ble-status\"><h2>Bluetooth</h2>"
        "<p data-testid=\"ble-summary\">" +
        esc(b.summary) +
        "</p><ul>"
        "<li>Adapter: <span data-testid=\"ble-adapter\">" +
        esc(b.adapter.empty() ? "-" : b.adapter) + "</span>" +
        (b.powered ? " (powered)" : " (not powered)") +
        "</li><li>Advertising: <span data-testid=\"ble-advertising\">" +
        (b.advertising ? "yes" : "no") +
        "</span></li><li>Connected devices: <span data-testid=\"ble-connected\">" +
        std::to_string(b.connected.size()) + "</span></li></ul></section>";
    body +=
        "<section class=\"card\"><p>Paired devices: <a href=\"/devices\" "
        "data-testid=\"device-count\">" +
        std::to_string(s["devices_active"].get<std::int64_t>()) +
        "</a> &middot; Actions: <a href=\"/actions\" data-testid=\"action-count\">" +
        std::to_string(s["actions"].get<std::size_t>()) + "</a></p></section>";
    body +=
        "<h2>Recent activity</h2><div class=\"scroll\"><table data-testid=\"recent-activity\">"
        "<tr><th>Time</th><th>Device</th><th>Action</th><th>Result</th></tr>";
    store::AuditFilter f;
    f.limit = 10;
    for (const auto& a : c.st.audit(f)) {
        body += "<tr><td>" + esc(format_time(a.time)) + "</td><td>" +
                esc(a.device_name.value_or(a.device_id_hex.value_or("-"))) + "</td><td>" +
                esc(a.action.empty() ? "-" : a.action) + "</td><td class=\"" +
                (a.status == "ok" ? "status-ok" : "status-bad") + "\">" + esc(a.status) +
                "</td></tr>";
    }
    body += "</table></div><p><a href=\"/audit\" data-testid=\"audit-link\">Full audit log</a></p>";
    html(c, 200, page(frame(c, "Dashboard", "dashboard"), body));
}

// --- devices ---

void Server::Impl::get_devices(Ctx& c) {
    std::string body = "<h1>Devices</h1>";
    if (const auto m = flash_texts().find(c.req.get_param_value("msg")); m != flash_texts().end()) {
        body += "<p class=\"card notice\" data-testid=\"flash\">" + esc(m->second) + "</p>";
    }
    body +=
        "<p><a href=\"/pair\" data-testid=\"pair-link\">Pair a device</a></p>"
        "<div class=\"scroll\"><table data-testid=\"device-table\"><tr><th>Name</th><th>Added</th>"
        "<th>Last used</th><th>BLE address</th><th>Actions</th><th>Status</th><th><span "
        "class=\"sr-only\">Manage</span></th></tr>";
    for (const auto& d : c.st.list_devices(true)) {
        std::string manage;
        if (!d.revoked()) {
            manage = "<a href=\"/devices/" + d.id_hex + "\" data-testid=\"device-edit-" + d.id_hex +
                     "\">Manage</a>";
        }
        if (d.pending()) {
            // A new code is a state change: a POST with the CSRF token, never a link.
            manage += "<form method=\"post\" action=\"/devices/" + d.id_hex +
                      "/code\" class=\"inline\">" + csrf_field(c.csrf()) +
                      "<button type=\"submit\" data-testid=\"device-new-code-" + d.id_hex +
                      "\" aria-label=\"New code for " + esc(d.name) + "\">New code</button></form>";
        }
        body += "<tr data-testid=\"device-row-" + d.id_hex + "\"><td data-testid=\"device-name\">" +
                esc(d.name) + "</td><td>" + esc(format_time(d.created)) + "</td><td>" +
                esc(format_time(d.last_used)) + "</td><td data-testid=\"device-ble-address\">" +
                esc(d.ble_address.value_or("-")) + "</td><td>" +
                esc(d.actions.empty() ? "(none)" : join(d.actions)) +
                "</td><td data-testid=\"device-status\">" + esc(device_status(d, c.now)) +
                "</td><td class=\"row-actions\">" + manage + "</td></tr>";
    }
    body += "</table></div>";
    html(c, 200, page(frame(c, "Devices", "devices"), body));
}

void Server::Impl::get_device(Ctx& c) {
    const auto d = device_or_404(c);
    const std::string base = "/devices/" + d.id_hex;
    std::string body = "<h1>" + esc(d.name) + "</h1><p class=\"muted\">Id " + d.id_hex +
                       " &middot; added " + esc(format_time(d.created)) + " &middot; last used " +
                       esc(format_time(d.last_used)) + " &middot; " + esc(device_status(d, c.now)) +
                       "</p>";
    if (d.pending()) {
        body += "<p class=\"card\"><a href=\"" + base +
                "/pairing\" data-testid=\"device-pairing-link\">Pairing: waiting for its "
                "phone</a></p>";
    }
    if (d.revoked()) {
        body += "<p class=\"card error\">This device is revoked.</p>";
        html(c, 200, page(frame(c, d.name, "devices"), body));
        return;
    }
    body += "<form method=\"post\" action=\"" + base +
            "/rename\" class=\"card\" data-testid=\"rename-form\">" + csrf_field(c.csrf()) +
            "<h2>Rename</h2><label>Name <input type=\"text\" name=\"name\" maxlength=\"64\" "
            "required value=\"" +
            esc(d.name) +
            "\" data-testid=\"rename-input\"></label>"
            "<button type=\"submit\" data-testid=\"rename-submit\">Rename</button></form>";
    std::set<std::string> names;
    for (const auto& a : actions_snapshot()->list()) {
        names.insert(a.name);
    }
    for (const auto& a : d.actions) {
        names.insert(a);
    }
    body += "<form method=\"post\" action=\"" + base +
            "/permissions\" class=\"card\" data-testid=\"permissions-form\">" +
            csrf_field(c.csrf()) + "<h2>Permitted actions</h2>";
    for (const auto& n : names) {
        const bool on = std::find(d.actions.begin(), d.actions.end(), n) != d.actions.end();
        body += "<label><input type=\"checkbox\" name=\"actions\" value=\"" + esc(n) + "\"" +
                (on ? " checked" : "") + " data-testid=\"permission-" + esc(n) + "\"> " + esc(n) +
                "</label>";
    }
    body +=
        "<button type=\"submit\" data-testid=\"permissions-submit\">Save "
        "permissions</button></form>"
        "<p class=\"card\"><a href=\"" +
        base + "/revoke\" data-testid=\"revoke-link\">Revoke this device&hellip;</a></p>";
    html(c, 200, page(frame(c, d.name, "devices"), body));
}

void Server::Impl::do_rename(Ctx& c, const store::DeviceInfo& d, const std::string& name) {
    if (const auto r = owner(c).rename(service::Origin::Web, d, name); !r) {
        refuse(r.refused());
    }
}

void Server::Impl::do_permissions(Ctx& c, const store::DeviceInfo& d,
                                  const std::vector<std::string>& want) {
    const auto r = owner(c).set_permissions(service::Origin::Web, *actions_snapshot(), d, want);
    if (!r) {
        refuse(r.refused());
    }
}

void Server::Impl::do_revoke(Ctx& c, const store::DeviceInfo& d) {
    if (const auto r = owner(c).revoke(service::Origin::Web, d); !r) {
        refuse(r.refused());
    }
}

void Server::Impl::post_rename(Ctx& c) {
    const auto d = device_or_404(c);
    do_rename(c, d, c.req.get_param_value("name"));
    redirect(c, "/devices?msg=renamed");
}

void Server::Impl::post_permissions(Ctx& c) {
    const auto d = device_or_404(c);
    std::vector<std::string> want;
    for (std::size_t i = 0; i < c.req.get_param_value_count("actions"); ++i) {
        want.push_back(c.req.get_param_value("actions", i));
    }
    do_permissions(c, d, want);
    redirect(c, "/devices?msg=permissions");
}

void Server::Impl::get_revoke(Ctx& c) {
    const auto d = device_or_404(c);
    std::string body =
        "<h1>Revoke " + esc(d.name) +
        "?</h1><div class=\"card error\"><p>Every later "
        "command from this device will be refused. This cannot be undone: to use the "
        "phone again, pair it anew.</p><form method=\"post\" action=\"/devices/" +
        d.id_hex + "/revoke\" data-testid=\"revoke-form\">" + csrf_field(c.csrf()) +
        "<button type=\"submit\" class=\"danger\" data-testid=\"revoke-confirm\">Revoke</button> "
        "<a href=\"/devices/" +
        d.id_hex + "\" data-testid=\"revoke-cancel\">Cancel</a></form></div>";
    html(c, 200, page(frame(c, "Revoke", "devices"), body));
}

void Server::Impl::post_revoke(Ctx& c) {
    do_revoke(c, device_or_404(c));
    redirect(c, "/devices?msg=revoked");
}

// --- pairing ---

service::Paired Server::Impl::do_pair(Ctx& c, const std::string& name,
                                      const std::vector<std::string>& wanted) {
    // Same as `bluezscript pair add`: a pending device, its one-time code and the
    // BLE bonding window. The owner's HTTPS Host header names the Pi as the LAN
    // knows it; the phone scanning the code is on that LAN too.
    auto r = owner(c).pair(service::Origin::Web, *actions_snapshot(), name, wanted, https_host(c));
    if (!r) {
        refuse(r.refused());
    }
    return std::move(*r);
}

service::Paired Server::Impl::do_new_code(Ctx& c, const store::DeviceInfo& d) {
    auto r = owner(c).new_code(service::Origin::Web, d, https_host(c));
    if (!r) {
        refuse(r.refused());
    }
    return std::move(*r);
}

std::string Server::Impl::pair_form(Ctx& c, const std::string& error, const std::string& name) {
    std::string body = "<h1>Pair a device</h1>";
    if (!error.empty()) {
        body += "<p class=\"card error\" data-testid=\"error\">" + esc(error) + "</p>";
    }
    body +=
        "<form method=\"post\" action=\"/pair\" class=\"card\" data-testid=\"pair-form\">" +
        csrf_field(c.csrf()) +
        "<label>Device name <input type=\"text\" name=\"name\" maxlength=\"64\" required value=\"" +
        esc(name) +
        "\" data-testid=\"pair-name\"></label><fieldset><legend>Actions it may run</legend>";
    for (const auto& a : actions_snapshot()->list()) {
        body += "<label><input type=\"checkbox\" name=\"actions\" value=\"" + esc(a.name) +
                "\" data-testid=\"pair-action-" + esc(a.name) + "\"> " + esc(a.name) +
                (a.description.empty() ? "" : " &mdash; " + esc(a.description)) + "</label>";
    }
    body +=
        "</fieldset><p class=\"muted\">The next page shows a QR code with a one-time pairing "
        "code. It works once, within " +
        std::to_string(o.cfg.pairing.window_seconds / 60) +
        " minutes.</p><button type=\"submit\" data-testid=\"pair-submit\">Show pairing "
        "code</button></form>";
    return body;
}

void Server::Impl::get_pair(Ctx& c) {
    html(c, 200, page(frame(c, "Pair a device", "pair"), pair_form(c, "", "")));
}

std::string Server::Impl::pairing_body(Ctx& c, const store::DeviceInfo& d,
                                       const service::Paired* fresh) {
    const std::string base = "/devices/" + d.id_hex;
    const std::int64_t remaining =
        d.pending() && d.code_expires ? std::max<std::int64_t>(*d.code_expires - c.now, 0) : 0;
    std::string state;
    std::string cls = "card";
    if (d.revoked()) {
        state = "This device is revoked.";
        cls = "card error";
    } else if (!d.pending()) {
        state = "Paired as " + esc(d.name) + ".";
        cls = "card notice";
    } else if (remaining == 0) {
        state = "Code expired &mdash; get a new code.";
        cls = "card error";
    } else if (fresh != nullptr) {
        state =
            "Waiting for the phone&hellip; Scan the code with its camera: it opens the "
            "BlueZscript app, which pairs. The code works once; time left: <span "
            "id=\"pair-countdown\" data-testid=\"pair-countdown\">" +
            minutes_seconds(remaining) + "</span>";
    } else {
        state =
            "Waiting for the phone&hellip; The code shown when it was made works for <span "
            "id=\"pair-countdown\" data-testid=\"pair-countdown\">" +
            minutes_seconds(remaining) + "</span> more. Lost it? Get a new code.";
    }
    std::string body =
        "<h1>Pair " + esc(d.name) + "</h1><div id=\"pair-live\" data-testid=\"pair-live\" " +
        "data-status-url=\"/api/v1" + base + "/pairing\" data-page-url=\"" + base +
        "/pairing\" data-remaining=\"" + std::to_string(remaining) + "\" data-state=\"" +
        store::device_state_name(d.state()) + "\"><p id=\"pair-state\" class=\"" + cls +
        "\" role=\"status\" data-testid=\"pair-state\">" + state +
        "</p><p id=\"pair-passkey\" class=\"hidden\" data-testid=\"pair-passkey\"></p>";
    if (fresh != nullptr && d.pending() && remaining > 0) {
        body += "<div id=\"pair-qr\" class=\"qr card\" data-testid=\"pair-qr\">" +
                qr::to_svg(qr::encode(fresh->qr_link()), 6) +
                "</div><div id=\"pair-uri\" class=\"card\"><p>Or open this link on the phone "
                "(it holds the one-time code: shown only now, never stored in clear):</p>"
                "<code class=\"uri\" data-testid=\"pair-uri\">" +
                esc(fresh->qr_link()) + "</code>";
        if (!fresh->app_uri.empty()) {
            body +=
                "<p class=\"muted\">For an app that registers bluezscript:// links:</p><code "
                "class=\"uri\" data-testid=\"pair-uri-canonical\">" +
                esc(fresh->uri) + "</code>";
        }
        body += "</div>";
    }
    if (d.pending()) {
        body += "<form method=\"post\" action=\"" + base +
                "/code\" id=\"pair-new-code\" class=\"card\" data-testid=\"pair-new-code-form\">" +
                csrf_field(c.csrf()) +
                "<button type=\"submit\" data-testid=\"pair-new-code\">Get a new code</button> "
                "<span class=\"muted\">The current code stops working.</span></form>";
    }
    body += "</div><p><a href=\"/devices\" data-testid=\"pair-done\">Done</a></p>";
    return body;
}

void Server::Impl::post_pair(Ctx& c) {
    const std::string name = c.req.get_param_value("name");
    std::vector<std::string> wanted;
    for (std::size_t i = 0; i < c.req.get_param_value_count("actions"); ++i) {
        wanted.push_back(c.req.get_param_value("actions", i));
    }
    service::Paired r;
    try {
        r = do_pair(c, name, wanted);
    } catch (const UserError& e) {
        html(c, e.status, page(frame(c, "Pair a device", "pair"), pair_form(c, e.what(), name)));
        return;
    } catch (const store::StoreError& e) {
        html(c, 400, page(frame(c, "Pair a device", "pair"), pair_form(c, e.what(), name)));
        return;
    }
    // The code is in this response only; the script moves the address bar to the
    // device's pairing page, so a reload shows its state instead of posting again.
    html(c, 200, page(frame(c, "Pair " + r.device.name, "pair"), pairing_body(c, r.device, &r)));
}

void Server::Impl::get_pairing(Ctx& c) {
    const auto d = device_or_404(c);
    html(c, 200, page(frame(c, "Pair " + d.name, "pair"), pairing_body(c, d, nullptr)));
}

void Server::Impl::post_code(Ctx& c) {
    const auto r = do_new_code(c, device_or_404(c));
    html(c, 200, page(frame(c, "Pair " + r.device.name, "pair"), pairing_body(c, r.device, &r)));
}

void Server::Impl::api_pairing(Ctx& c) {
    const auto d = device_or_404(c);
    const std::int64_t remaining =
        d.pending() && d.code_expires ? std::max<std::int64_t>(*d.code_expires - c.now, 0) : 0;
    // The state only: never the code, which the owner saw once.
    json j{{"id", d.id_hex},
           {"name", d.name},
           {"state", store::device_state_name(d.state())},
           {"code_expires", d.code_expires ? json(*d.code_expires) : json(nullptr)},
           {"code_remaining", remaining},
           {"passkey", nullptr}};
    // The passkey the daemon's agent stored for a bonding in this device's window.
    if (service::read_pairing_window(c.st).remaining(c.now) > 0 && !d.revoked()) {
        if (const auto pk = service::read_pending_passkey(c.st); pk && pk->time >= d.created) {
            j["passkey"] = pk->passkey;
        }
    }
    send_json(c, 200, j);
}

namespace {

/// {"device", "uri", "app_uri" (when an app is served), "code_expires", "window_seconds"}.
json paired_json(const service::Paired& r) {
    json j{{"device", device_json(r.device)},
           {"uri", r.uri},
           {"code_expires", r.code_expires},
           {"window_seconds", r.window_seconds}};
    if (!r.app_uri.empty()) {
        j["app_uri"] = r.app_uri;
    }
    return j;
}

}  // namespace

void Server::Impl::api_code(Ctx& c) {
    send_json(c, 200, paired_json(do_new_code(c, device_or_404(c))));
}

// --- actions ---

RunNowResult Server::Impl::do_run(const std::string& action) {
    if (const auto r = service::Owner::check_run(*actions_snapshot(), action, {}); !r) {
        refuse(r.refused(), r.refused().kind == service::Refusal::UnknownAction ? 404 : 0);
    }
    if (!o.run_action) {
        throw UserError(503, "Running actions from the web UI is not available.");
    }
    auto r = o.run_action(action);
    o.log(LogLevel::Info, "web: owner asked to run '" + action + "': " + r.message);
    return r;
}

void Server::Impl::get_actions(Ctx& c) {
    const auto reg = actions_snapshot();
    std::string body = "<h1>Actions</h1>";
    if (const auto m = flash_texts().find(c.req.get_param_value("msg")); m != flash_texts().end()) {
        body += "<p class=\"card notice\" data-testid=\"flash\">" + esc(m->second) + "</p>";
    }
    body += "<p class=\"muted\">From " + esc(reg->dir().string()) + "</p>";
    store::AuditFilter f;
    f.limit = 500;
    const auto recent = c.st.audit(f);
    for (const auto& a : reg->list()) {
        body += "<section class=\"card\" data-testid=\"action-" + esc(a.name) + "\"><h2>" +
                esc(a.name) + "</h2><p>" +
                esc(a.description.empty() ? "(no description)" : a.description) +
                "</p><p class=\"muted\">Timeout " + std::to_string(a.timeout.count()) + " s" +
                (a.allow_args ? " &middot; takes arguments" : "") + "</p><p>Last runs:</p><ul>";
        int shown = 0;
        for (const auto& e : recent) {
            if (e.action != a.name || shown >= 3) {
                continue;
            }
            ++shown;
            body += "<li>" + esc(format_time(e.time)) + " &middot; " +
                    esc(e.device_name.value_or(e.transport)) + " &middot; <span class=\"" +
                    (e.status == "ok" ? "status-ok" : "status-bad") + "\">" + esc(e.status) +
                    "</span></li>";
        }
        if (shown == 0) {
            body += "<li class=\"muted\">none recorded</li>";
        }
        body += "</ul><form method=\"post\" action=\"/actions/" + esc(a.name) + "/run\">" +
                csrf_field(c.csrf()) + "<button type=\"submit\" data-testid=\"run-" + esc(a.name) +
                "\">Run now</button></form></section>";
    }
    if (reg->list().empty()) {
        body += "<p class=\"card\">No actions yet.</p>";
    }
    html(c, 200, page(frame(c, "Actions", "actions"), body));
}

void Server::Impl::post_run(Ctx& c) {
    const auto r = do_run(c.req.matches[1].str());
    if (!r.started) {
        throw UserError(409, "Not started: " + r.message);
    }
    redirect(c, "/actions?msg=run-started");
}

// --- audit ---

std::vector<store::AuditEntry> Server::Impl::audit_page(Ctx& c, std::int64_t limit,
                                                        std::int64_t offset) {
    store::AuditFilter f;
    const std::string dev = c.req.get_param_value("device");
    if (!dev.empty()) {
        f.device = dev;
    }
    const std::string result = c.req.get_param_value("result");
    if (result == "ok") {
        f.accepted = true;
    } else if (result == "refused") {
        f.accepted = false;
    } else if (!result.empty()) {
        throw UserError(400, "result must be ok or refused");
    }
    f.limit = limit;
    f.offset = offset;
    return c.st.audit(f);
}

void Server::Impl::get_audit(Ctx& c) {
    std::int64_t pg = 1;
    try {
        const auto p = c.req.get_param_value("page");
        if (!p.empty()) {
            pg = std::stoll(p);
        }
    } catch (const std::exception&) {
    }
    if (pg < 1) {
        pg = 1;
    }
    const auto rows = audit_page(c, kAuditPageSize + 1, (pg - 1) * kAuditPageSize);
    const std::string dev = c.req.get_param_value("device");
    const std::string result = c.req.get_param_value("result");
    std::string body =
        "<h1>Audit log</h1><form method=\"get\" action=\"/audit\" class=\"card\" "
        "data-testid=\"audit-filter\"><label>Device <select name=\"device\" "
        "data-testid=\"audit-device\"><option value=\"\">all</option>";
    for (const auto& d : c.st.list_devices(true)) {
        body += "<option value=\"" + d.id_hex + "\"" + (dev == d.id_hex ? " selected" : "") + ">" +
                esc(d.name) + (d.revoked() ? " (revoked)" : "") + "</option>";
    }
    body +=
        "</select></label><label>Result <select name=\"result\" data-testid=\"audit-result\">"
        "<option value=\"\">all</option><option value=\"ok\"" +
        std::string(result == "ok" ? " selected" : "") +
        ">accepted</option><option value=\"refused\"" + (result == "refused" ? " selected" : "") +
        ">refused or failed</option></select></label><button type=\"submit\" "
        "data-testid=\"audit-apply\">Filter</button></form><div class=\"scroll\"><table "
        "data-testid=\"audit-table\"><tr><th>Time</th><th>Device</th><th>Action</th><th>Via</th>"
        "<th>Result</th><th>Reason</th><th>Exit</th></tr>";
    for (std::size_t i = 0; i < rows.size() && i < static_cast<std::size_t>(kAuditPageSize); ++i) {
        const auto& a = rows[i];
        body += "<tr data-testid=\"audit-row\"><td>" + esc(format_time(a.time)) + "</td><td>" +
                esc(a.device_name.value_or(a.device_id_hex.value_or("-"))) + "</td><td>" +
                esc(a.action.empty() ? "-" : a.action) + "</td><td>" + esc(a.transport) +
                "</td><td class=\"" + (a.status == "ok" ? "status-ok" : "status-bad") + "\">" +
                esc(a.status) + "</td><td>" + esc(a.detail) + "</td><td>" +
                (a.exit_code ? std::to_string(*a.exit_code) : std::string("-")) + "</td></tr>";
    }
    body += "</table></div><p class=\"pager\">";
    const std::string q = "device=" + core::protocol::percent_encode(dev) +
                          "&amp;result=" + core::protocol::percent_encode(result);
    if (pg > 1) {
        body += "<a href=\"/audit?" + q + "&amp;page=" + std::to_string(pg - 1) +
                "\" data-testid=\"audit-prev\">Newer</a>";
    }
    if (rows.size() > static_cast<std::size_t>(kAuditPageSize)) {
        body += "<a href=\"/audit?" + q + "&amp;page=" + std::to_string(pg + 1) +
                "\" data-testid=\"audit-next\">Older</a>";
    }
    body += "</p>";
    html(c, 200, page(frame(c, "Audit log", "audit"), body));
}

// --- JSON API ---

void Server::Impl::api_status(Ctx& c) {
    send_json(c, 200, status_json(c));
}

void Server::Impl::api_devices(Ctx& c) {
    json arr = json::array();
    for (const auto& d : c.st.list_devices(c.req.get_param_value("active") != "1")) {
        arr.push_back(device_json(d));
    }
    send_json(c, 200, arr);
}

void Server::Impl::api_device(Ctx& c) {
    send_json(c, 200, device_json(device_or_404(c)));
}

void Server::Impl::api_rename(Ctx& c) {
    const auto d = device_or_404(c);
    const auto j = body_json(c);
    if (!j.contains("name") || !j["name"].is_string()) {
        throw UserError(400, "expected {\"name\": \"...\"}");
    }
    do_rename(c, d, j["name"].get<std::string>());
    send_json(c, 200, device_json(*c.st.find_device(d.id_hex)));
}

void Server::Impl::api_permissions(Ctx& c) {
    const auto d = device_or_404(c);
    const auto j = body_json(c);
    if (!j.contains("actions") || !j["actions"].is_array()) {
        throw UserError(400, "expected {\"actions\": [\"name\", ...]}");
    }
    std::vector<std::string> want;
    for (const auto& a : j["actions"]) {
        if (!a.is_string()) {
            throw UserError(400, "actions must be strings");
        }
        want.push_back(a.get<std::string>());
    }
    do_permissions(c, d, want);
    send_json(c, 200, device_json(*c.st.find_device(d.id_hex)));
}

void Server::Impl::api_revoke(Ctx& c) {
    const auto d = device_or_404(c);
    do_revoke(c, d);
    send_json(c, 200, device_json(*c.st.find_device(d.id_hex)));
}

void Server::Impl::api_actions(Ctx& c) {
    json arr = json::array();
    for (const auto& a : actions_snapshot()->list()) {
        arr.push_back({{"name", a.name},
                       {"description", a.description},
                       {"timeout_seconds", a.timeout.count()},
                       {"allow_args", a.allow_args},
                       {"concurrent", a.concurrent}});
    }
    send_json(c, 200, arr);
}

void Server::Impl::api_run(Ctx& c) {
    const auto r = do_run(c.req.matches[1].str());
    send_json(c, r.started ? 202 : 409, {{"started", r.started}, {"message", r.message}});
}

void Server::Impl::api_audit(Ctx& c) {
    std::int64_t limit = 50;
    std::int64_t offset = 0;
    try {
        if (c.req.has_param("limit")) {
            limit = std::stoll(c.req.get_param_value("limit"));
        }
        if (c.req.has_param("offset")) {
            offset = std::stoll(c.req.get_param_value("offset"));
        }
    } catch (const std::exception&) {
        throw UserError(400, "limit and offset must be integers");
    }
    if (limit < 1 || limit > 500 || offset < 0) {
        throw UserError(400, "limit must be 1..500, offset >= 0");
    }
    json arr = json::array();
    for (const auto& a : audit_page(c, limit, offset)) {
        arr.push_back(audit_json(a));
    }
    send_json(c, 200, arr);
}

void Server::Impl::api_pair(Ctx& c) {
    const auto j = body_json(c);
    if (!j.contains("name") || !j["name"].is_string()) {
        throw UserError(400, "expected {\"name\": \"...\"}");
    }
    std::vector<std::string> wanted;
    if (j.contains("actions")) {
        if (!j["actions"].is_array()) {
            throw UserError(400, "actions must be an array");
        }
        for (const auto& a : j["actions"]) {
            if (!a.is_string()) {
                throw UserError(400, "actions must be strings");
            }
            wanted.push_back(a.get<std::string>());
        }
    }
    send_json(c, 201, paired_json(do_pair(c, j["name"].get<std::string>(), wanted)));
}

// ---------------------------------------------------------------------------

namespace {

// httplib's stop() is a no-op until the accept loop runs, so start() returns only
// once it does (else an early stop() would leave the thread blocked in accept).
// The socket is already listening, so no connection is lost meanwhile.
void wait_running(httplib::Server& s) {
    for (int i = 0; i < 5000 && !s.is_running(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

}  // namespace

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() {
    stop();
}

void Server::start() {
    auto& I = *impl_;
    if (I.running) {
        return;
    }
    const auto& w = I.o.cfg.web;
    if (!w.http_address.empty()) {
        I.http = std::make_unique<httplib::Server>();
        I.install(*I.http, false);
        const int want = I.o.http_port.value_or(static_cast<int>(w.http_port));
        I.http_bound = want == 0 ? I.http->bind_to_any_port(w.http_address)
                                 : (I.http->bind_to_port(w.http_address, want) ? want : -1);
        if (I.http_bound <= 0) {
            throw WebError("web: cannot listen on http://" + w.http_address + ":" +
                           std::to_string(want) + " (address in use or not available)");
        }
        I.http_thread = std::thread([s = I.http.get()] { s->listen_after_bind(); });
        wait_running(*I.http);
        I.o.log(LogLevel::Info,
                "web: serving http://" +
                    (w.http_address.find(':') != std::string::npos ? "[" + w.http_address + "]"
                                                                   : w.http_address) +
                    ":" + std::to_string(I.http_bound) + "/ (this machine only)");
    }
    if (!w.https_address.empty()) {
        const auto cert = I.o.cfg.web_cert_path().string();
        const auto key = I.o.cfg.web_key_path().string();
        I.https = std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str());
        if (!I.https->is_valid()) {
            stop();
            throw WebError("web: cannot load the TLS certificate " + cert + " and key " + key);
        }
        I.install(*I.https, true);
        const int want = I.o.https_port.value_or(static_cast<int>(w.https_port));
        I.https_bound = want == 0 ? I.https->bind_to_any_port(w.https_address)
                                  : (I.https->bind_to_port(w.https_address, want) ? want : -1);
        if (I.https_bound <= 0) {
            stop();
            throw WebError("web: cannot listen on https://" + w.https_address + ":" +
                           std::to_string(want) + " (address in use or not available)");
        }
        I.https_thread = std::thread([s = I.https.get()] { s->listen_after_bind(); });
        wait_running(*I.https);
        I.o.log(LogLevel::Info,
                "web: serving https://" +
                    (w.https_address.find(':') != std::string::npos ? "[" + w.https_address + "]"
                                                                    : w.https_address) +
                    ":" + std::to_string(I.https_bound) + "/");
    }
    I.running = true;
}

void Server::stop() {
    auto& I = *impl_;
    for (auto* pair : {&I.http, &I.https}) {
        if (*pair) {
            (*pair)->stop();
        }
    }
    if (I.http_thread.joinable()) {
        I.http_thread.join();
    }
    if (I.https_thread.joinable()) {
        I.https_thread.join();
    }
    I.http.reset();
    I.https.reset();
    if (I.running) {
        I.o.log(LogLevel::Info, "web: stopped");
    }
    I.running = false;
    const std::lock_guard lock(I.mu);
    I.pool.clear();
}

int Server::http_port() const {
    return impl_->http_bound > 0 ? impl_->http_bound : 0;
}

int Server::https_port() const {
    return impl_->https_bound > 0 ? impl_->https_bound : 0;
}

void Server::set_registry(std::shared_ptr<const actions::Registry> registry) {
    const std::lock_guard lock(impl_->mu);
    impl_->registry = std::move(registry);
}

void Server::set_ble(BleSnapshot snapshot) {
    const std::lock_guard lock(impl_->mu);
    impl_->ble = std::move(snapshot);
}

const std::vector<RouteInfo>& Server::routes() {
    static const std::vector<RouteInfo> out = [] {
        std::vector<RouteInfo> v;
        for (const auto& r : Impl::table()) {
            v.push_back({r.method, r.pattern, r.example, r.access});
        }
        return v;
    }();
    return out;
}

}  // namespace bzs::web
