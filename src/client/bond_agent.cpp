// SPDX-License-Identifier: GPL-3.0-or-later
// The client's agent policy (BondAgent) and Trigger's bonding with the Pi.
#include <unistd.h>

#include <memory>
#include <string>

#include "client/trigger_impl.h"

namespace bzs::client {

namespace {

using namespace bluez::names;  // D-Bus names (bluez/names.h)
constexpr const char* kAgentManagerPath = "/org/bluez";
// KeyboardDisplay against the Pi's DisplayYesNo agent gives numeric comparison, an
// authenticated (MITM-protected) bond as encrypt-authenticated-* attributes need.
constexpr const char* kAgentCapability = "KeyboardDisplay";
constexpr std::uint64_t kPairTimeoutUsec = 90'000'000;

}  // namespace

bluez::AgentAnswer Trigger::Impl::BondAgent::answer(const bluez::AgentCall& call) {
    using bluez::AgentAnswer;
    using bluez::AgentRequest;
    static const char* const kNotOurs = "not the device this client bonds with";
    switch (call.request) {
        case AgentRequest::Confirmation:
            if (call.device != self_.device) {
                return AgentAnswer::no(kNotOurs);
            }
            self_.notice("pairing: passkey " + bluez::format_passkey(call.passkey) +
                         " (the Pi's log shows the same number); confirming");
            return AgentAnswer::yes();
        case AgentRequest::DisplayPasskey:
            self_.notice("pairing: passkey " + bluez::format_passkey(call.passkey));
            return AgentAnswer::yes();
        case AgentRequest::DisplayPinCode:
            self_.notice("pairing: PIN " + call.text);
            return AgentAnswer::yes();
        case AgentRequest::Authorization:
            return call.device == self_.device ? AgentAnswer::yes() : AgentAnswer::no(kNotOurs);
        case AgentRequest::Passkey:
        case AgentRequest::PinCode:
            self_.notice(
                "pairing: the Pi asks for a passkey to be typed, which bluezscript "
                "cannot do; bond with bluetoothctl instead");
            return AgentAnswer::no("cannot enter a passkey");
        case AgentRequest::Service:
            break;
    }
    return AgentAnswer::no("this client does not accept connections");
}
// ------------------------------------------------------------ bonding

// Registers our agent for the bond this run asks for with Device1.Pair(): BlueZ
// sends the pairing requests of a Pair() call to the caller's agent. It is not
// made the default agent: that one also answers the pairing requests of every
// other device (and, when one bluetoothd serves both ends as in tests/vm, the
// Pi's side of our own bond), which are not ours to confirm or refuse.
// Failures only cost the bond: `then` runs in any case.
void Trigger::Impl::ensure_agent(const std::function<void()>& then) {
    if (agent_registered) {
        then();
        return;
    }
    const std::string path = agent_path();
    try {
        if (!agent_object) {
            agent_policy = std::make_unique<BondAgent>(*this);
            agent_object = std::make_unique<bluez::AgentObject>(
                bus.get(), path, *agent_policy,
                [this](sd_bus_message* m) { return mirror.from_bluez(m); }, nullptr);
        }
        calls.push_back(call(
            kAgentManagerPath, kAgentManagerIface, "RegisterAgent",
            [path](sd_bus_message* m) {
                dbus::check(sd_bus_message_append(m, "os", path.c_str(), kAgentCapability),
                            "append agent");
            },
            [this, then](sd_bus_message*, const dbus::RemoteError* err) {
                if (err != nullptr && err->name != "org.bluez.Error.AlreadyExists") {
                    notice("cannot register a pairing agent: " + err->to_string());
                    then();
                    return;
                }
                agent_registered = true;
                then();
            }));
    } catch (const dbus::BusError& e) {
        notice(std::string("cannot register a pairing agent: ") + e.what());
        loop.post(then);
    }
}

void Trigger::Impl::pair(const GattTransport::Done& done) {
    ensure_agent([this, done] {
        if (!active()) {
            return;
        }
        try {
            calls.push_back(call(
                device, kDeviceIface, "Pair", {},
                [done](sd_bus_message*, const dbus::RemoteError* e) { done(e); },
                kPairTimeoutUsec));
        } catch (const dbus::BusError& e) {
            const GattError g{"org.freedesktop.DBus.Error.Failed", e.what()};
            loop.post([done, g] { done(&g); });
        }
    });
}

void Trigger::Impl::unregister_agent() {
    if (!agent_registered) {
        return;
    }
    agent_registered = false;
    const std::string path = agent_path();
    fire(kAgentManagerPath, kAgentManagerIface, "UnregisterAgent", [path](sd_bus_message* m) {
        dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_OBJECT_PATH, path.c_str()),
                    "append agent path");
    });
}

std::string Trigger::Impl::agent_path() {
    return "/org/bluezscript/client/agent" + std::to_string(::getpid());
}
}  // namespace bzs::client
