// SPDX-License-Identifier: GPL-3.0-or-later
#include "bluez/agent.h"

#include <array>
#include <cstdio>
#include <utility>

#include "bluez/names.h"
#include "core/crypto/crypto.h"

namespace bzs::bluez {

namespace {

using namespace names;  // D-Bus names (bluez/names.h)

}  // namespace

std::string_view agent_request_name(AgentRequest request) {
    switch (request) {
        case AgentRequest::Confirmation:
            return "RequestConfirmation";
        case AgentRequest::Authorization:
            return "RequestAuthorization";
        case AgentRequest::Service:
            return "AuthorizeService";
        case AgentRequest::Passkey:
            return "RequestPasskey";
        case AgentRequest::PinCode:
            return "RequestPinCode";
        case AgentRequest::DisplayPasskey:
            return "DisplayPasskey";
        case AgentRequest::DisplayPinCode:
            return "DisplayPinCode";
    }
    return "unknown";
}

AgentVerdict agent_decision(AgentRequest request, bool window_open, bool bonded) {
    if (window_open) {
        return AgentVerdict::Accept;
    }
    if (request == AgentRequest::Service && bonded) {
        return AgentVerdict::Accept;
    }
    return AgentVerdict::Reject;
}

std::string format_passkey(std::uint32_t passkey) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%06u", static_cast<unsigned>(passkey % 1000000U));
    return buf;
}

std::uint32_t random_passkey() {
    // Rejection sampling keeps every value equally likely.
    constexpr std::uint32_t kLimit = 0xFFFFFFFFU - (0xFFFFFFFFU % 1000000U);
    for (;;) {
        std::array<std::uint8_t, 4> b{};
        core::crypto::random_bytes(b);
        const std::uint32_t v = (static_cast<std::uint32_t>(b[0]) << 24U) |
                                (static_cast<std::uint32_t>(b[1]) << 16U) |
                                (static_cast<std::uint32_t>(b[2]) << 8U) | b[3];
        if (v < kLimit) {
            return v % 1000000U;
        }
    }
}

// ---------------------------------------------------------------- the daemon's policy

void Agent::log(LogLevel level, const std::string& msg) const {
    if (hooks_.log) {
        hooks_.log(level, msg);
    }
}

std::string Agent::describe(const std::string& device) const {
    return hooks_.describe ? hooks_.describe(device) : device;
}

// Applies the policy and logs the decision. Returns true when accepted.
bool Agent::decide(AgentRequest req, const std::string& device) {
    const bool window = hooks_.window_open && hooks_.window_open();
    const bool bonded = hooks_.bonded && hooks_.bonded(device);
    const AgentVerdict v = agent_decision(req, window, bonded);
    const std::string who = describe(device);
    if (v == AgentVerdict::Accept) {
        log(LogLevel::Info, "pairing: " + std::string(agent_request_name(req)) + " from " + who +
                                " accepted (" + (window ? "pairing window open" : "bonded device") +
                                ")");
        return true;
    }
    log(LogLevel::Warning,
        "pairing: " + std::string(agent_request_name(req)) + " from " + who +
            " rejected: the pairing window is closed (open it with `bluezscript pair add`)");
    return false;
}

void Agent::show(const std::string& device, const std::string& passkey, const char* kind) {
    const std::string key = device + "\n" + passkey;
    if (key == last_shown_) {
        return;  // DisplayPasskey repeats while the phone's user types
    }
    last_shown_ = key;
    PasskeyNotice n;
    n.device_path = device;
    n.peer = describe(device);
    n.passkey = passkey;
    n.kind = kind;
    log(LogLevel::Info, "pairing: passkey for " + n.peer + ": " + passkey);
    if (hooks_.on_passkey) {
        hooks_.on_passkey(n);
    }
}

AgentAnswer Agent::answer(const AgentCall& call) {
    static const char* const kClosed = "the pairing window is closed";
    const std::string& device = call.device;
    switch (call.request) {
        case AgentRequest::PinCode: {
            if (!decide(call.request, device)) {
                return AgentAnswer::no(kClosed);
            }
            AgentAnswer a = AgentAnswer::yes();
            a.pin = format_passkey(random_passkey());
            show(device, a.pin, "request-pin");
            return a;
        }
        case AgentRequest::DisplayPinCode:
            if (!decide(call.request, device)) {
                return AgentAnswer::no(kClosed);
            }
            show(device, call.text, "display-pin");
            return AgentAnswer::yes();
        case AgentRequest::Passkey: {
            if (!decide(call.request, device)) {
                return AgentAnswer::no(kClosed);
            }
            AgentAnswer a = AgentAnswer::yes();
            a.passkey = random_passkey();
            show(device, format_passkey(a.passkey), "request-passkey");
            return a;
        }
        case AgentRequest::DisplayPasskey: {
            const std::string key = format_passkey(call.passkey);
            // Repeats (the "entered" count changing) neither log nor decide again.
            if (last_shown_ == device + "\n" + key) {
                return AgentAnswer::yes();
            }
            if (!decide(call.request, device)) {
                // Not shown: without it the phone cannot complete the pairing.
                return AgentAnswer::no(kClosed);
            }
            show(device, key, "display-passkey");
            return AgentAnswer::yes();
        }
        case AgentRequest::Confirmation:
            if (!decide(call.request, device)) {
                return AgentAnswer::no(kClosed);
            }
            // Shown so the owner can compare it with the phone's screen.
            show(device, format_passkey(call.passkey), "confirm-passkey");
            return AgentAnswer::yes();
        case AgentRequest::Authorization:
            return decide(call.request, device) ? AgentAnswer::yes() : AgentAnswer::no(kClosed);
        case AgentRequest::Service:
            if (!decide(call.request, device)) {
                return AgentAnswer::no(kClosed);
            }
            log(LogLevel::Debug, "pairing: service " + call.text + " authorised for " + device);
            return AgentAnswer::yes();
    }
    return AgentAnswer::no(kClosed);
}

