// SPDX-License-Identifier: GPL-3.0-or-later
// The in-memory limits on unauthenticated traffic: per link, Pi-wide, which
// refusals count, the summaries that replace per-frame audit rows, bounded memory
// and window arithmetic on hostile times.
#include "core/auth/throttle.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace bzs::core::auth {
namespace {

using protocol::Status;

constexpr std::int64_t kT = 1'700'000'000;
const std::string kA = "/org/bluez/hci0/dev_AA_AA_AA_AA_AA_AA";
const std::string kB = "/org/bluez/hci0/dev_BB_BB_BB_BB_BB_BB";

RateLimitPolicy policy(std::uint32_t link, std::uint32_t global, std::int64_t lockout = 60) {
    RateLimitPolicy p;
    p.link_max_failures_per_minute = link;
    p.global_max_failures_per_minute = global;
    p.global_lockout_seconds = lockout;
    return p;
}

TEST(Throttle, WhichRefusalsCount) {
    for (Status s :
         {Status::Malformed, Status::UnknownVersion, Status::UnknownDevice, Status::Revoked,
          Status::BadMac, Status::Replayed, Status::CodeUsed, Status::CodeExpired}) {
        EXPECT_TRUE(counts_against_limits(s)) << protocol::status_name(s);
    }
    for (Status s : {Status::Ok, Status::StaleTimestamp, Status::BadTotp, Status::UnknownAction,
                     Status::NotPermitted, Status::BadArguments, Status::RateLimited,
                     Status::Internal, Status::ActionFailed}) {
        EXPECT_FALSE(counts_against_limits(s)) << protocol::status_name(s);
    }
}

TEST(Throttle, ALinkIsLimitedAfterMoreThanItsFailuresPerMinute) {
    Throttle t(policy(10, 1000));
    for (int i = 0; i < 10; ++i) {
        EXPECT_FALSE(t.link_limited(kA, kT)) << i;
        t.record_failure(kA, kT);
    }
    EXPECT_FALSE(t.link_limited(kA, kT));  // ten is the limit, not past it
    t.record_failure(kA, kT + 1);
    EXPECT_TRUE(t.link_limited(kA, kT + 1));
    EXPECT_FALSE(t.link_limited(kB, kT + 1));  // another link is not affected
    EXPECT_FALSE(t.pi_wide_limited(kT + 1));
    // The window ends a minute after its first failure.
    EXPECT_TRUE(t.link_limited(kA, kT + 59));
    EXPECT_FALSE(t.link_limited(kA, kT + 60));
}

TEST(Throttle, PiWideLimitAfterMoreThanItsFailuresPerMinute) {
    Throttle t(policy(1000, 30, 45));
    for (int i = 0; i < 30; ++i) {
        t.record_failure(i % 2 == 0 ? kA : kB, kT);
    }
    EXPECT_FALSE(t.pi_wide_limited(kT));
    t.record_failure(kA, kT + 5);
    EXPECT_TRUE(t.pi_wide_limited(kT + 5));
    EXPECT_TRUE(t.pi_wide_limited(kT + 49));
    EXPECT_FALSE(t.pi_wide_limited(kT + 50));
}

TEST(Throttle, FailuresDuringThePiWideLimitKeepItOn) {
    Throttle t(policy(1000, 2, 60));
    for (int i = 0; i < 3; ++i) {
        t.record_failure(kA, kT);
    }
    ASSERT_TRUE(t.pi_wide_limited(kT));
    t.record_failure(kB, kT + 50);
    EXPECT_TRUE(t.pi_wide_limited(kT + 100));
    EXPECT_FALSE(t.pi_wide_limited(kT + 110));
}

TEST(Throttle, SummariesAreWrittenWhenTheirWindowEnds) {
    Throttle t(policy(1, 1000));
    t.record_failure(kA, kT);
    t.record_failure(kA, kT);
    ASSERT_TRUE(t.link_limited(kA, kT));
    for (int i = 0; i < 1234; ++i) {
        t.record_link_refusal(kA, kT + 1);
    }
    EXPECT_TRUE(t.take_summaries(kT + 60).empty());  // the window started at kT + 1
    const auto s = t.take_summaries(kT + 61);
    ASSERT_EQ(s.size(), 1U);
    EXPECT_EQ(s[0].source, kA);
    EXPECT_EQ(s[0].refused, 1234U);
    EXPECT_EQ(s[0].seconds, 60U);
    EXPECT_EQ(s[0].detail(), "1234 frames refused in 60 s from " + kA);
    EXPECT_TRUE(t.take_summaries(kT + 200).empty());  // taken once
}

TEST(Throttle, PiWideSummary) {
    Throttle t(policy(1000, 1000));
    t.record_pi_wide_refusal(kT);
    t.record_pi_wide_refusal(kT + 3);
    const auto s = t.take_summaries(kT + 60);
    ASSERT_EQ(s.size(), 1U);
    EXPECT_EQ(s[0].source, Throttle::kPiWide);
    EXPECT_EQ(s[0].refused, 2U);
    EXPECT_EQ(s[0].detail(),
              "2 frames refused in 60 s by the Pi-wide limit on unauthenticated frames");
}

TEST(Throttle, AllSummariesAtShutdown) {
    Throttle t(policy(1000, 1000));
    t.record_link_refusal(kA, kT);
    t.record_pi_wide_refusal(kT + 1);
    EXPECT_TRUE(t.take_summaries(kT + 5).empty());
    const auto s = t.take_summaries(kT + 5, /*all=*/true);
    ASSERT_EQ(s.size(), 2U);
    EXPECT_EQ(s[0].detail(), "1 frame refused in 5 s from " + kA);
    EXPECT_EQ(s[1].seconds, 4U);
}

TEST(Throttle, MemoryIsBoundedAndEvictedRefusalsAreStillSummarised) {
    Throttle t(policy(10, 1'000'000), 4);
    t.record_link_refusal("first", kT);
    for (int i = 0; i < 100; ++i) {
        t.record_failure("link" + std::to_string(i), kT);
        EXPECT_LE(t.tracked_links(), 4U);
    }
    const auto s = t.take_summaries(kT + 60);
    ASSERT_EQ(s.size(), 1U);
    EXPECT_EQ(s[0].source, Throttle::kUntracked);
    EXPECT_EQ(s[0].refused, 1U);
    EXPECT_EQ(t.tracked_links(), 0U);  // idle links are forgotten
}

TEST(Throttle, TheLeastRecentlySeenLinkIsEvicted) {
    Throttle t(policy(1, 1'000'000), 2);
    t.record_failure(kA, kT);
    t.record_failure(kA, kT);
    t.record_failure(kB, kT);
    t.record_link_refusal(kA, kT);  // kA seen again: kB is now the oldest
    t.record_failure("third", kT);
    EXPECT_TRUE(t.link_limited(kA, kT));
    EXPECT_EQ(t.tracked_links(), 2U);
}

// Hostile or stepped clocks: no overflow, and a clock that went back ends the window.
TEST(Throttle, WindowArithmeticOnExtremeTimes) {
    constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    Throttle t(policy(1, 1, kMax));
    t.record_failure(kA, kMin);
    t.record_failure(kA, kMin);
    EXPECT_TRUE(t.link_limited(kA, kMin));
    EXPECT_FALSE(t.link_limited(kA, kMax));  // a window ends, never overflows
    EXPECT_TRUE(t.pi_wide_limited(kMin));    // min + max lockout saturates sensibly
    t.record_failure(kB, kMax);
    t.record_failure(kB, kMax);
    EXPECT_TRUE(t.link_limited(kB, kMax));
    EXPECT_FALSE(t.link_limited(kB, kMin));  // the clock went back: a new window
    EXPECT_FALSE(t.pi_wide_limited(kMax));   // saturated at max: not after it
    EXPECT_EQ(seconds_between(kMin, kMax), std::numeric_limits<std::uint64_t>::max());
    EXPECT_FALSE(seconds_between(kMax, kMin));
    t.record_link_refusal(kA, kMax);
    EXPECT_EQ(t.take_summaries(kMin, true).at(0).seconds, 0U);
}

}  // namespace
}  // namespace bzs::core::auth
