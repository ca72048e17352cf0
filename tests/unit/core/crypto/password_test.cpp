// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/crypto/password.h"

#include <gtest/gtest.h>

namespace bzs::core::crypto {
namespace {

TEST(Password, DefaultHashIsScryptWithTheDocumentedParameters) {
    const std::string h = hash_password("correct horse battery");
    EXPECT_EQ(h.rfind("scrypt$32768$8$1$", 0), 0u) << h;
    EXPECT_EQ(h.find("correct"), std::string::npos);
    EXPECT_TRUE(verify_password("correct horse battery", h));
    EXPECT_FALSE(verify_password("correct horse batterY", h));
    EXPECT_FALSE(verify_password("", h));
}

TEST(Password, SaltMakesEveryHashDifferent) {
    const ScryptParams cheap{1024, 8, 1};
    EXPECT_NE(hash_password("same password", cheap), hash_password("same password", cheap));
}

TEST(Password, MalformedOrAbusiveHashesThrowWithoutThePassword) {
    for (const std::string bad :
         {"", "plain", "bcrypt$1$2$3$4$5", "scrypt$1024$8$1$c2FsdA", "scrypt$x$8$1$c2FsdA$aGFzaA",
          "scrypt$1000$8$1$c2FsdGl0$aGFzaGhhc2hoYXNoaGFzaA",     // N not a power of two
          "scrypt$2097152$8$1$c2FsdGl0$aGFzaGhhc2hoYXNoaGFzaA",  // N > 2^20
          "scrypt$1024$64$1$c2FsdGl0$aGFzaGhhc2hoYXNoaGFzaA",    // r > 32
          "scrypt$1024$8$1$!!!$aGFzaGhhc2hoYXNoaGFzaA"}) {
        try {
            verify_password("secret-password", bad);
            ADD_FAILURE() << "accepted: " << bad;
        } catch (const PasswordError& e) {
            EXPECT_EQ(std::string(e.what()).find("secret-password"), std::string::npos);
        }
    }
}

TEST(Password, KnownAnswerMatchesRfc7914Vector) {
    // RFC 7914 section 12: P="password", S="NaCl", N=1024, r=8, p=16, 64 bytes.
    const std::string encoded =
        "scrypt$1024$8$16$TmFDbA$_bq-HJ00cgB4VucZDQHp_nxq18vII3gw53N2Y0s3MWIurzDZLiKjiG_"
        "xCSedmDDaxyevuUqD7m2DYMvfoswGQA";
    EXPECT_TRUE(verify_password("password", encoded));
    EXPECT_FALSE(verify_password("Password", encoded));
}

}  // namespace
}  // namespace bzs::core::crypto
