// SPDX-License-Identifier: GPL-3.0-or-later
// One command exchange of the client with a connected Pi (docs/protocol.md section
// 11), independent of D-Bus: it drives a GattTransport (BlueZ in trigger.cpp, a
// fake Pi in the unit tests) on the event loop.
//
//   read Info (is it our Pi?) -> subscribe to Result -> read Challenge
//   -> reserve and store the next counter -> write the request to Command
//   -> wait for the Result notifications (reassembled), or read Result when they
//      do not come -> verify MAC, counter and tag -> outcome
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

#include "core/protocol/pairing_uri.h"
#include "core/protocol/protocol.h"
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

/// What to send, and to whom.
struct ExchangeRequest {
    core::protocol::Pairing pairing;
    std::string action;
    std::vector<std::string> args;
};

struct ExchangeTiming {
    /// Silence after the write (or between fragments) before Result is read instead.
    std::chrono::milliseconds notify_grace{5000};
    /// Interval of the further Result reads while the action still runs.
    std::chrono::milliseconds reread_interval{10000};
    /// How long to wait for the answer after the command was written.
    std::chrono::milliseconds response_timeout{60000};
};

struct ExchangeHooks {
    /// Reserves the next counter: stores it durably, then returns it. Throws
    /// (std::exception) when it cannot be stored; nothing is sent then.
    std::function<std::uint64_t()> reserve_counter;
    /// The Pi accepted a command sent at TOTP step `step` (status 0x00..0x0F).
    std::function<void(std::int64_t step)> accepted;
    /// Unix seconds (the request's timestamp and TOTP time).
    std::function<std::int64_t()> clock;
    /// Progress lines for people ("bonding with the Pi...").
    std::function<void(const std::string& line)> notice;
};

/// How an exchange (or a whole trigger) ended.
struct ExchangeOutcome {
    TriggerExit exit = TriggerExit::Ok;
    /// The device answered Info with another Pi id: try another device.
    bool wrong_pi = false;
    /// The command frame was written (the action may have run even without an answer).
    bool command_sent = false;
    std::optional<core::protocol::Status> status;  ///< of an authenticated answer
    std::int32_t action_exit = 0;                  ///< of an authenticated answer
    std::string output;                            ///< the action's output, for stdout
    std::string message;                           ///< for stderr; empty when all went well
};

/// Pure: the outcome an authenticated response means, for action `action`.
ExchangeOutcome outcome_of(const core::protocol::Response& response, std::string_view action);

/// Pure: the verdict on a complete response frame for the request sent with
/// `counter` and `tag` (the first 16 bytes of its MAC).
struct ResponseCheck {
    enum class Verdict {
        Accepted,          ///< MAC verified, counter and tag are ours
        NotAuthenticated,  ///< counter and tag are ours but the MAC does not verify (or is zero)
        Stale,             ///< an answer to another request (older, or another device's)
        Malformed,         ///< not a response frame
    };
    Verdict verdict = Verdict::Malformed;
    std::optional<core::protocol::Response> response;  ///< set for Accepted
    std::string detail;                                ///< for messages; never secret
};
ResponseCheck check_response(core::protocol::ByteView frame, core::protocol::ByteView response_key,
                             std::uint64_t counter,
                             const std::array<std::uint8_t, core::protocol::kTagLen>& tag);

/// Pure: checks an action name and arguments against the request rules of
/// docs/protocol.md section 3 before anything is sent. Returns a sentence naming
/// the problem, or an empty string.
std::string check_command(std::string_view action, const std::vector<std::string>& args);

/// Pure: parses the Info characteristic ({"v":1,"name":"...","pi":"<32 hex>"}).
struct PiInfo {
    std::string name;
    std::string pi_id_hex;  ///< lower case
};
std::optional<PiInfo> parse_info(core::protocol::ByteView value);

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
