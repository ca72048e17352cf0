// SPDX-License-Identifier: GPL-3.0-or-later
// The exported GATT application on a private dbus-daemon, read the way bluetoothd
// reads it for a phone: Info's v2 value with the Pi's clock, and long reads
// (offset > 0) that continue the value the offset-0 read returned.
#include "bluez/gatt_app.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "dbus/bus.h"
#include "loop/event_loop.h"
#include "private_bus.h"

namespace bzs::bluez {
namespace {

const std::string kPhone = "/org/bluez/hci0/dev_11_22_33_44_55_66";
const std::string kOther = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF";
constexpr std::int64_t kT = 1'700'000'000;

/// What a ReadValue call returned.
struct ReadResult {
    std::optional<dbus::Bytes> value;
    std::string error;  ///< the D-Bus error name when it failed
};

class GattAppTest : public ::testing::Test {
  protected:
    void SetUp() override {
        app_bus = dbus::Bus::open_address(bus.address(), "gatt-app");
        app_bus.attach(loop.native());
        central = dbus::Bus::open_address(bus.address(), "bluetoothd");
        central.attach(loop.native());
        GattOptions o;
        o.pi_name = "kitchen-pi";
        o.pi_id_hex = "00112233445566778899aabbccddeeff";
        o.pi_key_hex = "04" + std::string(128, 'b');
        GattApp::Hooks h;
        h.trusted = [](sd_bus_message* /*m*/) { return true; };
        h.clock = [this] { return now; };
        h.info_clock = [this] { return InfoClock{now, synced}; };
        app.emplace(app_bus.get(), loop, o, std::move(h));
    }

    /// ReadValue on Info as bluetoothd sends it for `device` at `offset`.
    ReadResult read_info(const std::string& device, std::uint16_t offset) {
        ReadResult out;
        bool done = false;
        const dbus::Target t{app_bus.unique_name(), app->root() + "/service0/info",
                             "org.bluez.GattCharacteristic1", "ReadValue"};
        dbus::Slot call = dbus::call_async(
            central, t,
            [&](sd_bus_message* m) {
                dbus::check(
                    sd_bus_message_append(m, "a{sv}", 3, "device", "o", device.c_str(), "offset",
                                          "q", static_cast<unsigned>(offset), "mtu", "q", 23U),
                    "append options");
            },
            [&](sd_bus_message* reply, const dbus::RemoteError* error) {
                if (error != nullptr) {
                    out.error = error->name;
                } else {
                    out.value = dbus::read_bytes(reply);
                }
                done = true;
            });
        bool expired = false;
        loop::Source timer =
            loop.add_timer_relative(std::chrono::seconds(10), [&] { expired = true; });
        loop.run_until([&] { return done || expired; });
        EXPECT_TRUE(done) << "ReadValue timed out";
        return out;
    }

    static std::string text(const ReadResult& r) {
        EXPECT_TRUE(r.value) << r.error;
        return r.value ? std::string(r.value->begin(), r.value->end()) : std::string();
    }

    test::PrivateBus bus;
    loop::EventLoop loop;
    dbus::Bus app_bus;
    dbus::Bus central;
    std::optional<GattApp> app;
    std::int64_t now = kT;
    bool synced = false;
};

TEST_F(GattAppTest, InfoSaysVersion2TheKeyAndThePisClock) {
    const std::string value = text(read_info(kPhone, 0));
    const auto j = nlohmann::json::parse(value);
    EXPECT_EQ(j.at("v"), 2);
    EXPECT_EQ(j.at("name"), "kitchen-pi");
    EXPECT_EQ(j.at("pi"), "00112233445566778899aabbccddeeff");
    EXPECT_EQ(j.at("pk"), "04" + std::string(128, 'b'));
    EXPECT_EQ(j.at("time"), kT);
    EXPECT_EQ(j.at("synced"), false);
    // A later read at offset 0 tells the time then.
    now += 3600;
    synced = true;
    const auto later = nlohmann::json::parse(text(read_info(kPhone, 0)));
    EXPECT_EQ(later.at("time"), kT + 3600);
    EXPECT_EQ(later.at("synced"), true);
}

// Info is longer than one ATT read at the default MTU: the phone's stack reads on
// at offsets 22, 44, ... While it does, the clock ticks; every piece must still
// come from the value of the offset-0 read, or the JSON would not parse.
TEST_F(GattAppTest, ALongReadContinuesTheValueOfTheOffsetZeroRead) {
    const std::string first = text(read_info(kPhone, 0));
    ASSERT_GT(first.size(), 22U * 3);
    std::string rebuilt = first.substr(0, 22);
    for (std::size_t off = 22; off < first.size(); off += 22) {
        now += 1;  // a second later: a fresh value would say another time
        synced = !synced;
        const std::string part = text(read_info(kPhone, static_cast<std::uint16_t>(off)));
        EXPECT_EQ(part, first.substr(off)) << "offset " << off;
        rebuilt += part.substr(0, 22);
    }
    EXPECT_EQ(rebuilt, first);
    EXPECT_EQ(nlohmann::json::parse(rebuilt).at("time"), kT);
    // At the end of the value: empty; beyond it: InvalidOffset.
    EXPECT_EQ(text(read_info(kPhone, static_cast<std::uint16_t>(first.size()))), "");
    EXPECT_EQ(read_info(kPhone, static_cast<std::uint16_t>(first.size() + 1)).error,
              "org.bluez.Error.InvalidOffset");
}

// Each link continues its own read: another phone's offset-0 read in between does
// not change what the first one gets.
TEST_F(GattAppTest, EachLinkContinuesItsOwnValue) {
    const std::string mine = text(read_info(kPhone, 0));
    now += 100;
    const std::string theirs = text(read_info(kOther, 0));
    ASSERT_NE(mine, theirs);
    EXPECT_EQ(text(read_info(kPhone, 30)), mine.substr(30));
    EXPECT_EQ(text(read_info(kOther, 30)), theirs.substr(30));
    // A new read at offset 0 starts a new value for that link.
    now += 100;
    const std::string again = text(read_info(kPhone, 0));
    EXPECT_EQ(nlohmann::json::parse(again).at("time"), kT + 200);
    EXPECT_EQ(text(read_info(kPhone, 30)), again.substr(30));
}

// A device that dropped its link starts over: its next read at an offset is cut
// from the value now, not from the one before the disconnect.
TEST_F(GattAppTest, ADroppedLinkForgetsItsInfoValue) {
    const std::string before = text(read_info(kPhone, 0));
    app->drop_device(kPhone);
    now += 7;
    const std::string part = text(read_info(kPhone, 30));
    EXPECT_NE(part, before.substr(30));
    EXPECT_EQ(part, text(read_info(kPhone, 0)).substr(30));
}

}  // namespace
}  // namespace bzs::bluez
