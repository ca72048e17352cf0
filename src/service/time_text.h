// SPDX-License-Identifier: GPL-3.0-or-later
// Human-readable timestamps for the CLI and the web UI, in one place so that every
// screen formats (and range-checks) them the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace bzs::service {

enum class TimeZone { Utc, Local };

/// "YYYY-MM-DD HH:MM:SS" (or without ":SS" when `with_seconds` is false), with
/// " UTC" appended for TimeZone::Utc. "-" for no time, and for a time this
/// platform's time_t cannot hold (32-bit on Debian bookworm armhf, after 2038).
std::string format_unix_time(std::optional<std::int64_t> unix_seconds, TimeZone zone,
                             bool with_seconds = true);

}  // namespace bzs::service
