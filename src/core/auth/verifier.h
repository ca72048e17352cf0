// SPDX-License-Identifier: GPL-3.0-or-later
// The verifier: a pure function of (frame, device record, clock, replay
// state) that accepts a request (command, catalogue, pair) or names the one
// reason it is refused. It performs
// no I/O; callers persist the new state it returns before anything runs.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/crypto/crypto.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/protocol.h"
#include "core/protocol/sealed.h"

namespace bzs::core::auth {

using protocol::DeviceId;
using protocol::Nonce;
using protocol::Status;

/// A paired device as the verifier needs it. The secret is decrypted by the store.
struct DeviceRecord {
    DeviceId id{};
    std::string name;
    bool revoked = false;
    bool pending = false;  ///< created, its pairing code not used yet: no secret
    crypto::SecretBytes secret;
    crypto::TotpParams totp;
    std::set<std::string> permitted_actions;
};

/// Replay state of one device, advanced only by accepted commands.
struct ReplayState {
    std::uint64_t last_counter = 0;
};

/// Limits on unauthenticated traffic (docs/configuration.md, [limits]); kept by
/// Throttle (throttle.h), never by the verifier.
struct RateLimitPolicy {
    std::uint32_t link_max_failures_per_minute = 10;    ///< then that link is refused cheaply
    std::uint32_t global_max_failures_per_minute = 30;  ///< then the Pi-wide limit starts
    std::int64_t global_lockout_seconds = 60;           ///< how long the Pi-wide limit lasts
};

/// Verification policy (docs/configuration.md, [security] and [limits]).
struct Policy {
    std::int64_t max_clock_skew_seconds = 300;
    int totp_window = 1;
    bool require_challenge = true;  ///< refuse requests without the issued challenge
    /// How far an authenticated timestamp may move an unsynchronised clock forward.
    std::int64_t max_clock_advance_seconds = 31'536'000;
    RateLimitPolicy limits;
};

/// What the verifier needs to know about an action.
struct ActionRules {
    bool allow_args = false;
    std::optional<std::string> arg_pattern;  ///< ECMAScript regex each argument must fully match
    std::vector<std::string> arg_choices;    ///< when not empty: each argument must be one of these
    std::size_t max_args = protocol::kMaxArgs;
};
using ActionLookup = std::function<std::optional<ActionRules>(const std::string& name)>;

struct VerifyInput {
    std::int64_t now = 0;  ///< the verification clock V (unix seconds; clock.h)
    /// False when the Pi's clock is not synchronised: then a fresh, authentic
    /// timestamp ahead of `now` may advance V (docs/protocol.md, "Clock").
    bool clock_synchronized = true;
    const DeviceRecord* device = nullptr;  ///< nullptr when the frame's device id is unknown
    ReplayState replay;
    std::optional<Nonce> expected_challenge;  ///< the live challenge issued to this link
    ActionLookup actions;
    Policy policy;
};

struct Decision {
    Status status = Status::Malformed;  ///< Status::Ok means accepted
    std::string detail;                 ///< for the audit log; never contains secrets
    /// The clear header, when it decoded (its counter goes into the response).
    std::optional<protocol::RequestHeader> header;
    /// The opened body of a command / catalogue / pair request, once it decoded
    /// (also when a later check refused it).
    std::optional<protocol::CommandBody> command;
    std::optional<protocol::CatalogueBody> catalogue;
    /// True once the request's seal opened under the device's (or the pairing
    /// code's) key. Only then may the Pi seal its answer: otherwise the answer is
    /// a plain refusal that carries nothing secret and proves nothing.
    bool sealed_reply = false;
    std::optional<std::int64_t> matched_step;
    /// Replay state to persist with the audit row (advanced only when accepted).
    ReplayState replay;
    /// Set when an unsynchronised clock must move forward to this frame's
    /// timestamp: the frame opened and passed counter and challenge, and its
    /// timestamp was ahead of V by more than the skew but within
    /// max_clock_advance_seconds. The later checks (TOTP) already used it as V,
    /// accepted or not.
    std::optional<std::int64_t> clock_advanced_to;
    /// The clock the timestamp and TOTP checks used (V, or the advanced V).
    std::int64_t verified_at = 0;
    /// An accepted pair request: the device secret and the confirmation.
    std::optional<protocol::PairSecret> pair;
    [[nodiscard]] bool accepted() const { return status == Status::Ok; }
};

/// Checks a command or catalogue request whose header was decoded by
/// protocol::decode_request_header, in the order of docs/protocol.md ("Checks"):
/// header, device known and paired, not revoked, seal opens under its request
/// key, body, counter, challenge, clock, TOTP, and for a command the action
/// (known, permitted, arguments). Returns the first failure. Counter and
/// challenge come before the clock so a replayed frame is always `replayed` and
/// a clock refusal is only ever given to a fresh, authentic frame.
Decision verify(protocol::ByteView frame, const protocol::HeaderDecode& header,
                const VerifyInput& in);

/// What a pair request is checked against.
struct PairInput {
    std::int64_t now = 0;  ///< V: the code's window is judged on it
    /// The device the header names (nullptr: unknown); pending devices have no
    /// secret but a code.
    const DeviceRecord* device = nullptr;
    crypto::SecretBytes code;       ///< the pending device's one-time code
    std::int64_t code_expires = 0;  ///< the code works while now < code_expires
    protocol::PiId pi_id{};
    crypto::SecretBytes pi_private;  ///< the Pi's static P-256 scalar
    protocol::PublicKey pi_public{};
    std::optional<Nonce> expected_challenge;
    bool require_challenge = true;
};

/// Checks a pair request (docs/protocol.md, "Pairing exchange"): device known
/// and pending (else unknown_device / code_used / revoked), counter 0, seal opens
/// under the code's key (else bad_mac), body, challenge (else replayed), the
/// phone's key a P-256 point (else malformed), the code's window (else
/// code_expired); then derives the device secret and the confirmation.
Decision verify_pair(protocol::ByteView frame, const protocol::HeaderDecode& header,
                     const PairInput& in);

/// True when `header` is a command or catalogue request of `device`, which is
/// active, and the frame's seal opens under its request key: the read-only check
/// used while the Pi-wide limit is on (throttle.h).
bool authenticates(protocol::ByteView frame, const protocol::HeaderDecode& header,
                   const DeviceRecord* device);

}  // namespace bzs::core::auth
