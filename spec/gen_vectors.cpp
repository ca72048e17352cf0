// SPDX-License-Identifier: GPL-3.0-or-later
// Writes the protocol version 2 vectors (docs/protocol.md) from fixed
// inputs — keys, ids, codes, challenges, nonces, times — so that two runs give
// byte-identical files. tests/unit/core/spec_vectors_test.cpp checks the C++ code
// against them, tests/pylib/tests/test_protocol_v2.py the Python one.
//
// Usage: bzs_gen_vectors <output folder>   (normally spec/vectors)
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/crypto/crypto.h"
#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/catalogue.h"
#include "core/protocol/link.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/sealed.h"
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

// ---- fixed inputs (published: never use them for a real Pi or phone) ----

constexpr std::string_view kPiScalar =
    "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433";
constexpr std::string_view kPhoneScalar =
    "c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53";
constexpr std::string_view kPiId = "712bb146f4c5b37be010be1b6a6ad359";
constexpr std::string_view kDeviceA = "f758a1c9c46769c302b22ca2698027a2";
constexpr std::string_view kDeviceB = "b1d18fbc839ee6bf044c1a40db7c1ecd";
constexpr std::string_view kCode = "5d1f0b7a3c9e42d18f6a2b4c0e9d7f31";
constexpr std::string_view kSecretB =
    "0ec27e2f224d19ff9445a8a2cb5ea0c6fc1e257be67f30039eebbdd17ad465a4";
constexpr std::string_view kChallenge1 = "23b5286c8381c5a477d0d1e391d16b6f";
constexpr std::string_view kChallenge2 = "661825a8e60b259fcd7acc632818ef5e";
constexpr std::string_view kNonceReq = "000102030405060708090a0b";
constexpr std::string_view kNonceResp = "0f0e0d0c0b0a090807060504";
constexpr std::string_view kAppUrl = "https://pi.local:8443/app/";

// The device secret of device A: the result of the pairing exchange below.
struct Pairing {
    Bytes pi_public;
    Bytes phone_public;
    protocol::Fingerprint fingerprint{};
    protocol::Fingerprint transcript{};
    protocol::PairSecret secret;
};

Pairing pairing() {
    Pairing p;
    p.pi_public = crypto::p256_from_private(unhex(kPiScalar))->public_key;
    p.phone_public = crypto::p256_from_private(unhex(kPhoneScalar))->public_key;
    p.fingerprint = protocol::key_fingerprint(p.pi_public);
    p.transcript = protocol::pair_transcript(unhex_array<16>(kPiId), unhex_array<16>(kDeviceA),
                                             p.pi_public, p.phone_public);
    p.secret = *protocol::pair_derive(unhex(kPhoneScalar), p.pi_public, unhex(kCode), p.transcript);
    return p;
}

// ---- keys.json ----

json keys_json(const Pairing& p) {
    json cases = json::array();
    for (const auto& [name, secret] : {std::pair{"device-a", hex(p.secret.secret.view())},
                                       std::pair{"device-b", std::string(kSecretB)}}) {
        const auto k = protocol::device_seal_keys(unhex(secret));
        cases.push_back(json{{"name", name},
                             {"secret", secret},
                             {"request_key", hex(k.request.view())},
                             {"response_key", hex(k.response.view())}});
    }
    const auto pk = protocol::pair_seal_keys(unhex(kCode));
    json totp = json::array();
    const Bytes s(p.secret.secret.view().begin(), p.secret.secret.view().end());
    for (const auto& tp :
         {totp_params(crypto::Hash::Sha1, 6, 30), totp_params(crypto::Hash::Sha256, 8, 60),
          totp_params(crypto::Hash::Sha512, 7, 15)}) {
        const std::int64_t t = 1700000010;
        const std::uint32_t code = crypto::totp(s, t, tp);
        totp.push_back(json{{"secret", hex(s)},
                            {"totp", totp_json(tp)},
                            {"time", t},
                            {"step", crypto::totp_step(t, tp.step_seconds)},
                            {"code", code},
                            {"code_text", crypto::format_code(code, tp.digits)}});
    }
    return json{{"description",
                 "HKDF-SHA256 keys (salt \"bluezscript-v2\", length 32): request_key info "
                 "\"bluezscript v2 request\", response_key \"bluezscript v2 response\"; of the "
                 "pairing code: \"bluezscript v2 pair request\" / \"... pair response\". TOTP: "
                 "RFC 6238 with the device secret as key; truncation offset = last byte of the "
                 "HMAC & 0x0f for every hash."},
                {"device", cases},
                {"pair", json{{"code", std::string(kCode)},
                              {"pair_request_key", hex(pk.request.view())},
                              {"pair_response_key", hex(pk.response.view())}}},
                {"totp", totp}};
}

