// SPDX-License-Identifier: GPL-3.0-or-later
#include "bluez/peripheral.h"

#include <algorithm>
#include <map>
#include <utility>

#include "bluez/advertisement.h"
#include "bluez/agent.h"
#include "dbus/bus.h"
#include "bluez/gatt_app.h"
#include "bluez/names.h"

namespace bzs::bluez {

namespace {

using namespace names;  // D-Bus names (bluez/names.h)
constexpr const char* kAgentManagerPath = "/org/bluez";
constexpr const char* kDBusPath = "/org/freedesktop/DBus";

// A Release within this time of registering counts as a failure (backoff), so a
// BlueZ that keeps dropping us is not hammered with registrations.
constexpr auto kReleaseGrace = std::chrono::seconds(10);
constexpr auto kMaxBackoff = std::chrono::seconds(60);

std::chrono::seconds backoff_delay(unsigned failures) {
    const unsigned shift = std::min(failures > 0 ? failures - 1 : 0U, 6U);
    return std::min<std::chrono::seconds>(std::chrono::seconds(1U << shift), kMaxBackoff);
}

}  // namespace

// ---------------------------------------------------------------- pure parts

std::string adapter_name(std::string_view path) {
    const auto pos = path.rfind('/');
    return std::string(pos == std::string_view::npos ? path : path.substr(pos + 1));
}

std::optional<std::string> choose_adapter(const std::vector<AdapterInfo>& adapters,
                                          std::string_view configured, std::string_view current) {
    std::vector<AdapterInfo> sorted = adapters;
    std::sort(sorted.begin(), sorted.end(),
              [](const AdapterInfo& a, const AdapterInfo& b) { return a.path < b.path; });
    if (!configured.empty()) {
        for (const auto& a : sorted) {
            if (adapter_name(a.path) == configured) {
                return a.path;
            }
        }
        return std::nullopt;
    }
    const AdapterInfo* cur = nullptr;
    for (const auto& a : sorted) {
        if (a.path == current) {
            cur = &a;
        }
    }
    if (cur != nullptr && cur->powered) {
        return cur->path;
    }
    for (const auto& a : sorted) {
        if (a.powered) {
            return a.path;
        }
    }
    if (cur != nullptr) {
        return cur->path;
    }
    if (!sorted.empty()) {
        return sorted.front().path;
    }
    return std::nullopt;
}

std::string Status::summary() const {
    if (disabled) {
        return reason;
    }
    if (stopping) {
        return "BLE: stopping (unregistering from BlueZ)";
    }
    if (!bus_connected) {
        return "BLE: starting (connecting to the system bus)";
    }
    if (!bluez_present) {
        return "BLE: waiting for bluetoothd (org.bluez is not on the system bus)";
    }
    std::string s;
    if (adapter.empty()) {
        s = "BLE: waiting for a Bluetooth adapter";
    } else if (!powered) {
        s = "BLE: adapter " + adapter + " is powered off; waiting for it";
    } else if (registered && advertising) {
        s = "BLE: advertising on " + adapter;
    } else if (registered) {
        s = "BLE: service registered on " + adapter + ", not advertising";
    } else {
        s = "BLE: registering on " + adapter;
    }
    if (powered) {
        const std::size_t n = connected_devices.size();
        s += ", " + std::to_string(n) + (n == 1 ? " device" : " devices") + " connected";
    }
    if (!agent) {
        s += "; pairing agent not registered";
    }
    return s;
}

// ---------------------------------------------------------------- the peripheral

namespace {

// One thing registered with BlueZ (application, advertisement or agent).
struct Registration {
    enum class State { Idle, Pending, Registered, Backoff };
    State state = State::Idle;
    std::string adapter;  ///< adapter path it is (being) registered on
    dbus::Slot call;
    loop::Source retry;
    unsigned failures = 0;
    std::chrono::steady_clock::time_point since{};

    [[nodiscard]] bool active() const {
        return state == State::Registered || state == State::Pending;
    }
    // Back to Idle, forgetting any failure history (the environment changed).
    void reset() {
        state = State::Idle;
        adapter.clear();
        call.reset();
        retry.reset();
        failures = 0;
    }
};

struct AdapterRecord {
    bool powered = false;
    bool gatt = false;         ///< has GattManager1
    bool advertising = false;  ///< has LEAdvertisingManager1
};

struct DeviceRecord {
    std::string adapter;
    std::string address;
    std::string alias;
    bool connected = false;
    bool paired = false;
    bool bonded = false;
};

}  // namespace

struct Peripheral::Impl {
    Impl(loop::EventLoop& l, PeripheralOptions o, PeripheralHooks h)
        : loop(l),
          opts(std::move(o)),
          hooks(std::move(h)),
          app_path(opts.object_root + "/app"),
          adv_path(opts.object_root + "/advertisement0"),
          agent_path(opts.object_root + "/agent") {}