void Agent::released() {
    last_shown_.clear();
    if (hooks_.on_release) {
        hooks_.on_release();  // the owner logs it and registers again
    }
}

void Agent::cancelled() {
    log(LogLevel::Info, "pairing: request cancelled by bluetoothd");
    last_shown_.clear();
    if (hooks_.on_cancel) {
        hooks_.on_cancel();
    }
}

Agent::Agent(sd_bus* bus, std::string path, Hooks hooks)
    : hooks_(std::move(hooks)), object_(bus, std::move(path), *this, hooks_.trusted, hooks_.log) {}

// ---------------------------------------------------------------- the D-Bus object

struct AgentDispatch {
    static AgentObject& self(void* userdata) { return *static_cast<AgentObject*>(userdata); }

    // Checks the caller, runs `body` and turns failures into org.bluez.Error.Failed.
    template <class F>
    static int guarded(void* userdata, sd_bus_message* m, sd_bus_error* ret, F&& body) noexcept {
        AgentObject& a = self(userdata);
        try {
            if (!a.trusted_ || !a.trusted_(m)) {
                return dbus::reply_error(ret, kErrRejected, "only bluetoothd may call the agent");
            }
            return body(a);
        } catch (const std::exception& e) {
            try {
                if (a.log_) {
                    a.log_(LogLevel::Warning, std::string("pairing agent: ") + e.what());
                }
            } catch (...) {
            }
            return dbus::reply_error(ret, kErrFailed, "internal error");
        } catch (...) {
            return dbus::reply_error(ret, kErrFailed, "internal error");
        }
    }

    // Reads the arguments of `req` (device first), asks the policy and replies.
    template <AgentRequest req>
    static int request(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        return guarded(userdata, m, ret, [&](AgentObject& a) -> int {
            AgentCall call;
            call.request = req;
            call.device = dbus::read_string(m, 'o');
            if (req == AgentRequest::Confirmation || req == AgentRequest::DisplayPasskey) {
                call.passkey = dbus::read_u32(m);
            } else if (req == AgentRequest::DisplayPinCode || req == AgentRequest::Service) {
                call.text = dbus::read_string(m);
            }
            const AgentAnswer answer = a.policy_.answer(call);
            if (!answer.accept) {
                return dbus::reply_error(ret, kErrRejected, answer.reason);
            }
            if (req == AgentRequest::PinCode) {
                return sd_bus_reply_method_return(m, "s", answer.pin.c_str());
            }
            if (req == AgentRequest::Passkey) {
                return sd_bus_reply_method_return(m, "u", answer.passkey);
            }
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int release(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        return guarded(userdata, m, ret, [&](AgentObject& a) -> int {
            a.policy_.released();
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int cancel(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        return guarded(userdata, m, ret, [&](AgentObject& a) -> int {
            a.policy_.cancelled();
            return sd_bus_reply_method_return(m, "");
        });
    }
};

namespace {

constexpr std::uint64_t kMethodFlags = SD_BUS_VTABLE_UNPRIVILEGED;
using AD = AgentDispatch;

const sd_bus_vtable kAgentVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Release", "", "", &AD::release, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("RequestPinCode", "o", SD_BUS_PARAM(device), "s",
                             SD_BUS_PARAM(pincode), &AD::request<AgentRequest::PinCode>,
                             kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("DisplayPinCode", "os", SD_BUS_PARAM(device) SD_BUS_PARAM(pincode), "",
                             , &AD::request<AgentRequest::DisplayPinCode>, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("RequestPasskey", "o", SD_BUS_PARAM(device), "u",
                             SD_BUS_PARAM(passkey), &AD::request<AgentRequest::Passkey>,
                             kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("DisplayPasskey", "ouq",
                             SD_BUS_PARAM(device) SD_BUS_PARAM(passkey) SD_BUS_PARAM(entered), "", ,
                             &AD::request<AgentRequest::DisplayPasskey>, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("RequestConfirmation", "ou",
                             SD_BUS_PARAM(device) SD_BUS_PARAM(passkey), "", ,
                             &AD::request<AgentRequest::Confirmation>, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("RequestAuthorization", "o", SD_BUS_PARAM(device), "", ,
                             &AD::request<AgentRequest::Authorization>, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("AuthorizeService", "os", SD_BUS_PARAM(device) SD_BUS_PARAM(uuid), "",
                             , &AD::request<AgentRequest::Service>, kMethodFlags),
    SD_BUS_METHOD("Cancel", "", "", &AD::cancel, kMethodFlags),
    SD_BUS_VTABLE_END,
};

}  // namespace

AgentObject::AgentObject(sd_bus* bus, std::string path, AgentPolicy& policy,
                         std::function<bool(sd_bus_message* m)> trusted, LogFn log)
    : path_(std::move(path)), policy_(policy), trusted_(std::move(trusted)), log_(std::move(log)) {
    slot_ = dbus::add_object(bus, path_, kAgentIface, kAgentVtable, this);
}

}  // namespace bzs::bluez
