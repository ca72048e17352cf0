// SPDX-License-Identifier: GPL-3.0-or-later
#include "dbus/bus.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

namespace bzs::dbus {

namespace {

using SinkRef = std::shared_ptr<const ExceptionSink>;

void report(const SinkRef& sink, const std::exception& e) noexcept {
    try {
        if (sink && *sink) {
            (*sink)(e);
        }
    } catch (...) {
        // A failing sink must not take the loop down; nothing more can be done.
    }
}

std::string errno_text(int negative_errno) {
    return std::strerror(negative_errno < 0 ? -negative_errno : negative_errno);
}

// The callback travels to sd-bus as the slot's userdata and is freed by the slot's
// destroy callback, so it lives exactly as long as the slot (sd-bus keeps a slot
// alive while its callback runs, even if the owner destroys the Slot meanwhile).
// The Box also holds the sink of the Bus the callback was registered on.
template <class F>
struct Box {
    F fn;
    SinkRef sink;
};

template <class F>
void destroy_box(void* p) {
    delete static_cast<Box<F>*>(p);
}

template <class F>
Slot attach_box(sd_bus_slot* raw, std::unique_ptr<Box<F>>& box) {
    Slot slot(raw);
    check(sd_bus_slot_set_destroy_callback(raw, &destroy_box<F>),
          "sd_bus_slot_set_destroy_callback");
    (void)box.release();  // owned by the slot from now on
    return slot;
}

int reply_trampoline(sd_bus_message* m, void* userdata, sd_bus_error* /*ret*/) {
    auto* box = static_cast<Box<ReplyHandler>*>(userdata);
    try {
        const sd_bus_error* err = sd_bus_message_get_error(m);
        if (err != nullptr && sd_bus_error_is_set(err) != 0) {
            RemoteError e{err->name != nullptr ? err->name : "",
                          err->message != nullptr ? err->message : ""};
            box->fn(nullptr, &e);
        } else {
            box->fn(m, nullptr);
        }
    } catch (const std::exception& e) {
        report(box->sink, e);
    } catch (...) {
        report(box->sink, BusError("a D-Bus callback threw a non-standard exception", 0));
    }
    return 0;
}

int signal_trampoline(sd_bus_message* m, void* userdata, sd_bus_error* /*ret*/) {
    auto* box = static_cast<Box<SignalHandler>*>(userdata);
    try {
        box->fn(m);
    } catch (const std::exception& e) {
        report(box->sink, e);
    } catch (...) {
        report(box->sink, BusError("a D-Bus callback threw a non-standard exception", 0));
    }
    return 0;
}

// AddMatch failing (e.g. the bus refused the rule) is reported, not thrown: the
// match simply never fires, which the caller's log line then explains.
int on_match_installed(sd_bus_message* m, void* userdata, sd_bus_error* /*ret*/) {
    const sd_bus_error* err = sd_bus_message_get_error(m);
    if (err != nullptr && sd_bus_error_is_set(err) != 0) {
        report(static_cast<Box<SignalHandler>*>(userdata)->sink,
               BusError(std::string("AddMatch failed: ") +
                            (err->message != nullptr ? err->message : "unknown error"),
                        0));
    }
    return 0;
}

Message new_call(sd_bus* bus, const Target& t) {
    sd_bus_message* raw = nullptr;
    check(sd_bus_message_new_method_call(bus, &raw, t.destination.c_str(), t.path.c_str(),
                                         t.interface.c_str(), t.member.c_str()),
          "sd_bus_message_new_method_call");
    return Message::adopt(raw);
}

// Escapes a match-rule value: a quote ends the quoted string, so it is written as
// '\'' (close, escaped quote, reopen), as the D-Bus specification describes.
std::string quote_match_value(const std::string& v) {
    std::string out = "'";
    for (const char c : v) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    out += "'";
    return out;
}

bool variant_holds(sd_bus_message* m, const char* contents) {
    char type = 0;
    const char* inner = nullptr;
    const int r = sd_bus_message_peek_type(m, &type, &inner);
    check(r, "sd_bus_message_peek_type");
    if (r == 0 || type != SD_BUS_TYPE_VARIANT) {
        throw BusError("expected a variant", 0);
    }
    return inner != nullptr && std::strcmp(inner, contents) == 0;
}

template <class T>
std::optional<T> read_variant_basic(sd_bus_message* m, char type, const char* contents) {
    if (!variant_holds(m, contents)) {
        skip_value(m);
        return std::nullopt;
    }
    check(sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, contents), "enter variant");
    T v{};
    check(sd_bus_message_read_basic(m, type, &v), "read variant");
    check(sd_bus_message_exit_container(m), "exit variant");
    return v;
}

}  // namespace

