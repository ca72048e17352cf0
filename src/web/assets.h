// SPDX-License-Identifier: GPL-3.0-or-later
// The web UI's stylesheet and script, compiled into the daemon so that it serves
// everything itself (no external references; the CSP allows only 'self').
#pragma once

#include <string_view>

namespace bzs::web::assets {

/// /static/app.css
extern const std::string_view kCss;
/// /static/app.js: countdown and live state of the pairing page.
extern const std::string_view kJs;

}  // namespace bzs::web::assets
