// SPDX-License-Identifier: GPL-3.0-or-later
#include "service/time_text.h"

#include <gtest/gtest.h>

#include <ctime>
#include <limits>

namespace bzs::service {
namespace {

TEST(TimeText, FormatsUtcWithAndWithoutSeconds) {
    EXPECT_EQ(format_unix_time(1'700'000'000, TimeZone::Utc), "2023-11-14 22:13:20 UTC");
    EXPECT_EQ(format_unix_time(1'700'000'000, TimeZone::Utc, false), "2023-11-14 22:13 UTC");
    EXPECT_EQ(format_unix_time(0, TimeZone::Utc), "1970-01-01 00:00:00 UTC");
}

TEST(TimeText, NoTimeIsADash) {
    EXPECT_EQ(format_unix_time(std::nullopt, TimeZone::Utc), "-");
    EXPECT_EQ(format_unix_time(std::nullopt, TimeZone::Local), "-");
}

TEST(TimeText, LocalHasNoZoneSuffix) {
    const std::string s = format_unix_time(1'700'000'000, TimeZone::Local, false);
    EXPECT_EQ(s.size(), std::string("2023-11-14 22:13").size()) << s;
}

TEST(TimeText, TimeBeyondThisPlatformsTimeTIsADashNotAWrongDate) {
    if constexpr (sizeof(std::time_t) >= sizeof(std::int64_t)) {
        // 64-bit time_t: 2100 is representable and formatted.
        EXPECT_EQ(format_unix_time(4'102'444'800, TimeZone::Utc), "2100-01-01 00:00:00 UTC");
    } else {
        // 32-bit time_t (armhf): the value would wrap to 1965, so it is refused.
        EXPECT_EQ(format_unix_time(4'102'444'800, TimeZone::Utc), "-");
    }
    EXPECT_EQ(format_unix_time(std::numeric_limits<std::int64_t>::max(), TimeZone::Utc), "-");
}

}  // namespace
}  // namespace bzs::service
