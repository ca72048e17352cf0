// SPDX-License-Identifier: GPL-3.0-or-later
// util::write_private_file: the one writer of private files (master key, TLS key,
// client pairings). Real files in a temporary folder.
#include "util/private_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_support.h"

namespace bzs::util {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

mode_t mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
}

std::size_t entries(const fs::path& dir) {
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), {}));
}

TEST(PrivateFile, WritesExactlyMode0600WhateverTheUmask) {
    const test::TempDir dir;
    const mode_t old = ::umask(0);
    const bool written = write_private_file(dir.path() / "key", "secret\n");
    ::umask(old);
    EXPECT_TRUE(written);
    EXPECT_EQ(read(dir.path() / "key"), "secret\n");
    EXPECT_EQ(mode_of(dir.path() / "key"), 0600U);
    EXPECT_EQ(entries(dir.path()), 1U);  // no temporary file left
}

TEST(PrivateFile, ReplaceOverwritesAndTightensTheMode) {
    const test::TempDir dir;
    const fs::path f = dir.path() / "pairing.json";
    std::ofstream(f) << "old";
    fs::permissions(f, fs::perms::all);
    EXPECT_TRUE(write_private_file(f, "new"));
    EXPECT_EQ(read(f), "new");
    EXPECT_EQ(mode_of(f), 0600U);
    EXPECT_EQ(entries(dir.path()), 1U);
}

TEST(PrivateFile, IfAbsentKeepsAnExistingFile) {
    const test::TempDir dir;
    const fs::path f = dir.path() / "master.key";
    EXPECT_TRUE(write_private_file(f, "first", WriteMode::IfAbsent));
    EXPECT_FALSE(write_private_file(f, "second", WriteMode::IfAbsent));
    EXPECT_EQ(read(f), "first");
    EXPECT_EQ(entries(dir.path()), 1U);
}

TEST(PrivateFile, FailureNamesTheStepAndTheFileAndLeavesNothing) {
    const test::TempDir dir;
    const fs::path missing = dir.path() / "no-such-folder" / "key";
    try {
        write_private_file(missing, "x");
        FAIL() << "expected FileError";
    } catch (const FileError& e) {
        EXPECT_EQ(e.step(), "create");
        EXPECT_EQ(e.code(), ENOENT);
        EXPECT_THAT(e.what(), HasSubstr(missing.string()));
    }
    EXPECT_EQ(entries(dir.path()), 0U);
}

TEST(PrivateFile, ReplacingAFolderFailsAtRenameAndLeavesNoTemporaryFile) {
    const test::TempDir dir;
    fs::create_directory(dir.path() / "taken");
    std::ofstream(dir.path() / "taken" / "inside") << "x";
    try {
        write_private_file(dir.path() / "taken", "x");
        FAIL() << "expected FileError";
    } catch (const FileError& e) {
        EXPECT_EQ(e.step(), "rename");
    }
    EXPECT_EQ(entries(dir.path()), 1U);
}

}  // namespace
}  // namespace bzs::util
