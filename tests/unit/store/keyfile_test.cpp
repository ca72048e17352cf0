// SPDX-License-Identifier: GPL-3.0-or-later
// Tests of the master key file (store/keyfile.h): private creation, refusal of
// files others can read, parsing errors, require_private, and rotation.
#include "store/keyfile.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "store_fixture.h"
#include "test_support.h"

namespace bzs::store {
namespace {

using test::mode_of;
using testing::ring_with;

/// Expects `fn` to throw KeyFileError whose message contains `needle`.
template <typename Fn>
void expect_keyfile_error(Fn&& fn, const std::string& needle) {
    testing::expect_error<KeyFileError>(std::forward<Fn>(fn), "KeyFileError", needle);
}

std::vector<std::string> key_lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find('\n', pos);
        if (end == std::string::npos) {
            end = text.size();
        }
        std::string line = text.substr(pos, end - pos);
        if (!line.empty() && line[0] != '#') {
            out.push_back(line);
        }
        pos = end + 1;
    }
    return out;
}

/// Restores the process umask when the test ends.
class UmaskGuard {
  public:
    explicit UmaskGuard(mode_t m) : old_(::umask(m)) {}
    ~UmaskGuard() { ::umask(old_); }
    UmaskGuard(const UmaskGuard&) = delete;
    UmaskGuard& operator=(const UmaskGuard&) = delete;

  private:
    mode_t old_;
};

bool same_key(const KeyRing& a, std::uint32_t id_a, const KeyRing& b, std::uint32_t id_b) {
    const core::crypto::Bytes msg{1, 2, 3};
    const std::string token = a.find(id_a)->encrypt(msg, testing::kNow);
    return b.find(id_b)->decrypt(token, testing::kNow).ok();
}

TEST(KeyFile, CreatedPrivateEvenWithPermissiveUmask) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    UmaskGuard umask_zero(0);
    const KeyRing ring = load_or_create_keyfile(path);
    EXPECT_EQ(mode_of(path), 0600U);
    ASSERT_EQ(ring.size(), 1U);
    EXPECT_EQ(ring.current_id(), 1U);
    const auto lines = key_lines(test::read_file(path));
    ASSERT_EQ(lines.size(), 1U);
    EXPECT_EQ(lines[0].rfind("1 ", 0), 0U) << lines[0];
    // No temp file is left behind.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) {
        ++entries;
    }
    EXPECT_EQ(entries, 1U);
}

TEST(KeyFile, SecondLoadReturnsTheSameKey) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    const KeyRing first = load_or_create_keyfile(path);
    const KeyRing again = load_or_create_keyfile(path);
    const KeyRing loaded = load_keyfile(path);
    EXPECT_TRUE(same_key(first, 1, again, 1));
    EXPECT_TRUE(same_key(first, 1, loaded, 1));
}

TEST(KeyFile, MissingFolderIsAClearError) {
    test::TempDir dir;
    const auto path = dir / "no-such-folder" / "master.key";
    expect_keyfile_error([&] { (void)load_or_create_keyfile(path); },
                         "cannot write master key file " + path.string());
}

TEST(KeyFile, LoadOfMissingFileNamesThePath) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    expect_keyfile_error([&] { (void)load_keyfile(path); },
                         "cannot open master key file " + path.string());
}

TEST(KeyFile, RefusesGroupReadableFile) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    (void)load_or_create_keyfile(path);
    ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
    const std::string expected = "master key file " + path.string() +
                                 " is readable by group/others (mode 0640); run chmod 600 " +
                                 path.string();
    expect_keyfile_error([&] { (void)load_keyfile(path); }, expected);
    expect_keyfile_error([&] { (void)load_or_create_keyfile(path); }, expected);
}

TEST(KeyFile, RefusesOtherReadableFile) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    (void)load_or_create_keyfile(path);
    ASSERT_EQ(::chmod(path.c_str(), 0604), 0);
    expect_keyfile_error([&] { (void)load_keyfile(path); },
                         "master key file " + path.string() +
                             " is readable by group/others (mode 0604); run chmod 600 " +
                             path.string());
}

