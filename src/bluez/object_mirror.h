// SPDX-License-Identifier: GPL-3.0-or-later
// One mirror of BlueZ's object tree on the bus, for both sides of BlueZscript: the
// daemon's peripheral and the client's trigger. It follows bluetoothd through
// NameOwnerChanged (it starts, stops, restarts under a new unique name), lists its
// objects with ObjectManager.GetManagedObjects, and keeps the list current with
// InterfacesAdded/InterfacesRemoved and the PropertiesChanged of adapters and
// devices. Only messages from the current owner of org.bluez are believed (a peer
// could send a look-alike unicast signal), and NameOwnerChanged only from the bus.
//
// It records what either side needs: adapters (Powered, GATT and advertising
// managers), devices (address, names, UUIDs, link and bond state), and the remote
// GATT services and characteristics. What a side makes of a change is its own: the
// hooks say what happened, the accessors say what is.
//
// Paths are kept exactly as BlueZ sends them: device paths carry the address in
// upper case (dev_00_AA_01_...), so they are never case-folded; UUIDs are.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dbus/bus.h"
#include "loop/event_loop.h"
#include "util/log.h"

namespace bzs::bluez {

/// An org.bluez.Adapter1 object.
struct MirroredAdapter {
    bool powered = false;
    bool gatt_manager = false;         ///< also offers GattManager1 (can host our app)
    bool advertising_manager = false;  ///< also offers LEAdvertisingManager1
};

/// An org.bluez.Device1 object.
struct MirroredDevice {
    std::string adapter;  ///< the adapter's object path
    std::string address;  ///< "AA:BB:CC:DD:EE:FF"
    std::string name;
    std::string alias;
    std::vector<std::string> uuids;  ///< as BlueZ reports them
    bool connected = false;
    bool services_resolved = false;
    bool paired = false;
    bool bonded = false;
};

/// A remote org.bluez.GattService1 or GattCharacteristic1.
struct MirroredGattObject {
    std::string uuid;    ///< lower case
    std::string parent;  ///< the service's device, or the characteristic's service
};

/// Where a device's properties came from, for DeviceUpdate.
enum class MirrorOrigin {
    Listing,  ///< the GetManagedObjects answer (at start, or after bluetoothd came back)
    Added,    ///< InterfacesAdded with Device1: BlueZ just learnt of it (e.g. discovered)
    Changed,  ///< PropertiesChanged
};

/// One device whose Device1 properties were read, for Hooks::on_device.
struct DeviceUpdate {
    const std::string& path;
    const MirroredDevice& before;  ///< default-constructed when it is new
    const MirroredDevice& after;
    MirrorOrigin origin;
    /// The property names that were present in the message (e.g. "RSSI"): the
    /// client takes advertising data arriving as "in range".
    const std::vector<std::string>& keys;
    [[nodiscard]] bool has(const char* key) const;
};

/// The delay before the n-th retry (n >= 1) of something BlueZ refused: 1, 2, 4 ... 60 s.
std::chrono::seconds backoff_delay(unsigned failures);

class ObjectMirror {
  public:
    struct Options {
        /// Ask org.bluez for its objects at once, by its well-known name (D-Bus may
        /// activate bluetoothd), instead of first asking the bus who owns the name.
        /// The client does; the daemon waits for bluetoothd to appear.
        bool list_at_once = false;
        /// Ask again, with backoff, when GetManagedObjects fails (the daemon);
        /// otherwise on_list_failed ends it (the client).
        bool retry_listing = false;
        /// Timeout of GetManagedObjects; 0 is sd-bus's default (25 s).
        std::uint64_t list_timeout_usec = 0;
    };

