// SPDX-License-Identifier: GPL-3.0-or-later
// The client's pairing store: format 2 files, modes, duplicates, selection, counters,
// files of protocol 1.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "client/pairing_store.h"
#include "core/crypto/crypto.h"
#include "test_support.h"

namespace bzs::client {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

Credential make_pairing(std::uint8_t pi, std::uint8_t dev, const std::string& pi_name) {
    Credential p;
    p.pi_id.fill(pi);
    p.device_id.fill(dev);
    p.pi_name = pi_name;
    p.pi_public.fill(0x04);
    p.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    p.totp.hash = core::crypto::Hash::Sha256;
    p.totp.digits = 8;
    p.totp.step_seconds = 60;
    p.label = "laptop";
    return p;
}

mode_t mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
}

std::string secret_base32(const Credential& p) {
    return core::crypto::base32_encode(p.secret.view(), false);
}

// Runs `f` and returns the ClientStoreError message it throws ("" if none).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const PairingStoreError& e) {
        return e.what();
    }
    return "";
}

TEST(PairingStore, AddCreatesPrivateFolderAndFileWithEveryField) {
    TempDir tmp;
    PairingStore store(tmp / "cfg" / "bluezscript");
    const auto p = make_pairing(0xA1, 0xB2, "kitchen-pi");
    const auto r = store.add(p, "", 0);
    EXPECT_EQ(r.name, "kitchen-pi");

    EXPECT_EQ(mode_of(tmp / "cfg" / "bluezscript"), 0700U);
    EXPECT_EQ(mode_of(store.pairings_dir()), 0700U);
    EXPECT_EQ(mode_of(r.file), 0600U);
    EXPECT_EQ(r.file.parent_path(), store.pairings_dir());

    const auto j = nlohmann::json::parse(test::read_file(r.file));
    EXPECT_EQ(j["version"], 2);
    EXPECT_EQ(j["pi_id"], core::crypto::hex_encode(p.pi_id));
    EXPECT_EQ(j["pi_public"], core::crypto::hex_encode(p.pi_public));
    EXPECT_EQ(j["pi_name"], "kitchen-pi");
    EXPECT_EQ(j["device_id"], core::crypto::hex_encode(p.device_id));
    EXPECT_EQ(j["device_label"], "laptop");
    EXPECT_EQ(j["secret"], secret_base32(p));
    EXPECT_EQ(j["totp"]["alg"], "SHA256");
    EXPECT_EQ(j["totp"]["digits"], 8);
    EXPECT_EQ(j["totp"]["period"], 60);
    EXPECT_EQ(j["counter"], 0);

    const ClientPairing back = store.find("");
    EXPECT_EQ(back.name, "kitchen-pi");
    EXPECT_EQ(back.credential.pi_id, p.pi_id);
    EXPECT_EQ(back.credential.pi_public, p.pi_public);
    EXPECT_EQ(back.credential.device_id, p.device_id);
    EXPECT_TRUE(core::crypto::ct_equal(back.credential.secret.view(), p.secret.view()));
    EXPECT_EQ(back.credential.totp.hash, core::crypto::Hash::Sha256);
    EXPECT_EQ(back.credential.totp.digits, 8);
    EXPECT_EQ(back.credential.totp.step_seconds, 60);
    EXPECT_EQ(back.credential.label, "laptop");
    EXPECT_EQ(back.counter, 0U);
}

TEST(PairingStore, NoTemporaryFilesAreLeftBehind) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto r = store.add(make_pairing(1, 2, "pi"), "", 0);
    store.reserve_counter(r);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(store.pairings_dir())) {
        names.push_back(e.path().filename().string());
    }
    ASSERT_EQ(names.size(), 1U);
    EXPECT_EQ(names[0], r.file.filename().string());
}

TEST(PairingStore, AnotherDeviceForTheSamePiGetsASuffixedName) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    store.add(make_pairing(7, 1, "den"), "", 0);
    const auto second = store.add(make_pairing(7, 2, "den"), "", 0);
    EXPECT_EQ(second.name, "den-2");
    EXPECT_EQ(store.list().size(), 2U);
    // Both have Pi name "den"; an exact pairing name wins over that ambiguity.
    EXPECT_EQ(store.find("den").credential.device_id[0], 1);
    EXPECT_EQ(store.find("den-2").credential.device_id[0], 2);
    // The Pi id prefix is shared by both: ambiguous.
    EXPECT_NE(error_of([&] { (void)store.find("0707"); }).find("matches several pairings"),
              std::string::npos);
}

TEST(PairingStore, ExplicitNamesMustBeValidAndUnique) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    store.add(make_pairing(1, 1, "a"), "home", 0);
    EXPECT_NE(error_of([&] {
                  store.add(make_pairing(2, 2, "b"), "home", 0);
              }).find("already named 'home'"),
              std::string::npos);
    EXPECT_NE(error_of([&] { store.add(make_pairing(2, 2, "b"), "x/y", 0); }).find("'/'"),
              std::string::npos);
    EXPECT_NE(
        error_of([&] { store.add(make_pairing(2, 2, "b"), "a\tb", 0); }).find("control characters"),
        std::string::npos);
    EXPECT_EQ(store.list().size(), 1U);
}

