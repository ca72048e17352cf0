// SPDX-License-Identifier: GPL-3.0-or-later
// The mirror of BlueZ's objects against a real private dbus-daemon and an in-process
// org.bluez (sd-bus's own ObjectManager and property signals): listing, signals,
// bluetoothd leaving and coming back under a new name, and impostors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "bluez/object_mirror.h"
#include "private_bus.h"
#include "test_support.h"

namespace bzs::bluez {
namespace {

using test::PrivateBus;

const std::string kHci0 = "/org/bluez/hci0";
const std::string kDev = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF";
const std::string kSvc = kDev + "/service0010";

// The in-process org.bluez: an adapter, a device and a GATT service, their
// properties served by sd-bus (Get/GetAll/GetManagedObjects) from these fields.
struct FakeState {
    bool powered = true;
    bool connected = false;
    bool paired = false;
};

struct FakeBluez {
    FakeState state;
    dbus::Bus bus;
    std::vector<dbus::Slot> slots;

    static int get_bool(sd_bus* /*b*/, const char* /*path*/, const char* /*iface*/,
                        const char* /*property*/, sd_bus_message* reply, void* userdata,
                        sd_bus_error* /*err*/) {
        const int v = *static_cast<bool*>(userdata) ? 1 : 0;
        return sd_bus_message_append_basic(reply, 'b', &v);
    }
    static int get_string(sd_bus* /*b*/, const char* /*path*/, const char* /*iface*/,
                          const char* property, sd_bus_message* reply, void* /*userdata*/,
                          sd_bus_error* /*err*/) {
        const std::string p = property;
        if (p == "Adapter") {
            return sd_bus_message_append_basic(reply, 'o', kHci0.c_str());
        }
        if (p == "Device") {
            return sd_bus_message_append_basic(reply, 'o', kDev.c_str());
        }
        const char* v = p == "Address" ? "AA:BB:CC:DD:EE:FF"
                        : p == "UUID"  ? "6E400001-B5A3-F393-E0A9-E50E24DCCA9E"
                                       : "Pi";
        return sd_bus_message_append_basic(reply, 's', v);
    }
    static int get_rssi(sd_bus* /*b*/, const char* /*path*/, const char* /*iface*/,
                        const char* /*property*/, sd_bus_message* reply, void* /*userdata*/,
                        sd_bus_error* /*err*/) {
        const std::int16_t v = -60;
        return sd_bus_message_append_basic(reply, 'n', &v);
    }

