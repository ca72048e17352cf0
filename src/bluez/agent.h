// SPDX-License-Identifier: GPL-3.0-or-later
// The pairing agent (org.bluez.Agent1, doc/agent-api.txt) the daemon registers as
// BlueZ's default agent with capability DisplayYesNo. A headless Pi has nobody to
// press "yes", so the owner's pairing window (opened by `bluezscript pair add`)
// stands in for that: new bonds are accepted only while it is open, and passkeys
// are handed to the daemon to show the owner.
//
// agent_decision() is the whole policy as a pure function (unit-tested); Agent
// applies it to the calls BlueZ makes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dbus/bus.h"
#include "bluez/peripheral.h"

namespace bzs::bluez {

/// The agent calls that need a decision.
enum class AgentRequest {
    Confirmation,    ///< RequestConfirmation(device, passkey): numeric comparison
    Authorization,   ///< RequestAuthorization(device): incoming just-works pairing
    Service,         ///< AuthorizeService(device, uuid): a connection to a profile
    Passkey,         ///< RequestPasskey(device): we must supply the passkey
    PinCode,         ///< RequestPinCode(device): legacy PIN
    DisplayPasskey,  ///< DisplayPasskey(device, passkey, entered)
    DisplayPinCode,  ///< DisplayPinCode(device, pincode)
};

/// "RequestConfirmation", ... (the D-Bus method name).
std::string_view agent_request_name(AgentRequest request);

enum class AgentVerdict {
    Accept,  ///< reply success (and show the passkey, for the display/request kinds)
    Reject,  ///< reply org.bluez.Error.Rejected; nothing is shown
};

/// The policy. Everything that creates a new bond, or reveals a passkey that would
/// let one complete, needs the pairing window open. AuthorizeService is also
/// accepted for a device already bonded or paired: that is a known phone
/// reconnecting, not a new bond.
AgentVerdict agent_decision(AgentRequest request, bool window_open, bool bonded);

/// A passkey as BlueZ wants it shown: six digits, zero-padded ("004711").
std::string format_passkey(std::uint32_t passkey);

/// A uniformly random passkey in 0..999999 (for RequestPasskey/RequestPinCode).
std::uint32_t random_passkey();

class Agent {
  public:
    /// The capability registered with AgentManager1.RegisterAgent.
    static constexpr const char* kCapability = "DisplayYesNo";

    struct Hooks {
        /// True when a method call comes from bluetoothd (the org.bluez owner).
        std::function<bool(sd_bus_message* m)> trusted;
        std::function<bool()> window_open;
        /// Whether BlueZ reports the device as Bonded or Paired.
        std::function<bool(const std::string& device)> bonded;
        /// "Alias (AA:BB:...)" for logs.
        std::function<std::string(const std::string& device)> describe;
        std::function<void(const PasskeyNotice& notice)> on_passkey;
        std::function<void()> on_cancel;
        /// BlueZ dropped the agent (Release); the owner re-registers it.
        std::function<void()> on_release;
        LogFn log;
    };

    /// Exports org.bluez.Agent1 at `path`. Throws BusError.
    Agent(sd_bus* bus, std::string path, Hooks hooks);
    Agent(const Agent&) = delete;
    Agent& operator=(const Agent&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }

  private:
    friend struct AgentDispatch;
    std::string path_;
    Hooks hooks_;
    /// The last (device, passkey) shown: DisplayPasskey repeats as keys are typed.
    std::string last_shown_;
    dbus::Slot slot_;
};

}  // namespace bzs::bluez
