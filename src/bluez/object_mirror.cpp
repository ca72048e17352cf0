// SPDX-License-Identifier: GPL-3.0-or-later
#include "bluez/object_mirror.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "bluez/names.h"
#include "bluez/peripheral.h"

namespace bzs::bluez {

namespace {

using namespace names;  // D-Bus names (bluez/names.h)
using util::LogLevel;
constexpr const char* kDBusPath = "/org/freedesktop/DBus";
constexpr auto kMaxBackoff = std::chrono::seconds(60);

}  // namespace

std::chrono::seconds backoff_delay(unsigned failures) {
    const unsigned shift = std::min(failures > 0 ? failures - 1 : 0U, 6U);
    return std::min<std::chrono::seconds>(std::chrono::seconds(1U << shift), kMaxBackoff);
}

bool DeviceUpdate::has(const char* key) const {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// Reads the a{sa{sv}} and a{sv} parts of BlueZ's messages into the maps.
struct ObjectMirror::Reader {
    ObjectMirror& self;

    // An a{sa{sv}} (interfaces and their properties) of the object at `path`.
    // Returns whether Device1 was among them, with its property names in `keys`.
    bool interfaces(const std::string& path, sd_bus_message* m, std::vector<std::string>& keys) {
        bool device = false;
        dbus::check(sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sa{sv}}"),
                    "enter interfaces");
        while (dbus::check(sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sa{sv}"),
                           "enter interface") > 0) {
            const std::string iface = dbus::read_string(m);
            if (iface == kAdapterIface) {
                adapter(self.adapters_[path], m);
            } else if (iface == kDeviceIface) {
                device = true;
                keys = this->device(self.devices_[path], m);
            } else if (iface == kServiceIface || iface == kChrcIface) {
                gatt(iface == kServiceIface ? self.services_[path] : self.chrcs_[path],
                     iface == kServiceIface ? "Device" : "Service", m);
            } else if (iface == kGattManagerIface) {
                self.adapters_[path].gatt_manager = true;
                dbus::skip_value(m);
            } else if (iface == kAdvManagerIface) {
                self.adapters_[path].advertising_manager = true;
                dbus::skip_value(m);
            } else {
                dbus::skip_value(m);
            }
            dbus::check(sd_bus_message_exit_container(m), "exit interface");
        }
        dbus::check(sd_bus_message_exit_container(m), "exit interfaces");
        return device;
    }

    static void adapter(MirroredAdapter& a, sd_bus_message* m) {
        dbus::read_dict(m, [&a](const std::string& key, sd_bus_message* v) {
            if (key == "Powered") {
                a.powered = dbus::read_variant_bool(v).value_or(a.powered);
                return true;
            }
            return false;
        });
    }

    // Returns the names of all the properties in the dictionary.
    static std::vector<std::string> device(MirroredDevice& d, sd_bus_message* m) {
        std::vector<std::string> keys;
        dbus::read_dict(m, [&](const std::string& key, sd_bus_message* v) {
            keys.push_back(key);
            if (key == "Adapter" || key == "Address" || key == "Name" || key == "Alias") {
                std::string& field = key == "Adapter"   ? d.adapter
                                     : key == "Address" ? d.address
                                     : key == "Name"    ? d.name
                                                        : d.alias;
                field = dbus::read_variant_string(v).value_or(field);
            } else if (key == "UUIDs") {
                if (auto u = dbus::read_variant_strings(v)) {
                    d.uuids = std::move(*u);
                }
            } else if (key == "Connected" || key == "ServicesResolved" || key == "Paired" ||
                       key == "Bonded") {
                bool& field = key == "Connected" ? d.connected
                              : key == "Paired"  ? d.paired
                              : key == "Bonded"  ? d.bonded
                                                 : d.services_resolved;
                field = dbus::read_variant_bool(v).value_or(field);
            } else {
                return false;
            }
            return true;
        });
        return keys;
    }

    static void gatt(MirroredGattObject& g, const char* parent_key, sd_bus_message* m) {
        dbus::read_dict(m, [&](const std::string& key, sd_bus_message* v) {
            if (key == "UUID") {
                if (auto s = dbus::read_variant_string(v)) {
                    g.uuid = dbus::lower_ascii(*s);
                }
                return true;
            }
            if (key == parent_key) {
                // An object path, kept as is: device paths carry the address in upper
                // case (dev_00_AA_01_...), so lower-casing would break the links.
                if (auto s = dbus::read_variant_string(v)) {
                    g.parent = *s;
                }
                return true;
            }
            return false;
        });
    }
};

ObjectMirror::ObjectMirror(loop::EventLoop& loop, Options options, Hooks hooks)
    : loop_(loop), opts_(options), hooks_(std::move(hooks)) {}

ObjectMirror::~ObjectMirror() = default;

void ObjectMirror::log(LogLevel level, const std::string& msg) const {
    if (hooks_.log) {
        hooks_.log(level, msg);
    }
}

bool ObjectMirror::from_bluez(sd_bus_message* m) const {
    return !owner_.empty() && dbus::sender_of(m) == owner_;
}

const MirroredDevice* ObjectMirror::device(const std::string& path) const {
    auto it = devices_.find(path);
    return it != devices_.end() ? &it->second : nullptr;
}

void ObjectMirror::start(const dbus::Bus& bus) {
    bus_ = &bus;
    retrying_ = true;
    dbus::MatchRule owner_rule;
    owner_rule.sender = kDBusName;
    owner_rule.path = kDBusPath;
    owner_rule.interface = kDBusName;
    owner_rule.member = "NameOwnerChanged";
    owner_rule.arg0 = kBluez;
    matches_.push_back(
        dbus::add_match(bus, owner_rule, [this](sd_bus_message* m) { on_name_owner_changed(m); }));

    dbus::MatchRule om;
    om.sender = kBluez;
    om.interface = kObjectManagerIface;
    om.member = "InterfacesAdded";
    matches_.push_back(
        dbus::add_match(bus, om, [this](sd_bus_message* m) { on_interfaces_added(m); }));
    om.member = "InterfacesRemoved";
    matches_.push_back(
        dbus::add_match(bus, om, [this](sd_bus_message* m) { on_interfaces_removed(m); }));

    dbus::MatchRule pc;
    pc.sender = kBluez;
    pc.interface = kPropertiesIface;
    pc.member = "PropertiesChanged";
    for (const char* iface : {kAdapterIface, kDeviceIface}) {
        pc.arg0 = iface;
        matches_.push_back(
            dbus::add_match(bus, pc, [this](sd_bus_message* m) { on_properties_changed(m); }));
    }

    // Sent after the AddMatch calls, so no change can fall between the answer and
    // the matches taking effect.
    if (opts_.list_at_once) {
        list();
        return;
    }
    owner_query_ = dbus::call_async(
        bus, dbus::Target{kDBusName, kDBusPath, kDBusName, "GetNameOwner"},
        [](sd_bus_message* m) {
            dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, kBluez), "append name");
        },
        [this](sd_bus_message* reply, const dbus::RemoteError* e) {
            if (e != nullptr) {
                // NameHasNoOwner: bluetoothd is not running; NameOwnerChanged will
                // tell when it starts.
                if (e->name != "org.freedesktop.DBus.Error.NameHasNoOwner") {
                    log(LogLevel::Warning, "cannot ask for org.bluez: " + e->to_string());
                }
                if (hooks_.on_absent) {
                    hooks_.on_absent(*e);
                }
                return;
            }
            appeared(dbus::read_string(reply));
        });
}

