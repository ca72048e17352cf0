// SPDX-License-Identifier: GPL-3.0-or-later
// Scanning a real actions directory: what becomes an action, what is ignored or
// refused and why, and the verifier's view of the result.
#include "actions/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "test_support.h"

namespace {

using bzs::actions::Action;
using bzs::actions::Problem;
using bzs::actions::Registry;
using bzs::test::TempDir;
using bzs::test::write_file;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr const char* kScript = "#!/bin/sh\nexit 0\n";

bzs::config::ActionsSection defaults() {
    bzs::config::ActionsSection d;
    d.default_timeout_seconds = 11;
    d.default_output_limit_bytes = 222;
    return d;
}

/// The problem recorded for `file`, or nullptr.
const Problem* problem_for(const Registry& r, const std::string& file) {
    const auto& ps = r.problems();
    const auto it =
        std::find_if(ps.begin(), ps.end(), [&](const Problem& p) { return p.file == file; });
    return it == ps.end() ? nullptr : &*it;
}

void set_mode(const std::filesystem::path& p, mode_t mode) {
    ASSERT_EQ(::chmod(p.c_str(), mode), 0);  // explicit: write_file's result depends on umask
}

TEST(Registry, ExecutableWithMetadataBecomesAnAction) {
    TempDir dir;
    write_file(dir / "garage", kScript, 0700);
    write_file(dir / "garage.toml",
               "description = \"Open the garage\"\ntimeout = 5\noutput_limit = 100\n"
               "allow_args = true\narg_pattern = \"(open|close)\"\nmax_args = 1\n"
               "concurrent = true\n",
               0600);
    const Registry r = Registry::load(dir.path(), defaults());
    EXPECT_TRUE(r.problems().empty());
    ASSERT_EQ(r.list().size(), 1u);
    const Action* a = r.find("garage");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->name, "garage");
    EXPECT_EQ(a->path, std::filesystem::absolute(dir / "garage"));
    EXPECT_TRUE(a->path.is_absolute());
    EXPECT_EQ(a->description, "Open the garage");
    EXPECT_EQ(a->timeout.count(), 5);
    EXPECT_EQ(a->output_limit, 100u);
    EXPECT_TRUE(a->allow_args);
    EXPECT_EQ(a->arg_pattern, "(open|close)");
    EXPECT_EQ(a->max_args, 1u);
    EXPECT_TRUE(a->concurrent);
    EXPECT_FALSE(a->confirm);
    EXPECT_TRUE(a->arg_choices.empty());
    EXPECT_EQ(r.dir(), std::filesystem::absolute(dir.path()));
}

TEST(Registry, ConfirmAndChoicesAreLoaded) {
    TempDir dir;
    write_file(dir / "heater", kScript, 0700);
    write_file(dir / "heater.toml",
               "confirm = true\nallow_args = true\narg_choices = [\"low\", \"high\"]\n"
               "max_args = 1\n",
               0600);
    const Registry r = Registry::load(dir.path(), defaults());
    EXPECT_TRUE(r.problems().empty());
    const Action* a = r.find("heater");
    ASSERT_NE(a, nullptr);
    EXPECT_TRUE(a->confirm);
    EXPECT_EQ(a->arg_choices, (std::vector<std::string>{"low", "high"}));
    EXPECT_FALSE(a->arg_pattern.has_value());
    EXPECT_EQ(a->max_args, 1u);
}

TEST(Registry, ActionWithoutMetadataGetsTheDefaults) {
    TempDir dir;
    write_file(dir / "reboot", kScript, 0755);
    const Registry r = Registry::load(dir.path(), defaults());
    const Action* a = r.find("reboot");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->timeout.count(), 11);
    EXPECT_EQ(a->output_limit, 222u);
    EXPECT_FALSE(a->allow_args);
    EXPECT_FALSE(a->arg_pattern.has_value());
    EXPECT_FALSE(a->concurrent);
    EXPECT_EQ(r.find("nope"), nullptr);
}

TEST(Registry, ListIsSortedByName) {
    TempDir dir;
    for (const char* n : {"zeta", "alpha", "Mid_1.sh"}) {
        write_file(dir / n, kScript, 0700);
    }
    const Registry r = Registry::load(dir.path(), defaults());
    std::vector<std::string> names;
    for (const auto& a : r.list()) {
        names.push_back(a.name);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"Mid_1.sh", "alpha", "zeta"}));
}

