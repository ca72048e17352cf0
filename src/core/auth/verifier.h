// SPDX-License-Identifier: GPL-3.0-or-later
// The verifier: a pure function of (frame, device record, clock, replay and rate
// state) that accepts a command or names the one reason it is refused. It performs
// no I/O; callers persist the new state it returns before anything runs.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>

#include "core/crypto/crypto.h"
#include "core/protocol/protocol.h"

namespace bzs::core::auth {

using protocol::DeviceId;
using protocol::Nonce;
using protocol::Status;

/// A paired device as the verifier needs it. The secret is decrypted by the store.
struct DeviceRecord {
    DeviceId id{};
    std::string name;
    bool revoked = false;
    crypto::SecretBytes secret;
    crypto::TotpParams totp;
    std::set<std::string> permitted_actions;
};

/// Replay state of one device, advanced only by accepted commands.
struct ReplayState {
    std::int64_t last_totp_step = std::numeric_limits<std::int64_t>::min();
    std::uint64_t last_counter = 0;
};

/// Failure tracking of one device.
struct DeviceRateState {
    std::uint32_t consecutive_failures = 0;
    std::uint32_t lockouts = 0;     ///< lockouts since the last success (drives back-off)
    std::int64_t locked_until = 0;  ///< unix seconds; 0 = not locked
};

/// Pi-wide attempt and failure counting in fixed one-minute windows.
struct GlobalRateState {
    std::int64_t window_start = 0;
    std::uint32_t attempts = 0;
    std::uint32_t failures = 0;
    std::int64_t locked_until = 0;
};

/// Rate-limit numbers (docs/configuration.md, [limits]).
struct RateLimitPolicy {
    std::uint32_t device_max_failures = 5;     ///< consecutive failures before a lockout
    std::int64_t device_lockout_seconds = 30;  ///< first lockout; doubles each time
    std::int64_t device_lockout_max_seconds = 3600;
    std::uint32_t global_max_attempts_per_minute = 120;
    std::uint32_t global_max_failures_per_minute = 30;  ///< then all devices wait
    std::int64_t global_lockout_seconds = 60;
};

/// Verification policy (docs/configuration.md, [security]).
struct Policy {
    std::int64_t max_clock_skew_seconds = 300;
    int totp_window = 1;
    bool require_challenge = true;  ///< refuse requests without the issued challenge
    RateLimitPolicy limits;
};

/// What the verifier needs to know about an action.
struct ActionRules {
    bool allow_args = false;
    std::optional<std::string> arg_pattern;  ///< ECMAScript regex each argument must fully match
    std::size_t max_args = protocol::kMaxArgs;
};
using ActionLookup = std::function<std::optional<ActionRules>(const std::string& name)>;

struct VerifyInput {
    std::int64_t now = 0;                  ///< injected clock (unix seconds)
    const DeviceRecord* device = nullptr;  ///< nullptr when the frame's device id is unknown
    ReplayState replay;
    DeviceRateState device_rate;
    GlobalRateState global_rate;
    std::optional<Nonce> expected_challenge;  ///< the live challenge issued to this link
    ActionLookup actions;
    Policy policy;
};

struct Decision {
    Status status = Status::Malformed;  ///< Status::Ok means accepted
    std::string detail;                 ///< for the audit log; never contains secrets
    std::optional<protocol::Request> request;
    std::optional<std::int64_t> matched_step;
    /// True once the request MAC verified. Only then may the Pi MAC its answer:
    /// a MACed refusal of a forged frame would let an attacker fake the Pi's reply
    /// to the phone's counter and tag.
    bool mac_verified = false;
    /// State to persist in the same transaction as the audit row, accepted or not.
    ReplayState replay;
    DeviceRateState device_rate;
    GlobalRateState global_rate;
    [[nodiscard]] bool accepted() const { return status == Status::Ok; }
};

/// Decodes `frame` and checks, in order: format and version, device known and not
/// revoked, rate limits, MAC, timestamp, counter and challenge, TOTP (and reuse),
/// action known, permitted, arguments. Returns the first failure.
Decision verify(protocol::ByteView frame, const protocol::DecodeResult& decoded,
                const VerifyInput& in);

/// Rate limiting as its own pure steps (used by verify, exposed for tests).
namespace ratelimit {
/// Rolls the global window forward and counts one attempt. Returns false if the
/// Pi-wide limits refuse this attempt.
bool admit_global(GlobalRateState& g, std::int64_t now, const RateLimitPolicy& p);
bool device_locked(const DeviceRateState& d, std::int64_t now);
void record_failure(DeviceRateState& d, std::int64_t now, const RateLimitPolicy& p);
void record_global_failure(GlobalRateState& g, std::int64_t now, const RateLimitPolicy& p);
void record_success(DeviceRateState& d);
}  // namespace ratelimit

}  // namespace bzs::core::auth
