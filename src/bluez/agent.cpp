// SPDX-License-Identifier: GPL-3.0-or-later
#include "bluez/agent.h"

#include <array>
#include <cstdio>
#include <utility>

#include "core/crypto/crypto.h"
#include "bluez/names.h"

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

struct AgentDispatch {
    static void log(const Agent& a, LogLevel level, const std::string& msg) {
        if (a.hooks_.log) {
            a.hooks_.log(level, msg);
        }
    }

    static std::string describe(const Agent& a, const std::string& device) {
        return a.hooks_.describe ? a.hooks_.describe(device) : device;
    }

    template <class F>
    static int guarded(Agent& a, sd_bus_message* m, sd_bus_error* ret, F&& body) noexcept {
        try {
            if (!a.hooks_.trusted || !a.hooks_.trusted(m)) {
                return dbus::reply_error(ret, kErrRejected, "only bluetoothd may call the agent");
            }
            return body();
        } catch (const std::exception& e) {
            try {
                log(a, LogLevel::Warning, std::string("pairing agent: ") + e.what());
            } catch (...) {
            }
            return dbus::reply_error(ret, kErrFailed, "internal error");
        } catch (...) {
            return dbus::reply_error(ret, kErrFailed, "internal error");
        }
    }

    // Applies the policy, logs the decision and replies Rejected when refused.
    // Returns true when accepted.
    static bool decide(Agent& a, AgentRequest req, const std::string& device) {
        const bool window = a.hooks_.window_open && a.hooks_.window_open();
        const bool bonded = a.hooks_.bonded && a.hooks_.bonded(device);
        const AgentVerdict v = agent_decision(req, window, bonded);
        const std::string who = describe(a, device);
        if (v == AgentVerdict::Accept) {
            log(a, LogLevel::Info,
                "pairing: " + std::string(agent_request_name(req)) + " from " + who +
                    " accepted (" + (window ? "pairing window open" : "bonded device") + ")");
            return true;
        }
        log(a, LogLevel::Warning,
            "pairing: " + std::string(agent_request_name(req)) + " from " + who +
                " rejected: the pairing window is closed (open it with `bluezscript pair add`)");
        return false;
    }

    static void show(Agent& a, const std::string& device, const std::string& passkey,
                     const char* kind) {
        const std::string key = device + "\n" + passkey;
        if (key == a.last_shown_) {
            return;  // DisplayPasskey repeats while the phone's user types
        }
        a.last_shown_ = key;
        PasskeyNotice n;
        n.device_path = device;
        n.peer = describe(a, device);
        n.passkey = passkey;
        n.kind = kind;
        log(a, LogLevel::Info, "pairing: passkey for " + n.peer + ": " + passkey);
        if (a.hooks_.on_passkey) {
            a.hooks_.on_passkey(n);
        }
    }

    static Agent& self(void* userdata) { return *static_cast<Agent*>(userdata); }

