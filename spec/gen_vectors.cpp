// SPDX-License-Identifier: GPL-3.0-or-later
// Writes the protocol vectors of spec/vectors/ from fixed inputs (secrets, ids,
// times, challenges), so that running it twice gives byte-identical files. The
// vectors freeze what the code does; tests/unit/core/spec_vectors_test.cpp checks
// the code against them and other clients test their encoders against them.
//
// Usage: bzs_gen_vectors <output folder>   (normally spec/vectors)
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/crypto/crypto.h"
#include "core/protocol/pairing_uri.h"
#include "core/protocol/protocol.h"
#include "vector_json.h"

namespace {

using bzs::spec::Bytes;
using bzs::spec::ByteView;
using bzs::spec::hex;
using bzs::spec::json;
using bzs::spec::totp_json;
using bzs::spec::totp_params;
using bzs::spec::unhex;
using bzs::spec::unhex_array;
using bzs::spec::write;
namespace crypto = bzs::core::crypto;
namespace protocol = bzs::core::protocol;

// ---- fixed inputs ----

constexpr std::string_view kSecretA =
    "9bcfe4b96e9b5c634bb5f4353cae1f84519e8c2d35ea3b25f430fbdf8ab65b39";
constexpr std::string_view kSecretB =
    "0ec27e2f224d19ff9445a8a2cb5ea0c6fc1e257be67f30039eebbdd17ad465a4";
constexpr std::string_view kSecret20 = "97e9f386da5dd5b019d1355c6c49520843b045d8";
constexpr std::string_view kSecret64 =
    "cf42ee32043bb98cb9630c06fb4886f7857d9495e2c10bc82c02c56c4fbcde26"
    "70f5e36b232bcf1e418049200daa55fa5f824107dce513635585025285019f67";
constexpr std::string_view kDeviceA = "f758a1c9c46769c302b22ca2698027a2";
constexpr std::string_view kDeviceB = "b1d18fbc839ee6bf044c1a40db7c1ecd";
constexpr std::string_view kDeviceUnknown = "994ab98500aa69c2c3c9c8c87362c4c7";
constexpr std::string_view kChallenge1 = "23b5286c8381c5a477d0d1e391d16b6f";
constexpr std::string_view kChallenge2 = "661825a8e60b259fcd7acc632818ef5e";
constexpr std::string_view kPiId = "712bb146f4c5b37be010be1b6a6ad359";
constexpr std::string_view kPiId2 = "d3535dc0aa31b235ea249ea9d6bc2088";
constexpr std::string_view kZero16 = "00000000000000000000000000000000";
constexpr std::string_view kAppUrl = "https://pi.local:8443/app/";

ByteView as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// ---- requests ----

struct RequestCase {
    std::string name;
    std::string description;
    std::string_view secret;
    std::string_view device;
    std::uint64_t counter = 1;
    std::int64_t timestamp = 0;
    std::string_view challenge;
    crypto::TotpParams totp;
    std::string action;
    std::vector<std::string> args;
};

struct BuiltRequest {
    RequestCase in;
    Bytes frame;
    Bytes mac;
};

BuiltRequest build_request(const RequestCase& c) {
    const Bytes secret = unhex(c.secret);
    const protocol::DeviceKeys keys = protocol::derive_keys(secret);
    protocol::Request r;
    r.device_id = unhex_array<protocol::kDeviceIdLen>(c.device);
    r.counter = c.counter;
    r.timestamp = c.timestamp;
    r.challenge = unhex_array<protocol::kNonceLen>(c.challenge);
    r.totp = crypto::totp(secret, c.timestamp, c.totp);
    r.action = c.action;
    r.args = c.args;
    BuiltRequest b{c, protocol::encode_request(r, keys.request_mac.view()), {}};
    b.mac.assign(b.frame.end() - static_cast<std::ptrdiff_t>(protocol::kMacLen), b.frame.end());
    return b;
}

json request_json(const BuiltRequest& b) {
    const RequestCase& c = b.in;
    const Bytes secret = unhex(c.secret);
    const protocol::DeviceKeys keys = protocol::derive_keys(secret);
    const std::uint32_t code = crypto::totp(secret, c.timestamp, c.totp);
    json args = json::array();
    for (const auto& a : c.args) {
        args.push_back(a);
    }
    return json{
        {"name", c.name},
        {"description", c.description},
        {"secret", std::string(c.secret)},
        {"secret_base32", crypto::base32_encode(secret, false)},
        {"device_id", std::string(c.device)},
        {"counter", c.counter},
        {"timestamp", c.timestamp},
        {"challenge", std::string(c.challenge)},
        {"totp", totp_json(c.totp)},
        {"action", c.action},
        {"args", args},
        {"request_key", hex(keys.request_mac.view())},
        {"response_key", hex(keys.response_mac.view())},
        {"totp_code", code},
        {"totp_code_text", crypto::format_code(code, c.totp.digits)},
        {"frame_len", b.frame.size()},
        {"mac_input_len", b.frame.size() - protocol::kMacLen},
        {"mac", hex(b.mac)},
        {"frame", hex(b.frame)},
    };
}

std::vector<RequestCase> request_cases() {
    const auto sha1 = totp_params(crypto::Hash::Sha1, 6, 30);
    std::vector<RequestCase> v;
    v.push_back({"minimal",
                 "one short action, no arguments, default TOTP parameters",
                 kSecretA,
                 kDeviceA,
                 1,
                 1700000010,
                 kChallenge1,
                 sha1,
                 "lights.on",
                 {}});
    v.push_back({"arguments",
                 "two arguments, one empty and one UTF-8 with spaces (arguments are bytes)",
                 kSecretA,
                 kDeviceA,
                 2,
                 1700000047,
                 kChallenge2,
                 sha1,
                 "say",
                 {"", "caf\xc3\xa9 au lait \xe2\x98\x95"}});
    v.push_back({"sha256-8-digits-60s",
                 "TOTP with SHA256, 8 digits, 60 s period from pairing; 20-byte secret",
                 kSecret20,
                 kDeviceB,
                 42,
                 1735689599,
                 kChallenge1,
                 totp_params(crypto::Hash::Sha256, 8, 60),
                 "garage-door_1",
                 {"open"}});
    v.push_back({"sha512-7-digits-15s",
                 "TOTP with SHA512, 7 digits, 15 s period; 64-byte secret",
                 kSecret64,
                 kDeviceB,
                 43,
                 1735689600,
                 kChallenge2,
                 totp_params(crypto::Hash::Sha512, 7, 15),
                 "status",
                 {}});
    v.push_back({"big-endian-counter",
                 "a counter using seven bytes, to show the big-endian byte order",
                 kSecretB,
                 kDeviceB,
                 0x001F2E3D4C5B6A79ULL,
                 1700000000,
                 kChallenge1,
                 sha1,
                 "x",
                 {}});
    v.push_back({"eight-arguments",
                 "the maximum of 8 arguments",
                 kSecretB,
                 kDeviceA,
                 7,
                 1700000100,
                 kChallenge2,
                 sha1,
                 "echo",
                 {"a", "bb", "ccc", "--flag", "key=value", "/path/to file", "\xce\xb1", "8"}});
    v.push_back({"zero-challenge",
                 "no challenge was read (only accepted when security.require_challenge is "
                 "false): the field is 16 zero bytes",
                 kSecretB,
                 kDeviceA,
                 8,
                 1700000130,
                 kZero16,
                 sha1,
                 "lights.off",
                 {}});
    // 55 fixed + 64 action + 1 argc + (1+128) + (1+128) + (1+101) + 32 MAC = 512.
    v.push_back({"max-frame-512",
                 "a 64-character action and three arguments (128, 128, 101 bytes): exactly 512 "
                 "bytes",
                 kSecretA,
                 kDeviceA,
                 9,
                 1700000160,
                 kChallenge1,
                 sha1,
                 "A" + std::string(59, 'b') + "-_.9",
                 {std::string(128, 'x'), std::string(128, 'y'), std::string(101, 'z')}});
    v.push_back({"unknown-device",
                 "a well-formed request whose device id the Pi of responses.json "
                 "'unknown-device' has no record of",
                 kSecretB,
                 kDeviceUnknown,
                 3,
                 1700000010,
                 kChallenge1,
                 sha1,
                 "lights.on",
                 {}});
    return v;
}

// ---- responses ----

struct ResponseCase {
    std::string name;
    std::string description;
    const BuiltRequest* request = nullptr;  ///< nullptr: the request was not decoded
    bool known_device = true;
    protocol::Status status = protocol::Status::Ok;
    std::int32_t exit_code = 0;
    std::string output;
};

json response_json(const ResponseCase& c) {
    protocol::Response r;
    if (c.request != nullptr) {
        const auto decoded = protocol::decode_request(c.request->frame);
        r.counter = decoded.request->counter;
        std::copy_n(c.request->mac.begin(), protocol::kTagLen, r.tag.begin());
    }
    r.status = c.status;
    r.exit_code = c.exit_code;
    r.output = c.output;
    Bytes key;
    if (c.request != nullptr && c.known_device) {
        const auto keys = protocol::derive_keys(unhex(c.request->in.secret));
        key.assign(keys.response_mac.view().begin(), keys.response_mac.view().end());
    }
    const Bytes frame = protocol::encode_response(r, key);
    const std::size_t sent = protocol::decode_response(frame, key).response->output.size();
    json j{
        {"name", c.name},
        {"description", c.description},
        {"request", c.request != nullptr ? json(c.request->in.name) : json(nullptr)},
        {"response_key", hex(key)},
        {"counter", r.counter},
        {"tag", hex(r.tag)},
        {"status", static_cast<int>(c.status)},
        {"status_name", std::string(protocol::status_name(c.status))},
        {"exit_code", c.exit_code},
        {"output", c.output},
        {"output_sent_len", sent},
        {"output_sent", hex(as_bytes(std::string_view(c.output).substr(0, sent)))},
        {"truncated", sent < c.output.size()},
        {"mac", hex(ByteView(frame).last(protocol::kMacLen))},
        {"frame_len", frame.size()},
        {"frame", hex(frame)},
    };
    return j;
}

// What the Pi puts in the output field of a refusal.
std::string refusal(protocol::Status s) {
    return std::string(protocol::status_message(s));
}

std::string long_output() {
    std::string s;
    for (int i = 0; s.size() < 1000; ++i) {
        s += "line " + std::to_string(i) + ": the quick brown fox jumps over the lazy dog\n";
    }
    s.resize(1000);
    return s;
}

// ---- fragments ----

json fragments_json(const std::string& name, ByteView frame) {
    json cases = json::array();
    for (const std::size_t mtu : std::vector<std::size_t>{23, 27, 185, 517}) {
        json frags = json::array();
        for (const auto& f : protocol::fragment(frame, mtu)) {
            frags.push_back(hex(f));
        }
        cases.push_back(json{{"name", name + "-mtu" + std::to_string(mtu)},
                             {"mtu", mtu},
                             {"chunk", mtu - 4},
                             {"frame", hex(frame)},
                             {"fragments", frags}});
    }
    return cases;
}

// ---- pairing ----

struct PairingCase {
    std::string name;
    std::string description;
    std::string_view pi_id;
    std::string pi_name;
    std::string_view device;
    std::string_view secret;
    crypto::TotpParams totp;
    std::string label;
};

protocol::Pairing make_pairing(const PairingCase& c) {
    protocol::Pairing p;
    p.pi_id = unhex_array<16>(c.pi_id);
    p.pi_name = c.pi_name;
    p.device_id = unhex_array<protocol::kDeviceIdLen>(c.device);
    p.secret = crypto::SecretBytes(unhex(c.secret));
    p.totp = c.totp;
    p.device_name = c.label;
    return p;
}

json pairing_fields(const protocol::Pairing& p) {
    return json{{"pi_id", hex(p.pi_id)},
                {"pi_name", p.pi_name},
                {"device_id", hex(p.device_id)},
                {"secret", hex(p.secret.view())},
                {"secret_base32", crypto::base32_encode(p.secret.view(), false)},
                {"alg", std::string(crypto::hash_name(p.totp.hash))},
                {"digits", p.totp.digits},
                {"period", p.totp.step_seconds},
                {"label", p.device_name}};
}

// Rewrites one field of a URI's query: replaces its value, or removes it (nullopt).
std::string with_field(std::string_view uri, std::string_view key,
                       const std::optional<std::string>& value) {
    const auto q = uri.find('?');
    std::string out(uri.substr(0, q + 1));
    std::string_view rest = uri.substr(q + 1);
    bool first = true;
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view item = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        std::string piece(item);
        if (item.substr(0, item.find('=')) == key) {
            if (!value) {
                continue;
            }
            piece = std::string(key) + "=" + *value;
        }
        out += (first ? "" : "&") + piece;
        first = false;
    }
    return out;
}

