// SPDX-License-Identifier: GPL-3.0-or-later
// The web UI's self-signed TLS certificate: an ECDSA P-256 key and an X.509
// certificate made with OpenSSL, returned as PEM text. Writing the files (0600,
// in the state folder) is the caller's job; this stays free of I/O.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace bzs::core::crypto {

class TlsError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A certificate and its private key, both PEM. `key_pem` is a secret.
struct SelfSigned {
    std::string cert_pem;
    std::string key_pem;
};

/// A fresh ECDSA P-256 key and a self-signed certificate for it: subject and issuer
/// CN = `common_name`, a random 128-bit serial, valid from one hour ago for `days`
/// days, SHA-256 signature, subjectAltName DNS:`common_name` (and DNS:localhost,
/// IP:127.0.0.1, IP:::1), basicConstraints CA:FALSE. Throws TlsError.
SelfSigned make_self_signed(std::string_view common_name, int days = 3650);

/// SHA-256 of the certificate's DER encoding as upper-case hex pairs joined by ':'
/// (as browsers and `openssl x509 -fingerprint -sha256` show it). Throws TlsError
/// if `cert_pem` holds no certificate.
std::string fingerprint_sha256(std::string_view cert_pem);

/// Same, of a DER-encoded certificate.
std::string fingerprint_sha256_der(std::string_view der);

}  // namespace bzs::core::crypto
