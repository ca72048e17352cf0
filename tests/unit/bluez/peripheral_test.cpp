// SPDX-License-Identifier: GPL-3.0-or-later
// Adapter choice and the status line.
#include <gtest/gtest.h>

#include "bluez/peripheral.h"

namespace bzs::bluez {
namespace {

const std::string kHci0 = "/org/bluez/hci0";
const std::string kHci1 = "/org/bluez/hci1";

TEST(AdapterName, IsTheLastPathElement) {
    EXPECT_EQ(adapter_name(kHci0), "hci0");
    EXPECT_EQ(adapter_name("hci3"), "hci3");
}

TEST(ChooseAdapter, NoAdaptersMeansNone) {
    EXPECT_FALSE(choose_adapter({}, "", "").has_value());
    EXPECT_FALSE(choose_adapter({}, "hci0", "").has_value());
}

TEST(ChooseAdapter, TheConfiguredAdapterIsUsedPoweredOrNot) {
    const std::vector<AdapterInfo> a = {{kHci0, true}, {kHci1, false}};
    EXPECT_EQ(choose_adapter(a, "hci1", ""), kHci1);
    EXPECT_EQ(choose_adapter(a, "hci1", kHci0), kHci1);
}

TEST(ChooseAdapter, AMissingConfiguredAdapterMeansNoneEvenIfOthersArePowered) {
    const std::vector<AdapterInfo> a = {{kHci0, true}};
    EXPECT_FALSE(choose_adapter(a, "hci1", "").has_value());
}

TEST(ChooseAdapter, WithoutConfigurationTheFirstPoweredOneWins) {
    const std::vector<AdapterInfo> a = {{kHci1, true}, {kHci0, false}};
    EXPECT_EQ(choose_adapter(a, "", ""), kHci1);
    const std::vector<AdapterInfo> both = {{kHci1, true}, {kHci0, true}};
    EXPECT_EQ(choose_adapter(both, "", ""), kHci0);
}

TEST(ChooseAdapter, APoweredCurrentAdapterIsKept) {
    const std::vector<AdapterInfo> both = {{kHci0, true}, {kHci1, true}};
    EXPECT_EQ(choose_adapter(both, "", kHci1), kHci1);
}

TEST(ChooseAdapter, AnUnpoweredCurrentAdapterGivesWayToAPoweredOne) {
    const std::vector<AdapterInfo> a = {{kHci0, true}, {kHci1, false}};
    EXPECT_EQ(choose_adapter(a, "", kHci1), kHci0);
}

TEST(ChooseAdapter, WithNothingPoweredTheCurrentOrFirstIsReported) {
    const std::vector<AdapterInfo> a = {{kHci1, false}, {kHci0, false}};
    EXPECT_EQ(choose_adapter(a, "", kHci1), kHci1);
    EXPECT_EQ(choose_adapter(a, "", ""), kHci0);
    EXPECT_EQ(choose_adapter(a, "", "/org/bluez/hci7"), kHci0);  // current one vanished
}

TEST(StatusSummary, SaysWhatIsMissing) {
    Status s;
    s.disabled = true;
    s.reason = "no system bus: BLE disabled (connection refused)";
    EXPECT_EQ(s.summary(), "no system bus: BLE disabled (connection refused)");

    s = Status{};
    EXPECT_EQ(s.summary(), "BLE: starting (connecting to the system bus)");

    s.bus_connected = true;
    EXPECT_EQ(s.summary(), "BLE: waiting for bluetoothd (org.bluez is not on the system bus)");

    s.bluez_present = true;
    EXPECT_EQ(s.summary(), "BLE: waiting for a Bluetooth adapter; pairing agent not registered");

    s.agent = true;
    s.adapter = "hci0";
    EXPECT_EQ(s.summary(), "BLE: adapter hci0 is powered off; waiting for it");

    s.powered = true;
    EXPECT_EQ(s.summary(), "BLE: registering on hci0, 0 devices connected");

    s.registered = true;
    EXPECT_EQ(s.summary(), "BLE: service registered on hci0, not advertising, 0 devices connected");

    s.advertising = true;
    s.connected_devices = {"/org/bluez/hci0/dev_11_22_33_44_55_66"};
    EXPECT_EQ(s.summary(), "BLE: advertising on hci0, 1 device connected");

    s.stopping = true;
    EXPECT_EQ(s.summary(), "BLE: stopping (unregistering from BlueZ)");
}

TEST(StatusSummary, EqualityCoversEveryField) {
    Status a;
    Status b;
    EXPECT_EQ(a, b);
    b.connected_devices.push_back("/x");
    EXPECT_NE(a, b);
}

}  // namespace
}  // namespace bzs::bluez
