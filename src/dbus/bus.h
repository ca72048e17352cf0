// SPDX-License-Identifier: GPL-3.0-or-later
// Small RAII helpers over sd-bus (libsystemd), shared by everything in src/bluez/
// that talks D-Bus: owning handles for connections, slots and messages, asynchronous
// calls and signal matches whose callbacks are std::functions, readers for the a{sv}
// dictionaries BlueZ uses everywhere, and the error conventions of method handlers.
//
// Nothing here knows about BlueZ. Everything is asynchronous: attach the Bus to the
// daemon's sd-event loop (Bus::attach) and no call ever blocks.
//
// Callback rules, common to call_async() and add_match():
//   - the callback runs from the event loop, never from inside the call that set it up;
//   - destroying the returned Slot cancels it: the callback will not run afterwards
//     (also safe from inside the callback itself);
//   - exceptions escaping a callback are caught and passed to the exception sink of
//     the Bus it was registered on (Bus::set_exception_sink), never through sd-bus's
//     C frames. The sink belongs to the connection, so two connections in one
//     process (the daemon's and a test's, say) report to their own owners.
#pragma once

#include <systemd/sd-bus.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dbus/error.h"

namespace bzs::dbus {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

/// A local sd-bus failure (out of memory, bad message, connection closed) or a
/// message that does not have the shape we expected. Remote D-Bus errors in method
/// replies are not exceptions: they reach the reply handler as a RemoteError.
class BusError : public std::runtime_error {
  public:
    /// `negative_errno` as sd-bus returns it (e.g. -ENOENT); 0 for shape errors.
    BusError(const std::string& what, int negative_errno);
    /// The positive errno, or 0.
    [[nodiscard]] int code() const { return code_; }

  private:
    int code_;
};

/// Returns `r` when >= 0, else throws BusError("<what>: <strerror>").
int check(int r, const char* what);

/// Receives exceptions that escaped a callback (see the rules at the top).
using ExceptionSink = std::function<void(const std::exception& e)>;

/// Owning handle of one sd-bus connection: flushed, closed and released on destruction.
class Bus {
  public:
    Bus() = default;
    /// Takes ownership of `b` (may be null).
    explicit Bus(sd_bus* b) noexcept : bus_(b) {}
    ~Bus() { reset(); }
    Bus(Bus&& o) noexcept : bus_(o.bus_), sink_(std::move(o.sink_)) { o.bus_ = nullptr; }
    Bus& operator=(Bus&& o) noexcept;
    Bus(const Bus&) = delete;
    Bus& operator=(const Bus&) = delete;

    /// Connects to the system bus (honours DBUS_SYSTEM_BUS_ADDRESS). `description`
    /// names the connection in sd-bus debug output. Throws BusError, e.g. with
    /// ENOENT when no bus daemon listens.
    static Bus open_system(const char* description);
    /// Connects to the bus at `address` ("unix:path=/run/...") as a bus client.
    static Bus open_address(const std::string& address, const char* description);

    /// Lets `event` dispatch this connection (sd_bus_attach_event).
    void attach(sd_event* event);
    /// Flushes, closes and releases the connection (no-op when empty).
    void reset() noexcept;
    /// This connection's unique name (":1.42"); empty until the bus has answered Hello.
    [[nodiscard]] std::string unique_name() const;

    /// Sets where exceptions escaping the call_async/add_match callbacks of this
    /// connection go (default: dropped), also for callbacks registered before; pass
    /// nullptr to clear it. The sink moves with the Bus.
    void set_exception_sink(ExceptionSink sink);
    /// The sink's holder, shared with the callbacks registered on this connection
    /// (they may outlive the Bus by a dispatch; they then find it cleared or intact).
    [[nodiscard]] std::shared_ptr<const ExceptionSink> exception_sink() const;

    [[nodiscard]] sd_bus* get() const { return bus_; }
    [[nodiscard]] explicit operator bool() const { return bus_ != nullptr; }

  private:
    sd_bus* bus_ = nullptr;
    std::shared_ptr<ExceptionSink> sink_ = std::make_shared<ExceptionSink>();
};

/// Owning handle of an sd_bus_slot: a signal match, a pending call or an exported
/// object (vtable, object manager). Destroying it removes the match, cancels the
/// call or unexports the object.
class Slot {
  public:
    Slot() = default;
    explicit Slot(sd_bus_slot* s) noexcept : slot_(s) {}
    ~Slot() { reset(); }
    Slot(Slot&& o) noexcept : slot_(o.slot_) { o.slot_ = nullptr; }
    Slot& operator=(Slot&& o) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

    void reset() noexcept;
    [[nodiscard]] sd_bus_slot* get() const { return slot_; }
    [[nodiscard]] explicit operator bool() const { return slot_ != nullptr; }

  private:
    sd_bus_slot* slot_ = nullptr;
};

/// Reference-counted handle of an sd_bus_message.
class Message {
  public:
    Message() = default;
    /// Takes over the caller's reference.
    static Message adopt(sd_bus_message* m) noexcept;
    /// Adds a reference.
    static Message ref(sd_bus_message* m) noexcept;
    ~Message() { reset(); }
    Message(Message&& o) noexcept : msg_(o.msg_) { o.msg_ = nullptr; }
    Message& operator=(Message&& o) noexcept;
    Message(const Message& o) noexcept;
    Message& operator=(const Message& o) noexcept;

    void reset() noexcept;
    [[nodiscard]] sd_bus_message* get() const { return msg_; }
    [[nodiscard]] explicit operator bool() const { return msg_ != nullptr; }

