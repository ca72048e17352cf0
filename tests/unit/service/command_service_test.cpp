// SPDX-License-Identifier: GPL-3.0-or-later
// CommandService end to end on real pieces: a Store on a SQLite file, a Registry over
// a folder of shell scripts, a Runner on a real EventLoop, and protocol v2 frames sealed
// the way a phone seals them (after a real pairing exchange). Each case checks the
// reply frame (opened by the phone, or a plain refusal), what the action did (a marker
// file) and the audit row.
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
#include "core/protocol/catalogue.h"
#include "core/protocol/protocol.h"
#include "core/protocol/sealed.h"
#include "loop/event_loop.h"
#include "pair_device.h"
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

/// What the service handed back for one request.
struct Replied {
    core::protocol::Bytes request;  ///< the frame that was sent
    core::protocol::Bytes frame;    ///< the response
    CommandOutcome outcome;
    int calls = 0;
};

/// An opened command result (type 0x81).
struct Result {
    Status status = Status::Internal;
    std::uint64_t counter = 0;
    std::int64_t pi_time = 0;
    bool synced = false;
    std::int32_t exit_code = 0;
    std::string output;
};

/// The status and counter of a plain refusal (type 0xFF), checking its form.
std::pair<Status, std::uint64_t> plain(const Replied& r) {
    EXPECT_EQ(r.frame.size(), core::protocol::kRefusalLen);
    const auto o = core::protocol::open_response(r.frame, {}, core::protocol::SealTag{});
    EXPECT_TRUE(o.response) << o.error;
    if (!o.response) {
        return {Status::Internal, 0};
    }
    EXPECT_EQ(o.response->type, core::protocol::ResponseType::Refusal);
    EXPECT_FALSE(o.response->authentic);
    return {o.response->head.status, o.response->counter};
}

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
        // level: what the catalogue shows of an action's metadata.
        script("level", "echo \"level $1\"\n");
        test::write_file(actions_dir / "level.toml",
                         "description = \"Heater level\"\nconfirm = true\nallow_args = true\n"
                         "arg_choices = [\"low\", \"high\"]\nmax_args = 1\n",
                         0600);

        auto reg = actions::Registry::load(actions_dir, config::ActionsSection{});
        ASSERT_TRUE(reg.problems().empty()) << reg.problems().front().reason;
        ASSERT_EQ(reg.list().size(), 6U);
        registry = std::make_shared<actions::Registry>(std::move(reg));

        auto key = core::crypto::Fernet::from_base64(core::crypto::Fernet::generate_key_base64());
        ASSERT_TRUE(key);
        store::KeyRing ring;
        ring.add(1, std::move(*key));
        store = std::make_unique<store::Store>(db_path, std::move(ring));
        make_service();

        phone =
            test::pair_device(*store, "alice-phone", {"hello", "fail", "wait", "slow"}, now - 100);
        device_hex = core::crypto::hex_encode(phone.id);
        pairing_rows = store->audit({}).size();  // the exchange's "paired" row
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
        out.request = frame;
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
        const auto frame = phone.frame(action, now, *ch, std::move(args));
        return send_and_wait(frame, ch);
    }

    /// `b` sealed by `phone` under its next counter.
    static core::protocol::Bytes seal(Phone& ph, const core::protocol::CommandBody& b) {
        return ph.seal(core::protocol::RequestType::Command, core::protocol::encode_body(b),
                       ++ph.counter);
    }

    /// The phone opens the command result it got for `r.request`.
    static Result decode(const Replied& r, const Phone& ph) {
        const auto o = core::protocol::open_response(r.frame, ph.response_key().view(),
                                                     core::protocol::request_tag(r.request));
        EXPECT_TRUE(o.response) << o.error;
        if (!o.response) {
            return {};
        }
        EXPECT_TRUE(o.response->authentic) << "the phone cannot open the answer";
        EXPECT_EQ(o.response->type, core::protocol::ResponseType::CommandResult);
        Result res;
        res.status = o.response->head.status;
        res.counter = o.response->counter;
        res.pi_time = o.response->head.pi_time;
        res.synced = o.response->head.synced;
        const auto c = core::protocol::decode_command_result(o.response->rest);
        EXPECT_TRUE(c);
        if (c) {
            res.exit_code = c->exit_code;
            res.output = c->output;
        }
        return res;
    }
    Result decode(const Replied& r) const { return decode(r, phone); }

    /// Audit rows newest first, without the pairing's.
    std::vector<store::AuditEntry> audit() {
        store::AuditFilter f;
        f.limit = 0;
        auto rows = store->audit(f);
        EXPECT_GE(rows.size(), pairing_rows);
        rows.resize(rows.size() - std::min(rows.size(), pairing_rows));
        return rows;
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
    std::size_t pairing_rows = 0;
};

