// SPDX-License-Identifier: GPL-3.0-or-later
// Checks the protocol code against every case of spec/vectors/*.json (written
// by spec/gen_vectors.cpp, committed, and recomputed independently by
// tests/pylib/tests/test_protocol_v2.py): a change to a frame, a key or a link rule
// shows up here as a failing vector.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/crypto/crypto.h"
#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/catalogue.h"
#include "core/protocol/link.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/protocol.h"
#include "core/protocol/sealed.h"

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

Bytes unhex(const json& j) {
    return *crypto::hex_decode(j.get<std::string>());
}
template <std::size_t N>
std::array<std::uint8_t, N> arr(const json& j) {
    const Bytes b = unhex(j);
    std::array<std::uint8_t, N> a{};
    std::copy_n(b.begin(), std::min(N, b.size()), a.begin());
    return a;
}

TEST(SpecVectors, Keys) {
    const json v = load("keys.json");
    for (const auto& c : v.at("device")) {
        const auto k = device_seal_keys(unhex(c.at("secret")));
        EXPECT_EQ(crypto::hex_encode(k.request.view()), c.at("request_key"));
        EXPECT_EQ(crypto::hex_encode(k.response.view()), c.at("response_key"));
    }
    const auto pk = pair_seal_keys(unhex(v.at("pair").at("code")));
    EXPECT_EQ(crypto::hex_encode(pk.request.view()), v.at("pair").at("pair_request_key"));
    EXPECT_EQ(crypto::hex_encode(pk.response.view()), v.at("pair").at("pair_response_key"));
    for (const auto& c : v.at("totp")) {
        crypto::TotpParams tp;
        tp.hash = *crypto::parse_hash(c.at("totp").at("alg").get<std::string>());
        tp.digits = c.at("totp").at("digits");
        tp.step_seconds = c.at("totp").at("period");
        EXPECT_EQ(crypto::totp(unhex(c.at("secret")), c.at("time"), tp), c.at("code"));
    }
}

TEST(SpecVectors, PairExchangeFromBothSides) {
    const json v = load("pair.json");
    const auto pi = crypto::p256_from_private(unhex(v.at("pi_private")));
    ASSERT_TRUE(pi);
    EXPECT_EQ(crypto::hex_encode(pi->public_key), v.at("pi_public"));
    EXPECT_EQ(crypto::hex_encode(key_fingerprint(pi->public_key)), v.at("pi_key_fingerprint"));
    const Bytes e = unhex(v.at("phone_public"));
    const auto t =
        pair_transcript(arr<16>(v.at("pi_id")), arr<16>(v.at("device_id")), pi->public_key, e);
    EXPECT_EQ(crypto::hex_encode(t), v.at("transcript"));
    // The Pi's side: open the request with the code, derive from its own key.
    const auto keys = pair_seal_keys(unhex(v.at("code")));
    const Bytes request = unhex(v.at("request"));
    const auto header = decode_request_header(request);
    ASSERT_TRUE(header.header) << header.error.detail;
    EXPECT_EQ(header.header->type, RequestType::Pair);
    const auto plain = open_request(request, keys.request.view());
    ASSERT_TRUE(plain);
    const auto body = decode_pair_body(*plain);
    ASSERT_TRUE(body.body);
    const auto pi_side =
        pair_derive(unhex(v.at("pi_private")), body.body->phone_public, unhex(v.at("code")), t);
    ASSERT_TRUE(pi_side);
    EXPECT_EQ(crypto::hex_encode(pi_side->secret.view()), v.at("secret"));
    // The phone's side: the same secret, and the response's confirmation matches.
    const auto phone_side =
        pair_derive(unhex(v.at("phone_private")), pi->public_key, unhex(v.at("code")), t);
    ASSERT_TRUE(phone_side);
    EXPECT_EQ(crypto::hex_encode(phone_side->confirm), v.at("confirm"));
    const auto resp =
        open_response(unhex(v.at("response")), keys.response.view(), request_tag(request));
    ASSERT_TRUE(resp.response && resp.response->authentic) << resp.error;
    EXPECT_EQ(resp.response->head.status, Status::Ok);
    EXPECT_EQ(resp.response->head.pi_time, v.at("response_pi_time"));
    EXPECT_EQ(Bytes(resp.response->rest.begin(), resp.response->rest.begin() + 32),
              Bytes(phone_side->confirm.begin(), phone_side->confirm.end()));
    // Reproduce the request byte for byte.
    EXPECT_EQ(crypto::hex_encode(seal_request(RequestType::Pair, arr<16>(v.at("device_id")), 0,
                                              arr<12>(v.at("request_nonce")), keys.request.view(),
                                              *plain)),
              v.at("request"));
}