// ---- pair.json ----

json pair_json(const Pairing& p) {
    const auto keys = protocol::pair_seal_keys(unhex(kCode));
    protocol::PairBody body;
    body.challenge = unhex_array<16>(kChallenge1);
    std::copy(p.phone_public.begin(), p.phone_public.end(), body.phone_public.begin());
    const Bytes plain = protocol::encode_body(body);
    const Bytes request =
        protocol::seal_request(protocol::RequestType::Pair, unhex_array<16>(kDeviceA), 0,
                               unhex_array<12>(kNonceReq), keys.request.view(), plain);
    const protocol::ResponseHead head{protocol::Status::Ok, 1700000011, false};
    const std::string message = "paired as Anna";
    const Bytes rest = protocol::pair_result_rest(p.secret.confirm, message);
    const Bytes response = protocol::seal_response(
        protocol::ResponseType::PairResult, 0, protocol::request_tag(request),
        unhex_array<12>(kNonceResp), keys.response.view(), head, rest);
    const auto z = crypto::p256_ecdh(unhex(kPhoneScalar), p.pi_public);
    return json{
        {"description",
         "One pairing exchange. The phone's ephemeral key and the nonces are fixed here; a "
         "real phone draws them fresh. Z = X coordinate of ECDH(phone_private, pi_public); "
         "T = SHA-256(\"bluezscript v2 pair\" || pi_id || device_id || pi_public || "
         "phone_public); secret = HKDF(Z, salt = code, info = \"bluezscript v2 device secret\" "
         "|| T); confirm = HKDF(secret, salt \"bluezscript-v2\", info = \"bluezscript v2 pair "
         "confirm\" || T)."},
        {"pi_id", std::string(kPiId)},
        {"pi_private", std::string(kPiScalar)},
        {"pi_public", hex(p.pi_public)},
        {"pi_key_fingerprint", hex(p.fingerprint)},
        {"device_id", std::string(kDeviceA)},
        {"code", std::string(kCode)},
        {"code_base32", crypto::base32_encode(unhex(kCode), false)},
        {"phone_private", std::string(kPhoneScalar)},
        {"phone_public", hex(p.phone_public)},
        {"shared_x", hex(z->view())},
        {"transcript", hex(p.transcript)},
        {"secret", hex(p.secret.secret.view())},
        {"confirm", hex(p.secret.confirm)},
        {"challenge", std::string(kChallenge1)},
        {"request_nonce", std::string(kNonceReq)},
        {"request_plaintext", hex(plain)},
        {"request", hex(request)},
        {"response_nonce", std::string(kNonceResp)},
        {"response_status", "ok"},
        {"response_pi_time", head.pi_time},
        {"response_synced", head.synced},
        {"response_message", message},
        {"response", hex(response)},
    };
}

// ---- requests.json ----

struct RequestCase {
    std::string name;
    std::string description;
    protocol::RequestType type = protocol::RequestType::Command;
    std::string secret;
    std::string_view device;
    std::uint64_t counter = 1;
    std::int64_t timestamp = 0;
    std::string_view challenge;
    crypto::TotpParams totp;
    std::string action;
    std::vector<std::string> args;
    std::uint8_t first = 0;
};

