// SPDX-License-Identifier: GPL-3.0-or-later
// The one place the real clock is read. Everything that needs the time takes a
// WallClock (injected), so the pure core and the tests run on a clock of their own;
// only the programs' wiring passes wall_clock_now and wall_clock_synchronized.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace bzs::util {

/// Current unix time in seconds (system clock: it jumps when the clock is set).
std::int64_t wall_clock_now();

/// A source of unix seconds: wall_clock_now in the programs, a fixed or stepped
/// value in tests.
using WallClock = std::function<std::int64_t()>;

/// Whether the kernel considers the system clock synchronised: adjtimex(2) with
/// no modes returns TIME_ERROR, or sets STA_UNSYNC, until a time service
/// (systemd-timesyncd, chrony, ntpd) has disciplined the clock; they clear
/// STA_UNSYNC once synchronised and the kernel sets it again when they stop
/// updating it. A Pi without RTC and network therefore reads false after boot.
bool wall_clock_synchronized();

/// A test hook for bluezscriptd's command clock (docs/testing.md), parsed from
/// the environment variable BLUEZSCRIPT_TEST_CLOCK: "unsynchronized" or
/// "unsynchronized:<seconds>" (a signed shift of the system time, e.g. -259200
/// for a clock three days behind).
struct ClockTestHook {
    bool synchronized = false;
    std::int64_t shift_seconds = 0;
};
/// nullopt for null (unset); throws std::invalid_argument with a message for any
/// other value that is not one of the forms above.
std::optional<ClockTestHook> parse_clock_test_hook(const char* value);

}  // namespace bzs::util
