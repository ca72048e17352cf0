// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/protocol/names.h"

#include <algorithm>

namespace bzs::core::protocol {

namespace {

bool ascii_alnum(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/// Control characters, and those that reorder or break lines in a listing so a
/// name could disguise itself as another.
bool is_disallowed_char(char32_t c) {
    return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x061C || c == 0x200E || c == 0x200F ||
           (c >= 0x2028 && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

}  // namespace

bool valid_action_name(std::string_view name) {
    constexpr std::string_view kMetaSuffix = ".toml";
    if (name.empty() || name.size() > 64 || !ascii_alnum(name.front()) ||
        name.ends_with(kMetaSuffix)) {
        return false;
    }
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return ascii_alnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool valid_argument(std::string_view arg) {
    return std::none_of(arg.begin(), arg.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7F;
    });
}

std::string quote_for_message(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            static constexpr char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 0xf];
        } else {
            out += c;
        }
    }
    return out + "'";
}

std::optional<std::vector<char32_t>> utf8_decode(std::string_view s) {
    std::vector<char32_t> out;
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        char32_t cp = 0;
        char32_t min = 0;
        if (b0 < 0x80) {
            len = 1;
            cp = b0;
        } else if ((b0 & 0xE0) == 0xC0) {
            len = 2;
            cp = b0 & 0x1FU;
            min = 0x80;
        } else if ((b0 & 0xF0) == 0xE0) {
            len = 3;
            cp = b0 & 0x0FU;
            min = 0x800;
        } else if ((b0 & 0xF8) == 0xF0) {
            len = 4;
            cp = b0 & 0x07U;
            min = 0x10000;
        } else {
            return std::nullopt;
        }
        if (i + len > s.size()) {
            return std::nullopt;
        }
        for (std::size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80) {
                return std::nullopt;
            }
            cp = (cp << 6) | (b & 0x3FU);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return std::nullopt;
        }
        out.push_back(cp);
        i += len;
    }
    return out;
}

std::optional<std::string> device_name_problem(std::string_view name) {
    const auto cps = utf8_decode(name);
    if (!cps) {
        return std::string("device name is not valid UTF-8");
    }
    if (cps->empty() || cps->size() > kMaxDeviceNameChars) {
        return std::string("device name must be 1 to 64 characters long (got " +
                           std::to_string(cps->size()) + ")");
    }
    for (std::size_t i = 0; i < cps->size(); ++i) {
        if (is_disallowed_char((*cps)[i])) {
            return std::string("device name " + quote_for_message(name) +
                               " contains a control character at position " +
                               std::to_string(i + 1));
        }
    }
    if (cps->front() == U' ' || cps->back() == U' ') {
        return std::string("device name " + quote_for_message(name) +
                           " must not start or end with a space");
    }
    return std::nullopt;
}

}  // namespace bzs::core::protocol
