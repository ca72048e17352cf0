// SPDX-License-Identifier: GPL-3.0-or-later
#include "bluez/gatt_app.h"
#include "bluez/names.h"
#include "core/protocol/names.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace bzs::bluez {

namespace {

using namespace names;  // D-Bus names (bluez/names.h)

// The shortest frame of a request type (docs/design/protocol-v2.md, "Frames"): a
// header, the smallest body and the tag. Without a type, the shortest of all.
std::size_t shortest_frame(dbus::ByteView b) {
    constexpr std::size_t kCatalogue =
        core::protocol::kRequestHeaderLen + 29 + core::protocol::kSealTagLen;  // 85
    constexpr std::size_t kCommand =
        core::protocol::kRequestHeaderLen + 31 + core::protocol::kSealTagLen;  // 87
    constexpr std::size_t kPair = core::protocol::kRequestHeaderLen + 16 +
                                  core::protocol::kP256PublicKeyLen +
                                  core::protocol::kSealTagLen;  // 137
    if (b.size() < 2) {
        return kCatalogue;
    }
    switch (static_cast<core::protocol::RequestType>(b[1])) {
        case core::protocol::RequestType::Command:
            return kCommand;
        case core::protocol::RequestType::Pair:
            return kPair;
        case core::protocol::RequestType::Catalogue:
            break;
    }
    return kCatalogue;
}

}  // namespace

// ---------------------------------------------------------------- pure parts

FrameScan scan_request_frame(dbus::ByteView b) {
    using core::protocol::Progress;
    switch (core::protocol::request_progress(b)) {
        case Progress::NeedMore: {
            // The length field once it has arrived; before, the type's shortest frame.
            const std::size_t at_least =
                b.size() >= 4 ? (static_cast<std::size_t>(b[2]) << 8U) | b[3] : shortest_frame(b);
            return FrameScan{FrameProgress::NeedMore, at_least};
        }
        case Progress::Complete:
        case Progress::Invalid:
            break;
    }
    // Invalid prefixes go to the command service too: it answers them `malformed`
    // (or `unknown_version`) at once, with the rule they broke.
    return FrameScan{FrameProgress::Complete, 0};
}

FrameProgress request_frame_progress(dbus::ByteView b) {
    return scan_request_frame(b).progress;
}

std::string incomplete_frame_detail(dbus::ByteView held) {
    return "frame incomplete " + std::to_string(kIncompleteFrameTimeout.count()) +
           " s after its last write: " + std::to_string(held.size()) + " of at least " +
           std::to_string(scan_request_frame(held).at_least) + " bytes";
}

WriteOutcome FrameAssembler::write(std::size_t offset, dbus::ByteView chunk) {
    WriteOutcome out;
    if (offset == 0) {
        buf_.clear();
    } else if (offset != buf_.size()) {
        buf_.clear();
        out.kind = WriteOutcome::Kind::InvalidOffset;
        return out;
    }
    if (offset + chunk.size() > core::protocol::kMaxFrame) {
        buf_.clear();
        out.kind = WriteOutcome::Kind::TooLong;
        return out;
    }
    buf_.insert(buf_.end(), chunk.begin(), chunk.end());
    if (request_frame_progress(buf_) == FrameProgress::Complete) {
        out.kind = WriteOutcome::Kind::Complete;
        out.frame = std::exchange(buf_, {});
        return out;
    }
    out.kind = WriteOutcome::Kind::Partial;
    return out;
}

std::optional<dbus::Bytes> slice_from(dbus::ByteView value, std::size_t offset) {
    if (offset > value.size()) {
        return std::nullopt;
    }
    return dbus::Bytes(value.begin() + static_cast<std::ptrdiff_t>(offset), value.end());
}

std::string info_json(const InfoFields& f) {
    std::string name;
    for (const char c : f.pi_name) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            name += '\\';
            name += c;
        } else if (u < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(u));
            name += esc;
        } else {
            name += c;  // UTF-8 passes through unchanged
        }
    }
    return std::string(R"({"v":2,"name":")") + name + R"(","pi":")" + f.pi_id_hex + R"(","pk":")" +
           f.pi_key_hex + R"(","time":)" + std::to_string(f.time) + R"(,"synced":)" +
           (f.synced ? "true" : "false") + "}";
}

