// SPDX-License-Identifier: GPL-3.0-or-later
// Checks the code against every case of spec/vectors/*.json (written by
// spec/gen_vectors.cpp and committed): a change to the wire format, the key
// derivation or the pairing URI shows up here as a failing vector.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/auth/verifier.h"
#include "core/crypto/crypto.h"
#include "core/protocol/pairing_uri.h"
#include "core/protocol/protocol.h"

namespace bzs::core::protocol {
namespace {

using nlohmann::json;

json load(const std::string& name) {
    const std::filesystem::path path = std::filesystem::path(BZS_SPEC_DIR) / "vectors" / name;
    std::ifstream f(path);
    if (!f) {
        throw std::runtime_error("cannot open " + path.string());
    }
    return json::parse(f);
}

// A copy of one array of a file, so that a range-for may iterate over it directly
// (iterating over load(...).at(...) would use a destroyed temporary).
json cases(const std::string& file, const char* key = "cases") {
    return load(file).at(key);
}

Bytes unhex(const json& j) {
    auto b = core::crypto::hex_decode(j.get<std::string>());
    if (!b) {
        throw std::runtime_error("bad hex in vector: " + j.get<std::string>());
    }
    return *b;
}

template <std::size_t N>
std::array<std::uint8_t, N> unhex_array(const json& j) {
    const Bytes b = unhex(j);
    if (b.size() != N) {
        throw std::runtime_error("hex of the wrong length in vector");
    }
    std::array<std::uint8_t, N> a{};
    std::copy(b.begin(), b.end(), a.begin());
    return a;
}

std::string hex(ByteView b) {
    return core::crypto::hex_encode(b);
}

core::crypto::TotpParams totp_params(const json& j) {
    core::crypto::TotpParams p;
    p.hash = core::crypto::parse_hash(j.at("alg").get<std::string>()).value();
    p.digits = j.at("digits").get<int>();
    p.step_seconds = j.at("period").get<int>();
    return p;
}

// Each file has enough cases that a truncated or emptied file cannot pass silently.
TEST(SpecVectors, FilesHaveCases) {
    EXPECT_GE(load("requests.json").at("cases").size(), 8U);
    EXPECT_GE(load("responses.json").at("cases").size(), 8U);
    EXPECT_EQ(load("fragments.json").at("cases").size(), 8U);
    EXPECT_GE(load("malformed.json").at("cases").size(), 20U);
    const json p = load("pairing.json");
    EXPECT_GE(p.at("valid").size(), 3U);
    EXPECT_GE(p.at("parse").size(), 5U);
    EXPECT_GE(p.at("invalid").size(), 20U);
}

TEST(SpecVectors, RequestKeysTotpAndFrames) {
    for (const auto& c : cases("requests.json")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const Bytes secret = unhex(c.at("secret"));
        EXPECT_EQ(core::crypto::base32_encode(secret, false),
                  c.at("secret_base32").get<std::string>());

        const DeviceKeys keys = derive_keys(secret);
        EXPECT_EQ(hex(keys.request_mac.view()), c.at("request_key").get<std::string>());
        EXPECT_EQ(hex(keys.response_mac.view()), c.at("response_key").get<std::string>());

        const auto tp = totp_params(c.at("totp"));
        const std::int64_t ts = c.at("timestamp").get<std::int64_t>();
        const std::uint32_t code = core::crypto::totp(secret, ts, tp);
        EXPECT_EQ(code, c.at("totp_code").get<std::uint32_t>());
        EXPECT_EQ(core::crypto::format_code(code, tp.digits),
                  c.at("totp_code_text").get<std::string>());

        Request r;
        r.device_id = unhex_array<kDeviceIdLen>(c.at("device_id"));
        r.counter = c.at("counter").get<std::uint64_t>();
        r.timestamp = ts;
        r.challenge = unhex_array<kNonceLen>(c.at("challenge"));
        r.totp = code;
        r.action = c.at("action").get<std::string>();
        r.args = c.at("args").get<std::vector<std::string>>();
        const Bytes frame = encode_request(r, keys.request_mac.view());
        EXPECT_EQ(hex(frame), c.at("frame").get<std::string>());
        EXPECT_EQ(frame.size(), c.at("frame_len").get<std::size_t>());

        const Bytes expected = unhex(c.at("frame"));
        const DecodeResult d = decode_request(expected);
        ASSERT_TRUE(d.request) << d.error.detail;
        EXPECT_EQ(d.mac_input_len, c.at("mac_input_len").get<std::size_t>());
        EXPECT_EQ(d.request->device_id, r.device_id);
        EXPECT_EQ(d.request->counter, r.counter);
        EXPECT_EQ(d.request->timestamp, r.timestamp);
        EXPECT_EQ(d.request->challenge, r.challenge);
        EXPECT_EQ(d.request->totp, code);
        EXPECT_EQ(d.request->action, r.action);
        EXPECT_EQ(d.request->args, r.args);
        EXPECT_EQ(hex(d.request->mac), c.at("mac").get<std::string>());
        const Bytes mac = core::crypto::hmac(core::crypto::Hash::Sha256, keys.request_mac.view(),
                                             ByteView(expected).first(d.mac_input_len));
        EXPECT_EQ(hex(mac), c.at("mac").get<std::string>());
    }
}

// The vectors are not only well formed: the verifier accepts each of them at its
// own timestamp, with its challenge issued and its action permitted.
TEST(SpecVectors, VerifierAcceptsEveryRequest) {
    for (const auto& c : cases("requests.json")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const Bytes frame = unhex(c.at("frame"));
        core::auth::DeviceRecord dev;
        dev.id = unhex_array<kDeviceIdLen>(c.at("device_id"));
        dev.secret = core::crypto::SecretBytes(unhex(c.at("secret")));
        dev.totp = totp_params(c.at("totp"));
        dev.permitted_actions = {c.at("action").get<std::string>()};
        core::auth::VerifyInput in;
        in.now = c.at("timestamp").get<std::int64_t>();
        in.device = &dev;
        const Nonce challenge = unhex_array<kNonceLen>(c.at("challenge"));
        if (challenge != Nonce{}) {
            in.expected_challenge = challenge;
        } else {
            in.policy.require_challenge = false;
        }
        in.actions = [](const std::string&) {
            return std::optional<core::auth::ActionRules>(
                core::auth::ActionRules{true, std::nullopt});
        };
        const core::auth::Decision d = core::auth::verify(frame, decode_request(frame), in);
        EXPECT_EQ(d.status, Status::Ok) << d.detail;
    }
}

TEST(SpecVectors, Responses) {
    for (const auto& c : cases("responses.json")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const Bytes key = unhex(c.at("response_key"));
        Response r;
        r.counter = c.at("counter").get<std::uint64_t>();
        r.tag = unhex_array<kTagLen>(c.at("tag"));
        r.status = status_from_byte(c.at("status").get<std::uint8_t>()).value();
        EXPECT_EQ(status_name(r.status), c.at("status_name").get<std::string>());
        r.exit_code = c.at("exit_code").get<std::int32_t>();
        r.output = c.at("output").get<std::string>();
        const Bytes frame = encode_response(r, key);
        EXPECT_EQ(hex(frame), c.at("frame").get<std::string>());
        EXPECT_EQ(frame.size(), c.at("frame_len").get<std::size_t>());

        const ResponseDecode d = decode_response(unhex(c.at("frame")), key);
        ASSERT_TRUE(d.response) << d.error;
        EXPECT_EQ(d.response->counter, r.counter);
        EXPECT_EQ(d.response->tag, r.tag);
        EXPECT_EQ(d.response->status, r.status);
        EXPECT_EQ(d.response->exit_code, r.exit_code);
        EXPECT_EQ(hex(core::crypto::ByteView(
                      reinterpret_cast<const std::uint8_t*>(d.response->output.data()),
                      d.response->output.size())),
                  c.at("output_sent").get<std::string>());
        EXPECT_EQ(d.response->output.size() < r.output.size(), c.at("truncated").get<bool>());
        EXPECT_EQ(hex(d.response->mac), c.at("mac").get<std::string>());
        if (key.empty()) {
            // The unknown-sender case: an all-zero MAC, which no key verifies.
            EXPECT_EQ(d.response->mac, Mac{});
            EXPECT_FALSE(d.mac_ok);
            const auto other = derive_keys(Bytes(32, 0x42));
            EXPECT_FALSE(decode_response(frame, other.response_mac.view()).mac_ok);
        } else {
            EXPECT_TRUE(d.mac_ok);
        }
    }
}

// A response's counter and tag echo the request named by the case.
TEST(SpecVectors, ResponsesEchoTheirRequest) {
    const json reqs = cases("requests.json");
    for (const auto& c : cases("responses.json")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        if (c.at("request").is_null()) {
            EXPECT_EQ(c.at("counter").get<std::uint64_t>(), 0U);
            EXPECT_EQ(unhex(c.at("tag")), Bytes(kTagLen, 0));
            continue;
        }
        const auto it = std::find_if(reqs.begin(), reqs.end(), [&](const json& r) {
            return r.at("name") == c.at("request");
        });
        ASSERT_NE(it, reqs.end());
        EXPECT_EQ(c.at("counter"), it->at("counter"));
        EXPECT_EQ(c.at("tag").get<std::string>(),
                  it->at("mac").get<std::string>().substr(0, 2 * kTagLen));
        if (!unhex(c.at("response_key")).empty()) {
            EXPECT_EQ(c.at("response_key"), it->at("response_key"));
        }
    }
}

TEST(SpecVectors, Fragments) {
    for (const auto& c : cases("fragments.json")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const Bytes frame = unhex(c.at("frame"));
        const auto mtu = c.at("mtu").get<std::size_t>();
        const auto frags = fragment(frame, mtu);
        std::vector<std::string> got;
        for (const auto& f : frags) {
            got.push_back(hex(f));
            EXPECT_LE(f.size(), mtu - 3);
        }
        EXPECT_EQ(got, c.at("fragments").get<std::vector<std::string>>());

        Reassembler ra;
        Reassembler::State st = Reassembler::State::Error;
        for (const auto& h : c.at("fragments")) {
            st = ra.push(unhex(h));
        }
        EXPECT_EQ(st, Reassembler::State::Done);
        EXPECT_EQ(ra.frame(), frame);
    }
}

TEST(SpecVectors, MalformedFramesAreRefused) {
    for (const auto& c : cases("malformed.json")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const Bytes frame = unhex(c.at("frame"));
        EXPECT_EQ(frame.size(), c.at("frame_len").get<std::size_t>());
        const DecodeResult d = decode_request(frame);
        EXPECT_FALSE(d.request);
        EXPECT_EQ(static_cast<int>(d.error.status), c.at("status").get<int>());
        EXPECT_EQ(status_name(d.error.status), c.at("status_name").get<std::string>());
        EXPECT_FALSE(d.error.detail.empty());
    }
}

void expect_fields(const Pairing& p, const json& f) {
    EXPECT_EQ(hex(p.pi_id), f.at("pi_id").get<std::string>());
    EXPECT_EQ(p.pi_name, f.at("pi_name").get<std::string>());
    EXPECT_EQ(hex(p.device_id), f.at("device_id").get<std::string>());
    EXPECT_EQ(hex(p.secret.view()), f.at("secret").get<std::string>());
    EXPECT_EQ(core::crypto::hash_name(p.totp.hash), f.at("alg").get<std::string>());
    EXPECT_EQ(p.totp.digits, f.at("digits").get<int>());
    EXPECT_EQ(p.totp.step_seconds, f.at("period").get<int>());
    EXPECT_EQ(p.device_name, f.at("label").get<std::string>());
}

TEST(SpecVectors, PairingValid) {
    const json j = load("pairing.json");
    const std::string base = j.at("app_url_base").get<std::string>();
    for (const auto& c : j.at("valid")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const json& f = c.at("fields");
        Pairing p;
        p.pi_id = unhex_array<16>(f.at("pi_id"));
        p.pi_name = f.at("pi_name").get<std::string>();
        p.device_id = unhex_array<kDeviceIdLen>(f.at("device_id"));
        p.secret = core::crypto::SecretBytes(unhex(f.at("secret")));
        p.totp = totp_params(f);
        p.device_name = f.at("label").get<std::string>();
        EXPECT_EQ(pairing_to_uri(p), c.at("uri").get<std::string>());
        EXPECT_EQ(pairing_to_app_url(p, base), c.at("app_url").get<std::string>());
        for (const char* form : {"uri", "app_url"}) {
            const PairingParse parsed = parse_pairing(c.at(form).get<std::string>());
            ASSERT_TRUE(parsed.pairing) << form << ": " << parsed.error;
            expect_fields(*parsed.pairing, f);
        }
    }
}

TEST(SpecVectors, PairingOtherAcceptedSpellings) {
    for (const auto& c : cases("pairing.json", "parse")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const PairingParse parsed = parse_pairing(c.at("input").get<std::string>());
        ASSERT_TRUE(parsed.pairing) << parsed.error;
        expect_fields(*parsed.pairing, c.at("fields"));
    }
}

TEST(SpecVectors, PairingInvalid) {
    const json j = load("pairing.json");
    std::vector<std::string> secrets;
    for (const auto& c : j.at("valid")) {
        secrets.push_back(c.at("fields").at("secret").get<std::string>());
        secrets.push_back(c.at("fields").at("secret_base32").get<std::string>());
    }
    for (const auto& c : j.at("invalid")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const PairingParse parsed = parse_pairing(c.at("input").get<std::string>());
        EXPECT_FALSE(parsed.pairing);
        EXPECT_NE(parsed.error.find(c.at("error_contains").get<std::string>()), std::string::npos)
            << parsed.error;
        for (const auto& s : secrets) {
            // Even a 10-character piece of a secret must not leak into the message.
            EXPECT_EQ(parsed.error.find(s.substr(0, 10)), std::string::npos) << parsed.error;
        }
    }
}

}  // namespace
}  // namespace bzs::core::protocol