void ObjectMirror::stop_retrying() {
    retrying_ = false;
    list_retry_.reset();
}

void ObjectMirror::forget() {
    list_retry_.reset();
    list_query_.reset();
    owner_query_.reset();
    listing_ = false;
    owner_.clear();
    listed_ = false;
    adapters_.clear();
    devices_.clear();
    services_.clear();
    chrcs_.clear();
}

void ObjectMirror::reset() {
    forget();
    matches_.clear();
    bus_ = nullptr;
}

void ObjectMirror::on_name_owner_changed(sd_bus_message* m) {
    // Only the bus itself may say who owns a name (a peer could send us a look-alike
    // unicast signal).
    if (dbus::sender_of(m) != kDBusName) {
        return;
    }
    const std::string name = dbus::read_string(m);
    (void)dbus::read_string(m);  // the old owner
    const std::string new_owner = dbus::read_string(m);
    if (name != kBluez) {
        return;
    }
    if (!new_owner.empty()) {
        appeared(new_owner);
    } else if (!owner_.empty() || listing_) {
        gone();
    }
}

void ObjectMirror::appeared(const std::string& unique) {
    if (unique == owner_) {
        return;
    }
    if (!owner_.empty()) {
        gone();
    }
    owner_ = unique;
    log(LogLevel::Info, "bluetoothd is on the bus (" + unique + ")");
    list_failures_ = 0;
    if (!listing_) {
        list();
    }
    if (hooks_.on_appeared) {
        hooks_.on_appeared(owner_);
    }
}

