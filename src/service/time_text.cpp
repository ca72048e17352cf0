// SPDX-License-Identifier: GPL-3.0-or-later
#include "service/time_text.h"

#include <array>
#include <ctime>
#include <limits>

namespace bzs::service {

std::string format_unix_time(std::optional<std::int64_t> unix_seconds, TimeZone zone,
                             bool with_seconds) {
    if (!unix_seconds) {
        return "-";
    }
    // time_t may be 32 bits wide (armhf): refuse what it cannot hold instead of
    // wrapping into a wrong date.
    if (*unix_seconds < std::numeric_limits<std::time_t>::min() ||
        *unix_seconds > std::numeric_limits<std::time_t>::max()) {
        return "-";
    }
    const auto t = static_cast<std::time_t>(*unix_seconds);
    std::tm tm{};
    const bool ok =
        zone == TimeZone::Utc ? gmtime_r(&t, &tm) != nullptr : localtime_r(&t, &tm) != nullptr;
    if (!ok) {
        return "-";
    }
    // Literal formats only (-Wformat-nonliteral keeps them checked).
    std::array<char, 40> buf{};
    std::size_t n = 0;
    if (zone == TimeZone::Utc) {
        n = with_seconds ? std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S UTC", &tm)
                         : std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M UTC", &tm);
    } else {
        n = with_seconds ? std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &tm)
                         : std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M", &tm);
    }
    if (n == 0) {
        return "-";
    }
    return buf.data();
}

}  // namespace bzs::service
