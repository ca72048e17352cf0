// SPDX-License-Identifier: GPL-3.0-or-later
// The verification clock V that timestamps, TOTP codes and audit rows are checked
// and written against (docs/protocol.md, section 7.6). With a synchronised system
// clock V is the system time. Without one (a Pi with no RTC and no network after a
// cold boot) V = system time + an offset that only grows: never earlier than a time
// already seen (the persisted floor), moved forward by authenticated phone
// timestamps, never backwards. Pure: the caller passes the system time.
#pragma once

#include <cstdint>
#include <string>

namespace bzs::core::auth {

class VerificationClock {
  public:
    /// `floor`: the latest V of an accepted command or clock advance (persisted).
    explicit VerificationClock(std::int64_t floor = 0) : floor_(floor) {}

    /// V for the system time `system`. Unsynchronised, V never goes below the
    /// floor or any V returned before, and the offset grows as needed for that.
    std::int64_t read(std::int64_t system, bool synchronized);
    /// Moves an unsynchronised V forward to `to` (no effect if V is already there
    /// or the last read() was synchronised). Returns the seconds V moved.
    std::uint64_t advance_to(std::int64_t to, std::int64_t system);
    /// Raises the floor to `v` (an accepted command's V).
    void note_accepted(std::int64_t v);

    [[nodiscard]] std::int64_t floor() const { return floor_; }
    /// Seconds added to the system time while unsynchronised (0 when synchronised).
    [[nodiscard]] std::uint64_t offset() const { return synchronized_ ? 0 : offset_; }
    /// What the last read() was told.
    [[nodiscard]] bool synchronized() const { return synchronized_; }

  private:
    std::int64_t floor_;
    std::uint64_t offset_ = 0;
    bool synchronized_ = true;
};

/// "3 d 4 h", "5 min 2 s", "40 s": a duration for people (audit, logs).
std::string describe_duration(std::uint64_t seconds);

}  // namespace bzs::core::auth
