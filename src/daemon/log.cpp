// SPDX-License-Identifier: GPL-3.0-or-later
#include "daemon/log.h"

#include <cstdio>
#include <cstdlib>

namespace bzs::daemon {

namespace {
config::LogLevel g_level = config::LogLevel::Info;

void emit(config::LogLevel level, int priority, const char* name, const std::string& msg) {
    if (static_cast<int>(level) > static_cast<int>(g_level)) {
        return;
    }
    static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
    if (journal) {
        std::fprintf(stderr, "<%d>%s\n", priority, msg.c_str());
    } else {
        std::fprintf(stderr, "bluezscriptd: %s: %s\n", name, msg.c_str());
    }
}
}  // namespace

void set_log_level(config::LogLevel level) { g_level = level; }
void log_error(const std::string& msg) { emit(config::LogLevel::Error, 3, "error", msg); }
void log_warning(const std::string& msg) { emit(config::LogLevel::Warning, 4, "warning", msg); }
void log_info(const std::string& msg) { emit(config::LogLevel::Info, 6, "info", msg); }
void log_debug(const std::string& msg) { emit(config::LogLevel::Debug, 7, "debug", msg); }

}  // namespace bzs::daemon
