// SPDX-License-Identifier: GPL-3.0-or-later
// The client's pairing store: files, modes, duplicates, selection, counters.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "client/pairing_store.h"
#include "core/crypto/crypto.h"
#include "core/protocol/pairing_uri.h"
#include "test_support.h"

namespace bzs::client {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

core::protocol::Pairing make_pairing(std::uint8_t pi, std::uint8_t dev,
                                     const std::string& pi_name) {
    core::protocol::Pairing p;
    p.pi_id.fill(pi);
    p.device_id.fill(dev);
    p.pi_name = pi_name;
    p.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    p.totp.hash = core::crypto::Hash::Sha256;
    p.totp.digits = 8;
    p.totp.step_seconds = 60;
    p.device_name = "laptop";
    return p;
}

mode_t mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
}

std::string secret_base32(const core::protocol::Pairing& p) {
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

TEST(PairingStore, ImportCreatesPrivateFolderAndFileWithEveryField) {
    TempDir tmp;
    PairingStore store(tmp / "cfg" / "bluezscript");
    const auto p = make_pairing(0xA1, 0xB2, "kitchen-pi");
    const auto r = store.import(p, "", false);
    EXPECT_FALSE(r.replaced);
    EXPECT_EQ(r.pairing.name, "kitchen-pi");

    EXPECT_EQ(mode_of(tmp / "cfg" / "bluezscript"), 0700U);
    EXPECT_EQ(mode_of(store.pairings_dir()), 0700U);
    EXPECT_EQ(mode_of(r.pairing.file), 0600U);
    EXPECT_EQ(r.pairing.file.parent_path(), store.pairings_dir());

    const auto j = nlohmann::json::parse(test::read_file(r.pairing.file));
    EXPECT_EQ(j["pi_id"], core::crypto::hex_encode(p.pi_id));
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
    EXPECT_EQ(back.pairing.pi_id, p.pi_id);
    EXPECT_EQ(back.pairing.device_id, p.device_id);
    EXPECT_TRUE(core::crypto::ct_equal(back.pairing.secret.view(), p.secret.view()));
    EXPECT_EQ(back.pairing.totp.hash, core::crypto::Hash::Sha256);
    EXPECT_EQ(back.pairing.totp.digits, 8);
    EXPECT_EQ(back.pairing.totp.step_seconds, 60);
    EXPECT_EQ(back.pairing.device_name, "laptop");
    EXPECT_EQ(back.counter, 0U);
    EXPECT_FALSE(back.last_accepted_step.has_value());
}

TEST(PairingStore, NoTemporaryFilesAreLeftBehind) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto r = store.import(make_pairing(1, 2, "pi"), "", false);
    store.reserve_counter(r.pairing);
    store.record_accepted_step(r.pairing, 5);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(store.pairings_dir())) {
        names.push_back(e.path().filename().string());
    }
    ASSERT_EQ(names.size(), 1U);
    EXPECT_EQ(names[0], r.pairing.file.filename().string());
}

TEST(PairingStore, BothUriFormsImportTheSamePairingAndDuplicatesNeedForce) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto p = make_pairing(3, 4, "garage");
    const auto canonical = core::protocol::parse_pairing(core::protocol::pairing_to_uri(p));
    const auto app = core::protocol::parse_pairing(
        core::protocol::pairing_to_app_url(p, "https://pi.local:8443/app/"));
    ASSERT_TRUE(canonical.pairing.has_value()) << canonical.error;
    ASSERT_TRUE(app.pairing.has_value()) << app.error;

    store.import(*canonical.pairing, "", false);
    const std::string err = error_of([&] { store.import(*app.pairing, "", false); });
    EXPECT_NE(err.find("already imported as 'garage'"), std::string::npos) << err;
    EXPECT_NE(err.find("--force"), std::string::npos) << err;
    EXPECT_EQ(err.find(secret_base32(p)), std::string::npos);
    EXPECT_EQ(store.list().size(), 1U);
}

