// SPDX-License-Identifier: GPL-3.0-or-later
// The phone side of protocol v2, for the test binaries that link the core
// protocol and crypto: it performs the pairing exchange and builds sealed request
// frames the way a client does, and opens the Pi's responses. Header-only, so the
// binaries that do not link the core need not compile it.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/crypto/crypto.h"
#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/catalogue.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/protocol.h"
#include "core/protocol/sealed.h"

namespace bzs::test {

namespace proto = core::protocol;

/// A random nonce for a request or response.
inline proto::SealNonce random_seal_nonce() {
    proto::SealNonce n{};
    core::crypto::random_bytes(n);
    return n;
}

/// A pair request the phone built, and what it keeps for the answer.
struct PairAttempt {
    proto::Bytes frame;
    core::crypto::SecretBytes code;
    /// S and the confirmation the Pi must prove (nullopt if the Pi's key was bad).
    std::optional<proto::PairSecret> expected;
};

/// Builds a pair request for `device` with `code`, as a phone that read the Pi's
/// id and public key from Info and `challenge` from the Challenge characteristic.
inline PairAttempt pair_request(const proto::PiId& pi, const proto::PublicKey& pi_public,
                                const proto::DeviceId& device,
                                const core::crypto::SecretBytes& code,
                                const proto::Nonce& challenge) {
    const core::crypto::P256KeyPair e = core::crypto::p256_generate();
    proto::PairBody body;
    body.challenge = challenge;
    std::copy(e.public_key.begin(), e.public_key.end(), body.phone_public.begin());
    PairAttempt a;
    a.code = code;
    a.expected =
        proto::pair_derive(e.private_scalar.view(), pi_public, code.view(),
                           proto::pair_transcript(pi, device, pi_public, body.phone_public));
    a.frame = proto::seal_request(proto::RequestType::Pair, device, 0, random_seal_nonce(),
                                  proto::pair_seal_keys(code.view()).request.view(),
                                  proto::encode_body(body));
    return a;
}

/// A paired phone: its device id, shared secret S, TOTP parameters and last counter.
struct Phone {
    proto::DeviceId id{};
    core::crypto::SecretBytes secret;
    core::crypto::TotpParams totp;
    std::uint64_t counter = 0;

    /// The phone of a completed exchange.
    static Phone paired(const proto::DeviceId& device, const PairAttempt& a,
                        const core::crypto::TotpParams& totp) {
        if (!a.expected) {
            throw std::runtime_error("the pairing exchange derived no secret");
        }
        Phone ph;
        ph.id = device;
        ph.secret = a.expected->secret;
        ph.totp = totp;
        return ph;
    }

    /// A phone the Pi never paired: a random id and secret.
    static Phone stranger() {
        Phone ph;
        core::crypto::random_bytes(ph.id);
        ph.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
        return ph;
    }

    /// The body of a command for `action` at `now` (current TOTP).
    [[nodiscard]] proto::CommandBody body(const std::string& action, std::int64_t now,
                                          const proto::Nonce& challenge,
                                          std::vector<std::string> args = {}) const {
        proto::CommandBody b;
        b.timestamp = now;
        b.challenge = challenge;
        b.totp = core::crypto::totp(secret.view(), now, totp);
        b.action = action;
        b.args = std::move(args);
        return b;
    }

    /// A sealed command frame (next counter, current TOTP).
    [[nodiscard]] proto::Bytes frame(const std::string& action, std::int64_t now,
                                     const proto::Nonce& challenge,
                                     std::vector<std::string> args = {}) {
        return seal(proto::RequestType::Command,
                    proto::encode_body(body(action, now, challenge, std::move(args))), ++counter);
    }

    /// A sealed catalogue request (next counter).
    [[nodiscard]] proto::Bytes catalogue(std::int64_t now, const proto::Nonce& challenge,
                                         std::uint8_t first = 0) {
        proto::CatalogueBody b;
        b.timestamp = now;
        b.challenge = challenge;
        b.totp = core::crypto::totp(secret.view(), now, totp);
        b.first = first;
        return seal(proto::RequestType::Catalogue, proto::encode_body(b), ++counter);
    }

    /// `plaintext` sealed with this phone's request key under `counter`.
    [[nodiscard]] proto::Bytes seal(proto::RequestType type, const proto::Bytes& plaintext,
                                    std::uint64_t at_counter) const {
        return proto::seal_request(type, id, at_counter, random_seal_nonce(),
                                   proto::device_seal_keys(secret.view()).request.view(),
                                   plaintext);
    }

    /// The key the Pi seals its answers to this phone with.
    [[nodiscard]] core::crypto::SecretBytes response_key() const {
        return proto::device_seal_keys(secret.view()).response;
    }

    /// Opens the Pi's answer to `request` (throws if the bytes are not a response).
    [[nodiscard]] proto::OpenedResponse open(const proto::Bytes& response,
                                             const proto::Bytes& request) const {
        auto r = proto::open_response(response, response_key().view(), proto::request_tag(request));
        if (!r.response) {
            throw std::runtime_error("not a response: " + r.error);
        }
        return *r.response;
    }
};

}  // namespace bzs::test
