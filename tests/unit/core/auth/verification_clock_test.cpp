// SPDX-License-Identifier: GPL-3.0-or-later
// The verification clock: the system time when synchronised; otherwise never
// below the floor, never backwards, moved forward only by advance_to.
#include "core/auth/verification_clock.h"

#include <gtest/gtest.h>

#include <limits>

namespace bzs::core::auth {
namespace {

constexpr std::int64_t kFloor = 1'700'000'000;
constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kHour = 3600;

TEST(VerificationClock, SynchronisedIsTheSystemTime) {
    VerificationClock c(kFloor);
    EXPECT_EQ(c.read(kFloor - kDay, true), kFloor - kDay);  // even behind the floor
    EXPECT_TRUE(c.synchronized());
    EXPECT_EQ(c.offset(), 0U);
}

TEST(VerificationClock, UnsynchronisedStartsAtTheFloorAndTicks) {
    VerificationClock c(kFloor);
    const std::int64_t boot = kFloor - 3 * kDay;  // a cold boot days behind
    EXPECT_EQ(c.read(boot, false), kFloor);
    EXPECT_EQ(c.offset(), static_cast<std::uint64_t>(3 * kDay));
    EXPECT_EQ(c.read(boot + 10, false), kFloor + 10);
}

TEST(VerificationClock, UnsynchronisedAheadOfTheFloorIsTheSystemTime) {
    VerificationClock c(kFloor);
    EXPECT_EQ(c.read(kFloor + 5, false), kFloor + 5);
    EXPECT_EQ(c.offset(), 0U);
}

TEST(VerificationClock, NeverBackwardsWhileUnsynchronised) {
    VerificationClock c(0);
    EXPECT_EQ(c.read(kFloor, false), kFloor);
    EXPECT_EQ(c.read(kFloor - 100, false), kFloor);  // the system clock stepped back
    EXPECT_EQ(c.read(kFloor - 99, false), kFloor + 1);
}

TEST(VerificationClock, AdvanceMovesForwardOnly) {
    VerificationClock c(kFloor);
    const std::int64_t boot = kFloor - 3 * kDay;
    ASSERT_EQ(c.read(boot, false), kFloor);
    EXPECT_EQ(c.advance_to(kFloor + kDay, boot), static_cast<std::uint64_t>(kDay));
    EXPECT_EQ(c.read(boot, false), kFloor + kDay);
    EXPECT_EQ(c.floor(), kFloor + kDay);
    EXPECT_EQ(c.read(boot + 7, false), kFloor + kDay + 7);
    EXPECT_EQ(c.advance_to(kFloor, boot + 7), 0U);  // earlier: no effect
    EXPECT_EQ(c.read(boot + 7, false), kFloor + kDay + 7);
}

TEST(VerificationClock, AdvanceDoesNothingWhenSynchronised) {
    VerificationClock c(kFloor);
    c.read(kFloor, true);
    EXPECT_EQ(c.advance_to(kFloor + kDay, kFloor), 0U);
    EXPECT_EQ(c.read(kFloor, true), kFloor);
}

TEST(VerificationClock, AcceptedRaisesTheFloorUsedAfterLosingSync) {
    VerificationClock c(0);
    EXPECT_EQ(c.read(kFloor, true), kFloor);
    c.note_accepted(kFloor);
    c.note_accepted(kFloor - 5);  // never lowers
    EXPECT_EQ(c.floor(), kFloor);
    EXPECT_EQ(c.read(kFloor - kDay, false), kFloor);
}

TEST(VerificationClock, ExtremeValuesSaturate) {
    constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    VerificationClock c(kMax);
    EXPECT_EQ(c.read(kMin, false), kMax);
    EXPECT_EQ(c.read(kMax, false), kMax);
    VerificationClock d(0);
    ASSERT_EQ(d.read(kMin, false), 0);
    EXPECT_EQ(d.advance_to(kMax, kMin), static_cast<std::uint64_t>(kMax));
    EXPECT_EQ(d.read(kMin, false), kMax);
    EXPECT_EQ(d.read(0, false), kMax);
}

TEST(VerificationClock, DescribeDuration) {
    EXPECT_EQ(describe_duration(0), "0 s");
    EXPECT_EQ(describe_duration(40), "40 s");
    EXPECT_EQ(describe_duration(302), "5 min 2 s");
    EXPECT_EQ(describe_duration(3 * kDay + 4 * kHour + 59), "3 d 4 h");
    EXPECT_EQ(describe_duration(kDay + 30), "1 d");
    EXPECT_EQ(describe_duration(kHour), "1 h");
    EXPECT_EQ(describe_duration(std::numeric_limits<std::uint64_t>::max()),
              "213503982334601 d 7 h");
}

}  // namespace
}  // namespace bzs::core::auth