    ~Impl() { teardown(); }

    // Declared first so it is destroyed last: every Slot below refers to it.
    dbus::Bus bus;

    loop::EventLoop& loop;
    PeripheralOptions opts;
    PeripheralHooks hooks;
    std::string app_path;
    std::string adv_path;
    std::string agent_path;

    std::unique_ptr<GattApp> app;
    std::unique_ptr<Advertisement> adv;
    std::unique_ptr<Agent> agent;
    std::vector<dbus::Slot> matches;
    dbus::Slot owner_query;
    dbus::Slot objects_query;
    loop::Source objects_retry;
    unsigned objects_failures = 0;
    dbus::Slot agent_default_call;

    std::string owner;  ///< unique name of org.bluez's owner; empty when absent
    bool objects_known = false;
    std::map<std::string, AdapterRecord> adapters;
    std::map<std::string, DeviceRecord> devices;
    std::string adapter;  ///< path of the adapter in use (maybe unpowered)

    Registration app_reg;
    Registration adv_reg;
    Registration agent_reg;
    loop::Source reconcile_src;

    bool stopping = false;
    std::function<void()> stop_done;
    loop::Source stop_timer;
    std::vector<dbus::Slot> stop_calls;
    std::size_t stop_pending = 0;

    Status status;
    bool status_sent = false;
    std::shared_ptr<bool> alive = std::make_shared<bool>(true);

    // ---- helpers

    void log(LogLevel level, const std::string& msg) const {
        if (hooks.log) {
            hooks.log(level, msg);
        }
    }

    // Runs work started by the loop; an sd-bus failure is logged, never thrown into
    // the loop (which would stop the daemon).
    template <class F>
    void guard(const char* what, F&& f) noexcept {
        try {
            f();
        } catch (const std::exception& e) {
            try {
                log(LogLevel::Warning, std::string(what) + ": " + e.what());
            } catch (...) {
            }
        }
    }

    [[nodiscard]] bool trusted(sd_bus_message* m) const {
        return !owner.empty() && dbus::sender_of(m) == owner;
    }

    [[nodiscard]] std::string describe(const std::string& device) const {
        auto it = devices.find(device);
        std::string address = it != devices.end() ? it->second.address : std::string();
        if (address.empty()) {
            // "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF" -> "AA:BB:CC:DD:EE:FF"
            std::string leaf = adapter_name(device);
            if (leaf.rfind("dev_", 0) == 0) {
                address = leaf.substr(4);
                std::replace(address.begin(), address.end(), '_', ':');
            } else {
                address = device;
            }
        }
        if (it != devices.end() && !it->second.alias.empty() && it->second.alias != address) {
            return it->second.alias + " (" + address + ")";
        }
        return address;
    }

    [[nodiscard]] bool bonded(const std::string& device) const {
        auto it = devices.find(device);
        return it != devices.end() && (it->second.bonded || it->second.paired);
    }

    dbus::Target bluez(const std::string& path, const char* iface, const char* member) const {
        return dbus::Target{owner, path, iface, member};
    }

    // ---- setup

    void open(const std::function<dbus::Bus()>& connect) {
        try {
            bus = connect();
            bus.attach(loop.native());
        } catch (const dbus::BusError& e) {
            bus.reset();
            disable(std::string("no system bus: BLE disabled (") + e.what() + ")");
            return;
        }
        std::weak_ptr<bool> weak = alive;
        bus.set_exception_sink([this, weak](const std::exception& e) {
            if (!weak.expired()) {
                log(LogLevel::Warning, std::string("D-Bus: ") + e.what());
            }
        });
        try {
            export_objects();
            watch();
        } catch (const dbus::BusError& e) {
            teardown();
            disable(std::string("BLE disabled: cannot export the D-Bus objects (") + e.what() +
                    ")");
            return;
        }
        // The first status goes out once the bus told us whether bluetoothd runs.
    }

    void disable(const std::string& reason) {
        status.disabled = true;
        status.reason = reason;
        log(LogLevel::Error, reason);
        update_status();
    }

