// SPDX-License-Identifier: GPL-3.0-or-later
// The web server end to end over HTTP(S): authentication on every route, CSRF,
// headers, escaping, pairing, revoking, the JSON API and the certificate.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/protocol/link.h"
#include "phone.h"
#include "store/sqlite.h"
#include "web/html.h"
#include "web_fixture.h"

namespace bzs::web::test {
namespace {

using nlohmann::json;

void expect_security_headers(const httplib::Result& r, const std::string& what) {
    ASSERT_TRUE(r) << what;
    EXPECT_EQ(r->get_header_value("Content-Security-Policy"),
              "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        << what;
    EXPECT_EQ(r->get_header_value("X-Frame-Options"), "DENY") << what;
    EXPECT_EQ(r->get_header_value("Referrer-Policy"), "no-referrer") << what;
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << what;
}

httplib::Result call(httplib::Client& c, const RouteInfo& r, const httplib::Headers& h = {}) {
    return r.method == "GET" ? c.Get(r.example, h) : c.Post(r.example, h, "", "text/plain");
}

TEST(WebRoutes, EveryRouteWithoutASessionIsRefused) {
    WebFixture f;
    auto c = f.client();
    std::set<std::string> publics;
    for (const auto& r : Server::routes()) {
        // Each example path matches its own pattern (so the request reaches this route).
        EXPECT_TRUE(std::regex_match(r.example, std::regex(r.pattern))) << r.pattern;
        const auto res = call(c, r);
        ASSERT_TRUE(res) << r.method << " " << r.example;
        if (r.pattern.rfind("/app", 0) != 0) {
            expect_security_headers(res, r.method + " " + r.example);
        }  // the phone app has its own CSP (app_serving_test.cpp)
        if (r.access == Access::Public) {
            publics.insert(r.method + " " + r.example);
        } else if (r.access == Access::Page) {
            EXPECT_EQ(res->status, 303) << r.method << " " << r.example;
            EXPECT_EQ(res->get_header_value("Location"), "/login") << r.example;
        } else {
            EXPECT_EQ(res->status, 401) << r.method << " " << r.example;
            EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
        }
        // A forged cookie is no session either.
        const auto forged =
            call(c, r, {{"Cookie", "bzs_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}});
        ASSERT_TRUE(forged);
        if (r.access == Access::Page) {
            EXPECT_EQ(forged->status, 303) << r.example;
        } else if (r.access == Access::Api) {
            EXPECT_EQ(forged->status, 401) << r.example;
        }
    }
    // Only sign-in, the static assets and the phone app are public.
    EXPECT_EQ(publics, (std::set<std::string>{"GET /static/app.css", "GET /static/app.js",
                                              "GET /app", "GET /app/index.html", "GET /login",
                                              "POST /login", "POST /api/v1/login"}));
    expect_security_headers(c.Get("/no/such/page"), "404");
}

TEST(WebAuth, SignInSetsAStrictHttpOnlyCookieAndStoresOnlyItsHash) {
    WebFixture f;
    const auto s = f.sign_in();
    ASSERT_FALSE(s.cookie.empty());
    ASSERT_FALSE(s.csrf.empty());
    auto c = f.client();
    // Sign in again to look at the raw header.
    auto page = c.Get("/login");
    const auto lc = WebFixture::cookie_value(page->get_header_value("Set-Cookie"));
    auto res =
        c.Post("/login", {{"Cookie", lc}},
               httplib::Params{{"csrf", lc.substr(lc.find('=') + 1)}, {"password", kPassword}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 303);
    const std::string set_cookie = res->get_header_value("Set-Cookie");
    EXPECT_EQ(set_cookie.rfind("bzs_session=", 0), 0u) << set_cookie;
    EXPECT_NE(set_cookie.find("; HttpOnly"), std::string::npos) << set_cookie;
    EXPECT_NE(set_cookie.find("; SameSite=Strict"), std::string::npos) << set_cookie;
    EXPECT_EQ(set_cookie.find("Secure"), std::string::npos) << "plain HTTP: " << set_cookie;
    const std::string token = WebFixture::cookie_value(set_cookie).substr(12);
    EXPECT_GE(token.size(), 43u);  // 256 bits, base64url

    EXPECT_EQ(f.store->count_sessions(), 2);
    for (const char* file : {"bluezscript.db", "bluezscript.db-wal"}) {
        const auto p = f.cfg.daemon.state_dir / file;
        if (std::filesystem::exists(p)) {
            EXPECT_EQ(bzs::test::read_file(p).find(token), std::string::npos) << file;
        }
    }
    EXPECT_EQ(f.log_text().find(kPassword), std::string::npos);
    EXPECT_EQ(f.log_text().find(token), std::string::npos);

    auto dash = c.Get("/", {{"Cookie", WebFixture::cookie_value(set_cookie)}});
    ASSERT_TRUE(dash);
    EXPECT_EQ(dash->status, 200);
    EXPECT_EQ(dash->get_header_value("Cache-Control"), "no-store");
}

TEST(WebAuth, WrongPasswordIsRefusedAndSignInIsRateLimitedPerAddress) {
    WebFixture f;  // 3 failures per 15 minutes
    auto c = f.client();
    auto attempt = [&](const std::string& pw) {
        auto page = c.Get("/login");
        const auto lc = WebFixture::cookie_value(page->get_header_value("Set-Cookie"));
        return c.Post("/login", {{"Cookie", lc}},
                      httplib::Params{{"csrf", lc.substr(lc.find('=') + 1)}, {"password", pw}});
    };
    for (int i = 0; i < 3; ++i) {
        const auto r = attempt("wrong password " + std::to_string(i));
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 401);
        EXPECT_FALSE(r->has_header("Set-Cookie") &&
                     r->get_header_value("Set-Cookie").rfind("bzs_session", 0) == 0);
    }
    // Limit reached: even the right password is refused now.
    auto r = attempt(kPassword);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 429);
    auto api = c.Post("/api/v1/login", json{{"password", kPassword}}.dump(), "application/json");
    ASSERT_TRUE(api);
    EXPECT_EQ(api->status, 429);
    EXPECT_EQ(f.store->count_sessions(), 0);
    // 15 minutes later the failures no longer count.
    f.now += 15 * 60 + 1;
    r = attempt(kPassword);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 303);
    EXPECT_EQ(f.log_text().find("wrong password"), std::string::npos);
}

TEST(WebAuth, SignInFormNeedsItsOwnToken) {
    WebFixture f;
    auto c = f.client();
    auto r = c.Post("/login", httplib::Params{{"password", kPassword}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 403);
    EXPECT_EQ(f.store->count_sessions(), 0);
}

TEST(WebAuth, SessionsExpireWhenIdleAndAtTheAbsoluteLimitAndOnSignOut) {
    WebFixture f;
    auto c = f.client();
    auto s = f.sign_in();
    f.now += 29 * 60;
    EXPECT_EQ(c.Get("/", {{"Cookie", s.cookie}})->status, 200);
    f.now += 31 * 60;  // idle > 30 min
    EXPECT_EQ(c.Get("/", {{"Cookie", s.cookie}})->status, 303);

    s = f.sign_in();
    for (int i = 0; i < 25; ++i) {  // active every 29 min for 12 h+
        f.now += 29 * 60;
        if (c.Get("/", {{"Cookie", s.cookie}})->status != 200) break;
    }
    EXPECT_EQ(c.Get("/", {{"Cookie", s.cookie}})->status, 303);

    s = f.sign_in();
    auto out = c.Post("/logout", {{"Cookie", s.cookie}}, httplib::Params{{"csrf", s.csrf}});
    ASSERT_TRUE(out);
    EXPECT_EQ(out->status, 303);
    EXPECT_EQ(c.Get("/", {{"Cookie", s.cookie}})->status, 303);
}

TEST(WebCsrf, PostWithoutOrWithAWrongTokenChangesNothing) {
    WebFixture f;
    const auto np = f.store->add_device("phone", {"hello"}, f.now, 300);
    const auto s = f.sign_in();
    auto c = f.client();
    const std::string path = "/devices/" + np.device.id_hex + "/rename";
    auto r = c.Post(path, {{"Cookie", s.cookie}}, httplib::Params{{"name", "evil"}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 403);
    r = c.Post(path, {{"Cookie", s.cookie}},
               httplib::Params{{"name", "evil"}, {"csrf", "x" + s.csrf}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 403);
    auto api = c.Post("/api/v1/devices/" + np.device.id_hex + "/revoke", {{"Cookie", s.cookie}},
                      "{}", "application/json");
    ASSERT_TRUE(api);
    EXPECT_EQ(api->status, 403);
    EXPECT_EQ(f.store->find_device(np.device.id_hex)->name, "phone");
    EXPECT_FALSE(f.store->find_device(np.device.id_hex)->revoked());
    // Every non-public POST route refuses a signed-in request without the token.
    for (const auto& route : Server::routes()) {
        if (route.method != "POST" || route.access == Access::Public) continue;
        const auto res = c.Post(route.example, {{"Cookie", s.cookie}}, "", "text/plain");
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 403) << route.example;
    }
    EXPECT_EQ(f.store->count_sessions(), 1);  // /logout without a token did not sign out
    // With the token the same request works.
    r = c.Post(path, {{"Cookie", s.cookie}},
               httplib::Params{{"name", "kitchen"}, {"csrf", s.csrf}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 303);
    EXPECT_EQ(f.store->find_device(np.device.id_hex)->name, "kitchen");
}

TEST(WebEscaping, MarkupInADeviceNameRendersInert) {
    WebFixture f;
    const std::string evil = "<script>alert(1)</script>\"'&";
    const auto np = f.store->add_device(evil, {"hello"}, f.now, 300);
    f.store->audit_event("ble", np.device.id_hex, "hello", core::protocol::Status::BadMac,
                         "bad <img src=x> detail", f.now);
    EXPECT_EQ(esc(evil), "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;");
    const auto s = f.sign_in();
    auto c = f.client();
    for (const std::string& path : std::vector<std::string>{
             "/", "/devices", "/devices/" + np.device.id_hex,
             "/devices/" + np.device.id_hex + "/revoke", "/audit", "/actions"}) {
        auto r = c.Get(path, {{"Cookie", s.cookie}});
        ASSERT_TRUE(r) << path;
        EXPECT_EQ(r->status, 200) << path;
        EXPECT_EQ(r->body.find("<script>alert"), std::string::npos) << path;
        EXPECT_EQ(r->body.find("<img"), std::string::npos) << path;
        EXPECT_EQ(r->body.find("<b>hello"), std::string::npos) << path;
        // Our only script tag is the external one.
        EXPECT_EQ(r->body.find("<script>"), std::string::npos) << path;
        if (path != "/actions") {
            EXPECT_NE(r->body.find(esc(evil)), std::string::npos) << path;
        }
    }
}

/// The code of a v2 link as the link spells it (base32), or "".
std::string code_of(const std::string& uri) {
    const auto p = core::protocol::parse_link(uri);
    EXPECT_TRUE(p.link) << p.error;
    return p.link ? core::crypto::base32_encode(p.link->code.view(), false) : std::string();
}

/// The canonical link on a pairing page, unescaped.
std::string link_on(const std::string& body) {
    std::smatch m;
    EXPECT_TRUE(std::regex_search(body, m, std::regex("(bluezscript://pair\\?[^<]+)"))) << body;
    return m.empty() ? std::string() : std::regex_replace(m[1].str(), std::regex("&amp;"), "&");
}

/// What the daemon's pairing exchange leaves (secret stored, code gone), written
/// through SQLite as the daemon's own connection would.
void activate(WebFixture& f, const std::string& id_hex, std::int64_t at) {
    const auto id = core::crypto::hex_decode(id_hex);
    ASSERT_TRUE(id);
    const auto secret = core::crypto::random_bytes(32);
    store::sql::Db db(f.cfg.db_path());
    store::sql::Stmt up(db,
                        "UPDATE devices SET secret_token = ?1, key_id = ?2, paired_at = ?3, "
                        "code_token = '', code_key_id = 0, code_expires = NULL WHERE id = ?4");
    up.bind(1, f.store->keys().current().encrypt(secret, at))
        .bind(2, f.store->keys().current_id())
        .bind(3, at)
        .bind(4, std::span<const std::uint8_t>(*id))
        .run();
}

TEST(WebPairing, TheCodeIsShownOnceInThePostAnswerAndNowhereElse) {
    WebFixture f;
    const auto s = f.sign_in();
    auto c = f.client();
    auto r =
        c.Post("/pair", {{"Cookie", s.cookie}},
               httplib::Params{{"csrf", s.csrf}, {"name", "alice-phone"}, {"actions", "hello"}});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store");
    EXPECT_NE(r->body.find("data-testid=\"pair-qr\"><svg"), std::string::npos);
    EXPECT_NE(r->body.find("Waiting for the phone"), std::string::npos);
    const std::string uri = link_on(r->body);
    EXPECT_EQ(uri.rfind("bluezscript://pair?v=2&", 0), 0U) << uri;
    const std::string code = code_of(uri);
    ASSERT_EQ(code.size(), 26U);
    const auto dev = f.store->find_device("alice-phone");
    ASSERT_TRUE(dev);
    EXPECT_EQ(dev->state(), store::DeviceState::Pending);
    EXPECT_EQ(dev->actions, std::vector<std::string>{"hello"});
    EXPECT_EQ(dev->code_expires, f.now + 300);
    EXPECT_EQ(f.store->setting("pairing_window_until"), std::to_string(f.now + 300));
    // The script moves the address bar here, so a reload shows the state.
    EXPECT_NE(r->body.find("data-page-url=\"/devices/" + dev->id_hex + "/pairing\""),
              std::string::npos);

    // The state endpoint: the state and the time left, never the code.
    const std::string state_url = "/api/v1/devices/" + dev->id_hex + "/pairing";
    auto st = c.Get(state_url, {{"Cookie", s.cookie}});
    ASSERT_TRUE(st);
    ASSERT_EQ(st->status, 200);
    auto j = json::parse(st->body);
    EXPECT_EQ(j["state"], "pending");
    EXPECT_EQ(j["name"], "alice-phone");
    EXPECT_EQ(j["code_expires"], f.now + 300);
    EXPECT_EQ(j["code_remaining"], 300);
    EXPECT_TRUE(j["passkey"].is_null());
    EXPECT_FALSE(j.contains("uri"));
    EXPECT_FALSE(j.contains("code"));

    // The daemon's agent stored a passkey for this pairing: the page can show it.
    f.store->set_setting(
        "pairing_passkey",
        json{{"passkey", 4242}, {"time", f.now.load()}, {"device", "/org/bluez/x"}}.dump());
    j = json::parse(c.Get(state_url, {{"Cookie", s.cookie}})->body);
    EXPECT_EQ(j["passkey"], "004242");

    // The pairing page by GET: live state, no QR code, a button for a new code.
    auto page = c.Get("/devices/" + dev->id_hex + "/pairing", {{"Cookie", s.cookie}});
    ASSERT_TRUE(page);
    ASSERT_EQ(page->status, 200);
    EXPECT_NE(page->body.find("Waiting for the phone"), std::string::npos);
    EXPECT_EQ(page->body.find("pair-qr"), std::string::npos);
    EXPECT_NE(page->body.find("data-testid=\"pair-new-code\""), std::string::npos);

    // The code expires.
    f.now += 301;
    j = json::parse(c.Get(state_url, {{"Cookie", s.cookie}})->body);
    EXPECT_EQ(j["state"], "pending");
    EXPECT_EQ(j["code_remaining"], 0);
    EXPECT_TRUE(j["passkey"].is_null());
    page = c.Get("/devices/" + dev->id_hex + "/pairing", {{"Cookie", s.cookie}});
    EXPECT_NE(page->body.find("Code expired &mdash; get a new code."), std::string::npos);
    EXPECT_NE(c.Get("/devices", {{"Cookie", s.cookie}})->body.find("pending (code expired)"),
              std::string::npos);
    for (const std::string& path : std::vector<std::string>{
             "/", "/devices", "/devices/" + dev->id_hex, "/devices/" + dev->id_hex + "/pairing",
             "/audit", "/actions", "/pair", state_url, "/api/v1/devices",
             "/api/v1/devices/" + dev->id_hex, "/api/v1/audit", "/api/v1/status"}) {
        auto p = c.Get(path, {{"Cookie", s.cookie}});
        ASSERT_TRUE(p) << path;
        EXPECT_EQ(p->status, 200) << path;
        EXPECT_EQ(p->body.find(code), std::string::npos) << path;
        EXPECT_EQ(p->body.find("bluezscript://pair"), std::string::npos) << path;
    }
    EXPECT_EQ(f.log_text().find(code), std::string::npos);
    EXPECT_EQ(f.log_text().find("code="), std::string::npos);
    EXPECT_NE(f.log_text().find("web: device " + dev->id_hex + " created"), std::string::npos);
}

TEST(WebPairing, ReloadingThePairingPageCreatesNoDevice) {
    WebFixture f;
    const auto s = f.sign_in();
    auto c = f.client();
    auto r = c.Post("/pair", {{"Cookie", s.cookie}},
                    httplib::Params{{"csrf", s.csrf}, {"name", "alice-phone"}});
    ASSERT_EQ(r->status, 200);
    const auto dev = f.store->find_device("alice-phone");
    ASSERT_TRUE(dev);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(c.Get("/devices/" + dev->id_hex + "/pairing", {{"Cookie", s.cookie}})->status,
                  200);
    }
    // A browser without the script re-posts the form: the name is taken, nothing is added.
    r = c.Post("/pair", {{"Cookie", s.cookie}},
               httplib::Params{{"csrf", s.csrf}, {"name", "alice-phone"}});
    EXPECT_EQ(r->status, 400);
    EXPECT_NE(r->body.find("already exists"), std::string::npos);
    EXPECT_EQ(f.store->list_devices().size(), 1U);
}

TEST(WebPairing, ANewCodeReplacesTheOldOneForAPendingDeviceOnly) {
    WebFixture f;
    const auto s = f.sign_in();
    auto c = f.client();
    auto r = c.Post("/pair", {{"Cookie", s.cookie}},
                    httplib::Params{{"csrf", s.csrf}, {"name", "alice-phone"}});
    ASSERT_EQ(r->status, 200);
    const std::string first = code_of(link_on(r->body));
    const auto dev = f.store->find_device("alice-phone");
    ASSERT_TRUE(dev);
    // The devices list offers it for the pending device.
    const auto list = c.Get("/devices", {{"Cookie", s.cookie}})->body;
    EXPECT_NE(list.find("data-testid=\"device-new-code-" + dev->id_hex + "\""), std::string::npos);
    EXPECT_NE(list.find("pending (code expires "), std::string::npos);

    f.now += 400;  // the first code has expired
    r = c.Post("/devices/" + dev->id_hex + "/code", {{"Cookie", s.cookie}},
               httplib::Params{{"csrf", s.csrf}});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const std::string second = code_of(link_on(r->body));
    EXPECT_NE(second, first);
    EXPECT_EQ(r->body.find(first), std::string::npos);
    const auto pending = f.store->load_pending(dev->id);
    ASSERT_TRUE(pending);
    EXPECT_EQ(core::crypto::base32_encode(pending->code.view(), false), second);
    EXPECT_EQ(pending->code_expires, f.now + 300);
    EXPECT_EQ(f.store->setting("pairing_window_until"), std::to_string(f.now + 300));
    EXPECT_EQ(f.store->list_devices().size(), 1U);

    // The JSON API does the same.
    const httplib::Headers h{{"Cookie", s.cookie}, {"X-CSRF-Token", s.csrf}};
    auto api = c.Post("/api/v1/devices/" + dev->id_hex + "/code", h, "", "application/json");
    ASSERT_EQ(api->status, 200) << api->body;
    const auto aj = json::parse(api->body);
    EXPECT_EQ(aj["device"]["state"], "pending");
    EXPECT_EQ(aj["code_expires"], f.now + 300);
    EXPECT_NE(code_of(aj["uri"].get<std::string>()), second);

    // Once the phone paired: no new code, and the page and state say so.
    activate(f, dev->id_hex, f.now);
    r = c.Post("/devices/" + dev->id_hex + "/code", {{"Cookie", s.cookie}},
               httplib::Params{{"csrf", s.csrf}});
    EXPECT_EQ(r->status, 409);
    EXPECT_NE(r->body.find("device &#39;alice-phone&#39; is already paired; revoke it and add it "
                           "again to pair another phone"),
              std::string::npos)
        << r->body;
    api = c.Post("/api/v1/devices/" + dev->id_hex + "/code", h, "", "application/json");
    EXPECT_EQ(api->status, 409);
    const auto j = json::parse(
        c.Get("/api/v1/devices/" + dev->id_hex + "/pairing", {{"Cookie", s.cookie}})->body);
    EXPECT_EQ(j["state"], "active");
    EXPECT_TRUE(j["code_expires"].is_null());
    const auto page = c.Get("/devices/" + dev->id_hex + "/pairing", {{"Cookie", s.cookie}})->body;
    EXPECT_NE(page.find("Paired as alice-phone."), std::string::npos);
    EXPECT_EQ(page.find("pair-new-code"), std::string::npos);
    EXPECT_EQ(c.Get("/devices", {{"Cookie", s.cookie}})->body.find("device-new-code-"),
              std::string::npos);

    // Revoked: refused too.
    c.Post("/devices/" + dev->id_hex + "/revoke", {{"Cookie", s.cookie}},
           httplib::Params{{"csrf", s.csrf}});
    r = c.Post("/devices/" + dev->id_hex + "/code", {{"Cookie", s.cookie}},
               httplib::Params{{"csrf", s.csrf}});
    EXPECT_EQ(r->status, 409);
}

// The whole path: the code on the page, used once by a phone's pair request
// (Store::authorize, as the daemon runs it), then the page and the state say so.
TEST(WebPairing, AfterTheExchangeThePageSaysPairedAndTheCodeIsUsed) {
    WebFixture f;
    const auto s = f.sign_in();
    auto c = f.client();
    auto r = c.Post("/pair", {{"Cookie", s.cookie}},
                    httplib::Params{{"csrf", s.csrf}, {"name", "alice-phone"}});
    ASSERT_EQ(r->status, 200);
    const auto link = core::protocol::parse_link(link_on(r->body));
    ASSERT_TRUE(link.link) << link.error;
    const auto pi_public = f.store->pi_public_key();
    EXPECT_EQ(link.link->pi_key, core::protocol::key_fingerprint(pi_public));

    core::protocol::Nonce challenge{};
    challenge.fill(7);
    const auto attempt = bzs::test::pair_request(link.link->pi_id, pi_public, link.link->device_id,
                                                 link.link->code, challenge);
    store::AuthorizeRequest req;
    req.frame = attempt.frame;
    req.now = f.now;
    req.expected_challenge = challenge;
    const auto a = f.store->authorize(req);
    ASSERT_EQ(a.decision.status, core::protocol::Status::Ok) << a.decision.detail;

    const std::string id = core::crypto::hex_encode(link.link->device_id);
    const auto j =
        json::parse(c.Get("/api/v1/devices/" + id + "/pairing", {{"Cookie", s.cookie}})->body);
    EXPECT_EQ(j["state"], "active");
    EXPECT_EQ(j["name"], "alice-phone");
    const auto page = c.Get("/devices/" + id + "/pairing", {{"Cookie", s.cookie}})->body;
    EXPECT_NE(page.find("Paired as alice-phone."), std::string::npos);
    EXPECT_EQ(page.find("pair-new-code"), std::string::npos);

    // The same code a second time: refused as used.
    challenge.fill(8);
    const auto again = bzs::test::pair_request(link.link->pi_id, pi_public, link.link->device_id,
                                               link.link->code, challenge);
    req.frame = again.frame;
    req.expected_challenge = challenge;
    EXPECT_EQ(f.store->authorize(req).decision.status, core::protocol::Status::CodeUsed);
}

TEST(WebPairing, TheStateEndpointNeedsASession) {
    WebFixture f;
    const auto np = f.store->add_device("phone", {}, f.now, 300);
    auto c = f.client();
    auto r = c.Get("/api/v1/devices/" + np.device.id_hex + "/pairing");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(r->body.find("pending"), std::string::npos);
    // A stale or forged cookie is no session either.
    r = c.Get("/api/v1/devices/" + np.device.id_hex + "/pairing",
              {{"Cookie", "bzs_session=forged"}});
    EXPECT_EQ(r->status, 401);
    const auto s = f.sign_in();
    r = c.Get("/api/v1/devices/" + std::string(32, '0') + "/pairing", {{"Cookie", s.cookie}});
    EXPECT_EQ(r->status, 404);
}

TEST(WebPairing, BadInputIsExplainedOnTheForm) {
    WebFixture f;
    const auto s = f.sign_in();
    auto c = f.client();
    auto r = c.Post("/pair", {{"Cookie", s.cookie}},
                    httplib::Params{{"csrf", s.csrf}, {"name", "x"}, {"actions", "nope"}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_NE(r->body.find("There is no action named &#39;nope&#39;."), std::string::npos);
    EXPECT_FALSE(f.store->find_device("x"));
}

TEST(WebPairing, ANewPairingForgetsThePasskeyOfAnEarlierBonding) {
    WebFixture f;
    f.store->set_setting("pairing_passkey",
                         json{{"passkey", "123456"}, {"time", f.now.load()}}.dump());
    const auto s = f.sign_in();
    auto c = f.client();
    auto r =
        c.Post("/pair", {{"Cookie", s.cookie}}, httplib::Params{{"csrf", s.csrf}, {"name", "bob"}});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(f.store->setting("pairing_passkey"), "");
    const auto dev = f.store->find_device("bob");
    ASSERT_TRUE(dev);
    auto j = json::parse(
        c.Get("/api/v1/devices/" + dev->id_hex + "/pairing", {{"Cookie", s.cookie}})->body);
    EXPECT_TRUE(j["passkey"].is_null());
}

TEST(WebPairing, DamagedSettingsReadAsAClosedWindowWithoutPasskey) {
    WebFixture f;
    const auto np = f.store->add_device("phone", {}, f.now, 300);
    f.store->set_setting("pairing_window_until", "soon");
    f.store->set_setting("pairing_passkey", "{not json");
    const auto s = f.sign_in();
    auto c = f.client();
    auto st = c.Get("/api/v1/devices/" + np.device.id_hex + "/pairing", {{"Cookie", s.cookie}});
    ASSERT_TRUE(st);
    ASSERT_EQ(st->status, 200);
    auto j = json::parse(st->body);
    EXPECT_TRUE(j["passkey"].is_null());
    auto status = c.Get("/api/v1/status", {{"Cookie", s.cookie}});
    ASSERT_TRUE(status);
    EXPECT_EQ(json::parse(status->body)["pairing_window_remaining"], 0);
}

TEST(WebDevices, RevokeThroughTheConfirmationWritesTheStoreAndTheAudit) {
    WebFixture f;
    const auto np = f.store->add_device("phone", {"hello"}, f.now, 300);
    const auto s = f.sign_in();
    auto c = f.client();
    auto confirm = c.Get("/devices/" + np.device.id_hex + "/revoke", {{"Cookie", s.cookie}});
    ASSERT_TRUE(confirm);
    EXPECT_NE(confirm->body.find("data-testid=\"revoke-confirm\""), std::string::npos);
    EXPECT_FALSE(f.store->find_device(np.device.id_hex)->revoked());
    auto r = c.Post("/devices/" + np.device.id_hex + "/revoke", {{"Cookie", s.cookie}},
                    httplib::Params{{"csrf", s.csrf}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 303);
    EXPECT_EQ(r->get_header_value("Location"), "/devices?msg=revoked");
    EXPECT_TRUE(f.store->find_device(np.device.id_hex)->revoked());
    store::AuditFilter af;
    const auto rows = f.store->audit(af);
    ASSERT_FALSE(rows.empty());
    EXPECT_EQ(rows[0].transport, "web");
    EXPECT_EQ(rows[0].status, "revoked");
    EXPECT_EQ(rows[0].device_id_hex, np.device.id_hex);
    // Revoking twice is explained, not a crash.
    r = c.Post("/devices/" + np.device.id_hex + "/revoke", {{"Cookie", s.cookie}},
               httplib::Params{{"csrf", s.csrf}});
    EXPECT_EQ(r->status, 409);
}

TEST(WebDevices, PermissionsFormAllowsAndDenies) {
    WebFixture f;
    const auto np = f.store->add_device("phone", {"hello"}, f.now, 300);
    const auto s = f.sign_in();
    auto c = f.client();
    auto r = c.Post("/devices/" + np.device.id_hex + "/permissions", {{"Cookie", s.cookie}},
                    httplib::Params{{"csrf", s.csrf}});
    EXPECT_EQ(r->status, 303);
    EXPECT_TRUE(f.store->find_device(np.device.id_hex)->actions.empty());
    r = c.Post("/devices/" + np.device.id_hex + "/permissions", {{"Cookie", s.cookie}},
               httplib::Params{{"csrf", s.csrf}, {"actions", "hello"}});
    EXPECT_EQ(r->status, 303);
    EXPECT_EQ(f.store->find_device(np.device.id_hex)->actions, std::vector<std::string>{"hello"});
}

TEST(WebApi, JsonEndpointsWorkWithTheCookieAndTheCsrfHeader) {
    WebFixture f;
    auto c = f.client();
    auto login = c.Post("/api/v1/login", json{{"password", kPassword}}.dump(), "application/json");
    ASSERT_TRUE(login);
    ASSERT_EQ(login->status, 200);
    const std::string csrf = json::parse(login->body)["csrf_token"];
    const httplib::Headers h{
        {"Cookie", WebFixture::cookie_value(login->get_header_value("Set-Cookie"))},
        {"X-CSRF-Token", csrf}};
    // Form-encoded sign-in to the JSON route is refused (it would be cross-site postable).
    EXPECT_EQ(c.Post("/api/v1/login", "password=x", "application/x-www-form-urlencoded")->status,
              415);

    auto pair = c.Post("/api/v1/pair", h, json{{"name", "bob"}, {"actions", {"hello"}}}.dump(),
                       "application/json");
    ASSERT_TRUE(pair);
    ASSERT_EQ(pair->status, 201) << pair->body;
    const auto pj = json::parse(pair->body);
    const std::string id = pj["device"]["id"];
    EXPECT_EQ(pj["uri"].get<std::string>().rfind("bluezscript://pair?v=2&", 0), 0u);
    EXPECT_EQ(pj["device"]["state"], "pending");
    EXPECT_EQ(pj["code_expires"], f.now + 300);

    auto devs = json::parse(c.Get("/api/v1/devices", h)->body);
    ASSERT_EQ(devs.size(), 1u);
    EXPECT_EQ(devs[0]["name"], "bob");

    auto perm = c.Post("/api/v1/devices/" + id + "/permissions", h,
                       json{{"actions", json::array()}}.dump(), "application/json");
    ASSERT_EQ(perm->status, 200) << perm->body;
    EXPECT_TRUE(json::parse(perm->body)["actions"].empty());
    auto bad = c.Post("/api/v1/devices/" + id + "/permissions", h,
                      json{{"actions", {"nope"}}}.dump(), "application/json");
    EXPECT_EQ(bad->status, 400);
    EXPECT_EQ(json::parse(bad->body)["error"], "There is no action named 'nope'.");

    auto ren = c.Post("/api/v1/devices/" + id + "/rename", h, json{{"name", "robert"}}.dump(),
                      "application/json");
    ASSERT_EQ(ren->status, 200);
    EXPECT_EQ(json::parse(ren->body)["name"], "robert");

    auto acts = json::parse(c.Get("/api/v1/actions", h)->body);
    ASSERT_EQ(acts.size(), 1u);
    EXPECT_EQ(acts[0]["name"], "hello");
    EXPECT_EQ(acts[0]["timeout_seconds"], 10);

    auto run = c.Post("/api/v1/actions/hello/run", h, "", "application/json");
    ASSERT_EQ(run->status, 202);
    EXPECT_EQ(f.runs, std::vector<std::string>{"hello"});
    EXPECT_EQ(c.Post("/api/v1/actions/nope/run", h, "", "application/json")->status, 404);

    // The address an accepted command came from, in the API and the device list.
    EXPECT_TRUE(json::parse(c.Get("/api/v1/devices", h)->body)[0]["ble_address"].is_null());
    f.store->set_device_address(f.store->find_device(id)->id, "AA:BB:CC:DD:EE:01");
    EXPECT_EQ(json::parse(c.Get("/api/v1/devices", h)->body)[0]["ble_address"],
              "AA:BB:CC:DD:EE:01");
    EXPECT_NE(c.Get("/devices", h)
                  ->body.find("<td data-testid=\"device-ble-address\">AA:BB:CC:DD:EE:01</td>"),
              std::string::npos);

    EXPECT_EQ(f.revoked_calls, 0);
    auto rev = c.Post("/api/v1/devices/" + id + "/revoke", h, "", "application/json");
    ASSERT_EQ(rev->status, 200);
    EXPECT_EQ(json::parse(rev->body)["revoked"], true);
    EXPECT_EQ(f.revoked_calls, 1);  // the daemon removes the bond at once
    auto audit = json::parse(c.Get("/api/v1/audit?result=refused", h)->body);
    ASSERT_FALSE(audit.empty());
    EXPECT_EQ(audit[0]["status"], "revoked");
    EXPECT_EQ(c.Get("/api/v1/audit?result=maybe", h)->status, 400);

    auto st = json::parse(c.Get("/api/v1/status", h)->body);
    EXPECT_EQ(st["ble"]["summary"], "BLE status not known yet");
    BleSnapshot b;
    b.enabled = true;
    b.summary = "BLE: advertising on hci0";
    b.adapter = "hci0";
    b.advertising = true;
    f.server->set_ble(b);
    st = json::parse(c.Get("/api/v1/status", h)->body);
    EXPECT_EQ(st["ble"]["adapter"], "hci0");
    EXPECT_EQ(st["ble"]["advertising"], true);

    EXPECT_EQ(c.Post("/api/v1/logout", h, "", "application/json")->status, 200);
    EXPECT_EQ(c.Get("/api/v1/devices", h)->status, 401);
}

TEST(WebActions, RunNowGoesThroughTheHook) {
    WebFixture f;
    const auto s = f.sign_in();
    auto c = f.client();
    auto page = c.Get("/actions", {{"Cookie", s.cookie}});
    ASSERT_TRUE(page);
    EXPECT_NE(page->body.find("data-testid=\"run-hello\""), std::string::npos);
    EXPECT_NE(page->body.find("Say &lt;b&gt;hello&lt;/b&gt;"), std::string::npos);
    auto r =
        c.Post("/actions/hello/run", {{"Cookie", s.cookie}}, httplib::Params{{"csrf", s.csrf}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 303);
    EXPECT_EQ(f.runs, std::vector<std::string>{"hello"});
}

TEST(WebTls, SelfSignedCertificateIsPrivateAndServedOverHttps) {
    WebFixture f(true);
    EXPECT_TRUE(f.cert_created);
    for (const auto& p : {f.cfg.web_cert_path(), f.cfg.web_key_path()}) {
        struct stat sb {};
        ASSERT_EQ(::stat(p.c_str(), &sb), 0) << p;
        EXPECT_EQ(sb.st_mode & 0777, 0600u) << p;
    }
    EXPECT_EQ(f.fingerprint.size(), 95u);
    // A second start keeps the same certificate.
    bool again = true;
    EXPECT_EQ(ensure_certificate(f.cfg, &again), f.fingerprint);
    EXPECT_FALSE(again);

    ASSERT_GT(f.server->https_port(), 0);
    httplib::SSLClient c("127.0.0.1", f.server->https_port());
    c.enable_server_certificate_verification(false);
    c.set_connection_timeout(5);
    auto r = c.Get("/login");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200);
    expect_security_headers(r, "https /login");
    EXPECT_NE(r->get_header_value("Set-Cookie").find("; Secure"), std::string::npos);

    auto page = c.Get("/login");
    const auto lc = WebFixture::cookie_value(page->get_header_value("Set-Cookie"));
    auto in =
        c.Post("/login", {{"Cookie", lc}},
               httplib::Params{{"csrf", lc.substr(lc.find('=') + 1)}, {"password", kPassword}});
    ASSERT_TRUE(in);
    EXPECT_EQ(in->status, 303);
    const auto sc = in->get_header_value("Set-Cookie");
    EXPECT_NE(sc.find("; Secure"), std::string::npos) << sc;
    EXPECT_NE(sc.find("; HttpOnly"), std::string::npos) << sc;

    // The certificate the server presents is the one whose fingerprint was logged.
    if (bzs::test::have_program("openssl")) {
        const auto out = bzs::test::run_command(
            {"sh", "-c",
             "openssl s_client -connect 127.0.0.1:" + std::to_string(f.server->https_port()) +
                 " </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"});
        EXPECT_NE(out.out.find(f.fingerprint), std::string::npos) << out.out;
    }
}

}  // namespace
}  // namespace bzs::web::test