TEST(SpecVectors, RequestsDecodeAndReencode) {
    // Kept in a variable: a range-for over load(...).at(...) would iterate over a
    // destroyed temporary.
    const json requests = load("requests.json");
    for (const auto& c : requests.at("cases")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const auto keys = device_seal_keys(unhex(c.at("secret")));
        const Bytes frame = unhex(c.at("frame"));
        EXPECT_EQ(request_progress(frame), Progress::Complete);
        const auto h = decode_request_header(frame);
        ASSERT_TRUE(h.header) << h.error.detail;
        EXPECT_EQ(h.header->counter, c.at("counter").get<std::uint64_t>());
        const auto plain = open_request(frame, keys.request.view());
        ASSERT_TRUE(plain);
        EXPECT_EQ(crypto::hex_encode(*plain), c.at("plaintext"));
        if (c.at("type") == "command") {
            const auto b = decode_command_body(*plain);
            ASSERT_TRUE(b.body) << b.error;
            EXPECT_EQ(b.body->action, c.at("action"));
            EXPECT_EQ(b.body->args, c.at("args").get<std::vector<std::string>>());
            EXPECT_EQ(b.body->totp, c.at("totp_code"));
            EXPECT_EQ(crypto::hex_encode(encode_body(*b.body)), c.at("plaintext"));
        } else {
            const auto b = decode_catalogue_body(*plain);
            ASSERT_TRUE(b.body) << b.error;
            EXPECT_EQ(b.body->first, c.at("first"));
        }
        EXPECT_EQ(
            crypto::hex_encode(seal_request(h.header->type, h.header->device_id, h.header->counter,
                                            h.header->nonce, keys.request.view(), *plain)),
            c.at("frame"));
    }
}

TEST(SpecVectors, ResponsesOpenForTheirRequest) {
    std::map<std::string, json> reqs;
    const json requests = load("requests.json");
    for (const auto& c : requests.at("cases")) {
        reqs[c.at("name")] = c;
    }
    const json responses = load("responses.json");
    for (const auto& c : responses.at("cases")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const Bytes frame = unhex(c.at("frame"));
        if (c.at("type") == "refusal") {
            const auto r = open_response(frame, Bytes(32), SealTag{});
            ASSERT_TRUE(r.response) << r.error;
            EXPECT_FALSE(r.response->authentic);
            EXPECT_EQ(status_name(r.response->head.status), c.at("status"));
            continue;
        }
        const json& rq = reqs.at(c.at("request"));
        const auto keys = device_seal_keys(unhex(rq.at("secret")));
        const auto r =
            open_response(frame, keys.response.view(), request_tag(unhex(rq.at("frame"))));
        ASSERT_TRUE(r.response && r.response->authentic) << r.error;
        EXPECT_EQ(status_name(r.response->head.status), c.at("status"));
        EXPECT_EQ(r.response->head.pi_time, c.at("pi_time"));
        EXPECT_EQ(r.response->head.synced, c.at("synced"));
        if (c.at("type") == "command_result") {
            const auto res = decode_command_result(r.response->rest);
            ASSERT_TRUE(res);
            EXPECT_EQ(res->exit_code, c.at("exit_code"));
            EXPECT_EQ(res->output, c.at("output").get<std::string>().substr(
                                       0, c.at("output_sent_len").get<std::size_t>()));
        } else {
            EXPECT_EQ(crypto::hex_encode(r.response->rest), c.at("rest"));
        }
        // Bound to its request: another tag opens nothing.
        SealTag other = request_tag(unhex(rq.at("frame")));
        other[15] ^= 1U;
        EXPECT_FALSE(open_response(frame, keys.response.view(), other).response->authentic);
    }
}