TEST(PairingStore, ForcedReimportKeepsTheCounterAndName) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto p = make_pairing(5, 6, "shed");
    const auto first = store.import(p, "my-shed", false);
    store.reserve_counter(first.pairing);
    store.reserve_counter(first.pairing);
    store.record_accepted_step(first.pairing, 1234);

    const auto again = store.import(p, "", true);
    EXPECT_TRUE(again.replaced);
    EXPECT_EQ(again.pairing.name, "my-shed");
    const auto back = store.find("my-shed");
    EXPECT_EQ(back.counter, 2U);  // the Pi never sees the counter go back
    EXPECT_EQ(back.last_accepted_step, 1234);
    EXPECT_EQ(store.list().size(), 1U);
}

TEST(PairingStore, AnotherDeviceForTheSamePiGetsASuffixedName) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    store.import(make_pairing(7, 1, "den"), "", false);
    const auto second = store.import(make_pairing(7, 2, "den"), "", false);
    EXPECT_EQ(second.pairing.name, "den-2");
    EXPECT_EQ(store.list().size(), 2U);
    // Both have Pi name "den"; an exact pairing name wins over that ambiguity.
    EXPECT_EQ(store.find("den").pairing.device_id[0], 1);
    EXPECT_EQ(store.find("den-2").pairing.device_id[0], 2);
    // The Pi id prefix is shared by both: ambiguous.
    EXPECT_NE(error_of([&] { (void)store.find("0707"); }).find("matches several pairings"),
              std::string::npos);
}

TEST(PairingStore, ExplicitNamesMustBeValidAndUnique) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    store.import(make_pairing(1, 1, "a"), "home", false);
    EXPECT_NE(error_of([&] {
                  store.import(make_pairing(2, 2, "b"), "home", false);
              }).find("already named 'home'"),
              std::string::npos);
    EXPECT_NE(error_of([&] { store.import(make_pairing(2, 2, "b"), "x/y", false); }).find("'/'"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  store.import(make_pairing(2, 2, "b"), "a\tb", false);
              }).find("control characters"),
              std::string::npos);
    EXPECT_EQ(store.list().size(), 1U);
}

TEST(PairingStore, SelectsByPiNameOrIdPrefixAndExplainsFailures) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    EXPECT_NE(error_of([&] { (void)store.find(""); }).find("no pairings yet"), std::string::npos);

    store.import(make_pairing(0xAB, 1, "alpha"), "one", false);
    store.import(make_pairing(0xCD, 2, "beta"), "two", false);
    store.import(make_pairing(0xCE, 3, "gamma"), "three", false);

    EXPECT_EQ(store.find("beta").name, "two");    // Pi name
    EXPECT_EQ(store.find("abab").name, "one");    // Pi id prefix
    EXPECT_EQ(store.find("CDCDCD").name, "two");  // either case
    EXPECT_NE(error_of([&] { (void)store.find("c"); }).find("no pairing named 'c'"),
              std::string::npos);  // too short for an id prefix
    const std::string several = error_of([&] { (void)store.find(""); });
    EXPECT_NE(several.find("several pairings"), std::string::npos) << several;
    EXPECT_NE(several.find("--pi"), std::string::npos) << several;
    store.import(make_pairing(0xCD, 9, "delta"), "four", false);
    const std::string ambiguous = error_of([&] { (void)store.find("cdcd"); });
    EXPECT_NE(ambiguous.find("matches several pairings"), std::string::npos) << ambiguous;
}

TEST(PairingStore, CountersAreStoredBeforeTheyAreHandedOut) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto r = store.import(make_pairing(1, 2, "pi"), "", false);
    EXPECT_EQ(store.reserve_counter(r.pairing), 1U);
    EXPECT_EQ(nlohmann::json::parse(test::read_file(r.pairing.file))["counter"], 1);
    EXPECT_EQ(store.reserve_counter(r.pairing), 2U);

    // A new process (a new store on the same folder) continues from the file.
    PairingStore later(tmp / "bluezscript");
    const auto p = later.find("pi");
    EXPECT_EQ(p.counter, 2U);
    EXPECT_EQ(later.reserve_counter(p), 3U);
    EXPECT_EQ(nlohmann::json::parse(test::read_file(r.pairing.file))["counter"], 3);
}

