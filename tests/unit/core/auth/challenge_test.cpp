// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/auth/challenge.h"

#include <gtest/gtest.h>

namespace bzs::core::auth {
namespace {

TEST(ChallengeBook, IssuedChallengeIsTakenOnce) {
    ChallengeBook book(30);
    const auto n = book.issue("/dev/a", 1000);
    const auto t = book.take("/dev/a", 1010);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(*t, n);
    EXPECT_FALSE(book.take("/dev/a", 1010).has_value()) << "a challenge is single use";
}

TEST(ChallengeBook, ExpiredChallengeIsRefused) {
    ChallengeBook book(30);
    book.issue("/dev/a", 1000);
    EXPECT_FALSE(book.take("/dev/a", 1030).has_value());
}

TEST(ChallengeBook, NewIssueReplacesOldAndLinksAreSeparate) {
    ChallengeBook book(30);
    const auto first = book.issue("/dev/a", 1000);
    const auto second = book.issue("/dev/a", 1001);
    const auto other = book.issue("/dev/b", 1001);
    EXPECT_NE(first, second);
    const auto t = book.take("/dev/a", 1002);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(*t, second);
    const auto tb = book.take("/dev/b", 1002);
    ASSERT_TRUE(tb.has_value());
    EXPECT_EQ(*tb, other);
}

TEST(ChallengeBook, DropAndExpireForget) {
    ChallengeBook book(30);
    book.issue("/dev/a", 1000);
    book.issue("/dev/b", 1020);
    book.drop("/dev/a");
    EXPECT_FALSE(book.take("/dev/a", 1001).has_value());
    book.expire(1050);
    EXPECT_EQ(book.size(), 0U);
}

}  // namespace
}  // namespace bzs::core::auth