TEST(SpecVectors, Catalogue) {
    const json v = load("catalogue.json");
    std::vector<CatalogueEntry> all;
    for (const auto& e : v.at("entries")) {
        CatalogueEntry c;
        c.name = e.at("name");
        c.description = e.at("description");
        c.confirm = e.at("confirm");
        const std::string kind = e.at("kind");
        c.kind = kind == "free"      ? ArgKind::Free
                 : kind == "pattern" ? ArgKind::Pattern
                 : kind == "choices" ? ArgKind::Choices
                                     : ArgKind::None;
        c.max_args = e.at("max_args");
        c.pattern = e.value("pattern", "");
        c.choices = e.value("choices", std::vector<std::string>{});
        EXPECT_EQ(crypto::hex_encode(encode_catalogue_entry(c)), e.at("bytes")) << c.name;
        all.push_back(c);
    }
    for (const auto& page : v.at("pages")) {
        const auto first = page.at("first").get<std::uint8_t>();
        EXPECT_EQ(crypto::hex_encode(encode_catalogue_page(all, first)), page.at("rest"));
        const auto d = decode_catalogue_page(unhex(page.at("rest")));
        ASSERT_TRUE(d.page) << d.error;
        EXPECT_EQ(d.page->first, first);
    }
}

TEST(SpecVectors, Links) {
    const json v = load("links.json");
    for (const auto& c : v.at("valid")) {
        const auto r = parse_link(c.at("uri").get<std::string>());
        ASSERT_TRUE(r.link) << r.error;
        EXPECT_EQ(link_to_uri(*r.link), c.at("uri"));
        EXPECT_EQ(link_to_app_url(*r.link, v.at("app_url_base").get<std::string>()),
                  c.at("app_url"));
        EXPECT_EQ(crypto::hex_encode(r.link->code.view()), c.at("fields").at("code"));
    }
    for (const auto& c : v.at("parse")) {
        const auto r = parse_link(c.at("input").get<std::string>());
        ASSERT_TRUE(r.link) << c.at("input") << ": " << r.error;
        EXPECT_EQ(r.link->pi_name, c.at("fields").at("name"));
        EXPECT_EQ(crypto::hex_encode(r.link->code.view()), c.at("fields").at("code"));
    }
    for (const auto& c : v.at("invalid")) {
        const auto r = parse_link(c.at("input").get<std::string>());
        EXPECT_FALSE(r.link) << c.at("input");
        EXPECT_NE(r.error.find(c.at("error_contains").get<std::string>()), std::string::npos)
            << c.at("input") << ": " << r.error;
    }
}

TEST(SpecVectors, Malformed) {
    const json v = load("malformed.json");
    for (const auto& c : v.at("header")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const Bytes frame = unhex(c.at("frame"));
        const auto d = decode_request_header(frame);
        EXPECT_FALSE(d.header);
        EXPECT_EQ(status_name(d.error.status), c.at("status"));
        EXPECT_EQ(request_progress(frame) == Progress::NeedMore ? "need_more" : "invalid",
                  c.at("progress").get<std::string>());
    }
    const auto keys = device_seal_keys(unhex(v.at("secret")));
    for (const auto& c : v.at("body")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        ASSERT_TRUE(decode_request_header(unhex(c.at("frame"))).header);
        const auto plain = open_request(unhex(c.at("frame")), keys.request.view());
        ASSERT_TRUE(plain);
        EXPECT_FALSE(decode_command_body(*plain).body);
    }
}

TEST(SpecVectors, Fragments) {
    const json all = load("fragments.json");
    ASSERT_EQ(all.at("cases").size(), 8U);
    for (const auto& c : all.at("cases")) {
        SCOPED_TRACE(c.at("name").get<std::string>());
        const Bytes frame = unhex(c.at("frame"));
        const auto mtu = c.at("mtu").get<std::size_t>();
        std::vector<std::string> got;
        for (const auto& f : fragment(frame, mtu)) {
            got.push_back(crypto::hex_encode(f));
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

}  // namespace
}  // namespace bzs::core::protocol
