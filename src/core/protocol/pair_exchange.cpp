// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/protocol/pair_exchange.h"

#include <algorithm>

#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/wire.h"

namespace bzs::core::protocol {

namespace {

ByteView as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

Fingerprint to_array(const Bytes& b) {
    Fingerprint f{};
    std::copy_n(b.begin(), std::min(b.size(), f.size()), f.begin());
    return f;
}

}  // namespace

Fingerprint key_fingerprint(ByteView pi_public) {
    return to_array(crypto::sha256(pi_public));
}

Fingerprint pair_transcript(const PiId& pi, const DeviceId& device, ByteView pi_public,
                            ByteView phone_public) {
    Bytes t;
    wire::put_text(t, "bluezscript v2 pair");
    wire::put_bytes(t, pi);
    wire::put_bytes(t, device);
    wire::put_bytes(t, pi_public);
    wire::put_bytes(t, phone_public);
    return to_array(crypto::sha256(t));
}

std::optional<PairSecret> pair_derive(ByteView own_private_scalar, ByteView peer_public,
                                      ByteView code, const Fingerprint& transcript) {
    const auto z = crypto::p256_ecdh(own_private_scalar, peer_public);
    if (!z) {
        return std::nullopt;
    }
    Bytes info;
    wire::put_text(info, "bluezscript v2 device secret");
    wire::put_bytes(info, transcript);
    PairSecret out;
    out.secret = crypto::hkdf(crypto::Hash::Sha256, z->view(), code, info, 32);
    Bytes confirm_info;
    wire::put_text(confirm_info, "bluezscript v2 pair confirm");
    wire::put_bytes(confirm_info, transcript);
    const crypto::SecretBytes confirm = crypto::hkdf(crypto::Hash::Sha256, out.secret.view(),
                                                     as_bytes("bluezscript-v2"), confirm_info, 32);
    std::copy_n(confirm.data(), out.confirm.size(), out.confirm.begin());
    return out;
}

Bytes pair_result_rest(const std::optional<Confirm>& confirm, std::string_view message) {
    Bytes rest;
    if (confirm) {
        wire::put_bytes(rest, *confirm);
    }
    wire::put_text(rest, message);
    return rest;
}

}  // namespace bzs::core::protocol
