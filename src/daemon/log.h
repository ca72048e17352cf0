// SPDX-License-Identifier: GPL-3.0-or-later
// Daemon log lines on stderr: with syslog priority prefixes under systemd's
// journal (JOURNAL_STREAM set), plain "bluezscriptd: level: ..." otherwise.
// Callers never pass secrets here.
#pragma once

#include <string>

#include "config/config.h"

namespace bzs::daemon {

void set_log_level(config::LogLevel level);
void log_error(const std::string& msg);
void log_warning(const std::string& msg);
void log_info(const std::string& msg);
void log_debug(const std::string& msg);

}  // namespace bzs::daemon
