// SPDX-License-Identifier: GPL-3.0-or-later
// The pairing agent (org.bluez.Agent1, doc/agent-api.txt) the daemon registers as
// BlueZ's default agent with capability DisplayYesNo. A headless Pi has nobody to
// press "yes", so the owner's pairing window (opened by `bluezscript pair add`)
// stands in for that: new bonds are accepted only while it is open, and passkeys
// are handed to the daemon to show the owner.
//
// agent_decision() is the whole policy as a pure function (unit-tested); Agent
// applies it to the calls BlueZ makes. The Agent1 object itself (AgentObject: the
// vtable, the check that bluetoothd calls, argument reading and replies) also
// serves the client's agent, which has a policy of its own (client/trigger.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "bluez/peripheral.h"
#include "dbus/bus.h"

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

/// One call BlueZ made on an agent, with its arguments.
struct AgentCall {
    AgentRequest request = AgentRequest::Confirmation;
    std::string device;         ///< the device's object path
    std::uint32_t passkey = 0;  ///< Confirmation and DisplayPasskey
    std::string text;           ///< DisplayPinCode: the PIN; Service: the UUID
};

/// The answer to an AgentCall: accepted (with the passkey or PIN the request
/// kinds need) or refused with org.bluez.Error.Rejected.
struct AgentAnswer {
    bool accept = false;
    std::string reason;         ///< Rejected's message when refused
    std::uint32_t passkey = 0;  ///< RequestPasskey's reply
    std::string pin;            ///< RequestPinCode's reply

    static AgentAnswer yes() { return AgentAnswer{true, {}, 0, {}}; }
    static AgentAnswer no(std::string why) { return AgentAnswer{false, std::move(why), 0, {}}; }
};

/// What an agent decides; the daemon's (pairing window) and the client's (only its
/// own bond) differ, the D-Bus side of them does not.
class AgentPolicy {
  public:
    virtual ~AgentPolicy() = default;
    /// Decides a request (called only for calls from bluetoothd).
    virtual AgentAnswer answer(const AgentCall& call) = 0;
    /// BlueZ dropped the agent (Release).
    virtual void released() = 0;
    /// BlueZ cancelled the pending request (Cancel).
    virtual void cancelled() = 0;
};

/// org.bluez.Agent1 exported at a path for a policy: rejects callers other than
/// bluetoothd, reads the arguments, asks the policy and replies. A failure inside
/// is logged and answered org.bluez.Error.Failed, never thrown into sd-bus.
class AgentObject {
  public:
    /// Exports the object. `policy` must outlive it. Throws BusError.
    AgentObject(sd_bus* bus, std::string path, AgentPolicy& policy,
                std::function<bool(sd_bus_message* m)> trusted, LogFn log);
    AgentObject(const AgentObject&) = delete;
    AgentObject& operator=(const AgentObject&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }

  private:
    friend struct AgentDispatch;
    std::string path_;
    AgentPolicy& policy_;
    std::function<bool(sd_bus_message* m)> trusted_;
    LogFn log_;
    dbus::Slot slot_;
};

/// The daemon's agent: the pairing-window policy on an AgentObject.
class Agent final : public AgentPolicy {
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

    [[nodiscard]] const std::string& path() const { return object_.path(); }

    AgentAnswer answer(const AgentCall& call) override;
    void released() override;
    void cancelled() override;

  private:
    void log(LogLevel level, const std::string& msg) const;
    [[nodiscard]] std::string describe(const std::string& device) const;
    bool decide(AgentRequest req, const std::string& device);
    void show(const std::string& device, const std::string& passkey, const char* kind);

    Hooks hooks_;
    /// The last (device, passkey) shown: DisplayPasskey repeats as keys are typed.
    std::string last_shown_;
    AgentObject object_;  ///< last: exported once the policy is complete
};

}  // namespace bzs::bluez
