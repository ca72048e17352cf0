// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/auth/verification_clock.h"

#include <limits>

namespace bzs::core::auth {

namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// system + offset, saturating at the largest time instead of overflowing. The
// unsigned sums are exact: both differences fit in 64 unsigned bits.
std::int64_t plus_offset(std::int64_t system, std::uint64_t offset) {
    const std::uint64_t headroom =
        static_cast<std::uint64_t>(kMax) - static_cast<std::uint64_t>(system);
    return offset >= headroom
               ? kMax
               : static_cast<std::int64_t>(static_cast<std::uint64_t>(system) + offset);
}

// to - from, for to >= from.
std::uint64_t gap(std::int64_t from, std::int64_t to) {
    return static_cast<std::uint64_t>(to) - static_cast<std::uint64_t>(from);
}

}  // namespace

std::int64_t VerificationClock::read(std::int64_t system, bool synchronized) {
    synchronized_ = synchronized;
    if (synchronized) {
        offset_ = 0;
        return system;
    }
    std::int64_t v = plus_offset(system, offset_);
    if (v < floor_) {
        // Behind a time already seen (cold boot, or the system clock stepped back):
        // grow the offset so V resumes from the floor.
        offset_ = gap(system, floor_);
        v = plus_offset(system, offset_);
    }
    floor_ = v;
    return v;
}

std::uint64_t VerificationClock::advance_to(std::int64_t to, std::int64_t system) {
    if (synchronized_) {
        return 0;
    }
    const std::int64_t before = read(system, false);
    if (to <= before) {
        return 0;
    }
    offset_ = gap(system, to);  // to > before >= system
    floor_ = to;
    return gap(before, to);
}

void VerificationClock::note_accepted(std::int64_t v) {
    if (v > floor_) {
        floor_ = v;
    }
}

std::string describe_duration(std::uint64_t seconds) {
    struct Unit {
        std::uint64_t size;
        const char* name;
    };
    constexpr Unit kUnits[] = {{86400, "d"}, {3600, "h"}, {60, "min"}, {1, "s"}};
    if (seconds == 0) {
        return "0 s";
    }
    // The two largest units that apply: precise enough for a person.
    std::string out;
    int shown = 0;
    for (const Unit& u : kUnits) {
        const std::uint64_t n = seconds / u.size;
        if (n > 0 || shown > 0) {
            if (n > 0) {
                out += (out.empty() ? "" : " ") + std::to_string(n) + " " + u.name;
            }
            seconds -= n * u.size;
            if (++shown == 2) {
                break;
            }
        }
    }
    return out;
}

}  // namespace bzs::core::auth
