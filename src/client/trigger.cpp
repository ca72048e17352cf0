// SPDX-License-Identifier: GPL-3.0-or-later
#include "client/trigger.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "client/trigger_impl.h"

namespace bzs::client {

namespace {

using namespace bluez::names;  // D-Bus names (bluez/names.h)

// Real controllers drop advertising reports in long scans: restart the scan often.
constexpr auto kScanWindow = std::chrono::seconds(5);
constexpr int kConnectAttempts = 3;
constexpr auto kConnectRetryDelay = std::chrono::seconds(1);
constexpr auto kResolveTimeout = std::chrono::seconds(20);
constexpr auto kCleanupTimeout = std::chrono::seconds(3);

}  // namespace

dbus::Slot Trigger::Impl::call(const std::string& path, const char* iface, const char* member,
                               const dbus::Builder& build, dbus::ReplyHandler on_reply,
                               std::uint64_t timeout) {
    return dbus::call_async(bus, dbus::Target{kBluez, path, iface, member}, build,
                            std::move(on_reply), timeout);
}

// A call whose reply only matters for cleanup bookkeeping.
void Trigger::Impl::fire(const std::string& path, const char* iface, const char* member,
                         const dbus::Builder& build) {
    try {
        calls.push_back(
            call(path, iface, member, build, [](sd_bus_message*, const dbus::RemoteError*) {}));
    } catch (const std::exception&) {
        // The bus is gone: nothing to tidy up then.
    }
}

// ------------------------------------------------------------ outcome

void Trigger::Impl::finish(ExchangeOutcome o) {
    if (!active()) {
        return;
    }
    outcome = std::move(o);
    phase = Phase::Closing;
    // Deferred: finish() may run inside a callback of an object cleanup destroys.
    loop.post([this] { cleanup(); });
}

void Trigger::Impl::fail(TriggerExit exit, std::string message) {
    ExchangeOutcome o;
    o.exit = exit;
    o.message = std::move(message);
    finish(std::move(o));
}

void Trigger::Impl::cleanup() {
    window_timer.reset();
    scan_deadline.reset();
    retry_timer.reset();
    resolve_timer.reset();
    scan_call.reset();
    connect_call.reset();
    exchange.reset();
    if (!bus) {
        phase = Phase::Done;
        return;
    }
    std::vector<std::pair<std::string, std::pair<const char*, const char*>>> todo;
    if (notify_started) {
        todo.push_back({chrc_paths[GattTransport::Chrc::Result], {kChrcIface, "StopNotify"}});
    }
    transport.reset();
    if (discovering || start_sent) {
        todo.push_back({adapter, {kAdapterIface, "StopDiscovery"}});
    }
    if (we_connected && !device.empty()) {
        todo.push_back({device, {kDeviceIface, "Disconnect"}});
    }
    for (const auto& [path, what] : todo) {
        try {
            calls.push_back(call(path, what.first, what.second, {},
                                 [this](sd_bus_message*, const dbus::RemoteError*) {
                                     if (--cleanup_pending == 0) {
                                         phase = Phase::Done;
                                     }
                                 }));
            ++cleanup_pending;
        } catch (const std::exception&) {
            // Lost bus: BlueZ drops our sessions by itself.
        }
    }
    if (agent_registered) {
        unregister_agent();
    }
    if (cleanup_pending == 0) {
        phase = Phase::Done;
        return;
    }
    cleanup_timer = loop.add_timer_relative(kCleanupTimeout, [this] { phase = Phase::Done; });
}

void Trigger::Impl::cancel() {
    if (active()) {
        fail(TriggerExit::Interrupted, "interrupted");
    } else {
        phase = Phase::Done;  // a second interrupt does not wait for BlueZ
    }
}

// ------------------------------------------------------------ start

void Trigger::Impl::start() {
    phase = Phase::Starting;
    try {
        bus = options.bus_address.empty()
                  ? dbus::Bus::open_system("bluezscript-client")
                  : dbus::Bus::open_address(options.bus_address, "bluezscript-client");
        bus.set_exception_sink([this](const std::exception& e) {
            fail(TriggerExit::Bluetooth, std::string("unexpected D-Bus message: ") + e.what());
        });
        bus.attach(loop.native());
        watch();
    } catch (const dbus::BusError& e) {
        bus.reset();
        fail(TriggerExit::Bluetooth, std::string(e.what()) + " (is D-Bus running?)");
        return;
    }
}

void Trigger::Impl::watch() {
    matches.push_back(dbus::watch_disconnect(bus, [this] {
        if (active()) {
            fail(TriggerExit::Bluetooth, "lost the connection to the system bus");
        }
    }));
    mirror.start(bus);
}

// ------------------------------------------------------------ object model

bluez::ObjectMirror::Hooks Trigger::Impl::mirror_hooks() {
    bluez::ObjectMirror::Hooks h;
    h.on_gone = [this] {
        if (active()) {
            fail(TriggerExit::Bluetooth, "bluetoothd stopped");
        }
    };
    h.on_list_failed = [this](const dbus::RemoteError& err) {
        if (!active()) {
            return;
        }
        if (err.name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
            err.name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
            fail(TriggerExit::Bluetooth,
                 "bluetoothd is not running (no org.bluez on the system bus): start it with "
                 "`systemctl start bluetooth`");
        } else {
            fail(TriggerExit::Bluetooth, "cannot talk to bluetoothd: " + err.to_string());
        }
    };
    h.on_listed = [this] {
        if (active()) {
            choose();
        }
    };
    h.on_device = [this](const bluez::DeviceUpdate& u) { sighted(u); };
    h.on_device_removed = [this](const std::string& path) { sightings.erase(path); };
    h.on_adapter_removed = [this](const std::string& path) {
        if (path == adapter && active()) {
            fail(TriggerExit::Bluetooth, "adapter " + adapter_label() + " went away");
        }
    };
    h.on_changed = [this] { react(); };
    return h;
}

// Advertising data arriving (or a current RSSI): the device is in range.
void Trigger::Impl::sighted(const bluez::DeviceUpdate& u) {
    Sighting& s = sightings[u.path];
    if (u.origin == bluez::MirrorOrigin::Added) {
        // Appeared while we listen: just discovered.
        s.seen = true;
        s.advertised = true;
    }
    if (u.origin == bluez::MirrorOrigin::Changed) {
        if (u.has("RSSI") || u.has("ManufacturerData") || u.has("ServiceData") ||
            u.has("TxPower")) {
            s.seen = true;
            s.advertised = true;
        }
    } else if (u.has("RSSI")) {
        s.seen = true;
    }
}

bool Trigger::Impl::seen(const std::string& path) const {
    auto it = sightings.find(path);
    return it != sightings.end() && it->second.seen;
}

void Trigger::Impl::choose() {
    std::vector<bluez::AdapterInfo> list;
    std::string names;
    for (const auto& [path, a] : mirror.adapters()) {
        list.push_back(bluez::AdapterInfo{path, a.powered});
        names += (names.empty() ? "" : ", ") + bluez::adapter_name(path);
    }
    if (list.empty()) {
        fail(TriggerExit::Bluetooth, "no Bluetooth adapter");
        return;
    }
    const auto chosen = bluez::choose_adapter(list, options.adapter, "");
    if (!chosen) {
        fail(TriggerExit::Bluetooth,
             "no Bluetooth adapter " + options.adapter + " (found: " + names + ")");
        return;
    }
    adapter = *chosen;
    if (!mirror.adapters().at(adapter).powered) {
        fail(TriggerExit::Bluetooth,
             "adapter " + adapter_label() + " is powered off (power it on: bluetoothctl power on)");
        return;
    }
    start_scanning();
}

// Keeps the run in step with BlueZ's objects after any change.
void Trigger::Impl::react() {
    if (!active() || adapter.empty()) {
        return;
    }
    const auto a = mirror.adapters().find(adapter);
    if (a == mirror.adapters().end() || !a->second.powered) {
        fail(TriggerExit::Bluetooth, "adapter " + adapter_label() + " was powered off");
        return;
    }
    if (phase == Phase::Scanning) {
        if (auto found = pick()) {
            connect_to(*found);
        }
        return;
    }
    if (device.empty()) {
        return;
    }
    const bluez::MirroredDevice* d = mirror.device(device);
    // ServicesResolved also means the link is up: BlueZ 5.66 never signals
    // Connected = true when its ATT channel comes up before the kernel's
    // "device connected" event (seen with real BlueZ under load, tests/vm).
    const bool up = d != nullptr && (d->connected || d->services_resolved);
    link_up_seen = link_up_seen || up;
    const bool dropped = !up && (link_up_seen || d == nullptr);
    if (phase == Phase::Resolving) {
        if (dropped) {
            retry_connect("the connection dropped before the services were resolved");
        } else if (up && d->services_resolved) {
            on_resolved();
        }
    } else if (phase == Phase::Exchanging && dropped && exchange) {
        exchange->link_lost();
    }
}

// ------------------------------------------------------------ scanning

std::optional<std::string> Trigger::Impl::pick() const {
    const std::string svc(core::protocol::kServiceUuid);
    std::optional<std::string> any;
    const std::string prefix = adapter + "/";
    for (const auto& [path, d] : mirror.devices()) {
        if (path.rfind(prefix, 0) != 0 || tried.count(path) != 0 || !(seen(path) || d.connected)) {
            continue;
        }
        const bool offers = std::any_of(d.uuids.begin(), d.uuids.end(), [&](const std::string& u) {
            return dbus::lower_ascii(u) == svc;
        });
        if (!offers) {
            continue;
        }
        if (d.name == request.pi_name() || d.alias == request.pi_name()) {
            return path;  // the Pi's own name first when several Pis are around
        }
        if (!any) {
            any = path;
        }
    }
    return any;
}

void Trigger::Impl::start_scanning() {
    phase = Phase::Scanning;
    if (!scan_deadline) {
        scan_deadline = timer(options.scan_timeout, [this] {
            scan_expired = true;
            if (phase == Phase::Scanning) {
                not_found();
            }
        });
        notice("looking for Pi '" + request.pi_name() + "' on " + adapter_label() + "...");
    }
    if (auto found = pick()) {
        connect_to(*found);
        return;
    }
    scan_cycle();
}

void Trigger::Impl::not_found() {
    std::string msg = "Pi '" + request.pi_name() + "' not found (timeout after " +
                      std::to_string(options.scan_timeout.count()) + " s)";
    if (wrong_devices > 0) {
        msg += "; " + std::to_string(wrong_devices) + " other device(s) answered: " + last_wrong;
    } else {
        msg += ": is it on, in range, and running bluezscriptd with BLE enabled?";
    }
    fail(TriggerExit::NotFound, msg);
}

void Trigger::Impl::scan_cycle() {
    // BlueZ drops a client's filter with its discovery session: set it each time.
    scan_call = call(
        adapter, kAdapterIface, "SetDiscoveryFilter",
        [](sd_bus_message* m) {
            dbus::check(sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "{sv}"), "open filter");
            append_entry(m, "UUIDs", "as", [m] {
                dbus::append_strings(m, {std::string(core::protocol::kServiceUuid)});
            });
            append_entry(m, "Transport", "s", [m] {
                dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, "le"), "append le");
            });
            dbus::check(sd_bus_message_close_container(m), "close filter");
        },
        [this](sd_bus_message*, const dbus::RemoteError* err) {
            if (phase != Phase::Scanning) {
                return;
            }
            if (err != nullptr) {
                scan_error("cannot set the scan filter", *err);
                return;
            }
            start_sent = true;
            scan_call =
                call(adapter, kAdapterIface, "StartDiscovery", {},
                     [this](sd_bus_message*, const dbus::RemoteError* e) { on_started(e); });
        });
}

