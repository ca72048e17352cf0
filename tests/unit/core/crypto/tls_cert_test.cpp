// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/crypto/tls_cert.h"

#include <gtest/gtest.h>

#include <regex>

#include "test_support.h"

namespace bzs::core::crypto {
namespace {

TEST(TlsCert, SelfSignedIsAnEcdsaP256CertificateWithItsFingerprint) {
    const auto s = make_self_signed("raspberrypi");
    EXPECT_EQ(s.cert_pem.rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
    EXPECT_EQ(s.key_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
    const std::string fp = fingerprint_sha256(s.cert_pem);
    EXPECT_TRUE(std::regex_match(fp, std::regex("([0-9A-F]{2}:){31}[0-9A-F]{2}"))) << fp;
    EXPECT_NE(make_self_signed("raspberrypi").cert_pem, s.cert_pem);  // fresh key and serial

    if (!bzs::test::have_program("openssl")) GTEST_SKIP() << "openssl CLI not installed";
    bzs::test::TempDir dir;
    bzs::test::write_file(dir / "c.pem", s.cert_pem);
    bzs::test::write_file(dir / "k.pem", s.key_pem);
    auto r = bzs::test::run_command({"openssl", "x509", "-in", (dir / "c.pem").string(), "-noout",
                                     "-fingerprint", "-sha256", "-subject", "-text"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("Fingerprint=" + fp), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("CN = raspberrypi"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("NIST CURVE: P-256"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ecdsa-with-SHA256"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("DNS:raspberrypi"), std::string::npos) << r.out;
    // The key belongs to the certificate.
    r = bzs::test::run_command(
        {"openssl", "x509", "-in", (dir / "c.pem").string(), "-noout", "-pubkey"});
    const auto r2 =
        bzs::test::run_command({"openssl", "pkey", "-in", (dir / "k.pem").string(), "-pubout"});
    EXPECT_EQ(r.out, r2.out);
}

TEST(TlsCert, BadInputIsRefused) {
    EXPECT_THROW(make_self_signed(""), TlsError);
    EXPECT_THROW(fingerprint_sha256("not a certificate"), TlsError);
    // A name that is no DNS name still makes a certificate (CN only).
    EXPECT_NO_THROW(make_self_signed("Kitchen Pi"));
}

}  // namespace
}  // namespace bzs::core::crypto
