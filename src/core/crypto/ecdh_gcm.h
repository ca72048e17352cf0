// SPDX-License-Identifier: GPL-3.0-or-later
// Protocol v2's primitives (issue 12): P-256 ECDH key agreement for pairing and
// AES-256-GCM for confidential frames. Every byte format here is the one WebCrypto
// uses, so the phone app interoperates without conversions: public keys are
// exportKey('raw') points, the shared secret is deriveBits(ECDH, 256), and a sealed
// message is encrypt(AES-GCM, tagLength 128) output (ciphertext || tag).
#pragma once

#include <cstddef>
#include <optional>

#include "core/crypto/crypto.h"

namespace bzs::core::crypto {

/// Length of a P-256 private scalar (big-endian, as in a JWK's "d").
inline constexpr std::size_t kP256ScalarLen = 32;
/// Length of an uncompressed P-256 public key: 0x04 || X (32) || Y (32).
inline constexpr std::size_t kP256PublicLen = 65;
/// AES-256-GCM key length.
inline constexpr std::size_t kAesGcmKeyLen = 32;
/// AES-GCM nonce length: 96 bits, the only size this code accepts (no GHASH'd IVs).
inline constexpr std::size_t kAesGcmNonceLen = 12;
/// AES-GCM tag length: the full 128 bits, WebCrypto's default.
inline constexpr std::size_t kAesGcmTagLen = 16;

/// A P-256 (prime256v1, secp256r1) key pair.
struct P256KeyPair {
    /// The private scalar, kP256ScalarLen bytes big-endian, in [1, n - 1].
    SecretBytes private_scalar;
    /// The public point, kP256PublicLen bytes uncompressed (0x04 || X || Y): what
    /// WebCrypto's exportKey('raw') gives and importKey('raw') takes.
    Bytes public_key;
};

/// A fresh key pair from OpenSSL's key generator (OS CSPRNG). Throws CryptoError if
/// the library fails.
P256KeyPair p256_generate();

/// The key pair whose private scalar is `scalar32` (big-endian), with its public key
/// recomputed. nullopt when `scalar32` is not kP256ScalarLen bytes, is zero or is not
/// below the group order n. Throws CryptoError only if the library fails.
std::optional<P256KeyPair> p256_from_private(ByteView scalar32);

/// True when `pub65` is a usable peer public key: exactly kP256PublicLen bytes, the
/// 0x04 (uncompressed) prefix, coordinates below p, on the curve and not the point at
/// infinity. Compressed (0x02/0x03) and hybrid forms are refused. Throws CryptoError
/// only if the library fails, never because of the content of `pub65`.
bool p256_valid_public(ByteView pub65);

/// ECDH: the X coordinate (kP256ScalarLen bytes, big-endian) of private_scalar32 times
/// peer_public65, which is what WebCrypto's deriveBits({name: 'ECDH'}, 256) returns.
/// Raw key-agreement output: hash it (HKDF) before using it as a key. nullopt when
/// the peer key fails p256_valid_public; never throws on peer input. Throws
/// CryptoError when the private scalar is not a valid one (a programming error) or the
/// library fails.
std::optional<SecretBytes> p256_ecdh(ByteView private_scalar32, ByteView peer_public65);

/// AES-256-GCM encryption: returns ciphertext || tag (plaintext.size() +
/// kAesGcmTagLen bytes), the layout WebCrypto's encrypt produces. `aad` is
/// authenticated, not encrypted, and may be empty. A nonce must never repeat under one
/// key. Throws CryptoError when the key is not kAesGcmKeyLen or the nonce not
/// kAesGcmNonceLen bytes (programming errors), or the library fails.
Bytes aes256gcm_seal(ByteView key32, ByteView nonce12, ByteView aad, ByteView plaintext);

/// AES-256-GCM decryption of `sealed` (ciphertext || tag): the plaintext, or nullopt
/// when `sealed` is shorter than kAesGcmTagLen or the tag does not verify (wrong key,
/// nonce or aad, or any altered byte). No plaintext is released unless the tag
/// verifies. Throws CryptoError only for wrong key or nonce sizes (programming errors)
/// or a library failure, never for the content of `sealed` or `aad`.
std::optional<Bytes> aes256gcm_open(ByteView key32, ByteView nonce12, ByteView aad,
                                    ByteView sealed);

}  // namespace bzs::core::crypto