void Trigger::Impl::scan_error(const std::string& what, const dbus::RemoteError& err) {
    if (err.name == "org.bluez.Error.NotReady") {
        fail(TriggerExit::Bluetooth,
             "adapter " + adapter_label() + " is powered off (power it on: bluetoothctl power on)");
    } else {
        fail(TriggerExit::Bluetooth, what + " on " + adapter_label() + ": " + err.to_string());
    }
}

void Trigger::Impl::on_started(const dbus::RemoteError* err) {
    if (err != nullptr && err->name != "org.bluez.Error.InProgress") {
        if (phase == Phase::Scanning) {
            scan_error("cannot start scanning", *err);
        }
        return;
    }
    discovering = true;
    if (phase != Phase::Scanning) {
        stop_scanning();  // a device was found while the start was on its way
        return;
    }
    window_timer = timer(kScanWindow, [this] {
        start_sent = false;
        scan_call = call(adapter, kAdapterIface, "StopDiscovery", {},
                         [this](sd_bus_message*, const dbus::RemoteError*) {
                             discovering = false;
                             if (phase == Phase::Scanning) {
                                 scan_cycle();
                             }
                         });
    });
}

void Trigger::Impl::stop_scanning() {
    window_timer.reset();
    scan_call.reset();
    // Also when a start may still be pending (its reply was just cancelled).
    if (start_sent || discovering) {
        fire(adapter, kAdapterIface, "StopDiscovery");
    }
    start_sent = false;
    discovering = false;
}

