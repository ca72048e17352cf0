// SPDX-License-Identifier: GPL-3.0-or-later
// CommandService end to end on real pieces: a Store on a SQLite file, a Registry over
// a folder of shell scripts, a Runner on a real EventLoop, and frames built the way a
// phone builds them. Each case checks the reply frame (decoded and MAC-verified), what
// the action did (a marker file) and the audit row.
#include "service/command_service.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actions/registry.h"
#include "actions/runner.h"
#include "config/config.h"
#include "core/auth/challenge.h"
#include "core/crypto/crypto.h"
#include "core/crypto/fernet.h"
#include "core/protocol/protocol.h"
#include "loop/event_loop.h"
#include "phone.h"
#include "store/keyfile.h"
#include "store/sqlite.h"
#include "store/store.h"
#include "test_support.h"

namespace bzs::service {
namespace {

namespace fs = std::filesystem;
using core::protocol::Status;
using test::Phone;

constexpr std::int64_t kStart = 1'700'000'000;  // mid TOTP step
constexpr std::int64_t kStep = 30;              // one TOTP period
constexpr std::int64_t kDay = 86400;
const std::string kLink = "/org/bluez/hci0/dev_test";
const std::string kFlooder = "/org/bluez/hci0/dev_66_66_66_66_66_66";

/// What the service handed back for one command.
struct Replied {
    core::protocol::Bytes frame;
    CommandOutcome outcome;
    int calls = 0;
};

class CommandServiceTest : public ::testing::Test {
  protected:
    void SetUp() override {
        // As the daemon does: the Runner's child sources need SIGCHLD blocked.
        loop::EventLoop::block_signals({SIGCHLD});
        ASSERT_EQ(::mkdir(actions_dir.c_str(), 0700), 0);
        // hello: records who ran it and with which arguments, then prints a greeting.
        script("hello", "printf '%s|%s\\n' \"$BLUEZSCRIPT_DEVICE_NAME\" \"$*\" > '" +
                            (dir / "marker-hello").string() + "'\necho \"hello $*\"\n");
        test::write_file(actions_dir / "hello.toml", "allow_args = true\n", 0600);
        script("other", "touch '" + (dir / "marker-other").string() + "'\necho other\n");
        script("fail", "touch '" + (dir / "marker-fail").string() + "'\necho broken\nexit 3\n");
        // wait: notes each start, then blocks on a FIFO the test opens when it wants.
        ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
        script("wait", "echo started >> '" + (dir / "marker-wait").string() + "'\nread line < '" +
                           fifo.string() + "'\necho \"waited $line\"\n");

        // slow: never released, so only its 1 s timeout ends it.
        script("slow", "touch '" + (dir / "marker-slow").string() + "'\nread line < '" +
                           fifo.string() + "'\n");
        test::write_file(actions_dir / "slow.toml", "timeout = 1\n", 0600);

        auto reg = actions::Registry::load(actions_dir, config::ActionsSection{});
        ASSERT_TRUE(reg.problems().empty()) << reg.problems().front().reason;
        ASSERT_EQ(reg.list().size(), 5U);
        registry = std::make_shared<actions::Registry>(std::move(reg));

        auto key = core::crypto::Fernet::from_base64(core::crypto::Fernet::generate_key_base64());
        ASSERT_TRUE(key);
        store::KeyRing ring;
        ring.add(1, std::move(*key));
        store = std::make_unique<store::Store>(db_path, std::move(ring));
        make_service();

        auto pairing =
            store->add_device("alice-phone", {"hello", "fail", "wait", "slow"}, now - 100);
        phone = Phone::from(pairing);
        device_hex = pairing.device.id_hex;
    }

    void make_service() {
        service = std::make_unique<CommandService>(
            *store, registry, runner, policy, [this] { return now; }, [this] { return synced; });
    }

    void script(const std::string& name, const std::string& body) {
        test::write_file(actions_dir / name, "#!/bin/sh\n" + body, 0700);
    }

