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
constexpr std::int64_t kStep = 30;  // one TOTP period: each accepted command needs its own
const std::string kLink = "/org/bluez/hci0/dev_test";

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
        service = std::make_unique<CommandService>(*store, registry, runner, core::auth::Policy{},
                                                   [this] { return now; });

        auto pairing =
            store->add_device("alice-phone", {"hello", "fail", "wait", "slow"}, now - 100);
        phone = Phone::from(pairing);
        device_hex = pairing.device.id_hex;
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
              std::optional<core::protocol::Nonce> ch = std::nullopt) {
        CommandContext ctx;
        ctx.transport = "ble";
        ctx.challenge = ch;
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

    /// A fresh, valid command from `phone` at the next TOTP step.
    Replied command(const std::string& action, std::vector<std::string> args = {}) {
        now += kStep;
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
    Replied refused(const core::protocol::Bytes& frame, std::optional<core::protocol::Nonce> ch) {
        Replied r;
        send(frame, r, ch);
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

}  // namespace
}  // namespace bzs::service