TEST_F(CommandServiceTest, AcceptedCommandRunsTheActionAndRepliesWithItsOutput) {
    now += kStep;
    const auto ch = challenge();
    const auto frame = phone.frame("hello", now, *ch, {"one", "two"});
    const Replied r = send_and_wait(frame, ch);

    EXPECT_EQ(test::read_file(dir / "marker-hello"), "alice-phone|one two\n");
    const Result resp = decode(r);
    EXPECT_EQ(resp.status, Status::Ok);
    EXPECT_EQ(resp.exit_code, 0);
    EXPECT_EQ(resp.output, "hello one two\n");
    EXPECT_EQ(resp.counter, 1U);
    // Every sealed answer carries the Pi's verification clock and its sync state.
    EXPECT_EQ(resp.pi_time, now);
    EXPECT_TRUE(resp.synced);

    EXPECT_EQ(r.outcome.kind, RequestKind::Command);
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
    EXPECT_EQ(store->replay_state(phone.id).last_counter, 1U);
}

// The answer opens only with this phone's response key and only as the answer to
// this request.
TEST_F(CommandServiceTest, OnlyThePhoneThatAskedCanOpenTheAnswer) {
    const Replied r = command("hello");
    ASSERT_EQ(decode(r).status, Status::Ok);
    const Phone other = Phone::stranger();
    const auto o = core::protocol::open_response(r.frame, other.response_key().view(),
                                                 core::protocol::request_tag(r.request));
    ASSERT_TRUE(o.response) << o.error;
    EXPECT_FALSE(o.response->authentic);
    // Bound to the request: the same key with another request's tag does not open it.
    core::protocol::SealTag wrong = core::protocol::request_tag(r.request);
    wrong[0] ^= 1;
    const auto w = core::protocol::open_response(r.frame, phone.response_key().view(), wrong);
    ASSERT_TRUE(w.response) << w.error;
    EXPECT_FALSE(w.response->authentic);
}

// The address is what lets a revocation remove the phone's BLE bond later.
TEST_F(CommandServiceTest, AnAcceptedCommandRecordsTheSendersAddressARefusedOneDoesNot) {
    address = "5a:5a:5a:5a:5a:01";
    store->revoke_device(phone.id, now);
    now += kStep;
    auto ch = challenge();
    refused(phone.frame("hello", now, *ch), ch);
    EXPECT_EQ(store->find_device(device_hex)->ble_address, std::nullopt);

    Phone second = test::pair_device(*store, "bob-phone", {"hello"}, now);
    now += kStep;
    ch = challenge();
    const auto frame = second.frame("hello", now, *ch);
    EXPECT_EQ(send_and_wait(frame, ch).outcome.status, Status::Ok);
    EXPECT_EQ(store->find_device("bob-phone")->ble_address, "5A:5A:5A:5A:5A:01");
}

TEST_F(CommandServiceTest, FailingActionIsActionFailedWithItsExitCode) {
    const Replied r = command("fail");
    EXPECT_TRUE(fs::exists(dir / "marker-fail"));
    const Result resp = decode(r);
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
    const Result resp = decode(r);
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
    EXPECT_EQ(decode(r).status, Status::Ok);
    const auto row = newest_audit();
    EXPECT_FALSE(row.completed);
    EXPECT_FALSE(row.exit_code.has_value());
}

// A frame whose seal does not open earns no sealed answer: a plain 13-byte refusal
// that carries nothing secret and proves nothing.
TEST_F(CommandServiceTest, BadMacIsRefusedAtOnceWithAPlainRefusal) {
    now += kStep;
    const auto ch = challenge();
    auto frame = phone.frame("hello", now, *ch);
    frame.back() ^= 0x01;
    const Replied r = refused(frame, ch);

    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    const auto [status, counter] = plain(r);
    EXPECT_EQ(status, Status::BadMac);
    EXPECT_EQ(counter, 1U);  // the header's counter, echoed
    EXPECT_EQ(r.outcome.status, Status::BadMac);
    EXPECT_EQ(r.outcome.device_name, "alice-phone");
    EXPECT_EQ(r.outcome.action, "");  // sealed: nobody read it

    const auto row = newest_audit();
    EXPECT_EQ(row.status, "bad_mac");
    EXPECT_EQ(row.device_id_hex, device_hex);
    EXPECT_FALSE(row.detail.empty());
    EXPECT_FALSE(row.exit_code.has_value());
    EXPECT_EQ(store->replay_state(phone.id).last_counter, 0U);
}