    /// A live challenge for the test link, as the transport takes it from its book.
    std::optional<core::protocol::Nonce> challenge() {
        book.issue(kLink, now);
        return book.take(kLink, now);
    }

    /// Hands `frame` to the service; the reply may come at once or later.
    void send(const core::protocol::Bytes& frame, Replied& out,
              std::optional<core::protocol::Nonce> ch = std::nullopt,
              const std::string& link = kLink) {
        CommandContext ctx;
        ctx.transport = "ble";
        ctx.challenge = ch;
        ctx.link = link;
        ctx.address = address;
        service->handle(
            frame, ctx,
            [&out](const core::protocol::Bytes& response, const CommandOutcome& outcome) {
                out.frame = response;
                out.outcome = outcome;
                ++out.calls;
            });
    }

    /// Sends and runs the loop until the reply arrived.
    Replied send_and_wait(const core::protocol::Bytes& frame,
                          std::optional<core::protocol::Nonce> ch) {
        Replied r;
        send(frame, r, ch);
        loop.run_until([&] { return r.calls > 0; });
        EXPECT_EQ(r.calls, 1);
        return r;
    }

    /// A fresh, valid command from `phone` one second later (no cooldown).
    Replied command(const std::string& action, std::vector<std::string> args = {}) {
        now += 1;
        const auto ch = challenge();
        const auto frame = phone.encode(phone.request(action, now, *ch, std::move(args)));
        return send_and_wait(frame, ch);
    }

    core::protocol::Response decode(const Replied& r, const core::crypto::SecretBytes& key) {
        const auto d = core::protocol::decode_response(r.frame, key.view());
        EXPECT_TRUE(d.response) << d.error;
        EXPECT_TRUE(d.mac_ok) << "response MAC does not verify with the device's response key";
        return d.response.value_or(core::protocol::Response{});
    }

    std::vector<store::AuditEntry> audit() {
        store::AuditFilter f;
        f.limit = 0;
        return store->audit(f);
    }
    store::AuditEntry newest_audit() {
        const auto rows = audit();
        if (rows.empty()) {
            ADD_FAILURE() << "no audit rows";
            return {};
        }
        return rows.front();
    }

    /// A refused frame: the reply comes before the loop runs and nothing was started.
    Replied refused(const core::protocol::Bytes& frame, std::optional<core::protocol::Nonce> ch,
                    const std::string& link = kLink) {
        Replied r;
        send(frame, r, ch, link);
        EXPECT_EQ(r.calls, 1) << "a refusal must be answered at once";
        EXPECT_EQ(runner.active(), 0U);
        return r;
    }

    static std::array<std::uint8_t, core::protocol::kTagLen> tag_of(
        const core::protocol::Bytes& frame) {
        std::array<std::uint8_t, core::protocol::kTagLen> t{};
        std::copy_n(frame.end() - static_cast<std::ptrdiff_t>(core::protocol::kMacLen),
                    core::protocol::kTagLen, t.begin());
        return t;
    }

    void release_wait(const std::string& word) {
        // Blocks until the action has opened the FIFO for reading.
        const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        const std::string line = word + "\n";
        ASSERT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
        ::close(fd);
    }