TEST(Registry, BadMetadataSkipsTheActionAndNamesTheKey) {
    TempDir dir;
    write_file(dir / "lights", kScript, 0700);
    write_file(dir / "lights.toml", "timeout = \"soon\"\n", 0600);
    const Registry r = Registry::load(dir.path(), defaults());
    EXPECT_EQ(r.find("lights"), nullptr);
    const Problem* p = problem_for(r, "lights");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->kind, Problem::Kind::BadMetadata);
    EXPECT_THAT(p->reason, AllOf(HasSubstr("lights.toml:1"), HasSubstr("timeout")));
}

TEST(Registry, NonExecutableFileIsIgnoredWithReason) {
    TempDir dir;
    write_file(dir / "notes", kScript, 0600);
    const Registry r = Registry::load(dir.path(), defaults());
    EXPECT_TRUE(r.list().empty());
    const Problem* p = problem_for(r, "notes");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->kind, Problem::Kind::Ignored);
    EXPECT_EQ(p->reason, "not executable");
}

TEST(Registry, GroupOrOtherWritableFilesAreRefused) {
    TempDir dir;
    write_file(dir / "groupw", kScript);
    set_mode(dir / "groupw", 0770);
    write_file(dir / "otherw", kScript);
    set_mode(dir / "otherw", 0757);
    const Registry r = Registry::load(dir.path(), defaults());
    EXPECT_TRUE(r.list().empty());
    for (const char* n : {"groupw", "otherw"}) {
        const Problem* p = problem_for(r, n);
        ASSERT_NE(p, nullptr) << n;
        EXPECT_EQ(p->kind, Problem::Kind::Refused) << n;
        EXPECT_THAT(p->reason, HasSubstr("writable by group or others")) << n;
    }
    EXPECT_THAT(problem_for(r, "groupw")->reason, HasSubstr("0770"));
}

TEST(Registry, WritableMetadataRefusesTheAction) {
    TempDir dir;
    write_file(dir / "door", kScript, 0700);
    write_file(dir / "door.toml", "allow_args = true\narg_pattern = \".*\"\n");
    set_mode(dir / "door.toml", 0666);
    const Registry r = Registry::load(dir.path(), defaults());
    EXPECT_EQ(r.find("door"), nullptr);
    const Problem* p = problem_for(r, "door");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->kind, Problem::Kind::Refused);
    EXPECT_THAT(p->reason, AllOf(HasSubstr("door.toml"), HasSubstr("writable")));
}

TEST(Registry, FileOwnedByAnotherUserIsRefused) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to give a file to another user";
    }
    TempDir dir;
    write_file(dir / "foreign", kScript, 0700);
    ASSERT_EQ(::chown((dir / "foreign").c_str(), 12345, 12345), 0);
    const Registry r = Registry::load(dir.path(), defaults());
    EXPECT_EQ(r.find("foreign"), nullptr);
    const Problem* p = problem_for(r, "foreign");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->kind, Problem::Kind::Refused);
    EXPECT_THAT(p->reason, HasSubstr("owned by uid 12345"));
}

TEST(Registry, BadNamesHiddenFilesAndNonFilesAreIgnored) {
    TempDir dir;
    for (const char* n : {"-dash", "has space", "semi;colon", ".hidden", "_under"}) {
        write_file(dir / n, kScript, 0700);
    }
    write_file(dir / std::string(65, 'a'), kScript, 0700);
    write_file(dir / std::string(64, 'b'), kScript, 0700);  // longest valid name
    std::filesystem::create_directory(dir / "subdir");
    std::filesystem::create_symlink(dir / "gone", dir / "dangling");
    write_file(dir / "orphan.toml", "timeout = 3\n", 0600);
    const Registry r = Registry::load(dir.path(), defaults());

    ASSERT_EQ(r.list().size(), 1u);
    EXPECT_EQ(r.list()[0].name, std::string(64, 'b'));
    for (const std::string& n : std::vector<std::string>{"-dash", "has space", "semi;colon",
                                                         "_under", std::string(65, 'a')}) {
        const Problem* p = problem_for(r, n);
        ASSERT_NE(p, nullptr) << n;
        EXPECT_EQ(p->kind, Problem::Kind::Ignored) << n;
        EXPECT_THAT(p->reason, HasSubstr("not a valid action name")) << n;
    }
    EXPECT_EQ(problem_for(r, ".hidden")->reason, "hidden file");
    EXPECT_EQ(problem_for(r, "subdir")->reason, "not a regular file");
    EXPECT_EQ(problem_for(r, "dangling")->reason, "broken symbolic link");
    EXPECT_EQ(problem_for(r, "orphan.toml")->reason, "metadata without an action file orphan");
}