// ------------------------------------------------------------ connecting

void Trigger::Impl::connect_to(const std::string& path) {
    stop_scanning();
    phase = Phase::Connecting;
    device = path;
    connect_attempts = 0;
    notify_started = false;
    const bluez::MirroredDevice none;
    const bluez::MirroredDevice* found = mirror.device(path);
    const bluez::MirroredDevice& d = found != nullptr ? *found : none;
    notice("found " + (d.alias.empty() ? d.address : d.alias + " (" + d.address + ")") +
           ": connecting");
    we_connected = false;
    link_up_seen = false;
    if (d.connected) {
        on_connected();  // someone else's connection: used, and left up afterwards
    } else {
        attempt_connect();
    }
}

void Trigger::Impl::attempt_connect() {
    ++connect_attempts;
    link_up_seen = false;
    phase = Phase::Connecting;
    we_connected = true;
    connect_call = call(device, kDeviceIface, "Connect", {},
                        [this](sd_bus_message*, const dbus::RemoteError* err) {
                            if (phase != Phase::Connecting) {
                                return;
                            }
                            if (err != nullptr && err->name != "org.bluez.Error.AlreadyConnected") {
                                retry_connect("cannot connect to the Pi: " + err->to_string());
                                return;
                            }
                            on_connected();
                        });
}

