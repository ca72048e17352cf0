// SPDX-License-Identifier: GPL-3.0-or-later
// The LE advertisement (org.bluez.LEAdvertisement1, doc/advertising-api.txt): a
// connectable "peripheral" advertisement carrying the BlueZscript service UUID and
// the Pi's local name. BlueZ reads its properties once, at RegisterAdvertisement;
// Release() tells us BlueZ dropped it, and the owner registers it again.
#pragma once

#include <functional>
#include <string>

#include "bluez/peripheral.h"
#include "dbus/bus.h"

namespace bzs::bluez {

class Advertisement {
  public:
    struct Hooks {
        /// True when a method call comes from bluetoothd (the org.bluez owner).
        std::function<bool(sd_bus_message* m)> trusted;
        /// BlueZ released the advertisement (it is no longer registered).
        std::function<void()> on_release;
    };

    /// Exports the advertisement at `path`. Throws BusError.
    Advertisement(sd_bus* bus, std::string path, std::string local_name, std::string service_uuid,
                  Hooks hooks);
    Advertisement(const Advertisement&) = delete;
    Advertisement& operator=(const Advertisement&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] const std::string& local_name() const { return local_name_; }

  private:
    friend struct AdvertisementDispatch;
    std::string path_;
    std::string local_name_;
    std::string service_uuid_;
    Hooks hooks_;
    dbus::Slot slot_;
};

}  // namespace bzs::bluez