    test::TempDir dir;
    fs::path actions_dir = dir / "actions";
    fs::path db_path = dir / "bluezscript.db";
    fs::path fifo = dir / "go.fifo";
    std::int64_t now = kStart;
    bool synced = true;
    core::auth::Policy policy;
    core::auth::ChallengeBook book{30};
    std::shared_ptr<const actions::Registry> registry;
    std::unique_ptr<store::Store> store;
    loop::EventLoop loop;
    actions::Runner runner{loop};
    std::unique_ptr<CommandService> service;
    Phone phone;
    std::string device_hex;
    std::string address;  ///< the sender's BLE address in the context (empty: unknown)
};

TEST_F(CommandServiceTest, AcceptedCommandRunsTheActionAndRepliesWithItsOutput) {
    now += kStep;
    const auto ch = challenge();
    const auto req = phone.request("hello", now, *ch, {"one", "two"});
    const auto frame = phone.encode(req);
    const Replied r = send_and_wait(frame, ch);

    EXPECT_EQ(test::read_file(dir / "marker-hello"), "alice-phone|one two\n");
    const auto resp = decode(r, phone.response_key());
    EXPECT_EQ(resp.status, Status::Ok);
    EXPECT_EQ(resp.exit_code, 0);
    EXPECT_EQ(resp.output, "hello one two\n");
    EXPECT_EQ(resp.counter, req.counter);
    EXPECT_EQ(resp.tag, tag_of(frame));

    EXPECT_EQ(r.outcome.status, Status::Ok);
    EXPECT_EQ(r.outcome.action, "hello");
    EXPECT_EQ(r.outcome.device_name, "alice-phone");

    const auto row = newest_audit();
    EXPECT_EQ(row.status, "ok");
    EXPECT_TRUE(row.completed);
    EXPECT_EQ(row.exit_code, 0);
    EXPECT_EQ(row.action, "hello");
    EXPECT_EQ(row.transport, "ble");
    EXPECT_EQ(row.device_id_hex, device_hex);
    EXPECT_EQ(row.device_name, "alice-phone");
    EXPECT_TRUE(row.duration_ms.has_value());
    EXPECT_EQ(store->replay_state(phone.id).last_counter, req.counter);
}

// The address is what lets a revocation remove the phone's BLE bond later.
TEST_F(CommandServiceTest, AnAcceptedCommandRecordsTheSendersAddressARefusedOneDoesNot) {
    address = "5a:5a:5a:5a:5a:01";
    store->revoke_device(phone.id, now);
    now += kStep;
    auto ch = challenge();
    refused(phone.encode(phone.request("hello", now, *ch)), ch);
    EXPECT_EQ(store->find_device(device_hex)->ble_address, std::nullopt);

    Phone second = Phone::from(store->add_device("bob-phone", {"hello"}, now));
    now += kStep;
    ch = challenge();
    const auto frame = second.encode(second.request("hello", now, *ch));
    EXPECT_EQ(send_and_wait(frame, ch).outcome.status, Status::Ok);
    EXPECT_EQ(store->find_device("bob-phone")->ble_address, "5A:5A:5A:5A:5A:01");
}

TEST_F(CommandServiceTest, FailingActionIsActionFailedWithItsExitCode) {
    const Replied r = command("fail");
    EXPECT_TRUE(fs::exists(dir / "marker-fail"));
    const auto resp = decode(r, phone.response_key());
    EXPECT_EQ(resp.status, Status::ActionFailed);
    EXPECT_EQ(resp.exit_code, 3);
    EXPECT_EQ(resp.output, "broken\n");
    EXPECT_EQ(r.outcome.status, Status::ActionFailed);

    const auto row = newest_audit();
    EXPECT_EQ(row.status, "action_failed");
    EXPECT_TRUE(row.completed);
    EXPECT_EQ(row.exit_code, 3);
    EXPECT_EQ(row.action, "fail");
}

TEST_F(CommandServiceTest, ActionTimeoutIsReportedAndAudited) {
    const Replied r = command("slow");
    EXPECT_TRUE(fs::exists(dir / "marker-slow"));
    const auto resp = decode(r, phone.response_key());
    EXPECT_EQ(resp.status, Status::ActionTimeout);
    EXPECT_EQ(resp.exit_code, -SIGTERM);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "action_timeout");
    EXPECT_TRUE(row.completed);
}

// When the audit row cannot be completed the action has already run: the phone still
// gets its result and the row stays "running" rather than claiming an outcome.
TEST_F(CommandServiceTest, AuditCompletionFailureStillReplies) {
    store::sql::Db raw(db_path);
    raw.exec(
        "CREATE TRIGGER fail_complete BEFORE UPDATE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        "test trigger");
    const Replied r = command("hello");
    EXPECT_TRUE(fs::exists(dir / "marker-hello"));
    EXPECT_EQ(decode(r, phone.response_key()).status, Status::Ok);
    const auto row = newest_audit();
    EXPECT_FALSE(row.completed);
    EXPECT_FALSE(row.exit_code.has_value());
}

// A frame whose MAC fails earns no MACed answer: otherwise a forger could obtain a
// genuine refusal carrying the phone's counter and tag.
TEST_F(CommandServiceTest, BadMacIsRefusedAtOnceWithAZeroMacReply) {
    now += kStep;
    const auto ch = challenge();
    const auto req = phone.request("hello", now, *ch);
    auto frame = phone.encode(req);
    frame.back() ^= 0x01;
    const Replied r = refused(frame, ch);

    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    const auto d = core::protocol::decode_response(r.frame, phone.response_key().view());
    ASSERT_TRUE(d.response) << d.error;
    EXPECT_FALSE(d.mac_ok);
    EXPECT_EQ(d.response->mac, core::protocol::Mac{});
    const auto& resp = *d.response;
    EXPECT_EQ(resp.status, Status::BadMac);
    EXPECT_EQ(resp.counter, req.counter);
    EXPECT_EQ(resp.tag, tag_of(frame));
    EXPECT_EQ(resp.output, core::protocol::status_message(Status::BadMac));
    EXPECT_EQ(r.outcome.status, Status::BadMac);
    EXPECT_EQ(r.outcome.device_name, "alice-phone");

    const auto row = newest_audit();
    EXPECT_EQ(row.status, "bad_mac");
    EXPECT_EQ(row.device_id_hex, device_hex);
    EXPECT_EQ(row.action, "hello");
    EXPECT_FALSE(row.detail.empty());
    EXPECT_FALSE(row.exit_code.has_value());
    EXPECT_EQ(store->replay_state(phone.id).last_counter, 0U);
}

TEST_F(CommandServiceTest, ReplayOfTheSameFrameIsRefusedAndRunsNothing) {
    now += kStep;
    auto ch = challenge();
    const auto frame = phone.encode(phone.request("hello", now, *ch));
    const Replied first = send_and_wait(frame, ch);
    ASSERT_EQ(decode(first, phone.response_key()).status, Status::Ok);
    fs::remove(dir / "marker-hello");

    // The same bytes again on a link that has a fresh live challenge.
    ch = challenge();
    const Replied r = refused(frame, ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    const auto resp = decode(r, phone.response_key());
    EXPECT_EQ(resp.status, Status::Replayed);
    EXPECT_EQ(resp.counter, 1U);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "replayed");
    EXPECT_FALSE(row.detail.empty());
    EXPECT_EQ(audit().size(), 2U);
}

TEST_F(CommandServiceTest, MissingChallengeIsRefused) {
    now += kStep;
    const auto ch = challenge();
    // The link's challenge was used up (or never issued): the transport passes none.
    const Replied r = refused(phone.encode(phone.request("hello", now, *ch)), std::nullopt);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    EXPECT_EQ(decode(r, phone.response_key()).status, Status::Replayed);
    EXPECT_EQ(newest_audit().status, "replayed");
}

TEST_F(CommandServiceTest, ArgumentsOutsideThePatternAreRefused) {
    now += kStep;
    const auto ch = challenge();
    const Replied r =
        refused(phone.encode(phone.request("hello", now, *ch, {"ok", "; rm -rf /"})), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    EXPECT_EQ(decode(r, phone.response_key()).status, Status::BadArguments);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "bad_arguments");
    EXPECT_THAT(row.detail, ::testing::HasSubstr("argument 1"));
}

TEST_F(CommandServiceTest, UnknownActionIsRefused) {
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(phone.encode(phone.request("nosuch", now, *ch)), ch);
    EXPECT_EQ(decode(r, phone.response_key()).status, Status::UnknownAction);
    EXPECT_EQ(r.outcome.action, "nosuch");
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "unknown_action");
    EXPECT_EQ(row.action, "nosuch");
}

TEST_F(CommandServiceTest, ActionNotPermittedForTheDeviceIsRefused) {
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(phone.encode(phone.request("other", now, *ch)), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-other"));
    EXPECT_EQ(decode(r, phone.response_key()).status, Status::NotPermitted);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "not_permitted");
    EXPECT_EQ(row.action, "other");
    EXPECT_EQ(row.device_name, "alice-phone");
}

TEST_F(CommandServiceTest, RevokedDeviceIsRefusedWithAZeroMacReply) {
    store->revoke_device(phone.id, now);
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(phone.encode(phone.request("hello", now, *ch)), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    // Refused before its MAC is checked, so the answer is not MACed.
    const auto d = core::protocol::decode_response(r.frame, phone.response_key().view());
    ASSERT_TRUE(d.response) << d.error;
    EXPECT_FALSE(d.mac_ok);
    EXPECT_EQ(d.response->status, Status::Revoked);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "revoked");
    EXPECT_EQ(row.device_id_hex, device_hex);
}

TEST_F(CommandServiceTest, UnknownDeviceGetsAZeroMac) {
    Phone stranger = Phone::stranger();
    now += kStep;
    const auto ch = challenge();
    const auto frame = stranger.encode(stranger.request("hello", now, *ch));
    const Replied r = refused(frame, ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));