    explicit FakeBluez(const std::string& address) {
        bus = dbus::Bus::open_address(address, "fake-bluez");
        dbus::check(
            sd_bus_request_name(bus.get(), "org.bluez",
                                SD_BUS_NAME_ALLOW_REPLACEMENT | SD_BUS_NAME_REPLACE_EXISTING),
            "request org.bluez");
        slots.push_back(dbus::add_object_manager(bus.get(), "/"));
        static const sd_bus_vtable adapter[] = {
            SD_BUS_VTABLE_START(0),
            SD_BUS_PROPERTY("Powered", "b", &get_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
            SD_BUS_VTABLE_END};
        static const sd_bus_vtable device[] = {
            SD_BUS_VTABLE_START(0),
            SD_BUS_PROPERTY("Adapter", "o", &get_string, 0, 0),
            SD_BUS_PROPERTY("Address", "s", &get_string, 0, 0),
            SD_BUS_PROPERTY("Alias", "s", &get_string, 0, 0),
            SD_BUS_PROPERTY("RSSI", "n", &get_rssi, 0, 0),
            SD_BUS_PROPERTY("Connected", "b", &get_bool, offsetof(FakeState, connected),
                            SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
            SD_BUS_PROPERTY("Paired", "b", &get_bool, offsetof(FakeState, paired),
                            SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
            SD_BUS_VTABLE_END};
        static const sd_bus_vtable service[] = {
            SD_BUS_VTABLE_START(0), SD_BUS_PROPERTY("UUID", "s", &get_string, 0, 0),
            SD_BUS_PROPERTY("Device", "o", &get_string, 0, 0), SD_BUS_VTABLE_END};
        slots.push_back(dbus::add_object(bus.get(), kHci0, "org.bluez.Adapter1", adapter, &state));
        slots.push_back(dbus::add_object(bus.get(), kDev, "org.bluez.Device1", device, &state));
        slots.push_back(dbus::add_object(bus.get(), kSvc, "org.bluez.GattService1", service, this));
    }

    void changed(const std::string& path, const char* iface, const char* property) {
        dbus::check(
            sd_bus_emit_properties_changed(bus.get(), path.c_str(), iface, property, nullptr),
            "emit PropertiesChanged");
    }
};

struct Events {
    std::vector<std::string> log;
    std::optional<dbus::RemoteError> absent;
    std::optional<dbus::RemoteError> list_failed;
    std::vector<std::string> rssi_seen;  ///< devices whose update carried "RSSI"
    bool removed_was_mirrored = false;
};

class ObjectMirrorTest : public ::testing::Test {
  protected:
    ObjectMirror& make(ObjectMirror::Options options = {}) {
        ObjectMirror::Hooks h;
        h.on_appeared = [this](const std::string& o) { ev.log.push_back("appeared " + o); };
        h.on_gone = [this] { ev.log.push_back("gone"); };
        h.on_absent = [this](const dbus::RemoteError& e) { ev.absent = e; };
        h.on_listed = [this] { ev.log.push_back("listed"); };
        h.on_list_failed = [this](const dbus::RemoteError& e) { ev.list_failed = e; };
        h.on_device = [this](const DeviceUpdate& u) {
            const char* origin = u.origin == MirrorOrigin::Listing ? "listing"
                                 : u.origin == MirrorOrigin::Added ? "added"
                                                                   : "changed";
            ev.log.push_back(std::string("device ") + origin + " connected " +
                             (u.before.connected ? "1" : "0") + "->" +
                             (u.after.connected ? "1" : "0"));
            if (u.has("RSSI")) {
                ev.rssi_seen.push_back(u.path);
            }
        };
        h.on_device_removed = [this](const std::string& path) {
            ev.removed_was_mirrored = mirror->device(path) != nullptr;
            ev.log.push_back("device removed");
        };
        mirror.emplace(loop, options, std::move(h));
        client = dbus::Bus::open_address(bus.address(), "mirror-test");
        client.attach(loop.native());
        mirror->start(client);
        return *mirror;
    }

    bool has(const std::string& entry) const {
        return std::find(ev.log.begin(), ev.log.end(), entry) != ev.log.end();
    }

    void run_until(const std::function<bool()>& done) {
        bool expired = false;
        loop::Source t = loop.add_timer_relative(std::chrono::seconds(10), [&] { expired = true; });
        loop.run_until([&] { return done() || expired; });
        ASSERT_TRUE(done()) << "timed out";
    }

    PrivateBus bus;
    loop::EventLoop loop;
    dbus::Bus client;
    Events ev;
    std::optional<ObjectMirror> mirror;
};

TEST_F(ObjectMirrorTest, ListsAdaptersDevicesAndServicesOfARunningBluetoothd) {
    FakeBluez fake(bus.address());
    fake.bus.attach(loop.native());
    ObjectMirror& m = make();
    run_until([&] { return m.listed(); });

    EXPECT_EQ(m.owner(), fake.bus.unique_name());
    ASSERT_EQ(m.adapters().count(kHci0), 1U);
    EXPECT_TRUE(m.adapters().at(kHci0).powered);
    const MirroredDevice* d = m.device(kDev);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->adapter, kHci0);
    EXPECT_EQ(d->address, "AA:BB:CC:DD:EE:FF");
    EXPECT_FALSE(d->connected);
    // UUIDs are folded to lower case; object paths keep BlueZ's upper-case address.
    ASSERT_EQ(m.services().count(kSvc), 1U);
    EXPECT_EQ(m.services().at(kSvc).uuid, "6e400001-b5a3-f393-e0a9-e50e24dcca9e");
    EXPECT_EQ(m.services().at(kSvc).parent, kDev);
    EXPECT_TRUE(has("device listing connected 0->0"));
    EXPECT_EQ(ev.rssi_seen, std::vector<std::string>{kDev});
    EXPECT_EQ(ev.log.front(), "appeared " + fake.bus.unique_name());
    EXPECT_EQ(ev.log.back(), "listed");
}

TEST_F(ObjectMirrorTest, FollowsPropertyChangesAndRemovals) {
    FakeBluez fake(bus.address());
    fake.bus.attach(loop.native());
    ObjectMirror& m = make();
    run_until([&] { return m.listed(); });

    fake.state.connected = true;
    fake.changed(kDev, "org.bluez.Device1", "Connected");
    run_until([&] { return m.device(kDev)->connected; });
    EXPECT_TRUE(has("device changed connected 0->1"));

    fake.state.powered = false;
    fake.changed(kHci0, "org.bluez.Adapter1", "Powered");
    run_until([&] { return !m.adapters().at(kHci0).powered; });

    dbus::check(
        sd_bus_emit_interfaces_removed(fake.bus.get(), kDev.c_str(), "org.bluez.Device1", nullptr),
        "emit InterfacesRemoved");
    run_until([&] { return m.device(kDev) == nullptr; });
    EXPECT_TRUE(ev.removed_was_mirrored);  // the hook still saw it

    dbus::check(
        sd_bus_emit_interfaces_added(fake.bus.get(), kDev.c_str(), "org.bluez.Device1", nullptr),
        "emit InterfacesAdded");
    run_until([&] { return m.device(kDev) != nullptr; });
    EXPECT_TRUE(has("device added connected 0->1"));

    dbus::check(sd_bus_emit_interfaces_removed(fake.bus.get(), kHci0.c_str(), "org.bluez.Adapter1",
                                               nullptr),
                "emit InterfacesRemoved");
    run_until([&] { return m.adapters().empty(); });
    EXPECT_EQ(m.device(kDev), nullptr);  // its devices went with it
}

TEST_F(ObjectMirrorTest, WaitsForBluetoothdAndFollowsItsRestartUnderANewName) {
    ObjectMirror& m = make();
    run_until([&] { return ev.absent.has_value(); });
    EXPECT_EQ(ev.absent->name, "org.freedesktop.DBus.Error.NameHasNoOwner");
    EXPECT_TRUE(m.owner().empty());

    std::optional<FakeBluez> fake(std::in_place, bus.address());
    fake->bus.attach(loop.native());
    run_until([&] { return m.listed(); });
    const std::string first = fake->bus.unique_name();
    EXPECT_EQ(m.owner(), first);

    fake.reset();  // bluetoothd stops
    run_until([&] { return has("gone"); });
    EXPECT_TRUE(m.owner().empty());
    EXPECT_FALSE(m.listed());
    EXPECT_TRUE(m.adapters().empty());
    EXPECT_TRUE(m.devices().empty());

    fake.emplace(bus.address());  // and starts again
    fake->bus.attach(loop.native());
    run_until([&] { return m.listed(); });
    EXPECT_NE(m.owner(), first);
    EXPECT_EQ(m.owner(), fake->bus.unique_name());
    EXPECT_EQ(m.adapters().count(kHci0), 1U);
}

TEST_F(ObjectMirrorTest, ListingAtOnceReportsAMissingBluetoothd) {
    ObjectMirror::Options o;
    o.list_at_once = true;
    make(o);
    run_until([&] { return ev.list_failed.has_value(); });
    EXPECT_EQ(ev.list_failed->name, "org.freedesktop.DBus.Error.ServiceUnknown");
    EXPECT_FALSE(ev.absent.has_value());
}

TEST_F(ObjectMirrorTest, ListingAtOnceLearnsTheOwnerFromTheAnswer) {
    FakeBluez fake(bus.address());
    fake.bus.attach(loop.native());
    ObjectMirror::Options o;
    o.list_at_once = true;
    ObjectMirror& m = make(o);
    run_until([&] { return m.listed(); });
    EXPECT_EQ(m.owner(), fake.bus.unique_name());
    EXPECT_TRUE(has("appeared " + fake.bus.unique_name()));
}

TEST_F(ObjectMirrorTest, SignalsFromAnotherPeerAreIgnored) {
    FakeBluez fake(bus.address());
    fake.bus.attach(loop.native());
    ObjectMirror& m = make();
    run_until([&] { return m.listed(); });

    // A unicast look-alike of bluetoothd's signal, from someone else.
    dbus::Bus impostor = dbus::Bus::open_address(bus.address(), "impostor");
    sd_bus_message* raw = nullptr;
    dbus::check(sd_bus_message_new_signal(impostor.get(), &raw, kDev.c_str(),
                                          "org.freedesktop.DBus.Properties", "PropertiesChanged"),
                "new signal");
    dbus::Message sig = dbus::Message::adopt(raw);
    dbus::check(sd_bus_message_set_destination(raw, client.unique_name().c_str()), "destination");
    dbus::check(sd_bus_message_append(raw, "sa{sv}as", "org.bluez.Device1", 1, "Paired", "b", 1, 0),
                "append");
    dbus::check(sd_bus_send(impostor.get(), raw, nullptr), "send");
    dbus::check(sd_bus_flush(impostor.get()), "flush");
    // A round trip through the bus: the impostor's signal is queued for us before
    // bluetoothd's change below.
    dbus::check(sd_bus_call_method(impostor.get(), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                   "org.freedesktop.DBus", "GetId", nullptr, nullptr, ""),
                "GetId");

    fake.state.connected = true;
    fake.changed(kDev, "org.bluez.Device1", "Connected");
    run_until([&] { return m.device(kDev)->connected; });
    EXPECT_FALSE(m.device(kDev)->paired);
}

}  // namespace
}  // namespace bzs::bluez