TEST_F(CommandServiceTest, ReplayOfTheSameFrameIsRefusedSealedAndRunsNothing) {
    now += kStep;
    auto ch = challenge();
    const auto frame = phone.frame("hello", now, *ch);
    const Replied first = send_and_wait(frame, ch);
    ASSERT_EQ(decode(first).status, Status::Ok);
    fs::remove(dir / "marker-hello");

    // The same bytes again on a link that has a fresh live challenge.
    ch = challenge();
    const Replied r = refused(frame, ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    const Result resp = decode(r);
    EXPECT_EQ(resp.status, Status::Replayed);
    EXPECT_EQ(resp.counter, 1U);
    // A refusal that authenticated: exit code 0 and the status's sentence.
    EXPECT_EQ(resp.exit_code, 0);
    EXPECT_EQ(resp.output, core::protocol::status_message(Status::Replayed));
    EXPECT_EQ(resp.pi_time, now);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "replayed");
    EXPECT_FALSE(row.detail.empty());
    EXPECT_EQ(audit().size(), 2U);
}

TEST_F(CommandServiceTest, MissingChallengeIsRefused) {
    now += kStep;
    const auto ch = challenge();
    // The link's challenge was used up (or never issued): the transport passes none.
    const Replied r = refused(phone.frame("hello", now, *ch), std::nullopt);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    EXPECT_EQ(decode(r).status, Status::Replayed);
    EXPECT_EQ(newest_audit().status, "replayed");
}

TEST_F(CommandServiceTest, ArgumentsOutsideThePatternAreRefused) {
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(phone.frame("hello", now, *ch, {"ok", "; rm -rf /"}), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    const Result resp = decode(r);
    EXPECT_EQ(resp.status, Status::BadArguments);
    EXPECT_EQ(resp.output, core::protocol::status_message(Status::BadArguments));
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "bad_arguments");
    EXPECT_THAT(row.detail, ::testing::HasSubstr("argument 1"));
}

TEST_F(CommandServiceTest, ArgumentsOutsideTheChoicesAreRefused) {
    store->allow_actions(phone.id, {"level"});
    now += kStep;
    auto ch = challenge();
    const Replied r = refused(phone.frame("level", now, *ch, {"medium"}), ch);
    EXPECT_EQ(decode(r).status, Status::BadArguments);
    EXPECT_THAT(newest_audit().detail, ::testing::HasSubstr("not one of the action's choices"));
    const Replied ok = command("level", {"high"});
    const Result res = decode(ok);
    EXPECT_EQ(res.status, Status::Ok);
    EXPECT_EQ(res.output, "level high\n");
}

TEST_F(CommandServiceTest, StaleAndBadTotpAreSealedSoThePhoneLearnsWhy) {
    now += kStep;
    auto ch = challenge();
    auto b = phone.body("hello", now, *ch);
    b.timestamp = now - 1000;
    const Replied stale = refused(seal(phone, b), ch);
    const Result st = decode(stale);
    EXPECT_EQ(st.status, Status::StaleTimestamp);
    EXPECT_EQ(st.pi_time, now);  // "your phone's clock is 1000 s behind"
    EXPECT_TRUE(st.synced);
    EXPECT_EQ(st.output, core::protocol::status_message(Status::StaleTimestamp));

    ch = challenge();
    b = phone.body("hello", now, *ch);
    b.totp = (b.totp + 1) % 1'000'000;
    const Replied totp = refused(seal(phone, b), ch);
    EXPECT_EQ(decode(totp).status, Status::BadTotp);
    EXPECT_EQ(newest_audit().status, "bad_totp");
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
}

TEST_F(CommandServiceTest, AMalformedBodyThatOpenedIsAnsweredSealed) {
    now += kStep;
    const auto ch = challenge();
    auto plaintext = core::protocol::encode_body(phone.body("hello", now, *ch));
    plaintext.push_back(0);
    const Replied r =
        refused(phone.seal(core::protocol::RequestType::Command, plaintext, ++phone.counter), ch);
    const Result res = decode(r);
    EXPECT_EQ(res.status, Status::Malformed);
    EXPECT_EQ(res.counter, 1U);
    EXPECT_EQ(newest_audit().status, "malformed");
}

