// SPDX-License-Identifier: GPL-3.0-or-later
// HTML output helpers for the web UI. Every value that reaches a page goes through
// esc(): templates never concatenate unescaped text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bzs::web {

/// Escapes & < > " ' for use in element content and quoted attribute values.
std::string esc(std::string_view text);

/// "2026-11-27 21:08:52 UTC", or "-" for nullopt.
std::string format_time(std::optional<std::int64_t> unix_seconds);

/// What the page frame needs beyond the body.
struct PageFrame {
    std::string title;
    std::string active;  ///< nav entry to highlight: "dashboard", "devices", "pair", ...
    std::string csrf;    ///< the session's token (sign-out form); empty = signed out
    std::string pi_name;
};

/// A complete HTML document: the stylesheet and script from /static/, the navigation
/// (when signed in) and `body_html` (already escaped by the caller).
std::string page(const PageFrame& frame, const std::string& body_html);

/// A hidden CSRF field for forms.
std::string csrf_field(const std::string& csrf);

}  // namespace bzs::web
