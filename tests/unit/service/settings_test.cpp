// SPDX-License-Identifier: GPL-3.0-or-later
// The typed settings' codecs: each round-trips, reads the exact text earlier
// versions wrote (an upgraded Pi keeps its settings), and turns a damaged value into
// its documented safe default. The store-level readers run on a real database.
#include "service/settings.h"

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "core/crypto/fernet.h"
#include "store/keyfile.h"
#include "store/store.h"
#include "test_support.h"

namespace bzs::service {
namespace {

using nlohmann::json;

class SettingsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto key = core::crypto::Fernet::from_base64(core::crypto::Fernet::generate_key_base64());
        ASSERT_TRUE(key);
        store::KeyRing ring;
        ring.add(1, std::move(*key));
        st = std::make_unique<store::Store>(dir / "state.db", std::move(ring));
    }
    test::TempDir dir;
    std::unique_ptr<store::Store> st;
};

// --- pairing window ---

TEST(PairingWindowCodec, RoundTripsAndKeepsTheStoredFormat) {
    const PairingWindow w{1'700'000'300};
    EXPECT_EQ(encode_pairing_window(w), "1700000300");
    EXPECT_EQ(decode_pairing_window("1700000300"), w);
    EXPECT_EQ(decode_pairing_window(encode_pairing_window(w)), w);
    EXPECT_EQ(decode_pairing_window("0"), PairingWindow{0});  // closed by the tests' SQL
}

TEST(PairingWindowCodec, EmptyIsClosedAndDamagedIsRefused) {
    EXPECT_EQ(decode_pairing_window(""), PairingWindow{});
    for (const char* bad : {"soon", "12x", " 12", "1.5", "99999999999999999999999"}) {
        EXPECT_FALSE(decode_pairing_window(bad)) << bad;
    }
}

TEST(PairingWindowCodec, OpenWhileNowIsBeforeUntil) {
    const PairingWindow w{100};
    EXPECT_TRUE(w.open(99));
    EXPECT_FALSE(w.open(100));
    EXPECT_EQ(w.remaining(40), 60);
    EXPECT_EQ(w.remaining(140), 0);
    EXPECT_FALSE(PairingWindow{}.open(0));
}

TEST_F(SettingsTest, PairingWindowAbsentOrDamagedReadsClosed) {
    EXPECT_EQ(read_pairing_window(*st), PairingWindow{});
    write_pairing_window(*st, {500});
    EXPECT_EQ(st->setting(kPairingWindowKey), "500");
    EXPECT_EQ(read_pairing_window(*st), PairingWindow{500});
    st->set_setting(kPairingWindowKey, "garbage");
    EXPECT_EQ(read_pairing_window(*st), PairingWindow{});
}

// --- pending passkey ---

TEST(PendingPasskeyCodec, RoundTripsAsTheDaemonWroteIt) {
    const PendingPasskey p{"/org/bluez/hci0/dev_AA", "Phone (AA:BB)", "012345", "display-passkey",
                           1'700'000'000};
    const auto text = encode_pending_passkey(p);
    // The daemon's earlier writer: a json object dumped with its keys in order.
    EXPECT_EQ(text, json({{"device", p.device},
                          {"peer", p.peer},
                          {"passkey", p.passkey},
                          {"kind", p.kind},
                          {"time", p.time}})
                        .dump());
    EXPECT_EQ(decode_pending_passkey(text), p);
}

TEST(PendingPasskeyCodec, ANumericPasskeyIsZeroPadded) {
    const auto p = decode_pending_passkey(json{{"passkey", 4242}, {"time", 7}}.dump());
    ASSERT_TRUE(p);
    EXPECT_EQ(p->passkey, "004242");
    EXPECT_EQ(p->time, 7);
    EXPECT_EQ(p->device, "");
}

TEST(PendingPasskeyCodec, ClearedOrDamagedIsNoPasskey) {
    for (const std::string bad :
         {"", "null", "[]", "42", "{", "{}", R"({"passkey": null})", R"({"passkey": ""})",
          R"({"passkey": -1})", R"({"passkey": "1", "time": "noon"})",
          R"({"passkey": "1", "device": 3})"}) {
        EXPECT_FALSE(decode_pending_passkey(bad)) << bad;
    }
}

TEST_F(SettingsTest, PendingPasskeyWriteReadClear) {
    EXPECT_FALSE(read_pending_passkey(*st));
    const PendingPasskey p{"/d", "peer", "999999", "request-passkey", 5};
    write_pending_passkey(*st, p);
    EXPECT_EQ(read_pending_passkey(*st), p);
    clear_pending_passkey(*st);
    EXPECT_EQ(st->setting(kPendingPasskeyKey), "");
    EXPECT_FALSE(read_pending_passkey(*st));
}

// --- BLE status ---

TEST(BleStatusCodec, RoundTripsAsTheDaemonWroteIt) {
    const BleStatus s{true, "BLE: advertising on hci0", "hci0", true, true, 2, 1'700'000'000};
    const auto text = encode_ble_status(s);
    EXPECT_EQ(text, json({{"enabled", true},
                          {"summary", s.summary},
                          {"adapter", "hci0"},
                          {"powered", true},
                          {"advertising", true},
                          {"connected", std::size_t{2}},
                          {"time", s.time}})
                        .dump());
    EXPECT_EQ(decode_ble_status(text), s);
}

TEST(BleStatusCodec, AbsentFieldsKeepTheirDefaults) {
    const auto s = decode_ble_status(R"({"summary": "BLE disabled"})");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->summary, "BLE disabled");
    EXPECT_FALSE(s->enabled);
    EXPECT_EQ(s->connected, 0U);
}

TEST(BleStatusCodec, DamagedIsUnknown) {
    for (const std::string bad : {"", "null", "\"up\"", "{", R"({"enabled": "yes"})",
                                  R"({"connected": -1})", R"({"summary": 5})"}) {
        EXPECT_FALSE(decode_ble_status(bad)) << bad;
    }
}

TEST_F(SettingsTest, BleStatusWriteRead) {
    EXPECT_FALSE(read_ble_status(*st));
    BleStatus s;
    s.summary = "BLE disabled by configuration (ble.enabled = false)";
    write_ble_status(*st, s);
    EXPECT_EQ(read_ble_status(*st), s);
}

// --- admin password ---

TEST_F(SettingsTest, AdminPasswordHashIsKeptAsItIs) {
    EXPECT_FALSE(read_admin_password(*st).set());
    write_admin_password(*st, {"$scrypt$ln=14,r=8,p=1$c2FsdA$aGFzaA"});
    EXPECT_EQ(st->setting(kAdminPasswordKey), "$scrypt$ln=14,r=8,p=1$c2FsdA$aGFzaA");
    EXPECT_EQ(read_admin_password(*st).hash, "$scrypt$ln=14,r=8,p=1$c2FsdA$aGFzaA");
    EXPECT_EQ(decode_admin_password(encode_admin_password({"x"})).hash, "x");
    write_admin_password(*st, {});
    EXPECT_FALSE(read_admin_password(*st).set());
}

}  // namespace
}  // namespace bzs::service
