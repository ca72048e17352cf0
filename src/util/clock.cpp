// SPDX-License-Identifier: GPL-3.0-or-later
#include "util/clock.h"

#include <chrono>

namespace bzs::util {

std::int64_t wall_clock_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace bzs::util
