// SPDX-License-Identifier: GPL-3.0-or-later
// The one place the real clock is read. Everything that needs the time takes a
// WallClock (injected), so the pure core and the tests run on a clock of their own;
// only the programs' wiring passes wall_clock_now.
#pragma once

#include <cstdint>
#include <functional>

namespace bzs::util {

/// Current unix time in seconds (system clock: it jumps when the clock is set).
std::int64_t wall_clock_now();

/// A source of unix seconds: wall_clock_now in the programs, a fixed or stepped
/// value in tests.
using WallClock = std::function<std::int64_t()>;

}  // namespace bzs::util
