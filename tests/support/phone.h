// SPDX-License-Identifier: GPL-3.0-or-later
// The phone side of a pairing, for the test binaries that link the core protocol
// and crypto: it builds request frames the way a client does. Header-only, so the
// binaries that do not link the core need not compile it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/crypto/crypto.h"
#include "core/protocol/protocol.h"

namespace bzs::test {

/// A paired phone: its device id, shared secret, TOTP parameters and last counter.
struct Phone {
    core::protocol::DeviceId id{};
    core::crypto::SecretBytes secret;
    core::crypto::TotpParams totp;
    std::uint64_t counter = 0;

    /// The phone of a pairing the store made (store::NewPairing, or anything with
    /// its `device.id`, `secret` and `totp`).
    template <typename Pairing>
    static Phone from(const Pairing& p) {
        Phone ph;
        ph.id = p.device.id;
        ph.secret = p.secret;
        ph.totp = p.totp;
        return ph;
    }

    /// A phone the Pi never paired: a random id and secret.
    static Phone stranger() {
        Phone ph;
        core::crypto::random_bytes(ph.id);
        ph.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
        return ph;
    }

    /// A valid frame for `action` at `now` (next counter, current TOTP).
    [[nodiscard]] core::protocol::Bytes frame(const std::string& action, std::int64_t now,
                                              const core::protocol::Nonce& challenge,
                                              std::vector<std::string> args = {}) {
        return encode(request(action, now, challenge, std::move(args)));
    }

    /// The request behind such a frame; the counter moves on.
    [[nodiscard]] core::protocol::Request request(const std::string& action, std::int64_t now,
                                                  const core::protocol::Nonce& challenge,
                                                  std::vector<std::string> args = {}) {
        core::protocol::Request r;
        r.device_id = id;
        r.counter = ++counter;
        r.timestamp = now;
        r.challenge = challenge;
        r.totp = core::crypto::totp(secret.view(), now, totp);
        r.action = action;
        r.args = std::move(args);
        return r;
    }

    /// `r` as a frame, MAC'd with this phone's request key.
    [[nodiscard]] core::protocol::Bytes encode(const core::protocol::Request& r) const {
        return core::protocol::encode_request(
            r, core::protocol::derive_keys(secret.view()).request_mac.view());
    }

    /// The key the Pi MACs its replies to this phone with.
    [[nodiscard]] core::crypto::SecretBytes response_key() const {
        return core::protocol::derive_keys(secret.view()).response_mac;
    }
};

}  // namespace bzs::test