    /// Every hook is optional. They run from the bus's dispatch; an exception they
    /// throw goes to the Bus's exception sink.
    struct Hooks {
        /// org.bluez has an owner (after GetNameOwner, NameOwnerChanged, or the first
        /// listing with list_at_once): its objects are being listed.
        std::function<void(const std::string& owner)> on_appeared;
        /// The owner left (or was replaced): everything mirrored was dropped.
        std::function<void()> on_gone;
        /// GetNameOwner failed (NameHasNoOwner: bluetoothd is not running).
        std::function<void(const dbus::RemoteError& error)> on_absent;
        /// A listing was applied (on_device was called for each device first).
        std::function<void()> on_listed;
        /// GetManagedObjects failed (retried afterwards when Options::retry_listing).
        std::function<void(const dbus::RemoteError& error)> on_list_failed;
        /// A device's Device1 properties were read (see DeviceUpdate).
        std::function<void(const DeviceUpdate& update)> on_device;
        /// Device1 went away from `path` (called while it is still mirrored, when
        /// it was; devices() still holds it).
        std::function<void(const std::string& path)> on_device_removed;
        /// Adapter1 went away from `path` (called while it and its devices are still
        /// mirrored; they are dropped right after, without on_device_removed).
        std::function<void(const std::string& path)> on_adapter_removed;
        /// After every signal from bluetoothd was applied: time to react.
        std::function<void()> on_changed;
        util::LogFn log;
    };

    ObjectMirror(loop::EventLoop& loop, Options options, Hooks hooks);
    ~ObjectMirror();
    ObjectMirror(const ObjectMirror&) = delete;
    ObjectMirror& operator=(const ObjectMirror&) = delete;

    /// Installs the matches on `bus` (attached to the loop), then asks who owns
    /// org.bluez (or, with list_at_once, for the objects). Throws BusError.
    void start(const dbus::Bus& bus);
    /// Stops asking again after failures (the owner is shutting down).
    void stop_retrying();
    /// Drops what is mirrored, the owner and pending calls, keeping the matches (the
    /// bus is lost; the Slots go with reset() later, outside the bus's dispatch).
    void forget();
    /// Drops everything, matches and pending calls included (before the Bus goes).
    void reset();

    /// The unique name of org.bluez's owner; empty while bluetoothd is absent.
    [[nodiscard]] const std::string& owner() const { return owner_; }
    /// True when `m` was sent by bluetoothd (for method handlers and signals).
    [[nodiscard]] bool from_bluez(sd_bus_message* m) const;
    /// True once a listing of the current owner's objects was applied.
    [[nodiscard]] bool listed() const { return listed_; }

    [[nodiscard]] const std::map<std::string, MirroredAdapter>& adapters() const {
        return adapters_;
    }
    [[nodiscard]] const std::map<std::string, MirroredDevice>& devices() const { return devices_; }
    [[nodiscard]] const std::map<std::string, MirroredGattObject>& services() const {
        return services_;
    }
    [[nodiscard]] const std::map<std::string, MirroredGattObject>& characteristics() const {
        return chrcs_;
    }
    /// The device at `path`, or null.
    [[nodiscard]] const MirroredDevice* device(const std::string& path) const;

  private:
    struct Reader;
    void on_name_owner_changed(sd_bus_message* m);
    void appeared(const std::string& unique);
    void gone();
    void list();
    void on_listing(sd_bus_message* reply, const dbus::RemoteError* e);
    void on_interfaces_added(sd_bus_message* m);
    void on_interfaces_removed(sd_bus_message* m);
    void on_properties_changed(sd_bus_message* m);
    void remove(const std::string& path, const std::string& iface);
    void log(util::LogLevel level, const std::string& msg) const;

    loop::EventLoop& loop_;
    Options opts_;
    Hooks hooks_;
    const dbus::Bus* bus_ = nullptr;
    std::vector<dbus::Slot> matches_;
    dbus::Slot owner_query_;
    dbus::Slot list_query_;
    loop::Source list_retry_;
    unsigned list_failures_ = 0;
    bool listing_ = false;  ///< a GetManagedObjects is on its way
    bool retrying_ = true;

    std::string owner_;
    bool listed_ = false;
    std::map<std::string, MirroredAdapter> adapters_;
    std::map<std::string, MirroredDevice> devices_;
    std::map<std::string, MirroredGattObject> services_;
    std::map<std::string, MirroredGattObject> chrcs_;
};

/// Follows the Value of a remote characteristic at `path`: `on_value` runs for each
/// PropertiesChanged of org.bluez that carries one (a notification). Destroying the
/// returned Slot stops it. Throws dbus::BusError when the match cannot be added.
dbus::Slot watch_characteristic_value(const dbus::Bus& bus, const std::string& path,
                                      std::function<void(const dbus::Bytes& value)> on_value);

}  // namespace bzs::bluez
