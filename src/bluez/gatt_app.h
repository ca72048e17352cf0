// SPDX-License-Identifier: GPL-3.0-or-later
// The BlueZscript GATT service as a BlueZ external application (doc/gatt-api.txt):
// an ObjectManager at the application root, one primary service and four
// characteristics (Info, Challenge, Command, Result). docs/ble.md lists the objects.
//
// The first half of this header is pure (no D-Bus) and unit-tested: assembling
// request frames from long/offset writes, the per-device link table, and the Info
// value. The GattApp class exports the objects on a bus and applies them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bluez/peripheral.h"
#include "core/auth/challenge.h"
#include "core/protocol/protocol.h"
#include "core/protocol/sealed.h"
#include "dbus/bus.h"
#include "loop/event_loop.h"

namespace bzs::bluez {

// ---------------------------------------------------------------- pure parts

/// ATT's default MTU, used until BlueZ tells us the link's ("mtu" option).
inline constexpr std::uint16_t kDefaultAttMtu = 23;

/// How long a device's unfinished Command frame is held after its last write
/// (docs/protocol.md section 2): then the bytes are answered `malformed`, so a
/// write cut short never leaves the phone waiting for nothing.
inline constexpr std::chrono::seconds kIncompleteFrameTimeout{2};

/// Whether the bytes received so far hold a whole request frame.
enum class FrameProgress {
    NeedMore,  ///< a proper prefix of some valid frame: wait for more writes
    Complete,  ///< hand the bytes to the command service now (well-formed or not)
};

/// What the bytes received so far say about the frame they start.
struct FrameScan {
    FrameProgress progress = FrameProgress::NeedMore;
    /// NeedMore: the size of the shortest valid frame starting with these bytes.
    std::size_t at_least = 0;
};

/// Decides from the header alone (its length field; core::protocol::
/// request_progress) whether `buf` is complete. NeedMore exactly when `buf` is a
/// proper prefix that can still become a request frame; everything else is
/// Complete: a whole frame, and anything that can never become one (wrong
/// version or type, a length field out of range or below the type's minimum, more
/// bytes than the length announces), so the command service answers it at once
/// with a precise refusal.
FrameScan scan_request_frame(dbus::ByteView buf);
/// scan_request_frame(buf).progress.
FrameProgress request_frame_progress(dbus::ByteView buf);
/// The reason given when a held prefix times out, e.g. "frame incomplete 2 s after
/// its last write: 3 of at least 89 bytes".
std::string incomplete_frame_detail(dbus::ByteView held);

/// What one write to the Command characteristic did.
struct WriteOutcome {
    enum class Kind {
        Partial,        ///< stored; the frame is not complete yet
        Complete,       ///< `frame` holds the whole frame; the buffer is empty again
        InvalidOffset,  ///< offset is neither 0 nor the current length (buffer dropped)
        TooLong,        ///< offset + length exceeds kMaxFrame (buffer dropped)
    };
    Kind kind = Kind::Partial;
    dbus::Bytes frame;
};

/// Reassembles one device's request frame from writes that each carry an offset
/// (BlueZ passes the ATT offset of long/prepared writes as the "offset" option).
/// A write at offset 0 always starts a new frame, dropping any unfinished one (a
/// phone that gave up half-way must be able to start over without reconnecting);
/// any other offset must equal the number of bytes held.
class FrameAssembler {
  public:
    WriteOutcome write(std::size_t offset, dbus::ByteView chunk);
    void reset() { buf_.clear(); }
    /// The bytes held (an unfinished frame), leaving the assembler empty.
    dbus::Bytes take() { return std::exchange(buf_, {}); }
    [[nodiscard]] std::size_t size() const { return buf_.size(); }

  private:
    dbus::Bytes buf_;
};

/// The part of `value` a read at `offset` returns (ATT read blob semantics): empty
/// at offset == size, nullopt (InvalidOffset) beyond it.
std::optional<dbus::Bytes> slice_from(dbus::ByteView value, std::size_t offset);

/// What the Info characteristic says.
struct InfoFields {
    std::string pi_name;
    std::string pi_id_hex;   ///< 32 hex digits
    std::string pi_key_hex;  ///< 130 hex digits: the uncompressed P-256 public key
    std::int64_t time = 0;   ///< the verification clock
    bool synced = false;     ///< the system clock is synchronised
};
/// The Info characteristic's value (docs/protocol.md, "Info"):
/// {"v":2,"name":"..","pi":"..","pk":"..","time":N,"synced":B} as UTF-8 JSON (the
/// name escaped as JSON requires).
std::string info_json(const InfoFields& f);

/// Per-device state of the service, keyed by BlueZ device object path. An entry is
/// created on a device's first read or write and dropped when it disconnects; each
/// entry gets a new generation number, so a command's response that arrives after
/// the link it came from was dropped is recognised as stale.
class LinkTable {
  public:
    struct Link {
        std::uint64_t generation = 0;
        FrameAssembler command;
        dbus::Bytes last_result;  ///< the last response frame for this device
        std::uint16_t mtu = kDefaultAttMtu;
        std::optional<core::protocol::Nonce> last_challenge;  ///< for read-blob at offset > 0
        std::string last_info;  ///< the Info value read at offset 0, for read-blob
        /// Armed while `command` holds an unfinished frame (kIncompleteFrameTimeout);
        /// dropping the link cancels it.
        loop::Source incomplete;
    };