LinkTable::Link& LinkTable::touch(const std::string& device, std::optional<std::uint16_t> mtu) {
    auto it = links_.find(device);
    if (it == links_.end()) {
        it = links_.emplace(device, Link{}).first;
        it->second.generation = next_generation_++;
    }
    if (mtu && *mtu >= kDefaultAttMtu) {
        it->second.mtu = *mtu;
    }
    return it->second;
}

LinkTable::Link* LinkTable::find(const std::string& device) {
    auto it = links_.find(device);
    return it == links_.end() ? nullptr : &it->second;
}

bool LinkTable::drop(const std::string& device) {
    return links_.erase(device) > 0;
}

std::optional<std::vector<dbus::Bytes>> LinkTable::store_result(const std::string& device,
                                                                std::uint64_t generation,
                                                                dbus::ByteView frame,
                                                                bool notifying) {
    Link* link = find(device);
    if (link == nullptr || link->generation != generation) {
        return std::nullopt;
    }
    link->last_result.assign(frame.begin(), frame.end());
    if (!notifying) {
        return std::vector<dbus::Bytes>{};
    }
    return core::protocol::fragment(frame, link->mtu);
}

// ---------------------------------------------------------------- D-Bus objects

std::string GattApp::info_now() const {
    InfoFields f;
    f.pi_name = options_.pi_name;
    f.pi_id_hex = options_.pi_id_hex;
    f.pi_key_hex = options_.pi_key_hex;
    if (hooks_.info_clock) {
        const InfoClock c = hooks_.info_clock();
        f.time = c.time;
        f.synced = c.synced;
    } else if (hooks_.clock) {
        f.time = hooks_.clock();
    }
    return info_json(f);
}

struct GattApp::Chrc {
    enum class Kind { Info, Challenge, Command, Result };
    GattApp* app = nullptr;
    Kind kind = Kind::Info;
    std::string path;
    std::string uuid;
    std::vector<std::string> flags;
};

// The "options" dictionary of ReadValue/WriteValue (doc/gatt-api.txt).
struct AccessOptions {
    std::string device;
    std::size_t offset = 0;
    std::optional<std::uint16_t> mtu;
    bool prepare_authorize = false;
};

// The vtable callbacks; a friend of GattApp so they can reach its state.
struct GattDispatch {
    static void log(const GattApp& app, LogLevel level, const std::string& msg) {
        if (app.hooks_.log) {
            app.hooks_.log(level, msg);
        }
    }

    static AccessOptions read_options(sd_bus_message* m) {
        AccessOptions o;
        dbus::read_dict(m, [&o](const std::string& key, sd_bus_message* mm) {
            if (key == "device") {
                o.device = dbus::read_variant_string(mm).value_or("");
                return true;
            }
            if (key == "offset") {
                o.offset = dbus::read_variant_u16(mm).value_or(0);
                return true;
            }
            if (key == "mtu") {
                o.mtu = dbus::read_variant_u16(mm);
                return true;
            }
            if (key == "prepare-authorize") {
                o.prepare_authorize = dbus::read_variant_bool(mm).value_or(false);
                return true;
            }
            return false;
        });
        return o;
    }

    static int reply_bytes(sd_bus_message* m, dbus::ByteView value) {
        sd_bus_message* raw = nullptr;
        dbus::check(sd_bus_message_new_method_return(m, &raw), "sd_bus_message_new_method_return");
        dbus::Message reply = dbus::Message::adopt(raw);
        dbus::append_bytes(raw, value);
        dbus::check(sd_bus_send(nullptr, raw, nullptr), "send ReadValue reply");
        return 1;
    }

    // Runs a handler body; an exception becomes org.bluez.Error.Failed (ATT 0x80)
    // and a log line rather than crossing sd-bus's C frames.
    template <class F>
    static int guarded(GattApp::Chrc& c, sd_bus_error* ret, F&& body) noexcept {
        try {
            return body();
        } catch (const std::exception& e) {
            try {
                log(*c.app, LogLevel::Warning, "GATT " + c.path + ": " + e.what());
            } catch (...) {
            }
            return dbus::reply_error(ret, kErrFailed, "internal error");
        } catch (...) {
            return dbus::reply_error(ret, kErrFailed, "internal error");
        }
    }

