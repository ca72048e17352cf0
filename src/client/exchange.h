// SPDX-License-Identifier: GPL-3.0-or-later
// One exchange of the client with a connected Pi in protocol v2
// (docs/design/protocol-v2.md), independent of D-Bus: it drives a GattTransport
// (BlueZ in trigger.cpp, a fake Pi in the unit tests) on the event loop.
//
//   read Info (is it our Pi? pairing: is it the key of the link?) -> subscribe to
//   Result -> per request: read Challenge -> reserve and store the next counter
//   -> seal and write the request to Command -> wait for the Result notifications
//   (reassembled), or read Result when they do not come -> open the answer with
//   the response key and this request's tag -> outcome (or the next catalogue page)
//
// Pairing: an ephemeral P-256 key, the secret derived with the Pi's key and the
// code, the Pi's confirmation compared in constant time, and only then stored. A
// lost pair result is recovered with a catalogue request under the new secret.
//
// An attribute that needs a bonded link makes the exchange ask the transport to
// bond once and start over from the subscription (with a fresh challenge and a
// new counter: a counter is never reused).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/crypto/crypto.h"
#include "core/protocol/catalogue.h"
#include "core/protocol/link.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/protocol.h"
#include "core/protocol/sealed.h"
#include "dbus/error.h"
#include "loop/event_loop.h"

namespace bzs::client {

/// Exit statuses of `bluezscript trigger` (docs/client.md lists them).
enum class TriggerExit : int {
    Ok = 0,                ///< the action ran and exited 0
    ActionFailed = 1,      ///< the action ran and failed, timed out, was busy or did not start
    Usage = 2,             ///< bad command line or local files (pairing store)
    Refused = 3,           ///< the Pi's verifier refused the command; nothing ran
    NotFound = 4,          ///< the Pi was not found, or did not answer in time
    Bluetooth = 5,         ///< no bus/bluetoothd/adapter, connection or bonding failed
    NotAuthenticated = 6,  ///< an answer came that is not verifiably from the Pi
    Interrupted = 130,     ///< SIGINT/SIGTERM
};

/// A failed D-Bus call into BlueZ (or a transport's equivalent), e.g.
/// {"org.bluez.Error.NotPermitted", "Not paired"}: the same type as dbus::RemoteError,
/// so a reply's error reaches the exchange without conversion.
using GattError = dbus::RemoteError;

/// True when `e` says the attribute needs an encrypted, authenticated (bonded) link:
/// BlueZ reports ATT "insufficient authentication/encryption" as NotPermitted
/// "Not paired" (5.66 create_gatt_dbus_error), or an ATT error 0x05/0x0f/0x0c.
bool is_bonding_required(const GattError& e);

/// True when a Device1.Pair() failure means the Pi (its agent) refused the bond.
bool is_bond_refusal(const GattError& e);

/// The user's message for a Device1.Pair() result: nullopt when the link is bonded
/// (success, or AlreadyExists), else why bonding failed.
std::optional<std::string> bond_failure(const GattError* err);

/// What the exchange needs from a connected Pi. Every operation is asynchronous: the
/// callback runs exactly once, later, from the event loop (never from inside the
/// call), unless the transport is destroyed first.
class GattTransport {
  public:
    enum class Chrc { Info, Challenge, Command, Result };
    /// On success `error` is null and `value` the attribute's value.
    using ReadDone =
        std::function<void(const core::protocol::Bytes& value, const GattError* error)>;
    using Done = std::function<void(const GattError* error)>;
    /// One notification of Result (a fragment, see protocol::fragment).
    using Notify = std::function<void(core::protocol::ByteView value)>;

    virtual ~GattTransport() = default;
    /// ReadValue of a characteristic (long reads are the transport's business).
    virtual void read(Chrc chrc, ReadDone done) = 0;
    /// Write with response to Command (a long write when the frame exceeds ATT_MTU-3).
    virtual void write_command(core::protocol::ByteView frame, Done done) = 0;
    /// Starts notifications of Result; `on_value` gets each one until the transport
    /// is destroyed.
    virtual void subscribe_result(Notify on_value, Done done) = 0;
    /// Whether this side holds a bond with the Pi.
    [[nodiscard]] virtual bool paired() const = 0;
    /// Bonds with the Pi (Device1.Pair with an agent registered for the duration).
    virtual void pair(Done done) = 0;
};

/// A pairing as this client holds it once the exchange confirmed it (the pairing
/// store's file, in memory). Everything but `secret` is public.
struct Credential {
    core::protocol::PiId pi_id{};
    std::string pi_name;
    core::protocol::PublicKey pi_public{};  ///< the Pi's static P-256 key (from Info)
    core::protocol::DeviceId device_id{};
    std::string label;                 ///< the owner's name for this device; may be empty
    core::crypto::SecretBytes secret;  ///< S, 32 bytes: the device secret (and TOTP key)
    core::crypto::TotpParams totp;
};

/// What an exchange asks of the Pi.
enum class ExchangeKind {
    Command,    ///< run `action` with `args` (type 0x01)
    Catalogue,  ///< read the actions this device may run, every page (type 0x02)
    Pair,       ///< the pairing exchange with the code of `link` (type 0x03)
};

/// What to send, and to whom.
struct ExchangeRequest {
    ExchangeKind kind = ExchangeKind::Command;
    Credential credential;                            ///< Command, Catalogue
    std::optional<core::protocol::PairingLink> link;  ///< Pair
    std::string action;                               ///< Command
    std::vector<std::string> args;                    ///< Command