    void export_objects() {
        auto trust = [this](sd_bus_message* m) { return trusted(m); };
        auto logfn = [this](LogLevel l, const std::string& s) { log(l, s); };

        GattOptions go;
        go.root = app_path;
        go.pi_name = opts.pi_name;
        go.pi_id_hex = opts.pi_id_hex;
        go.require_bonding = opts.require_bonding;
        go.challenge_ttl_seconds = opts.challenge_ttl_seconds;
        GattApp::Hooks gh;
        gh.trusted = trust;
        gh.on_command = [this](CommandFrame cf) { on_command(std::move(cf)); };
        gh.on_bad_write = [this](const std::string& device, const std::string& detail) {
            if (hooks.on_bad_write) {
                hooks.on_bad_write(describe(device), detail);
            }
        };
        gh.clock = hooks.clock;
        gh.log = logfn;
        app = std::make_unique<GattApp>(bus.get(), loop, std::move(go), std::move(gh));

        Advertisement::Hooks ah;
        ah.trusted = trust;
        ah.on_release = [this] { released(adv_reg, "advertisement"); };
        adv = std::make_unique<Advertisement>(bus.get(), adv_path, opts.local_name,
                                              std::string(core::protocol::kServiceUuid), std::move(ah));

        Agent::Hooks gh2;
        gh2.trusted = trust;
        gh2.window_open = hooks.pairing_window_open;
        gh2.bonded = [this](const std::string& d) { return bonded(d); };
        gh2.describe = [this](const std::string& d) { return describe(d); };
        gh2.on_passkey = hooks.on_passkey;
        gh2.on_cancel = hooks.on_pairing_cancelled;
        gh2.on_release = [this] { released(agent_reg, "pairing agent"); };
        gh2.log = logfn;
        agent = std::make_unique<Agent>(bus.get(), agent_path, std::move(gh2));
    }

