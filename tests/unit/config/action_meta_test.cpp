// SPDX-License-Identifier: GPL-3.0-or-later
// Action metadata (NAME.toml): every key, its defaults, and a specific error for each
// kind of bad input.
#include "config/action_meta.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_support.h"

namespace {

using bzs::config::ActionMeta;
using bzs::config::ActionsSection;
using bzs::config::ConfigError;
using bzs::config::parse_action_meta;
using ::testing::AllOf;
using ::testing::HasSubstr;

ActionsSection defaults() {
    ActionsSection d;
    d.default_timeout_seconds = 42;
    d.default_output_limit_bytes = 1234;
    return d;
}

/// The message of the ConfigError that parsing `text` throws ("" if it does not throw).
std::string error_of(const std::string& text) {
    try {
        parse_action_meta(text, "actions.d/demo.toml", defaults());
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

TEST(ActionMeta, EmptyFileGivesTheDefaults) {
    const ActionMeta m = parse_action_meta("", "demo.toml", defaults());
    EXPECT_EQ(m, bzs::config::default_action_meta(defaults()));
    EXPECT_EQ(m.timeout.count(), 42);
    EXPECT_EQ(m.output_limit, 1234u);
    EXPECT_FALSE(m.allow_args);
    EXPECT_FALSE(m.arg_pattern.has_value());
    EXPECT_EQ(m.max_args, 0u);
    EXPECT_FALSE(m.concurrent);
    EXPECT_FALSE(m.confirm);
    EXPECT_TRUE(m.arg_choices.empty());
    EXPECT_EQ(m.description, "");
}

TEST(ActionMeta, EveryKeyIsRead) {
    const ActionMeta m = parse_action_meta(R"(
description = "Open the garage door"
timeout = 90
output_limit = 65536
allow_args = true
arg_pattern = "[a-z]+"
max_args = 3
concurrent = true
confirm = true
)",
                                           "demo.toml", defaults());
    EXPECT_EQ(m.description, "Open the garage door");
    EXPECT_EQ(m.timeout.count(), 90);
    EXPECT_EQ(m.output_limit, 65536u);
    EXPECT_TRUE(m.allow_args);
    EXPECT_EQ(m.arg_pattern, "[a-z]+");
    EXPECT_EQ(m.max_args, 3u);
    EXPECT_TRUE(m.concurrent);
    EXPECT_TRUE(m.confirm);
}

TEST(ActionMeta, AllowArgsAloneGetsDefaultPatternAndProtocolMaximum) {
    const ActionMeta m = parse_action_meta("allow_args = true\n", "demo.toml", defaults());
    EXPECT_EQ(m.arg_pattern, std::string(bzs::config::kDefaultArgPattern));
    EXPECT_EQ(m.max_args, 8u);
}

TEST(ActionMeta, UnknownKeyIsNamedWithFileAndLine) {
    EXPECT_THAT(
        error_of("timeout = 5\ncolour = \"red\"\n"),
        AllOf(HasSubstr("actions.d/demo.toml:2"), HasSubstr("colour"), HasSubstr("unknown key")));
}

TEST(ActionMeta, WrongTypesAreNamed) {
    EXPECT_THAT(
        error_of("timeout = \"soon\"\n"),
        AllOf(HasSubstr("actions.d/demo.toml:1"), HasSubstr("timeout"), HasSubstr("got a string")));
    EXPECT_THAT(error_of("allow_args = 1\n"),
                AllOf(HasSubstr("allow_args"), HasSubstr("true or false")));
    EXPECT_THAT(error_of("concurrent = \"yes\"\n"), HasSubstr("concurrent"));
    EXPECT_THAT(error_of("description = 3\n"),
                AllOf(HasSubstr("description"), HasSubstr("expected a string")));
    EXPECT_THAT(error_of("output_limit = 1.5\n"),
                AllOf(HasSubstr("output_limit"), HasSubstr("floating-point")));
}

TEST(ActionMeta, OutOfRangeValuesAreNamed) {
    EXPECT_THAT(error_of("timeout = 0\n"),
                AllOf(HasSubstr("timeout"), HasSubstr("1..3600"), HasSubstr("got 0")));
    EXPECT_THAT(error_of("timeout = 3601\n"), HasSubstr("got 3601"));
    EXPECT_THAT(error_of("output_limit = 65537\n"),
                AllOf(HasSubstr("output_limit"), HasSubstr("0..65536")));
    EXPECT_THAT(error_of("output_limit = -1\n"), HasSubstr("output_limit"));
    EXPECT_THAT(error_of("allow_args = true\nmax_args = 9\n"),
                AllOf(HasSubstr("max_args"), HasSubstr("0..8")));
    EXPECT_THAT(error_of("description = \"" + std::string(300, 'x') + "\"\n"),
                AllOf(HasSubstr("description"), HasSubstr("256 bytes")));
    EXPECT_THAT(error_of("description = \"a\\u0007b\"\n"), HasSubstr("control characters"));
}

TEST(ActionMeta, BoundaryValuesAreAccepted) {
    const ActionMeta low = parse_action_meta("timeout = 1\noutput_limit = 0\n", "d", defaults());
    EXPECT_EQ(low.timeout.count(), 1);
    EXPECT_EQ(low.output_limit, 0u);
    const ActionMeta high =
        parse_action_meta("timeout = 3600\nallow_args = true\nmax_args = 8\n", "d", defaults());
    EXPECT_EQ(high.timeout.count(), 3600);
    EXPECT_EQ(high.max_args, 8u);
}

TEST(ActionMeta, InvalidRegexIsRejected) {
    EXPECT_THAT(error_of("allow_args = true\narg_pattern = \"([a-z\"\n"),
                AllOf(HasSubstr("arg_pattern"), HasSubstr("regular expression")));
    EXPECT_THAT(error_of("allow_args = true\narg_pattern = \"\"\n"),
                AllOf(HasSubstr("arg_pattern"), HasSubstr("empty")));
}

TEST(ActionMeta, ArgumentSettingsWithoutAllowArgsAreErrors) {
    EXPECT_THAT(error_of("arg_pattern = \"[a-z]+\"\n"),
                AllOf(HasSubstr("arg_pattern"), HasSubstr("allow_args is not true")));
    EXPECT_THAT(error_of("allow_args = false\nmax_args = 2\n"),
                AllOf(HasSubstr("max_args"), HasSubstr("allow_args is not true")));
    EXPECT_THAT(error_of("allow_args = true\nmax_args = 0\n"),
                AllOf(HasSubstr("max_args"), HasSubstr("is 0")));
    // max_args = 0 without allow_args agrees with it, so it is accepted.
    EXPECT_EQ(error_of("max_args = 0\n"), "");
}

TEST(ActionMeta, ConfirmIsABool) {
    EXPECT_FALSE(parse_action_meta("confirm = false\n", "d", defaults()).confirm);
    EXPECT_TRUE(parse_action_meta("confirm = true\n", "d", defaults()).confirm);
    EXPECT_THAT(error_of("confirm = \"yes\"\n"),
                AllOf(HasSubstr("actions.d/demo.toml:1"), HasSubstr("confirm"),
                      HasSubstr("true or false")));
    EXPECT_THAT(error_of("confirm = 1\n"), HasSubstr("confirm"));
}

TEST(ActionMeta, ArgChoicesAreReadInOrderAndNeedNoPattern) {
    const ActionMeta m = parse_action_meta(
        "allow_args = true\narg_choices = [\"low\", \"high\", \"caf\\u00e9 au lait\"]\n"
        "max_args = 1\n",
        "d", defaults());
    EXPECT_EQ(m.arg_choices, (std::vector<std::string>{"low", "high", "caf\xc3\xa9 au lait"}));
    // Choices are the rule: the default pattern is not added.
    EXPECT_FALSE(m.arg_pattern.has_value());
    EXPECT_EQ(m.max_args, 1u);
    // Limits: 8 choices of 32 bytes are fine.
    std::string eight = "allow_args = true\narg_choices = [";
    for (int i = 0; i < 8; ++i) {
        eight += (i ? ", \"" : "\"") + std::to_string(i) + std::string(31, 'x') + "\"";
    }
    eight += "]\n";
    const ActionMeta big = parse_action_meta(eight, "d", defaults());
    EXPECT_EQ(big.arg_choices.size(), 8u);
    EXPECT_EQ(big.arg_choices[7].size(), 32u);
    EXPECT_EQ(big.max_args, 8u);
}

TEST(ActionMeta, BadArgChoicesAreNamed) {
    EXPECT_THAT(error_of("allow_args = true\narg_choices = []\n"),
                AllOf(HasSubstr("actions.d/demo.toml:2"), HasSubstr("arg_choices"),
                      HasSubstr("1 to 8 choices, got 0")));
    EXPECT_THAT(error_of("allow_args = true\narg_choices = "
                         "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]\n"),
                AllOf(HasSubstr("arg_choices"), HasSubstr("1 to 8 choices, got 9")));
    EXPECT_THAT(
        error_of("allow_args = true\narg_choices = [\"ok\", \"" + std::string(33, 'x') + "\"]\n"),
        AllOf(HasSubstr("arg_choices"), HasSubstr("longer than 32 bytes")));
    EXPECT_THAT(error_of("allow_args = true\narg_choices = [\"on\", \"on\"]\n"),
                AllOf(HasSubstr("arg_choices"), HasSubstr("a choice is repeated")));
    EXPECT_THAT(error_of("allow_args = true\narg_choices = [\"on\", \"\"]\n"),
                AllOf(HasSubstr("arg_choices"), HasSubstr("a choice is empty")));
    EXPECT_THAT(error_of("allow_args = true\narg_choices = [\"a\\u0007\"]\n"),
                AllOf(HasSubstr("arg_choices"), HasSubstr("control characters")));
    EXPECT_THAT(error_of("allow_args = true\narg_choices = [\"a\", 2]\n"),
                AllOf(HasSubstr("arg_choices"), HasSubstr("expected a string")));
    EXPECT_THAT(error_of("allow_args = true\narg_choices = \"low\"\n"),
                AllOf(HasSubstr("arg_choices"), HasSubstr("expected an array of strings")));
}

TEST(ActionMeta, ArgChoicesNeedAllowArgsAndExcludeArgPattern) {
    EXPECT_THAT(error_of("arg_choices = [\"low\", \"high\"]\n"),
                AllOf(HasSubstr("actions.d/demo.toml:1"), HasSubstr("arg_choices"),
                      HasSubstr("allow_args is not true")));
    EXPECT_THAT(error_of("allow_args = false\narg_choices = [\"low\"]\n"),
                AllOf(HasSubstr("arg_choices"), HasSubstr("allow_args is not true")));
    EXPECT_THAT(error_of("allow_args = true\narg_pattern = \"[a-z]+\"\narg_choices = [\"low\"]\n"),
                AllOf(HasSubstr("actions.d/demo.toml:3"), HasSubstr("arg_choices"),
                      HasSubstr("together with arg_pattern")));
}

TEST(ActionMeta, EveryProblemIsReportedInLineOrder) {
    const std::string msg = error_of("timeout = 0\nbogus = 1\noutput_limit = true\n");
    const auto t = msg.find("timeout");
    const auto b = msg.find("bogus");
    const auto o = msg.find("output_limit");
    ASSERT_NE(t, std::string::npos);
    ASSERT_NE(b, std::string::npos);
    ASSERT_NE(o, std::string::npos);
    EXPECT_LT(t, b);
    EXPECT_LT(b, o);
}

TEST(ActionMeta, SyntaxErrorNamesTheFile) {
    EXPECT_THAT(error_of("timeout = = 3\n"),
                AllOf(HasSubstr("actions.d/demo.toml:1"), HasSubstr("invalid TOML")));
}

TEST(ActionMeta, NestedTablesAreUnknownKeys) {
    EXPECT_THAT(error_of("[extra]\nx = 1\n"), AllOf(HasSubstr("extra"), HasSubstr("unknown key")));
}

TEST(ActionMeta, LoadReadsTheFileAndNamesMissingOnes) {
    bzs::test::TempDir dir;
    bzs::test::write_file(dir / "a.toml", "timeout = 7\n");
    EXPECT_EQ(bzs::config::load_action_meta(dir / "a.toml", defaults()).timeout.count(), 7);
    try {
        bzs::config::load_action_meta(dir / "missing.toml", defaults());
        FAIL() << "expected ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_THAT(e.what(), AllOf(HasSubstr("missing.toml"), HasSubstr("cannot open")));
    }
}

}  // namespace