TEST(PairingStore, AcceptedStepOnlyMovesForward) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto r = store.import(make_pairing(1, 2, "pi"), "", false);
    store.record_accepted_step(r.pairing, 100);
    store.record_accepted_step(r.pairing, 90);
    EXPECT_EQ(store.find("pi").last_accepted_step, 100);
    store.record_accepted_step(r.pairing, 101);
    EXPECT_EQ(store.find("pi").last_accepted_step, 101);
}

TEST(PairingStore, RefusesAFileOthersCanReadButStillListsAndRemovesIt) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto p = make_pairing(1, 2, "pi");
    const auto r = store.import(p, "", false);
    ASSERT_EQ(::chmod(r.pairing.file.c_str(), 0640), 0);

    const std::string err = error_of([&] { (void)store.find("pi"); });
    EXPECT_NE(err.find("refusing to use pairing file " + r.pairing.file.string()),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("mode 0640"), std::string::npos) << err;
    EXPECT_NE(err.find("chmod 600 " + r.pairing.file.string()), std::string::npos) << err;
    EXPECT_EQ(err.find(secret_base32(p)), std::string::npos);
    EXPECT_NE(error_of([&] { store.reserve_counter(r.pairing); }).find("chmod 600"),
              std::string::npos);

    const auto listed = store.list();
    ASSERT_EQ(listed.size(), 1U);
    EXPECT_NE(listed[0].problem.find("chmod 600"), std::string::npos);

    ASSERT_EQ(::chmod(r.pairing.file.c_str(), 0600), 0);
    EXPECT_EQ(store.find("pi").name, "pi");
    ASSERT_EQ(::chmod(r.pairing.file.c_str(), 0604), 0);
    EXPECT_EQ(store.remove("pi").name, "pi");
    EXPECT_FALSE(fs::exists(r.pairing.file));
    EXPECT_TRUE(store.list().empty());
}

TEST(PairingStore, DamagedFilesAreReportedWithoutTheirSecret) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    const auto good = store.import(make_pairing(1, 1, "good"), "", false);
    const auto bad_p = make_pairing(2, 2, "bad");
    const auto bad = store.import(bad_p, "", false);
    auto j = nlohmann::json::parse(test::read_file(bad.pairing.file));
    j["totp"]["digits"] = 9;
    test::write_file(bad.pairing.file, j.dump());

    const auto listed = store.list();
    ASSERT_EQ(listed.size(), 2U);
    const auto& damaged = listed[0].name == "good" ? listed[1] : listed[0];
    EXPECT_NE(damaged.problem.find("'digits' is not 6..8"), std::string::npos) << damaged.problem;
    EXPECT_EQ(damaged.problem.find(secret_base32(bad_p)), std::string::npos);
    EXPECT_EQ(store.find("good").file, good.pairing.file);

    j["totp"]["digits"] = 6;
    j["secret"] = "not base32!";
    test::write_file(bad.pairing.file, j.dump());
    const auto again = store.list();
    const auto& d2 = again[0].name == "good" ? again[1] : again[0];
    EXPECT_NE(d2.problem.find("'secret' is not base32"), std::string::npos) << d2.problem;

    test::write_file(bad.pairing.file, "{not json");
    const auto third = store.list();
    const auto& d3 = third[0].name == "good" ? third[1] : third[0];
    EXPECT_NE(d3.problem.find("not valid JSON"), std::string::npos) << d3.problem;
}

TEST(PairingStore, RemoveNeedsANameAndReportsUnknownOnes) {
    TempDir tmp;
    PairingStore store(tmp / "bluezscript");
    EXPECT_NE(error_of([&] { store.remove("x"); }).find("no pairings yet"), std::string::npos);
    store.import(make_pairing(1, 1, "pi"), "", false);
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