json pairing_json() {
    std::vector<PairingCase> valid = {
        {"basic", "ASCII names, default TOTP parameters, 32-byte secret", kPiId, "garage-pi",
         kDeviceA, kSecretA, totp_params(crypto::Hash::Sha1, 6, 30), "Alice's phone"},
        {"unicode-and-markup",
         "names with spaces, UTF-8 and markup are percent-encoded byte by byte", kPiId,
         "K\xc3\xbc"
         "che Pi \xe2\x98\x95",
         kDeviceB, kSecretB, totp_params(crypto::Hash::Sha256, 8, 60),
         "<b>Bob</b> & \"friends\" 100% +1"},
        {"no-label", "no label: the field is omitted; 20-byte secret (the minimum)", kPiId2, "p",
         kDeviceB, kSecret20, totp_params(crypto::Hash::Sha512, 7, 15), ""},
    };
    json out;
    out["description"] =
        "Pairing payloads. 'valid': fields -> canonical URI and app URL (both must be produced "
        "exactly and parse back to the fields). 'parse': other accepted spellings -> fields. "
        "'invalid': texts that must be refused; error_contains is this implementation's "
        "message and never contains the secret.";
    out["app_url_base"] = std::string(kAppUrl);
    json jvalid = json::array();
    for (const auto& c : valid) {
        const auto p = make_pairing(c);
        json j{{"name", c.name}, {"description", c.description}};
        j["fields"] = pairing_fields(p);
        j["uri"] = protocol::pairing_to_uri(p);
        j["app_url"] = protocol::pairing_to_app_url(p, kAppUrl);
        jvalid.push_back(j);
    }
    out["valid"] = jvalid;

    const auto basic = make_pairing(valid[0]);
    const std::string uri = protocol::pairing_to_uri(basic);
    const std::string b32 = crypto::base32_encode(basic.secret.view(), false);
    const std::string query = uri.substr(uri.find('?') + 1);
    auto lower = [](std::string s) {
        for (auto& ch : s) {
            if (ch >= 'A' && ch <= 'Z') {
                ch = static_cast<char>(ch - 'A' + 'a');
            }
        }
        return s;
    };
    auto upper = [](std::string s) {
        for (auto& ch : s) {
            if (ch >= 'a' && ch <= 'z') {
                ch = static_cast<char>(ch - 'a' + 'A');
            }
        }
        return s;
    };

    struct Alt {
        std::string name;
        std::string description;
        std::string input;
        std::optional<protocol::Pairing> expect;  ///< nullopt: same fields as 'basic'
    };
    protocol::Pairing defaults = basic;
    defaults.totp = {};
    std::vector<Alt> alts = {
        {"lower-case-secret", "base32 is case-insensitive", with_field(uri, "secret", lower(b32)),
         std::nullopt},
        {"padded-secret", "'=' padding on the secret is accepted",
         with_field(uri, "secret", b32 + "===="), std::nullopt},
        {"upper-case-hex", "hex ids are case-insensitive",
         with_field(with_field(uri, "pi", upper(std::string(kPiId))), "dev",
                    upper(std::string(kDeviceA))),
         std::nullopt},
        {"lower-case-alg", "alg is case-insensitive", with_field(uri, "alg", "sha1"), std::nullopt},
        {"reordered-unknown-empty",
         "fields in another order, an unknown field (ignored) and empty items",
         "bluezscript://pair?secret=" + b32 + "&&dev=" + std::string(kDeviceA) +
             "&future=1&name=garage-pi&pi=" + std::string(kPiId) +
             "&label=Alice%27s%20phone&period=30&digits=6&alg=SHA1&v=1&",
         std::nullopt},
        {"defaults", "alg, digits and period absent: SHA1, 6, 30",
         with_field(with_field(with_field(uri, "alg", std::nullopt), "digits", std::nullopt),
                    "period", std::nullopt),
         defaults},
        {"other-app-url", "any URL whose fragment is the query",
         "https://example.org/bzs/index.html?x=1#" + query, std::nullopt},
    };
    json jparse = json::array();
    for (const auto& a : alts) {
        jparse.push_back(json{{"name", a.name},
                              {"description", a.description},
                              {"input", a.input},
                              {"fields", pairing_fields(a.expect ? *a.expect : basic)}});
    }
    out["parse"] = jparse;

    struct Bad {
        std::string name;
        std::string input;
        std::string error;
    };
    std::vector<Bad> bad = {
        {"no-scheme-no-fragment", "https://pi.local:8443/app/", "not a pairing URI"},
        {"scheme-without-query", "bluezscript://pair", "not a pairing URI"},
        {"missing-v", with_field(uri, "v", std::nullopt), "lacks the 'v' field"},
        {"missing-pi", with_field(uri, "pi", std::nullopt), "lacks the 'pi' field"},
        {"missing-name", with_field(uri, "name", std::nullopt), "lacks the 'name' field"},
        {"missing-dev", with_field(uri, "dev", std::nullopt), "lacks the 'dev' field"},
        {"missing-secret", with_field(uri, "secret", std::nullopt), "lacks the 'secret' field"},
        {"version-2", with_field(uri, "v", "2"), "version '2' is not supported"},
        {"pi-short", with_field(uri, "pi", std::string(kPiId.substr(0, 30))),
         "'pi' must be 32 hex digits"},
        {"pi-not-hex", with_field(uri, "pi", "zz" + std::string(kPiId.substr(2))),
         "'pi' must be 32 hex digits"},
        {"dev-long", with_field(uri, "dev", std::string(kDeviceA) + "00"),
         "'dev' must be 32 hex digits"},
        {"secret-not-base32", with_field(uri, "secret", b32.substr(0, 50) + "18"),
         "'secret' must be base32 of at least 20 bytes"},
        {"secret-19-bytes",
         with_field(uri, "secret",
                    crypto::base32_encode(ByteView(unhex(kSecretA)).first(19), false)),
         "'secret' must be base32 of at least 20 bytes"},
        {"name-empty", with_field(uri, "name", ""), "'name' must be 1..64 characters"},
        {"name-65-bytes", with_field(uri, "name", std::string(65, 'n')),
         "'name' must be 1..64 characters"},
        {"alg-md5", with_field(uri, "alg", "MD5"), "'alg' must be SHA1, SHA256 or SHA512"},
        {"digits-5", with_field(uri, "digits", "5"), "'digits' must be 6, 7 or 8"},
        {"digits-9", with_field(uri, "digits", "9"), "'digits' must be 6, 7 or 8"},
        {"digits-word", with_field(uri, "digits", "six"), "'digits' must be 6, 7 or 8"},
        {"period-14", with_field(uri, "period", "14"), "'period' must be 15..300 seconds"},
        {"period-301", with_field(uri, "period", "301"), "'period' must be 15..300 seconds"},
        {"duplicate-dev", uri + "&dev=" + std::string(kDeviceB), "field 'dev' appears twice"},
        {"item-without-value", uri + "&label", "field without a value"},
        {"bad-percent", with_field(uri, "name", "garage%G1"),
         "bad percent-encoding in field 'name'"},
        {"cut-percent", with_field(uri, "label", "Alice%2"),
         "bad percent-encoding in field 'label'"},
    };
    json jbad = json::array();
    for (const auto& b : bad) {
        jbad.push_back(json{{"name", b.name}, {"input", b.input}, {"error_contains", b.error}});
    }
    out["invalid"] = jbad;
    return out;
}

