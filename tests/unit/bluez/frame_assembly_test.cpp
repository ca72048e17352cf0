// SPDX-License-Identifier: GPL-3.0-or-later
// Assembling request frames from Command characteristic writes: deciding from the
// header when a frame is complete, offsets, limits, and the Info/read helpers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bluez/gatt_app.h"
#include "core/protocol/protocol.h"

namespace bzs::bluez {
namespace {

using core::protocol::Bytes;

Bytes make_request(std::size_t action_len, std::vector<std::size_t> arg_lens) {
    core::protocol::Request r;
    r.device_id.fill(0xA5);
    r.counter = 7;
    r.timestamp = 1'700'000'000;
    r.challenge.fill(0x11);
    r.totp = 123456;
    r.action = std::string(action_len, 'a');
    for (std::size_t n : arg_lens) {
        r.args.emplace_back(n, 'x');
    }
    const Bytes key(32, 0x42);
    return core::protocol::encode_request(r, key);
}

// Frames of many shapes, all valid: every length field takes part.
std::vector<Bytes> sample_frames() {
    std::vector<Bytes> out;
    out.push_back(make_request(1, {}));
    out.push_back(make_request(5, {0}));
    out.push_back(make_request(12, {3, 0, 17}));
    out.push_back(make_request(64, {}));
    out.push_back(make_request(4, {128, 128, 128}));
    out.push_back(make_request(8, {1, 2, 3, 4, 5, 6, 7, 8}));
    return out;
}

TEST(RequestFrameProgress, EveryProperPrefixNeedsMoreAndTheWholeFrameIsComplete) {
    for (const Bytes& f : sample_frames()) {
        ASSERT_TRUE(core::protocol::decode_request(f).request.has_value());
        for (std::size_t n = 0; n < f.size(); ++n) {
            EXPECT_EQ(request_frame_progress(core::crypto::ByteView(f).first(n)),
                      FrameProgress::NeedMore)
                << "frame of " << f.size() << " bytes, prefix " << n;
        }
        EXPECT_EQ(request_frame_progress(f), FrameProgress::Complete);
    }
}

TEST(RequestFrameProgress, AWrongVersionIsCompleteAtTheFirstByte) {
    const Bytes b = {0x02};
    EXPECT_EQ(request_frame_progress(b), FrameProgress::Complete);
    EXPECT_EQ(core::protocol::decode_request(b).error.status, core::protocol::Status::Malformed);
    const Bytes two = {0x02, core::protocol::kTypeRequest};
    EXPECT_EQ(core::protocol::decode_request(two).error.status,
              core::protocol::Status::UnknownVersion);
}

TEST(RequestFrameProgress, AResponseTypeIsComplete) {
    const Bytes b = {core::protocol::kVersion, core::protocol::kTypeResponse};
    EXPECT_EQ(request_frame_progress(b), FrameProgress::Complete);
}

TEST(RequestFrameProgress, OutOfRangeLengthFieldsAreCompleteAtOnce) {
    Bytes f = make_request(4, {2});
    constexpr std::size_t kActionLenAt = 54;  // docs/protocol.md, request frame layout
    ASSERT_EQ(f[kActionLenAt], 4);

    Bytes zero_action(f.begin(), f.begin() + kActionLenAt + 1);
    zero_action[kActionLenAt] = 0;
    EXPECT_EQ(request_frame_progress(zero_action), FrameProgress::Complete);

    Bytes long_action = zero_action;
    long_action[kActionLenAt] = core::protocol::kMaxActionLen + 1;
    EXPECT_EQ(request_frame_progress(long_action), FrameProgress::Complete);

    // Argument count byte right after the 4-byte action name.
    Bytes many_args(f.begin(), f.begin() + kActionLenAt + 1 + 4 + 1);
    many_args.back() = core::protocol::kMaxArgs + 1;
    EXPECT_EQ(request_frame_progress(many_args), FrameProgress::Complete);

    Bytes long_arg(f.begin(), f.begin() + kActionLenAt + 1 + 4 + 2);
    long_arg.back() = core::protocol::kMaxArgLen + 1;
    EXPECT_EQ(request_frame_progress(long_arg), FrameProgress::Complete);
}

TEST(RequestFrameProgress, LengthsAnnouncingMoreThanAFrameAreComplete) {
    // 64-byte action and eight 128-byte arguments cannot fit in 512 bytes.
    Bytes f = make_request(64, {});
    f.resize(54 + 1 + 64);  // up to the argument count
    f.push_back(8);
    for (int i = 0; i < 3; ++i) {
        f.push_back(128);
        f.insert(f.end(), 128, 'x');
    }
    ASSERT_LT(f.size(), core::protocol::kMaxFrame);
    f.push_back(128);  // the fourth argument's length: the total is now known to exceed 512
    EXPECT_EQ(request_frame_progress(f), FrameProgress::Complete);
}

TEST(RequestFrameProgress, TrailingBytesMakeTheFrameCompleteAndMalformed) {
    Bytes f = make_request(3, {1});
    f.push_back(0);
    EXPECT_EQ(request_frame_progress(f), FrameProgress::Complete);
    EXPECT_FALSE(core::protocol::decode_request(f).request.has_value());
}

// The malformed vectors that are proper prefixes of valid frames: the only ones a
// phone could still finish, so the only ones held (and answered on timeout).
TEST(RequestFrameProgress, OnlyPrefixVectorsOfMalformedJsonNeedMore) {
    std::ifstream in(std::filesystem::path(BZS_SPEC_DIR) / "vectors" / "malformed.json");
    ASSERT_TRUE(in) << "spec/vectors/malformed.json missing";
    const nlohmann::json v = nlohmann::json::parse(in);
    std::vector<std::string> held;
    for (const auto& c : v["cases"]) {
        const Bytes f = core::crypto::hex_decode(c["frame"].get<std::string>()).value();
        if (request_frame_progress(f) == FrameProgress::NeedMore) {
            held.push_back(c["name"].get<std::string>());
        }
    }
    // "argument-missing" looks cut short too, but the bytes its second argument
    // would hold include a control character (0x06): no frame starts that way.
    EXPECT_EQ(held, (std::vector<std::string>{"empty", "one-byte", "argument-past-end"}));
}

TEST(RequestFrameProgress, AtLeastIsTheShortestValidCompletion) {
    for (const Bytes& f : sample_frames()) {
        for (std::size_t n = 0; n < f.size(); ++n) {
            const FrameScan s = scan_request_frame(core::crypto::ByteView(f).first(n));
            ASSERT_EQ(s.progress, FrameProgress::NeedMore);
            EXPECT_GT(s.at_least, n);
            EXPECT_LE(s.at_least, f.size()) << "prefix " << n << " of " << f.size();
        }
        // Once every length byte is in, only the frame's own size completes it.
        const FrameScan tail = scan_request_frame(core::crypto::ByteView(f).first(f.size() - 1));
        EXPECT_EQ(tail.at_least, f.size());
    }
    // Before the action length arrives: the smallest request (1-byte name, no arguments).
    EXPECT_EQ(scan_request_frame(Bytes{}).at_least, 89U);
    EXPECT_EQ(scan_request_frame(Bytes{0x01, 0x01, 0x00}).at_least, 89U);
    EXPECT_EQ(make_request(1, {}).size(), 89U);
    // Argument count 3, no argument seen yet: three length bytes at least.
    Bytes f = make_request(2, {4, 4, 4});
    f.resize(54 + 1 + 2 + 1);
    EXPECT_EQ(scan_request_frame(f).at_least, 58U + 3U + 32U);
}

TEST(RequestFrameProgress, ActionNameCharactersNoNameMayHoldCompleteAtOnce) {
    constexpr std::size_t kNameAt = 55;  // after the action length byte
    const Bytes f = make_request(8, {});
    for (const char bad : {' ', '/', '\n', '\x7f', '\xc3'}) {
        Bytes b(f.begin(), f.begin() + kNameAt + 3);
        b.back() = static_cast<std::uint8_t>(bad);
        EXPECT_EQ(request_frame_progress(b), FrameProgress::Complete) << int(bad);
    }
    // A name must start with a letter or digit.
    Bytes dot(f.begin(), f.begin() + kNameAt + 1);
    dot.back() = '.';
    EXPECT_EQ(request_frame_progress(dot), FrameProgress::Complete);
    // ".toml" is refused only as the end of the name: "x.toml" in 8 bytes may go on.
    Bytes toml(f.begin(), f.begin() + kNameAt);
    for (const char c : std::string("ab.toml")) {
        toml.push_back(static_cast<std::uint8_t>(c));
    }
    EXPECT_EQ(request_frame_progress(toml), FrameProgress::NeedMore);
    toml.push_back('z');
    EXPECT_EQ(request_frame_progress(toml), FrameProgress::NeedMore);
    Bytes ends(f.begin(), f.begin() + kNameAt);
    for (const char c : std::string("abc.toml")) {
        ends.push_back(static_cast<std::uint8_t>(c));
    }
    EXPECT_EQ(request_frame_progress(ends), FrameProgress::Complete);
    EXPECT_FALSE(core::protocol::decode_request(ends).request.has_value());
}

TEST(RequestFrameProgress, AControlCharacterInAnArgumentCompletesAtOnce) {
    const Bytes f = make_request(3, {10});
    const std::size_t arg_at = 54 + 1 + 3 + 1 + 1;  // first byte of argument 0
    for (const int bad : {0x00, 0x0a, 0x1b, 0x7f}) {
        Bytes b(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(arg_at + 4));
        b.back() = static_cast<std::uint8_t>(bad);
        EXPECT_EQ(request_frame_progress(b), FrameProgress::Complete) << int(bad);
    }
    Bytes ok(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(arg_at + 4));
    EXPECT_EQ(request_frame_progress(ok), FrameProgress::NeedMore);
}

TEST(IncompleteFrameDetail, NamesTheTimeoutTheBytesHeldAndTheShortestFrame) {
    EXPECT_EQ(kIncompleteFrameTimeout, std::chrono::seconds(2));
    EXPECT_EQ(incomplete_frame_detail(Bytes{0x01, 0x01, 0x00}),
              "frame incomplete 2 s after its last write: 3 of at least 89 bytes");
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
        std::vector<std::size_t> args(argc(rng));
        for (auto& n : args) {
            n = arglen(rng);
        }
        const Bytes f = make_request(action(rng), args);
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
    const Bytes huge(core::protocol::kMaxFrame + 1, core::protocol::kVersion);
    EXPECT_EQ(a.write(0, huge).kind, WriteOutcome::Kind::TooLong);
}

TEST(FrameAssembler, AFrameOfExactly512BytesIsAccepted) {
    // 55 header bytes + 64 action + 1 count + (129 + 129 + 102) arguments + 32 MAC.
    const Bytes f = make_request(64, {128, 128, 101});
    ASSERT_EQ(f.size(), core::protocol::kMaxFrame);
    FrameAssembler a;
    ASSERT_EQ(a.write(0, core::crypto::ByteView(f).first(500)).kind, WriteOutcome::Kind::Partial);
    const WriteOutcome out = a.write(500, core::crypto::ByteView(f).subspan(500));
    ASSERT_EQ(out.kind, WriteOutcome::Kind::Complete);
    EXPECT_EQ(out.frame, f);
    EXPECT_TRUE(core::protocol::decode_request(out.frame).request.has_value());
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
}

TEST(SliceFrom, ReturnsTheTailAndRefusesOffsetsBeyondTheEnd) {
    const Bytes v = {1, 2, 3, 4};
    EXPECT_EQ(slice_from(v, 0), v);
    EXPECT_EQ(slice_from(v, 3), Bytes({4}));
    EXPECT_EQ(slice_from(v, 4), Bytes{});
    EXPECT_FALSE(slice_from(v, 5).has_value());
    EXPECT_EQ(slice_from(Bytes{}, 0), Bytes{});
}

TEST(InfoJson, HasVersionNameAndPiId) {
    const std::string s = info_json("kitchen-pi", "00112233445566778899aabbccddeeff");
    EXPECT_EQ(s, R"({"v":1,"name":"kitchen-pi","pi":"00112233445566778899aabbccddeeff"})");
}

TEST(InfoJson, EscapesQuotesBackslashesAndControlCharacters) {
    const std::string name = "a\"b\\c\x01 d\xc3\xa9";  // ends with UTF-8 e-acute
    const auto j = nlohmann::json::parse(info_json(name, "ab"));
    EXPECT_EQ(j.at("v"), 1);
    EXPECT_EQ(j.at("name").get<std::string>(), name);
    EXPECT_EQ(j.at("pi"), "ab");
}

}  // namespace
}  // namespace bzs::bluez