TEST(KeyFile, RefusesGroupWritableFile) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    (void)load_or_create_keyfile(path);
    ASSERT_EQ(::chmod(path.c_str(), 0620), 0);
    expect_keyfile_error([&] { (void)load_keyfile(path); },
                         "is writable by group/others (mode 0620); run chmod 600");
}

TEST(KeyFile, RefusesFileOwnedByAnotherUser) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "changing a file's owner needs root";
    }
    test::TempDir dir;
    const auto path = dir / "master.key";
    (void)load_or_create_keyfile(path);
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
    expect_keyfile_error([&] { (void)load_keyfile(path); },
                         "master key file " + path.string() +
                             " is owned by uid 65534, not by the current user (uid 0)");
}

TEST(KeyFile, ParseErrorsNameTheLineAndNeverTheKey) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    const std::string good = core::crypto::Fernet::generate_key_base64();
    // A plausible key with one character changed: not valid base64url.
    std::string bad_key = good;
    bad_key[3] = '*';
    struct Case {
        std::string content;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {"", "contains no keys"},
        {"# only a comment\n\n", "contains no keys"},
        {good + "\n", "line 1: expected \"<id> <base64url key>\""},
        {"0 " + good + "\n", "line 1: the key id must be a number from 1 to 4294967295"},
        {"x1 " + good + "\n", "line 1: the key id must be a number from 1 to 4294967295"},
        {"4294967296 " + good + "\n", "line 1: the key id must be a number from 1 to 4294967295"},
        {"1 " + good + "\n\n1 " + good + "\n", "line 3: key id 1 appears twice"},
        {"# comment\n2 " + bad_key + "\n", "line 2: key 2 is not a valid Fernet key"},
        {"1 " + good + " extra\n", "line 1: expected \"<id> <base64url key>\""},
        {"1 AAAA\n", "line 1: key 1 is not a valid Fernet key"},
    };
    for (const auto& c : cases) {
        test::write_file(path, c.content, 0600);
        try {
            (void)load_keyfile(path);
            ADD_FAILURE() << "accepted: " << c.content;
        } catch (const KeyFileError& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find("master key file " + path.string()), std::string::npos) << msg;
            EXPECT_NE(msg.find(c.expected), std::string::npos)
                << "message: " << msg << "\nexpected: " << c.expected;
            EXPECT_EQ(msg.find(good), std::string::npos) << "message leaks the key: " << msg;
            EXPECT_EQ(msg.find(bad_key), std::string::npos) << "message leaks the key: " << msg;
        }
    }
}

TEST(KeyFile, AcceptsCommentsBlankLinesAndSeveralKeys) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    const std::string k1 = core::crypto::Fernet::generate_key_base64();
    const std::string k7 = core::crypto::Fernet::generate_key_base64();
    test::write_file(path, "# keys\n\n7 " + k7 + "\r\n  1\t" + k1 + "  \n", 0600);
    const KeyRing ring = load_keyfile(path);
    ASSERT_EQ(ring.size(), 2U);
    EXPECT_EQ(ring.current_id(), 7U);
    EXPECT_TRUE(same_key(ring, 7, ring_with(7, k7), 7));
    EXPECT_TRUE(same_key(ring, 1, ring_with(1, k1), 1));
}

TEST(KeyRing, EmptyRingAndBadIdsAreErrors) {
    KeyRing ring;
    EXPECT_THROW((void)ring.current_id(), KeyFileError);
    EXPECT_THROW((void)ring.current(), KeyFileError);
    EXPECT_EQ(ring.find(1), nullptr);
    auto key = core::crypto::Fernet::from_base64(core::crypto::Fernet::generate_key_base64());
    ASSERT_TRUE(key);
    EXPECT_THROW(ring.add(0, *key), KeyFileError);
    ring.add(3, *key);
    EXPECT_THROW(ring.add(3, *key), KeyFileError);
    ring.add(2, *key);
    EXPECT_EQ(ring.current_id(), 3U);
}

