// SPDX-License-Identifier: GPL-3.0-or-later
#include "bluez/peripheral.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <utility>

#include "bluez/advertisement.h"
#include "bluez/agent.h"
#include "bluez/gatt_app.h"
#include "bluez/names.h"
#include "bluez/object_mirror.h"
#include "dbus/bus.h"

namespace bzs::bluez {

namespace {

using namespace names;  // D-Bus names (bluez/names.h)
constexpr const char* kAgentManagerPath = "/org/bluez";

// A Release within this time of registering counts as a failure (backoff), so a
// BlueZ that keeps dropping us is not hammered with registrations.
constexpr auto kReleaseGrace = std::chrono::seconds(10);

// BlueZ writes addresses in upper case; compare without caring.
bool same_address(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::toupper(static_cast<unsigned char>(x)) ==
                      std::toupper(static_cast<unsigned char>(y));
           });
}

}  // namespace

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

}  // namespace

struct Peripheral::Impl {
    Impl(loop::EventLoop& l, PeripheralOptions o, PeripheralHooks h)
        : loop(l),
          opts(std::move(o)),
          hooks(std::move(h)),
          app_path(opts.object_root + "/app"),
          adv_path(opts.object_root + "/advertisement0"),
          agent_path(opts.object_root + "/agent"),
          mirror(l, ObjectMirror::Options{.retry_listing = true}, mirror_hooks()) {}

    ~Impl() { teardown(); }

    // Declared first so it is destroyed last: every Slot below refers to it.
    dbus::Bus bus;

    loop::EventLoop& loop;
    PeripheralOptions opts;
    PeripheralHooks hooks;
    std::string app_path;
    std::string adv_path;
    std::string agent_path;

    /// BlueZ's objects and bluetoothd's presence (its owner is the only trusted caller).
    ObjectMirror mirror;
    std::unique_ptr<GattApp> app;
    std::unique_ptr<Advertisement> adv;
    std::unique_ptr<Agent> agent;
    std::vector<dbus::Slot> matches;
    dbus::Slot agent_default_call;

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

    [[nodiscard]] bool trusted(sd_bus_message* m) const { return mirror.from_bluez(m); }

    [[nodiscard]] std::string describe(const std::string& device) const {
        const MirroredDevice* d = mirror.device(device);
        std::string address = d != nullptr ? d->address : std::string();
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
        if (d != nullptr && !d->alias.empty() && d->alias != address) {
            return d->alias + " (" + address + ")";
        }
        return address;
    }

    [[nodiscard]] bool bonded(const std::string& device) const {
        const MirroredDevice* d = mirror.device(device);
        return d != nullptr && (d->bonded || d->paired);
    }

    dbus::Target bluez(const std::string& path, const char* iface, const char* member) const {
        return dbus::Target{mirror.owner(), path, iface, member};
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
        go.pi_key_hex = opts.pi_key_hex;
        go.require_bonding = opts.require_bonding;
        go.challenge_ttl_seconds = opts.challenge_ttl_seconds;
        GattApp::Hooks gh;
        gh.trusted = trust;
        gh.on_command = [this](CommandFrame cf) { on_command(std::move(cf)); };
        gh.on_bad_write = [this](const std::string& device, const std::string& detail) {
            if (hooks.on_bad_write) {
                hooks.on_bad_write(device, describe(device), detail);
            }
        };
        gh.clock = hooks.clock;
        gh.info_clock = hooks.info_clock;
        gh.log = logfn;
        app = std::make_unique<GattApp>(bus.get(), loop, std::move(go), std::move(gh));

        Advertisement::Hooks ah;
        ah.trusted = trust;
        ah.on_release = [this] { released(adv_reg, "advertisement"); };
        adv = std::make_unique<Advertisement>(bus.get(), adv_path, opts.local_name,
                                              std::string(core::protocol::kServiceUuid),
                                              std::move(ah));

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
        matches.push_back(dbus::watch_disconnect(bus, [this] { lost_bus(); }));
        mirror.start(bus);
    }