struct BuiltRequest {
    RequestCase in;
    Bytes plaintext;
    Bytes frame;
};

BuiltRequest build(const RequestCase& c) {
    const Bytes secret = unhex(c.secret);
    const auto keys = protocol::device_seal_keys(secret);
    const std::uint32_t code = crypto::totp(secret, c.timestamp, c.totp);
    Bytes plain;
    if (c.type == protocol::RequestType::Command) {
        protocol::CommandBody b;
        b.timestamp = c.timestamp;
        b.challenge = unhex_array<16>(c.challenge);
        b.totp = code;
        b.action = c.action;
        b.args = c.args;
        plain = protocol::encode_body(b);
    } else {
        protocol::CatalogueBody b;
        b.timestamp = c.timestamp;
        b.challenge = unhex_array<16>(c.challenge);
        b.totp = code;
        b.first = c.first;
        plain = protocol::encode_body(b);
    }
    return {c, plain,
            protocol::seal_request(c.type, unhex_array<16>(c.device), c.counter,
                                   unhex_array<12>(kNonceReq), keys.request.view(), plain)};
}

json request_json(const BuiltRequest& b) {
    const RequestCase& c = b.in;
    const Bytes secret = unhex(c.secret);
    const std::uint32_t code = crypto::totp(secret, c.timestamp, c.totp);
    json j{{"name", c.name},
           {"description", c.description},
           {"type", c.type == protocol::RequestType::Command ? "command" : "catalogue"},
           {"secret", c.secret},
           {"device_id", std::string(c.device)},
           {"counter", c.counter},
           {"nonce", std::string(kNonceReq)},
           {"timestamp", c.timestamp},
           {"challenge", std::string(c.challenge)},
           {"totp", totp_json(c.totp)},
           {"totp_code", code}};
    if (c.type == protocol::RequestType::Command) {
        j["action"] = c.action;
        j["args"] = c.args;
    } else {
        j["first"] = c.first;
    }
    j["plaintext"] = hex(b.plaintext);
    j["frame_len"] = b.frame.size();
    j["frame"] = hex(b.frame);
    return j;
}

std::vector<RequestCase> request_cases(const std::string& secret_a) {
    const auto sha1 = totp_params(crypto::Hash::Sha1, 6, 30);
    std::vector<RequestCase> v;
    v.push_back({"minimal",
                 "one short action, no arguments",
                 protocol::RequestType::Command,
                 secret_a,
                 kDeviceA,
                 1,
                 1700000010,
                 kChallenge1,
                 sha1,
                 "lights.on",
                 {},
                 0});
    v.push_back({"arguments",
                 "two arguments, one empty and one UTF-8 with spaces",
                 protocol::RequestType::Command,
                 secret_a,
                 kDeviceA,
                 2,
                 1700000011,
                 kChallenge2,
                 sha1,
                 "say",
                 {"", "caf\xc3\xa9 au lait \xe2\x98\x95"},
                 0});
    v.push_back({"sha256-8-digits-60s",
                 "TOTP with SHA256, 8 digits, 60 s; another device",
                 protocol::RequestType::Command,
                 std::string(kSecretB),
                 kDeviceB,
                 42,
                 1735689599,
                 kChallenge1,
                 totp_params(crypto::Hash::Sha256, 8, 60),
                 "garage-door_1",
                 {"open"},
                 0});
    v.push_back({"big-counter",
                 "a counter above 2^32 (milliseconds since 1970)",
                 protocol::RequestType::Command,
                 secret_a,
                 kDeviceA,
                 1700000012345ULL,
                 1700000012,
                 kChallenge2,
                 sha1,
                 "lights.off",
                 {},
                 0});
    v.push_back(
        {"largest",
         "a 64-byte action name and eight arguments: 512 bytes",
         protocol::RequestType::Command,
         secret_a,
         kDeviceA,
         3,
         1700000013,
         kChallenge1,
         sha1,
         std::string(64, 'a'),
         {std::string(128, 'x'), std::string(128, 'y'), std::string(37, 'z'), "", "", "", "", ""},
         0});
    v.push_back({"catalogue",
                 "the first catalogue page",
                 protocol::RequestType::Catalogue,
                 secret_a,
                 kDeviceA,
                 4,
                 1700000014,
                 kChallenge2,
                 sha1,
                 "",
                 {},
                 0});
    v.push_back({"catalogue-page-2",
                 "a catalogue page from the third action on",
                 protocol::RequestType::Catalogue,
                 secret_a,
                 kDeviceA,
                 5,
                 1700000015,
                 kChallenge1,
                 sha1,
                 "",
                 {},
                 2});
    return v;
}