    static bool trusted(GattApp& app, sd_bus_message* m) {
        return app.hooks_.trusted && app.hooks_.trusted(m);
    }

    static int read_value(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        auto& c = *static_cast<GattApp::Chrc*>(userdata);
        return guarded(c, ret, [&]() -> int {
            GattApp& app = *c.app;
            if (!trusted(app, m)) {
                return dbus::reply_error(ret, kErrNotAuthorized, "only bluetoothd may read this");
            }
            const AccessOptions o = read_options(m);
            if (c.kind == GattApp::Chrc::Kind::Info) {
                // The value holds the time: a long read continues the value its
                // first read (offset 0) saw, kept per link.
                std::string fresh;
                const std::string* info = &fresh;
                LinkTable::Link* link =
                    o.device.empty() ? nullptr : &app.links_.touch(o.device, o.mtu);
                if (link != nullptr && o.offset > 0 && !link->last_info.empty()) {
                    info = &link->last_info;
                } else {
                    fresh = app.info_now();
                    if (link != nullptr) {
                        link->last_info = fresh;
                        info = &link->last_info;
                    }
                }
                const auto* p = reinterpret_cast<const std::uint8_t*>(info->data());
                const auto v = slice_from(dbus::ByteView(p, info->size()), o.offset);
                return v ? reply_bytes(m, *v)
                         : dbus::reply_error(ret, kErrInvalidOffset, "offset beyond the value");
            }
            if (c.kind == GattApp::Chrc::Kind::Command) {
                return dbus::reply_error(ret, kErrNotPermitted,
                                         "the command characteristic is write-only");
            }
            if (o.device.empty()) {
                return dbus::reply_error(ret, kErrFailed, "no device option");
            }
            LinkTable::Link& link = app.links_.touch(o.device, o.mtu);
            if (c.kind == GattApp::Chrc::Kind::Challenge) {
                if (o.offset == 0) {
                    // A fresh single-use nonce per read at offset 0, bound to this device.
                    const std::int64_t now = app.hooks_.clock ? app.hooks_.clock() : 0;
                    app.challenges_.expire(now);
                    link.last_challenge = app.challenges_.issue(o.device, now);
                    log(app, LogLevel::Debug, "challenge issued to " + o.device);
                    return reply_bytes(m, *link.last_challenge);
                }
                // A read blob continuing the same nonce (never needed at MTU >= 23).
                const auto v =
                    link.last_challenge ? slice_from(*link.last_challenge, o.offset) : std::nullopt;
                return v ? reply_bytes(m, *v)
                         : dbus::reply_error(ret, kErrInvalidOffset, "offset beyond the challenge");
            }
            const auto v = slice_from(link.last_result, o.offset);
            return v ? reply_bytes(m, *v)
                     : dbus::reply_error(ret, kErrInvalidOffset, "offset beyond the result");
        });
    }