    void teardown() {
        // Pending removals are forgotten with the bus; the daemon's next sweep asks again.
        bond_calls.clear();
        bond_calls_pending = 0;
        bonds_in_flight.clear();
        reconcile_src.reset();
        stop_timer.reset();
        app_reg.reset();
        adv_reg.reset();
        agent_reg.reset();
        agent_default_call.reset();
        stop_calls.clear();
        mirror.reset();
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
        mirror.forget();
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

    // ---- following bluetoothd (through the mirror)

    ObjectMirror::Hooks mirror_hooks() {
        ObjectMirror::Hooks h;
        h.on_appeared = [this](const std::string&) {
            // A new bluetoothd knows nothing of us: register everything afresh.
            app_reg.reset();
            adv_reg.reset();
            agent_reg.reset();
            schedule_reconcile();  // the agent needs no adapter: register it right away
            update_status();
        };
        h.on_gone = [this] { bluez_gone(); };
        h.on_absent = [this](const dbus::RemoteError&) { update_status(); };
        h.on_device = [this](const DeviceUpdate& u) { device_changed(u.path, u.before, u.after); };
        h.on_device_removed = [this](const std::string& path) {
            const MirroredDevice* d = mirror.device(path);
            if (d != nullptr && d->connected) {
                device_disconnected(path);
            }
            if (app) {
                app->drop_device(path);
            }
        };
        h.on_adapter_removed = [this](const std::string& path) {
            for (const auto& [device, d] : mirror.devices()) {
                if (d.adapter == path && d.connected) {
                    device_disconnected(device);
                }
            }
        };
        h.on_listed = [this] {
            schedule_reconcile();
            update_status();
        };
        h.on_changed = h.on_listed;
        h.log = [this](LogLevel l, const std::string& s) { log(l, s); };
        return h;
    }

    void bluez_gone() {
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

    void device_changed(const std::string& path, const MirroredDevice& before,
                        const MirroredDevice& after) {
        if (!before.connected && after.connected) {
            if (after.adapter == adapter) {
                log(LogLevel::Info, "BLE: " + describe(path) + " connected");
                if ((after.bonded || after.paired) && hooks.on_bonded_connection) {
                    hooks.on_bonded_connection(after.address);
                }
            }
        } else if (before.connected && !after.connected) {
            device_disconnected(path);
        }
    }

    // Everything tied to the device's link goes: partial write, challenge, result.
    void device_disconnected(const std::string& path) {
        const MirroredDevice* d = mirror.device(path);
        if (d != nullptr && d->adapter == adapter) {
            log(LogLevel::Info, "BLE: " + describe(path) + " disconnected");
        }
        if (app) {
            app->drop_device(path);
        }
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
        if (!bus || stopping || mirror.owner().empty() || status.disabled) {
            update_status();
            return;
        }
        if (agent_reg.state == Registration::State::Idle) {
            register_agent();
        }
        if (!mirror.listed()) {
            update_status();
            return;
        }
        std::vector<AdapterInfo> infos;
        for (const auto& [path, a] : mirror.adapters()) {
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
        const MirroredAdapter& a = mirror.adapters().at(adapter);
        if (!a.powered) {
            withdraw("adapter powered off");
            update_status();
            return;
        }
        if (app_reg.state == Registration::State::Idle && a.gatt_manager) {
            register_app();
        }
        if (adv_reg.state == Registration::State::Idle && a.advertising_manager) {
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
            if (it.reg->active() && mirror.adapters().count(it.reg->adapter) != 0 &&
                !mirror.owner().empty()) {
                log(LogLevel::Debug, std::string(it.member) + " (" + why + ")");
                const std::string path = *it.path;
                dbus::call_no_reply(bus.get(), bluez(it.reg->adapter, it.iface, it.member),
                                    [path](sd_bus_message* m) {
                                        dbus::check(sd_bus_message_append_basic(
                                                        m, SD_BUS_TYPE_OBJECT_PATH, path.c_str()),
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
                        dbus::check(
                            sd_bus_message_append_basic(m, SD_BUS_TYPE_OBJECT_PATH, path.c_str()),
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
        if (stopping || mirror.owner().empty()) {
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
        if (const MirroredDevice* d = mirror.device(cf.device)) {
            req.address = d->address;
        }
        req.frame = std::move(cf.frame);
        req.challenge = cf.challenge;
        req.incomplete = std::move(cf.incomplete);
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

    // ---- bonds

    std::vector<dbus::Slot> bond_calls;  ///< RemoveDevice calls; cleared when none is pending
    std::size_t bond_calls_pending = 0;
    std::set<std::string> bonds_in_flight;  ///< addresses (upper case) being removed

    void remove_bond(const std::string& address,
                     std::function<void(const BondRemovalResult&)> done) {
        auto later = [this](std::function<void(const BondRemovalResult&)> f, BondRemovalResult r) {
            std::weak_ptr<bool> weak = alive;
            loop.post([weak, f = std::move(f), r = std::move(r)] {
                if (!weak.expired()) {
                    f(r);
                }
            });
        };
        if (!bus || status.disabled || mirror.owner().empty() || !mirror.listed()) {
            later(std::move(done), {BondRemovalResult::Kind::Unavailable,
                                    "bluetoothd is not running or not listed yet"});
            return;
        }
        std::vector<std::pair<std::string, std::string>> targets;  // device, its adapter
        for (const auto& [path, d] : mirror.devices()) {
            if ((d.paired || d.bonded) && same_address(d.address, address)) {
                targets.emplace_back(path, d.adapter);
            }
        }
        if (targets.empty()) {
            later(std::move(done), {BondRemovalResult::Kind::NoBond, ""});
            return;
        }
        std::string key = address;
        std::transform(key.begin(), key.end(), key.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        if (!bonds_in_flight.insert(key).second) {
            later(std::move(done),
                  {BondRemovalResult::Kind::Unavailable, "a removal is already under way"});
            return;
        }
        if (bond_calls_pending == 0) {
            bond_calls.clear();  // only finished calls are left
        }
        struct Pending {
            std::string address;
            std::size_t left = 0;
            std::string errors;
            std::function<void(const BondRemovalResult&)> done;
        };
        auto p = std::make_shared<Pending>();
        p->address = key;
        p->left = targets.size();
        p->done = std::move(done);
        // Each reply counts down; a call that cannot be sent counts as failed.
        auto finished = [this, p](const std::string& error) {
            if (!error.empty()) {
                p->errors += (p->errors.empty() ? "" : "; ") + error;
            }
            if (--p->left == 0) {
                bonds_in_flight.erase(p->address);
                p->done(p->errors.empty()
                            ? BondRemovalResult{BondRemovalResult::Kind::Removed, ""}
                            : BondRemovalResult{BondRemovalResult::Kind::Failed, p->errors});
            }
        };
        for (const auto& [device, on] : targets) {
            log(LogLevel::Debug, "RemoveDevice " + device);
            try {
                bond_calls.push_back(dbus::call_async(
                    bus, bluez(on, kAdapterIface, "RemoveDevice"),
                    [device = device](sd_bus_message* m) {
                        dbus::check(
                            sd_bus_message_append_basic(m, SD_BUS_TYPE_OBJECT_PATH, device.c_str()),
                            "append path");
                    },
                    [this, finished](sd_bus_message*, const dbus::RemoteError* e) {
                        --bond_calls_pending;
                        // DoesNotExist: gone already, which is what we wanted.
                        finished(e != nullptr && e->name != kErrDoesNotExist ? e->to_string() : "");
                    }));
                ++bond_calls_pending;
            } catch (const dbus::BusError& e) {
                // Reported from a later iteration, like every other outcome.
                std::weak_ptr<bool> weak = alive;
                loop.post([weak, finished, what = std::string(e.what())] {
                    if (!weak.expired()) {
                        finished(what);
                    }
                });
            }
        }
    }

    // ---- status and stop

    void update_status() {
        Status s;
        s.stopping = stopping;
        s.disabled = status.disabled;
        s.reason = status.reason;
        s.bus_connected = static_cast<bool>(bus) && !status.disabled;
        s.bluez_present = !mirror.owner().empty();
        s.adapter = adapter.empty() ? std::string() : adapter_name(adapter);
        auto a = mirror.adapters().find(adapter);
        s.powered = a != mirror.adapters().end() && a->second.powered;
        s.registered = app_reg.state == Registration::State::Registered;
        s.advertising = adv_reg.state == Registration::State::Registered && s.powered;
        s.agent = agent_reg.state == Registration::State::Registered;
        for (const auto& [path, d] : mirror.devices()) {
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
        mirror.stop_retrying();
        for (Registration* r : {&app_reg, &adv_reg, &agent_reg}) {
            r->retry.reset();
        }
        if (bus && !mirror.owner().empty() && !status.disabled) {
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
            if (it.reg != &agent_reg && mirror.adapters().count(it.path) == 0) {
                continue;  // the adapter is gone, and our registration with it
            }
            it.reg->call.reset();  // a reply to a pending registration no longer matters
            const std::string object = it.object;
            const char* what = it.what;
            stop_calls.push_back(dbus::call_async(
                bus, bluez(it.path, it.iface, it.member),
                [object](sd_bus_message* m) {
                    dbus::check(
                        sd_bus_message_append_basic(m, SD_BUS_TYPE_OBJECT_PATH, object.c_str()),
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

void Peripheral::remove_bond(const std::string& address,
                             std::function<void(const BondRemovalResult& result)> done) {
    impl_->remove_bond(address, std::move(done));
}

}  // namespace bzs::bluez