    const auto d = core::protocol::decode_response(r.frame, stranger.response_key().view());
    ASSERT_TRUE(d.response) << d.error;
    EXPECT_FALSE(d.mac_ok);
    EXPECT_EQ(d.response->mac, core::protocol::Mac{});
    EXPECT_EQ(d.response->status, Status::UnknownDevice);
    EXPECT_EQ(d.response->counter, 1U);
    EXPECT_TRUE(r.outcome.device_name.empty());

    const auto row = newest_audit();
    EXPECT_EQ(row.status, "unknown_device");
    EXPECT_EQ(row.device_id_hex, core::crypto::hex_encode(stranger.id));
    EXPECT_FALSE(row.device_name.has_value());
}

// A write that fails inside authorize (a trigger installed by a second connection,
// as another process could) must leave the action unrun and answer "internal".
TEST_F(CommandServiceTest, StoreWriteFailureIsInternalAndTheActionDoesNotRun) {
    store::sql::Db raw(db_path);
    raw.exec(
        "CREATE TRIGGER fail_update BEFORE UPDATE ON devices "
        "BEGIN SELECT RAISE(ABORT, 'read-only medium'); END;",
        "test trigger");
    now += kStep;
    const auto ch = challenge();
    const auto req = phone.request("hello", now, *ch);
    const Replied r = refused(phone.encode(req), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));

    const auto resp = decode(r, phone.response_key());
    EXPECT_EQ(resp.status, Status::Internal);
    EXPECT_EQ(resp.counter, req.counter);
    EXPECT_EQ(r.outcome.status, Status::Internal);
    EXPECT_NE(r.outcome.detail.find("read-only medium"), std::string::npos) << r.outcome.detail;
    EXPECT_EQ(store->replay_state(phone.id).last_counter, 0U);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "internal");

    // Once writes work again the service runs commands as before.
    raw.exec("DROP TRIGGER fail_update", "test trigger");
    const Replied ok = command("hello");
    EXPECT_EQ(decode(ok, phone.response_key()).status, Status::Ok);
    EXPECT_TRUE(fs::exists(dir / "marker-hello"));
}