    static int write_value(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        auto& c = *static_cast<GattApp::Chrc*>(userdata);
        return guarded(c, ret, [&]() -> int {
            GattApp& app = *c.app;
            if (!trusted(app, m)) {
                return dbus::reply_error(ret, kErrNotAuthorized, "only bluetoothd may write this");
            }
            const dbus::Bytes value = dbus::read_bytes(m);
            const AccessOptions o = read_options(m);
            if (c.kind != GattApp::Chrc::Kind::Command) {
                return dbus::reply_error(ret, kErrNotPermitted,
                                         "this characteristic is not writable");
            }
            if (o.prepare_authorize) {
                return sd_bus_reply_method_return(m, "");  // authorisation only; data follows
            }
            if (o.device.empty()) {
                return dbus::reply_error(ret, kErrFailed, "no device option");
            }
            LinkTable::Link& link = app.links_.touch(o.device, o.mtu);
            link.incomplete.reset();  // this write completes, continues or replaces the frame
            const std::size_t held = link.command.size();
            WriteOutcome out = link.command.write(o.offset, value);
            switch (out.kind) {
                case WriteOutcome::Kind::InvalidOffset: {
                    const std::string why = "offset " + std::to_string(o.offset) +
                                            " does not continue the " + std::to_string(held) +
                                            " bytes received";
                    log(app, LogLevel::Debug,
                        "command write from " + o.device + ": " + why + "; partial frame dropped");
                    if (app.hooks_.on_bad_write) {
                        app.hooks_.on_bad_write(o.device, "command write refused: " + why);
                    }
                    return dbus::reply_error(ret, kErrInvalidOffset, why);
                }
                case WriteOutcome::Kind::TooLong: {
                    const std::string why = "a command frame is at most " +
                                            std::to_string(core::protocol::kMaxFrame) + " bytes";
                    if (app.hooks_.on_bad_write) {
                        app.hooks_.on_bad_write(o.device, "command write refused: " + why);
                    }
                    return dbus::reply_error(ret, kErrInvalidValueLength, why);
                }
                case WriteOutcome::Kind::Partial: {
                    // The Source lives in the link: dropping the link cancels it.
                    GattApp* self = &app;
                    link.incomplete = app.loop_.add_timer_relative(
                        kIncompleteFrameTimeout,
                        [self, device = o.device] { self->frame_timed_out(device); });
                    return sd_bus_reply_method_return(m, "");
                }
                case WriteOutcome::Kind::Complete:
                    break;
            }
            app.hand_off(o.device, link.generation, std::move(out.frame), {});
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int start_notify(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        auto& c = *static_cast<GattApp::Chrc*>(userdata);
        return guarded(c, ret, [&]() -> int {
            if (!trusted(*c.app, m)) {
                return dbus::reply_error(ret, kErrNotAuthorized, "only bluetoothd may do this");
            }
            c.app->set_notifying(true);
            return sd_bus_reply_method_return(m, "");
        });
    }

    static int stop_notify(sd_bus_message* m, void* userdata, sd_bus_error* ret) {
        auto& c = *static_cast<GattApp::Chrc*>(userdata);
        return guarded(c, ret, [&]() -> int {
            if (!trusted(*c.app, m)) {
                return dbus::reply_error(ret, kErrNotAuthorized, "only bluetoothd may do this");
            }
            c.app->set_notifying(false);
            return sd_bus_reply_method_return(m, "");
        });
    }

    // --- property getters ---

    static int service_uuid(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                            const char* /*prop*/, sd_bus_message* reply, void* /*userdata*/,
                            sd_bus_error* /*ret*/) {
        const std::string uuid(core::protocol::kServiceUuid);
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_STRING, uuid.c_str());
    }

    static int service_primary(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                               const char* /*prop*/, sd_bus_message* reply, void* /*userdata*/,
                               sd_bus_error* /*ret*/) {
        const int yes = 1;
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_BOOLEAN, &yes);
    }

    static int chrc_uuid(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                         const char* /*prop*/, sd_bus_message* reply, void* userdata,
                         sd_bus_error* /*ret*/) {
        const auto& c = *static_cast<GattApp::Chrc*>(userdata);
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_STRING, c.uuid.c_str());
    }

    static int chrc_service(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                            const char* /*prop*/, sd_bus_message* reply, void* userdata,
                            sd_bus_error* /*ret*/) {
        const auto& c = *static_cast<GattApp::Chrc*>(userdata);
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_OBJECT_PATH,
                                           c.app->service_path_.c_str());
    }

    static int chrc_flags(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                          const char* /*prop*/, sd_bus_message* reply, void* userdata,
                          sd_bus_error* /*ret*/) {
        const auto& c = *static_cast<GattApp::Chrc*>(userdata);
        try {
            dbus::append_strings(reply, c.flags);
        } catch (const dbus::BusError& e) {
            return -(e.code() != 0 ? e.code() : EINVAL);
        }
        return 1;
    }

    static int chrc_notifying(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                              const char* /*prop*/, sd_bus_message* reply, void* userdata,
                              sd_bus_error* /*ret*/) {
        const auto& c = *static_cast<GattApp::Chrc*>(userdata);
        const int on = c.app->notifying_ ? 1 : 0;
        return sd_bus_message_append_basic(reply, SD_BUS_TYPE_BOOLEAN, &on);
    }

    // Value is per device (each phone has its own last result), so a property Get,
    // which has no device, sees an empty value; new values are only signalled.
    static int chrc_value(sd_bus* /*bus*/, const char* /*path*/, const char* /*iface*/,
                          const char* /*prop*/, sd_bus_message* reply, void* /*userdata*/,
                          sd_bus_error* /*ret*/) {
        return sd_bus_message_append_array(reply, SD_BUS_TYPE_BYTE, nullptr, 0);
    }
};

