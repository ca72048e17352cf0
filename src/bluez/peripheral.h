// SPDX-License-Identifier: GPL-3.0-or-later
// The BLE peripheral side of the daemon: keeps the BlueZscript GATT application,
// its advertisement and a pairing agent registered with BlueZ over D-Bus, and
// hands complete command frames to the daemon. It follows the environment as it
// changes: bluetoothd starting, stopping or restarting, adapters appearing,
// disappearing and being powered on or off. Missing pieces (no system bus, no
// bluetoothd, no adapter) are reported in Status and waited for; they are never
// fatal. Everything runs on the daemon's one event loop: no threads, no polling.
//
// This header is the module's face to the daemon and does not expose D-Bus
// (docs/ble.md describes the objects exported on the bus).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/protocol/protocol.h"
#include "loop/event_loop.h"
#include "util/log.h"

namespace bzs::bluez {

using util::LogFn;
using util::LogLevel;

/// What the peripheral is doing, for logs and sd_notify STATUS= lines.
struct Status {
    bool bus_connected = false;                  ///< connected to the system bus
    bool bluez_present = false;                  ///< org.bluez has an owner (bluetoothd runs)
    std::string adapter;                         ///< chosen adapter ("hci0"), empty when none
    bool powered = false;                        ///< the chosen adapter is powered
    bool registered = false;                     ///< GATT application registered on it
    bool advertising = false;                    ///< advertisement registered (and adapter powered)
    bool agent = false;                          ///< pairing agent registered
    std::vector<std::string> connected_devices;  ///< device object paths, sorted
    bool stopping = false;                       ///< stop() was called
    bool disabled = false;  ///< BLE will not come up in this run (see `reason`)
    std::string reason;     ///< why, as a sentence ("no system bus: BLE disabled (...)")