    void watch() {
        const dbus::Bus& b = bus;
        dbus::MatchRule owner_rule;
        owner_rule.sender = kDBusName;
        owner_rule.path = kDBusPath;
        owner_rule.interface = kDBusName;
        owner_rule.member = "NameOwnerChanged";
        owner_rule.arg0 = kBluez;
        matches.push_back(
            dbus::add_match(b, owner_rule, [this](sd_bus_message* m) { on_name_owner_changed(m); }));

        dbus::MatchRule om;
        om.sender = kBluez;
        om.interface = kObjectManagerIface;
        om.member = "InterfacesAdded";
        matches.push_back(dbus::add_match(b, om, [this](sd_bus_message* m) { on_interfaces_added(m); }));
        om.member = "InterfacesRemoved";
        matches.push_back(
            dbus::add_match(b, om, [this](sd_bus_message* m) { on_interfaces_removed(m); }));

        dbus::MatchRule pc;
        pc.sender = kBluez;
        pc.interface = kPropertiesIface;
        pc.member = "PropertiesChanged";
        for (const char* iface : {kAdapterIface, kDeviceIface}) {
            pc.arg0 = iface;
            matches.push_back(
                dbus::add_match(b, pc, [this](sd_bus_message* m) { on_properties_changed(m); }));
        }

        matches.push_back(dbus::watch_disconnect(b, [this] { lost_bus(); }));

        // Sent after the AddMatch calls, so an owner change cannot fall between the
        // answer and the match taking effect.
        owner_query = dbus::call_async(
            b, dbus::Target{kDBusName, kDBusPath, kDBusName, "GetNameOwner"},
            [](sd_bus_message* m) {
                dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, kBluez), "append name");
            },
            [this](sd_bus_message* reply, const dbus::RemoteError* e) {
                if (e != nullptr) {
                    // NameHasNoOwner: bluetoothd is not running; the status says so
                    // and NameOwnerChanged will tell when it starts.
                    if (e->name != "org.freedesktop.DBus.Error.NameHasNoOwner") {
                        log(LogLevel::Warning, "cannot ask for org.bluez: " + e->to_string());
                    }
                    update_status();
                    return;
                }
                bluez_appeared(dbus::read_string(reply));
            });
    }

    void teardown() {
        reconcile_src.reset();
        objects_retry.reset();
        stop_timer.reset();
        app_reg.reset();
        adv_reg.reset();
        agent_reg.reset();
        agent_default_call.reset();
        objects_query.reset();
        owner_query.reset();
        stop_calls.clear();
        matches.clear();
        agent.reset();
        adv.reset();
        app.reset();
        bus.reset();
    }

    void lost_bus() {
        if (status.disabled) {
            return;
        }
        owner.clear();
        devices.clear();
        adapters.clear();
        adapter.clear();
        status.disabled = true;
        status.reason = "lost the system bus: BLE disabled until the daemon restarts";
        log(LogLevel::Error, status.reason);
        // Torn down from a later iteration: we are inside the bus's own dispatch.
        std::weak_ptr<bool> weak = alive;
        loop.post([this, weak] {
            if (weak.expired()) {
                return;
            }
            teardown();
            update_status();
            finish_stop();
        });
    }

    // ---- following bluetoothd

    void on_name_owner_changed(sd_bus_message* m) {
        // Only the bus itself may say who owns a name (a peer could send us a
        // look-alike unicast signal).
        if (dbus::sender_of(m) != kDBusName) {
            return;
        }
        const std::string name = dbus::read_string(m);
        const std::string old_owner = dbus::read_string(m);
        const std::string new_owner = dbus::read_string(m);
        if (name != kBluez) {
            return;
        }
        if (new_owner.empty()) {
            if (!owner.empty()) {
                bluez_gone();
            }
        } else {
            bluez_appeared(new_owner);
        }
        (void)old_owner;
    }

    void bluez_appeared(const std::string& unique) {
        if (unique == owner) {
            return;
        }
        if (!owner.empty()) {
            bluez_gone();
        }
        owner = unique;
        log(LogLevel::Info, "bluetoothd is on the bus (" + unique + ")");
        // A new bluetoothd knows nothing of us: register everything afresh.
        app_reg.reset();
        adv_reg.reset();
        agent_reg.reset();
        objects_failures = 0;
        fetch_objects();
        schedule_reconcile();  // the agent needs no adapter: register it right away
        update_status();
    }

    void bluez_gone() {
        log(LogLevel::Warning, "bluetoothd left the bus: waiting for it to return");
        owner.clear();
        objects_known = false;
        objects_query.reset();
        objects_retry.reset();
        adapters.clear();
        devices.clear();
        adapter.clear();
        app_reg.reset();
        adv_reg.reset();
        agent_reg.reset();
        agent_default_call.reset();
        if (app) {
            app->drop_all();
        }
        update_status();
    }

    void fetch_objects() {
        objects_query = dbus::call_async(
            bus, bluez("/", kObjectManagerIface, "GetManagedObjects"), nullptr,
            [this](sd_bus_message* reply, const dbus::RemoteError* e) {
                if (e != nullptr) {
                    ++objects_failures;
                    const auto delay = backoff_delay(objects_failures);
                    log(LogLevel::Warning, "cannot list BlueZ's objects: " + e->to_string() +
                                               "; asking again in " +
                                               std::to_string(delay.count()) + " s");
                    objects_retry = loop.add_timer_relative(delay, [this] {
                        guard("listing BlueZ's objects", [this] {
                            if (!owner.empty() && !stopping) {
                                fetch_objects();
                            }
                        });
                    });
                    return;
                }
                std::map<std::string, DeviceRecord> before = std::move(devices);
                adapters.clear();
                devices.clear();
                dbus::check(sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "{oa{sa{sv}}}"),
                      "enter GetManagedObjects reply");
                while (dbus::check(sd_bus_message_enter_container(reply, SD_BUS_TYPE_DICT_ENTRY,
                                                            "oa{sa{sv}}"),
                             "enter object") > 0) {
                    const std::string path = dbus::read_string(reply, 'o');
                    read_interfaces(path, reply);
                    dbus::check(sd_bus_message_exit_container(reply), "exit object");
                }
                dbus::check(sd_bus_message_exit_container(reply), "exit GetManagedObjects reply");
                objects_known = true;
                objects_failures = 0;
                for (const auto& [path, d] : devices) {
                    auto old = before.find(path);
                    device_changed(path, old != before.end() ? old->second : DeviceRecord{}, d);
                }
                log(LogLevel::Debug, "BlueZ has " + std::to_string(adapters.size()) +
                                         " adapter(s) and " + std::to_string(devices.size()) +
                                         " device(s)");
                schedule_reconcile();
                update_status();
            });
    }

    // Reads an a{sa{sv}} (interfaces and their properties) of the object at `path`.
    void read_interfaces(const std::string& path, sd_bus_message* m) {
        dbus::check(sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sa{sv}}"), "enter interfaces");
        while (dbus::check(sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sa{sv}"),
                     "enter interface") > 0) {
            const std::string iface = dbus::read_string(m);
            if (iface == kAdapterIface) {
                read_adapter_props(adapters[path], m);
            } else if (iface == kDeviceIface) {
                read_device_props(devices[path], m);
            } else if (iface == kGattManagerIface) {
                adapters[path].gatt = true;
                dbus::skip_value(m);
            } else if (iface == kAdvManagerIface) {
                adapters[path].advertising = true;
                dbus::skip_value(m);
            } else {
                dbus::skip_value(m);
            }
            dbus::check(sd_bus_message_exit_container(m), "exit interface");
        }
        dbus::check(sd_bus_message_exit_container(m), "exit interfaces");
    }

    static void read_adapter_props(AdapterRecord& a, sd_bus_message* m) {
        dbus::read_dict(m, [&a](const std::string& key, sd_bus_message* mm) {
            if (key == "Powered") {
                a.powered = dbus::read_variant_bool(mm).value_or(a.powered);
                return true;
            }
            return false;
        });
    }

    static void read_device_props(DeviceRecord& d, sd_bus_message* m) {
        dbus::read_dict(m, [&d](const std::string& key, sd_bus_message* mm) {
            if (key == "Adapter") {
                d.adapter = dbus::read_variant_string(mm).value_or(d.adapter);
            } else if (key == "Address") {
                d.address = dbus::read_variant_string(mm).value_or(d.address);
            } else if (key == "Alias") {
                d.alias = dbus::read_variant_string(mm).value_or(d.alias);
            } else if (key == "Connected") {
                d.connected = dbus::read_variant_bool(mm).value_or(d.connected);
            } else if (key == "Paired") {
                d.paired = dbus::read_variant_bool(mm).value_or(d.paired);
            } else if (key == "Bonded") {
                d.bonded = dbus::read_variant_bool(mm).value_or(d.bonded);
            } else {
                return false;
            }
            return true;
        });
    }

    void device_changed(const std::string& path, const DeviceRecord& before,
                        const DeviceRecord& after) {
        if (!before.connected && after.connected) {
            if (after.adapter == adapter) {
                log(LogLevel::Info, "BLE: " + describe(path) + " connected");
            }
        } else if (before.connected && !after.connected) {
            device_disconnected(path);
        }
    }

    // Everything tied to the device's link goes: partial write, challenge, result.
    void device_disconnected(const std::string& path) {
        auto it = devices.find(path);
        if (it != devices.end() && it->second.adapter == adapter) {
            log(LogLevel::Info, "BLE: " + describe(path) + " disconnected");
        }
        if (app) {
            app->drop_device(path);
        }
    }

    void on_interfaces_added(sd_bus_message* m) {
        if (!trusted(m)) {
            return;
        }
        const std::string path = dbus::read_string(m, 'o');
        auto it = devices.find(path);
        const DeviceRecord before = it != devices.end() ? it->second : DeviceRecord{};
        read_interfaces(path, m);
        it = devices.find(path);
        if (it != devices.end()) {
            device_changed(path, before, it->second);
        }
        schedule_reconcile();
        update_status();
    }

    void on_interfaces_removed(sd_bus_message* m) {
        if (!trusted(m)) {
            return;
        }
        const std::string path = dbus::read_string(m, 'o');
        for (const std::string& iface : dbus::read_strings(m)) {
            if (iface == kAdapterIface) {
                log(LogLevel::Info, "adapter " + adapter_name(path) + " removed");
                adapters.erase(path);
                for (auto it = devices.begin(); it != devices.end();) {
                    if (it->second.adapter == path) {
                        if (it->second.connected) {
                            device_disconnected(it->first);
                        }
                        it = devices.erase(it);
                    } else {
                        ++it;
                    }
                }
            } else if (iface == kDeviceIface) {
                auto it = devices.find(path);
                if (it != devices.end()) {
                    if (it->second.connected) {
                        device_disconnected(path);
                    }
                    devices.erase(it);
                }
                if (app) {
                    app->drop_device(path);
                }
            } else if (iface == kGattManagerIface || iface == kAdvManagerIface) {
                auto it = adapters.find(path);
                if (it != adapters.end()) {
                    (iface == kGattManagerIface ? it->second.gatt : it->second.advertising) = false;
                }
            }
        }
        schedule_reconcile();
        update_status();
    }

    void on_properties_changed(sd_bus_message* m) {
        if (!trusted(m)) {
            return;
        }
        const char* raw_path = sd_bus_message_get_path(m);
        const std::string path = raw_path != nullptr ? raw_path : "";
        const std::string iface = dbus::read_string(m);
        if (iface == kAdapterIface) {
            auto it = adapters.find(path);
            if (it == adapters.end()) {
                return;  // not announced yet; GetManagedObjects or InterfacesAdded will
            }
            const bool was = it->second.powered;
            read_adapter_props(it->second, m);
            if (was != it->second.powered) {
                log(LogLevel::Info, "adapter " + adapter_name(path) + " powered " +
                                        (it->second.powered ? "on" : "off"));
            }
        } else if (iface == kDeviceIface) {
            auto it = devices.find(path);
            if (it == devices.end()) {
                return;
            }
            const DeviceRecord before = it->second;
            read_device_props(it->second, m);
            device_changed(path, before, it->second);
        }
        schedule_reconcile();
        update_status();
    }

    // ---- registrations

    void schedule_reconcile() {
        if (reconcile_src || stopping || !bus) {
            return;
        }
        // Deferred, so a burst of signals leads to one pass.
        reconcile_src = loop.add_defer([this] {
            reconcile_src.reset();
            guard("BLE registration", [this] { reconcile(); });
        });
    }

    // Brings the registrations in line with what BlueZ currently offers.
    void reconcile() {
        if (!bus || stopping || owner.empty() || status.disabled) {
            update_status();
            return;
        }
        if (agent_reg.state == Registration::State::Idle) {
            register_agent();
        }
        if (!objects_known) {
            update_status();
            return;
        }
        std::vector<AdapterInfo> infos;
        for (const auto& [path, a] : adapters) {
            infos.push_back(AdapterInfo{path, a.powered});
        }
        const std::string target = choose_adapter(infos, opts.adapter, adapter).value_or("");
        if (target != adapter) {
            withdraw("adapter change");
            adapter = target;
            if (adapter.empty()) {
                log(LogLevel::Warning,
                    opts.adapter.empty()
                        ? std::string("BLE: no Bluetooth adapter; waiting for one")
                        : "BLE: adapter " + opts.adapter + " is not present; waiting for it");
            } else {
                log(LogLevel::Info, "BLE: using adapter " + adapter_name(adapter));
            }
        }
        if (adapter.empty()) {
            update_status();
            return;
        }
        const AdapterRecord& a = adapters.at(adapter);
        if (!a.powered) {
            withdraw("adapter powered off");
            update_status();
            return;
        }
        if (app_reg.state == Registration::State::Idle && a.gatt) {
            register_app();
        }
        if (adv_reg.state == Registration::State::Idle && a.advertising) {
            register_adv();
        }
        update_status();
    }

    // Best-effort unregistration of what is registered on the current adapter (it
    // is being left or was powered off); replies do not matter.
    void withdraw(const char* why) {
        struct Item {
            Registration* reg;
            const char* iface;
            const char* member;
            const std::string* path;
        };
        for (const Item& it :
             {Item{&app_reg, kGattManagerIface, "UnregisterApplication", &app_path},
              Item{&adv_reg, kAdvManagerIface, "UnregisterAdvertisement", &adv_path}}) {
            if (it.reg->active() && adapters.count(it.reg->adapter) != 0 && !owner.empty()) {
                log(LogLevel::Debug, std::string(it.member) + " (" + why + ")");
                const std::string path = *it.path;
                dbus::call_no_reply(
                    bus.get(), bluez(it.reg->adapter, it.iface, it.member),
                    [path](sd_bus_message* m) {
                        dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_OBJECT_PATH, path.c_str()),
                              "append path");
                    });
            }
            it.reg->reset();
        }
    }

    void register_agent() {
        agent_reg.state = Registration::State::Pending;
        const std::string path = agent_path;
        agent_reg.call = dbus::call_async(
            bus, bluez(kAgentManagerPath, kAgentManagerIface, "RegisterAgent"),
            [path](sd_bus_message* m) {
                dbus::check(sd_bus_message_append(m, "os", path.c_str(), Agent::kCapability),
                      "append RegisterAgent arguments");
            },
            [this, path](sd_bus_message*, const dbus::RemoteError* e) {
                if (!registered(agent_reg, "pairing agent", e)) {
                    return;
                }
                agent_default_call = dbus::call_async(
                    bus, bluez(kAgentManagerPath, kAgentManagerIface, "RequestDefaultAgent"),
                    [path](sd_bus_message* m) {
                        dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_OBJECT_PATH, path.c_str()),
                              "append path");
                    },
                    [this](sd_bus_message*, const dbus::RemoteError* err) {
                        if (err != nullptr) {
                            log(LogLevel::Warning,
                                "could not become BlueZ's default pairing agent: " +
                                    err->to_string());
                        } else {
                            log(LogLevel::Debug, "pairing agent is BlueZ's default agent");
                        }
                    });
            });
    }

    void register_on_adapter(Registration& reg, const char* what, const char* iface,
                             const char* member, const std::string& object) {
        reg.state = Registration::State::Pending;
        reg.adapter = adapter;
        reg.call = dbus::call_async(
            bus, bluez(adapter, iface, member),
            [object](sd_bus_message* m) {
                dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_OBJECT_PATH, object.c_str()),
                      "append path");
                dbus::append_empty_dict(m);
            },
            [this, &reg, what](sd_bus_message*, const dbus::RemoteError* e) {
                registered(reg, what, e);
            });
    }

    void register_app() {
        register_on_adapter(app_reg, "GATT application", kGattManagerIface, "RegisterApplication",
                            app_path);
    }

    void register_adv() {
        register_on_adapter(adv_reg, "advertisement", kAdvManagerIface, "RegisterAdvertisement",
                            adv_path);
    }

    // The reply to a registration. Returns true when it is now registered.
    bool registered(Registration& reg, const char* what, const dbus::RemoteError* e) {
        // AlreadyExists: this connection registered the same object before (e.g. a
        // reply lost in a restart race); it is registered either way.
        if (e == nullptr || e->name == kErrAlreadyExists) {
            reg.state = Registration::State::Registered;
            reg.since = loop.now();
            log(LogLevel::Info,
                std::string(what) + " registered" +
                    (reg.adapter.empty() ? std::string() : " on " + adapter_name(reg.adapter)));
            update_status();
            return true;
        }
        retry_later(reg, what, "registration failed: " + e->to_string());
        update_status();
        return false;
    }

    void retry_later(Registration& reg, const char* what, const std::string& why) {
        ++reg.failures;
        const auto delay = backoff_delay(reg.failures);
        reg.state = Registration::State::Backoff;
        log(LogLevel::Warning, std::string(what) + ": " + why + "; trying again in " +
                                   std::to_string(delay.count()) + " s");
        reg.retry = loop.add_timer_relative(delay, [this, &reg] {
            reg.state = Registration::State::Idle;
            guard("BLE registration", [this] { reconcile(); });
        });
    }

    // BlueZ called Release on the agent or the advertisement.
    void released(Registration& reg, const char* what) {
        if (stopping || owner.empty()) {
            reg.reset();
            update_status();
            return;
        }
        const bool quick =
            reg.state == Registration::State::Registered && loop.now() - reg.since < kReleaseGrace;
        const unsigned failures = reg.failures;
        reg.reset();
        if (quick) {
            reg.failures = failures;
            retry_later(reg, what, "released right after registering");
        } else {
            log(LogLevel::Info, std::string(what) + " released: registering it again");
            schedule_reconcile();
        }
        update_status();
    }

    // ---- commands

    void on_command(CommandFrame cf) {
        if (!hooks.on_command) {
            log(LogLevel::Warning, "BLE command dropped: no command handler");
            return;
        }
        CommandRequest req;
        req.device_path = cf.device;
        req.peer = describe(cf.device);
        req.frame = std::move(cf.frame);
        req.challenge = cf.challenge;
        std::weak_ptr<bool> weak = alive;
        auto once = std::make_shared<bool>(false);
        CommandReply reply = [this, weak, once, device = cf.device,
                              generation = cf.generation](const core::protocol::Bytes& response) {
            if (weak.expired() || *once) {
                return;
            }
            *once = true;
            if (app) {
                app->deliver_result(device, generation, response);
            }
        };
        hooks.on_command(req, std::move(reply));
    }

    // ---- status and stop

    void update_status() {
        Status s;
        s.stopping = stopping;
        s.disabled = status.disabled;
        s.reason = status.reason;
        s.bus_connected = static_cast<bool>(bus) && !status.disabled;
        s.bluez_present = !owner.empty();
        s.adapter = adapter.empty() ? std::string() : adapter_name(adapter);
        auto a = adapters.find(adapter);
        s.powered = a != adapters.end() && a->second.powered;
        s.registered = app_reg.state == Registration::State::Registered;
        s.advertising = adv_reg.state == Registration::State::Registered && s.powered;
        s.agent = agent_reg.state == Registration::State::Registered;
        for (const auto& [path, d] : devices) {
            if (d.connected && !adapter.empty() && d.adapter == adapter) {
                s.connected_devices.push_back(path);
            }
        }
        if (status_sent && s == status) {
            return;
        }
        status = std::move(s);
        status_sent = true;
        if (hooks.on_status) {
            hooks.on_status(status);
        }
    }

    void stop(std::function<void()> done) {
        stopping = true;
        stop_done = std::move(done);
        reconcile_src.reset();
        objects_retry.reset();
        for (Registration* r : {&app_reg, &adv_reg, &agent_reg}) {
            r->retry.reset();
        }
        if (bus && !owner.empty() && !status.disabled) {
            guard("unregistering from BlueZ", [this] { send_unregistrations(); });
        }
        for (Registration* r : {&app_reg, &adv_reg, &agent_reg}) {
            r->reset();
        }
        update_status();
        if (stop_pending == 0) {
            std::weak_ptr<bool> weak = alive;
            loop.post([this, weak] {
                if (!weak.expired()) {
                    finish_stop();
                }
            });
            return;
        }
        stop_timer = loop.add_timer_relative(opts.stop_timeout, [this] {
            log(LogLevel::Warning,
                "BlueZ did not confirm the unregistrations in time; stopping anyway");
            finish_stop();
        });
    }

    void send_unregistrations() {
        struct Item {
            Registration* reg;
            std::string path;
            const char* iface;
            const char* member;
            std::string object;
            const char* what;
        };
        const std::vector<Item> items = {
            {&adv_reg, adv_reg.adapter, kAdvManagerIface, "UnregisterAdvertisement", adv_path,
             "advertisement"},
            {&app_reg, app_reg.adapter, kGattManagerIface, "UnregisterApplication", app_path,
             "GATT application"},
            {&agent_reg, kAgentManagerPath, kAgentManagerIface, "UnregisterAgent", agent_path,
             "pairing agent"},
        };
        const auto timeout_usec = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(opts.stop_timeout).count());
        for (const Item& it : items) {
            if (!it.reg->active() || it.path.empty()) {
                continue;
            }
            if (it.reg != &agent_reg && adapters.count(it.path) == 0) {
                continue;  // the adapter is gone, and our registration with it
            }
            it.reg->call.reset();  // a reply to a pending registration no longer matters
            const std::string object = it.object;
            const char* what = it.what;
            stop_calls.push_back(dbus::call_async(
                bus, bluez(it.path, it.iface, it.member),
                [object](sd_bus_message* m) {
                    dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_OBJECT_PATH, object.c_str()),
                          "append path");
                },
                [this, what](sd_bus_message*, const dbus::RemoteError* e) {
                    if (e != nullptr && e->name != kErrDoesNotExist) {
                        log(LogLevel::Warning,
                            std::string("unregistering the ") + what + ": " + e->to_string());
                    } else {
                        log(LogLevel::Info, std::string(what) + " unregistered");
                    }
                    if (stop_pending > 0 && --stop_pending == 0) {
                        finish_stop();
                    }
                },
                timeout_usec));
            ++stop_pending;
        }
    }

    void finish_stop() {
        if (!stop_done) {
            return;
        }
        stop_timer.reset();
        auto done = std::move(stop_done);
        stop_done = nullptr;
        done();
    }
};

Peripheral::Peripheral(loop::EventLoop& loop, PeripheralOptions options, PeripheralHooks hooks)
    : impl_(std::make_unique<Impl>(loop, std::move(options), std::move(hooks))) {}

Peripheral::~Peripheral() = default;

void Peripheral::start() {
    impl_->open([] { return dbus::Bus::open_system("bluezscriptd"); });
}

void Peripheral::start_on(const std::string& address) {
    impl_->open([&address] { return dbus::Bus::open_address(address, "bluezscriptd"); });
}

void Peripheral::stop(std::function<void()> done) {
    impl_->stop(std::move(done));
}

const Status& Peripheral::status() const {
    return impl_->status;
}

}  // namespace bzs::bluez