namespace {

// Every method is UNPRIVILEGED: the callers are checked against the org.bluez
// owner instead (see add_object in bus.h).
constexpr std::uint64_t kMethodFlags = SD_BUS_VTABLE_UNPRIVILEGED;

const sd_bus_vtable kServiceVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("UUID", "s", &GattDispatch::service_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Primary", "b", &GattDispatch::service_primary, 0,
                    SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_VTABLE_END,
};

const sd_bus_vtable kChrcVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("ReadValue", "a{sv}", SD_BUS_PARAM(options), "ay", SD_BUS_PARAM(value),
                             &GattDispatch::read_value, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("WriteValue", "aya{sv}", SD_BUS_PARAM(value) SD_BUS_PARAM(options), "",
                             , &GattDispatch::write_value, kMethodFlags),
    SD_BUS_PROPERTY("UUID", "s", &GattDispatch::chrc_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Service", "o", &GattDispatch::chrc_service, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Flags", "as", &GattDispatch::chrc_flags, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_VTABLE_END,
};

// The Result characteristic adds notifications.
const sd_bus_vtable kNotifyChrcVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("ReadValue", "a{sv}", SD_BUS_PARAM(options), "ay", SD_BUS_PARAM(value),
                             &GattDispatch::read_value, kMethodFlags),
    SD_BUS_METHOD_WITH_NAMES("WriteValue", "aya{sv}", SD_BUS_PARAM(value) SD_BUS_PARAM(options), "",
                             , &GattDispatch::write_value, kMethodFlags),
    SD_BUS_METHOD("StartNotify", "", "", &GattDispatch::start_notify, kMethodFlags),
    SD_BUS_METHOD("StopNotify", "", "", &GattDispatch::stop_notify, kMethodFlags),
    SD_BUS_PROPERTY("UUID", "s", &GattDispatch::chrc_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Service", "o", &GattDispatch::chrc_service, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Flags", "as", &GattDispatch::chrc_flags, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Notifying", "b", &GattDispatch::chrc_notifying, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Value", "ay", &GattDispatch::chrc_value, 0,
                    SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_VTABLE_END,
};

}  // namespace

GattApp::GattApp(sd_bus* bus, loop::EventLoop& loop, GattOptions options, Hooks hooks)
    : bus_(bus),
      loop_(loop),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      challenges_(options_.challenge_ttl_seconds),
      service_path_(options_.root + "/service0") {
    const bool bond = options_.require_bonding;
    using Kind = Chrc::Kind;
    auto add = [this](Kind kind, const char* leaf, std::string_view uuid,
                      std::vector<std::string> flags) {
        auto c = std::make_unique<Chrc>();
        c->app = this;
        c->kind = kind;
        c->path = service_path_ + "/" + leaf;
        c->uuid = std::string(uuid);
        c->flags = std::move(flags);
        chrcs_.push_back(std::move(c));
    };
    // Info stays readable before bonding so a phone can check it reached the right
    // Pi (its id is in the pairing code) before the OS pairing prompt.
    add(Kind::Info, "info", core::protocol::kInfoUuid, {"read"});
    add(Kind::Challenge, "challenge", core::protocol::kChallengeUuid,
        {bond ? "encrypt-authenticated-read" : "read"});
    add(Kind::Command, "command", core::protocol::kCommandUuid,
        {bond ? "encrypt-authenticated-write" : "write"});
    // Notifications go to every subscribed device, so with bonding required the
    // subscription (CCCD write) needs an authenticated link too.
    if (bond) {
        add(Kind::Result, "result", core::protocol::kResultUuid,
            {"encrypt-authenticated-read", "notify", "encrypt-authenticated-notify"});
    } else {
        add(Kind::Result, "result", core::protocol::kResultUuid, {"read", "notify"});
    }

    slots_.push_back(dbus::add_object_manager(bus_, options_.root));
    slots_.push_back(dbus::add_object(bus_, service_path_, kServiceIface, kServiceVtable, this));
    for (auto& c : chrcs_) {
        const sd_bus_vtable* vt = c->kind == Kind::Result ? kNotifyChrcVtable : kChrcVtable;
        slots_.push_back(dbus::add_object(bus_, c->path, kChrcIface, vt, c.get()));
    }
}

GattApp::~GattApp() {
    // Unexport before the characteristics the vtables point at go away.
    slots_.clear();
}

void GattApp::set_notifying(bool on) {
    if (notifying_ == on) {
        return;
    }
    notifying_ = on;
    GattDispatch::log(*this, LogLevel::Debug,
                      std::string("result notifications ") + (on ? "on" : "off"));
    const std::string& path = chrcs_.back()->path;
    dbus::emit_property_changed(bus_, path, kChrcIface, "Notifying", "b", [on](sd_bus_message* m) {
        const int v = on ? 1 : 0;
        dbus::check(sd_bus_message_append_basic(m, SD_BUS_TYPE_BOOLEAN, &v), "append Notifying");
    });
}

void GattApp::deliver_result(const std::string& device, std::uint64_t generation,
                             dbus::ByteView frame) {
    auto notes = links_.store_result(device, generation, frame, notifying_);
    if (!notes) {
        GattDispatch::log(*this, LogLevel::Debug,
                          "result for " + device + " dropped: its connection is gone");
        return;
    }
    const std::string& path = chrcs_.back()->path;
    try {
        for (const auto& fragment : *notes) {
            dbus::emit_property_changed(
                bus_, path, kChrcIface, "Value", "ay",
                [&fragment](sd_bus_message* m) { dbus::append_bytes(m, fragment); });
        }
    } catch (const dbus::BusError& e) {
        GattDispatch::log(*this, LogLevel::Warning,
                          "result notification to " + device + " failed: " + e.what());
    }
}

void GattApp::hand_off(const std::string& device, std::uint64_t generation, dbus::Bytes frame,
                       std::string incomplete) {
    CommandFrame cf;
    cf.device = device;
    cf.generation = generation;
    cf.frame = std::move(frame);
    cf.incomplete = std::move(incomplete);
    // Taken now, with the frame: a challenge read racing the hand-off below cannot
    // replace the one this frame was built with.
    cf.challenge = challenges_.take(device, hooks_.clock ? hooks_.clock() : 0);
    std::weak_ptr<bool> alive = alive_;
    loop_.post([alive, self = this, cf = std::move(cf)]() mutable {
        if (alive.expired() || !self->hooks_.on_command) {
            return;
        }
        try {
            self->hooks_.on_command(std::move(cf));
        } catch (const std::exception& e) {
            GattDispatch::log(*self, LogLevel::Error,
                              std::string("command hand-off failed: ") + e.what());
        }
    });
}

void GattApp::frame_timed_out(const std::string& device) {
    // A timer callback: nothing may escape into the loop (it would stop the daemon).
    try {
        LinkTable::Link* link = links_.find(device);
        if (link == nullptr) {
            return;
        }
        link->incomplete.reset();
        dbus::Bytes held = link->command.take();
        std::string detail = incomplete_frame_detail(held);
        // The daemon logs the answer with `detail`; this line is for tracing only.
        GattDispatch::log(*this, LogLevel::Debug,
                          "command write from " + device + ": " + detail + "; answering malformed");
        hand_off(device, link->generation, std::move(held), std::move(detail));
    } catch (const std::exception& e) {
        GattDispatch::log(*this, LogLevel::Error,
                          std::string("incomplete command frame not answered: ") + e.what());
    }
}

void GattApp::drop_device(const std::string& device) {
    links_.drop(device);
    challenges_.drop(device);
}

void GattApp::drop_all() {
    links_.clear();
    challenges_ = core::auth::ChallengeBook(options_.challenge_ttl_seconds);
    notifying_ = false;  // a new bluetoothd starts with no subscriptions
}

}  // namespace bzs::bluez
