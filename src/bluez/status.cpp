// SPDX-License-Identifier: GPL-3.0-or-later
// The peripheral's pure parts: adapter names and choice, and the status line.
#include "bluez/peripheral.h"

#include <algorithm>

namespace bzs::bluez {

std::string adapter_name(std::string_view path) {
    const auto pos = path.rfind('/');
    return std::string(pos == std::string_view::npos ? path : path.substr(pos + 1));
}

std::optional<std::string> choose_adapter(const std::vector<AdapterInfo>& adapters,
                                          std::string_view configured, std::string_view current) {
    std::vector<AdapterInfo> sorted = adapters;
    std::sort(sorted.begin(), sorted.end(),
              [](const AdapterInfo& a, const AdapterInfo& b) { return a.path < b.path; });
    if (!configured.empty()) {
        for (const auto& a : sorted) {
            if (adapter_name(a.path) == configured) {
                return a.path;
            }
        }
        return std::nullopt;
    }
    const AdapterInfo* cur = nullptr;
    for (const auto& a : sorted) {
        if (a.path == current) {
            cur = &a;
        }
    }
    if (cur != nullptr && cur->powered) {
        return cur->path;
    }
    for (const auto& a : sorted) {
        if (a.powered) {
            return a.path;
        }
    }
    if (cur != nullptr) {
        return cur->path;
    }
    if (!sorted.empty()) {
        return sorted.front().path;
    }
    return std::nullopt;
}

std::string Status::summary() const {
    if (disabled) {
        return reason;
    }
    if (stopping) {
        return "BLE: stopping (unregistering from BlueZ)";
    }
    if (!bus_connected) {
        return "BLE: starting (connecting to the system bus)";
    }
    if (!bluez_present) {
        return "BLE: waiting for bluetoothd (org.bluez is not on the system bus)";
    }
    std::string s;
    if (adapter.empty()) {
        s = "BLE: waiting for a Bluetooth adapter";
    } else if (!powered) {
        s = "BLE: adapter " + adapter + " is powered off; waiting for it";
    } else if (registered && advertising) {
        s = "BLE: advertising on " + adapter;
    } else if (registered) {
        s = "BLE: service registered on " + adapter + ", not advertising";
    } else {
        s = "BLE: registering on " + adapter;
    }
    if (powered) {
        const std::size_t n = connected_devices.size();
        s += ", " + std::to_string(n) + (n == 1 ? " device" : " devices") + " connected";
    }
    if (!agent) {
        s += "; pairing agent not registered";
    }
    return s;
}

}  // namespace bzs::bluez
