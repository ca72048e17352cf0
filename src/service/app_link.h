// SPDX-License-Identifier: GPL-3.0-or-later
// The links a pairing shows (docs/phone-app.md): the canonical bluezscript:// link
// and the app link. With [pairing] app_url set, the app hosted there; otherwise the
// app this Pi serves at /app/ over its HTTPS listener; no app link when the Pi
// serves no HTTPS.
#pragma once

#include <string>
#include <string_view>

#include "config/config.h"
#include "core/protocol/link.h"

namespace bzs::service {

/// Path under which the daemon serves the phone app (web.app_dir).
inline constexpr std::string_view kAppPath = "/app/";

/// True for a Host header value usable in a URL: a DNS name or IPv4 literal, or a
/// bracketed IPv6 literal, each with an optional port; nothing else.
bool valid_host_header(std::string_view host);

/// "<hostname>.local" (mDNS, as avahi announces it), or the hostname itself when it
/// already has a dot; "raspberrypi.local" if the hostname cannot be read.
std::string machine_host();

/// The address of the app the Pi serves itself, or "" when it serves no HTTPS
/// (web disabled or no HTTPS listener). The host is, in order: `https_host`, the
/// Host header of the owner's HTTPS request, unless it is a loopback name (a phone
/// could not reach it); the HTTPS listener's address when it is bound to one
/// specific IP; else machine_host(). The port is web.https_port (omitted for 443)
/// unless the Host header carried one.
std::string self_app_url(const config::Config& cfg, std::string_view https_host = {});

/// The app link of a pairing: pairing.app_url, else self_app_url(), with the link's
/// query after '#'; "" when there is no app to open (no app_url, no HTTPS).
std::string app_pairing_link(const core::protocol::PairingLink& link, const config::Config& cfg,
                             std::string_view https_host = {});

}  // namespace bzs::service
