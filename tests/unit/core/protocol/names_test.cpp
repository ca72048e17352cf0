// SPDX-License-Identifier: GPL-3.0-or-later
// The shared naming rules (core/protocol/names.h): every module that names an
// action or a device asks these, so their edges are pinned here.
#include "core/protocol/names.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <clocale>
#include <string>

namespace bzs::core::protocol {
namespace {

using ::testing::HasSubstr;

TEST(ActionName, Validation) {
    EXPECT_TRUE(valid_action_name("a"));
    EXPECT_TRUE(valid_action_name("Door-2.open_now"));
    EXPECT_FALSE(valid_action_name(""));
    EXPECT_FALSE(valid_action_name(".x"));
    EXPECT_FALSE(valid_action_name("x.toml"));
    EXPECT_FALSE(valid_action_name("a/b"));
    EXPECT_FALSE(valid_action_name("caf\xc3\xa9"));
}

TEST(ActionName, LengthIsAtMostSixtyFour) {
    EXPECT_TRUE(valid_action_name(std::string(64, 'a')));
    EXPECT_FALSE(valid_action_name(std::string(65, 'a')));
}

TEST(ActionName, FirstCharacterIsALetterOrDigit) {
    EXPECT_TRUE(valid_action_name("0._-"));
    EXPECT_FALSE(valid_action_name("-lead"));
    EXPECT_FALSE(valid_action_name("_lead"));
    EXPECT_FALSE(valid_action_name("has space"));
    EXPECT_FALSE(valid_action_name(std::string("nul\0x", 5)));
}

TEST(ActionName, TomlOnlyRefusedAsASuffix) {
    EXPECT_TRUE(valid_action_name("toml"));
    EXPECT_TRUE(valid_action_name("x.toml.sh"));
    EXPECT_FALSE(valid_action_name("a.b.toml"));
}

TEST(ActionName, DoesNotDependOnTheLocale) {
    // A Latin-1 byte is a letter for isalnum() in some locales; never for this rule.
    std::setlocale(LC_ALL, "C.UTF-8");
    EXPECT_FALSE(valid_action_name("caf\xe9"));
    std::setlocale(LC_ALL, "C");
}

TEST(DeviceName, AcceptsUnicodeUpToSixtyFourCodePoints) {
    EXPECT_EQ(device_name_problem("Anna's phone"), std::nullopt);
    EXPECT_EQ(device_name_problem("Küche"), std::nullopt);
    std::string long_name;
    for (int i = 0; i < 64; ++i) {
        long_name += "\xc3\xa9";  // 64 code points, 128 bytes
    }
    EXPECT_EQ(device_name_problem(long_name), std::nullopt);
    EXPECT_THAT(device_name_problem(long_name + "e").value_or(""),
                HasSubstr("1 to 64 characters long (got 65)"));
}

TEST(DeviceName, RefusesEmptyBadUtf8ControlAndEdgeSpaces) {
    EXPECT_THAT(device_name_problem("").value_or(""), HasSubstr("(got 0)"));
    EXPECT_THAT(device_name_problem("bad\xff").value_or(""), HasSubstr("not valid UTF-8"));
    EXPECT_THAT(device_name_problem("a\tb").value_or(""),
                HasSubstr("contains a control character at position 2"));
    // U+202E RIGHT-TO-LEFT OVERRIDE could make a name read as another.
    EXPECT_THAT(device_name_problem("ab\xe2\x80\xae").value_or(""), HasSubstr("at position 3"));
    EXPECT_THAT(device_name_problem(" lead").value_or(""),
                HasSubstr("must not start or end with a space"));
    EXPECT_THAT(device_name_problem("trail ").value_or(""),
                HasSubstr("must not start or end with a space"));
}

TEST(Utf8Decode, RefusesOverlongSurrogateAndTruncated) {
    EXPECT_EQ(utf8_decode("A\xc3\xa9")->size(), 2U);
    EXPECT_FALSE(utf8_decode("\xc0\x80"));          // overlong NUL
    EXPECT_FALSE(utf8_decode("\xed\xa0\x80"));      // surrogate U+D800
    EXPECT_FALSE(utf8_decode("\xe2\x82"));          // truncated
    EXPECT_FALSE(utf8_decode("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(QuoteForMessage, EscapesControlBytes) {
    EXPECT_EQ(quote_for_message("a\tb"), "'a\\x09b'");
    EXPECT_EQ(quote_for_message("ok"), "'ok'");
}

}  // namespace
}  // namespace bzs::core::protocol
