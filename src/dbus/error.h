// SPDX-License-Identifier: GPL-3.0-or-later
// The one D-Bus error type, in a header of its own without sd-bus, so that code that
// only reasons about failures (client/exchange) needs no sd-bus headers.
#pragma once

#include <string>

namespace bzs::dbus {

/// A D-Bus error name and message, e.g. {"org.bluez.Error.Failed", "Not powered"}:
/// what a method call into a peer (BlueZ) failed with.
struct RemoteError {
    std::string name;
    std::string message;
    /// "name: message" (or just the name when the message is empty).
    [[nodiscard]] std::string to_string() const {
        return message.empty() ? name : name + ": " + message;
    }
};

}  // namespace bzs::dbus
