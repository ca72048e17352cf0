// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/protocol/pairing_uri.h"

#include <algorithm>
#include <charconv>
#include <map>

namespace bzs::core::protocol {

namespace {

constexpr std::string_view kScheme = "bluezscript://pair?";

std::string query(const Pairing& p) {
    std::string q = "v=1";
    q += "&pi=" + crypto::hex_encode(p.pi_id);
    q += "&name=" + percent_encode(p.pi_name);
    q += "&dev=" + crypto::hex_encode(p.device_id);
    q += "&secret=" + crypto::base32_encode(p.secret.view(), false);
    q += "&alg=" + std::string(crypto::hash_name(p.totp.hash));
    q += "&digits=" + std::to_string(p.totp.digits);
    q += "&period=" + std::to_string(p.totp.step_seconds);
    if (!p.device_name.empty()) {
        q += "&label=" + percent_encode(p.device_name);
    }
    return q;
}

template <std::size_t N>
bool hex_field(const std::string& text, std::array<std::uint8_t, N>& out) {
    auto b = crypto::hex_decode(text);
    if (!b || b->size() != N) {
        return false;
    }
    std::copy(b->begin(), b->end(), out.begin());
    return true;
}

bool int_field(const std::string& text, int lo, int hi, int& out) {
    int v = 0;
    const auto* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (ec != std::errc() || ptr != end || v < lo || v > hi) {
        return false;
    }
    out = v;
    return true;
}

PairingParse error(std::string e) {
    PairingParse r;
    r.error = std::move(e);
    return r;
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

std::string pairing_to_uri(const Pairing& p) {
    return std::string(kScheme) + query(p);
}

std::string pairing_to_app_url(const Pairing& p, std::string_view app_url) {
    std::string base(app_url);
    const auto hash = base.find('#');
    if (hash != std::string::npos) {
        base.resize(hash);
    }
    return base + "#" + query(p);
}

PairingParse parse_pairing(std::string_view text) {
    std::string_view q;
    if (text.substr(0, kScheme.size()) == kScheme) {
        q = text.substr(kScheme.size());
    } else if (const auto hash = text.find('#'); hash != std::string_view::npos) {
        q = text.substr(hash + 1);
    } else {
        return error("not a pairing URI: expected bluezscript://pair?... or a URL with #v=1&...");
    }
    std::map<std::string, std::string> fields;
    while (!q.empty()) {
        const auto amp = q.find('&');
        const std::string_view item = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        if (item.empty()) {
            continue;
        }
        const auto eq = item.find('=');
        if (eq == std::string_view::npos) {
            return error("field without a value in pairing URI");
        }
        const std::string key(item.substr(0, eq));
        auto value = percent_decode(item.substr(eq + 1));
        if (!value) {
            return error("bad percent-encoding in field '" + key + "'");
        }
        if (!fields.emplace(key, std::move(*value)).second) {
            return error("field '" + key + "' appears twice");
        }
    }
    // The secret's text is wiped on every return path, error or not.
    struct Wipe {
        std::map<std::string, std::string>& f;
        ~Wipe() {
            if (auto it = f.find("secret"); it != f.end()) {
                crypto::cleanse(it->second.data(), it->second.size());
            }
        }
    } wipe{fields};
    for (const char* k : {"v", "pi", "name", "dev", "secret"}) {
        if (fields.count(k) == 0) {
            return error(std::string("pairing URI lacks the '") + k + "' field");
        }
    }
    // Required fields are known present from here on; optional ones may be absent.
    auto need = [&](const char* k) -> const std::string& { return fields.at(k); };
    auto maybe = [&](const char* k) -> const std::string* {
        auto it = fields.find(k);
        return it == fields.end() ? nullptr : &it->second;
    };
    if (need("v") != "1") {
        return error("pairing URI version '" + need("v") + "' is not supported");
    }
    Pairing p;
    if (!hex_field(need("pi"), p.pi_id)) {
        return error("'pi' must be 32 hex digits");
    }
    if (!hex_field(need("dev"), p.device_id)) {
        return error("'dev' must be 32 hex digits");
    }
    auto secret = crypto::base32_decode(need("secret"));
    if (!secret || secret->size() < 20) {
        if (secret) {
            crypto::cleanse(secret->data(), secret->size());
        }
        return error("'secret' must be base32 of at least 20 bytes");
    }
    p.secret = crypto::SecretBytes(*secret);
    crypto::cleanse(secret->data(), secret->size());
    p.pi_name = need("name");
    if (p.pi_name.empty() || p.pi_name.size() > 64) {
        return error("'name' must be 1..64 characters");
    }
    if (const auto* alg = maybe("alg")) {
        auto h = crypto::parse_hash(*alg);
        if (!h) {
            return error("'alg' must be SHA1, SHA256 or SHA512");
        }
        p.totp.hash = *h;
    }
    if (const auto* digits = maybe("digits"); digits && !int_field(*digits, 6, 8, p.totp.digits)) {
        return error("'digits' must be 6, 7 or 8");
    }
    if (const auto* period = maybe("period");
        period && !int_field(*period, 15, 300, p.totp.step_seconds)) {
        return error("'period' must be 15..300 seconds");
    }
    if (const auto* label = maybe("label")) {
        p.device_name = *label;
    }
    PairingParse r;
    r.pairing = std::move(p);
    return r;
}

}  // namespace bzs::core::protocol
