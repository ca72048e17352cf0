// SPDX-License-Identifier: GPL-3.0-or-later
// The link a pairing QR code carries (service/app_link.h): which host and port the
// phone is sent to, and every form of the link still parsing to the same pairing.
#include "service/app_link.h"

#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "core/crypto/crypto.h"
#include "core/protocol/pairing_uri.h"

namespace bzs::service {
namespace {

TEST(AppLink, HostHeaderValidation) {
    for (const char* ok : {"pi.local", "pi.local:8443", "192.168.1.5:8443", "[fe80::1]:8443",
                           "[::1]", "kitchen-pi"}) {
        EXPECT_TRUE(valid_host_header(ok)) << ok;
    }
    for (const char* bad : {"", "pi.local:8443/evil", "pi local", "pi.local#x", "user@pi", "-pi",
                            "pi.local:99999999", "[zz]:1", "pi.local:"}) {
        EXPECT_FALSE(valid_host_header(bad)) << bad;
    }
}

TEST(AppLink, SelfUrlPrefersTheOwnersHostThenTheListenerThenTheHostname) {
    auto cfg = config::default_config();
    const std::string me = machine_host();
    ASSERT_TRUE(valid_host_header(me)) << me;
    EXPECT_NE(me.find('.'), std::string::npos) << me;
    EXPECT_EQ(self_app_url(cfg, "pi.example:9443"), "https://pi.example:9443/app/");
    EXPECT_EQ(self_app_url(cfg, "pi.example"), "https://pi.example:8443/app/");
    EXPECT_EQ(self_app_url(cfg, "[fe80::2]:8443"), "https://[fe80::2]:8443/app/");
    // Loopback names and invalid headers: a phone could not use them.
    EXPECT_EQ(self_app_url(cfg, "127.0.0.1:8443"), "https://" + me + ":8443/app/");
    EXPECT_EQ(self_app_url(cfg, "localhost:8443"), "https://" + me + ":8443/app/");
    EXPECT_EQ(self_app_url(cfg, "evil/x"), "https://" + me + ":8443/app/");
    EXPECT_EQ(self_app_url(cfg), "https://" + me + ":8443/app/");
    cfg.web.https_port = 443;
    EXPECT_EQ(self_app_url(cfg), "https://" + me + "/app/");
    cfg.web.https_address = "192.168.7.2";
    EXPECT_EQ(self_app_url(cfg), "https://192.168.7.2/app/");
    cfg.web.https_address = "fd00::7";
    EXPECT_EQ(self_app_url(cfg), "https://[fd00::7]/app/");
    cfg.web.https_address = "";
    EXPECT_EQ(self_app_url(cfg, "pi.example"), "") << "no HTTPS: nothing served to phones";
    cfg.web.https_address = "0.0.0.0";
    cfg.web.enabled = false;
    EXPECT_EQ(self_app_url(cfg, "pi.example"), "");
}

TEST(AppLink, PairingLinkFormsAndTheActionsHint) {
    auto cfg = config::default_config();
    core::protocol::Pairing p;
    p.pi_id.fill(0x11);
    p.pi_name = "kitchen";
    p.device_id.fill(0x22);
    p.secret = core::crypto::SecretBytes(core::crypto::Bytes(32, 7));
    const std::string query_uri = core::protocol::pairing_to_uri(p);
    const std::string query = query_uri.substr(query_uri.find('?') + 1);

    EXPECT_EQ(pairing_link(p, {}, cfg, "pi.example:8443"), "https://pi.example:8443/app/#" + query);
    EXPECT_EQ(pairing_link(p, {"lights.on", "garage"}, cfg, "pi.example:8443"),
              "https://pi.example:8443/app/#" + query + "&actions=lights.on,garage");
    cfg.pairing.app_url = "https://example.org/bzs/";
    EXPECT_EQ(pairing_link(p, {"a"}, cfg, "pi.example"),
              "https://example.org/bzs/#" + query + "&actions=a");
    cfg.pairing.app_url = "";
    cfg.web.https_address = "";
    EXPECT_EQ(pairing_link(p, {"a"}, cfg), query_uri + "&actions=a");
    // Every form still parses to the same pairing (unknown fields are ignored).
    const auto back = core::protocol::parse_pairing(pairing_link(p, {"a", "b"}, cfg));
    ASSERT_TRUE(back.pairing) << back.error;
    EXPECT_EQ(back.pairing->pi_name, "kitchen");
}

}  // namespace
}  // namespace bzs::service