BusError::BusError(const std::string& what, int negative_errno)
    : std::runtime_error(what), code_(negative_errno < 0 ? -negative_errno : negative_errno) {}

int check(int r, const char* what) {
    if (r < 0) {
        throw BusError(std::string(what) + ": " + errno_text(r), r);
    }
    return r;
}

// --- Bus ---

Bus& Bus::operator=(Bus&& o) noexcept {
    if (this != &o) {
        reset();
        bus_ = std::exchange(o.bus_, nullptr);
        sink_ = std::move(o.sink_);
    }
    return *this;
}

Bus Bus::open_system(const char* description) {
    sd_bus* raw = nullptr;
    check(sd_bus_open_system_with_description(&raw, description),
          "cannot connect to the system bus");
    return Bus(raw);
}

Bus Bus::open_address(const std::string& address, const char* description) {
    sd_bus* raw = nullptr;
    check(sd_bus_new(&raw), "sd_bus_new");
    Bus bus(raw);
    check(sd_bus_set_description(raw, description), "sd_bus_set_description");
    check(sd_bus_set_address(raw, address.c_str()), "sd_bus_set_address");
    check(sd_bus_set_bus_client(raw, 1), "sd_bus_set_bus_client");
    check(sd_bus_start(raw), "cannot connect to the bus");
    return bus;
}

void Bus::attach(sd_event* event) {
    check(sd_bus_attach_event(bus_, event, SD_EVENT_PRIORITY_NORMAL), "sd_bus_attach_event");
}

void Bus::reset() noexcept {
    if (bus_ != nullptr) {
        sd_bus_detach_event(bus_);
        sd_bus_flush_close_unref(bus_);
        bus_ = nullptr;
    }
}

std::string Bus::unique_name() const {
    const char* name = nullptr;
    if (bus_ == nullptr || sd_bus_get_unique_name(bus_, &name) < 0 || name == nullptr) {
        return {};
    }
    return name;
}

void Bus::set_exception_sink(ExceptionSink sink) {
    if (!sink_) {
        sink_ = std::make_shared<ExceptionSink>();  // moved from, then reused
    }
    *sink_ = std::move(sink);
}

std::shared_ptr<const ExceptionSink> Bus::exception_sink() const {
    return sink_;
}

// --- Slot ---

Slot& Slot::operator=(Slot&& o) noexcept {
    if (this != &o) {
        reset();
        slot_ = std::exchange(o.slot_, nullptr);
    }
    return *this;
}

void Slot::reset() noexcept {
    if (slot_ != nullptr) {
        sd_bus_slot_unref(slot_);
        slot_ = nullptr;
    }
}

// --- Message ---

Message Message::adopt(sd_bus_message* m) noexcept {
    Message out;
    out.msg_ = m;
    return out;
}

Message Message::ref(sd_bus_message* m) noexcept {
    Message out;
    out.msg_ = sd_bus_message_ref(m);
    return out;
}

Message& Message::operator=(Message&& o) noexcept {
    if (this != &o) {
        reset();
        msg_ = std::exchange(o.msg_, nullptr);
    }
    return *this;
}

Message::Message(const Message& o) noexcept : msg_(sd_bus_message_ref(o.msg_)) {}

Message& Message::operator=(const Message& o) noexcept {
    if (this != &o) {
        reset();
        msg_ = sd_bus_message_ref(o.msg_);
    }
    return *this;
}

void Message::reset() noexcept {
    if (msg_ != nullptr) {
        sd_bus_message_unref(msg_);
        msg_ = nullptr;
    }
}

// --- calls and matches ---

Slot call_async(const Bus& bus, const Target& target, const Builder& build, ReplyHandler on_reply,
                std::uint64_t timeout_usec) {
    Message m = new_call(bus.get(), target);
    if (build) {
        build(m.get());
    }
    auto box = std::make_unique<Box<ReplyHandler>>(
        Box<ReplyHandler>{std::move(on_reply), bus.exception_sink()});
    sd_bus_slot* raw = nullptr;
    check(sd_bus_call_async(bus.get(), &raw, m.get(), &reply_trampoline, box.get(), timeout_usec),
          "sd_bus_call_async");
    return attach_box(raw, box);
}

void call_no_reply(sd_bus* bus, const Target& target, const Builder& build) {
    Message m = new_call(bus, target);
    if (build) {
        build(m.get());
    }
    check(sd_bus_message_set_expect_reply(m.get(), 0), "sd_bus_message_set_expect_reply");
    check(sd_bus_send(bus, m.get(), nullptr), "sd_bus_send");
}