void ObjectMirror::gone() {
    log(LogLevel::Warning, "bluetoothd left the bus: waiting for it to return");
    forget();
    if (hooks_.on_gone) {
        hooks_.on_gone();
    }
}

void ObjectMirror::list() {
    listing_ = true;
    list_query_ = dbus::call_async(
        *bus_,
        dbus::Target{opts_.list_at_once ? std::string(kBluez) : owner_, "/", kObjectManagerIface,
                     "GetManagedObjects"},
        nullptr,
        [this](sd_bus_message* reply, const dbus::RemoteError* e) { on_listing(reply, e); },
        opts_.list_timeout_usec);
}

void ObjectMirror::on_listing(sd_bus_message* reply, const dbus::RemoteError* e) {
    listing_ = false;
    if (e != nullptr) {
        ++list_failures_;
        if (hooks_.on_list_failed) {
            hooks_.on_list_failed(*e);
        }
        if (!opts_.retry_listing) {
            return;
        }
        const auto delay = backoff_delay(list_failures_);
        log(LogLevel::Warning, "cannot list BlueZ's objects: " + e->to_string() +
                                   "; asking again in " + std::to_string(delay.count()) + " s");
        list_retry_ = loop_.add_timer_relative(delay, [this] {
            try {
                if (!owner_.empty() && retrying_) {
                    list();
                }
            } catch (const std::exception& ex) {
                log(LogLevel::Warning, std::string("listing BlueZ's objects: ") + ex.what());
            }
        });
        return;
    }
    if (owner_.empty()) {
        // Listed by the well-known name (list_at_once): the answer tells who owns it.
        owner_ = dbus::sender_of(reply);
        log(LogLevel::Info, "bluetoothd is on the bus (" + owner_ + ")");
        if (hooks_.on_appeared) {
            hooks_.on_appeared(owner_);
        }
    }
    std::map<std::string, MirroredDevice> before = std::move(devices_);
    adapters_.clear();
    devices_.clear();
    services_.clear();
    chrcs_.clear();
    std::map<std::string, std::vector<std::string>> keys;
    Reader read{*this};
    dbus::check(sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "{oa{sa{sv}}}"),
                "enter GetManagedObjects reply");
    while (dbus::check(sd_bus_message_enter_container(reply, SD_BUS_TYPE_DICT_ENTRY, "oa{sa{sv}}"),
                       "enter object") > 0) {
        const std::string path = dbus::read_string(reply, 'o');
        std::vector<std::string> k;
        if (read.interfaces(path, reply, k)) {
            keys[path] = std::move(k);
        }
        dbus::check(sd_bus_message_exit_container(reply), "exit object");
    }
    dbus::check(sd_bus_message_exit_container(reply), "exit GetManagedObjects reply");
    listed_ = true;
    list_failures_ = 0;
    if (hooks_.on_device) {
        const MirroredDevice none;
        for (const auto& [path, d] : devices_) {
            auto old = before.find(path);
            hooks_.on_device(DeviceUpdate{path, old != before.end() ? old->second : none, d,
                                          MirrorOrigin::Listing, keys[path]});
        }
    }
    log(LogLevel::Debug, "BlueZ has " + std::to_string(adapters_.size()) + " adapter(s) and " +
                             std::to_string(devices_.size()) + " device(s)");
    if (hooks_.on_listed) {
        hooks_.on_listed();
    }
}

