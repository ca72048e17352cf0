// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/crypto/ecdh_gcm.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>

namespace bzs::core::crypto {

namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using GroupPtr = std::unique_ptr<EC_GROUP, Deleter<EC_GROUP, EC_GROUP_free>>;
using PointPtr = std::unique_ptr<EC_POINT, Deleter<EC_POINT, EC_POINT_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_clear_free>>;
using BnCtxPtr = std::unique_ptr<BN_CTX, Deleter<BN_CTX, BN_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamsPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;

constexpr std::uint8_t kUncompressed = 0x04;

void check(bool ok, const char* what) {
    if (!ok) {
        throw CryptoError(std::string(what) + " failed");
    }
}

// Refusing untrusted input leaves errors on OpenSSL's per-thread queue; drop the ones
// this call queued so they cannot surface in an unrelated later report.
class ErrorMark {
  public:
    ErrorMark() { ERR_set_mark(); }
    ~ErrorMark() { ERR_pop_to_mark(); }
    ErrorMark(const ErrorMark&) = delete;
    ErrorMark& operator=(const ErrorMark&) = delete;
};

// A fresh group per call: EC_GROUP is cheap to load for P-256 and callers may be on
// different threads (web workers and the loop).
GroupPtr p256_group() {
    GroupPtr g(EC_GROUP_new_by_curve_name_ex(nullptr, nullptr, NID_X9_62_prime256v1));
    check(g != nullptr, "P-256: loading the curve");
    return g;
}

// The scalar as a BIGNUM, or null when it is not 32 bytes in [1, n - 1].
BnPtr scalar_bn(const EC_GROUP* group, ByteView s) {
    if (s.size() != kP256ScalarLen) {
        return nullptr;
    }
    BnPtr d(BN_secure_new());
    check(d != nullptr && BN_bin2bn(s.data(), static_cast<int>(s.size()), d.get()) != nullptr,
          "P-256: reading the private scalar");
    BN_set_flags(d.get(), BN_FLG_CONSTTIME);
    if (BN_is_zero(d.get()) || BN_cmp(d.get(), EC_GROUP_get0_order(group)) >= 0) {
        return nullptr;
    }
    return d;
}

// d * G, uncompressed.
Bytes public_of(const EC_GROUP* group, const BIGNUM* d) {
    PointPtr q(EC_POINT_new(group));
    BnCtxPtr bctx(BN_CTX_secure_new());
    check(q != nullptr && bctx != nullptr &&
              EC_POINT_mul(group, q.get(), d, nullptr, nullptr, bctx.get()) == 1,
          "P-256: computing the public key");
    Bytes out(kP256PublicLen);
    check(EC_POINT_point2oct(group, q.get(), POINT_CONVERSION_UNCOMPRESSED, out.data(), out.size(),
                             bctx.get()) == kP256PublicLen,
          "P-256: encoding the public key");
    return out;
}

bool valid_point(const EC_GROUP* group, ByteView pub) {
    if (pub.size() != kP256PublicLen || pub[0] != kUncompressed) {
        return false;
    }
    PointPtr p(EC_POINT_new(group));
    BnCtxPtr bctx(BN_CTX_new());
    check(p != nullptr && bctx != nullptr, "P-256: allocating a point");
    // oct2point refuses coordinates >= p and points off the curve; the other two
    // checks restate what this function promises rather than rely on that.
    return EC_POINT_oct2point(group, p.get(), pub.data(), pub.size(), bctx.get()) == 1 &&
           EC_POINT_is_at_infinity(group, p.get()) == 0 &&
           EC_POINT_is_on_curve(group, p.get(), bctx.get()) == 1;
}

// An EVP_PKEY for the point `pub` and, if given, the private scalar `d`; null if
// OpenSSL refuses the parameters.
PkeyPtr p256_pkey(ByteView pub, const BIGNUM* d) {
    ParamBldPtr bld(OSSL_PARAM_BLD_new());
    check(bld != nullptr &&
              OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                              SN_X9_62_prime256v1, 0) == 1 &&
              OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub.data(),
                                               pub.size()) == 1 &&
              (d == nullptr || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d) == 1),
          "P-256: building key parameters");
    // A secure BIGNUM puts the scalar in the secure part, which OSSL_PARAM_free wipes.
    ParamsPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
    check(params != nullptr, "P-256: building key parameters");
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    check(ctx != nullptr && EVP_PKEY_fromdata_init(ctx.get()) == 1, "P-256: importing a key");
    EVP_PKEY* raw = nullptr;
    const int selection = d != nullptr ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY;
    if (EVP_PKEY_fromdata(ctx.get(), &raw, selection, params.get()) != 1) {
        return nullptr;
    }
    return PkeyPtr(raw);
}

void require_gcm_sizes(ByteView key, ByteView nonce) {
    if (key.size() != kAesGcmKeyLen) {
        throw CryptoError("AES-256-GCM: the key must be 32 bytes, not " +
                          std::to_string(key.size()));
    }
    if (nonce.size() != kAesGcmNonceLen) {
        throw CryptoError("AES-256-GCM: the nonce must be 12 bytes, not " +
                          std::to_string(nonce.size()));
    }
}

CipherCtxPtr gcm_start(bool encrypt, ByteView key, ByteView nonce) {
    const int enc = encrypt ? 1 : 0;
    CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    check(
        ctx != nullptr &&
            EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr, enc) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN,
                                static_cast<int>(kAesGcmNonceLen), nullptr) == 1 &&
            EVP_CipherInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data(), enc) == 1,
        "AES-256-GCM: setting key and nonce");
    return ctx;
}