TEST_F(CommandServiceTest, AuditInsertFailureAlsoStopsTheAction) {
    store::sql::Db raw(db_path);
    raw.exec(
        "CREATE TRIGGER fail_audit BEFORE INSERT ON audit "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        "test trigger");
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(phone.encode(phone.request("hello", now, *ch)), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    EXPECT_EQ(decode(r, phone.response_key()).status, Status::Internal);
    EXPECT_TRUE(audit().empty());
}

TEST_F(CommandServiceTest, SecondCommandWhileTheActionRunsIsBusy) {
    now += kStep;
    auto ch = challenge();
    Replied first;
    send(phone.encode(phone.request("wait", now, *ch)), first, ch);
    ASSERT_EQ(first.calls, 0) << "an accepted command replies when its action ends";
    ASSERT_TRUE(runner.running("wait"));

    now += kStep;
    ch = challenge();
    Replied second;
    send(phone.encode(phone.request("wait", now, *ch)), second, ch);
    ASSERT_EQ(second.calls, 1) << "a busy refusal is answered at once";
    const auto busy = decode(second, phone.response_key());
    EXPECT_EQ(busy.status, Status::ActionBusy);
    EXPECT_EQ(busy.counter, 2U);
    EXPECT_EQ(second.outcome.status, Status::ActionBusy);
    const auto busy_row = newest_audit();
    EXPECT_EQ(busy_row.status, "action_busy");
    EXPECT_TRUE(busy_row.completed);
    // Nothing ran for this command, so there is no exit status to record.
    EXPECT_FALSE(busy_row.exit_code.has_value()) << *busy_row.exit_code;

    release_wait("go");
    loop.run_until([&] { return first.calls > 0; });
    const auto done = decode(first, phone.response_key());
    EXPECT_EQ(done.status, Status::Ok);
    EXPECT_EQ(done.output, "waited go\n");
    EXPECT_EQ(done.counter, 1U);
    // Exactly one run started.
    EXPECT_EQ(test::read_file(dir / "marker-wait"), "started\n");

    const auto rows = audit();
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(rows[1].status, "ok");  // the first command, completed last
    EXPECT_TRUE(rows[1].completed);
    EXPECT_EQ(rows[1].exit_code, 0);
}

// --- no cooldown, limits that only hurt the guilty, the clock ---

TEST_F(CommandServiceTest, TwoCommandsOneSecondApartBothRun) {
    const Replied a = command("hello", {"a"});
    EXPECT_EQ(decode(a, phone.response_key()).status, Status::Ok);
    const Replied b = command("hello", {"b"});
    EXPECT_EQ(decode(b, phone.response_key()).status, Status::Ok);
    EXPECT_EQ(test::read_file(dir / "marker-hello"), "alice-phone|b\n");
    EXPECT_EQ(store->replay_state(phone.id).last_counter, 2U);
}

/// A frame from a device the Pi never paired (unknown_device).
core::protocol::Bytes stranger_frame(std::int64_t now) {
    Phone s = Phone::stranger();
    return s.frame("hello", now, core::protocol::Nonce{});
}

// More than link_max_failures_per_minute unauthenticated failures: that link's
// frames are refused unread, without a row each; the owner on another link is
// served throughout; one summary row accounts for them when the minute ends.
TEST_F(CommandServiceTest, AFloodingLinkIsRefusedCheaplyAndSummarised) {
    for (int i = 0; i < 11; ++i) {
        const Replied r = refused(stranger_frame(now), std::nullopt, kFlooder);
        EXPECT_EQ(r.outcome.status, Status::UnknownDevice) << i;
        EXPECT_FALSE(r.outcome.summarised);
    }
    EXPECT_EQ(audit().size(), 11U);  // each decoded failure has its row
    for (int i = 0; i < 500; ++i) {
        const Replied r = refused(stranger_frame(now), std::nullopt, kFlooder);
        ASSERT_EQ(r.outcome.status, Status::RateLimited) << i;
        EXPECT_TRUE(r.outcome.summarised);
        const auto d = core::protocol::decode_response(r.frame, {});
        ASSERT_TRUE(d.response);
        EXPECT_EQ(d.response->status, Status::RateLimited);
        EXPECT_EQ(d.response->counter, 0U);  // nothing of the frame was trusted
        if (i % 100 == 0) {
            // The owner's phone on its own link is never held up by the flood.
            EXPECT_EQ(decode(command("hello"), phone.response_key()).status, Status::Ok);
        }
    }
    EXPECT_EQ(audit().size(), 11U + 5U);    // no row per flood frame: only the owner's
    EXPECT_TRUE(service->flush().empty());  // the minute has not ended

    now += 60;
    const auto flushed = service->flush();
    ASSERT_EQ(flushed.size(), 1U);
    EXPECT_FALSE(flushed[0].error);
    EXPECT_EQ(flushed[0].detail,
              "500 frames refused in " + std::to_string(60 + 5) + " s from " + kFlooder);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "rate_limited");
    EXPECT_EQ(row.detail, flushed[0].detail);
    EXPECT_EQ(row.transport, "ble");
    EXPECT_EQ(row.time, now);
    // A new minute: the link's frames are read again.
    EXPECT_EQ(refused(stranger_frame(now), std::nullopt, kFlooder).outcome.status,
              Status::UnknownDevice);
}