void Trigger::Impl::retry_connect(const std::string& why) {
    resolve_timer.reset();
    const bluez::MirroredDevice* d = mirror.device(device);
    if (d != nullptr && !sightings[device].advertised) {
        // Known from before (a cached RSSI) but not heard in this scan: it may be
        // gone. Forget that it was seen and wait for it to advertise.
        sightings[device].seen = false;
        notice(d->address + " did not answer; scanning for it");
        leave_device();
        return;
    }
    if (connect_attempts >= kConnectAttempts) {
        fail(TriggerExit::Bluetooth,
             why + " (after " + std::to_string(connect_attempts) + " attempts)");
        return;
    }
    notice(why + "; retrying");
    phase = Phase::Connecting;
    retry_timer = timer(kConnectRetryDelay, [this] { attempt_connect(); });
}

void Trigger::Impl::on_connected() {
    phase = Phase::Resolving;
    resolve_timer = timer(kResolveTimeout, [this] {
        retry_connect("the Pi's GATT services were not resolved within " +
                      std::to_string(kResolveTimeout.count()) + " s");
    });
    react();
}

void Trigger::Impl::on_outcome(const ExchangeOutcome& o) {
    if (o.wrong_pi) {
        const std::string why = o.message;
        loop.post([this, why] { try_next(why); });
        return;
    }
    finish(o);
}

// This device is not the Pi we look for: leave it and scan on.
void Trigger::Impl::try_next(const std::string& why) {
    if (!active()) {
        return;
    }
    ++wrong_devices;
    last_wrong = why;
    tried.insert(device);
    notice(why + "; looking further");
    leave_device();
}