TEST(PairingStore, SelectsByPiNameOrIdPrefixAndExplainsFailures) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    EXPECT_NE(error_of([&] { (void)store.find(""); }).find("no pairings yet"), std::string::npos);

    store.add(make_pairing(0xAB, 1, "alpha"), "one", 0);
    store.add(make_pairing(0xCD, 2, "beta"), "two", 0);
    store.add(make_pairing(0xCE, 3, "gamma"), "three", 0);

    EXPECT_EQ(store.find("beta").name, "two");    // Pi name
    EXPECT_EQ(store.find("abab").name, "one");    // Pi id prefix
    EXPECT_EQ(store.find("CDCDCD").name, "two");  // either case
    EXPECT_NE(error_of([&] { (void)store.find("c"); }).find("no pairing named 'c'"),
              std::string::npos);  // too short for an id prefix
    const std::string several = error_of([&] { (void)store.find(""); });
    EXPECT_NE(several.find("several pairings"), std::string::npos) << several;
    EXPECT_NE(several.find("--pi"), std::string::npos) << several;
    store.add(make_pairing(0xCD, 9, "delta"), "four", 0);
    const std::string ambiguous = error_of([&] { (void)store.find("cdcd"); });
    EXPECT_NE(ambiguous.find("matches several pairings"), std::string::npos) << ambiguous;
}

TEST(PairingStore, CountersAreStoredBeforeTheyAreHandedOut) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto r = store.add(make_pairing(1, 2, "pi"), "", 0);
    EXPECT_EQ(store.reserve_counter(r), 1U);
    EXPECT_EQ(nlohmann::json::parse(test::read_file(r.file))["counter"], 1);
    EXPECT_EQ(store.reserve_counter(r), 2U);

    // A new process (a new store on the same folder) continues from the file.
    PairingStore later(tmp / "bluezscript");
    const auto p = later.find("pi");
    EXPECT_EQ(p.counter, 2U);
    EXPECT_EQ(later.reserve_counter(p), 3U);
    EXPECT_EQ(nlohmann::json::parse(test::read_file(r.file))["counter"], 3);
}

TEST(PairingStore, APairingOfTheSameDeviceOrNameIsRefusedBeforeTheCodeIsUsed) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto p = make_pairing(3, 4, "garage");
    EXPECT_EQ(error_of([&] { store.check_new(p.pi_id, p.device_id, ""); }), "");
    store.add(p, "", 0);
    const std::string err = error_of([&] { store.check_new(p.pi_id, p.device_id, ""); });
    EXPECT_NE(err.find("already paired here as 'garage'"), std::string::npos) << err;
    EXPECT_NE(err.find("client remove garage"), std::string::npos) << err;
    EXPECT_EQ(err.find(secret_base32(p)), std::string::npos);
    EXPECT_NE(error_of([&] { store.add(p, "", 0); }).find("already paired"), std::string::npos);
    const auto other = make_pairing(3, 5, "garage");
    EXPECT_NE(error_of([&] {
                  store.check_new(other.pi_id, other.device_id, "garage");
              }).find("already named 'garage'"),
              std::string::npos);
    EXPECT_EQ(store.list().size(), 1U);
}

TEST(PairingStore, AddKeepsTheCounterTheConfirmingRequestUsed) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto r = store.add(make_pairing(1, 2, "pi"), "", 1);
    EXPECT_EQ(store.find("pi").counter, 1U);
    EXPECT_EQ(store.reserve_counter(r), 2U);
}

TEST(PairingStore, AFileOfProtocolOneIsRefusedWithTheFixAndCanBeRemoved) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    fs::create_directories(store.pairings_dir());
    ::chmod(store.pairings_dir().c_str(), 0700);
    const fs::path old = store.pairings_dir() / "5a5a-1717.json";
    test::write_file(old,
                     R"({"version":1,"name":"kitchen","pi_id":"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",)"
                     R"("pi_name":"kitchen","device_id":"17171717171717171717171717171717",)"
                     R"("device_label":"","secret":"TPH6JOLOTNOGGS5V6Q2TZLQ7QRIZ5DBN",)"
                     R"("totp":{"alg":"SHA1","digits":6,"period":30},"counter":3,)"
                     R"("last_accepted_step":null,"imported":1700000000})");
    const auto listed = store.list();
    ASSERT_EQ(listed.size(), 1U);
    EXPECT_EQ(listed[0].name, "kitchen");
    EXPECT_NE(listed[0].problem.find("made with protocol 1; pair again with a new link"),
              std::string::npos)
        << listed[0].problem;
    EXPECT_EQ(listed[0].problem.find("TPH6JOLOT"), std::string::npos);
    const std::string by_name = error_of([&] { (void)store.find("kitchen"); });
    EXPECT_NE(by_name.find("pairing 'kitchen' was made with protocol 1"), std::string::npos)
        << by_name;
    const std::string only = error_of([&] { (void)store.find(""); });
    EXPECT_NE(only.find("protocol 1: pair again with a new link"), std::string::npos) << only;
    EXPECT_EQ(store.remove("kitchen").name, "kitchen");
    EXPECT_FALSE(fs::exists(old));
}