// A header the Pi cannot read gets a plain refusal: malformed or unknown_version.
TEST_F(CommandServiceTest, ABadHeaderIsRefusedPlain) {
    const Replied junk = refused(core::protocol::Bytes{0x02, 0x01, 0x00}, std::nullopt);
    EXPECT_EQ(plain(junk), (std::pair<Status, std::uint64_t>{Status::Malformed, 0}));
    auto v1 = phone.frame("hello", now, core::protocol::Nonce{});
    v1[0] = 0x01;
    const Replied old = refused(v1, std::nullopt);
    EXPECT_EQ(plain(old).first, Status::UnknownVersion);
    EXPECT_EQ(newest_audit().status, "unknown_version");
}

TEST_F(CommandServiceTest, UnknownActionIsRefused) {
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(phone.frame("nosuch", now, *ch), ch);
    EXPECT_EQ(decode(r).status, Status::UnknownAction);
    EXPECT_EQ(r.outcome.action, "nosuch");
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "unknown_action");
    EXPECT_EQ(row.action, "nosuch");
}

TEST_F(CommandServiceTest, ActionNotPermittedForTheDeviceIsRefused) {
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(phone.frame("other", now, *ch), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-other"));
    EXPECT_EQ(decode(r).status, Status::NotPermitted);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "not_permitted");
    EXPECT_EQ(row.action, "other");
    EXPECT_EQ(row.device_name, "alice-phone");
}

TEST_F(CommandServiceTest, RevokedDeviceIsRefusedPlain) {
    store->revoke_device(phone.id, now);
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(phone.frame("hello", now, *ch), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    // Refused before its seal is opened, so the answer is not sealed.
    EXPECT_EQ(plain(r), (std::pair<Status, std::uint64_t>{Status::Revoked, 1}));
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "revoked");
    EXPECT_EQ(row.device_id_hex, device_hex);
}

TEST_F(CommandServiceTest, UnknownDeviceIsRefusedPlain) {
    Phone stranger = Phone::stranger();
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(stranger.frame("hello", now, *ch), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    EXPECT_EQ(plain(r), (std::pair<Status, std::uint64_t>{Status::UnknownDevice, 1}));
    EXPECT_TRUE(r.outcome.device_name.empty());

    const auto row = newest_audit();
    EXPECT_EQ(row.status, "unknown_device");
    EXPECT_EQ(row.device_id_hex, core::crypto::hex_encode(stranger.id));
    EXPECT_FALSE(row.device_name.has_value());
}

TEST_F(CommandServiceTest, APendingDeviceIsNotPairedYetAndRefusedPlain) {
    const auto p = store->add_device("carol-phone", {"hello"}, now, 300);
    Phone guess = Phone::stranger();
    guess.id = p.device.id;
    const auto ch = challenge();
    const Replied r = refused(guess.frame("hello", now, *ch), ch);
    EXPECT_EQ(plain(r).first, Status::UnknownDevice);
    EXPECT_THAT(r.outcome.detail, ::testing::HasSubstr("not paired yet"));
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
}

// A write that fails inside authorize (a trigger installed by a second connection,
// as another process could) must leave the action unrun and answer "internal",
// sealed because the request's seal had opened.
TEST_F(CommandServiceTest, StoreWriteFailureIsInternalAndTheActionDoesNotRun) {
    store::sql::Db raw(db_path);
    raw.exec(
        "CREATE TRIGGER fail_update BEFORE UPDATE ON devices "
        "BEGIN SELECT RAISE(ABORT, 'read-only medium'); END;",
        "test trigger");
    now += kStep;
    const auto ch = challenge();
    const Replied r = refused(phone.frame("hello", now, *ch), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));

    const Result resp = decode(r);
    EXPECT_EQ(resp.status, Status::Internal);
    EXPECT_EQ(resp.counter, 1U);
    EXPECT_EQ(r.outcome.status, Status::Internal);
    EXPECT_NE(r.outcome.detail.find("read-only medium"), std::string::npos) << r.outcome.detail;
    EXPECT_EQ(store->replay_state(phone.id).last_counter, 0U);
    const auto row = newest_audit();
    EXPECT_EQ(row.status, "internal");

    // Once writes work again the service runs commands as before.
    raw.exec("DROP TRIGGER fail_update", "test trigger");
    const Replied ok = command("hello");
    EXPECT_EQ(decode(ok).status, Status::Ok);
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
    const Replied r = refused(phone.frame("hello", now, *ch), ch);
    EXPECT_FALSE(fs::exists(dir / "marker-hello"));
    EXPECT_EQ(decode(r).status, Status::Internal);
    EXPECT_TRUE(audit().empty());
}

