// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/crypto/tls_cert.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <span>
#include <vector>

#include "core/crypto/crypto.h"

namespace bzs::core::crypto {

namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;

void check(bool ok, const char* what) {
    if (!ok) {
        throw TlsError(std::string("self-signed certificate: ") + what + " failed");
    }
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

void add_ext(X509* cert, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    check(ext != nullptr, "building an extension");
    const int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    check(ok == 1, "adding an extension");
}

std::string hex_pairs(crypto::ByteView digest) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (std::size_t i = 0; i < digest.size(); ++i) {
        if (i > 0) {
            out += ':';
        }
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 0x0f];
    }
    return out;
}

}  // namespace

SelfSigned make_self_signed(std::string_view common_name, int days) {
    if (common_name.empty() || common_name.size() > 64) {
        throw TlsError("self-signed certificate: the common name must be 1..64 bytes");
    }
    PkeyPtr key(EVP_EC_gen("P-256"));
    check(key != nullptr, "generating the P-256 key");

    X509Ptr cert(X509_new());
    check(cert != nullptr, "allocating the certificate");
    check(X509_set_version(cert.get(), 2) == 1, "setting the version");
    std::vector<std::uint8_t> serial(16);
    crypto::random_bytes(serial);
    serial[0] &= 0x7f;  // a positive INTEGER
    BnPtr bn(BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
    check(
        bn != nullptr && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) != nullptr,
        "setting the serial number");
    // An hour of slack for clocks that are slightly behind.
    check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr, "setting notBefore");
    check(
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400) != nullptr,
        "setting notAfter");
    check(X509_set_pubkey(cert.get(), key.get()) == 1, "setting the public key");
    X509_NAME* name = X509_get_subject_name(cert.get());
    const std::string cn(common_name);
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                     0) == 1,
          "setting the subject");
    check(X509_set_issuer_name(cert.get(), name) == 1, "setting the issuer");
    add_ext(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), NID_key_usage, "critical,digitalSignature");
    add_ext(cert.get(), NID_ext_key_usage, "serverAuth");
    // Names that are not valid DNS labels only go into CN (SAN would refuse them).
    std::string san = "DNS:localhost,IP:127.0.0.1,IP:::1";
    const bool dns_ok =
        cn.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") ==
        std::string::npos;
    if (dns_ok && cn != "localhost") {
        san = "DNS:" + cn + "," + san;
    }
    add_ext(cert.get(), NID_subject_alt_name, san);
    check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "signing");

    SelfSigned out;
    BioPtr cb(BIO_new(BIO_s_mem()));
    check(cb != nullptr && PEM_write_bio_X509(cb.get(), cert.get()) == 1,
          "writing the certificate");
    out.cert_pem = bio_text(cb.get());
    BioPtr kb(BIO_new(BIO_s_mem()));
    check(kb != nullptr && PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0,
                                                    nullptr, nullptr) == 1,
          "writing the key");
    out.key_pem = bio_text(kb.get());
    return out;
}

std::string fingerprint_sha256_der(std::string_view der) {
    const auto digest = crypto::sha256(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(der.data()), der.size()));
    return hex_pairs(digest);
}

std::string fingerprint_sha256(std::string_view cert_pem) {
    BioPtr bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
    check(bio != nullptr, "reading PEM");
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
        throw TlsError("certificate: no PEM certificate found");
    }
    unsigned char* der = nullptr;
    const int len = i2d_X509(cert.get(), &der);
    if (len <= 0) {
        throw TlsError("certificate: cannot encode as DER");
    }
    std::string d(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return fingerprint_sha256_der(d);
}

}  // namespace bzs::core::crypto
