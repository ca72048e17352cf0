// SPDX-License-Identifier: GPL-3.0-or-later
// Trigger's inside, shared by trigger.cpp, bond_agent.cpp and gatt_transport.cpp (src/client only).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "bluez/agent.h"
#include "bluez/names.h"
#include "bluez/object_mirror.h"
#include "bluez/peripheral.h"
#include "client/trigger.h"
#include "dbus/bus.h"

namespace bzs::client {

constexpr std::uint64_t kCallTimeoutUsec = 30'000'000;

// Appends one "key": variant entry of an a{sv} being built.
template <class F>
void append_entry(sd_bus_message* m, const char* key, const char* sig, F&& value) {
    dbus::check(sd_bus_message_open_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv"), "open entry");
    dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, key), "append key");
    dbus::check(sd_bus_message_open_container(m, SD_BUS_TYPE_VARIANT, sig), "open variant");
    value();
    dbus::check(sd_bus_message_close_container(m), "close variant");
    dbus::check(sd_bus_message_close_container(m), "close entry");
}

// What this run knows of a device beyond BlueZ's properties.
struct Sighting {
    bool seen = false;        ///< advertised during this run, or has a current RSSI
    bool advertised = false;  ///< advertised during this run (not only known from before)
};

enum class Phase { Idle, Starting, Scanning, Connecting, Resolving, Exchanging, Closing, Done };

struct Trigger::Impl {
    class Transport;
    class BondAgent;

    loop::EventLoop& loop;
    ExchangeRequest request;
    TriggerOptions options;
    ExchangeHooks hooks;

    Phase phase = Phase::Idle;
    ExchangeOutcome outcome;

    dbus::Bus bus;
    /// BlueZ's objects; its owner (bluetoothd) is the only caller of our agent.
    bluez::ObjectMirror mirror;
    std::vector<dbus::Slot> matches;
    std::vector<dbus::Slot> calls;              ///< replies we wait for but do not track one by one
    std::map<std::string, Sighting> sightings;  ///< by device path
    std::string adapter;                        ///< the chosen adapter's path

    // Scanning.
    bool discovering = false;
    bool start_sent = false;  ///< StartDiscovery was sent and not stopped since
    bool scan_expired = false;
    dbus::Slot scan_call;
    loop::Source window_timer;
    loop::Source scan_deadline;
    std::set<std::string> tried;
    std::string last_wrong;
    int wrong_devices = 0;

    // The device being used.
    std::string device;
    bool we_connected = false;
    /// Connected=true was seen: only then does Connected=false mean the link dropped
    /// (bluetoothd may announce Connected after it answered Connect).
    bool link_up_seen = false;
    int connect_attempts = 0;
    dbus::Slot connect_call;
    loop::Source retry_timer;
    loop::Source resolve_timer;
    std::map<GattTransport::Chrc, std::string> chrc_paths;
    std::unique_ptr<Transport> transport;
    std::unique_ptr<Exchange> exchange;
    bool notify_started = false;  ///< on the current device's Result

    // Bonding.
    std::unique_ptr<BondAgent> agent_policy;
    std::unique_ptr<bluez::AgentObject> agent_object;
    bool agent_registered = false;

    // Closing.
    int cleanup_pending = 0;
    loop::Source cleanup_timer;

    Impl(loop::EventLoop& l, ExchangeRequest r, TriggerOptions o, ExchangeHooks h)
        : loop(l),
          request(std::move(r)),
          options(std::move(o)),
          hooks(std::move(h)),
          // Listed at once by the well-known name, as a one-shot command should
          // (D-Bus may start bluetoothd); any failure ends the run.
          mirror(l,
                 bluez::ObjectMirror::Options{.list_at_once = true,
                                              .list_timeout_usec = kCallTimeoutUsec},
                 mirror_hooks()) {}

    ~Impl();

    void notice(const std::string& line) const {
        if (hooks.notice) {
            hooks.notice(line);
        }
    }

    [[nodiscard]] bool active() const { return phase != Phase::Closing && phase != Phase::Done; }

    [[nodiscard]] std::string adapter_label() const { return bluez::adapter_name(adapter); }

    // A timer whose callback cannot throw into the loop: failures end the run.
    loop::Source timer(std::chrono::microseconds after, std::function<void()> fn) {
        return loop.add_timer_relative(after, [this, fn = std::move(fn)] {
            try {
                fn();
            } catch (const std::exception& e) {
                fail(TriggerExit::Bluetooth, std::string("D-Bus error: ") + e.what());
            }
        });
    }

    dbus::Slot call(const std::string& path, const char* iface, const char* member,
                    const dbus::Builder& build, dbus::ReplyHandler on_reply,
                    std::uint64_t timeout = kCallTimeoutUsec);

    void fire(const std::string& path, const char* iface, const char* member,
              const dbus::Builder& build = {});

    void finish(ExchangeOutcome o);

    void fail(TriggerExit exit, std::string message);

    void cleanup();

    void cancel();

    void start();

    void watch();

    bluez::ObjectMirror::Hooks mirror_hooks();

    void sighted(const bluez::DeviceUpdate& u);

    [[nodiscard]] bool seen(const std::string& path) const;

    void choose();

    void react();

    [[nodiscard]] std::optional<std::string> pick() const;

    void start_scanning();

    void not_found();

    void scan_cycle();

    void scan_error(const std::string& what, const dbus::RemoteError& err);

    void on_started(const dbus::RemoteError* err);

    void stop_scanning();

    void connect_to(const std::string& path);

    void attempt_connect();

    void retry_connect(const std::string& why);

    void on_connected();

    void on_resolved();
    void start_exchange();

    void on_outcome(const ExchangeOutcome& o);

    void try_next(const std::string& why);

    void leave_device();

    void ensure_agent(const std::function<void()>& then);

    void pair(const GattTransport::Done& done);

    void unregister_agent();

    static std::string agent_path();
};

// ------------------------------------------------------------------ agent

// The agent's policy while this client bonds with the Pi. It accepts the bond it
// asked for and shows any passkey, so the owner can compare it with the Pi's log;
// it cannot type a passkey (no prompt in a one-shot command).
class Trigger::Impl::BondAgent final : public bluez::AgentPolicy {
  public:
    explicit BondAgent(Impl& self) : self_(self) {}

    bluez::AgentAnswer answer(const bluez::AgentCall& call) override;

    void released() override { self_.agent_registered = false; }

    void cancelled() override { self_.notice("pairing: bluetoothd cancelled the request"); }

  private:
    Impl& self_;
};

// ------------------------------------------------------------------ transport

// GattTransport over BlueZ's remote characteristic objects of the chosen device.
class Trigger::Impl::Transport final : public GattTransport {
  public:
    explicit Transport(Impl& owner) : owner_(owner) {}

    void read(Chrc chrc, ReadDone done) override;

    void write_command(core::protocol::ByteView frame, Done done) override;

    void subscribe_result(Notify on_value, Done done) override;

    [[nodiscard]] bool paired() const override;

    void pair(Done done) override { owner_.pair(done); }

  private:
    using Reply = std::function<void(sd_bus_message* m, const GattError* err)>;

    void issue(const std::string& path, const char* member, const dbus::Builder& build,
               const Reply& reply, const Done& on_local_error);

    void post_error(const Done& done, const std::string& what);

    Impl& owner_;
    dbus::Slot match_;
    std::vector<dbus::Slot> calls_;
};

}  // namespace bzs::client