// Writes refused before they formed a frame (bad offsets) count like frames: a
// flood of them costs one summary row, not a row each.
TEST_F(CommandServiceTest, BadWritesCountAgainstTheLinkAndAreSummarised) {
    using BadWrite = CommandService::BadWrite;
    for (int i = 0; i < 11; ++i) {
        EXPECT_EQ(service->bad_write(kFlooder, "flooder", "command write refused: bad offset"),
                  BadWrite::Audited)
            << i;
    }
    EXPECT_EQ(audit().size(), 11U);
    EXPECT_EQ(newest_audit().status, "malformed");
    EXPECT_EQ(newest_audit().detail, "command write refused: bad offset (from flooder)");
    for (int i = 0; i < 200; ++i) {
        ASSERT_EQ(service->bad_write(kFlooder, "flooder", "command write refused: bad offset"),
                  BadWrite::Summarised);
    }
    EXPECT_EQ(audit().size(), 11U);
    // Its frames are refused unread too, while the owner is served.
    EXPECT_EQ(refused(stranger_frame(now), std::nullopt, kFlooder).outcome.status,
              Status::RateLimited);
    EXPECT_EQ(decode(command("hello"), phone.response_key()).status, Status::Ok);
    now += 60;
    const auto flushed = service->flush();
    ASSERT_EQ(flushed.size(), 1U);
    // The owner's command moved the test clock one second.
    EXPECT_EQ(flushed[0].detail, "201 frames refused in 61 s from " + std::string(kFlooder));
}