    static int release(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Agent& a = self(userdata);
        return guarded(a, m, ret, [&]() -> int {
            a.last_shown_.clear();
            if (a.hooks_.on_release) {
                a.hooks_.on_release();  // the owner logs it and registers again
            }
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int request_pin_code(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Agent& a = self(userdata);
        return guarded(a, m, ret, [&]() -> int {
            const std::string device = dbus::read_string(m, 'o');
            if (!decide(a, AgentRequest::PinCode, device)) {
                return dbus::reply_error(ret, kErrRejected, "the pairing window is closed");
            }
            const std::string pin = format_passkey(random_passkey());
            show(a, device, pin, "request-pin");
            return sd_bus_reply_method_return(m, "s", pin.c_str());
        });
    }

    static int display_pin_code(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Agent& a = self(userdata);
        return guarded(a, m, ret, [&]() -> int {
            const std::string device = dbus::read_string(m, 'o');
            const std::string pin = dbus::read_string(m);
            if (!decide(a, AgentRequest::DisplayPinCode, device)) {
                return dbus::reply_error(ret, kErrRejected, "the pairing window is closed");
            }
            show(a, device, pin, "display-pin");
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int request_passkey(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Agent& a = self(userdata);
        return guarded(a, m, ret, [&]() -> int {
            const std::string device = dbus::read_string(m, 'o');
            if (!decide(a, AgentRequest::Passkey, device)) {
                return dbus::reply_error(ret, kErrRejected, "the pairing window is closed");
            }
            const std::uint32_t passkey = random_passkey();
            show(a, device, format_passkey(passkey), "request-passkey");
            return sd_bus_reply_method_return(m, "u", passkey);
        });
    }

    static int display_passkey(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Agent& a = self(userdata);
        return guarded(a, m, ret, [&]() -> int {
            const std::string device = dbus::read_string(m, 'o');
            const std::uint32_t passkey = dbus::read_u32(m);
            const std::string key = format_passkey(passkey);
            // Repeats (the "entered" count changing) neither log nor decide again.
            if (a.last_shown_ == device + "\n" + key) {
                return sd_bus_reply_method_return(m, "");
            }
            if (!decide(a, AgentRequest::DisplayPasskey, device)) {
                // Not shown: without it the phone cannot complete the pairing.
                return dbus::reply_error(ret, kErrRejected, "the pairing window is closed");
            }
            show(a, device, key, "display-passkey");
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int request_confirmation(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Agent& a = self(userdata);
        return guarded(a, m, ret, [&]() -> int {
            const std::string device = dbus::read_string(m, 'o');
            const std::uint32_t passkey = dbus::read_u32(m);
            if (!decide(a, AgentRequest::Confirmation, device)) {
                return dbus::reply_error(ret, kErrRejected, "the pairing window is closed");
            }
            // Shown so the owner can compare it with the phone's screen.
            show(a, device, format_passkey(passkey), "confirm-passkey");
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int request_authorization(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Agent& a = self(userdata);
        return guarded(a, m, ret, [&]() -> int {
            const std::string device = dbus::read_string(m, 'o');
            if (!decide(a, AgentRequest::Authorization, device)) {
                return dbus::reply_error(ret, kErrRejected, "the pairing window is closed");
            }
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int authorize_service(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Agent& a = self(userdata);
        return guarded(a, m, ret, [&]() -> int {
            const std::string device = dbus::read_string(m, 'o');
            const std::string uuid = dbus::read_string(m);
            if (!decide(a, AgentRequest::Service, device)) {
                return dbus::reply_error(ret, kErrRejected, "the pairing window is closed");
            }
            log(a, LogLevel::Debug, "pairing: service " + uuid + " authorised for " + device);
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int cancel(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Agent& a = self(userdata);
        return guarded(a, m, ret, [&]() -> int {
            log(a, LogLevel::Info, "pairing: request cancelled by bluetoothd");
            a.last_shown_.clear();
            if (a.hooks_.on_cancel) {
                a.hooks_.on_cancel();
            }
            return sd_bus_reply_method_return(m, "");
        });
    }
};

namespace {

constexpr std::uint64_t kMethodFlags = SD_BUS_VTABLE_UNPRIVILEGED;

const sd_bus_vtable kAgentVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Release", "", "", &AgentDispatch::release, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("RequestPinCode", "o", SD_BUS_PARAM(device), "s",
                             SD_BUS_PARAM(pincode), &AgentDispatch::request_pin_code, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("DisplayPinCode", "os", SD_BUS_PARAM(device) SD_BUS_PARAM(pincode), "",
                             , &AgentDispatch::display_pin_code, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("RequestPasskey", "o", SD_BUS_PARAM(device), "u",
                             SD_BUS_PARAM(passkey), &AgentDispatch::request_passkey, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("DisplayPasskey", "ouq",
                             SD_BUS_PARAM(device) SD_BUS_PARAM(passkey) SD_BUS_PARAM(entered), "", ,
                             &AgentDispatch::display_passkey, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("RequestConfirmation", "ou",
                             SD_BUS_PARAM(device) SD_BUS_PARAM(passkey), "", ,
                             &AgentDispatch::request_confirmation, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("RequestAuthorization", "o", SD_BUS_PARAM(device), "", ,
                             &AgentDispatch::request_authorization, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("AuthorizeService", "os", SD_BUS_PARAM(device) SD_BUS_PARAM(uuid), "",
                             , &AgentDispatch::authorize_service, kMethodFlags),
    SD_BUS_METHOD("Cancel", "", "", &AgentDispatch::cancel, kMethodFlags),
    SD_BUS_VTABLE_END,
};

}  // namespace

Agent::Agent(sd_bus* bus, std::string path, Hooks hooks)
    : path_(std::move(path)), hooks_(std::move(hooks)) {
    slot_ = dbus::add_object(bus, path_, "org.bluez.Agent1", kAgentVtable, this);
}

}  // namespace bzs::bluez