// ---- malformed requests ----

// The 54 bytes before the action length (version, type, device id, counter,
// timestamp, challenge, TOTP code), taken from a genuine encoding and then altered.
Bytes fixed_part(std::uint8_t version, std::uint8_t type) {
    protocol::Request r;
    r.device_id = unhex_array<protocol::kDeviceIdLen>(kDeviceA);
    r.counter = 5;
    r.timestamp = 1700000010;
    r.challenge = unhex_array<protocol::kNonceLen>(kChallenge1);
    r.totp = 123456;
    r.action = "x";
    Bytes b = protocol::encode_request(r, unhex(kSecretA));
    b.resize(54);
    b[0] = version;
    b[1] = type;
    return b;
}

Bytes& put(Bytes& b, std::uint8_t x) {
    b.push_back(x);
    return b;
}
Bytes& put(Bytes& b, std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
    return b;
}
// Appends a genuine MAC so that the only fault of the frame is the one described.
Bytes seal(Bytes b) {
    const auto keys = protocol::derive_keys(unhex(kSecretA));
    const Bytes mac = crypto::hmac(crypto::Hash::Sha256, keys.request_mac.view(), b);
    b.insert(b.end(), mac.begin(), mac.end());
    return b;
}
Bytes body(std::uint8_t version, std::uint8_t type, std::string_view action) {
    Bytes b = fixed_part(version, type);
    put(b, static_cast<std::uint8_t>(action.size()));
    put(b, action);
    return b;
}

