// SPDX-License-Identifier: GPL-3.0-or-later
// The phone app served at /app/ from web.app_dir (content types, CSP, no way out of
// the folder, a clear page when it is not installed) and the QR code that points
// phones at it. The link itself is tested in tests/unit/service/app_link_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/protocol/link.h"
#include "service/app_link.h"
#include "web_fixture.h"

namespace bzs::web::test {
namespace {

namespace fs = std::filesystem;

const std::string kAppCspText =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; worker-src 'self'; "
    "manifest-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'";

void install_app(const fs::path& dir) {
    fs::create_directories(dir / "icons");
    bzs::test::write_file(dir / "index.html", "<!doctype html><title>app</title>", 0644);
    bzs::test::write_file(dir / "app.js", "console.log(1)", 0644);
    bzs::test::write_file(dir / "sw.js", "self.x=1", 0644);
    bzs::test::write_file(dir / "app.css", "body{}", 0644);
    bzs::test::write_file(dir / "manifest.webmanifest", "{}", 0644);
    bzs::test::write_file(dir / "icons" / "icon-192.png", "\x89PNG", 0644);
    bzs::test::write_file(dir / "secret.db", "not served", 0644);
    bzs::test::write_file(dir / ".hidden.js", "not served", 0644);
}

TEST(WebApp, NotInstalledGivesAPageThatSaysWhereItLooked) {
    WebFixture f;
    auto c = f.client();
    for (const char* path : {"/app/", "/app/index.html", "/app/app.js"}) {
        auto r = c.Get(path);
        ASSERT_TRUE(r) << path;
        EXPECT_EQ(r->status, 404) << path;
        EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
        EXPECT_NE(r->body.find("data-testid=\"app-missing\""), std::string::npos) << r->body;
        EXPECT_NE(r->body.find((f.dir / "app").string()), std::string::npos) << r->body;
        EXPECT_NE(r->body.find("app_dir"), std::string::npos);
        EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
    }
}

TEST(WebApp, ServesTheBuiltFilesWithTheirTypesAndTheAppCsp) {
    WebFixture f;
    install_app(f.dir / "app");
    auto c = f.client();  // no session: the phone is not the owner
    auto root = c.Get("/app");
    ASSERT_TRUE(root);
    EXPECT_EQ(root->status, 301);
    EXPECT_EQ(root->get_header_value("Location"), "/app/");
    const std::vector<std::pair<std::string, std::string>> files = {
        {"/app/", "text/html; charset=utf-8"},
        {"/app/index.html", "text/html; charset=utf-8"},
        {"/app/app.js", "text/javascript; charset=utf-8"},
        {"/app/sw.js", "text/javascript; charset=utf-8"},
        {"/app/app.css", "text/css; charset=utf-8"},
        {"/app/manifest.webmanifest", "application/manifest+json"},
        {"/app/icons/icon-192.png", "image/png"},
    };
    for (const auto& [path, type] : files) {
        auto r = c.Get(path);
        ASSERT_TRUE(r) << path;
        EXPECT_EQ(r->status, 200) << path;
        EXPECT_EQ(r->get_header_value("Content-Type"), type) << path;
        EXPECT_EQ(r->get_header_value("Content-Security-Policy"), kAppCspText) << path;
        EXPECT_EQ(r->get_header_value_count("Content-Security-Policy"), 1u) << path;
        EXPECT_EQ(r->get_header_value("Cache-Control"), "no-cache") << path;
        EXPECT_EQ(r->get_header_value_count("Cache-Control"), 1u) << path;
        EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << path;
        EXPECT_EQ(r->get_header_value("X-Frame-Options"), "DENY") << path;
    }
    EXPECT_EQ(c.Get("/app/app.js")->body, "console.log(1)");
    EXPECT_EQ(c.Get("/app/")->body, "<!doctype html><title>app</title>");
}

TEST(WebApp, NothingOutsideTheAppOrOfAnUnknownTypeIsServed) {
    WebFixture f;
    install_app(f.dir / "app");
    bzs::test::write_file(f.dir / "outside.js", "outside", 0644);
    fs::create_symlink(f.dir / "outside.js", f.dir / "app" / "link.js");
    auto c = f.client();
    for (const char* path :
         {"/app/../state/bluezscript.db", "/app/%2e%2e/outside.js", "/app/..%2foutside.js",
          "/app/icons/../../outside.js", "/app/./index.html", "/app/.hidden.js", "/app/secret.db",
          "/app/link.js", "/app/missing.js", "/app/icons/", "/app//etc/passwd", "/app/icons"}) {
        auto r = c.Get(path);
        ASSERT_TRUE(r) << path;
        EXPECT_EQ(r->status, 404) << path;
        EXPECT_EQ(r->body.find("outside"), std::string::npos) << path;
        EXPECT_EQ(r->body.find("not served"), std::string::npos) << path;
    }
}

TEST(WebApp, PairingOverHttpsPutsTheAppOnTheOwnersHostIntoTheQrCode) {
    WebFixture f(true);
    const auto s = f.sign_in();
    httplib::SSLClient c("127.0.0.1", f.server->https_port());
    c.enable_server_certificate_verification(false);
    c.set_read_timeout(20);
    auto r = c.Post("/pair", {{"Cookie", s.cookie}, {"Host", "kitchen-pi.lan:8443"}},
                    httplib::Params{{"csrf", s.csrf}, {"name", "alice"}, {"actions", "hello"}});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r->body, m, std::regex("data-testid=\"pair-uri\">([^<]+)<")))
        << r->body;
    const std::string uri = std::regex_replace(m[1].str(), std::regex("&amp;"), "&");
    EXPECT_EQ(uri.rfind("https://kitchen-pi.lan:8443/app/#v=2&pi=", 0), 0u) << uri;
    EXPECT_EQ(uri.find("actions="), std::string::npos) << "no actions hint in v2 links: " << uri;
    const auto p = core::protocol::parse_link(uri);
    ASSERT_TRUE(p.link) << p.error;
    EXPECT_EQ(p.link->label, "alice");
    // The canonical link is on the page too, for apps that register bluezscript://.
    ASSERT_TRUE(
        std::regex_search(r->body, m, std::regex("data-testid=\"pair-uri-canonical\">([^<]+)<")));
    const auto canonical =
        core::protocol::parse_link(std::regex_replace(m[1].str(), std::regex("&amp;"), "&"));
    ASSERT_TRUE(canonical.link) << canonical.error;
    EXPECT_EQ(canonical.link->device_id, p.link->device_id);

    // Over loopback HTTP there is no owner's LAN host: the Pi's own name is used.
    auto h = f.client().Post("/api/v1/pair", {{"Cookie", s.cookie}, {"X-CSRF-Token", s.csrf}},
                             R"({"name":"bob","actions":["hello"]})", "application/json");
    ASSERT_TRUE(h);
    ASSERT_EQ(h->status, 201) << h->body;
    const auto j = nlohmann::json::parse(h->body);
    const auto port = std::to_string(f.cfg.web.https_port);
    EXPECT_EQ(j["app_uri"].get<std::string>().rfind(
                  "https://" + service::machine_host() + ":" + port + "/app/#v=2&", 0),
              0u)
        << j["app_uri"];
    EXPECT_EQ(j["uri"].get<std::string>().rfind("bluezscript://pair?v=2&", 0), 0u) << j["uri"];
}

}  // namespace
}  // namespace bzs::web::test