std::string MatchRule::to_string() const {
    std::string out;
    auto add = [&out](const char* key, const std::string& value) {
        if (value.empty()) {
            return;
        }
        if (!out.empty()) {
            out += ',';
        }
        out += key;
        out += '=';
        out += quote_match_value(value);
    };
    add("type", type);
    add("sender", sender);
    add("path", path);
    add("path_namespace", path_namespace);
    add("interface", interface);
    add("member", member);
    add("arg0", arg0);
    return out;
}

Slot add_match(const Bus& bus, const MatchRule& rule, SignalHandler on_signal) {
    auto box = std::make_unique<Box<SignalHandler>>(
        Box<SignalHandler>{std::move(on_signal), bus.exception_sink()});
    sd_bus_slot* raw = nullptr;
    const std::string text = rule.to_string();
    check(sd_bus_add_match_async(bus.get(), &raw, text.c_str(), &signal_trampoline,
                                 &on_match_installed, box.get()),
          "sd_bus_add_match_async");
    return attach_box(raw, box);
}

Slot watch_disconnect(const Bus& bus, std::function<void()> on_lost) {
    MatchRule local;
    local.sender = "org.freedesktop.DBus.Local";
    local.path = "/org/freedesktop/DBus/Local";
    local.interface = "org.freedesktop.DBus.Local";
    local.member = "Disconnected";
    return add_match(bus, local, [on_lost = std::move(on_lost)](sd_bus_message*) { on_lost(); });
}

Slot add_object(sd_bus* bus, const std::string& path, const std::string& interface,
                const sd_bus_vtable* vtable, void* userdata) {
    sd_bus_slot* raw = nullptr;
    check(sd_bus_add_object_vtable(bus, &raw, path.c_str(), interface.c_str(), vtable, userdata),
          "sd_bus_add_object_vtable");
    return Slot(raw);
}

Slot add_object_manager(sd_bus* bus, const std::string& path) {
    sd_bus_slot* raw = nullptr;
    check(sd_bus_add_object_manager(bus, &raw, path.c_str()), "sd_bus_add_object_manager");
    return Slot(raw);
}

int reply_error(sd_bus_error* ret, const char* name, const std::string& message) {
    return sd_bus_error_set(ret, name, message.c_str());
}

std::string sender_of(sd_bus_message* m) {
    const char* s = sd_bus_message_get_sender(m);
    return s != nullptr ? s : "";
}

// --- reading ---

std::string read_string(sd_bus_message* m, char type) {
    const char* s = nullptr;
    const int r = check(sd_bus_message_read_basic(m, type, &s), "read string");
    if (r == 0 || s == nullptr) {
        throw BusError("message ended before a string", 0);
    }
    return s;
}

bool read_bool(sd_bus_message* m) {
    int v = 0;
    if (check(sd_bus_message_read_basic(m, SD_BUS_TYPE_BOOLEAN, &v), "read boolean") == 0) {
        throw BusError("message ended before a boolean", 0);
    }
    return v != 0;
}

std::uint16_t read_u16(sd_bus_message* m) {
    std::uint16_t v = 0;
    if (check(sd_bus_message_read_basic(m, SD_BUS_TYPE_UINT16, &v), "read uint16") == 0) {
        throw BusError("message ended before a uint16", 0);
    }
    return v;
}

std::uint32_t read_u32(sd_bus_message* m) {
    std::uint32_t v = 0;
    if (check(sd_bus_message_read_basic(m, SD_BUS_TYPE_UINT32, &v), "read uint32") == 0) {
        throw BusError("message ended before a uint32", 0);
    }
    return v;
}

Bytes read_bytes(sd_bus_message* m) {
    const void* p = nullptr;
    std::size_t n = 0;
    check(sd_bus_message_read_array(m, SD_BUS_TYPE_BYTE, &p, &n), "read byte array");
    const auto* b = static_cast<const std::uint8_t*>(p);
    return n == 0 ? Bytes{} : Bytes(b, b + n);
}

std::vector<std::string> read_strings(sd_bus_message* m) {
    std::vector<std::string> out;
    check(sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "s"), "enter string array");
    for (;;) {
        const char* s = nullptr;
        const int r = check(sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &s), "read string");
        if (r == 0) {
            break;
        }
        out.emplace_back(s);
    }
    check(sd_bus_message_exit_container(m), "exit string array");
    return out;
}

void read_dict(sd_bus_message* m,
               const std::function<bool(const std::string& key, sd_bus_message* m)>& on_entry) {
    check(sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sv}"), "enter a{sv}");
    for (;;) {
        const int r = check(sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv"),
                            "enter dict entry");
        if (r == 0) {
            break;
        }
        const std::string key = read_string(m);
        if (!on_entry(key, m)) {
            skip_value(m);
        }
        check(sd_bus_message_exit_container(m), "exit dict entry");
    }
    check(sd_bus_message_exit_container(m), "exit a{sv}");
}

