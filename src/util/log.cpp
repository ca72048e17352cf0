// SPDX-License-Identifier: GPL-3.0-or-later
#include "util/log.h"

#include <cstdio>
#include <cstdlib>

namespace bzs::util {

namespace {
LogLevel g_level = LogLevel::Info;

void emit(LogLevel level, int priority, const char* name, const std::string& msg) {
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

void set_log_level(LogLevel level) {
    g_level = level;
}
void log(LogLevel level, const std::string& msg) {
    switch (level) {
        case LogLevel::Error:
            log_error(msg);
            break;
        case LogLevel::Warning:
            log_warning(msg);
            break;
        case LogLevel::Info:
            log_info(msg);
            break;
        case LogLevel::Debug:
            log_debug(msg);
            break;
    }
}
void log_error(const std::string& msg) {
    emit(LogLevel::Error, 3, "error", msg);
}
void log_warning(const std::string& msg) {
    emit(LogLevel::Warning, 4, "warning", msg);
}
void log_info(const std::string& msg) {
    emit(LogLevel::Info, 6, "info", msg);
}
void log_debug(const std::string& msg) {
    emit(LogLevel::Debug, 7, "debug", msg);
}

}  // namespace bzs::util