TEST_F(CommandServiceTest, SecondCommandWhileTheActionRunsIsBusy) {
    now += kStep;
    auto ch = challenge();
    Replied first;
    send(phone.frame("wait", now, *ch), first, ch);
    ASSERT_EQ(first.calls, 0) << "an accepted command replies when its action ends";
    ASSERT_TRUE(runner.running("wait"));

    now += kStep;
    ch = challenge();
    Replied second;
    send(phone.frame("wait", now, *ch), second, ch);
    ASSERT_EQ(second.calls, 1) << "a busy refusal is answered at once";
    const Result busy = decode(second);
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
    const Result done = decode(first);
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

// --- the catalogue ---

/// The catalogue page of a sealed 0x82 answer.
core::protocol::CataloguePage page_of(const Replied& r, const Phone& ph, Status want = Status::Ok) {
    const auto o = core::protocol::open_response(r.frame, ph.response_key().view(),
                                                 core::protocol::request_tag(r.request));
    EXPECT_TRUE(o.response) << o.error;
    if (!o.response) {
        return {};
    }
    EXPECT_TRUE(o.response->authentic);
    EXPECT_EQ(o.response->type, core::protocol::ResponseType::CatalogueResult);
    EXPECT_EQ(o.response->head.status, want);
    const auto p = core::protocol::decode_catalogue_page(o.response->rest);
    EXPECT_TRUE(p.page) << p.error;
    return p.page.value_or(core::protocol::CataloguePage{});
}

std::vector<std::string> names_of(const core::protocol::CataloguePage& p) {
    std::vector<std::string> out;
    for (const auto& e : p.entries) {
        out.push_back(e.name);
    }
    return out;
}

TEST_F(CommandServiceTest, TheCatalogueListsExactlyThePermittedLoadedActions) {
    const auto rows = audit().size();
    store->allow_actions(phone.id, {"level", "gone"});  // "gone" is not loaded
    auto ch = challenge();
    const Replied r = send_and_wait(phone.catalogue(now, *ch), ch);
    EXPECT_EQ(r.outcome.kind, RequestKind::Catalogue);
    EXPECT_EQ(r.outcome.status, Status::Ok);
    const auto page = page_of(r, phone);
    EXPECT_EQ(page.total, 5);
    EXPECT_EQ(page.first, 0);
    EXPECT_EQ(names_of(page), (std::vector<std::string>{"fail", "hello", "level", "slow", "wait"}));
    // What the phone needs to draw the buttons.
    const auto& hello = page.entries[1];
    EXPECT_EQ(hello.kind, core::protocol::ArgKind::Pattern);
    EXPECT_EQ(hello.pattern, std::string(config::kDefaultArgPattern));
    EXPECT_EQ(hello.max_args, 8);
    EXPECT_FALSE(hello.confirm);
    const auto& level = page.entries[2];
    EXPECT_EQ(level.description, "Heater level");
    EXPECT_TRUE(level.confirm);
    EXPECT_EQ(level.kind, core::protocol::ArgKind::Choices);
    EXPECT_EQ(level.choices, (std::vector<std::string>{"low", "high"}));
    EXPECT_EQ(level.max_args, 1);
    EXPECT_EQ(page.entries[0].kind, core::protocol::ArgKind::None);
    // Accepted catalogue requests are not audited but use up their counter.
    EXPECT_EQ(audit().size(), rows);
    EXPECT_EQ(store->replay_state(phone.id).last_counter, 1U);

    // A later page starts where asked.
    ch = challenge();
    const auto second = page_of(send_and_wait(phone.catalogue(now, *ch, 3), ch), phone);
    EXPECT_EQ(second.total, 5);
    EXPECT_EQ(second.first, 3);
    EXPECT_EQ(names_of(second), (std::vector<std::string>{"slow", "wait"}));
}

TEST_F(CommandServiceTest, TheCatalogueFollowsAllowAndDenyAndReloads) {
    auto read = [&] {
        const auto ch = challenge();
        return names_of(page_of(send_and_wait(phone.catalogue(now, *ch), ch), phone));
    };
    EXPECT_EQ(read(), (std::vector<std::string>{"fail", "hello", "slow", "wait"}));
    store->deny_actions(phone.id, {"fail", "slow"});
    EXPECT_EQ(read(), (std::vector<std::string>{"hello", "wait"}));
    store->allow_actions(phone.id, {"other"});
    EXPECT_EQ(read(), (std::vector<std::string>{"hello", "other", "wait"}));
    // An action removed from the folder leaves the catalogue after a reload.
    fs::remove(actions_dir / "other");
    service->set_registry(std::make_shared<actions::Registry>(
        actions::Registry::load(actions_dir, config::ActionsSection{})));
    EXPECT_EQ(read(), (std::vector<std::string>{"hello", "wait"}));
}

// A refused catalogue request that authenticated: sealed 0x82 with the status and
// the sentence, not a page.
TEST_F(CommandServiceTest, ARefusedCatalogueRequestIsSealedWithoutAPage) {
    const auto ch = challenge();
    core::protocol::CatalogueBody b;
    b.timestamp = now - 1000;
    b.challenge = *ch;
    b.totp = core::crypto::totp(phone.secret.view(), now, phone.totp);
    const Replied r = refused(
        phone.seal(core::protocol::RequestType::Catalogue, core::protocol::encode_body(b), 1), ch);
    const auto o = core::protocol::open_response(r.frame, phone.response_key().view(),
                                                 core::protocol::request_tag(r.request));
    ASSERT_TRUE(o.response) << o.error;
    EXPECT_TRUE(o.response->authentic);
    EXPECT_EQ(o.response->type, core::protocol::ResponseType::CatalogueResult);
    EXPECT_EQ(o.response->head.status, Status::StaleTimestamp);
    EXPECT_EQ(o.response->head.pi_time, now);
    EXPECT_EQ(std::string(o.response->rest.begin(), o.response->rest.end()),
              core::protocol::status_message(Status::StaleTimestamp));
    EXPECT_EQ(newest_audit().status, "stale_timestamp");
    // A stranger's catalogue request: plain.
    Phone stranger = Phone::stranger();
    EXPECT_EQ(plain(refused(stranger.catalogue(now, *challenge()), std::nullopt)).first,
              Status::UnknownDevice);
}

// --- pairing ---

TEST_F(CommandServiceTest, APairRequestIsAnsweredWithTheConfirmationThePhoneDerived) {
    const store::NewPairing p = store->add_device("bob-phone", {"hello"}, now, 300);
    const auto ch = challenge();
    const test::PairAttempt a = test::pair_attempt(*store, p, *ch);
    const Replied r = send_and_wait(a.frame, ch);
    EXPECT_EQ(r.outcome.kind, RequestKind::Pair);
    EXPECT_EQ(r.outcome.status, Status::Ok);
    EXPECT_EQ(r.outcome.device_name, "bob-phone");

    const auto key = core::protocol::pair_seal_keys(p.code.view()).response;
    const auto o =
        core::protocol::open_response(r.frame, key.view(), core::protocol::request_tag(a.frame));
    ASSERT_TRUE(o.response) << o.error;
    EXPECT_TRUE(o.response->authentic);
    EXPECT_EQ(o.response->type, core::protocol::ResponseType::PairResult);
    EXPECT_EQ(o.response->head.status, Status::Ok);
    EXPECT_EQ(o.response->head.pi_time, now);
    EXPECT_EQ(o.response->counter, 0U);
    ASSERT_GE(o.response->rest.size(), core::protocol::kConfirmLen);
    ASSERT_TRUE(a.expected);
    EXPECT_TRUE(std::equal(a.expected->confirm.begin(), a.expected->confirm.end(),
                           o.response->rest.begin()));
    EXPECT_EQ(
        std::string(o.response->rest.begin() + core::protocol::kConfirmLen, o.response->rest.end()),
        "paired as bob-phone");
    // Someone without the code cannot open it.
    const auto other = core::protocol::pair_seal_keys(core::crypto::random_bytes(16)).response;
    EXPECT_FALSE(
        core::protocol::open_response(r.frame, other.view(), core::protocol::request_tag(a.frame))
            .response->authentic);

    // Paired: its first command runs.
    Phone bob = Phone::paired(p.device.id, a, p.totp);
    const auto ch2 = challenge();
    EXPECT_EQ(decode(send_and_wait(bob.frame("hello", now, *ch2), ch2), bob).status, Status::Ok);
    EXPECT_EQ(test::read_file(dir / "marker-hello"), "bob-phone|\n");
}

TEST_F(CommandServiceTest, TheSameCodeAgainIsAPlainCodeUsed) {
    const store::NewPairing p = store->add_device("bob-phone", {"hello"}, now, 300);
    auto ch = challenge();
    ASSERT_EQ(send_and_wait(test::pair_attempt(*store, p, *ch).frame, ch).outcome.status,
              Status::Ok);
    ch = challenge();
    const Replied again = refused(test::pair_attempt(*store, p, *ch).frame, ch);
    EXPECT_EQ(plain(again), (std::pair<Status, std::uint64_t>{Status::CodeUsed, 0}));
    EXPECT_EQ(newest_audit().status, "code_used");
}

// An expired code that opened the seal: sealed with the code's key, no confirm.
TEST_F(CommandServiceTest, AnExpiredCodeIsASealedRefusalWithoutConfirm) {
    const store::NewPairing p = store->add_device("bob-phone", {"hello"}, now, 300);
    now += 301;
    const auto ch = challenge();
    const test::PairAttempt a = test::pair_attempt(*store, p, *ch);
    const Replied r = refused(a.frame, ch);
    const auto key = core::protocol::pair_seal_keys(p.code.view()).response;
    const auto o =
        core::protocol::open_response(r.frame, key.view(), core::protocol::request_tag(a.frame));
    ASSERT_TRUE(o.response) << o.error;
    EXPECT_TRUE(o.response->authentic);
    EXPECT_EQ(o.response->type, core::protocol::ResponseType::PairResult);
    EXPECT_EQ(o.response->head.status, Status::CodeExpired);
    EXPECT_EQ(std::string(o.response->rest.begin(), o.response->rest.end()),
              core::protocol::status_message(Status::CodeExpired));
    EXPECT_TRUE(store->find_device("bob-phone")->pending());
    // A wrong code is plain bad_mac.
    store::NewPairing wrong = store->new_code(p.device.id, now, 300);
    wrong.code = core::crypto::SecretBytes(core::crypto::random_bytes(16));
    const auto ch2 = challenge();
    EXPECT_EQ(plain(refused(test::pair_attempt(*store, wrong, *ch2).frame, ch2)).first,
              Status::BadMac);
}

// --- no cooldown, limits that only hurt the guilty, the clock ---

TEST_F(CommandServiceTest, TwoCommandsOneSecondApartBothRun) {
    const Replied a = command("hello", {"a"});
    EXPECT_EQ(decode(a).status, Status::Ok);
    const Replied b = command("hello", {"b"});
    EXPECT_EQ(decode(b).status, Status::Ok);
    EXPECT_EQ(decode(b).pi_time, decode(a).pi_time + 1);
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
        // A 13-byte plain refusal; nothing of the frame was trusted.
        ASSERT_EQ(plain(r), (std::pair<Status, std::uint64_t>{Status::RateLimited, 0}));
        if (i % 100 == 0) {
            // The owner's phone on its own link is never held up by the flood.
            EXPECT_EQ(decode(command("hello")).status, Status::Ok);
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
    EXPECT_EQ(decode(command("hello")).status, Status::Ok);
    now += 60;
    const auto flushed = service->flush();
    ASSERT_EQ(flushed.size(), 1U);
    // The owner's command moved the test clock one second.
    EXPECT_EQ(flushed[0].detail, "201 frames refused in 61 s from " + std::string(kFlooder));
}

TEST_F(CommandServiceTest, ReplaysCountAgainstTheLink) {
    const auto ch = challenge();
    const auto frame = phone.frame("hello", now, *ch);
    ASSERT_EQ(decode(send_and_wait(frame, ch)).status, Status::Ok);
    for (int i = 0; i < 11; ++i) {
        EXPECT_EQ(refused(frame, challenge(), kFlooder).outcome.status, Status::Replayed) << i;
    }
    EXPECT_EQ(refused(frame, challenge(), kFlooder).outcome.status, Status::RateLimited);
}

// Clock refusals of authentic frames and action refusals never count.
TEST_F(CommandServiceTest, ClockAndActionRefusalsDoNotCount) {
    for (int i = 0; i < 30; ++i) {
        const auto ch = challenge();
        auto b = phone.body(i % 2 == 0 ? "hello" : "nosuch", now, *ch);
        if (i % 2 == 0) {
            b.timestamp = now - 1000;  // stale: the phone's clock is wrong
        }
        const Replied r = refused(seal(phone, b), ch);
        EXPECT_EQ(r.outcome.status, i % 2 == 0 ? Status::StaleTimestamp : Status::UnknownAction);
    }
    EXPECT_FALSE(service->throttle().link_limited(kLink, now));
    EXPECT_FALSE(service->throttle().pi_wide_limited(now));
    EXPECT_EQ(decode(command("hello")).status, Status::Ok);
}

// The Pi-wide limit: unauthenticated frames from anywhere are refused without a
// write; a frame that authenticates (a paired phone's, or a pairing phone's with
// its code) is served as usual.
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
        const auto frame = i % 2 == 0 ? stranger_frame(now) : impostor.frame("hello", now, *ch);
        const Replied r = refused(frame, ch, "/org/bluez/hci0/dev_x" + std::to_string(i));
        EXPECT_EQ(r.outcome.status, Status::RateLimited) << i;
        EXPECT_TRUE(r.outcome.summarised);
        EXPECT_EQ(plain(r).first, Status::RateLimited);
    }
    EXPECT_EQ(audit().size(), rows_before);  // not one write for them

    const Replied ok = command("hello", {"still"});
    EXPECT_EQ(decode(ok).status, Status::Ok);
    EXPECT_EQ(test::read_file(dir / "marker-hello"), "alice-phone|still\n");
    // An authentic frame that is refused for another reason still gets its own answer.
    EXPECT_EQ(refused(phone.frame("nosuch", now, *challenge()), std::nullopt).outcome.status,
              Status::Replayed);  // no challenge passed: refused after the seal, as usual
    // A phone pairing with its code gets through.
    const store::NewPairing p = store->add_device("bob-phone", {"hello"}, now, 300);
    const auto ch = challenge();
    EXPECT_EQ(send_and_wait(test::pair_attempt(*store, p, *ch).frame, ch).outcome.status,
              Status::Ok);

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
    const auto frame = phone.frame("hello", phone_now, *ch);
    const Replied r = send_and_wait(frame, ch);
    const Result res = decode(r);
    EXPECT_EQ(res.status, Status::Ok);
    // The answer says the Pi's new time and that it is not synchronised.
    EXPECT_EQ(res.pi_time, phone_now);
    EXPECT_FALSE(res.synced);
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

// A catalogue request advances an unsynchronised clock too: a phone can set the
// Pi's time by opening its button list.
TEST_F(CommandServiceTest, UnsynchronisedClockIsAdvancedByACatalogueRequest) {
    const std::int64_t phone_now = now;
    now -= kDay;
    synced = false;
    make_service();
    const auto ch = challenge();
    core::protocol::CatalogueBody b;
    b.timestamp = phone_now;
    b.challenge = *ch;
    b.totp = core::crypto::totp(phone.secret.view(), phone_now, phone.totp);
    const Replied r = send_and_wait(
        phone.seal(core::protocol::RequestType::Catalogue, core::protocol::encode_body(b), 1), ch);
    EXPECT_EQ(r.outcome.status, Status::Ok);
    EXPECT_EQ(r.outcome.clock_advanced_by, static_cast<std::uint64_t>(kDay));
    const auto o = core::protocol::open_response(r.frame, phone.response_key().view(),
                                                 core::protocol::request_tag(r.request));
    ASSERT_TRUE(o.response);
    EXPECT_EQ(o.response->head.pi_time, phone_now);
    EXPECT_FALSE(o.response->head.synced);
    EXPECT_EQ(service->clock().now, phone_now);
}

TEST_F(CommandServiceTest, UnsynchronisedClockNeverGoesBack) {
    synced = false;
    make_service();
    const std::int64_t v = service->clock().now;
    now -= 500;  // the system clock stepped back
    EXPECT_EQ(service->clock().now, v);
    // A phone whose clock is behind V by more than the skew is stale, and is told
    // the Pi's time in the sealed answer.
    const auto ch = challenge();
    const Replied r = refused(phone.frame("hello", now - 400, *ch), ch);
    EXPECT_EQ(r.outcome.status, Status::StaleTimestamp);
    EXPECT_NE(r.outcome.detail.find("s behind the Pi's clock"), std::string::npos)
        << r.outcome.detail;
    EXPECT_FALSE(r.outcome.clock_advanced_by);
    const Result res = decode(r);
    EXPECT_EQ(res.pi_time, v);
    EXPECT_FALSE(res.synced);
}

}  // namespace
}  // namespace bzs::service
