// SPDX-License-Identifier: GPL-3.0-or-later
// Trigger's GattTransport over BlueZ's remote characteristic objects (D-Bus).
#include <optional>
#include <string>

#include "client/trigger_impl.h"

namespace bzs::client {

namespace {

using namespace bluez::names;  // D-Bus names (bluez/names.h)

}  // namespace

void Trigger::Impl::Transport::read(Chrc chrc, ReadDone done) {
    issue(
        owner_.chrc_paths[chrc], "ReadValue", dbus::append_empty_dict,
        [done](sd_bus_message* m, const GattError* err) {
            if (err != nullptr) {
                done({}, err);
                return;
            }
            done(dbus::read_bytes(m), nullptr);
        },
        [done](const GattError* err) { done({}, err); });
}

void Trigger::Impl::Transport::write_command(core::protocol::ByteView frame, Done done) {
    const core::protocol::Bytes value(frame.begin(), frame.end());
    issue(
        owner_.chrc_paths[Chrc::Command], "WriteValue",
        [value](sd_bus_message* m) {
            dbus::append_bytes(m, value);
            // "request": a write with response, which BlueZ turns into a long
            // write (prepare + execute) when the frame exceeds ATT_MTU - 3.
            dbus::check(sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "{sv}"),
                        "open options");
            append_entry(m, "type", "s", [m] {
                dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, "request"),
                            "append type");
            });
            dbus::check(sd_bus_message_close_container(m), "close options");
        },
        [done](sd_bus_message*, const GattError* err) { done(err); }, done);
}

void Trigger::Impl::Transport::subscribe_result(Notify on_value, Done done) {
    const std::string path = owner_.chrc_paths[Chrc::Result];
    try {
        match_ = bluez::watch_characteristic_value(
            owner_.bus, path, [on_value](const dbus::Bytes& value) { on_value(value); });
    } catch (const dbus::BusError& e) {
        post_error(done, e.what());
        return;
    }
    issue(
        path, "StartNotify", {},
        [this, done](sd_bus_message*, const GattError* err) {
            if (err == nullptr) {
                owner_.notify_started = true;
            }
            done(err);
        },
        done);
}

bool Trigger::Impl::Transport::paired() const {
    const bluez::MirroredDevice* d = owner_.mirror.device(owner_.device);
    return d != nullptr && d->paired;
}

// One call on a characteristic. A call that cannot even be queued is reported
// through `on_local_error` from the loop, as the interface promises.
void Trigger::Impl::Transport::issue(const std::string& path, const char* member,
                                     const dbus::Builder& build, const Reply& reply,
                                     const Done& on_local_error) {
    try {
        calls_.push_back(owner_.call(path, kChrcIface, member, build,
                                     [reply](sd_bus_message* m, const dbus::RemoteError* err) {
                                         if (err != nullptr) {
                                             reply(nullptr, err);
                                             return;
                                         }
                                         reply(m, nullptr);
                                     }));
    } catch (const dbus::BusError& e) {
        post_error(on_local_error, e.what());
    }
}

void Trigger::Impl::Transport::post_error(const Done& done, const std::string& what) {
    const GattError g{"org.freedesktop.DBus.Error.Failed", what};
    owner_.loop.post([done, g] { done(&g); });
}
}  // namespace bzs::client