// ---- catalogue.json ----

std::vector<protocol::CatalogueEntry> sample_catalogue() {
    std::vector<protocol::CatalogueEntry> v(4);
    v[0].name = "garage.open";
    v[0].description = "Open the garage door";
    v[0].confirm = true;
    v[1].name = "heater";
    v[1].description = "Heater power \xe2\x98\x95";
    v[1].kind = protocol::ArgKind::Choices;
    v[1].max_args = 1;
    v[1].choices = {"off", "low", "high"};
    v[2].name = "say";
    v[2].description = "Speak a short text";
    v[2].kind = protocol::ArgKind::Pattern;
    v[2].max_args = 2;
    v[2].pattern = "[A-Za-z ]{1,32}";
    v[3].name = "note";
    v[3].description = std::string(99, 'n') + "\xc3\xa9 cut here";
    v[3].kind = protocol::ArgKind::Free;
    v[3].max_args = 8;
    return v;
}

json entry_json(const protocol::CatalogueEntry& e) {
    static constexpr std::string_view kKinds[] = {"none", "free", "pattern", "choices"};
    json j{{"name", e.name},
           {"description", e.description},
           {"confirm", e.confirm},
           {"kind", std::string(kKinds[static_cast<int>(e.kind)])},
           {"max_args", e.max_args}};
    if (e.kind == protocol::ArgKind::Pattern) {
        j["pattern"] = e.pattern;
    }
    if (e.kind == protocol::ArgKind::Choices) {
        j["choices"] = e.choices;
    }
    j["bytes"] = hex(protocol::encode_catalogue_entry(e));
    return j;
}

json catalogue_json() {
    const auto all = sample_catalogue();
    json entries = json::array();
    for (const auto& e : all) {
        entries.push_back(entry_json(e));
    }
    json pages = json::array();
    for (const int first : {0, 2, 4}) {
        pages.push_back(json{
            {"first", first},
            {"rest", hex(protocol::encode_catalogue_page(all, static_cast<std::uint8_t>(first)))}});
    }
    return json{{"description",
                 "Catalogue entries as given to the encoder -> their bytes (the description is "
                 "cut to 100 bytes at a character boundary: 'note' shows it), and pages: the "
                 "'rest' of a catalogue result (total, first, count, entries) for 'first'."},
                {"entries", entries},
                {"pages", pages}};
}

// ---- responses.json ----