TEST(RequirePrivate, Files) {
    test::TempDir dir;
    const auto db = dir / "state.db";
    test::write_file(db, "x", 0600);
    EXPECT_NO_THROW(require_private(db, "database"));
    ASSERT_EQ(::chmod(db.c_str(), 0400), 0);
    EXPECT_NO_THROW(require_private(db, "database"));
    ASSERT_EQ(::chmod(db.c_str(), 0644), 0);
    expect_keyfile_error([&] { require_private(db, "database"); },
                         "database " + db.string() +
                             " is readable by group/others (mode 0644); run chmod 600 " +
                             db.string());
    expect_keyfile_error([&] { require_private(db); }, "file " + db.string() + " is readable");
}

TEST(RequirePrivate, Folders) {
    test::TempDir dir;
    const auto state = dir / "state";
    std::filesystem::create_directory(state);
    ASSERT_EQ(::chmod(state.c_str(), 0700), 0);
    EXPECT_NO_THROW(require_private(state, "state folder"));
    ASSERT_EQ(::chmod(state.c_str(), 0755), 0);
    expect_keyfile_error([&] { require_private(state, "state folder"); },
                         "state folder " + state.string() +
                             " is readable by group/others (mode 0755); run chmod 700 " +
                             state.string());
    ASSERT_EQ(::chmod(state.c_str(), 0711), 0);
    expect_keyfile_error(
        [&] { require_private(state); },
        "folder " + state.string() + " is accessible by group/others (mode 0711); run chmod 700");
}

TEST(RequirePrivate, MissingPathIsAClearError) {
    test::TempDir dir;
    const auto p = dir / "missing";
    expect_keyfile_error([&] { require_private(p, "database"); },
                         "cannot check permissions of database " + p.string());
}

TEST(Rotation, WritesBothKeysThenOnlyTheNewOne) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    const KeyRing old_ring = load_or_create_keyfile(path);
    const std::string old_line = key_lines(test::read_file(path)).at(0);

    bool called = false;
    const std::uint32_t new_id = rotate_keyfile(path, [&](const KeyRing& both) {
        called = true;
        // During re-encryption the file holds the old and the new key, 0600.
        EXPECT_EQ(mode_of(path), 0600U);
        const auto lines = key_lines(test::read_file(path));
        ASSERT_EQ(lines.size(), 2U);
        EXPECT_EQ(lines[0], old_line);
        EXPECT_EQ(lines[1].rfind("2 ", 0), 0U);
        ASSERT_EQ(both.size(), 2U);
        EXPECT_EQ(both.current_id(), 2U);
        EXPECT_TRUE(same_key(old_ring, 1, both, 1));
    });
    EXPECT_TRUE(called);
    EXPECT_EQ(new_id, 2U);
    EXPECT_EQ(mode_of(path), 0600U);
    const std::string after = test::read_file(path);
    const auto lines = key_lines(after);
    ASSERT_EQ(lines.size(), 1U);
    EXPECT_EQ(lines[0].rfind("2 ", 0), 0U);
    EXPECT_EQ(after.find(old_line.substr(2)), std::string::npos) << "the old key is still there";
    const KeyRing now = load_keyfile(path);
    EXPECT_EQ(now.current_id(), 2U);
    EXPECT_EQ(now.find(1), nullptr);
}

TEST(Rotation, FailedReencryptionKeepsBothKeys) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    (void)load_or_create_keyfile(path);
    EXPECT_THROW(rotate_keyfile(path, [](const KeyRing&) { throw std::runtime_error("db busy"); }),
                 std::runtime_error);
    const KeyRing ring = load_keyfile(path);
    EXPECT_EQ(ring.size(), 2U);
    EXPECT_NE(ring.find(1), nullptr);
    EXPECT_NE(ring.find(2), nullptr);
    // The next rotation continues from the highest id.
    EXPECT_EQ(rotate_keyfile(path, [](const KeyRing&) {}), 3U);
    EXPECT_EQ(load_keyfile(path).size(), 1U);
}

TEST(Rotation, RefusesAPublicKeyFile) {
    test::TempDir dir;
    const auto path = dir / "master.key";
    (void)load_or_create_keyfile(path);
    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
    bool called = false;
    expect_keyfile_error(
        [&] { (void)rotate_keyfile(path, [&](const KeyRing&) { called = true; }); },
        "is readable by group/others (mode 0644)");
    EXPECT_FALSE(called);
}

}  // namespace
}  // namespace bzs::store