    /// The Pi this request is for (from the link when pairing).
    [[nodiscard]] const std::string& pi_name() const;
    [[nodiscard]] const core::protocol::PiId& pi_id() const;
};

struct ExchangeTiming {
    /// Silence after the write (or between fragments) before Result is read instead.
    std::chrono::milliseconds notify_grace{5000};
    /// Interval of the further Result reads while the action still runs.
    std::chrono::milliseconds reread_interval{10000};
    /// How long to wait for the answer after a request was written.
    std::chrono::milliseconds response_timeout{60000};
};

struct ExchangeHooks {
    /// Reserves the next counter: stores it durably, then returns it. Throws
    /// (std::exception) when it cannot be stored; nothing is sent then. Not used by
    /// a pairing exchange.
    std::function<std::uint64_t()> reserve_counter;
    /// Pair only: stores the confirmed pairing, whose last used counter is `counter`
    /// (0, or 1 when a catalogue request confirmed it). Called once, before the
    /// outcome; throws (std::exception) when it cannot be stored.
    std::function<void(const Credential& credential, std::uint64_t counter)> store_pairing;
    /// Unix seconds (the request's timestamp and TOTP time).
    std::function<std::int64_t()> clock;
    /// Progress lines for people ("bonding with the Pi...").
    std::function<void(const std::string& line)> notice;
};

/// How an exchange (or a whole trigger) ended.
struct ExchangeOutcome {
    TriggerExit exit = TriggerExit::Ok;
    /// The device answered Info with another Pi id (or, pairing, another key): try
    /// another device.
    bool wrong_pi = false;
    /// A request was written (a command's action may have run even without an answer).
    bool command_sent = false;
    std::optional<core::protocol::Status> status;  ///< of an authenticated answer
    std::int32_t action_exit = 0;                  ///< of an authenticated answer
    std::string output;                            ///< the action's output, for stdout
    std::string message;                           ///< for stderr; empty when all went well
    /// From an authentic answer's clock fields: what is wrong with a clock, or empty.
    std::string clock_note;
    /// Catalogue: every entry, in the Pi's order.
    std::vector<core::protocol::CatalogueEntry> catalogue;
    /// Pair: the stored pairing (secret included: the caller wipes it with the outcome).
    std::optional<Credential> paired;
};

/// Pure: the outcome an authentic command result means, for action `action`.
ExchangeOutcome outcome_of(core::protocol::Status status, const core::protocol::CommandResult& r,
                           std::string_view action);

/// Pure: the verdict on a complete response frame for the request sent with
/// `counter` and `tag` (its last 16 bytes), which expects a response of `expected`.
struct ResponseCheck {
    enum class Verdict {
        Authentic,         ///< opened with the key, bound to this request
        Refusal,           ///< a plain refusal (0xFF) for this request: not authenticated
        NotAuthenticated,  ///< a sealed answer with our counter that does not open
        Stale,             ///< an answer to another request (older, or another device's)
        Malformed,         ///< not a response frame, or of another type
    };
    Verdict verdict = Verdict::Malformed;
    std::optional<core::protocol::OpenedResponse> response;  ///< set for Authentic
    std::uint8_t refusal = 0;  ///< the status byte of a Refusal (may be newer than Status)
    std::string detail;        ///< for messages; never secret
};
ResponseCheck check_response(core::protocol::ByteView frame, core::protocol::ResponseType expected,
                             core::protocol::ByteView response_key, std::uint64_t counter,
                             const core::protocol::SealTag& tag);

/// Pure: the snake_case name of a status byte, including statuses this build's
/// Status enum may not know yet (code_used 0x1D, code_expired 0x1E).
std::string status_byte_name(std::uint8_t status);

/// Pure: what the user should know about the clocks, from an authentic answer's
/// head and this computer's time: the Pi without network time and 2 min or more
/// away ("the Pi's clock is 3 h behind ..."), or a synchronised Pi 60 s or more away
/// from this computer ("your computer's clock is 5 min off"). Empty otherwise.
std::string clock_note(const core::protocol::ResponseHead& head, std::int64_t local_now);

/// Pure: checks an action name and arguments against the request rules before
/// anything is sent. Returns a sentence naming the problem, or an empty string.
std::string check_command(std::string_view action, const std::vector<std::string>& args);

/// Pure: parses the Info characteristic (protocol v2:
/// {"v":2,"name":"...","pi":"<32 hex>","pk":"<130 hex>","time":<int>,"synced":<bool>}).
struct PiInfo {
    int version = 0;  ///< "v"; only 2 is usable, the rest is then empty
    std::string name;
    std::string pi_id_hex;  ///< lower case
    core::protocol::PublicKey pi_public{};
    std::int64_t time = 0;
    bool synced = false;
};
std::optional<PiInfo> parse_info(core::protocol::ByteView value);

/// Pure: a command or catalogue request for `c`, sealed with `keys.request` and a
/// fresh random nonce. Throws std::invalid_argument for a body that breaks a rule.
core::protocol::Bytes seal_device_request(const Credential& c, const core::protocol::SealKeys& keys,
                                          std::uint64_t counter,
                                          const core::protocol::CommandBody& body);
core::protocol::Bytes seal_device_request(const Credential& c, const core::protocol::SealKeys& keys,
                                          std::uint64_t counter,
                                          const core::protocol::CatalogueBody& body);

class Exchange {
  public:
    using Done = std::function<void(const ExchangeOutcome& outcome)>;

    /// `transport` must outlive the Exchange. `done` is called once, from the loop.
    Exchange(loop::EventLoop& loop, GattTransport& transport, ExchangeRequest request,
             ExchangeHooks hooks, ExchangeTiming timing, Done done);
    ~Exchange();
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;

    void start();
    /// The connection to the Pi dropped: ends the exchange (unless it ended).
    void link_lost();
    [[nodiscard]] bool finished() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bzs::client
