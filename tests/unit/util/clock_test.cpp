// SPDX-License-Identifier: GPL-3.0-or-later
// The clock test hook's parser (BLUEZSCRIPT_TEST_CLOCK).
#include "util/clock.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace bzs::util {
namespace {

TEST(ClockTestHook, UnsetIsNoHook) {
    EXPECT_FALSE(parse_clock_test_hook(nullptr));
}

TEST(ClockTestHook, UnsynchronisedWithAndWithoutShift) {
    auto h = parse_clock_test_hook("unsynchronized");
    ASSERT_TRUE(h);
    EXPECT_FALSE(h->synchronized);
    EXPECT_EQ(h->shift_seconds, 0);
    h = parse_clock_test_hook("unsynchronized:-259200");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->shift_seconds, -259200);
    EXPECT_EQ(parse_clock_test_hook("unsynchronized:3600")->shift_seconds, 3600);
}

TEST(ClockTestHook, AnythingElseIsAClearError) {
    for (const char* v : {"", "1", "synchronized", "unsynchronized:", "unsynchronized:x",
                          "unsynchronized:-1d", "unsynchronized-5", "unsynchronized:99999999999",
                          "unsynchronized:-9223372036854775808"}) {
        try {
            (void)parse_clock_test_hook(v);
            ADD_FAILURE() << "accepted " << v;
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find("BLUEZSCRIPT_TEST_CLOCK: expected"),
                      std::string::npos)
                << e.what();
        }
    }
}

}  // namespace
}  // namespace bzs::util
