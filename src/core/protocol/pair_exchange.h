// SPDX-License-Identifier: GPL-3.0-or-later
// Protocol v2 pairing (docs/protocol.md, section 4): the phone's
// ephemeral P-256 key meets the Pi's static key; the device secret S comes from the
// shared point, bound to the one-time code and to a hash of everything both sides
// saw. Both sides call the same functions with their own private key.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "core/crypto/crypto.h"
#include "core/protocol/sealed.h"

namespace bzs::core::protocol {

/// Length of a pairing code: 128 bits.
inline constexpr std::size_t kPairCodeLen = 16;
using PiId = std::array<std::uint8_t, 16>;
using Fingerprint = std::array<std::uint8_t, 32>;
using Confirm = std::array<std::uint8_t, kConfirmLen>;

/// SHA-256 of the Pi's public key: the `pk` of pairing links.
Fingerprint key_fingerprint(ByteView pi_public);

/// T = SHA-256("bluezscript v2 pair" || pi_id || device_id || PK || E).
Fingerprint pair_transcript(const PiId& pi, const DeviceId& device, ByteView pi_public,
                            ByteView phone_public);

/// What a successful exchange gives both sides.
struct PairSecret {
    crypto::SecretBytes secret;  ///< S: HKDF(Z, salt = code, "bluezscript v2 device secret" || T)
    Confirm confirm{};           ///< HKDF(S, salt0, "bluezscript v2 pair confirm" || T)
};

/// Derives S and the confirmation from this side's private scalar and the other
/// side's public key. nullopt when the peer key is not a valid P-256 point.
std::optional<PairSecret> pair_derive(ByteView own_private_scalar, ByteView peer_public,
                                      ByteView code, const Fingerprint& transcript);

/// The `rest` of a pair result: the confirmation when paired, then a sentence.
Bytes pair_result_rest(const std::optional<Confirm>& confirm, std::string_view message);

}  // namespace bzs::core::protocol