TEST(Registry, SymlinkToSafeExecutableIsAnAction) {
    TempDir dir;
    std::filesystem::create_symlink("/bin/true", dir / "noop");
    const Registry r = Registry::load(dir.path(), defaults());
    ASSERT_NE(r.find("noop"), nullptr);
    EXPECT_EQ(r.find("noop")->path, std::filesystem::absolute(dir / "noop"));
}

TEST(Registry, WritableDirectoryLoadsNothing) {
    TempDir dir;
    write_file(dir / "ok", kScript, 0700);
    set_mode(dir.path(), 0777);
    const Registry r = Registry::load(dir.path(), defaults());
    EXPECT_TRUE(r.list().empty());
    const Problem* p = problem_for(r, "");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->kind, Problem::Kind::Refused);
    EXPECT_THAT(p->reason, AllOf(HasSubstr("actions directory"), HasSubstr("writable")));
}

TEST(Registry, MissingDirectoryThrowsNamingIt) {
    TempDir dir;
    try {
        Registry::load(dir / "absent", defaults());
        FAIL() << "expected ConfigError";
    } catch (const bzs::config::ConfigError& e) {
        EXPECT_THAT(e.what(), AllOf(HasSubstr("absent"), HasSubstr("cannot open")));
    }
}

TEST(Registry, RulesAndLookupGiveTheVerifiersView) {
    TempDir dir;
    write_file(dir / "plain", kScript, 0700);
    write_file(dir / "args", kScript, 0700);
    write_file(dir / "args.toml", "allow_args = true\n", 0600);
    write_file(dir / "two", kScript, 0700);
    write_file(dir / "two.toml", "allow_args = true\nmax_args = 2\n", 0600);
    write_file(dir / "level", kScript, 0700);
    write_file(dir / "level.toml", "allow_args = true\narg_choices = [\"low\", \"high\"]\n", 0600);
    bzs::core::auth::ActionLookup lookup;
    {
        const Registry r = Registry::load(dir.path(), defaults());
        const auto plain = r.rules("plain");
        ASSERT_TRUE(plain.has_value());
        EXPECT_FALSE(plain->allow_args);
        EXPECT_FALSE(plain->arg_pattern.has_value());
        EXPECT_EQ(plain->max_args, 0u);
        EXPECT_FALSE(r.rules("missing").has_value());
        lookup = r.lookup();
    }
    // The lookup keeps its snapshot after the Registry is gone.
    const auto args = lookup("args");
    ASSERT_TRUE(args.has_value());
    EXPECT_TRUE(args->allow_args);
    EXPECT_EQ(args->arg_pattern, std::string(bzs::config::kDefaultArgPattern));
    EXPECT_EQ(args->max_args, 8u);
    EXPECT_EQ(lookup("two")->max_args, 2u);
    EXPECT_TRUE(lookup("two")->arg_choices.empty());
    const auto level = lookup("level");
    ASSERT_TRUE(level.has_value());
    EXPECT_EQ(level->arg_choices, (std::vector<std::string>{"low", "high"}));
    EXPECT_FALSE(level->arg_pattern.has_value());
    EXPECT_FALSE(lookup("missing").has_value());
}

TEST(Registry, EmptyRegistryHasNothing) {
    const Registry r;
    EXPECT_TRUE(r.list().empty());
    EXPECT_TRUE(r.problems().empty());
    EXPECT_EQ(r.find("x"), nullptr);
}

TEST(CheckArguments, EnforcesAllowArgsCountAndPattern) {
    Action a;
    a.name = "demo";
    EXPECT_FALSE(bzs::actions::check_arguments(a, {}).has_value());
    EXPECT_THAT(bzs::actions::check_arguments(a, {"x"}).value_or(""),
                HasSubstr("takes no arguments"));
    a.allow_args = true;
    a.arg_pattern = "[a-z]+";
    a.max_args = 2;
    EXPECT_FALSE(bzs::actions::check_arguments(a, {"on", "off"}).has_value());
    EXPECT_THAT(bzs::actions::check_arguments(a, {"a", "b", "c"}).value_or(""),
                HasSubstr("at most 2"));
    // Full match: a matching prefix is not enough.
    EXPECT_THAT(bzs::actions::check_arguments(a, {"ok", "on; rm"}).value_or(""),
                HasSubstr("argument 2"));
}

