// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/protocol/link.h"

#include <algorithm>
#include <map>

#include "core/protocol/names.h"

namespace bzs::core::protocol {

namespace {

constexpr std::string_view kScheme = "bluezscript://pair?";
constexpr std::string_view kBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::size_t kCodeChars = 26;  // 128 bits in base32, unpadded

template <std::size_t N>
bool hex_field(std::string_view text, std::array<std::uint8_t, N>& out) {
    if (text.size() != 2 * N) {
        return false;
    }
    const auto b = crypto::hex_decode(text);
    if (!b || b->size() != N) {
        return false;
    }
    std::copy(b->begin(), b->end(), out.begin());
    return true;
}

std::optional<std::size_t> base32_value(char c) {
    const auto up = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    const auto pos = kBase32.find(up);
    if (pos == std::string_view::npos) {
        return std::nullopt;
    }
    return pos;
}

LinkParse fail(std::string e) {
    LinkParse r;
    r.error = std::move(e);
    return r;
}

// name and label: percent-decoded, then the device-name rule (names.h).
std::optional<std::string> text_field(std::string_view field, std::string_view raw,
                                      bool may_be_empty, std::string& out) {
    const auto decoded = percent_decode(raw);
    if (!decoded) {
        return std::string(field) + ": '%' not followed by two hex digits";
    }
    if (decoded->empty() && may_be_empty) {
        out.clear();
        return std::nullopt;
    }
    if (const auto problem = device_name_problem(*decoded)) {
        return std::string(field) + ": " + *problem;
    }
    out = *decoded;
    return std::nullopt;
}

}  // namespace

std::string percent_encode(std::string_view s) {
    static constexpr std::string_view kHex = "0123456789ABCDEF";
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
            u == '-' || u == '.' || u == '_' || u == '~') {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(kHex[u >> 4U]);
            out.push_back(kHex[u & 0x0FU]);
        }
    }
    return out;
}

std::optional<std::string> percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            if (i + 2 >= s.size()) {
                return std::nullopt;
            }
            auto b = crypto::hex_decode(s.substr(i + 1, 2));
            if (!b) {
                return std::nullopt;
            }
            out.push_back(static_cast<char>((*b)[0]));
            i += 2;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

std::string link_query(const PairingLink& l) {
    std::string code = crypto::base32_encode(l.code.view(), false);
    std::string q = "v=2";
    q += "&pi=" + crypto::hex_encode(l.pi_id);
    q += "&pk=" + crypto::hex_encode(l.pi_key);
    q += "&name=" + percent_encode(l.pi_name);
    q += "&dev=" + crypto::hex_encode(l.device_id);
    q += "&code=" + code;
    q += "&alg=" + std::string(crypto::hash_name(l.totp.hash));
    q += "&digits=" + std::to_string(l.totp.digits);
    q += "&period=" + std::to_string(l.totp.step_seconds);
    if (!l.label.empty()) {
        q += "&label=" + percent_encode(l.label);
    }
    crypto::cleanse(code.data(), code.size());
    return q;
}

std::string link_to_uri(const PairingLink& l) {
    return std::string(kScheme) + link_query(l);
}

std::string link_to_app_url(const PairingLink& l, std::string_view app_url) {
    const auto hash = app_url.find('#');
    return std::string(app_url.substr(0, hash)) + "#" + link_query(l);
}

LinkParse parse_link(std::string_view text) {
    std::string_view query;
    if (text.substr(0, kScheme.size()) == kScheme) {
        query = text.substr(kScheme.size());
    } else if (const auto hash = text.find('#'); hash != std::string_view::npos) {
        query = text.substr(hash + 1);
    } else {
        return fail(
            "not a pairing link: it neither starts with bluezscript://pair? nor has "
            "a '#' part");
    }
    static constexpr std::string_view kKnown[] = {"v",    "pi",  "pk",     "name",   "dev",
                                                  "code", "alg", "digits", "period", "label"};
    std::map<std::string_view, std::string_view> fields;
    std::size_t start = 0;
    while (start <= query.size()) {
        const auto amp = query.find('&', start);
        const std::string_view item = query.substr(
            start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
        start = amp == std::string_view::npos ? query.size() + 1 : amp + 1;
        if (item.empty()) {
            continue;
        }
        const auto eq = item.find('=');
        if (eq == std::string_view::npos) {
            return fail("an item of the link has no '='");
        }
        const std::string_view key = item.substr(0, eq);
        if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
            continue;  // a later version's field: ignored, value untouched
        }
        if (!fields.emplace(key, item.substr(eq + 1)).second) {
            return fail(std::string(key) + ": given twice");
        }
    }
    for (const std::string_view required : {"v", "pi", "pk", "name", "dev", "code"}) {
        if (fields.count(required) == 0) {
            return fail(std::string(required) + ": missing");
        }
    }
    if (fields["v"] != "2") {
        return fail("v: this link is for protocol version " +
                    quote_for_message(fields["v"].substr(0, 8)) + "; expected 2");
    }
    PairingLink l;
    if (!hex_field(fields["pi"], l.pi_id)) {
        return fail("pi: expected 32 hex digits");
    }
    if (!hex_field(fields["pk"], l.pi_key)) {
        return fail("pk: expected 64 hex digits");
    }
    if (!hex_field(fields["dev"], l.device_id)) {
        return fail("dev: expected 32 hex digits");
    }
    const std::string_view code = fields["code"];
    const bool code_chars =
        code.size() == kCodeChars &&
        std::all_of(code.begin(), code.end(), [](char c) { return base32_value(c).has_value(); });
    if (!code_chars) {
        return fail("code: expected 26 base32 characters (A-Z, 2-7)");
    }
    if ((*base32_value(code.back()) & 0x03U) != 0) {
        return fail("code: the unused low bits of the last character are not zero");
    }
    const auto code_bytes = crypto::base32_decode(code);
    if (!code_bytes || code_bytes->size() != kPairCodeLen) {
        return fail("code: expected 26 base32 characters (A-Z, 2-7)");
    }
    l.code = crypto::SecretBytes(*code_bytes);
    if (auto e = text_field("name", fields["name"], false, l.pi_name)) {
        return fail(*e);
    }
    if (fields.count("label") != 0) {
        if (auto e = text_field("label", fields["label"], true, l.label)) {
            return fail(*e);
        }
    }
    if (fields.count("alg") != 0) {
        std::string alg(fields["alg"]);
        std::transform(alg.begin(), alg.end(), alg.begin(), [](char c) {
            return static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        });
        if (alg != "SHA1" && alg != "SHA256" && alg != "SHA512") {
            return fail("alg: expected SHA1, SHA256 or SHA512");
        }
        l.totp.hash = *crypto::parse_hash(alg);
    }
    if (fields.count("digits") != 0) {
        const std::string_view d = fields["digits"];
        if (d != "6" && d != "7" && d != "8") {
            return fail("digits: expected 6, 7 or 8");
        }
        l.totp.digits = d[0] - '0';
    }
    if (fields.count("period") != 0) {
        const std::string_view p = fields["period"];
        const bool digits_only =
            !p.empty() && p.size() <= 3 && p[0] != '0' &&
            std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
        const int value = digits_only ? std::stoi(std::string(p)) : 0;
        if (!digits_only || value < 15 || value > 300) {
            return fail("period: expected a whole number of seconds, 15..300");
        }
        l.totp.step_seconds = value;
    }
    LinkParse r;
    r.link = std::move(l);
    return r;
}

}  // namespace bzs::core::protocol
