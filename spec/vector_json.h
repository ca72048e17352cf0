// SPDX-License-Identifier: GPL-3.0-or-later
// Helpers both vector generators share (gen_vectors.cpp for v1, gen_vectors_v2.cpp
// for v2): hex constants, TOTP parameters as JSON, and writing a file whose first
// key carries its licence.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/crypto/crypto.h"

namespace bzs::spec {

using json = nlohmann::ordered_json;  // keeps fields in the order written, for readers
using core::crypto::Bytes;
using core::crypto::ByteView;
namespace crypto = core::crypto;

inline Bytes unhex(std::string_view h) {
    auto b = crypto::hex_decode(h);
    if (!b) {
        throw std::logic_error("bad hex constant in the generator");
    }
    return *b;
}

template <std::size_t N>
inline std::array<std::uint8_t, N> unhex_array(std::string_view h) {
    const Bytes b = unhex(h);
    if (b.size() != N) {
        throw std::logic_error("hex constant of the wrong length in the generator");
    }
    std::array<std::uint8_t, N> a{};
    std::copy(b.begin(), b.end(), a.begin());
    return a;
}

inline std::string hex(ByteView b) {
    return crypto::hex_encode(b);
}

inline json totp_json(const crypto::TotpParams& p) {
    return json{{"alg", std::string(crypto::hash_name(p.hash))},
                {"digits", p.digits},
                {"period", p.step_seconds}};
}

inline crypto::TotpParams totp_params(crypto::Hash h, int digits, int period) {
    crypto::TotpParams p;
    p.hash = h;
    p.digits = digits;
    p.step_seconds = period;
    return p;
}

// JSON has no comments, so the licence is the first key of every file.
inline void write(const std::filesystem::path& path, const json& j) {
    json out{{"SPDX-License-Identifier", "GPL-3.0-or-later"}};
    for (const auto& [key, value] : j.items()) {
        out[key] = value;
    }
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << out.dump(2) << '\n';
    if (!f) {
        throw std::runtime_error("cannot write " + path.string());
    }
}

}  // namespace bzs::spec