    /// The device's entry, created if absent; `mtu` (when given) updates its MTU.
    Link& touch(const std::string& device, std::optional<std::uint16_t> mtu);
    [[nodiscard]] Link* find(const std::string& device);
    /// Forgets the device; false when it had no entry.
    bool drop(const std::string& device);
    void clear() { links_.clear(); }
    [[nodiscard]] std::size_t size() const { return links_.size(); }

    /// Stores `frame` as the device's last result if the device's entry still has
    /// `generation`, and returns the notifications to send for it, in sending order
    /// (protocol::fragment at the link's MTU; none when `notifying` is false).
    /// nullopt when the entry is gone or newer: nothing is stored or sent.
    std::optional<std::vector<dbus::Bytes>> store_result(const std::string& device,
                                                         std::uint64_t generation,
                                                         dbus::ByteView frame, bool notifying);

  private:
    std::map<std::string, Link> links_;
    std::uint64_t next_generation_ = 1;
};

// ---------------------------------------------------------------- D-Bus objects

/// A complete request frame written by a device.
struct CommandFrame {
    std::string device;            ///< BlueZ device object path
    std::uint64_t generation = 0;  ///< of the device's link (for deliver_result)
    dbus::Bytes frame;
    /// The device's live challenge, taken (single use) when the frame completed.
    std::optional<core::protocol::Nonce> challenge;
    /// Empty for a frame the writes completed; else why the bytes were cut short
    /// (incomplete_frame_detail), for the log line.
    std::string incomplete;
};

struct GattOptions {
    std::string root = "/org/bluezscript/app";  ///< application root (ObjectManager)
    std::string pi_name;
    std::string pi_id_hex;
    std::string pi_key_hex;  ///< the Pi's public key, 130 hex digits
    bool require_bonding = true;
    std::int64_t challenge_ttl_seconds = 30;
};

/// The exported application. Objects are exported by the constructor and removed
/// by the destructor; registering with BlueZ is the owner's job (Peripheral).
class GattApp {
  public:
    struct Hooks {
        /// True when a method call comes from bluetoothd (the org.bluez owner).
        std::function<bool(sd_bus_message* m)> trusted;
        /// A complete frame; called from a later loop iteration than the write, so
        /// the write's reply reaches BlueZ before any resulting notification.
        std::function<void(CommandFrame frame)> on_command;
        /// A command write refused at the transport (bad offset, too long): the
        /// partial frame is dropped. `detail` names the problem, never the bytes.
        std::function<void(const std::string& device, const std::string& detail)> on_bad_write;
        /// Unix seconds (challenge lifetimes).
        std::function<std::int64_t()> clock;
        /// The verification clock and whether the system clock is synchronised,
        /// for Info; `clock` and "not synchronised" when unset.
        std::function<InfoClock()> info_clock;
        LogFn log;
    };

    /// Throws BusError if the objects cannot be exported.
    GattApp(sd_bus* bus, loop::EventLoop& loop, GattOptions options, Hooks hooks);
    ~GattApp();
    GattApp(const GattApp&) = delete;
    GattApp& operator=(const GattApp&) = delete;

    [[nodiscard]] const std::string& root() const { return options_.root; }
    [[nodiscard]] bool notifying() const { return notifying_; }

    /// Delivers a command's response: stored as the device's last result and, when
    /// notifications are on, sent as fragments, one PropertiesChanged(Value) each.
    /// Ignored (logged at debug) when the device's link is gone or newer.
    void deliver_result(const std::string& device, std::uint64_t generation, dbus::ByteView frame);
    /// Forgets everything about a device (disconnect): partial write, challenge,
    /// last result, MTU.
    void drop_device(const std::string& device);
    /// Forgets every device and the notification state (bluetoothd went away).
    void drop_all();

    /// Implementation detail shared with the vtable callbacks in gatt_app.cpp.
    struct Chrc;

  private:
    friend struct GattDispatch;
    void set_notifying(bool on);
    /// The Info value now.
    [[nodiscard]] std::string info_now() const;
    /// Hands `frame` to on_command from a later loop iteration, with the device's
    /// challenge taken now.
    void hand_off(const std::string& device, std::uint64_t generation, dbus::Bytes frame,
                  std::string incomplete);
    /// kIncompleteFrameTimeout after the last write of an unfinished frame.
    void frame_timed_out(const std::string& device);

    sd_bus* bus_;
    loop::EventLoop& loop_;
    GattOptions options_;
    Hooks hooks_;
    core::auth::ChallengeBook challenges_;
    LinkTable links_;
    bool notifying_ = false;
    std::string service_path_;
    std::vector<std::unique_ptr<Chrc>> chrcs_;
    std::vector<dbus::Slot> slots_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace bzs::bluez
