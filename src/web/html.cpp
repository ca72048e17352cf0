// SPDX-License-Identifier: GPL-3.0-or-later
#include "web/html.h"

#include <array>

#include "service/time_text.h"

namespace bzs::web {

std::string esc(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string format_time(std::optional<std::int64_t> unix_seconds) {
    return service::format_unix_time(unix_seconds, service::TimeZone::Utc);
}

std::string csrf_field(const std::string& csrf) {
    return "<input type=\"hidden\" name=\"csrf\" value=\"" + esc(csrf) + "\">";
}

std::string page(const PageFrame& f, const std::string& body_html) {
    std::string out =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>" +
        esc(f.title) +
        " - BlueZscript</title>"
        "<link rel=\"stylesheet\" href=\"/static/app.css\">"
        "<script src=\"/static/app.js\" defer></script></head><body>"
        "<header><span class=\"brand\" data-testid=\"brand\">BlueZscript";
    if (!f.pi_name.empty()) {
        out += " &middot; " + esc(f.pi_name);
    }
    out += "</span>";
    if (!f.csrf.empty()) {
        static constexpr std::array<std::array<const char*, 3>, 5> kNav = {{
            {"dashboard", "/", "Dashboard"},
            {"devices", "/devices", "Devices"},
            {"pair", "/pair", "Pair a device"},
            {"actions", "/actions", "Actions"},
            {"audit", "/audit", "Audit log"},
        }};
        out += "<nav>";
        for (const auto& [id, href, label] : kNav) {
            out += std::string("<a href=\"") + href + "\" data-testid=\"nav-" + id + "\"" +
                   (f.active == id ? " class=\"active\"" : "") + ">" + label + "</a>";
        }
        out += "<form method=\"post\" action=\"/logout\" class=\"inline\">" + csrf_field(f.csrf) +
               "<button type=\"submit\" data-testid=\"signout\">Sign out</button></form></nav>";
    }
    out += "</header><main>" + body_html + "</main></body></html>\n";
    return out;
}

}  // namespace bzs::web