TEST_F(CommandServiceTest, ReplaysCountAgainstTheLink) {
    const auto ch = challenge();
    const auto frame = phone.encode(phone.request("hello", now, *ch));
    ASSERT_EQ(decode(send_and_wait(frame, ch), phone.response_key()).status, Status::Ok);
    for (int i = 0; i < 11; ++i) {
        EXPECT_EQ(refused(frame, challenge(), kFlooder).outcome.status, Status::Replayed) << i;
    }
    EXPECT_EQ(refused(frame, challenge(), kFlooder).outcome.status, Status::RateLimited);
}

// Clock refusals of authentic frames and action refusals never count.
TEST_F(CommandServiceTest, ClockAndActionRefusalsDoNotCount) {
    for (int i = 0; i < 30; ++i) {
        const auto ch = challenge();
        auto req = phone.request(i % 2 == 0 ? "hello" : "nosuch", now, *ch);
        if (i % 2 == 0) {
            req.timestamp = now - 1000;  // stale: the phone's clock is wrong
        }
        const Replied r = refused(phone.encode(req), ch);
        EXPECT_EQ(r.outcome.status, i % 2 == 0 ? Status::StaleTimestamp : Status::UnknownAction);
    }
    EXPECT_FALSE(service->throttle().link_limited(kLink, now));
    EXPECT_FALSE(service->throttle().pi_wide_limited(now));
    EXPECT_EQ(decode(command("hello"), phone.response_key()).status, Status::Ok);
}