void ObjectMirror::on_interfaces_added(sd_bus_message* m) {
    if (!from_bluez(m)) {
        return;
    }
    const std::string path = dbus::read_string(m, 'o');
    const MirroredDevice* known = device(path);
    const MirroredDevice before = known != nullptr ? *known : MirroredDevice{};
    std::vector<std::string> keys;
    if (Reader{*this}.interfaces(path, m, keys) && hooks_.on_device) {
        hooks_.on_device(DeviceUpdate{path, before, devices_.at(path), MirrorOrigin::Added, keys});
    }
    if (hooks_.on_changed) {
        hooks_.on_changed();
    }
}

void ObjectMirror::on_interfaces_removed(sd_bus_message* m) {
    if (!from_bluez(m)) {
        return;
    }
    const std::string path = dbus::read_string(m, 'o');
    for (const std::string& iface : dbus::read_strings(m)) {
        remove(path, iface);
    }
    if (hooks_.on_changed) {
        hooks_.on_changed();
    }
}

void ObjectMirror::remove(const std::string& path, const std::string& iface) {
    if (iface == kAdapterIface) {
        log(LogLevel::Info, "adapter " + adapter_name(path) + " removed");
        if (hooks_.on_adapter_removed) {
            hooks_.on_adapter_removed(path);
        }
        adapters_.erase(path);
        for (auto it = devices_.begin(); it != devices_.end();) {
            it = it->second.adapter == path ? devices_.erase(it) : std::next(it);
        }
    } else if (iface == kDeviceIface) {
        if (hooks_.on_device_removed) {
            hooks_.on_device_removed(path);
        }
        devices_.erase(path);
    } else if (iface == kServiceIface) {
        services_.erase(path);
    } else if (iface == kChrcIface) {
        chrcs_.erase(path);
    } else if (iface == kGattManagerIface || iface == kAdvManagerIface) {
        auto it = adapters_.find(path);
        if (it != adapters_.end()) {
            (iface == kGattManagerIface ? it->second.gatt_manager
                                        : it->second.advertising_manager) = false;
        }
    }
}

void ObjectMirror::on_properties_changed(sd_bus_message* m) {
    if (!from_bluez(m)) {
        return;
    }
    const char* raw_path = sd_bus_message_get_path(m);
    const std::string path = raw_path != nullptr ? raw_path : "";
    const std::string iface = dbus::read_string(m);
    // An object not announced yet is left alone: GetManagedObjects or
    // InterfacesAdded will bring it whole.
    if (iface == kAdapterIface) {
        auto it = adapters_.find(path);
        if (it == adapters_.end()) {
            return;
        }
        const bool was = it->second.powered;
        Reader::adapter(it->second, m);
        if (was != it->second.powered) {
            log(LogLevel::Info, "adapter " + adapter_name(path) + " powered " +
                                    (it->second.powered ? "on" : "off"));
        }
    } else if (iface == kDeviceIface) {
        auto it = devices_.find(path);
        if (it == devices_.end()) {
            return;
        }
        const MirroredDevice before = it->second;
        const std::vector<std::string> keys = Reader::device(it->second, m);
        if (hooks_.on_device) {
            hooks_.on_device(DeviceUpdate{path, before, it->second, MirrorOrigin::Changed, keys});
        }
    }
    if (hooks_.on_changed) {
        hooks_.on_changed();
    }
}

dbus::Slot watch_characteristic_value(const dbus::Bus& bus, const std::string& path,
                                      std::function<void(const dbus::Bytes& value)> on_value) {
    dbus::MatchRule rule;
    rule.sender = kBluez;
    rule.path = path;
    rule.interface = kPropertiesIface;
    rule.member = "PropertiesChanged";
    rule.arg0 = kChrcIface;
    return dbus::add_match(bus, rule, [on_value = std::move(on_value)](sd_bus_message* m) {
        dbus::read_string(m);
        std::optional<dbus::Bytes> value;
        dbus::read_dict(m, [&](const std::string& key, sd_bus_message* v) {
            if (key != "Value") {
                return false;
            }
            value = dbus::read_variant_bytes(v);
            return true;
        });
        if (value) {
            on_value(*value);
        }
    });
}

}  // namespace bzs::bluez
