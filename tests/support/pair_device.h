// SPDX-License-Identifier: GPL-3.0-or-later
// Pairs a test phone with a Store the way the daemon does: the owner adds a
// pending device, the phone sends a pair request with the device's one-time code,
// and Store::authorize completes the exchange. For test binaries that link the
// store.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/protocol/protocol.h"
#include "phone.h"
#include "store/store.h"

namespace bzs::test {

/// The challenge the pairing helpers use (any value works: it only has to match).
inline core::protocol::Nonce pairing_challenge() {
    core::protocol::Nonce n{};
    n.fill(0x5A);
    return n;
}

/// The Authorization of `attempt` sent at `now` with `challenge`.
inline store::Authorization send_pair(store::Store& s, const PairAttempt& attempt, std::int64_t now,
                                      const core::protocol::Nonce& challenge) {
    store::AuthorizeRequest req;
    req.frame = attempt.frame;
    req.now = now;
    req.system_now = now;
    req.expected_challenge = challenge;
    req.transport = "ble";
    return s.authorize(req);
}

/// A pair request for the pending device of `p` (a store::NewPairing).
inline PairAttempt pair_attempt(store::Store& s, const store::NewPairing& p,
                                const core::protocol::Nonce& challenge = pairing_challenge()) {
    return pair_request(s.pi_id(), s.pi_public_key(), p.device.id, p.code, challenge);
}

/// Adds `name` with `actions` at `now` and completes its pairing; the paired
/// phone. Throws std::runtime_error if the store refuses the exchange.
inline Phone pair_device(store::Store& s, const std::string& name,
                         const std::vector<std::string>& actions, std::int64_t now,
                         const core::crypto::TotpParams& totp = {}) {
    const store::NewPairing p = s.add_device(name, actions, now, 300, totp);
    const PairAttempt a = pair_attempt(s, p);
    const store::Authorization auth = send_pair(s, a, now, pairing_challenge());
    if (!auth.decision.accepted()) {
        throw std::runtime_error("pairing refused: " + auth.decision.detail);
    }
    return Phone::paired(p.device.id, a, p.totp);
}

}  // namespace bzs::test
