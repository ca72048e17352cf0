// SPDX-License-Identifier: GPL-3.0-or-later
// The link a pairing QR code carries (service/app_link.h): which host and port the
// phone is sent to, and every form of the link still parsing to the same pairing.
#include "service/app_link.h"

#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "core/crypto/crypto.h"
#include "core/protocol/link.h"

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

TEST(AppLink, TheAppLinkPutsTheV2QueryAfterTheAppUrl) {
    auto cfg = config::default_config();
    core::protocol::PairingLink l;
    l.pi_id.fill(0x11);
    l.pi_key.fill(0x33);
    l.pi_name = "kitchen";
    l.device_id.fill(0x22);
    l.code = core::crypto::SecretBytes(core::crypto::Bytes(core::protocol::kPairCodeLen, 7));
    l.label = "alice";
    const std::string uri = core::protocol::link_to_uri(l);
    const std::string query = uri.substr(uri.find('?') + 1);

    EXPECT_EQ(app_pairing_link(l, cfg, "pi.example:8443"), "https://pi.example:8443/app/#" + query);
    cfg.pairing.app_url = "https://example.org/bzs/";
    EXPECT_EQ(app_pairing_link(l, cfg, "pi.example"), "https://example.org/bzs/#" + query);
    cfg.pairing.app_url = "";
    cfg.web.https_address = "";
    EXPECT_EQ(app_pairing_link(l, cfg), "") << "no app served: no app link";
    cfg.pairing.app_url = "https://example.org/bzs/#old";
    const auto back = core::protocol::parse_link(app_pairing_link(l, cfg));
    ASSERT_TRUE(back.link) << back.error;
    EXPECT_EQ(back.link->pi_name, "kitchen");
    EXPECT_EQ(back.link->label, "alice");
}

}  // namespace
}  // namespace bzs::service