// The Pi-wide limit: unauthenticated frames from anywhere are refused without a
// write; a frame that authenticates is served as usual.
TEST_F(CommandServiceTest, PiWideLimitLetsAuthenticFramesThrough) {
    policy.limits.link_max_failures_per_minute = 10000;
    make_service();
    for (int i = 0; i < 31; ++i) {
        refused(stranger_frame(now), std::nullopt, "/org/bluez/hci0/dev_" + std::to_string(i));
    }
    ASSERT_TRUE(service->throttle().pi_wide_limited(now));
    const auto rows_before = audit().size();
    ASSERT_EQ(rows_before, 31U);

    Phone impostor = phone;
    impostor.secret = core::crypto::SecretBytes(core::crypto::random_bytes(32));
    for (int i = 0; i < 40; ++i) {
        const auto ch = challenge();
        const auto frame =
            i % 2 == 0 ? stranger_frame(now) : impostor.encode(impostor.request("hello", now, *ch));
        const Replied r = refused(frame, ch, "/org/bluez/hci0/dev_x" + std::to_string(i));
        EXPECT_EQ(r.outcome.status, Status::RateLimited) << i;
        EXPECT_TRUE(r.outcome.summarised);
    }
    EXPECT_EQ(audit().size(), rows_before);  // not one write for them

    const Replied ok = command("hello", {"still"});
    EXPECT_EQ(decode(ok, phone.response_key()).status, Status::Ok);
    EXPECT_EQ(test::read_file(dir / "marker-hello"), "alice-phone|still\n");
    // An authentic frame that is refused for another reason still gets its own answer.
    EXPECT_EQ(refused(phone.encode(phone.request("nosuch", now, *challenge())), std::nullopt)
                  .outcome.status,
              Status::Replayed);  // no challenge passed: refused after the MAC, as usual

    const auto flushed = service->flush(/*all=*/true);
    ASSERT_EQ(flushed.size(), 1U);
    EXPECT_EQ(flushed[0].detail,
              "40 frames refused in 1 s by the Pi-wide limit on unauthenticated frames");
    EXPECT_EQ(newest_audit().detail, flushed[0].detail);
}

// A Pi without a synchronised clock, three days behind: the phone's authentic
// timestamp moves the verification clock; the command runs at once.
TEST_F(CommandServiceTest, UnsynchronisedClockIsAdvancedByTheFirstCommand) {
    const std::int64_t phone_now = now;
    now -= 3 * kDay;  // the Pi's system clock after a cold boot
    synced = false;
    make_service();
    const auto ch = challenge();
    const auto frame = phone.encode(phone.request("hello", phone_now, *ch));
    const Replied r = send_and_wait(frame, ch);
    EXPECT_EQ(decode(r, phone.response_key()).status, Status::Ok);
    ASSERT_TRUE(r.outcome.clock_advanced_by);
    EXPECT_EQ(*r.outcome.clock_advanced_by, static_cast<std::uint64_t>(3 * kDay));

    const auto clock = service->clock();
    EXPECT_FALSE(clock.synchronized);
    EXPECT_EQ(clock.now, phone_now);
    EXPECT_EQ(clock.offset, static_cast<std::uint64_t>(3 * kDay));
    const auto rows = audit();
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(rows[1].detail,
              "clock advanced by 3 d from the timestamp of device 'alice-phone' (the Pi's clock "
              "is not synchronised)");
    EXPECT_EQ(rows[0].time, phone_now);  // the command's row is at V

    // The same frame again is a replay, whatever the clock did.
    const Replied again = refused(frame, ch);
    EXPECT_EQ(again.outcome.status, Status::Replayed);
    // A restart keeps V at the floor: never earlier than a time already seen.
    make_service();
    EXPECT_GE(service->clock().now, phone_now);
}

TEST_F(CommandServiceTest, UnsynchronisedClockNeverGoesBack) {
    synced = false;
    make_service();
    const std::int64_t v = service->clock().now;
    now -= 500;  // the system clock stepped back
    EXPECT_EQ(service->clock().now, v);
    // A phone whose clock is behind V by more than the skew is stale.
    const auto ch = challenge();
    const Replied r = refused(phone.encode(phone.request("hello", now - 400, *ch)), ch);
    EXPECT_EQ(r.outcome.status, Status::StaleTimestamp);
    EXPECT_NE(r.outcome.detail.find("s behind the Pi's clock"), std::string::npos)
        << r.outcome.detail;
    EXPECT_FALSE(r.outcome.clock_advanced_by);
}

}  // namespace
}  // namespace bzs::service