    /// One line for people and STATUS=, e.g. "BLE: advertising on hci0, 1 device
    /// connected" or "BLE: waiting for bluetoothd".
    [[nodiscard]] std::string summary() const;
    bool operator==(const Status&) const = default;
};

/// One adapter as seen on the bus, for choose_adapter.
struct AdapterInfo {
    std::string path;  ///< "/org/bluez/hci0"
    bool powered = false;
};

/// "hci0" for "/org/bluez/hci0" (the last path element).
std::string adapter_name(std::string_view path);

/// Picks the adapter to use (its path), or nullopt when there is none. With
/// `configured` ("hciN") only that adapter qualifies, powered or not. Otherwise
/// the `current` one is kept while it is present and powered, else the first
/// powered one (by path), else the current one if present, else the first one, so
/// an unpowered adapter still shows in the status.
std::optional<std::string> choose_adapter(const std::vector<AdapterInfo>& adapters,
                                          std::string_view configured, std::string_view current);

/// A complete command frame from a device, for the command service.
struct CommandRequest {
    std::string device_path;  ///< BlueZ device object path
    std::string peer;         ///< "Alias (AA:BB:CC:DD:EE:FF)" for logs
    /// The device's Address as BlueZ reports it ("AA:BB:CC:DD:EE:FF"; empty when
    /// unknown), remembered for the device when the command is accepted.
    std::string address;
    core::protocol::Bytes frame;
    /// The live challenge issued to this device (taken: single use), if any.
    std::optional<core::protocol::Nonce> challenge;
    /// Empty when the writes completed the frame; else why it was cut short ("frame
    /// incomplete 2 s after its last write: ..."), for the log line.
    std::string incomplete;
};
/// Sends the response frame back to the device that wrote the command (at most
/// once; harmless after the device disconnected or the peripheral was destroyed).
using CommandReply = std::function<void(const core::protocol::Bytes& response)>;

/// The Pi's time as the Info characteristic tells it.
struct InfoClock {
    std::int64_t time = 0;  ///< the verification clock
    bool synced = false;    ///< the system clock is synchronised
};

/// A passkey or PIN to show to the owner while a phone pairs.
struct PasskeyNotice {
    std::string device_path;
    std::string peer;     ///< "Alias (AA:BB:...)"
    std::string passkey;  ///< six digits, zero-padded, or a PIN code
    std::string kind;     ///< "display-passkey", "display-pin", "request-passkey", ...
};

struct PeripheralOptions {
    std::string adapter;     ///< "hciN", or empty for the first powered adapter
    std::string local_name;  ///< advertised name
    std::string pi_name;     ///< in the Info characteristic
    std::string pi_id_hex;   ///< in the Info characteristic
    std::string pi_key_hex;  ///< in the Info characteristic: the Pi's public key
    bool require_bonding = true;
    std::int64_t challenge_ttl_seconds = 30;
    /// Prefix of the exported objects: <root>/app, <root>/advertisement0, <root>/agent.
    std::string object_root = "/org/bluezscript";
    /// How long stop() waits for BlueZ to confirm the unregistrations.
    std::chrono::milliseconds stop_timeout{2000};
};

struct PeripheralHooks {
    /// A complete command frame. Call the reply exactly once with the response frame.
    std::function<void(const CommandRequest& request, CommandReply reply)> on_command;
    /// A command write refused before it formed a frame (bad offset, too long), for
    /// the audit log. `peer` is the central's address.
    /// A Command write refused before it formed a frame; `device_path` is the link.
    std::function<void(const std::string& device_path, const std::string& peer,
                       const std::string& detail)>
        on_bad_write;
    /// Whether the owner's pairing window is open now.
    std::function<bool()> pairing_window_open;
    /// A passkey to show the owner.
    std::function<void(const PasskeyNotice& notice)> on_passkey;
    /// BlueZ cancelled the pairing request shown last (the passkey is no longer valid).
    std::function<void()> on_pairing_cancelled;
    /// Status changed (called only when it differs from the previous one). A switch
    /// to `disabled` has already been logged at error level by the peripheral.
    std::function<void(const Status& status)> on_status;
    /// A device that BlueZ holds a bond with connected (its Address), so the daemon
    /// can remove the bond again if that address belongs to a revoked device.
    std::function<void(const std::string& address)> on_bonded_connection;
    /// Unix seconds.
    std::function<std::int64_t()> clock;
    /// The verification clock and sync state, for the Info characteristic.
    std::function<InfoClock()> info_clock;
    LogFn log;
};

/// What Peripheral::remove_bond did.
struct BondRemovalResult {
    enum class Kind {
        Removed,      ///< Adapter1.RemoveDevice succeeded for every bonded device object
        NoBond,       ///< BlueZ lists no bonded device with that address
        Unavailable,  ///< BlueZ is not running or not listed yet: try again later
        Failed,       ///< BlueZ refused or did not answer (`detail`): try again later
    };
    Kind kind = Kind::Failed;
    std::string detail;  ///< why, for Unavailable and Failed
};

class Peripheral {
  public:
    Peripheral(loop::EventLoop& loop, PeripheralOptions options, PeripheralHooks hooks);
    ~Peripheral();
    Peripheral(const Peripheral&) = delete;
    Peripheral& operator=(const Peripheral&) = delete;

    /// Connects to the system bus and starts following BlueZ. When the bus cannot be
    /// opened it logs "no system bus: BLE disabled", reports it in the status and
    /// returns: the daemon keeps running without BLE. Never throws for the
    /// environment; throws only for programming errors.
    void start();
    /// Same on the bus at `address` ("unix:path=..."): tests and fakes.
    void start_on(const std::string& address);

    /// Unregisters application, advertisement and agent, then calls `done` once
    /// BlueZ confirmed them all or options.stop_timeout passed, whichever is first
    /// (immediately when nothing is registered). Afterwards nothing is re-registered.
    void stop(std::function<void()> done);

    [[nodiscard]] const Status& status() const;

    /// Removes BlueZ's bond with `address` ("AA:BB:CC:DD:EE:FF", any case): calls
    /// Adapter1.RemoveDevice for each paired or bonded device object with that
    /// Address, on its adapter. `done` runs once, from a later loop iteration (never
    /// from inside this call), and not after the peripheral was destroyed.
    void remove_bond(const std::string& address,
                     std::function<void(const BondRemovalResult& result)> done);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bzs::bluez
