// SPDX-License-Identifier: GPL-3.0-or-later
// What every part of the protocol shares: status codes and the notification
// fragments (docs/protocol.md, sections 9 and 10). Frames: sealed_test.cpp.
#include "core/protocol/protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace bzs::core::protocol {
namespace {

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
    EXPECT_EQ(known, 20);
    EXPECT_EQ(status_name(Status::BadMac), "bad_mac");
    EXPECT_EQ(status_name(Status::Replayed), "replayed");
    EXPECT_EQ(status_name(Status::CodeUsed), "code_used");
    EXPECT_EQ(status_name(Status::CodeExpired), "code_expired");
    EXPECT_EQ(static_cast<int>(Status::CodeUsed), 0x1D);
    EXPECT_EQ(static_cast<int>(Status::CodeExpired), 0x1E);
    EXPECT_EQ(static_cast<int>(Status::Internal), 0x1F);
    // 0x17 (a per-step rule of an unreleased version) is not a status.
    for (const std::uint8_t b : std::vector<std::uint8_t>{0x05, 0x0F, 0x17, 0x20, 0xFF}) {
        EXPECT_FALSE(status_from_byte(b)) << int{b};
    }
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