json responses_json(const std::vector<BuiltRequest>& reqs, const std::string& secret_a) {
    auto req = [&](std::string_view name) -> const BuiltRequest& {
        for (const auto& r : reqs) {
            if (r.in.name == name) {
                return r;
            }
        }
        throw std::logic_error("no request case named " + std::string(name));
    };
    json cases = json::array();
    auto sealed = [&](std::string name, std::string description, const BuiltRequest& r,
                      protocol::ResponseHead head, std::int32_t exit_code, std::string output) {
        const auto keys = protocol::device_seal_keys(unhex(r.in.secret));
        const Bytes frame = protocol::seal_command_result(
            r.in.counter, protocol::request_tag(r.frame), unhex_array<12>(kNonceResp),
            keys.response.view(), head, exit_code, output);
        cases.push_back(
            json{{"name", std::move(name)},
                 {"description", std::move(description)},
                 {"request", r.in.name},
                 {"type", "command_result"},
                 {"status", std::string(protocol::status_name(head.status))},
                 {"pi_time", head.pi_time},
                 {"synced", head.synced},
                 {"exit_code", exit_code},
                 {"output", output},
                 {"output_sent_len", std::min(output.size(), protocol::kMaxResultOutput)},
                 {"nonce", std::string(kNonceResp)},
                 {"frame", hex(frame)}});
    };
    sealed("ok", "the action ran and printed one line", req("minimal"),
           {protocol::Status::Ok, 1700000011, true}, 0, "lights: on\n");
    sealed("action-failed", "the action exited with status 3; the Pi's clock is not synchronised",
           req("sha256-8-digits-60s"), {protocol::Status::ActionFailed, 1735689600, false}, 3,
           "door sensor not responding\n");
    sealed("action-timeout", "killed by SIGKILL at its timeout (exit code -9)", req("arguments"),
           {protocol::Status::ActionTimeout, 1700000041, true}, -9, "partial");
    sealed("refused-stale",
           "a refusal after the frame authenticated is sealed too: the phone "
           "learns the reason and the Pi's time",
           req("big-counter"), {protocol::Status::StaleTimestamp, 1700003612, true}, 0,
           std::string(protocol::status_message(protocol::Status::StaleTimestamp)));
    sealed("truncated-output", "1000 bytes of output: the first 458 are sent, 512 bytes in all",
           req("largest"), {protocol::Status::Ok, 1700000014, true}, 0, std::string(1000, 'o'));

    const auto& cat = req("catalogue");
    const auto keys_a = protocol::device_seal_keys(unhex(secret_a));
    const Bytes cat_frame =
        protocol::seal_response(protocol::ResponseType::CatalogueResult, cat.in.counter,
                                protocol::request_tag(cat.frame), unhex_array<12>(kNonceResp),
                                keys_a.response.view(), {protocol::Status::Ok, 1700000015, true},
                                protocol::encode_catalogue_page(sample_catalogue(), 0));
    cases.push_back(json{{"name", "catalogue"},
                         {"description", "the first page of catalogue.json's actions"},
                         {"request", "catalogue"},
                         {"type", "catalogue_result"},
                         {"status", "ok"},
                         {"pi_time", 1700000015},
                         {"synced", true},
                         {"rest", hex(protocol::encode_catalogue_page(sample_catalogue(), 0))},
                         {"nonce", std::string(kNonceResp)},
                         {"frame", hex(cat_frame)}});
    for (const auto& [name, status, counter] :
         {std::tuple{"refusal-bad-mac", protocol::Status::BadMac, std::uint64_t{1}},
          std::tuple{"refusal-unknown-device", protocol::Status::UnknownDevice, std::uint64_t{7}},
          std::tuple{"refusal-malformed", protocol::Status::Malformed, std::uint64_t{0}}}) {
        cases.push_back(
            json{{"name", name},
                 {"description", "a plain refusal: not sealed, so never shown as the Pi's answer"},
                 {"type", "refusal"},
                 {"status", std::string(protocol::status_name(status))},
                 {"counter", counter},
                 {"frame", hex(protocol::encode_refusal(counter, status))}});
    }
    return json{{"description",
                 "Responses. 'request' names the case of requests.json answered: its counter, "
                 "its last 16 bytes (the request's GCM tag, part of the response's additional "
                 "data) and its device's response key."},
                {"cases", cases}};
}

// ---- links.json ----

protocol::PairingLink sample_link(const Pairing& p) {
    protocol::PairingLink l;
    l.pi_id = unhex_array<16>(kPiId);
    l.pi_key = p.fingerprint;
    l.pi_name = "Garage Pi \xe2\x98\x95";
    l.device_id = unhex_array<16>(kDeviceA);
    l.code = crypto::SecretBytes(unhex(kCode));
    l.label = "Anna's phone";
    return l;
}