json malformed_json() {
    struct Case {
        std::string name;
        std::string description;
        Bytes frame;
        protocol::Status status = protocol::Status::Malformed;
    };
    std::vector<Case> cases;
    auto add = [&](std::string name, std::string description, Bytes frame,
                   protocol::Status s = protocol::Status::Malformed) {
        cases.push_back({std::move(name), std::move(description), std::move(frame), s});
    };
    using protocol::Status;
    Bytes b;

    add("empty", "no bytes at all", {});
    add("one-byte", "a version byte and nothing else", {0x01});
    b = body(0, 1, "lights.on");
    add("version-0", "version byte 0x00", seal(put(b, 0)), Status::UnknownVersion);
    b = body(2, 1, "lights.on");
    add("version-2", "version byte 0x02 (a future protocol)", seal(put(b, 0)),
        Status::UnknownVersion);
    b = body(0xFF, 1, "lights.on");
    add("version-255", "version byte 0xFF", seal(put(b, 0)), Status::UnknownVersion);
    b = body(1, 2, "lights.on");
    add("type-response", "type 0x02 (a response) sent as a command", seal(put(b, 0)));
    b = body(1, 0, "lights.on");
    add("type-0", "type 0x00", seal(put(b, 0)));
    b = body(1, 1, "a");
    add("below-minimum", "88 bytes: one less than the smallest request (no argument count)",
        seal(b));
    b = fixed_part(1, 1);
    put(put(put(b, 0), 0), 0);
    add("action-length-0", "action name length 0 (89 bytes)", seal(b));
    b = body(1, 1, std::string(65, 'a'));
    add("action-length-65", "a 65-character action name", seal(put(b, 0)));
    b = fixed_part(1, 1);
    put(put(put(b, 20), "abc"), 0);
    add("action-past-end", "action name length 20 with only 4 bytes before the MAC", seal(b));
    b = body(1, 1, "abc");
    add("no-argument-count", "the frame ends right after the action name", seal(b));
    b = body(1, 1, "lights on");
    add("action-space", "a space in the action name", seal(put(b, 0)));
    b = body(1, 1, ".hidden");
    add("action-leading-dot", "an action name must start with a letter or digit", seal(put(b, 0)));
    b = body(1, 1, "../x");
    add("action-path", "'/' in the action name", seal(put(b, 0)));
    b = body(1, 1, "caf\xc3\xa9");
    add("action-non-ascii", "non-ASCII bytes in the action name", seal(put(b, 0)));
    b = body(1, 1, "open.toml");
    add("action-toml-suffix", "an action name ending in .toml (the metadata file's suffix)",
        seal(put(b, 0)));
    b = body(1, 1, "echo");
    put(b, 9);
    for (int i = 0; i < 9; ++i) {
        put(put(b, 1), "a");
    }
    add("nine-arguments", "argument count 9", seal(b));
    b = body(1, 1, "echo");
    put(put(put(b, 1), 10), "abc");
    add("argument-past-end", "argument length 10 with only 3 bytes before the MAC", seal(b));
    b = body(1, 1, "echo");
    put(put(put(b, 2), 1), "a");
    add("argument-missing", "argument count 2 but one argument", seal(b));
    b = body(1, 1, "echo");
    put(put(put(b, 1), 129), std::string(129, 'a'));
    add("argument-129-bytes", "an argument of 129 bytes", seal(b));
    b = body(1, 1, "echo");
    put(put(put(b, 1), 3), std::string_view("a\0b", 3));
    add("argument-nul", "a NUL byte in an argument", seal(b));
    b = body(1, 1, "echo");
    put(put(put(b, 1), 3), "a\nb");
    add("argument-newline", "a line feed in an argument", seal(b));
    b = body(1, 1, "echo");
    put(put(put(b, 1), 3),
        "a\x7f"
        "b");
    add("argument-del", "DEL (0x7F) in an argument", seal(b));
    b = body(1, 1, "echo");
    put(put(put(b, 1), 4), "\x1b[2J");
    add("argument-escape", "an ANSI escape sequence in an argument", seal(b));
    b = body(1, 1, "lights.on");
    put(put(b, 0), 0);
    add("trailing-byte", "one extra byte between the last field and the MAC", seal(b));
    b = body(1, 1, std::string(64, 'a'));
    put(b, 3);
    put(put(b, 128), std::string(128, 'x'));
    put(put(b, 128), std::string(128, 'y'));
    put(put(b, 102), std::string(102, 'z'));  // one byte more than "max-frame-512"
    add("frame-513", "513 bytes, otherwise well formed: over the 512-byte maximum", seal(b));

    json out;
    out["description"] =
        "Command frames a Pi must refuse before any cryptographic check, with the status "
        "given. Each frame carries a genuine MAC (request key of secret "
        "9bcf...5b39) so that the only fault is the one described.";
    json jc = json::array();
    for (const auto& c : cases) {
        jc.push_back(json{{"name", c.name},
                          {"description", c.description},
                          {"status", static_cast<int>(c.status)},
                          {"status_name", std::string(protocol::status_name(c.status))},
                          {"frame_len", c.frame.size()},
                          {"frame", hex(c.frame)}});
    }
    out["cases"] = jc;
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: bzs_gen_vectors <output folder>\n";
        return 2;
    }
    try {
        const std::filesystem::path dir = argv[1];
        if (!std::filesystem::is_directory(dir)) {
            std::cerr << "bzs_gen_vectors: " << dir << " is not a folder\n";
            return 1;
        }

        std::vector<BuiltRequest> reqs;
        for (const auto& c : request_cases()) {
            reqs.push_back(build_request(c));
        }
        json jreq;
        jreq["description"] =
            "Command requests: inputs -> derived keys, TOTP code, frame and MAC. Keys are "
            "HKDF-SHA256(ikm = secret, salt = \"bluezscript-v1\", info = \"bluezscript v1 "
            "request mac\" / \"bluezscript v1 response mac\", length 32). The TOTP code is "
            "computed at 'timestamp'. The MAC is HMAC-SHA256(request_key, frame[0 .. "
            "mac_input_len)).";
        jreq["cases"] = json::array();
        for (const auto& r : reqs) {
            jreq["cases"].push_back(request_json(r));
        }
        write(dir / "requests.json", jreq);

        auto req = [&](std::string_view name) -> const BuiltRequest* {
            for (const auto& r : reqs) {
                if (r.in.name == name) {
                    return &r;
                }
            }
            throw std::logic_error("no request case named " + std::string(name));
        };
        const std::vector<ResponseCase> resp_cases = {
            {"ok", "the action ran and printed one line", req("minimal"), true,
             protocol::Status::Ok, 0, "lights: on\n"},
            {"ok-empty", "the action ran and printed nothing", req("arguments"), true,
             protocol::Status::Ok, 0, ""},
            {"action-failed", "the action exited with status 3", req("sha256-8-digits-60s"), true,
             protocol::Status::ActionFailed, 3, "door sensor not responding\n"},
            {"action-timeout", "the action was killed by SIGKILL (exit code -9) at its timeout",
             req("sha512-7-digits-15s"), true, protocol::Status::ActionTimeout, -9, "partial"},
            {"refused-bad-totp",
             "a refusal to a known device is MACed with its response key; the output of a "
             "refusal is the status message",
             req("big-endian-counter"), true, protocol::Status::BadTotp, 0,
             refusal(protocol::Status::BadTotp)},
            {"truncated-output",
             "1000 bytes of output: only the first 447 are sent, the frame is 512 bytes",
             req("eight-arguments"), true, protocol::Status::Ok, 0, long_output()},
            {"unknown-device",
             "the request named a device the Pi does not know: no key, the MAC field is 32 "
             "zero bytes (clients must treat it as not from their Pi)",
             req("unknown-device"), false, protocol::Status::UnknownDevice, 0,
             refusal(protocol::Status::UnknownDevice)},
            {"malformed-request",
             "the request could not be decoded: counter 0, tag all zero, MAC all zero", nullptr,
             false, protocol::Status::Malformed, 0, refusal(protocol::Status::Malformed)},
        };
        json jresp;
        jresp["description"] =
            "Responses: inputs -> frame. 'request' names the case of requests.json whose "
            "counter, tag (first 16 bytes of its MAC) and response key are used. The MAC is "
            "HMAC-SHA256(response_key, frame[0 .. frame_len - 32)); response_key \"\" means "
            "the Pi had no key and the MAC field is zero.";
        jresp["cases"] = json::array();
        for (const auto& c : resp_cases) {
            jresp["cases"].push_back(response_json(c));
        }
        write(dir / "responses.json", jresp);

        json jfrag;
        jfrag["description"] =
            "Notification fragments of response frames: chunk = mtu - 4 payload bytes per "
            "fragment after a one-byte header (bit 7: last fragment, bits 0-6: index).";
        jfrag["cases"] = json::array();
        for (const auto& c : {jresp["cases"][0], jresp["cases"][5]}) {
            const Bytes frame = unhex(c["frame"].get<std::string>());
            for (const auto& f : fragments_json(c["name"].get<std::string>(), frame)) {
                jfrag["cases"].push_back(f);
            }
        }
        write(dir / "fragments.json", jfrag);

        write(dir / "pairing.json", pairing_json());
        write(dir / "malformed.json", malformed_json());
        std::cout << "wrote requests.json, responses.json, fragments.json, pairing.json and "
                     "malformed.json to "
                  << dir.string() << "\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "bzs_gen_vectors: " << e.what() << "\n";
        return 1;
    }
}
