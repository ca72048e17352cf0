// SPDX-License-Identifier: GPL-3.0-or-later
// Assembling protocol v2 request frames from Command characteristic writes:
// deciding from the header's length field when a frame is complete, offsets,
// limits, and the Info/read helpers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bluez/gatt_app.h"
#include "core/protocol/protocol.h"
#include "core/protocol/sealed.h"

namespace bzs::bluez {
namespace {

using core::protocol::Bytes;
using core::protocol::RequestType;

Bytes seal(RequestType type, const Bytes& plaintext) {
    core::protocol::DeviceId id{};
    id.fill(0xA5);
    core::protocol::SealNonce nonce{};
    nonce.fill(0x3C);
    const Bytes key(32, 0x42);
    return core::protocol::seal_request(type, id, type == RequestType::Pair ? 0 : 7, nonce, key,
                                        plaintext);
}

Bytes make_request(std::size_t action_len, const std::vector<std::size_t>& arg_lens) {
    core::protocol::CommandBody b;
    b.timestamp = 1'700'000'000;
    b.challenge.fill(0x11);
    b.totp = 123456;
    b.action = std::string(action_len, 'a');
    for (std::size_t n : arg_lens) {
        b.args.emplace_back(n, 'x');
    }
    return seal(RequestType::Command, core::protocol::encode_body(b));
}

Bytes make_catalogue() {
    core::protocol::CatalogueBody b;
    b.timestamp = 1'700'000'000;
    b.first = 2;
    return seal(RequestType::Catalogue, core::protocol::encode_body(b));
}

Bytes make_pair() {
    core::protocol::PairBody b;
    b.phone_public.fill(0x04);
    return seal(RequestType::Pair, core::protocol::encode_body(b));
}

// Frames of many shapes and all three types, all valid.
std::vector<Bytes> sample_frames() {
    std::vector<Bytes> out;
    out.push_back(make_request(1, {}));
    out.push_back(make_request(5, {0}));
    out.push_back(make_request(12, {3, 0, 17}));
    out.push_back(make_request(64, {}));
    out.push_back(make_request(4, {128, 128, 128}));
    out.push_back(make_request(8, {1, 2, 3, 4, 5, 6, 7, 8}));
    out.push_back(make_catalogue());
    out.push_back(make_pair());
    return out;
}

Bytes with_length(Bytes f, std::size_t length) {
    f[2] = static_cast<std::uint8_t>(length >> 8U);
    f[3] = static_cast<std::uint8_t>(length & 0xFFU);
    return f;
}

TEST(RequestFrameProgress, EveryProperPrefixNeedsMoreAndTheWholeFrameIsComplete) {
    for (const Bytes& f : sample_frames()) {
        ASSERT_TRUE(core::protocol::decode_request_header(f).header.has_value());
        for (std::size_t n = 0; n < f.size(); ++n) {
            EXPECT_EQ(request_frame_progress(core::crypto::ByteView(f).first(n)),
                      FrameProgress::NeedMore)
                << "frame of " << f.size() << " bytes, prefix " << n;
        }
        EXPECT_EQ(request_frame_progress(f), FrameProgress::Complete);
    }
}

TEST(RequestFrameProgress, TheSmallestFramesOfEachType) {
    EXPECT_EQ(make_request(1, {}).size(), 87U);
    EXPECT_EQ(make_catalogue().size(), 85U);
    EXPECT_EQ(make_pair().size(), 137U);
}

TEST(RequestFrameProgress, AnotherVersionIsCompleteAtTheFirstByte) {
    for (const std::uint8_t v : {std::uint8_t{0x00}, std::uint8_t{0x01}, std::uint8_t{0x03}}) {
        const Bytes b = {v};
        EXPECT_EQ(request_frame_progress(b), FrameProgress::Complete) << int{v};
        const Bytes two = {v, 0x01};
        EXPECT_EQ(core::protocol::decode_request_header(two).error.status,
                  core::protocol::Status::UnknownVersion)
            << int{v};
    }
    // A whole version 1 frame is refused the same way, not held.
    Bytes v1 = make_request(3, {});
    v1[0] = 0x01;
    EXPECT_EQ(request_frame_progress(core::crypto::ByteView(v1).first(1)), FrameProgress::Complete);
}

TEST(RequestFrameProgress, AResponseOrUnknownTypeIsComplete) {
    for (const std::uint8_t t : {std::uint8_t{0x00}, std::uint8_t{0x04}, std::uint8_t{0x81},
                                 std::uint8_t{0x83}, std::uint8_t{0xFF}}) {
        const Bytes b = {core::protocol::kVersion2, t};
        EXPECT_EQ(request_frame_progress(b), FrameProgress::Complete) << int{t};
    }
}

TEST(RequestFrameProgress, OutOfRangeLengthFieldsAreCompleteAtOnce) {
    const Bytes f = make_request(4, {2});
    const Bytes header(f.begin(), f.begin() + 4);
    for (const std::size_t bad : {std::size_t{0}, std::size_t{40}, std::size_t{86},
                                  core::protocol::kMaxFrame + 1, std::size_t{0xFFFF}}) {
        EXPECT_EQ(request_frame_progress(with_length(header, bad)), FrameProgress::Complete) << bad;
    }
    // Each type has its own minimum.
    Bytes cat = make_catalogue();
    cat.resize(4);
    EXPECT_EQ(request_frame_progress(with_length(cat, 84)), FrameProgress::Complete);
    EXPECT_EQ(request_frame_progress(with_length(cat, 85)), FrameProgress::NeedMore);
    Bytes pair = make_pair();
    pair.resize(4);
    EXPECT_EQ(request_frame_progress(with_length(pair, 136)), FrameProgress::Complete);
    EXPECT_EQ(request_frame_progress(with_length(pair, 137)), FrameProgress::NeedMore);
    EXPECT_EQ(request_frame_progress(with_length(header, 87)), FrameProgress::NeedMore);
    EXPECT_EQ(request_frame_progress(with_length(header, core::protocol::kMaxFrame)),
              FrameProgress::NeedMore);
}

// The assembler trusts the length field and nothing else: a longer write is
// complete (and malformed) at once, a shorter frame waits for its announced size.
TEST(RequestFrameProgress, MoreBytesThanTheLengthAnnouncesAreCompleteAndMalformed) {
    Bytes f = make_request(3, {1});
    f.push_back(0);
    EXPECT_EQ(request_frame_progress(f), FrameProgress::Complete);
    EXPECT_EQ(core::protocol::decode_request_header(f).error.status,
              core::protocol::Status::Malformed);

    const Bytes g = make_request(3, {1});
    const Bytes longer = with_length(g, g.size() + 1);
    EXPECT_EQ(request_frame_progress(longer), FrameProgress::NeedMore);
    EXPECT_EQ(scan_request_frame(longer).at_least, g.size() + 1);
}

// The sealed bytes are never looked at: any content of the announced length
// completes the frame (the seal, not the assembler, judges it).
TEST(RequestFrameProgress, TheSealedBodyIsNotInspected) {
    Bytes f = make_request(6, {4});
    std::fill(f.begin() + 40, f.end(), std::uint8_t{0x00});
    for (std::size_t n = 0; n < f.size(); ++n) {
        ASSERT_EQ(request_frame_progress(core::crypto::ByteView(f).first(n)),
                  FrameProgress::NeedMore);
    }
    EXPECT_EQ(request_frame_progress(f), FrameProgress::Complete);
}

// The header vectors say what an assembler decides for their bytes.
TEST(RequestFrameProgress, MatchesTheProgressOfTheMalformedVectors) {
    std::ifstream in(std::filesystem::path(BZS_SPEC_DIR) / "vectors" / "malformed.json");
    ASSERT_TRUE(in) << "spec/vectors/malformed.json missing";
    const nlohmann::json v = nlohmann::json::parse(in);
    std::size_t checked = 0;
    std::size_t held = 0;
    for (const auto& c : v["header"]) {
        if (!c.contains("progress")) {
            continue;
        }
        const Bytes f = core::crypto::hex_decode(c["frame"].get<std::string>()).value();
        const bool need_more = c["progress"].get<std::string>() == "need_more";
        EXPECT_EQ(request_frame_progress(f) == FrameProgress::NeedMore, need_more)
            << c["name"].get<std::string>();
        ++checked;
        held += need_more ? 1 : 0;
    }
    EXPECT_GT(checked, 3U);
    EXPECT_GT(held, 0U);
    EXPECT_LT(held, checked);
}

TEST(RequestFrameProgress, AtLeastIsTheLengthFieldOnceItArrived) {
    for (const Bytes& f : sample_frames()) {
        for (std::size_t n = 4; n < f.size(); ++n) {
            const FrameScan s = scan_request_frame(core::crypto::ByteView(f).first(n));
            ASSERT_EQ(s.progress, FrameProgress::NeedMore);
            EXPECT_EQ(s.at_least, f.size()) << "prefix " << n << " of " << f.size();
        }
    }
    // Before: the shortest frame of the type, or of any type.
    EXPECT_EQ(scan_request_frame(Bytes{}).at_least, 85U);
    EXPECT_EQ(scan_request_frame(Bytes{0x02}).at_least, 85U);
    EXPECT_EQ(scan_request_frame(Bytes{0x02, 0x01}).at_least, 87U);
    EXPECT_EQ(scan_request_frame(Bytes{0x02, 0x02, 0x00}).at_least, 85U);
    EXPECT_EQ(scan_request_frame(Bytes{0x02, 0x03, 0x00}).at_least, 137U);
    // A complete scan has nothing left to wait for.
    EXPECT_EQ(scan_request_frame(make_pair()).progress, FrameProgress::Complete);
}

TEST(IncompleteFrameDetail, NamesTheTimeoutTheBytesHeldAndTheShortestFrame) {
    EXPECT_EQ(kIncompleteFrameTimeout, std::chrono::seconds(2));
    EXPECT_EQ(incomplete_frame_detail(Bytes{0x02, 0x01, 0x00}),
              "frame incomplete 2 s after its last write: 3 of at least 87 bytes");
    const Bytes f = make_request(4, {6});
    EXPECT_EQ(incomplete_frame_detail(core::crypto::ByteView(f).first(f.size() - 1)),
              "frame incomplete 2 s after its last write: " + std::to_string(f.size() - 1) +
                  " of at least " + std::to_string(f.size()) + " bytes");
}

TEST(FrameAssembler, TakeHandsOverTheHeldBytesAndEmptiesIt) {
    FrameAssembler a;
    const Bytes f = make_request(10, {5});
    ASSERT_EQ(a.write(0, core::crypto::ByteView(f).first(20)).kind, WriteOutcome::Kind::Partial);
    EXPECT_EQ(a.take(), Bytes(f.begin(), f.begin() + 20));
    EXPECT_EQ(a.size(), 0U);
    // What follows starts a new frame (offset 0), as after any answer.
    EXPECT_EQ(a.write(20, core::crypto::ByteView(f).subspan(20)).kind,
              WriteOutcome::Kind::InvalidOffset);
    EXPECT_EQ(a.write(0, f).kind, WriteOutcome::Kind::Complete);
}

TEST(FrameAssembler, ASingleWriteOfAWholeFrameCompletesIt) {
    FrameAssembler a;
    const Bytes f = make_request(6, {2, 3});
    const WriteOutcome out = a.write(0, f);
    ASSERT_EQ(out.kind, WriteOutcome::Kind::Complete);
    EXPECT_EQ(out.frame, f);
    EXPECT_EQ(a.size(), 0U);
}

TEST(FrameAssembler, ChunksAtMatchingOffsetsCompleteOnTheLastChunkOnly) {
    for (const std::size_t chunk : {1U, 18U, 20U, 22U, 182U, 512U}) {
        for (const Bytes& f : sample_frames()) {
            FrameAssembler a;
            std::size_t pos = 0;
            while (pos < f.size()) {
                const std::size_t n = std::min(chunk, f.size() - pos);
                const WriteOutcome out = a.write(pos, core::crypto::ByteView(f).subspan(pos, n));
                pos += n;
                if (pos < f.size()) {
                    ASSERT_EQ(out.kind, WriteOutcome::Kind::Partial) << "chunk " << chunk;
                    EXPECT_EQ(a.size(), pos);
                } else {
                    ASSERT_EQ(out.kind, WriteOutcome::Kind::Complete) << "chunk " << chunk;
                    EXPECT_EQ(out.frame, f);
                }
            }
        }
    }
}

TEST(FrameAssembler, RandomSplitsReassembleTheFrame) {
    std::mt19937 rng(20240501);
    for (int round = 0; round < 200; ++round) {
        std::uniform_int_distribution<std::size_t> action(1, 64);
        std::uniform_int_distribution<std::size_t> argc(0, 3);
        std::uniform_int_distribution<std::size_t> arglen(0, 100);
        std::uniform_int_distribution<int> kind(0, 5);
        std::vector<std::size_t> args(argc(rng));
        for (auto& n : args) {
            n = arglen(rng);
        }
        const int k = kind(rng);
        const Bytes f = k == 0   ? make_catalogue()
                        : k == 1 ? make_pair()
                                 : make_request(action(rng), args);
        FrameAssembler a;
        std::size_t pos = 0;
        WriteOutcome last;
        while (pos < f.size()) {
            std::uniform_int_distribution<std::size_t> len(1, f.size() - pos);
            const std::size_t n = len(rng);
            last = a.write(pos, core::crypto::ByteView(f).subspan(pos, n));
            pos += n;
            ASSERT_EQ(last.kind == WriteOutcome::Kind::Complete, pos == f.size());
        }
        EXPECT_EQ(last.frame, f);
    }
}

TEST(FrameAssembler, AnOffsetThatDoesNotContinueIsInvalidAndDropsThePartialFrame) {
    FrameAssembler a;
    const Bytes f = make_request(10, {5});
    ASSERT_EQ(a.write(0, core::crypto::ByteView(f).first(20)).kind, WriteOutcome::Kind::Partial);
    EXPECT_EQ(a.write(30, core::crypto::ByteView(f).subspan(30, 10)).kind,
              WriteOutcome::Kind::InvalidOffset);
    EXPECT_EQ(a.size(), 0U);
    // The dropped bytes are really gone: continuing at 20 is now invalid too.
    EXPECT_EQ(a.write(20, core::crypto::ByteView(f).subspan(20, 10)).kind,
              WriteOutcome::Kind::InvalidOffset);
    // A frame starting again at offset 0 goes through.
    EXPECT_EQ(a.write(0, f).kind, WriteOutcome::Kind::Complete);
}

TEST(FrameAssembler, AWriteBeforeTheHeldLengthIsInvalid) {
    FrameAssembler a;
    const Bytes f = make_request(10, {5});
    ASSERT_EQ(a.write(0, core::crypto::ByteView(f).first(40)).kind, WriteOutcome::Kind::Partial);
    EXPECT_EQ(a.write(39, core::crypto::ByteView(f).subspan(39, 5)).kind,
              WriteOutcome::Kind::InvalidOffset);
}

TEST(FrameAssembler, OffsetZeroStartsANewFrameDroppingAnUnfinishedOne) {
    FrameAssembler a;
    const Bytes first = make_request(10, {5});
    const Bytes second = make_request(3, {});
    ASSERT_EQ(a.write(0, core::crypto::ByteView(first).first(30)).kind,
              WriteOutcome::Kind::Partial);
    const WriteOutcome out = a.write(0, second);
    ASSERT_EQ(out.kind, WriteOutcome::Kind::Complete);
    EXPECT_EQ(out.frame, second);
}

TEST(FrameAssembler, MoreThan512BytesIsTooLongAndDropsTheFrame) {
    FrameAssembler a;
    const Bytes f = make_request(10, {5});
    ASSERT_EQ(a.write(0, core::crypto::ByteView(f).first(20)).kind, WriteOutcome::Kind::Partial);
    const Bytes big(core::protocol::kMaxFrame - 20 + 1, 0);
    EXPECT_EQ(a.write(20, big).kind, WriteOutcome::Kind::TooLong);
    EXPECT_EQ(a.size(), 0U);
    const Bytes huge(core::protocol::kMaxFrame + 1, core::protocol::kVersion2);
    EXPECT_EQ(a.write(0, huge).kind, WriteOutcome::Kind::TooLong);
}

TEST(FrameAssembler, AFrameOfExactly512BytesIsAccepted) {
    // 40 header bytes + 29 body fields + 64 action + 1 count + (129 + 129 + 104)
    // arguments + 16 tag.
    const Bytes f = make_request(64, {128, 128, 103});
    ASSERT_EQ(f.size(), core::protocol::kMaxFrame);
    FrameAssembler a;
    ASSERT_EQ(a.write(0, core::crypto::ByteView(f).first(500)).kind, WriteOutcome::Kind::Partial);
    const WriteOutcome out = a.write(500, core::crypto::ByteView(f).subspan(500));
    ASSERT_EQ(out.kind, WriteOutcome::Kind::Complete);
    EXPECT_EQ(out.frame, f);
    EXPECT_TRUE(core::protocol::decode_request_header(out.frame).header.has_value());
}

TEST(FrameAssembler, AnEmptyWriteAtOffsetZeroIsPartial) {
    FrameAssembler a;
    EXPECT_EQ(a.write(0, {}).kind, WriteOutcome::Kind::Partial);
    EXPECT_EQ(a.size(), 0U);
}

TEST(FrameAssembler, MalformedHeadersAreHandedOnAtOnce) {
    FrameAssembler a;
    const Bytes bad = {0x09, 0x01, 0x02};
    const WriteOutcome out = a.write(0, bad);
    ASSERT_EQ(out.kind, WriteOutcome::Kind::Complete);
    EXPECT_EQ(out.frame, bad);
    // A length field below the type's minimum: complete with the first 4 bytes.
    const Bytes f = make_request(5, {});
    ASSERT_EQ(a.write(0, core::crypto::ByteView(f).first(3)).kind, WriteOutcome::Kind::Partial);
    const Bytes short_len = {0x00};
    const WriteOutcome cut = a.write(3, short_len);
    ASSERT_EQ(cut.kind, WriteOutcome::Kind::Complete);
    EXPECT_EQ(cut.frame.size(), 4U);
    EXPECT_EQ(a.size(), 0U);
}

TEST(SliceFrom, ReturnsTheTailAndRefusesOffsetsBeyondTheEnd) {
    const Bytes v = {1, 2, 3, 4};
    EXPECT_EQ(slice_from(v, 0), v);
    EXPECT_EQ(slice_from(v, 3), Bytes({4}));
    EXPECT_EQ(slice_from(v, 4), Bytes{});
    EXPECT_FALSE(slice_from(v, 5).has_value());
    EXPECT_EQ(slice_from(Bytes{}, 0), Bytes{});
}

InfoFields info(std::string name) {
    InfoFields f;
    f.pi_name = std::move(name);
    f.pi_id_hex = "00112233445566778899aabbccddeeff";
    f.pi_key_hex = "04" + std::string(128, 'a');
    f.time = 1'700'000'123;
    f.synced = true;
    return f;
}

TEST(InfoJson, HasVersionNamePiIdKeyTimeAndSync) {
    const std::string s = info_json(info("kitchen-pi"));
    EXPECT_EQ(s, R"({"v":2,"name":"kitchen-pi","pi":"00112233445566778899aabbccddeeff","pk":"04)" +
                     std::string(128, 'a') + R"(","time":1700000123,"synced":true})");
    InfoFields f = info("kitchen-pi");
    f.synced = false;
    f.time = -5;  // whatever the clock says, it is a number
    const auto j = nlohmann::json::parse(info_json(f));
    EXPECT_EQ(j.at("synced"), false);
    EXPECT_EQ(j.at("time"), -5);
    EXPECT_EQ(j.at("pk").get<std::string>().size(), 130U);
    EXPECT_EQ(j.size(), 6U);
}

TEST(InfoJson, EscapesQuotesBackslashesAndControlCharacters) {
    const std::string name = "a\"b\\c\x01 d\xc3\xa9";  // ends with UTF-8 e-acute
    const auto j = nlohmann::json::parse(info_json(info(name)));
    EXPECT_EQ(j.at("v"), 2);
    EXPECT_EQ(j.at("name").get<std::string>(), name);
    EXPECT_EQ(j.at("pi"), "00112233445566778899aabbccddeeff");
    EXPECT_EQ(j.at("time"), 1'700'000'123);
}

}  // namespace
}  // namespace bzs::bluez