json link_fields(const protocol::PairingLink& l) {
    return json{{"pi", hex(l.pi_id)},
                {"pk", hex(l.pi_key)},
                {"name", l.pi_name},
                {"dev", hex(l.device_id)},
                {"code", hex(l.code.view())},
                {"alg", std::string(crypto::hash_name(l.totp.hash))},
                {"digits", l.totp.digits},
                {"period", l.totp.step_seconds},
                {"label", l.label}};
}

json links_json(const Pairing& p) {
    const protocol::PairingLink l = sample_link(p);
    const std::string q = protocol::link_query(l);
    auto replaced = [&](std::string_view key, std::string_view value) {
        std::string s = q;
        const std::string k = "&" + std::string(key) + "=";
        const auto at = s.find(k);
        const auto end = s.find('&', at + 1);
        s.replace(at, (end == std::string::npos ? s.size() : end) - at, k + std::string(value));
        return "bluezscript://pair?" + s;
    };
    const std::string uri = protocol::link_to_uri(l);
    json parse = json::array();
    for (const auto& [input, why] : std::vector<std::pair<std::string, std::string>>{
             {replaced("alg", "sha1"), "alg is case-insensitive"},
             {replaced("code", "lupqw6r4tzbndd3kfnga5hl7ge"), "code is case-insensitive"},
             {uri + "&future=%ZZ", "an unknown key is ignored with its value undecoded"},
             {uri + "&&", "empty items are skipped"},
             {uri + "&x=a=b", "an item is split at its first '='"},
             {"https://other.example/app/?q=1#" + q, "the app form: the query after '#'"},
             {replaced("label", ""), "an empty label is no label"},
             {replaced("name", "a+b"), "'+' is a plus sign, not a space"}}) {
        const auto r = protocol::parse_link(input);
        if (!r.link) {
            throw std::logic_error("parse case refused: " + input + ": " + r.error);
        }
        parse.push_back(json{{"input", input}, {"why", why}, {"fields", link_fields(*r.link)}});
    }
    json invalid = json::array();
    for (const auto& [input, contains] : std::vector<std::pair<std::string, std::string>>{
             {replaced("digits", "06"), "digits"},
             {replaced("period", "030"), "period"},
             {replaced("period", "14"), "period"},
             {replaced("alg", "sha-256"), "alg"},
             {replaced("code", "LUPQW6R4TZBNDD3KFNGA5HL7GF"), "code"},
             {replaced("code", "LUPQW6R4TZBNDD3KFNGA5HL7GE======"), "code"},
             {replaced("code", "LUPQW6R4TZBNDD3KFNGA5HL7"), "code"},
             {replaced("name", ""), "name"},
             {replaced("name", "Garage%0A"), "name"},
             {replaced("name", "%E2%80%AEevil"), "name"},
             {replaced("name", "Garage%20"), "name"},
             {replaced("name", std::string(65, 'g')), "name"},
             {replaced("label", "An%0Aa"), "label"},
             {replaced("label", "%ZZ"), "label"},
             {replaced("pi", "712bb146"), "pi"},
             {replaced("pk", "320e"), "pk"},
             {replaced("dev", std::string(32, 'g')), "dev"},
             {uri + "&name=x", "given twice"},
             {uri + "&novalue", "'='"},
             {"bluezscript://pair?" + q.substr(0, q.find("&code")), "code: missing"},
             {"https://pi.local:8443/app/", "not a pairing link"},
         }) {
        const auto r = protocol::parse_link(input);
        if (r.link || r.error.find(contains) == std::string::npos) {
            throw std::logic_error("invalid case accepted or unexplained: " + input);
        }
        invalid.push_back(json{{"input", input}, {"error_contains", contains}});
    }
    std::string v1 = uri;
    v1.replace(v1.find("v=2"), 3, "v=1");
    invalid.push_back(json{{"input", v1}, {"error_contains", "expected 2"}});
    return json{{"description",
                 "Pairing links. 'valid': fields -> the canonical uri and the app url (for "
                 "app_url_base). 'parse': other spellings that parse to 'fields'. 'invalid': "
                 "inputs every implementation refuses; error_contains is a piece of this "
                 "implementation's message (others need only refuse, and never show the code)."},
                {"app_url_base", std::string(kAppUrl)},
                {"valid", json::array({json{{"fields", link_fields(l)},
                                            {"uri", uri},
                                            {"app_url", protocol::link_to_app_url(l, kAppUrl)}}})},
                {"parse", parse},
                {"invalid", invalid}};
}