std::optional<bool> read_variant_bool(sd_bus_message* m) {
    auto v = read_variant_basic<int>(m, SD_BUS_TYPE_BOOLEAN, "b");
    if (!v) {
        return std::nullopt;
    }
    return *v != 0;
}

std::optional<std::uint16_t> read_variant_u16(sd_bus_message* m) {
    return read_variant_basic<std::uint16_t>(m, SD_BUS_TYPE_UINT16, "q");
}

std::optional<std::string> read_variant_string(sd_bus_message* m) {
    for (const char* t : {"s", "o"}) {
        if (variant_holds(m, t)) {
            check(sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, t), "enter variant");
            std::string s = read_string(m, t[0]);
            check(sd_bus_message_exit_container(m), "exit variant");
            return s;
        }
    }
    skip_value(m);
    return std::nullopt;
}

std::optional<std::vector<std::string>> read_variant_strings(sd_bus_message* m) {
    if (!variant_holds(m, "as")) {
        skip_value(m);
        return std::nullopt;
    }
    check(sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, "as"), "enter variant");
    auto v = read_strings(m);
    check(sd_bus_message_exit_container(m), "exit variant");
    return v;
}

std::string lower_ascii(std::string_view s) {
    std::string out(s);
    for (auto& ch : out) {
        if (ch >= 'A' && ch <= 'Z') {
            ch = static_cast<char>(ch - 'A' + 'a');
        }
    }
    return out;
}

std::optional<Bytes> read_variant_bytes(sd_bus_message* m) {
    if (!variant_holds(m, "ay")) {
        skip_value(m);
        return std::nullopt;
    }
    check(sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, "ay"), "enter variant");
    Bytes b = read_bytes(m);
    check(sd_bus_message_exit_container(m), "exit variant");
    return b;
}

void skip_value(sd_bus_message* m) {
    char type = 0;
    const char* contents = nullptr;
    const int r = check(sd_bus_message_peek_type(m, &type, &contents), "sd_bus_message_peek_type");
    if (r == 0) {
        throw BusError("message ended before the value to skip", 0);
    }
    // sd_bus_message_skip wants the full signature of the value: the type code for
    // basic types, the code plus contents for containers.
    std::string sig(1, type);
    if (type == SD_BUS_TYPE_ARRAY) {
        sig += contents;
    } else if (type == SD_BUS_TYPE_STRUCT) {
        sig = std::string("(") + contents + ")";
    } else if (type == SD_BUS_TYPE_DICT_ENTRY) {
        sig = std::string("{") + contents + "}";
    }
    check(sd_bus_message_skip(m, sig.c_str()), "sd_bus_message_skip");
}

// --- writing ---

void append_bytes(sd_bus_message* m, ByteView value) {
    check(sd_bus_message_append_array(m, SD_BUS_TYPE_BYTE, value.data(), value.size()),
          "append byte array");
}

void append_strings(sd_bus_message* m, const std::vector<std::string>& values) {
    check(sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "s"), "open string array");
    for (const auto& v : values) {
        check(sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, v.c_str()), "append string");
    }
    check(sd_bus_message_close_container(m), "close string array");
}

void append_empty_dict(sd_bus_message* m) {
    check(sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "{sv}"), "open a{sv}");
    check(sd_bus_message_close_container(m), "close a{sv}");
}

void emit_property_changed(sd_bus* bus, const std::string& path, const std::string& interface,
                           const std::string& property, const char* signature,
                           const Builder& append_value) {
    sd_bus_message* raw = nullptr;
    check(sd_bus_message_new_signal(bus, &raw, path.c_str(), "org.freedesktop.DBus.Properties",
                                    "PropertiesChanged"),
          "sd_bus_message_new_signal");
    Message m = Message::adopt(raw);
    check(sd_bus_message_append_basic(raw, SD_BUS_TYPE_STRING, interface.c_str()),
          "append interface");
    check(sd_bus_message_open_container(raw, SD_BUS_TYPE_ARRAY, "{sv}"), "open a{sv}");
    check(sd_bus_message_open_container(raw, SD_BUS_TYPE_DICT_ENTRY, "sv"), "open entry");
    check(sd_bus_message_append_basic(raw, SD_BUS_TYPE_STRING, property.c_str()),
          "append property name");
    check(sd_bus_message_open_container(raw, SD_BUS_TYPE_VARIANT, signature), "open variant");
    append_value(raw);
    check(sd_bus_message_close_container(raw), "close variant");
    check(sd_bus_message_close_container(raw), "close entry");
    check(sd_bus_message_close_container(raw), "close a{sv}");
    append_strings(raw, {});
    check(sd_bus_send(bus, raw, nullptr), "send PropertiesChanged");
}

}  // namespace bzs::dbus