// Drops the current device (disconnecting it when this run connected it) and
// goes back to scanning, or reports "not found" when the scan time is over.
void Trigger::Impl::leave_device() {
    exchange.reset();
    if (notify_started) {
        fire(chrc_paths[GattTransport::Chrc::Result], kChrcIface, "StopNotify");
    }
    transport.reset();
    if (we_connected) {
        fire(device, kDeviceIface, "Disconnect");
    }
    device.clear();
    we_connected = false;
    notify_started = false;
    connect_call.reset();
    resolve_timer.reset();
    retry_timer.reset();
    if (scan_expired) {
        not_found();
        return;
    }
    start_scanning();
}

Trigger::Impl::~Impl() = default;

void Trigger::Impl::on_resolved() {
    resolve_timer.reset();
    const std::string prefix = device + "/";
    std::string service;
    for (const auto& [path, s] : mirror.services()) {
        if (path.rfind(prefix, 0) == 0 && s.uuid == core::protocol::kServiceUuid) {
            service = path;
        }
    }
    if (service.empty()) {
        try_next("this device does not offer the BlueZscript service");
        return;
    }
    const std::pair<GattTransport::Chrc, std::string_view> wanted[] = {
        {GattTransport::Chrc::Info, core::protocol::kInfoUuid},
        {GattTransport::Chrc::Challenge, core::protocol::kChallengeUuid},
        {GattTransport::Chrc::Command, core::protocol::kCommandUuid},
        {GattTransport::Chrc::Result, core::protocol::kResultUuid}};
    const char* names[] = {"Info", "Challenge", "Command", "Result"};
    chrc_paths.clear();
    for (std::size_t i = 0; i < std::size(wanted); ++i) {
        for (const auto& [path, c] : mirror.characteristics()) {
            if (c.parent == service && c.uuid == wanted[i].second) {
                chrc_paths[wanted[i].first] = path;
            }
        }
        if (!chrc_paths.count(wanted[i].first)) {
            fail(TriggerExit::Bluetooth, std::string("the Pi's BlueZscript service has no ") +
                                             names[i] +
                                             " characteristic (another protocol version?)");
            return;
        }
    }
    phase = Phase::Exchanging;
    const bluez::MirroredDevice* d = mirror.device(device);
    if (d != nullptr && d->paired) {
        start_exchange();
        return;
    }
    // Not bonded: bond first, with Device1.Pair() and our agent, rather than let
    // BlueZ start a bond by itself when an encrypted attribute refuses the link
    // (that bond would be confirmed by whatever default agent the system has, or
    // fail without one, and a failed bond drops the link).
    const std::string current = device;
    notice("bonding with the Pi (its pairing window must be open)");
    pair([this, current](const GattError* err) {
        if (phase != Phase::Exchanging || device != current || exchange) {
            return;
        }
        if (auto why = bond_failure(err)) {
            fail(TriggerExit::Bluetooth, *why);
            return;
        }
        notice("bonded with the Pi");
        start_exchange();
    });
}

void Trigger::Impl::start_exchange() {
    transport = std::make_unique<Transport>(*this);
    exchange = std::make_unique<Exchange>(loop, *transport, request, hooks, options.timing,
                                          [this](const ExchangeOutcome& o) { on_outcome(o); });
    exchange->start();
}

// ------------------------------------------------------------------ Trigger

Trigger::Trigger(loop::EventLoop& loop, ExchangeRequest request, TriggerOptions options,
                 ExchangeHooks hooks)
    : impl_(
          std::make_unique<Impl>(loop, std::move(request), std::move(options), std::move(hooks))) {}

Trigger::~Trigger() = default;

void Trigger::start() {
    impl_->start();
}

void Trigger::cancel() {
    impl_->cancel();
}

bool Trigger::done() const {
    return impl_->phase == Phase::Done;
}

const ExchangeOutcome& Trigger::outcome() const {
    return impl_->outcome;
}

}  // namespace bzs::client
