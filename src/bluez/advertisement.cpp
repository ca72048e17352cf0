// SPDX-License-Identifier: GPL-3.0-or-later
#include "bluez/advertisement.h"

#include <utility>

namespace bzs::bluez {

struct AdvertisementDispatch {
    static Advertisement& self(void* userdata) { return *static_cast<Advertisement*>(userdata); }

    static int release(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        Advertisement& a = self(userdata);
        try {
            if (!a.hooks_.trusted || !a.hooks_.trusted(m)) {
                return dbus::reply_error(ret, "org.bluez.Error.Rejected",
                                         "only bluetoothd may release the advertisement");
            }
            if (a.hooks_.on_release) {
                a.hooks_.on_release();  // the owner logs it and registers again
            }
        } catch (const std::exception& e) {
            return dbus::reply_error(ret, "org.bluez.Error.Failed", e.what());
        } catch (...) {
            return dbus::reply_error(ret, "org.bluez.Error.Failed", "internal error");
        }
        // BlueZ sends Release without expecting a reply; sd-bus then sends none.
        return sd_bus_reply_method_return(m, "");
    }

    static int type(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                    const char* /*prop*/, sd_bus_message* reply, void* /*userdata*/,
                    sd_bus_error* /*ret*/) {
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_STRING, "peripheral");
    }

    static int service_uuids(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                             const char* /*prop*/, sd_bus_message* reply, void* userdata,
                             sd_bus_error* /*ret*/) {
        const Advertisement& a = self(userdata);
        int r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "s");
        if (r >= 0) {
            r = sd_bus_message_append_basic(reply, SD_BUS_TYPE_STRING, a.service_uuid_.c_str());
        }
        if (r >= 0) {
            r = sd_bus_message_close_container(reply);
        }
        return r;
    }

    static int local_name(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                          const char* /*prop*/, sd_bus_message* reply, void* userdata,
                          sd_bus_error* /*ret*/) {
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_STRING,
                                           self(userdata).local_name_.c_str());
    }
};

namespace {

const sd_bus_vtable kAdvertisementVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Release", "", "", &AdvertisementDispatch::release,
                  SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_METHOD_NO_REPLY),
    SD_BUS_PROPERTY("Type", "s", &AdvertisementDispatch::type, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("ServiceUUIDs", "as", &AdvertisementDispatch::service_uuids, 0,
                    SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("LocalName", "s", &AdvertisementDispatch::local_name, 0,
                    SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_VTABLE_END,
};

}  // namespace

Advertisement::Advertisement(sd_bus* bus, std::string path, std::string local_name,
                             std::string service_uuid, Hooks hooks)
    : path_(std::move(path)),
      local_name_(std::move(local_name)),
      service_uuid_(std::move(service_uuid)),
      hooks_(std::move(hooks)) {
    slot_ = dbus::add_object(bus, path_, "org.bluez.LEAdvertisement1", kAdvertisementVtable, this);
}

}  // namespace bzs::bluez
