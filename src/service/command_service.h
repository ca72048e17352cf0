// SPDX-License-Identifier: GPL-3.0-or-later
// One request, end to end, independent of the transport: authorise the frame
// (state and audit committed first); for a command run the action and complete
// the audit row, for a catalogue request list the device's actions, for a pair
// request answer with the confirmation; hand back the response frame, sealed for
// the device when its request authenticated and a plain refusal otherwise. BLE, tests and
// benchmarks all go through it. It also keeps what spans commands in memory: the limits on
// unauthenticated traffic (core::auth::Throttle) and the verification clock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actions/registry.h"
#include "actions/runner.h"
#include "core/auth/throttle.h"
#include "core/auth/verification_clock.h"
#include "core/auth/verifier.h"
#include "core/protocol/protocol.h"
#include "store/store.h"

namespace bzs::service {

/// What the transport knows about the sender.
struct CommandContext {
    std::string transport = "ble";
    std::optional<core::protocol::Nonce> challenge;  ///< live challenge issued to this link
    /// The connection the frame came on (BLE: the BlueZ device object path); the
    /// unit of the per-link limit. Empty: all such frames share one limit.
    std::string link;
    /// The sender's BLE address ("AA:BB:CC:DD:EE:FF"), empty when unknown; stored
    /// as the device's address when its command is accepted (bond removal on revoke).
    std::string address;
};

/// What a request asked for.
enum class RequestKind { Command, Catalogue, Pair };

/// What happened, for the transport's log line (never contains secrets).
struct CommandOutcome {
    RequestKind kind = RequestKind::Command;
    core::protocol::Status status = core::protocol::Status::Malformed;
    std::string action;
    std::string device_name;
    std::string detail;
    /// Refused on the cheap path (a limit): not audited one by one but counted
    /// in a summary row (CommandService::flush), so log it quietly.
    bool summarised = false;
    /// Seconds the unsynchronised verification clock moved forward for this frame.
    std::optional<std::uint64_t> clock_advanced_by;
};

/// The verification clock as the service sees it now.
struct ClockReading {
    std::int64_t now = 0;      ///< V, unix seconds
    bool synchronized = true;  ///< the system clock is synchronised
    std::uint64_t offset = 0;  ///< seconds V is ahead of the system clock
};

/// One summary row flush() wrote (or failed to write).
struct FlushedSummary {
    std::string detail;                ///< "1234 frames refused in 60 s from ..."
    std::optional<std::string> error;  ///< why the audit row could not be written
};

class CommandService {
  public:
    using Clock = std::function<std::int64_t()>;
    /// Whether the system clock is synchronised (util::wall_clock_synchronized).
    using SyncProbe = std::function<bool()>;
    /// Receives the encoded response frame, exactly once per handled request.
    using Reply =
        std::function<void(const core::protocol::Bytes& response, const CommandOutcome& outcome)>;

    /// Reads the persisted clock floor from `store` (StoreError if it cannot).
    /// `synchronized` defaults to "always synchronised".
    CommandService(store::Store& store, std::shared_ptr<const actions::Registry> registry,
                   actions::Runner& runner, core::auth::Policy policy, Clock clock,
                   SyncProbe synchronized = nullptr);

    /// Replaces the actions (after SIGHUP); running actions are not affected.
    void set_registry(std::shared_ptr<const actions::Registry> registry);

    /// Authorises and, if accepted, starts the action. `reply` is called at once
    /// for refusals and when the action ends otherwise. A link over its limit, or
    /// (while the Pi-wide limit is on) a frame that does not authenticate, is
    /// answered `rate_limited` at once with no database write and counted for
    /// flush() instead of audited.
    void handle(core::protocol::ByteView frame, const CommandContext& ctx, const Reply& reply);

    /// What bad_write did with a refused write.
    enum class BadWrite {
        Audited,     ///< its own audit row (status malformed)
        Summarised,  ///< over a limit: counted for flush()'s summary row
        AuditFailed  ///< the audit row could not be written
    };
    /// A write refused before it formed a frame (bad offset, too long): counted
    /// against `link`'s limit like any unauthenticated frame. Audited (status
    /// malformed, `detail` and `peer`) while the link and the Pi are under their
    /// limits; otherwise only counted for flush(). Never throws.
    BadWrite bad_write(const std::string& link, const std::string& peer, const std::string& detail);

    /// Writes one audit row (status rate_limited) per link, or Pi-wide, whose
    /// one-minute summary window has ended; `all`: every pending summary (at
    /// shutdown). Call it from a timer. Never throws.
    std::vector<FlushedSummary> flush(bool all = false);

    /// The verification clock now (Info and every sealed response carry it).
    ClockReading clock();

    [[nodiscard]] const core::auth::Throttle& throttle() const { return throttle_; }

  private:
    void refuse_cheaply(const std::string& why, const Reply& reply);

    store::Store& store_;
    std::shared_ptr<const actions::Registry> registry_;
    actions::Runner& runner_;
    core::auth::Policy policy_;
    Clock clock_;
    SyncProbe synchronized_;
    core::auth::Throttle throttle_;
    core::auth::VerificationClock vclock_;
};

}  // namespace bzs::service