  private:
    sd_bus_message* msg_ = nullptr;
};

/// Where a method call goes.
struct Target {
    std::string destination;  ///< bus name (well-known or unique)
    std::string path;
    std::string interface;
    std::string member;
};

/// Appends a call's arguments (may be empty for calls without arguments).
using Builder = std::function<void(sd_bus_message* m)>;
/// The outcome of an asynchronous call: on success `error` is null and `reply` is
/// the method return (positioned at its first argument); on failure (remote error,
/// timeout, lost connection) `error` is set and `reply` must not be read.
using ReplyHandler = std::function<void(sd_bus_message* reply, const RemoteError* error)>;
/// A received signal.
using SignalHandler = std::function<void(sd_bus_message* m)>;
/// Sends a method call and calls `on_reply` exactly once, unless the Slot is
/// destroyed first. `timeout_usec` 0 is sd-bus's default (25 s). Throws BusError
/// when the call cannot even be queued.
Slot call_async(const Bus& bus, const Target& target, const Builder& build, ReplyHandler on_reply,
                std::uint64_t timeout_usec = 0);

/// Sends a method call whose reply does not matter (NO_REPLY_EXPECTED). Throws
/// BusError when it cannot be queued.
void call_no_reply(sd_bus* bus, const Target& target, const Builder& build);

/// The fields of a match rule; empty fields are left out.
struct MatchRule {
    std::string type = "signal";
    std::string sender;
    std::string path;
    std::string path_namespace;
    std::string interface;
    std::string member;
    std::string arg0;
    /// "type='signal',sender='org.bluez',..." with quotes escaped as D-Bus expects.
    [[nodiscard]] std::string to_string() const;
};

/// Installs `rule` (AddMatch sent asynchronously, so this never blocks) and calls
/// `on_signal` for every matching message until the Slot is destroyed. Throws
/// BusError when the match cannot be set up locally.
Slot add_match(const Bus& bus, const MatchRule& rule, SignalHandler on_signal);

/// Calls `on_lost` when the connection drops (the org.freedesktop.DBus.Local
/// Disconnected signal sd-bus synthesises), until the Slot is destroyed.
Slot watch_disconnect(const Bus& bus, std::function<void()> on_lost);

/// Exports `vtable` for `interface` at `path` with `userdata` passed to its
/// handlers (sd_bus_add_object_vtable). `vtable` and `userdata` must outlive the
/// Slot. On the system bus sd-bus only lets privileged peers call methods unless
/// they are flagged SD_BUS_VTABLE_UNPRIVILEGED; bluetoothd lacks CAP_SYS_ADMIN, so
/// our methods carry that flag and check the caller themselves. Throws BusError.
Slot add_object(sd_bus* bus, const std::string& path, const std::string& interface,
                const sd_bus_vtable* vtable, void* userdata);

/// Serves org.freedesktop.DBus.ObjectManager at `path` for the objects below it.
Slot add_object_manager(sd_bus* bus, const std::string& path);

/// For method and property handlers: fills `ret` with the named error and returns
/// the negative value the handler must return.
int reply_error(sd_bus_error* ret, const char* name, const std::string& message);

/// The unique name of the message's sender ("" when absent).
std::string sender_of(sd_bus_message* m);

// --- reading messages (all throw BusError when the message has another shape) ---

/// Reads a basic 's' (or, with type 'o', an object path; 'g' a signature).
std::string read_string(sd_bus_message* m, char type = 's');
bool read_bool(sd_bus_message* m);
std::uint16_t read_u16(sd_bus_message* m);
std::uint32_t read_u32(sd_bus_message* m);
/// Reads an 'ay'.
Bytes read_bytes(sd_bus_message* m);
/// Reads an 'as'.
std::vector<std::string> read_strings(sd_bus_message* m);

/// Reads an a{sv} dictionary. For each entry `on_entry(key, m)` is called with `m`
/// positioned at the variant; it returns true when it consumed the variant (with
/// one of the read_variant_* below) and false to have it skipped.
void read_dict(sd_bus_message* m,
               const std::function<bool(const std::string& key, sd_bus_message* m)>& on_entry);

/// Variant readers: consume one variant. They return nullopt (the variant is then
/// skipped) when it holds another type, so a peer sending an unexpected type for an
/// optional field is ignored rather than fatal.
std::optional<bool> read_variant_bool(sd_bus_message* m);
std::optional<std::uint16_t> read_variant_u16(sd_bus_message* m);
/// Accepts 's' and 'o'.
std::optional<std::string> read_variant_string(sd_bus_message* m);
std::optional<Bytes> read_variant_bytes(sd_bus_message* m);
/// A variant holding 'as' (UUID lists, for example).
std::optional<std::vector<std::string>> read_variant_strings(sd_bus_message* m);

/// ASCII lower case: BlueZ reports UUIDs in lower case, other peers may not.
std::string lower_ascii(std::string_view s);

/// Skips the next complete value of any type.
void skip_value(sd_bus_message* m);

// --- writing messages ---

/// Appends an 'ay'.
void append_bytes(sd_bus_message* m, ByteView value);
/// Appends an 'as'.
void append_strings(sd_bus_message* m, const std::vector<std::string>& values);
/// Appends an empty a{sv} (options dictionaries nobody needs to fill).
void append_empty_dict(sd_bus_message* m);

/// Emits org.freedesktop.DBus.Properties.PropertiesChanged on `path` for `interface`
/// with one changed property whose value `append_value` appends inside the variant
/// of signature `signature`. Throws BusError.
void emit_property_changed(sd_bus* bus, const std::string& path, const std::string& interface,
                           const std::string& property, const char* signature,
                           const Builder& append_value);

}  // namespace bzs::dbus
