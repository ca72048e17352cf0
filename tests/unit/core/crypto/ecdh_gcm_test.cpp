// SPDX-License-Identifier: GPL-3.0-or-later
// Tests of protocol v2's primitives (core/crypto/ecdh_gcm.h): AES-256-GCM against the
// published GCM test cases, P-256 ECDH against RFC 5903, and refusal of every kind of
// bad input (tampered frames, invalid peer keys, out-of-range scalars).
#include "core/crypto/ecdh_gcm.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/crypto/crypto.h"

namespace bzs::core::crypto {
namespace {

// Hex with optional spaces (the RFCs print vectors in 32-bit groups).
Bytes unhex(std::string_view s) {
    std::string compact;
    for (const char c : s) {
        if (c != ' ') {
            compact += c;
        }
    }
    auto b = hex_decode(compact);
    if (!b) {
        throw std::invalid_argument("bad hex in test data");
    }
    return *b;
}

Bytes concat(const Bytes& a, const Bytes& b) {
    Bytes out = a;
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

Bytes flipped(Bytes b, std::size_t bit) {
    b.at(bit / 8) ^= static_cast<std::uint8_t>(1U << (bit % 8));
    return b;
}

// ---- AES-256-GCM ----

// Test Cases 13-16 of McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)",
// Appendix B (the AES-256 cases with a 96-bit IV; the same values appear in NIST's
// revised GCM specification). Checked against the appendix as transcribed in NSS's
// cmd/bltest/tests/aes_gcm/test_source.txt.
struct GcmCase {
    const char* name;
    const char* key;
    const char* iv;
    const char* plaintext;
    const char* aad;
    const char* ciphertext;
    const char* tag;
};

constexpr const char* kZeroKey =
    "00000000000000000000000000000000 00000000000000000000000000000000";
constexpr const char* kKey = "feffe9928665731c6d6a8f9467308308 feffe9928665731c6d6a8f9467308308";
constexpr const char* kIv = "cafebabefacedbaddecaf888";

const std::vector<GcmCase>& gcm_cases() {
    static const std::vector<GcmCase> cases = {
        {"Test Case 13", kZeroKey, "000000000000000000000000", "", "", "",
         "530f8afbc74536b9a963b4f1c4cb738b"},
        {"Test Case 14", kZeroKey, "000000000000000000000000", "00000000000000000000000000000000",
         "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
        {"Test Case 15", kKey, kIv,
         "d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72"
         "1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b391aafd255",
         "",
         "522dc1f099567d07f47f37a32a84427d 643a8cdcbfe5c0c97598a2bd2555d1aa"
         "8cb08e48590dbb3da7b08b1056828838 c5f61e6393ba7a0abcc9f662898015ad",
         "b094dac5d93471bdec1a502270e3cc6c"},
        {"Test Case 16", kKey, kIv,
         "d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72"
         "1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b39",
         "feedfacedeadbeeffeedfacedeadbeef abaddad2",
         "522dc1f099567d07f47f37a32a84427d 643a8cdcbfe5c0c97598a2bd2555d1aa"
         "8cb08e48590dbb3da7b08b1056828838 c5f61e6393ba7a0abcc9f662",
         "76fc6ece0f4e1768cddf8853bb2d551b"},
    };
    return cases;
}

TEST(AesGcmVectors, SealReproducesCiphertextAndTag) {
    for (const auto& c : gcm_cases()) {
        SCOPED_TRACE(c.name);
        const Bytes sealed =
            aes256gcm_seal(unhex(c.key), unhex(c.iv), unhex(c.aad), unhex(c.plaintext));
        EXPECT_EQ(hex_encode(sealed), hex_encode(concat(unhex(c.ciphertext), unhex(c.tag))));
    }
}

TEST(AesGcmVectors, OpenReturnsThePlaintext) {
    for (const auto& c : gcm_cases()) {
        SCOPED_TRACE(c.name);
        const auto opened = aes256gcm_open(unhex(c.key), unhex(c.iv), unhex(c.aad),
                                           concat(unhex(c.ciphertext), unhex(c.tag)));
        ASSERT_TRUE(opened.has_value());
        EXPECT_EQ(hex_encode(*opened), hex_encode(unhex(c.plaintext)));
    }
}

TEST(AesGcmTamper, EveryFlippedBitOfCiphertextOrTagIsRefused) {
    for (const auto& c : gcm_cases()) {
        SCOPED_TRACE(c.name);
        const Bytes key = unhex(c.key);
        const Bytes iv = unhex(c.iv);
        const Bytes aad = unhex(c.aad);
        const Bytes sealed = concat(unhex(c.ciphertext), unhex(c.tag));
        for (std::size_t bit = 0; bit < sealed.size() * 8; ++bit) {
            EXPECT_FALSE(aes256gcm_open(key, iv, aad, flipped(sealed, bit)).has_value())
                << "bit " << bit;
        }
    }
}

TEST(AesGcmTamper, EveryFlippedBitOfAadIsRefused) {
    const auto& c = gcm_cases().at(3);  // the case with AAD
    const Bytes aad = unhex(c.aad);
    ASSERT_FALSE(aad.empty());
    const Bytes sealed = concat(unhex(c.ciphertext), unhex(c.tag));
    for (std::size_t bit = 0; bit < aad.size() * 8; ++bit) {
        EXPECT_FALSE(
            aes256gcm_open(unhex(c.key), unhex(c.iv), flipped(aad, bit), sealed).has_value())
            << "bit " << bit;
    }
    // AAD dropped, or added where there was none, is refused too.
    EXPECT_FALSE(aes256gcm_open(unhex(c.key), unhex(c.iv), {}, sealed).has_value());
    const auto& plain = gcm_cases().at(2);
    EXPECT_FALSE(aes256gcm_open(unhex(plain.key), unhex(plain.iv), unhex("00"),
                                concat(unhex(plain.ciphertext), unhex(plain.tag)))
                     .has_value());
}

TEST(AesGcmTamper, EveryFlippedBitOfNonceOrKeyIsRefused) {
    for (const auto& c : gcm_cases()) {
        SCOPED_TRACE(c.name);
        const Bytes key = unhex(c.key);
        const Bytes iv = unhex(c.iv);
        const Bytes aad = unhex(c.aad);
        const Bytes sealed = concat(unhex(c.ciphertext), unhex(c.tag));
        for (std::size_t bit = 0; bit < iv.size() * 8; ++bit) {
            EXPECT_FALSE(aes256gcm_open(key, flipped(iv, bit), aad, sealed).has_value())
                << "nonce bit " << bit;
        }
        for (std::size_t bit = 0; bit < key.size() * 8; ++bit) {
            EXPECT_FALSE(aes256gcm_open(flipped(key, bit), iv, aad, sealed).has_value())
                << "key bit " << bit;
        }
    }
}

TEST(AesGcmTamper, TruncatedOrExtendedInputIsRefused) {
    for (const auto& c : gcm_cases()) {
        SCOPED_TRACE(c.name);
        const Bytes key = unhex(c.key);
        const Bytes iv = unhex(c.iv);
        const Bytes aad = unhex(c.aad);
        const Bytes sealed = concat(unhex(c.ciphertext), unhex(c.tag));
        // Every proper prefix: shorter than a tag, or a tag that no longer matches.
        for (std::size_t len = 0; len < sealed.size(); ++len) {
            const Bytes prefix(sealed.begin(), sealed.begin() + static_cast<std::ptrdiff_t>(len));
            EXPECT_FALSE(aes256gcm_open(key, iv, aad, prefix).has_value()) << "length " << len;
        }
        // The tag alone (ciphertext dropped) unless the ciphertext was empty.
        if (!unhex(c.ciphertext).empty()) {
            EXPECT_FALSE(aes256gcm_open(key, iv, aad, unhex(c.tag)).has_value());
        }
        Bytes longer = sealed;
        longer.push_back(0);
        EXPECT_FALSE(aes256gcm_open(key, iv, aad, longer).has_value());
    }
}

TEST(AesGcm, WrongKeyOrNonceSizeThrows) {
    const Bytes key(kAesGcmKeyLen, 1);
    const Bytes nonce(kAesGcmNonceLen, 2);
    const Bytes msg = {1, 2, 3};
    const Bytes sealed = aes256gcm_seal(key, nonce, {}, msg);
    for (const std::size_t bad :
         {std::size_t{0}, std::size_t{16}, std::size_t{24}, std::size_t{31}, std::size_t{33}}) {
        SCOPED_TRACE("key length " + std::to_string(bad));
        EXPECT_THROW((void)aes256gcm_seal(Bytes(bad, 1), nonce, {}, msg), CryptoError);
        EXPECT_THROW((void)aes256gcm_open(Bytes(bad, 1), nonce, {}, sealed), CryptoError);
    }
    for (const std::size_t bad :
         {std::size_t{0}, std::size_t{8}, std::size_t{11}, std::size_t{13}, std::size_t{16}}) {
        SCOPED_TRACE("nonce length " + std::to_string(bad));
        EXPECT_THROW((void)aes256gcm_seal(key, Bytes(bad, 2), {}, msg), CryptoError);
        EXPECT_THROW((void)aes256gcm_open(key, Bytes(bad, 2), {}, sealed), CryptoError);
    }
}

TEST(AesGcm, RoundTripsAndOutputIsPlaintextPlusTag) {
    const Bytes key = random_bytes(kAesGcmKeyLen);
    const Bytes nonce = random_bytes(kAesGcmNonceLen);
    const Bytes aad = {'v', '2'};
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{16},
                                std::size_t{17}, std::size_t{1000}}) {
        SCOPED_TRACE("length " + std::to_string(n));
        const Bytes msg = random_bytes(n);
        const Bytes sealed = aes256gcm_seal(key, nonce, aad, msg);
        EXPECT_EQ(sealed.size(), n + kAesGcmTagLen);
        const auto opened = aes256gcm_open(key, nonce, aad, sealed);
        ASSERT_TRUE(opened.has_value());
        EXPECT_EQ(*opened, msg);
    }
}

// ---- P-256 ----

// RFC 5903 section 8.1 (256-bit random ECP group): initiator i, g^i; responder r,
// g^r; shared g^ir, whose X coordinate is the agreed secret.
constexpr const char* kI =
    "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433";
constexpr const char* kGix =
    "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180";
constexpr const char* kGiy =
    "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3";
constexpr const char* kR =
    "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53";
constexpr const char* kGrx =
    "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63";
constexpr const char* kGry =
    "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB";
constexpr const char* kGirx =
    "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE";

// The curve's order n and generator G (SEC 2 v2, section 2.4.2).
constexpr const char* kOrder =
    "FFFFFFFF 00000000 FFFFFFFF FFFFFFFF BCE6FAAD A7179E84 F3B9CAC2 FC632551";
constexpr const char* kGx =
    "6B17D1F2 E12C4247 F8BCE6E5 63A440F2 77037D81 2DEB33A0 F4A13945 D898C296";
constexpr const char* kGy =
    "4FE342E2 FE1A7F9B 8EE7EB4A 7C0F9E16 2BCE3357 6B315ECE CBB64068 37BF51F5";

Bytes uncompressed(const char* x, const char* y) {
    return concat(concat(Bytes{0x04}, unhex(x)), unhex(y));
}

// A big-endian number plus one (with carry).
Bytes plus_one(Bytes b) {
    for (auto it = b.rbegin(); it != b.rend(); ++it) {
        if (++*it != 0) {
            break;
        }
    }
    return b;
}

TEST(P256Vectors, FromPrivateReproducesRfc5903PublicKeys) {
    const auto initiator = p256_from_private(unhex(kI));
    ASSERT_TRUE(initiator.has_value());
    EXPECT_EQ(hex_encode(initiator->public_key), hex_encode(uncompressed(kGix, kGiy)));
    EXPECT_EQ(hex_encode(initiator->private_scalar.view()), hex_encode(unhex(kI)));
    const auto responder = p256_from_private(unhex(kR));
    ASSERT_TRUE(responder.has_value());
    EXPECT_EQ(hex_encode(responder->public_key), hex_encode(uncompressed(kGrx, kGry)));
}

TEST(P256Vectors, BothSidesDeriveRfc5903SharedX) {
    const auto at_initiator = p256_ecdh(unhex(kI), uncompressed(kGrx, kGry));
    ASSERT_TRUE(at_initiator.has_value());
    EXPECT_EQ(hex_encode(at_initiator->view()), hex_encode(unhex(kGirx)));
    const auto at_responder = p256_ecdh(unhex(kR), uncompressed(kGix, kGiy));
    ASSERT_TRUE(at_responder.has_value());
    EXPECT_EQ(hex_encode(at_responder->view()), hex_encode(unhex(kGirx)));
}

TEST(P256Vectors, ScalarsOneAndNMinusOneGiveGAndMinusG) {
    Bytes one(kP256ScalarLen, 0);
    one.back() = 1;
    const auto g = p256_from_private(one);
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(hex_encode(g->public_key), hex_encode(uncompressed(kGx, kGy)));

    Bytes n_minus_1 = unhex(kOrder);
    n_minus_1.back() -= 1;  // n ends in 0x51: no borrow
    const auto minus_g = p256_from_private(n_minus_1);
    ASSERT_TRUE(minus_g.has_value());
    // -G = (Gx, p - Gy).
    EXPECT_EQ(hex_encode(minus_g->public_key),
              hex_encode(uncompressed(kGx,
                                      "b01cbd1c01e58065711814b583f061e9"
                                      "d431cca994cea1313449bf97c840ae0a")));
}

TEST(P256, FromPrivateRefusesOutOfRangeScalars) {
    const Bytes n = unhex(kOrder);
    EXPECT_FALSE(p256_from_private(Bytes(kP256ScalarLen, 0)).has_value()) << "zero";
    EXPECT_FALSE(p256_from_private(n).has_value()) << "n";
    EXPECT_FALSE(p256_from_private(plus_one(n)).has_value()) << "n + 1";
    EXPECT_FALSE(p256_from_private(Bytes(kP256ScalarLen, 0xff)).has_value()) << "2^256 - 1";
    EXPECT_FALSE(p256_from_private(Bytes(31, 1)).has_value()) << "31 bytes";
    EXPECT_FALSE(p256_from_private(Bytes(33, 1)).has_value()) << "33 bytes";
    EXPECT_FALSE(p256_from_private({}).has_value()) << "empty";
}

TEST(P256, EcdhWithAnInvalidPrivateScalarThrows) {
    const Bytes peer = uncompressed(kGrx, kGry);
    EXPECT_THROW((void)p256_ecdh(Bytes(kP256ScalarLen, 0), peer), CryptoError);
    EXPECT_THROW((void)p256_ecdh(unhex(kOrder), peer), CryptoError);
    EXPECT_THROW((void)p256_ecdh(Bytes(31, 1), peer), CryptoError);
}

TEST(P256, ValidPublicKeysAreAccepted) {
    EXPECT_TRUE(p256_valid_public(uncompressed(kGix, kGiy)));
    EXPECT_TRUE(p256_valid_public(uncompressed(kGrx, kGry)));
    EXPECT_TRUE(p256_valid_public(uncompressed(kGx, kGy)));
}

TEST(P256, InvalidPeerKeysAreRefusedWithoutThrowing) {
    const Bytes good = uncompressed(kGrx, kGry);
    const Bytes x = unhex(kGrx);
    const bool y_odd = (unhex(kGry).back() & 1) != 0;

    struct Bad {
        std::string what;
        Bytes key;
    };
    std::vector<Bad> bad;
    bad.push_back({"empty", {}});
    bad.push_back({"X || Y without the prefix", concat(x, unhex(kGry))});
    bad.push_back({"one byte short", Bytes(good.begin(), good.end() - 1)});
    bad.push_back({"one byte long", concat(good, Bytes{0})});
    // A correct compressed encoding of the same point: valid SEC 1, but not our format.
    bad.push_back(
        {"33-byte compressed", concat(Bytes{static_cast<std::uint8_t>(y_odd ? 0x03 : 0x02)}, x)});
    for (const int prefix : {0x00, 0x02, 0x03, 0x05, 0x06, 0x07}) {
        Bytes k = good;
        k[0] = static_cast<std::uint8_t>(prefix);
        bad.push_back({"65 bytes with prefix " + std::to_string(prefix), k});
    }
    bad.push_back({"Y + 1 (off the curve)", concat(concat(Bytes{0x04}, x), plus_one(unhex(kGry)))});
    Bytes x_plus_1 = good;
    x_plus_1[32] ^= 1;
    bad.push_back({"X changed (off the curve)", x_plus_1});
    bad.push_back({"all zero", Bytes(kP256PublicLen, 0)});
    bad.push_back({"0x04 then zeros", concat(Bytes{0x04}, Bytes(64, 0))});
    bad.push_back({"0x04 then 0xff (coordinates >= p)", concat(Bytes{0x04}, Bytes(64, 0xff))});

    for (const auto& b : bad) {
        SCOPED_TRACE(b.what);
        EXPECT_FALSE(p256_valid_public(b.key));
        std::optional<SecretBytes> secret;
        EXPECT_NO_THROW(secret = p256_ecdh(unhex(kI), b.key));
        EXPECT_FALSE(secret.has_value());
    }
}

TEST(P256, GeneratedPairsAreFreshValidAndAgree) {
    const P256KeyPair a = p256_generate();
    const P256KeyPair b = p256_generate();
    for (const auto* kp : {&a, &b}) {
        EXPECT_EQ(kp->private_scalar.size(), kP256ScalarLen);
        ASSERT_EQ(kp->public_key.size(), kP256PublicLen);
        EXPECT_EQ(kp->public_key[0], 0x04);
        EXPECT_TRUE(p256_valid_public(kp->public_key));
        // The public key is the one the scalar gives.
        const auto again = p256_from_private(kp->private_scalar.view());
        ASSERT_TRUE(again.has_value());
        EXPECT_EQ(again->public_key, kp->public_key);
    }
    EXPECT_NE(hex_encode(a.private_scalar.view()), hex_encode(b.private_scalar.view()));
    EXPECT_NE(a.public_key, b.public_key);

    const auto ab = p256_ecdh(a.private_scalar.view(), b.public_key);
    const auto ba = p256_ecdh(b.private_scalar.view(), a.public_key);
    ASSERT_TRUE(ab.has_value());
    ASSERT_TRUE(ba.has_value());
    EXPECT_EQ(ab->size(), kP256ScalarLen);
    EXPECT_EQ(hex_encode(ab->view()), hex_encode(ba->view()));
    EXPECT_NE(hex_encode(ab->view()), hex_encode(Bytes(kP256ScalarLen, 0)));
}

// The pairing path end to end: agree, derive a key, seal on one side, open on the other.
TEST(P256, AgreedSecretKeysAesGcmBothWays) {
    const P256KeyPair pi = p256_generate();
    const P256KeyPair phone = p256_generate();
    const auto s1 = p256_ecdh(pi.private_scalar.view(), phone.public_key);
    const auto s2 = p256_ecdh(phone.private_scalar.view(), pi.public_key);
    ASSERT_TRUE(s1.has_value());
    ASSERT_TRUE(s2.has_value());
    const Bytes info = {'t', 'e', 's', 't'};
    const SecretBytes k1 = hkdf(Hash::Sha256, s1->view(), {}, info, kAesGcmKeyLen);
    const SecretBytes k2 = hkdf(Hash::Sha256, s2->view(), {}, info, kAesGcmKeyLen);
    const Bytes nonce(kAesGcmNonceLen, 7);
    const Bytes msg = {'r', 'u', 'n'};
    const auto opened =
        aes256gcm_open(k2.view(), nonce, {}, aes256gcm_seal(k1.view(), nonce, {}, msg));
    ASSERT_TRUE(opened.has_value());
    EXPECT_EQ(*opened, msg);
}

}  // namespace
}  // namespace bzs::core::crypto