// ---- malformed.json ----

json malformed_json(const std::string& secret_a) {
    const auto keys = protocol::device_seal_keys(unhex(secret_a));
    const auto dev = unhex_array<16>(kDeviceA);
    const auto nonce = unhex_array<12>(kNonceReq);
    protocol::CommandBody good;
    good.timestamp = 1700000010;
    good.challenge = unhex_array<16>(kChallenge1);
    good.totp = 123456;
    good.action = "lights.on";
    const Bytes good_plain = protocol::encode_body(good);
    const Bytes good_frame = protocol::seal_request(protocol::RequestType::Command, dev, 1, nonce,
                                                    keys.request.view(), good_plain);
    json header = json::array();
    auto add_header = [&](std::string name, std::string description, Bytes frame,
                          std::string progress) {
        const auto d = protocol::decode_request_header(frame);
        if (d.header) {
            throw std::logic_error("header case decodes: " + name);
        }
        header.push_back(json{{"name", std::move(name)},
                              {"description", std::move(description)},
                              {"frame", hex(frame)},
                              {"status", std::string(protocol::status_name(d.error.status))},
                              {"progress", std::move(progress)}});
    };
    Bytes f;
    f = good_frame;
    f[0] = 1;
    add_header("version-1", "a version 1 frame", f, "invalid");
    f = good_frame;
    f[1] = 0x81;
    add_header("response-type", "a response type written as a request", f, "invalid");
    add_header("one-byte", "one byte", Bytes{2}, "need_more");
    add_header("prefix", "the first 50 bytes of a valid frame",
               Bytes(good_frame.begin(), good_frame.begin() + 50), "need_more");
    f = good_frame;
    f[3] = static_cast<std::uint8_t>(f[3] + 1);
    add_header("length-too-big", "the length field is one more than the bytes written", f,
               "need_more");
    f = good_frame;
    f[3] = static_cast<std::uint8_t>(f[3] - 1);
    add_header("length-too-small", "the length field is one less than the bytes written", f,
               "invalid");
    f = good_frame;
    f[2] = 0x02;
    f[3] = 0x01;
    add_header("length-over-512", "a length field of 513", Bytes(f.begin(), f.begin() + 40),
               "invalid");
    f = Bytes(good_frame.begin(), good_frame.begin() + 40);
    f[2] = 0;
    f[3] = 60;
    add_header("length-below-command", "a length field below the smallest command (87)", f,
               "invalid");

    json body = json::array();
    auto add_body = [&](std::string name, std::string description, Bytes plain) {
        if (protocol::decode_command_body(plain).body) {
            throw std::logic_error("body case decodes: " + name);
        }
        const Bytes frame = protocol::seal_request(protocol::RequestType::Command, dev, 1, nonce,
                                                   keys.request.view(), plain);
        if (!protocol::decode_request_header(frame).header) {
            throw std::logic_error("body case is refused by its header already: " + name);
        }
        body.push_back(json{{"name", std::move(name)},
                            {"description", std::move(description)},
                            {"plaintext", hex(plain)},
                            {"frame", hex(frame)},
                            {"status", "malformed"}});
    };
    Bytes p;
    p = good_plain;
    p.push_back(0);
    add_body("trailing-byte", "one byte after the last argument", p);
    p = good_plain;
    p[28] = 0;
    add_body("action-length-0", "an action name of length 0", p);
    p = good_plain;
    p[29] = ' ';
    add_body("action-space", "a space in the action name", p);
    p = good_plain;
    p.back() = 9;
    add_body("argc-9", "nine arguments", p);
    p = good_plain;
    p.back() = 1;
    p.push_back(1);
    p.push_back('\n');
    add_body("argument-newline", "an argument with a newline", p);
    p = Bytes(good_plain.begin(), good_plain.begin() + 28);
    p.push_back(60);
    p.insert(p.end(), {'a', 'b', 'c'});
    add_body("action-cut", "an action length of 60 with 3 bytes left in the body", p);
    p = good_plain;
    const std::string toml = "x.toml";
    p.resize(28);
    p.push_back(static_cast<std::uint8_t>(toml.size()));
    p.insert(p.end(), toml.begin(), toml.end());
    p.push_back(0);
    add_body("action-toml-suffix", "an action name ending in .toml", p);
    return json{{"description",
                 "Frames a Pi refuses. 'header': refused from the clear header (plain refusal "
                 "with 'status'; 'progress' is what a transport's assembler decides for these "
                 "bytes: need_more or invalid). 'body': sealed with device A's request key, so "
                 "they authenticate; the plaintext breaks a rule and the answer is a sealed "
                 "'malformed'."},
                {"secret", secret_a},
                {"header", header},
                {"body", body}};
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
        const Pairing p = pairing();
        const std::string secret_a = hex(p.secret.secret.view());
        std::vector<BuiltRequest> reqs;
        for (const auto& c : request_cases(secret_a)) {
            reqs.push_back(build(c));
        }
        json jreq{{"description",
                   "Requests: inputs -> plaintext and frame. The frame's first 40 bytes are the "
                   "clear header and the AES-256-GCM additional data; the rest is the sealed "
                   "plaintext with its 16-byte tag. The TOTP code is computed at 'timestamp'."},
                  {"cases", json::array()}};
        for (const auto& r : reqs) {
            jreq["cases"].push_back(request_json(r));
        }
        write(dir / "keys.json", keys_json(p));
        write(dir / "pair.json", pair_json(p));
        write(dir / "requests.json", jreq);
        const json jresp = responses_json(reqs, secret_a);
        write(dir / "responses.json", jresp);
        json jfrag{{"description",
                    "Notification fragments of response frames: chunk = mtu - 4 payload bytes "
                    "per fragment after a one-byte header (bit 7: last fragment, bits 0-6: "
                    "index)."},
                   {"cases", json::array()}};
        for (const auto& c : jresp["cases"]) {
            const std::string name = c["name"].get<std::string>();
            if (name != "ok" && name != "truncated-output") {
                continue;
            }
            const Bytes frame = unhex(c["frame"].get<std::string>());
            for (const std::size_t mtu : std::vector<std::size_t>{23, 27, 185, 517}) {
                json frags = json::array();
                for (const auto& f : protocol::fragment(frame, mtu)) {
                    frags.push_back(hex(f));
                }
                jfrag["cases"].push_back(json{{"name", name + "-mtu" + std::to_string(mtu)},
                                              {"mtu", mtu},
                                              {"chunk", mtu - 4},
                                              {"frame", hex(frame)},
                                              {"fragments", frags}});
            }
        }
        write(dir / "fragments.json", jfrag);
        write(dir / "catalogue.json", catalogue_json());
        write(dir / "links.json", links_json(p));
        write(dir / "malformed.json", malformed_json(secret_a));
        std::cout << "wrote keys, pair, requests, responses, fragments, catalogue, links and "
                     "malformed .json to "
                  << dir.string() << "\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "bzs_gen_vectors: " << e.what() << "\n";
        return 1;
    }
}