TEST(PairingStore, RefusesAFileOthersCanReadButStillListsAndRemovesIt) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto p = make_pairing(1, 2, "pi");
    const auto r = store.add(p, "", 0);
    ASSERT_EQ(::chmod(r.file.c_str(), 0640), 0);

    const std::string err = error_of([&] { (void)store.find("pi"); });
    EXPECT_NE(err.find("refusing to use pairing file " + r.file.string()), std::string::npos)
        << err;
    EXPECT_NE(err.find("mode 0640"), std::string::npos) << err;
    EXPECT_NE(err.find("chmod 600 " + r.file.string()), std::string::npos) << err;
    EXPECT_EQ(err.find(secret_base32(p)), std::string::npos);
    EXPECT_NE(error_of([&] { store.reserve_counter(r); }).find("chmod 600"), std::string::npos);

    const auto listed = store.list();
    ASSERT_EQ(listed.size(), 1U);
    EXPECT_NE(listed[0].problem.find("chmod 600"), std::string::npos);

    ASSERT_EQ(::chmod(r.file.c_str(), 0600), 0);
    EXPECT_EQ(store.find("pi").name, "pi");
    ASSERT_EQ(::chmod(r.file.c_str(), 0604), 0);
    EXPECT_EQ(store.remove("pi").name, "pi");
    EXPECT_FALSE(fs::exists(r.file));
    EXPECT_TRUE(store.list().empty());
}

TEST(PairingStore, DamagedFilesAreReportedWithoutTheirSecret) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto good = store.add(make_pairing(1, 1, "good"), "", 0);
    const auto bad_p = make_pairing(2, 2, "bad");
    const auto bad = store.add(bad_p, "", 0);
    auto j = nlohmann::json::parse(test::read_file(bad.file));
    j["totp"]["digits"] = 9;
    test::write_file(bad.file, j.dump());

    const auto listed = store.list();
    ASSERT_EQ(listed.size(), 2U);
    const auto& damaged = listed[0].name == "good" ? listed[1] : listed[0];
    EXPECT_NE(damaged.problem.find("'digits' is not 6..8"), std::string::npos) << damaged.problem;
    EXPECT_EQ(damaged.problem.find(secret_base32(bad_p)), std::string::npos);
    EXPECT_EQ(store.find("good").file, good.file);

    j["totp"]["digits"] = 6;
    j["secret"] = "not base32!";
    test::write_file(bad.file, j.dump());
    const auto again = store.list();
    const auto& d2 = again[0].name == "good" ? again[1] : again[0];
    EXPECT_NE(d2.problem.find("'secret' is not base32"), std::string::npos) << d2.problem;

    test::write_file(bad.file, "{not json");
    const auto third = store.list();
    const auto& d3 = third[0].name == "good" ? third[1] : third[0];
    EXPECT_NE(d3.problem.find("not valid JSON"), std::string::npos) << d3.problem;
}

TEST(PairingStore, RemoveNeedsANameAndReportsUnknownOnes) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    EXPECT_NE(error_of([&] { store.remove("x"); }).find("no pairings yet"), std::string::npos);
    store.add(make_pairing(1, 1, "pi"), "", 0);
    EXPECT_NE(error_of([&] { store.remove("nope"); }).find("no pairing named 'nope'"),
              std::string::npos);
    EXPECT_NE(error_of([&] { store.remove(""); }).find("name the pairing"), std::string::npos);
    EXPECT_EQ(store.list().size(), 1U);
}

TEST(PairingStore, DefaultRootFollowsXdgConfigHome) {
    const char* old_xdg = std::getenv("XDG_CONFIG_HOME");
    const char* old_home = std::getenv("HOME");
    const std::string saved_xdg = old_xdg != nullptr ? old_xdg : "";
    const std::string saved_home = old_home != nullptr ? old_home : "";

    ::setenv("XDG_CONFIG_HOME", "/tmp/xdg-test", 1);
    ::setenv("HOME", "/home/someone", 1);
    EXPECT_EQ(PairingStore::default_root(), fs::path("/tmp/xdg-test/bluezscript"));
    ::setenv("XDG_CONFIG_HOME", "relative/ignored", 1);
    EXPECT_EQ(PairingStore::default_root(), fs::path("/home/someone/.config/bluezscript"));
    ::unsetenv("XDG_CONFIG_HOME");
    EXPECT_EQ(PairingStore::default_root(), fs::path("/home/someone/.config/bluezscript"));

    if (old_xdg != nullptr) {
        ::setenv("XDG_CONFIG_HOME", saved_xdg.c_str(), 1);
    }
    if (old_home != nullptr) {
        ::setenv("HOME", saved_home.c_str(), 1);
    } else {
        ::unsetenv("HOME");
    }
}

}  // namespace
}  // namespace bzs::client
