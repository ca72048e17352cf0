// SPDX-License-Identifier: GPL-3.0-or-later
// The protocol v2 pairing link (docs/protocol.md, section 11): what
// a phone needs to pair — the Pi's id and key fingerprint, the device id, a
// one-time code and the TOTP parameters; never a long-term secret.
//
//   bluezscript://pair?v=2&pi=<32 hex>&pk=<64 hex>&name=<pct>&dev=<32 hex>
//                      &code=<26 base32>&alg=SHA1&digits=6&period=30[&label=<pct>]
//
// The app form puts the same query after '#' of the app's URL.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/crypto/crypto.h"
#include "core/protocol/pair_exchange.h"

namespace bzs::core::protocol {

struct PairingLink {
    PiId pi_id{};
    Fingerprint pi_key{};  ///< SHA-256 of the Pi's public key
    std::string pi_name;
    DeviceId device_id{};
    crypto::SecretBytes code;  ///< kPairCodeLen bytes
    crypto::TotpParams totp;   ///< alg, digits, period
    std::string label;         ///< the owner's name for this phone; may be empty
};

/// The query string, fields in the documented order (label only when not empty).
std::string link_query(const PairingLink& l);
/// "bluezscript://pair?" + query.
std::string link_to_uri(const PairingLink& l);
/// app_url + "#" + query, replacing any fragment app_url had.
std::string link_to_app_url(const PairingLink& l, std::string_view app_url);

struct LinkParse {
    std::optional<PairingLink> link;
    std::string error;  ///< names the field at fault; never contains the code
};
/// Parses either form by the rules of docs/protocol.md section 11, one reading each.
LinkParse parse_link(std::string_view text);

/// RFC 3986 percent-encoding of every byte except the unreserved characters
/// (A-Z a-z 0-9 - . _ ~), hex digits upper case.
std::string percent_encode(std::string_view s);
/// '%' and two hex digits (either case) become that byte; '+' stays a plus;
/// nullopt for any other '%'.
std::optional<std::string> percent_decode(std::string_view s);

}  // namespace bzs::core::protocol
