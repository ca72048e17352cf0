// SPDX-License-Identifier: GPL-3.0-or-later
// The one log level and the daemon's log sink: lines on stderr, with syslog priority
// prefixes under systemd's journal (JOURNAL_STREAM set), plain
// "bluezscriptd: level: ..." otherwise. Callers never pass secrets here.
#pragma once

#include <functional>
#include <string>

namespace bzs::util {

/// Severity of a log line; a configured level shows itself and everything above it.
enum class LogLevel { Error, Warning, Info, Debug };

/// Where a module's log lines go. Modules take one of these (injected, so tests can
/// collect lines); the daemon passes util::log.
using LogFn = std::function<void(LogLevel level, const std::string& message)>;

/// Lines above `level` are dropped from now on (default Info).
void set_log_level(LogLevel level);
/// Writes one line at `level` (if the configured level shows it).
void log(LogLevel level, const std::string& msg);
void log_error(const std::string& msg);
void log_warning(const std::string& msg);
void log_info(const std::string& msg);
void log_debug(const std::string& msg);

}  // namespace bzs::util