// EVP lengths are int: long inputs go in pieces. `out` null feeds AAD.
void gcm_update(EVP_CIPHER_CTX* ctx, std::uint8_t* out, ByteView in) {
    constexpr std::size_t kChunk = std::size_t{1} << 30;
    for (std::size_t done = 0; done < in.size();) {
        const std::size_t n = std::min(kChunk, in.size() - done);
        int len = 0;
        check(EVP_CipherUpdate(ctx, out == nullptr ? nullptr : out + done, &len, in.data() + done,
                               static_cast<int>(n)) == 1 &&
                  static_cast<std::size_t>(len) == n,
              "AES-256-GCM: update");
        done += n;
    }
}

}  // namespace

P256KeyPair p256_generate() {
    const ErrorMark mark;
    PkeyPtr key(EVP_EC_gen(SN_X9_62_prime256v1));
    check(key != nullptr, "P-256: generating a key");
    BIGNUM* raw = nullptr;
    check(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_PRIV_KEY, &raw) == 1,
          "P-256: reading the private key");
    const BnPtr d(raw);
    P256KeyPair kp;
    kp.private_scalar = SecretBytes(kP256ScalarLen);
    check(BN_bn2binpad(d.get(), kp.private_scalar.data(), static_cast<int>(kP256ScalarLen)) ==
              static_cast<int>(kP256ScalarLen),
          "P-256: encoding the private key");
    kp.public_key.resize(kP256PublicLen);
    std::size_t len = 0;
    check(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_PUB_KEY, kp.public_key.data(),
                                          kp.public_key.size(), &len) == 1 &&
              len == kP256PublicLen && kp.public_key[0] == kUncompressed,
          "P-256: reading the public key");
    return kp;
}

std::optional<P256KeyPair> p256_from_private(ByteView scalar32) {
    const ErrorMark mark;
    const auto group = p256_group();
    const auto d = scalar_bn(group.get(), scalar32);
    if (!d) {
        return std::nullopt;
    }
    P256KeyPair kp;
    kp.private_scalar = SecretBytes(scalar32);
    kp.public_key = public_of(group.get(), d.get());
    return kp;
}

bool p256_valid_public(ByteView pub65) {
    const ErrorMark mark;
    const auto group = p256_group();
    return valid_point(group.get(), pub65);
}

std::optional<SecretBytes> p256_ecdh(ByteView private_scalar32, ByteView peer_public65) {
    const ErrorMark mark;
    const auto group = p256_group();
    const auto d = scalar_bn(group.get(), private_scalar32);
    if (!d) {
        throw CryptoError("P-256 ECDH: the private scalar must be 32 bytes in [1, n - 1]");
    }
    if (!valid_point(group.get(), peer_public65)) {
        return std::nullopt;
    }
    const PkeyPtr own = p256_pkey(public_of(group.get(), d.get()), d.get());
    check(own != nullptr, "P-256 ECDH: importing the private key");
    const PkeyPtr peer = p256_pkey(peer_public65, nullptr);
    if (!peer) {
        return std::nullopt;
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own.get(), nullptr));
    check(ctx != nullptr && EVP_PKEY_derive_init(ctx.get()) == 1, "P-256 ECDH: starting");
    // validate_peer = 1: OpenSSL's own public-key check as well as ours.
    if (EVP_PKEY_derive_set_peer_ex(ctx.get(), peer.get(), 1) != 1) {
        return std::nullopt;
    }
    SecretBytes secret(kP256ScalarLen);
    std::size_t len = secret.size();
    check(EVP_PKEY_derive(ctx.get(), secret.data(), &len) == 1 && len == kP256ScalarLen,
          "P-256 ECDH: deriving the shared secret");
    return secret;
}

Bytes aes256gcm_seal(ByteView key32, ByteView nonce12, ByteView aad, ByteView plaintext) {
    require_gcm_sizes(key32, nonce12);
    const ErrorMark mark;
    const auto ctx = gcm_start(true, key32, nonce12);
    gcm_update(ctx.get(), nullptr, aad);
    Bytes out(plaintext.size() + kAesGcmTagLen);
    gcm_update(ctx.get(), out.data(), plaintext);
    std::uint8_t* const tag = out.data() + plaintext.size();
    int final_len = 0;
    check(EVP_CipherFinal_ex(ctx.get(), tag, &final_len) == 1 && final_len == 0,
          "AES-256-GCM: final");
    check(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAesGcmTagLen),
                              tag) == 1,
          "AES-256-GCM: reading the tag");
    return out;
}

std::optional<Bytes> aes256gcm_open(ByteView key32, ByteView nonce12, ByteView aad,
                                    ByteView sealed) {
    require_gcm_sizes(key32, nonce12);
    if (sealed.size() < kAesGcmTagLen) {
        return std::nullopt;
    }
    const ErrorMark mark;
    const std::size_t ct_len = sealed.size() - kAesGcmTagLen;
    const auto ctx = gcm_start(false, key32, nonce12);
    gcm_update(ctx.get(), nullptr, aad);
    Bytes out(ct_len);
    gcm_update(ctx.get(), out.data(), sealed.first(ct_len));
    // SET_TAG takes a non-const pointer.
    std::array<std::uint8_t, kAesGcmTagLen> tag{};
    std::copy(sealed.begin() + static_cast<std::ptrdiff_t>(ct_len), sealed.end(), tag.begin());
    check(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag.size()),
                              tag.data()) == 1,
          "AES-256-GCM: setting the tag");
    int final_len = 0;
    if (EVP_CipherFinal_ex(ctx.get(), out.data() + ct_len, &final_len) != 1) {
        // Unauthenticated plaintext never leaves this function.
        cleanse(out.data(), out.size());
        return std::nullopt;
    }
    return out;
}

}  // namespace bzs::core::crypto