TEST(CheckArguments, ChoicesAreMatchedExactly) {
    Action a;
    a.name = "heater";
    a.allow_args = true;
    a.arg_choices = {"low", "high"};
    a.max_args = 2;
    EXPECT_FALSE(bzs::actions::check_arguments(a, {}).has_value());
    EXPECT_FALSE(bzs::actions::check_arguments(a, {"low"}).has_value());
    EXPECT_FALSE(bzs::actions::check_arguments(a, {"high", "low"}).has_value());
    for (const char* bad : {"medium", "Low", "low ", "lo", ""}) {
        EXPECT_THAT(bzs::actions::check_arguments(a, {"low", bad}).value_or(""),
                    AllOf(HasSubstr("argument 2"), HasSubstr("not one of the choices"),
                          HasSubstr("heater")))
            << bad;
    }
    EXPECT_THAT(bzs::actions::check_arguments(a, {"low", "low", "low"}).value_or(""),
                HasSubstr("at most 2"));
    a.allow_args = false;
    EXPECT_THAT(bzs::actions::check_arguments(a, {"low"}).value_or(""),
                HasSubstr("takes no arguments"));
}

// --- the catalogue a device reads ---

class RegistryCatalogue : public ::testing::Test {
  protected:
    void SetUp() override {
        write_file(dir / "plain", kScript, 0700);
        write_file(dir / "plain.toml", "description = \"Lights on\"\n", 0600);
        write_file(dir / "free", kScript, 0700);
        write_file(dir / "free.toml", "allow_args = true\nmax_args = 3\n", 0600);
        write_file(dir / "pattern", kScript, 0700);
        write_file(dir / "pattern.toml", "allow_args = true\narg_pattern = \"[0-9]+\"\n", 0600);
        write_file(dir / "choices", kScript, 0700);
        write_file(dir / "choices.toml",
                   "confirm = true\nallow_args = true\narg_choices = [\"low\", \"high\"]\n"
                   "max_args = 1\ndescription = \"Heater\"\n",
                   0600);
        r = Registry::load(dir.path(), defaults());
        ASSERT_TRUE(r.problems().empty());
    }
    static std::vector<std::string> names(
        const std::vector<bzs::core::protocol::CatalogueEntry>& c) {
        std::vector<std::string> out;
        out.reserve(c.size());
        for (const auto& e : c) {
            out.push_back(e.name);
        }
        return out;
    }
    TempDir dir;
    Registry r;
};

TEST_F(RegistryCatalogue, ListsExactlyThePermittedLoadedActionsByName) {
    EXPECT_EQ(names(r.catalogue({"plain", "choices", "free", "pattern"})),
              (std::vector<std::string>{"choices", "free", "pattern", "plain"}));
    // Permitted but not loaded: left out; loaded but not permitted: left out.
    EXPECT_EQ(names(r.catalogue({"plain", "gone"})), (std::vector<std::string>{"plain"}));
    EXPECT_TRUE(r.catalogue({}).empty());
    EXPECT_TRUE(Registry().catalogue({"plain"}).empty());
}

TEST_F(RegistryCatalogue, EntriesSayHowThePhoneAsksForArguments) {
    using bzs::core::protocol::ArgKind;
    const auto c = r.catalogue({"plain", "choices", "free", "pattern"});
    ASSERT_EQ(c.size(), 4u);
    const auto& choices = c[0];
    EXPECT_EQ(choices.description, "Heater");
    EXPECT_TRUE(choices.confirm);
    EXPECT_EQ(choices.kind, ArgKind::Choices);
    EXPECT_EQ(choices.choices, (std::vector<std::string>{"low", "high"}));
    EXPECT_EQ(choices.max_args, 1);
    EXPECT_TRUE(choices.pattern.empty());
    const auto& free = c[1];
    EXPECT_EQ(free.kind, ArgKind::Pattern);  // allow_args alone has the default pattern
    EXPECT_EQ(free.pattern, std::string(bzs::config::kDefaultArgPattern));
    EXPECT_EQ(free.max_args, 3);
    EXPECT_FALSE(free.confirm);
    const auto& pattern = c[2];
    EXPECT_EQ(pattern.kind, ArgKind::Pattern);
    EXPECT_EQ(pattern.pattern, "[0-9]+");
    EXPECT_EQ(pattern.max_args, 8);
    EXPECT_TRUE(pattern.choices.empty());
    const auto& plain = c[3];
    EXPECT_EQ(plain.description, "Lights on");
    EXPECT_EQ(plain.kind, ArgKind::None);
    EXPECT_EQ(plain.max_args, 0);
    // Every entry encodes (the page encoder refuses what breaks the wire rules).
    for (const auto& e : c) {
        EXPECT_NO_THROW(bzs::core::protocol::encode_catalogue_entry(e)) << e.name;
    }
}

}  // namespace
