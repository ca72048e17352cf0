// SPDX-License-Identifier: GPL-3.0-or-later
// Per-device link state: generations, MTU, last results and the notifications a
// result turns into (their order and size).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bluez/gatt_app.h"
#include "core/protocol/protocol.h"
#include "core/protocol/sealed.h"
#include "loop/event_loop.h"

namespace bzs::bluez {
namespace {

using core::protocol::Bytes;

const std::string kPhone = "/org/bluez/hci0/dev_11_22_33_44_55_66";
const std::string kOther = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF";

// A sealed command result of 24 + 16 + 14 + output_len bytes.
Bytes response_frame(std::size_t output_len) {
    core::protocol::SealTag tag{};
    tag.fill(0x5E);
    core::protocol::SealNonce nonce{};
    nonce.fill(0x4B);
    core::protocol::ResponseHead head;
    head.status = core::protocol::Status::Ok;
    head.pi_time = 1'700'000'000;
    head.synced = true;
    return core::protocol::seal_command_result(9, tag, nonce, Bytes(32, 0x07), head, 0,
                                               std::string(output_len, 'o'));
}

TEST(LinkTable, TouchCreatesOneEntryPerDeviceWithDistinctGenerations) {
    LinkTable t;
    const auto g1 = t.touch(kPhone, std::nullopt).generation;
    const auto g2 = t.touch(kOther, std::nullopt).generation;
    EXPECT_NE(g1, g2);
    EXPECT_EQ(t.touch(kPhone, std::nullopt).generation, g1);  // same link, same generation
    EXPECT_EQ(t.size(), 2U);
}

TEST(LinkTable, AReconnectedDeviceGetsANewGeneration) {
    LinkTable t;
    const auto before = t.touch(kPhone, std::nullopt).generation;
    EXPECT_TRUE(t.drop(kPhone));
    EXPECT_FALSE(t.drop(kPhone));
    EXPECT_EQ(t.find(kPhone), nullptr);
    EXPECT_NE(t.touch(kPhone, std::nullopt).generation, before);
}

TEST(LinkTable, MtuDefaultsTo23AndFollowsTheLastOption) {
    LinkTable t;
    EXPECT_EQ(t.touch(kPhone, std::nullopt).mtu, 23);
    EXPECT_EQ(t.touch(kPhone, std::uint16_t{185}).mtu, 185);
    EXPECT_EQ(t.touch(kPhone, std::nullopt).mtu, 185);
    EXPECT_EQ(t.touch(kPhone, std::uint16_t{10}).mtu, 185);  // below ATT's minimum: ignored
    EXPECT_EQ(t.touch(kPhone, std::uint16_t{517}).mtu, 517);
}

TEST(LinkTable, DropForgetsPartialWritesAndResults) {
    LinkTable t;
    auto& link = t.touch(kPhone, std::nullopt);
    link.command.write(0, Bytes{core::protocol::kVersion2, 0x01, 0x00});
    link.last_result = {1, 2, 3};
    t.drop(kPhone);
    const auto& fresh = t.touch(kPhone, std::nullopt);
    EXPECT_EQ(fresh.command.size(), 0U);
    EXPECT_TRUE(fresh.last_result.empty());
}

// The incomplete-frame timer lives in the link: a dropped or cleared link can
// never answer for bytes it no longer holds.
TEST(LinkTable, DroppingALinkCancelsItsIncompleteFrameTimer) {
    loop::EventLoop loop;
    LinkTable t;
    int fired = 0;
    t.touch(kPhone, std::nullopt).incomplete =
        loop.add_timer_relative(std::chrono::microseconds(0), [&fired] { ++fired; });
    t.touch(kOther, std::nullopt).incomplete =
        loop.add_timer_relative(std::chrono::microseconds(0), [&fired] { ++fired; });
    EXPECT_TRUE(t.drop(kPhone));
    t.clear();
    // A later timer: by the time it runs, the expired ones would have run first.
    bool done = false;
    loop::Source after =
        loop.add_timer_relative(std::chrono::milliseconds(1), [&done] { done = true; });
    loop.run_until([&done] { return done; });
    EXPECT_EQ(fired, 0);
}

TEST(LinkTable, AResultIsStoredForItsDeviceOnly) {
    LinkTable t;
    const auto gen = t.touch(kPhone, std::nullopt).generation;
    t.touch(kOther, std::nullopt);
    const Bytes frame = response_frame(10);
    const auto notes = t.store_result(kPhone, gen, frame, false);
    ASSERT_TRUE(notes.has_value());
    EXPECT_TRUE(notes->empty());  // nobody subscribed: stored for reading only
    EXPECT_EQ(t.find(kPhone)->last_result, frame);
    EXPECT_TRUE(t.find(kOther)->last_result.empty());
}

TEST(LinkTable, AResultForAnOlderConnectionIsDropped) {
    LinkTable t;
    const auto old_gen = t.touch(kPhone, std::nullopt).generation;
    t.drop(kPhone);
    t.touch(kPhone, std::nullopt);
    EXPECT_FALSE(t.store_result(kPhone, old_gen, response_frame(4), true).has_value());
    EXPECT_TRUE(t.find(kPhone)->last_result.empty());
}

TEST(LinkTable, AResultForADisconnectedDeviceIsDropped) {
    LinkTable t;
    const auto gen = t.touch(kPhone, std::nullopt).generation;
    t.drop(kPhone);
    EXPECT_FALSE(t.store_result(kPhone, gen, response_frame(4), true).has_value());
    EXPECT_EQ(t.find(kPhone), nullptr);
}

// The notifications of one result, in the order they are sent, must rebuild the
// frame through the phone-side Reassembler, each fitting one ATT notification.
void expect_fragments_rebuild(const std::vector<Bytes>& notes, const Bytes& frame,
                              std::size_t mtu) {
    ASSERT_FALSE(notes.empty());
    core::protocol::Reassembler r;
    for (std::size_t i = 0; i < notes.size(); ++i) {
        ASSERT_LE(notes[i].size(), mtu - 3) << "fragment " << i;
        EXPECT_EQ(notes[i][0] & 0x7F, static_cast<int>(i)) << "fragment index";
        EXPECT_EQ((notes[i][0] & 0x80) != 0, i + 1 == notes.size()) << "last flag";
        const auto st = r.push(notes[i]);
        EXPECT_EQ(st, i + 1 == notes.size() ? core::protocol::Reassembler::State::Done
                                            : core::protocol::Reassembler::State::NeedMore);
    }
    EXPECT_EQ(r.frame(), frame);
}

TEST(LinkTable, NotificationsAreFragmentsAtTheDevicesMtuInOrder) {
    const Bytes frame = response_frame(300);
    for (const std::uint16_t mtu :
         {std::uint16_t{23}, std::uint16_t{64}, std::uint16_t{185}, std::uint16_t{517}}) {
        LinkTable t;
        const auto gen = t.touch(kPhone, mtu).generation;
        const auto notes = t.store_result(kPhone, gen, frame, true);
        ASSERT_TRUE(notes.has_value());
        const std::size_t per = mtu - 3 - 1;
        EXPECT_EQ(notes->size(), (frame.size() + per - 1) / per) << "mtu " << mtu;
        expect_fragments_rebuild(*notes, frame, mtu);
        EXPECT_EQ(t.find(kPhone)->last_result, frame);
    }
}

TEST(LinkTable, TheMtuOfTheLastCallIsUsedForNotifications) {
    LinkTable t;
    const auto gen = t.touch(kPhone, std::uint16_t{23}).generation;
    t.touch(kPhone, std::uint16_t{247});
    const Bytes frame = response_frame(100);
    const auto notes = t.store_result(kPhone, gen, frame, true);
    ASSERT_TRUE(notes.has_value());
    EXPECT_EQ(notes->size(), 1U);  // fits one 247-byte MTU notification
    expect_fragments_rebuild(*notes, frame, 247);
}

TEST(LinkTable, ALaterResultReplacesTheEarlierOne) {
    LinkTable t;
    const auto gen = t.touch(kPhone, std::nullopt).generation;
    t.store_result(kPhone, gen, response_frame(1), false);
    const Bytes second = response_frame(2);
    t.store_result(kPhone, gen, second, false);
    EXPECT_EQ(t.find(kPhone)->last_result, second);
}

}  // namespace
}  // namespace bzs::bluez
