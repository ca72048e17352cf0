// SPDX-License-Identifier: GPL-3.0-or-later
// The pairing payload an owner hands to a phone (QR code or pasted text).
//
//   bluezscript://pair?v=1&pi=<32 hex>&name=<pct>&dev=<32 hex>&secret=<base32>
//                      &alg=SHA1&digits=6&period=30[&label=<pct>]
//
// The same query string may follow '#' in an app URL (https://host/app/#v=1&...),
// so that the secret stays in the fragment and is never sent to a web server.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/crypto/crypto.h"
#include "core/protocol/protocol.h"

namespace bzs::core::protocol {

struct Pairing {
    std::array<std::uint8_t, 16> pi_id{};  ///< long-term id of the Pi
    std::string pi_name;                   ///< shown by the phone, used to filter scans
    DeviceId device_id{};
    crypto::SecretBytes secret;  ///< >= 20 bytes
    crypto::TotpParams totp;     ///< alg, digits, period (window is the Pi's)
    std::string device_name;     ///< the owner's label for this phone
};

/// Canonical form: "bluezscript://pair?" + query.
std::string pairing_to_uri(const Pairing& p);
/// App form: app_url + "#" + query (app_url such as "https://pi.local:8443/app/").
std::string pairing_to_app_url(const Pairing& p, std::string_view app_url);

struct PairingParse {
    std::optional<Pairing> pairing;
    std::string error;  ///< which field is wrong; never echoes the secret
};
/// Accepts either form (canonical URI, or any URL whose fragment is the query).
PairingParse parse_pairing(std::string_view text);

/// RFC 3986 percent-encoding of everything except unreserved characters.
std::string percent_encode(std::string_view s);
std::optional<std::string> percent_decode(std::string_view s);

}  // namespace bzs::core::protocol
