// SPDX-License-Identifier: GPL-3.0-or-later
// The request/response codec, its limits, key derivation and notification
// fragments (docs/protocol.md).
#include "core/protocol/protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace bzs::core::protocol {
namespace {

const Bytes kSecret(32, 0x5A);

Bytes request_key() {
    const auto k = derive_keys(kSecret);
    return {k.request_mac.view().begin(), k.request_mac.view().end()};
}
Bytes response_key() {
    const auto k = derive_keys(kSecret);
    return {k.response_mac.view().begin(), k.response_mac.view().end()};
}

Request sample() {
    Request r;
    for (std::size_t i = 0; i < kDeviceIdLen; ++i) {
        r.device_id[i] = static_cast<std::uint8_t>(0xA0 + i);
        r.challenge[i] = static_cast<std::uint8_t>(0x10 + i);
    }
    r.counter = 0x0102030405060708ULL;
    r.timestamp = 1700000010;
    r.totp = 123456;
    r.action = "lights.on";
    r.args = {"one", "", "caf\xc3\xa9"};
    return r;
}

// Appends the parts of a request by hand, for frames the encoder refuses to make.
struct Raw {
    Bytes b;
    Raw() {
        Request r = sample();
        r.action = "x";
        r.args.clear();
        b = encode_request(r, request_key());
        b.resize(54);  // everything before the action length
    }
    Raw& u8(std::uint8_t v) {
        b.push_back(v);
        return *this;
    }
    Raw& str(const std::string& s) {
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    Raw& field(const std::string& s) { return u8(static_cast<std::uint8_t>(s.size())).str(s); }
    Bytes seal() const {
        Bytes out = b;
        out.insert(out.end(), kMacLen, 0xEE);
        return out;
    }
};

DecodeResult decode(const Bytes& b) {
    return decode_request(b);
}

TEST(Protocol, RequestRoundTrip) {
    const Request r = sample();
    const Bytes frame = encode_request(r, request_key());
    const DecodeResult d = decode(frame);
    ASSERT_TRUE(d.request) << d.error.detail;
    EXPECT_EQ(d.request->device_id, r.device_id);
    EXPECT_EQ(d.request->counter, r.counter);
    EXPECT_EQ(d.request->timestamp, r.timestamp);
    EXPECT_EQ(d.request->challenge, r.challenge);
    EXPECT_EQ(d.request->totp, r.totp);
    EXPECT_EQ(d.request->action, r.action);
    EXPECT_EQ(d.request->args, r.args);
    EXPECT_EQ(d.mac_input_len, frame.size() - kMacLen);
    const Bytes mac = core::crypto::hmac(core::crypto::Hash::Sha256, request_key(),
                                         ByteView(frame).first(frame.size() - kMacLen));
    EXPECT_TRUE(std::equal(mac.begin(), mac.end(), d.request->mac.begin()));
}

TEST(Protocol, RequestLayoutIsBigEndianAtFixedOffsets) {
    Request r = sample();
    r.timestamp = 0x1112131415161718LL;
    r.totp = 0x21222324;
    const Bytes f = encode_request(r, request_key());
    EXPECT_EQ(f[0], kVersion);
    EXPECT_EQ(f[1], kTypeRequest);
    EXPECT_TRUE(std::equal(r.device_id.begin(), r.device_id.end(), f.begin() + 2));
    EXPECT_EQ(Bytes(f.begin() + 18, f.begin() + 26), (Bytes{1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(Bytes(f.begin() + 26, f.begin() + 34),
              (Bytes{0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18}));
    EXPECT_TRUE(std::equal(r.challenge.begin(), r.challenge.end(), f.begin() + 34));
    EXPECT_EQ(Bytes(f.begin() + 50, f.begin() + 54), (Bytes{0x21, 0x22, 0x23, 0x24}));
    EXPECT_EQ(f[54], 9);  // "lights.on"
    EXPECT_EQ(std::string(f.begin() + 55, f.begin() + 64), "lights.on");
    EXPECT_EQ(f[64], 3);  // argc
    EXPECT_EQ(f[65], 3);
    EXPECT_EQ(std::string(f.begin() + 66, f.begin() + 69), "one");
    EXPECT_EQ(f[69], 0);
    EXPECT_EQ(f[70], 5);
    EXPECT_EQ(f.size(), 76 + kMacLen);
}

TEST(Protocol, NegativeTimestampRoundTrips) {
    Request r = sample();
    r.timestamp = -5;
    const DecodeResult d = decode(encode_request(r, request_key()));
    ASSERT_TRUE(d.request);
    EXPECT_EQ(d.request->timestamp, -5);
}

TEST(Protocol, MinimumRequestIs89Bytes) {
    Raw raw;
    raw.field("a").u8(0);
    const Bytes ok = raw.seal();
    ASSERT_EQ(ok.size(), 89U);
    EXPECT_TRUE(decode(ok).request) << decode(ok).error.detail;
    const Bytes short_frame(ok.begin(), ok.end() - 1);
    const DecodeResult d = decode(short_frame);
    EXPECT_FALSE(d.request);
    EXPECT_EQ(d.error.status, Status::Malformed);
    EXPECT_NE(d.error.detail.find("at least 89"), std::string::npos) << d.error.detail;
}

TEST(Protocol, ActionLength64AcceptedAnd65Refused) {
    Request r = sample();
    r.action = std::string(64, 'a');
    const DecodeResult d = decode(encode_request(r, request_key()));
    ASSERT_TRUE(d.request) << d.error.detail;
    EXPECT_EQ(d.request->action.size(), 64U);

    r.action = std::string(65, 'a');
    EXPECT_THROW(encode_request(r, request_key()), std::invalid_argument);
    Raw raw;
    raw.field(std::string(65, 'a')).u8(0);
    const DecodeResult bad = decode(raw.seal());
    EXPECT_FALSE(bad.request);
    EXPECT_EQ(bad.error.status, Status::Malformed);
    EXPECT_NE(bad.error.detail.find("action name length 65"), std::string::npos);
}

TEST(Protocol, ActionLengthZeroRefused) {
    Raw raw;
    raw.u8(0).u8(0).u8(0);
    const DecodeResult d = decode(raw.seal());
    EXPECT_FALSE(d.request);
    EXPECT_EQ(d.error.status, Status::Malformed);
    EXPECT_NE(d.error.detail.find("action name length 0"), std::string::npos);
    Request r = sample();
    r.action.clear();
    EXPECT_THROW(encode_request(r, request_key()), std::invalid_argument);
}

TEST(Protocol, ActionNameCharset) {
    for (const std::string ok : {"a", "Z", "9", "lights.on", "a_b-c.d", "0-start", "A.B_C-9"}) {
        Raw raw;
        raw.field(ok).u8(0);
        EXPECT_TRUE(decode(raw.seal()).request) << ok;
        Request r = sample();
        r.action = ok;
        EXPECT_NO_THROW(encode_request(r, request_key())) << ok;
    }
    for (const std::string bad :
         {".hidden", "-x", "_x", "a b", "a/b", "../x", "caf\xc3\xa9", "a\tb", "a:b", "a\\b"}) {
        Raw raw;
        raw.field(bad).u8(0);
        const DecodeResult d = decode(raw.seal());
        EXPECT_FALSE(d.request) << bad;
        EXPECT_EQ(d.error.status, Status::Malformed) << bad;
        Request r = sample();
        r.action = bad;
        EXPECT_THROW(encode_request(r, request_key()), std::invalid_argument) << bad;
    }
}

TEST(Protocol, EightArgsAcceptedAndNineRefused) {
    Request r = sample();
    r.args.assign(8, "x");
    const DecodeResult d = decode(encode_request(r, request_key()));
    ASSERT_TRUE(d.request) << d.error.detail;
    EXPECT_EQ(d.request->args.size(), 8U);

    r.args.assign(9, "x");
    EXPECT_THROW(encode_request(r, request_key()), std::invalid_argument);
    Raw raw;
    raw.field("echo").u8(9);
    for (int i = 0; i < 9; ++i) {
        raw.field("x");
    }
    const DecodeResult bad = decode(raw.seal());
    EXPECT_FALSE(bad.request);
    EXPECT_EQ(bad.error.status, Status::Malformed);
    EXPECT_NE(bad.error.detail.find("argument count 9"), std::string::npos);
}

TEST(Protocol, ArgLength128AcceptedAnd129Refused) {
    Request r = sample();
    r.args = {std::string(128, 'a')};
    const DecodeResult d = decode(encode_request(r, request_key()));
    ASSERT_TRUE(d.request) << d.error.detail;
    EXPECT_EQ(d.request->args[0].size(), 128U);

    r.args = {std::string(129, 'a')};
    EXPECT_THROW(encode_request(r, request_key()), std::invalid_argument);
    Raw raw;
    raw.field("echo").u8(1).field(std::string(129, 'a'));
    const DecodeResult bad = decode(raw.seal());
    EXPECT_FALSE(bad.request);
    EXPECT_EQ(bad.error.status, Status::Malformed);
    EXPECT_NE(bad.error.detail.find("longer than 128"), std::string::npos);
}

TEST(Protocol, ArgControlCharactersRefusedUtf8Accepted) {
    for (const std::string& bad :
         {std::string("a\0b", 3), std::string("\x01"), std::string("\t"), std::string("a\nb"),
          std::string("\r"), std::string("\x1f"), std::string("\x7f"), std::string("\x1b[2J")}) {
        Raw raw;
        raw.field("echo").u8(1).field(bad);
        const DecodeResult d = decode(raw.seal());
        EXPECT_FALSE(d.request);
        EXPECT_EQ(d.error.status, Status::Malformed);
        EXPECT_NE(d.error.detail.find("control characters"), std::string::npos);
        Request r = sample();
        r.args = {bad};
        EXPECT_THROW(encode_request(r, request_key()), std::invalid_argument);
    }
    Request r = sample();
    r.args = {"\xe2\x98\x95 ~!@#$%^&*()[]{}'\"`|<>?;", " leading space", "\x80\xff"};
    const DecodeResult d = decode(encode_request(r, request_key()));
    ASSERT_TRUE(d.request) << d.error.detail;
    EXPECT_EQ(d.request->args, r.args);
}

TEST(Protocol, Frame512AcceptedAnd513Refused) {
    // 55 + 64 + 1 + 129 + 129 + 102 + 32 = 512
    Request r = sample();
    r.action = std::string(64, 'a');
    r.args = {std::string(128, 'x'), std::string(128, 'y'), std::string(101, 'z')};
    const Bytes frame = encode_request(r, request_key());
    ASSERT_EQ(frame.size(), kMaxFrame);
    ASSERT_TRUE(decode(frame).request) << decode(frame).error.detail;

    r.args.back().push_back('z');
    EXPECT_THROW(encode_request(r, request_key()), std::invalid_argument);
    // The same, well formed but 513 bytes long, built by hand.
    Raw raw;
    raw.field(std::string(64, 'a'))
        .u8(3)
        .field(std::string(128, 'x'))
        .field(std::string(128, 'y'))
        .field(std::string(102, 'z'));
    const Bytes big = raw.seal();
    ASSERT_EQ(big.size(), 513U);
    const DecodeResult d = decode(big);
    EXPECT_FALSE(d.request);
    EXPECT_EQ(d.error.status, Status::Malformed);
    EXPECT_NE(d.error.detail.find("maximum is 512"), std::string::npos) << d.error.detail;
}

TEST(Protocol, EveryTruncationIsMalformed) {
    const Bytes frame = encode_request(sample(), request_key());
    for (std::size_t n = 0; n < frame.size(); ++n) {
        const Bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
        const DecodeResult d = decode(cut);
        EXPECT_FALSE(d.request) << "length " << n;
        EXPECT_EQ(d.error.status, Status::Malformed) << "length " << n;
        EXPECT_FALSE(d.error.detail.empty()) << "length " << n;
    }
}

TEST(Protocol, TrailingByteIsMalformed) {
    Bytes frame = encode_request(sample(), request_key());
    frame.push_back(0);
    const DecodeResult d = decode(frame);
    EXPECT_FALSE(d.request);
    EXPECT_EQ(d.error.status, Status::Malformed);
    EXPECT_NE(d.error.detail.find("unexpected bytes"), std::string::npos) << d.error.detail;
}

TEST(Protocol, OtherVersionsAreUnknownVersion) {
    for (const std::uint8_t v : std::vector<std::uint8_t>{0, 2, 0x7F, 0xFF}) {
        Bytes frame = encode_request(sample(), request_key());
        frame[0] = v;
        const DecodeResult d = decode(frame);
        EXPECT_FALSE(d.request);
        EXPECT_EQ(d.error.status, Status::UnknownVersion) << int{v};
        EXPECT_NE(d.error.detail.find("version " + std::to_string(v)), std::string::npos);
    }
    // Version is looked at before length: two bytes of a future version are enough.
    EXPECT_EQ(decode(Bytes{2, 1}).error.status, Status::UnknownVersion);
}

TEST(Protocol, WrongTypeIsMalformed) {
    for (const std::uint8_t t : std::vector<std::uint8_t>{0, 2, 3, 0xFF}) {
        Bytes frame = encode_request(sample(), request_key());
        frame[1] = t;
        const DecodeResult d = decode(frame);
        EXPECT_FALSE(d.request);
        EXPECT_EQ(d.error.status, Status::Malformed);
        EXPECT_NE(d.error.detail.find("not a request"), std::string::npos);
    }
}

TEST(Protocol, StatusNamesAreUniqueAndByteMappingIsExact) {
    std::set<std::string_view> names;
    int known = 0;
    for (int b = 0; b < 256; ++b) {
        const auto s = status_from_byte(static_cast<std::uint8_t>(b));
        if (!s) {
            continue;
        }
        ++known;
        EXPECT_EQ(static_cast<int>(*s), b);
        EXPECT_TRUE(names.insert(status_name(*s)).second) << status_name(*s);
        EXPECT_NE(status_message(*s), "unknown status");
    }
    EXPECT_EQ(known, 19);
    EXPECT_EQ(status_name(Status::BadMac), "bad_mac");
    EXPECT_EQ(status_name(Status::Replayed), "replayed");
    EXPECT_EQ(static_cast<int>(Status::Internal), 0x1F);
    for (const std::uint8_t b : std::vector<std::uint8_t>{0x05, 0x0F, 0x1D, 0x1E, 0x20, 0xFF}) {
        EXPECT_FALSE(status_from_byte(b)) << int{b};
    }
}

TEST(Protocol, DerivedKeysAreDistinctAndStable) {
    const auto a = derive_keys(kSecret);
    const auto b = derive_keys(kSecret);
    EXPECT_EQ(a.request_mac.size(), 32U);
    EXPECT_EQ(a.response_mac.size(), 32U);
    EXPECT_TRUE(core::crypto::ct_equal(a.request_mac.view(), b.request_mac.view()));
    EXPECT_FALSE(core::crypto::ct_equal(a.request_mac.view(), a.response_mac.view()));
    const auto c = derive_keys(Bytes(32, 0x5B));
    EXPECT_FALSE(core::crypto::ct_equal(a.request_mac.view(), c.request_mac.view()));
}

Response sample_response() {
    Response r;
    r.counter = 77;
    for (std::size_t i = 0; i < kTagLen; ++i) {
        r.tag[i] = static_cast<std::uint8_t>(i * 3);
    }
    r.status = Status::ActionFailed;
    r.exit_code = -15;
    r.output = "stderr: something\n";
    return r;
}

TEST(Protocol, ResponseRoundTripWithMac) {
    const Response r = sample_response();
    const Bytes frame = encode_response(r, response_key());
    EXPECT_EQ(frame.size(), 33 + r.output.size() + kMacLen);
    EXPECT_EQ(frame[1], kTypeResponse);
    const ResponseDecode d = decode_response(frame, response_key());
    ASSERT_TRUE(d.response) << d.error;
    EXPECT_TRUE(d.mac_ok);
    EXPECT_EQ(d.response->counter, 77U);
    EXPECT_EQ(d.response->tag, r.tag);
    EXPECT_EQ(d.response->status, Status::ActionFailed);
    EXPECT_EQ(d.response->exit_code, -15);
    EXPECT_EQ(d.response->output, r.output);
}

TEST(Protocol, ResponseTruncatedToFit512) {
    Response r = sample_response();
    r.output = std::string(447, 'o');
    Bytes frame = encode_response(r, response_key());
    EXPECT_EQ(frame.size(), kMaxFrame);
    EXPECT_EQ(decode_response(frame, response_key()).response->output.size(), 447U);

    for (std::size_t n : {448U, 1000U, 70000U}) {
        r.output = std::string(n, 'o');
        r.output[446] = 'L';  // last byte kept
        frame = encode_response(r, response_key());
        EXPECT_EQ(frame.size(), kMaxFrame) << n;
        const ResponseDecode d = decode_response(frame, response_key());
        ASSERT_TRUE(d.response) << d.error;
        EXPECT_TRUE(d.mac_ok);
        EXPECT_EQ(d.response->output, r.output.substr(0, 447)) << n;
    }

    r.output.clear();
    EXPECT_EQ(encode_response(r, response_key()).size(), 65U);
}

TEST(Protocol, ResponseTamperAndWrongKeyFailTheMac) {
    const Bytes frame = encode_response(sample_response(), response_key());
    for (std::size_t i = 0; i < frame.size(); ++i) {
        Bytes t = frame;
        t[i] ^= 0x01;
        const ResponseDecode d = decode_response(t, response_key());
        // Either the frame no longer parses or its MAC fails; never accepted.
        EXPECT_FALSE(d.response && d.mac_ok) << "byte " << i;
    }
    EXPECT_FALSE(decode_response(frame, request_key()).mac_ok);
    const ResponseDecode nokey = decode_response(frame, {});
    ASSERT_TRUE(nokey.response);
    EXPECT_FALSE(nokey.mac_ok);
}

TEST(Protocol, ResponseWithoutKeyHasZeroMac) {
    const Bytes frame = encode_response(sample_response(), {});
    EXPECT_TRUE(std::all_of(frame.end() - static_cast<std::ptrdiff_t>(kMacLen), frame.end(),
                            [](std::uint8_t b) { return b == 0; }));
    const ResponseDecode d = decode_response(frame, response_key());
    ASSERT_TRUE(d.response);
    EXPECT_FALSE(d.mac_ok);
    EXPECT_EQ(d.response->mac, Mac{});
}

TEST(Protocol, ResponseDecodeErrors) {
    const Bytes frame = encode_response(sample_response(), response_key());
    EXPECT_FALSE(
        decode_response(Bytes(frame.begin(), frame.begin() + 64), response_key()).response);
    Bytes t = frame;
    t[1] = kTypeRequest;
    EXPECT_NE(decode_response(t, response_key()).error.find("not a version 1 response"),
              std::string::npos);
    t = frame;
    t[0] = 2;
    EXPECT_FALSE(decode_response(t, response_key()).response);
    t = frame;
    t[32] = static_cast<std::uint8_t>(t[32] + 1);  // output length low byte
    EXPECT_NE(decode_response(t, response_key()).error.find("output length"), std::string::npos);
    t = frame;
    t[26] = 0x05;  // status byte: not a defined code
    EXPECT_NE(decode_response(t, response_key()).error.find("unknown status code 5"),
              std::string::npos);
    Bytes big = frame;
    big.resize(513, 0);
    EXPECT_FALSE(decode_response(big, response_key()).response);
}

TEST(Protocol, FragmentSizes) {
    const Bytes frame(100, 0xAB);
    const auto f23 = fragment(frame, 23);  // 19 bytes per fragment
    ASSERT_EQ(f23.size(), 6U);
    for (std::size_t i = 0; i < f23.size(); ++i) {
        EXPECT_EQ(f23[i][0] & 0x7F, static_cast<int>(i));
        EXPECT_EQ((f23[i][0] & 0x80) != 0, i + 1 == f23.size());
        EXPECT_LE(f23[i].size(), 20U);
    }
    EXPECT_EQ(f23.back().size(), 1U + 100 - 5 * 19);
    // An MTU below the BLE minimum of 23 is treated as 23.
    EXPECT_EQ(fragment(frame, 5), f23);
    // A frame that fills whole chunks has no empty trailing fragment.
    EXPECT_EQ(fragment(Bytes(38, 1), 23).size(), 2U);
    // MTU 517 carries a whole 512-byte frame in one notification.
    const auto one = fragment(Bytes(512, 2), 517);
    ASSERT_EQ(one.size(), 1U);
    EXPECT_EQ(one[0][0], 0x80);
    // An empty frame is one empty last fragment.
    EXPECT_EQ(fragment({}, 185), (std::vector<Bytes>{{0x80}}));
}

Bytes sample_frame(std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) {
        b[i] = static_cast<std::uint8_t>(i * 7);
    }
    return b;
}

TEST(Reassembler, InOrder) {
    const Bytes frame = sample_frame(512);
    const auto frags = fragment(frame, 23);
    Reassembler r;
    for (std::size_t i = 0; i + 1 < frags.size(); ++i) {
        EXPECT_EQ(r.push(frags[i]), Reassembler::State::NeedMore);
    }
    EXPECT_EQ(r.push(frags.back()), Reassembler::State::Done);
    EXPECT_EQ(r.frame(), frame);
    // The next fragment starts a new frame.
    const auto next = fragment(sample_frame(10), 23);
    EXPECT_EQ(r.push(next[0]), Reassembler::State::Done);
    EXPECT_EQ(r.frame(), sample_frame(10));
}

TEST(Reassembler, LostFragmentIsAnError) {
    const auto frags = fragment(sample_frame(100), 23);
    Reassembler r;
    EXPECT_EQ(r.push(frags[0]), Reassembler::State::NeedMore);
    EXPECT_EQ(r.push(frags[2]), Reassembler::State::Error);
    // Nothing half-built survives: the rest of that frame is also refused.
    EXPECT_EQ(r.push(frags[3]), Reassembler::State::Error);
    EXPECT_TRUE(r.frame().empty());
}

TEST(Reassembler, DuplicateAndFirstOutOfOrderAreErrors) {
    const auto frags = fragment(sample_frame(100), 23);
    Reassembler r;
    EXPECT_EQ(r.push(frags[1]), Reassembler::State::Error);
    EXPECT_EQ(r.push(frags[0]), Reassembler::State::NeedMore);
    EXPECT_EQ(r.push(frags[1]), Reassembler::State::NeedMore);
    EXPECT_EQ(r.push(frags[1]), Reassembler::State::Error);
    EXPECT_EQ(r.push(Bytes{}), Reassembler::State::Error);
}

TEST(Reassembler, IndexZeroRestarts) {
    const auto first = fragment(sample_frame(100), 23);
    const Bytes second_frame(60, 0x33);
    const auto second = fragment(second_frame, 23);
    Reassembler r;
    EXPECT_EQ(r.push(first[0]), Reassembler::State::NeedMore);
    EXPECT_EQ(r.push(first[1]), Reassembler::State::NeedMore);
    for (std::size_t i = 0; i + 1 < second.size(); ++i) {
        EXPECT_EQ(r.push(second[i]), Reassembler::State::NeedMore);
    }
    EXPECT_EQ(r.push(second.back()), Reassembler::State::Done);
    EXPECT_EQ(r.frame(), second_frame);
}

TEST(Reassembler, OversizeIsAnError) {
    const auto frags = fragment(sample_frame(513), 23);
    Reassembler r;
    Reassembler::State st = Reassembler::State::NeedMore;
    std::size_t pushed = 0;
    for (const auto& f : frags) {
        st = r.push(f);
        ++pushed;
        if (st != Reassembler::State::NeedMore) {
            break;
        }
    }
    EXPECT_EQ(st, Reassembler::State::Error);
    EXPECT_EQ(pushed, frags.size());  // refused at the byte that crossed 512
    EXPECT_TRUE(r.frame().empty());

    // A single oversize fragment (a peer ignoring the MTU) is refused too.
    Bytes huge(514, 0);
    huge[0] = 0x80;
    EXPECT_EQ(r.push(huge), Reassembler::State::Error);
    Bytes exact(513, 0);
    exact[0] = 0x80;
    EXPECT_EQ(r.push(exact), Reassembler::State::Done);
    EXPECT_EQ(r.frame().size(), 512U);
}

}  // namespace
}  // namespace bzs::core::protocol
