// SPDX-License-Identifier: GPL-3.0-or-later
// Protocol v2 frames, pairing exchange, catalogue and link. The fixed byte strings
// were computed by the independent Python implementation
// (tests/pylib/bzs_testlib/protocol_v2.py) from the same inputs, so these tests are
// a cross-check of two implementations of docs/design/protocol-v2.md.
#include <gtest/gtest.h>

#include <string>

#include "core/crypto/ecdh_gcm.h"
#include "core/protocol/catalogue.h"
#include "core/protocol/link.h"
#include "core/protocol/pair_exchange.h"
#include "core/protocol/sealed.h"

namespace bzs::core::protocol {
namespace {

Bytes unhex(std::string_view h) {
    return *crypto::hex_decode(h);
}
template <std::size_t N>
std::array<std::uint8_t, N> arr(std::string_view h) {
    const Bytes b = unhex(h);
    std::array<std::uint8_t, N> a{};
    std::copy_n(b.begin(), N, a.begin());
    return a;
}

const std::string kPiScalar = "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433";
const std::string kPhoneScalar = "c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53";
const std::string kPiPublic =
    "04dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c37725811805271a0461cdb8252d61f1c45"
    "6fa3e59ab1f45b33accf5f58389e0577b8990bb3";
const std::string kPhonePublic =
    "04d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf6356fbf3ca366cc23e8157854c"
    "13c58d6aac23f046ada30f8353e74f33039872ab";
const auto kPiId = arr<16>("712bb146f4c5b37be010be1b6a6ad359");
const auto kDevice = arr<16>("f758a1c9c46769c302b22ca2698027a2");
const std::string kCode = "5d1f0b7a3c9e42d18f6a2b4c0e9d7f31";
const auto kChallenge = arr<16>("23b5286c8381c5a477d0d1e391d16b6f");
const auto kNonce = arr<12>("000102030405060708090a0b");
const std::string kSecret = "f909a7068c24163f86d48b55e02df2dee92de7197c65276dad507e7710c6ffd0";

TEST(PairExchange, BothSidesDeriveTheSecretPythonDerived) {
    const auto t = pair_transcript(kPiId, kDevice, unhex(kPiPublic), unhex(kPhonePublic));
    EXPECT_EQ(crypto::hex_encode(t),
              "4cddcff65cee1dad126f7a57b25255c14e3c85b4ef71ae1e1e8bd39026520210");
    const auto phone = pair_derive(unhex(kPhoneScalar), unhex(kPiPublic), unhex(kCode), t);
    const auto pi = pair_derive(unhex(kPiScalar), unhex(kPhonePublic), unhex(kCode), t);
    ASSERT_TRUE(phone && pi);
    EXPECT_EQ(crypto::hex_encode(phone->secret.view()), kSecret);
    EXPECT_EQ(crypto::hex_encode(pi->secret.view()), kSecret);
    EXPECT_EQ(crypto::hex_encode(phone->confirm),
              "6811a321982355a513fcf234a691460f5b39be0823c063793f88e4db599dcd13");
    EXPECT_EQ(phone->confirm, pi->confirm);
}

TEST(PairExchange, AnotherCodeGivesAnotherSecret) {
    const auto t = pair_transcript(kPiId, kDevice, unhex(kPiPublic), unhex(kPhonePublic));
    Bytes code = unhex(kCode);
    code[0] ^= 1U;
    const auto d = pair_derive(unhex(kPhoneScalar), unhex(kPiPublic), code, t);
    ASSERT_TRUE(d);
    EXPECT_NE(crypto::hex_encode(d->secret.view()), kSecret);
}

TEST(PairExchange, InvalidPeerKeyIsRefused) {
    Bytes bad = unhex(kPiPublic);
    bad[64] ^= 1U;  // off the curve
    const auto t = pair_transcript(kPiId, kDevice, bad, unhex(kPhonePublic));
    EXPECT_FALSE(pair_derive(unhex(kPhoneScalar), bad, unhex(kCode), t));
}

TEST(Sealed, PairRequestMatchesPython) {
    const auto keys = pair_seal_keys(unhex(kCode));
    PairBody body;
    body.challenge = kChallenge;
    body.phone_public = arr<65>(kPhonePublic);
    const Bytes frame =
        seal_request(RequestType::Pair, kDevice, 0, kNonce, keys.request.view(), encode_body(body));
    EXPECT_EQ(crypto::hex_encode(frame),
              "02030089f758a1c9c46769c302b22ca2698027a20000000000000000000102030405060708090a"
              "0b907460659d92897160345cb2dd364cf9b9c94d1c42ab01ef1fd5832279c436d7a06b81717ff2bb"
              "cac1eb6792e416461aa15b6d8001adfbef1f66057ac54965679c4a5502253d0e087422cc6453cb6a"
              "52adae45771c6426677085292202a5078c5d");
    const auto h = decode_request_header(frame);
    ASSERT_TRUE(h.header) << h.error.detail;
    EXPECT_EQ(h.header->type, RequestType::Pair);
    const auto plain = open_request(frame, keys.request.view());
    ASSERT_TRUE(plain);
    const auto decoded = decode_pair_body(*plain);
    ASSERT_TRUE(decoded.body);
    EXPECT_EQ(decoded.body->phone_public, body.phone_public);
    // The code's response key does not open requests, and the wrong code opens nothing.
    EXPECT_FALSE(open_request(frame, keys.response.view()));
}

const std::string kCommandFrame =
    "02010063f758a1c9c46769c302b22ca2698027a20000000000000001000102030405060708090a0b5a60129330"
    "450032639c574f68d562afb8f28b5b397d8695a3c54a8e6efa715b2e68a495fd90d89996e6dd4da9d977748aee"
    "c4589f4bdf317499f0";

CommandBody sample_command() {
    CommandBody c;
    c.timestamp = 1700000010;
    c.challenge = kChallenge;
    c.totp = 989257;
    c.action = "lights.on";
    c.args = {"x y"};
    return c;
}

TEST(Sealed, CommandAndResultMatchPython) {
    const auto keys = device_seal_keys(unhex(kSecret));
    EXPECT_EQ(crypto::hex_encode(keys.request.view()),
              "680983d1d3071960969155404b8cc52b6c8f100201517ce00c94c20cd7d12e7a");
    const Bytes frame = seal_request(RequestType::Command, kDevice, 1, kNonce, keys.request.view(),
                                     encode_body(sample_command()));
    EXPECT_EQ(crypto::hex_encode(frame), kCommandFrame);
    const auto plain = open_request(frame, keys.request.view());
    ASSERT_TRUE(plain);
    const auto body = decode_command_body(*plain);
    ASSERT_TRUE(body.body) << body.error;
    EXPECT_EQ(body.body->action, "lights.on");
    EXPECT_EQ(body.body->args, std::vector<std::string>{"x y"});

    ResponseHead head{Status::Ok, 1700000011, true};
    const Bytes resp =
        seal_command_result(1, request_tag(frame), arr<12>("0f0e0d0c0b0a090807060504"),
                            keys.response.view(), head, 0, "lights: on\n");
    EXPECT_EQ(crypto::hex_encode(resp),
              "0281004100000000000000010f0e0d0c0b0a090807060504aef855637cd379d0536125dd4743de9e"
              "8b65781d6f5c75e8745b3213a84ad9a3f9cd4087a75c8fcc5c");
    const auto opened = open_response(resp, keys.response.view(), request_tag(frame));
    ASSERT_TRUE(opened.response) << opened.error;
    ASSERT_TRUE(opened.response->authentic);
    EXPECT_EQ(opened.response->head.pi_time, 1700000011);
    EXPECT_TRUE(opened.response->head.synced);
    const auto result = decode_command_result(opened.response->rest);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->output, "lights: on\n");
}

TEST(Sealed, ResponseOpensOnlyForItsRequest) {
    const auto keys = device_seal_keys(unhex(kSecret));
    const Bytes frame = unhex(kCommandFrame);
    const Bytes resp = seal_command_result(1, request_tag(frame), kNonce, keys.response.view(),
                                           {Status::Ok, 5, false}, 0, "out");
    SealTag other = request_tag(frame);
    other[0] ^= 1U;
    const auto opened = open_response(resp, keys.response.view(), other);
    ASSERT_TRUE(opened.response);
    EXPECT_FALSE(opened.response->authentic);
    // Another device's key opens nothing either.
    const auto stranger = device_seal_keys(unhex(kCode));
    EXPECT_FALSE(
        open_response(resp, stranger.response.view(), request_tag(frame)).response->authentic);
}

TEST(Sealed, EveryAlteredByteIsRefused) {
    const auto keys = device_seal_keys(unhex(kSecret));
    const Bytes frame = unhex(kCommandFrame);
    for (std::size_t i = 0; i < frame.size(); ++i) {
        Bytes f = frame;
        f[i] ^= 0x40U;
        const auto h = decode_request_header(f);
        if (h.header) {
            EXPECT_FALSE(open_request(f, keys.request.view())) << "byte " << i;
        }
    }
}

TEST(Sealed, HeaderRules) {
    const Bytes frame = unhex(kCommandFrame);
    auto status_of = [](const Bytes& f) { return decode_request_header(f).error.status; };
    Bytes v1 = frame;
    v1[0] = 1;
    EXPECT_EQ(status_of(v1), Status::UnknownVersion);
    Bytes type = frame;
    type[1] = 0x04;
    EXPECT_EQ(status_of(type), Status::Malformed);
    Bytes len = frame;
    len[3] ^= 1U;
    EXPECT_FALSE(decode_request_header(len).header);
    EXPECT_FALSE(decode_request_header(Bytes(frame.begin(), frame.end() - 1)).header);
    EXPECT_FALSE(decode_request_header(Bytes(600, 2)).header);
    EXPECT_FALSE(decode_request_header(Bytes{2}).header);
}

TEST(Sealed, ProgressFromTheHeader) {
    const Bytes frame = unhex(kCommandFrame);
    EXPECT_EQ(request_progress({}), Progress::NeedMore);
    EXPECT_EQ(request_progress(ByteView(frame).first(3)), Progress::NeedMore);
    EXPECT_EQ(request_progress(ByteView(frame).first(50)), Progress::NeedMore);
    EXPECT_EQ(request_progress(frame), Progress::Complete);
    EXPECT_EQ(request_progress(Bytes{1, 1, 0}), Progress::Invalid);  // a v1 prefix
    EXPECT_EQ(request_progress(Bytes{2, 9}), Progress::Invalid);
    EXPECT_EQ(request_progress(Bytes{2, 1, 0, 10}), Progress::Invalid);  // shorter than a command
    EXPECT_EQ(request_progress(Bytes{2, 1, 2, 1}), Progress::Invalid);   // over 512
    Bytes longer = frame;
    longer.push_back(0);
    EXPECT_EQ(request_progress(longer), Progress::Invalid);
}

TEST(Sealed, BodyRules) {
    CommandBody c = sample_command();
    Bytes plain = encode_body(c);
    plain.push_back(0);
    EXPECT_NE(decode_command_body(plain).error.find("after the last argument"), std::string::npos);
    c.action = "bad name";
    EXPECT_THROW(encode_body(c), std::invalid_argument);
    EXPECT_FALSE(decode_catalogue_body(Bytes(28)).body);
    EXPECT_TRUE(decode_catalogue_body(Bytes(29)).body);
    EXPECT_FALSE(decode_pair_body(Bytes(80)).body);
}

TEST(Sealed, RefusalIsPlainAndNeverAuthentic) {
    const Bytes r = encode_refusal(7, Status::BadMac);
    EXPECT_EQ(crypto::hex_encode(r), "02ff000d000000000000000714");
    const auto opened = open_response(r, Bytes(32, 1), SealTag{});
    ASSERT_TRUE(opened.response);
    EXPECT_FALSE(opened.response->authentic);
    EXPECT_EQ(opened.response->head.status, Status::BadMac);
    EXPECT_EQ(opened.response->counter, 7U);
}

TEST(Sealed, LongOutputIsCutToFit) {
    const auto keys = device_seal_keys(unhex(kSecret));
    const Bytes resp = seal_command_result(1, SealTag{}, kNonce, keys.response.view(),
                                           {Status::Ok, 0, false}, 0, std::string(1000, 'x'));
    EXPECT_EQ(resp.size(), kMaxFrame);
    const auto opened = open_response(resp, keys.response.view(), SealTag{});
    ASSERT_TRUE(opened.response && opened.response->authentic);
    EXPECT_EQ(decode_command_result(opened.response->rest)->output.size(), kMaxResultOutput);
}

CatalogueEntry entry(std::string name, std::size_t desc_len) {
    CatalogueEntry e;
    e.name = std::move(name);
    e.description = std::string(desc_len, 'd');
    e.kind = ArgKind::Choices;
    e.max_args = 1;
    e.choices = {"low", "high"};
    return e;
}

TEST(Catalogue, PagesCoverEveryActionOnce) {
    std::vector<CatalogueEntry> all;
    all.reserve(20);
    for (int i = 0; i < 20; ++i) {
        all.push_back(entry("action" + std::to_string(i), 90));
    }
    std::vector<std::string> seen;
    std::uint8_t first = 0;
    while (first < all.size()) {
        const Bytes rest = encode_catalogue_page(all, first);
        EXPECT_LE(rest.size(), 3 + kCataloguePageBudget);
        const auto page = decode_catalogue_page(rest);
        ASSERT_TRUE(page.page) << page.error;
        ASSERT_GT(page.page->entries.size(), 0U);
        EXPECT_EQ(page.page->total, 20);
        for (const auto& e : page.page->entries) {
            seen.push_back(e.name);
            EXPECT_EQ(e.choices, (std::vector<std::string>{"low", "high"}));
        }
        first = static_cast<std::uint8_t>(first + page.page->entries.size());
    }
    EXPECT_EQ(seen.size(), 20U);
}

TEST(Catalogue, DescriptionCutAtACharacterBoundaryAndLongPatternSentAsFree) {
    CatalogueEntry e;
    e.name = "heat";
    e.description = std::string(99, 'a') + "\xc3\xa9";  // 101 bytes: the é would be split
    e.kind = ArgKind::Pattern;
    e.max_args = 2;
    e.pattern = std::string(129, 'x');
    const auto page = decode_catalogue_page(encode_catalogue_page({e}, 0));
    ASSERT_TRUE(page.page) << page.error;
    EXPECT_EQ(page.page->entries[0].description, std::string(99, 'a'));
    EXPECT_EQ(page.page->entries[0].kind, ArgKind::Free);
}

TEST(Catalogue, LargestEntryFitsAPage) {
    CatalogueEntry e;
    e.name = std::string(64, 'n');
    e.description = std::string(200, 'd');
    e.kind = ArgKind::Choices;
    e.max_args = 8;
    e.choices = std::vector<std::string>(8, std::string(32, 'c'));
    const auto page = decode_catalogue_page(encode_catalogue_page({e, e}, 0));
    ASSERT_TRUE(page.page) << page.error;
    EXPECT_EQ(page.page->entries.size(), 1U);
}

const std::string kLinkQuery =
    "v=2&pi=712bb146f4c5b37be010be1b6a6ad359"
    "&pk=320e65a0432b88f32b0c3fa9e0125fd6deb2a86b383b9426badcb5c74e299df8&name=Garage"
    "&dev=f758a1c9c46769c302b22ca2698027a2&code=LUPQW6R4TZBNDD3KFNGA5HL7GE&alg=SHA1&digits=6"
    "&period=30&label=Anna";

TEST(Link, ProducedAsPythonProducesIt) {
    PairingLink l;
    l.pi_id = kPiId;
    std::copy_n(key_fingerprint(unhex(kPiPublic)).begin(), 32, l.pi_key.begin());
    l.pi_name = "Garage";
    l.device_id = kDevice;
    l.code = crypto::SecretBytes(unhex(kCode));
    l.label = "Anna";
    EXPECT_EQ(link_query(l), kLinkQuery);
    const auto back = parse_link("bluezscript://pair?" + kLinkQuery);
    ASSERT_TRUE(back.link) << back.error;
    EXPECT_EQ(crypto::hex_encode(back.link->code.view()), kCode);
    EXPECT_EQ(back.link->label, "Anna");
    EXPECT_EQ(link_to_app_url(l, "https://pi.local:8443/app/#old"),
              "https://pi.local:8443/app/#" + kLinkQuery);
}

std::string with(std::string_view key, std::string_view value) {
    std::string q = kLinkQuery;
    const std::string k = "&" + std::string(key) + "=";
    auto at = q.find(k);
    const auto end = q.find('&', at + 1);
    q.replace(at, (end == std::string::npos ? q.size() : end) - at, k + std::string(value));
    return "bluezscript://pair?" + q;
}

TEST(Link, OneReadingOfEveryRule) {
    // Accepted spellings.
    EXPECT_TRUE(parse_link(with("alg", "sha256")).link);
    EXPECT_TRUE(parse_link(with("code", "lupqw6r4tzbndd3kfnga5hl7ge")).link);
    EXPECT_TRUE(parse_link("bluezscript://pair?" + kLinkQuery + "&future=%ZZ&&x=a=b").link);
    // Refused, each naming its field and never showing the code.
    const std::pair<std::string, std::string> refused[] = {
        {with("digits", "06"), "digits"},
        {with("period", "030"), "period"},
        {with("period", "301"), "period"},
        {with("alg", "sha-256"), "alg"},
        {with("code", "LUPQW6R4TZBNDD3KFNGA5HL7GF"), "unused low bits"},
        {with("code", "LUPQW6R4TZBNDD3KFNGA5HL7GE=="), "code"},
        {with("code", "LUPQW6R4TZBNDD3KFNGA5HL7G%45"), "code"},
        {with("label", "An%0Aa"), "label"},
        {with("label", std::string(65, 'a')), "label"},
        {with("name", "%20Garage"), "name"},
        {with("pk", "320e"), "pk"},
        {"bluezscript://pair?" + kLinkQuery + "&v=2", "given twice"},
        {"bluezscript://pair?" + kLinkQuery + "&novalue", "no '='"},
        {"https://pi.local/app/", "not a pairing link"},
    };
    for (const auto& [input, want] : refused) {
        const auto r = parse_link(input);
        EXPECT_FALSE(r.link) << input;
        EXPECT_NE(r.error.find(want), std::string::npos) << input << " -> " << r.error;
        EXPECT_EQ(r.error.find("LUPQW6R4TZBNDD3KFNGA5HL7G"), std::string::npos) << r.error;
    }
    std::string v1 = "bluezscript://pair?" + kLinkQuery;
    v1.replace(v1.find("v=2"), 3, "v=1");
    EXPECT_NE(parse_link(v1).error.find("expected 2"), std::string::npos);
}

}  // namespace
}  // namespace bzs::core::protocol
