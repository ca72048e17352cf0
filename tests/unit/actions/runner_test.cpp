// SPDX-License-Identifier: GPL-3.0-or-later
// The runner with real processes: exit codes, merged and capped output, arguments
// passed verbatim (no shell), a clean environment, process groups killed at timeouts,
// Busy/concurrent, and start failures. Completion is awaited on the event loop.
#include "actions/runner.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "test_support.h"

namespace {

using bzs::actions::Action;
using bzs::actions::RunContext;
using bzs::actions::Runner;
using bzs::actions::RunnerOptions;
using bzs::actions::RunResult;
using bzs::actions::RunStatus;
using bzs::loop::EventLoop;
using bzs::test::lines_of;
using bzs::test::TempDir;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

/// Waits (on the process's pidfd, bounded) until `pid` has exited. True if it is dead:
/// already gone, a zombie, or exiting within the bound. A live `sleep 1000` is not.
bool wait_dead(pid_t pid) {
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) {
        return errno == ESRCH;
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, 10000);
    ::close(fd);
    return r == 1;
}

/// Opens the FIFO for writing (waits for the action to open it) and lets it go on.
void release(const std::filesystem::path& fifo) {
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "go\n", 3), 3);
    ::close(fd);
}

class RunnerTest : public ::testing::Test {
  protected:
    // Blocked as the daemon blocks them; actions must not inherit that mask.
    void SetUp() override { EventLoop::block_signals({SIGCHLD, SIGTERM, SIGHUP, SIGUSR1}); }

    /// A /bin/sh script action in the temporary directory, mode 0700.
    Action script(const std::string& name, const std::string& body) {
        bzs::test::write_file(dir_ / name, "#!/bin/sh\n" + body, 0700);
        Action a;
        a.name = name;
        a.path = dir_ / name;
        a.timeout = 30s;
        a.output_limit = 4096;
        return a;
    }
    static void allow_any_args(Action& a) {
        a.allow_args = true;
        a.arg_pattern = "[^\\n]*";
        a.max_args = 8;
    }
    std::filesystem::path fifo(const std::string& name) {
        const auto p = dir_ / name;
        EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0);
        return p;
    }

    /// Starts on `runner` and runs the loop until the result arrives.
    RunResult run(Runner& runner, const Action& a, const std::vector<std::string>& args = {},
                  const RunContext& ctx = {}) {
        std::optional<RunResult> result;
        const auto started = runner.start(a, args, ctx, [&](const RunResult& r) { result = r; });
        EXPECT_TRUE(started.started) << started.refusal.error;
        if (!started) {
            return started.refusal;
        }
        loop_.run_until([&] { return result.has_value(); });
        return *result;
    }
    RunResult run(const Action& a, const std::vector<std::string>& args = {},
                  const RunContext& ctx = {}) {
        return run(runner_, a, args, ctx);
    }

    TempDir dir_;
    EventLoop loop_;
    Runner runner_{loop_};
};

TEST_F(RunnerTest, ExitZeroIsOkWithOutput) {
    const RunResult r = run(script("hello", "echo hello\n"));
    EXPECT_EQ(r.status, RunStatus::Ok);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.output, "hello\n");
    EXPECT_FALSE(r.truncated);
    EXPECT_GE(r.duration_ms, 0);
    EXPECT_EQ(runner_.active(), 0u);
}

TEST_F(RunnerTest, NonZeroExitIsFailedWithItsCode) {
    const RunResult r = run(script("bad", "echo nope\nexit 3\n"));
    EXPECT_EQ(r.status, RunStatus::Failed);
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_EQ(r.output, "nope\n");
}

TEST_F(RunnerTest, DeathBySignalIsFailedWithNegativeSignal) {
    const RunResult r = run(script("selfkill", "kill -USR1 $$\n"));
    EXPECT_EQ(r.status, RunStatus::Failed);
    EXPECT_EQ(r.exit_code, -SIGUSR1);
}

TEST_F(RunnerTest, StdoutAndStderrAreMergedInOrder) {
    const RunResult r = run(script("both", "echo out\necho err >&2\necho out2\n"));
    EXPECT_EQ(r.output, "out\nerr\nout2\n");
}

TEST_F(RunnerTest, OutputIsCappedAndTheRestDrained) {
    Action a = script("chatty", "head -c 1000000 /dev/zero\necho finished >&2\n");
    a.output_limit = 1000;
    const RunResult r = run(a);
    // The action wrote far more than a pipe holds and still finished normally.
    EXPECT_EQ(r.status, RunStatus::Ok);
    EXPECT_EQ(r.output, std::string(1000, '\0'));
    EXPECT_TRUE(r.truncated);
}

TEST_F(RunnerTest, OutputExactlyAtTheLimitIsNotTruncated) {
    Action a = script("ten", "printf 0123456789\n");
    a.output_limit = 10;
    RunResult r = run(a);
    EXPECT_EQ(r.output, "0123456789");
    EXPECT_FALSE(r.truncated);
    a.output_limit = 9;
    r = run(a);
    EXPECT_EQ(r.output, "012345678");
    EXPECT_TRUE(r.truncated);
    a.output_limit = 0;
    r = run(a);
    EXPECT_EQ(r.output, "");
    EXPECT_TRUE(r.truncated);
}

TEST_F(RunnerTest, ArgumentsArePassedVerbatimWithoutAShell) {
    bzs::test::write_file(dir_ / "x", "keep");
    Action a = script("echoargs", "for a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n");
    allow_any_args(a);
    const std::vector<std::string> args = {"; rm -rf x", "$(id)", "`id`", "*",
                                           "a b",        "$HOME", "'q'"};
    const RunResult r = run(a, args);
    ASSERT_EQ(r.status, RunStatus::Ok) << r.output;
    std::vector<std::string> expected;
    for (const auto& s : args) {
        expected.push_back("[" + s + "]");
    }
    EXPECT_EQ(lines_of(r.output), expected);
    EXPECT_TRUE(std::filesystem::exists(dir_ / "x"));
}

TEST_F(RunnerTest, ScriptWithoutInterpreterLineIsNotHandedToAShell) {
    // posix_spawn reports ENOEXEC instead of falling back to /bin/sh.
    bzs::test::write_file(dir_ / "noshebang", "echo ran > ran.txt\n", 0700);
    Action a;
    a.name = "noshebang";
    a.path = dir_ / "noshebang";
    const auto s = runner_.start(a, {}, {}, [](const RunResult&) { FAIL() << "must not run"; });
    EXPECT_FALSE(s.started);
    EXPECT_EQ(s.refusal.status, RunStatus::StartFailed);
    EXPECT_THAT(s.refusal.error, HasSubstr("Exec format error"));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "ran.txt"));
}

TEST_F(RunnerTest, EnvironmentIsExactlyTheDocumentedOne) {
    ASSERT_EQ(::setenv("BZS_TEST_LEAK", "secret", 1), 0);
    // /usr/bin/env itself as the action: nothing in between adds variables.
    Action a;
    a.name = "env";
    a.path = "/usr/bin/env";
    const RunContext ctx{.device_name = "Alice's phone",
                         .device_id_hex = "00112233445566778899aabbccddeeff",
                         .request_id = "42",
                         .transport = "ble"};
    const RunResult r = run(a, {}, ctx);
    ::unsetenv("BZS_TEST_LEAK");
    ASSERT_EQ(r.status, RunStatus::Ok);
    std::vector<std::string> got = lines_of(r.output);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{
                       "BLUEZSCRIPT_ACTION=env",
                       "BLUEZSCRIPT_DEVICE_ID=00112233445566778899aabbccddeeff",
                       "BLUEZSCRIPT_DEVICE_NAME=Alice's phone",
                       "BLUEZSCRIPT_REQUEST_ID=42",
                       "BLUEZSCRIPT_TRANSPORT=ble",
                       "LANG=C.UTF-8",
                       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   }));
}

TEST_F(RunnerTest, StdinIsDevNullCwdIsTheActionsDirAndNoFdLeaks) {
    // A descriptor without O_CLOEXEC in the daemon must not reach the action.
    const int leak = ::fcntl(STDERR_FILENO, F_DUPFD, 50);
    ASSERT_GE(leak, 50);
    Action a = script("inspect",
                      "readlink /proc/self/fd/0\n"
                      "pwd -P\n"
                      "ls /proc/self/fd\n");
    const RunResult r = run(a);
    ::close(leak);
    ASSERT_EQ(r.status, RunStatus::Ok) << r.output;
    const auto l = lines_of(r.output);
    ASSERT_GE(l.size(), 2u);
    EXPECT_EQ(l[0], "/dev/null");
    EXPECT_EQ(l[1], std::filesystem::canonical(dir_.path()).string());
    const std::vector<std::string> fds(l.begin() + 2, l.end());
    EXPECT_EQ(std::count(fds.begin(), fds.end(), std::to_string(leak)), 0) << r.output;
    for (const char* std_fd : {"0", "1", "2"}) {
        EXPECT_EQ(std::count(fds.begin(), fds.end(), std_fd), 1) << r.output;
    }
}

TEST_F(RunnerTest, ActionStartsWithDefaultSignalState) {
    // The daemon blocks signals (SetUp) and may ignore SIGPIPE; neither may leak.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction old {};
    ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old), 0);
    Action a;
    a.name = "grep";
    a.path = "/bin/grep";
    allow_any_args(a);
    const RunResult r = run(a, {"-E", "^Sig(Blk|Ign):", "/proc/self/status"});
    ::sigaction(SIGPIPE, &old, nullptr);
    const auto l = lines_of(r.output);
    ASSERT_EQ(l.size(), 2u) << r.output;
    ASSERT_TRUE(l[0].starts_with("SigBlk:\t") && l[1].starts_with("SigIgn:\t")) << r.output;
    EXPECT_EQ(std::stoull(l[0].substr(8), nullptr, 16), 0u) << r.output;
    // glibc's posix_spawn leaves its two internal signals (32, 33) ignored; no caller can
    // change that, and every glibc program reinstalls them.
    const unsigned long long glibc_internal = (1ULL << 31) | (1ULL << 32);
    EXPECT_EQ(std::stoull(l[1].substr(8), nullptr, 16) & ~glibc_internal, 0u) << r.output;
}

TEST_F(RunnerTest, ActionRunsInItsOwnProcessGroup) {
    const RunResult r = run(script("pgrp", "echo $$\ncut -d' ' -f5 /proc/$$/stat\n"));
    const auto l = lines_of(r.output);
    ASSERT_EQ(l.size(), 2u) << r.output;
    EXPECT_EQ(l[0], l[1]);  // pgid == pid: a group leader
    EXPECT_NE(l[1], std::to_string(::getpgrp()));
}

TEST_F(RunnerTest, TimeoutKillsTheWholeGroupIncludingGrandchildren) {
    // The grandchild keeps the output pipe open and would outlive a plain kill(pid).
    Action a = script("hang", "sleep 1000 &\necho $!\nsleep 1000\n");
    a.timeout = 1s;
    const RunResult r = run(a);
    EXPECT_EQ(r.status, RunStatus::Timeout);
    EXPECT_EQ(r.exit_code, -SIGTERM);
    const auto l = lines_of(r.output);
    ASSERT_EQ(l.size(), 1u) << r.output;
    const pid_t grandchild = std::stoi(l[0]);
    EXPECT_TRUE(wait_dead(grandchild));
}

TEST_F(RunnerTest, TimeoutKillsDetachedGrandchildrenToo) {
    // This grandchild does not hold the pipe, so only the group kill can reach it.
    Action a = script("hang2", "sleep 1000 >/dev/null 2>&1 &\necho $!\nsleep 1000\n");
    a.timeout = 1s;
    const RunResult r = run(a);
    EXPECT_EQ(r.status, RunStatus::Timeout);
    const auto l = lines_of(r.output);
    ASSERT_EQ(l.size(), 1u) << r.output;
    EXPECT_TRUE(wait_dead(std::stoi(l[0])));
}

TEST_F(RunnerTest, ActionIgnoringSigtermGetsSigkillAfterTheGrace) {
    Runner runner(loop_, RunnerOptions{.kill_grace = 200ms});
    Action a = script("stubborn", "trap '' TERM\necho waiting\nsleep 1000\n");
    a.timeout = 1s;
    const RunResult r = run(runner, a);
    EXPECT_EQ(r.status, RunStatus::Timeout);
    EXPECT_EQ(r.exit_code, -SIGKILL);
    EXPECT_EQ(r.output, "waiting\n");  // output written before the kill is kept
}

TEST_F(RunnerTest, GrandchildHoldingThePipeDoesNotHangCompletion) {
    Runner runner(loop_, RunnerOptions{.kill_grace = 200ms});
    Action a = script("leaver", "sleep 1000 &\necho $!\nexit 0\n");
    const RunResult r = run(runner, a);
    EXPECT_EQ(r.status, RunStatus::Ok);
    EXPECT_EQ(r.exit_code, 0);
    const auto l = lines_of(r.output);
    ASSERT_EQ(l.size(), 1u) << r.output;
    EXPECT_TRUE(wait_dead(std::stoi(l[0])));
}

TEST_F(RunnerTest, SecondStartOfARunningActionIsBusy) {
    Action a = script("slow", "read x < \"$1\"\necho done\n");
    allow_any_args(a);
    const auto gate = fifo("gate");
    std::optional<RunResult> first;
    const auto s1 = runner_.start(a, {gate.string()}, {}, [&](const RunResult& r) { first = r; });
    ASSERT_TRUE(s1.started) << s1.refusal.error;
    EXPECT_TRUE(runner_.running("slow"));

    const auto s2 = runner_.start(a, {gate.string()}, {}, [](const RunResult&) {
        FAIL() << "a refused start must not call back";
    });
    EXPECT_FALSE(s2.started);
    EXPECT_EQ(s2.refusal.status, RunStatus::Busy);
    EXPECT_THAT(s2.refusal.error, HasSubstr("already running"));
    EXPECT_EQ(runner_.active(), 1u);

    release(gate);
    loop_.run_until([&] { return first.has_value(); });
    EXPECT_EQ(first->status, RunStatus::Ok);
    EXPECT_EQ(first->output, "done\n");
    EXPECT_FALSE(runner_.running("slow"));

    // Finished runs no longer block new ones.
    Action quick = a;
    quick.allow_args = false;
    bzs::test::write_file(dir_ / "slow", "#!/bin/sh\necho again\n", 0700);
    EXPECT_EQ(run(quick).output, "again\n");
}

TEST_F(RunnerTest, ConcurrentActionMayRunTwice) {
    Action a = script("parallel", "read x < \"$1\"\necho \"$1\"\n");
    allow_any_args(a);
    a.concurrent = true;
    const auto g1 = fifo("g1");
    const auto g2 = fifo("g2");
    std::vector<RunResult> results;
    auto collect = [&](const RunResult& r) { results.push_back(r); };
    ASSERT_TRUE(runner_.start(a, {g1.string()}, {}, collect).started);
    ASSERT_TRUE(runner_.start(a, {g2.string()}, {}, collect).started);
    EXPECT_EQ(runner_.active(), 2u);
    release(g2);
    release(g1);
    loop_.run_until([&] { return results.size() == 2; });
    std::vector<std::string> outputs;
    for (const auto& r : results) {
        EXPECT_EQ(r.status, RunStatus::Ok);
        outputs.push_back(r.output);
    }
    std::sort(outputs.begin(), outputs.end());
    EXPECT_EQ(outputs, (std::vector<std::string>{g1.string() + "\n", g2.string() + "\n"}));
}

TEST_F(RunnerTest, MissingFileIsStartFailed) {
    Action a;
    a.name = "ghost";
    a.path = dir_ / "ghost";
    bool called = false;
    const auto s = runner_.start(a, {}, {}, [&](const RunResult&) { called = true; });
    EXPECT_FALSE(s.started);
    EXPECT_EQ(s.refusal.status, RunStatus::StartFailed);
    EXPECT_THAT(s.refusal.error, HasSubstr("No such file or directory"));
    EXPECT_THAT(s.refusal.error, HasSubstr("ghost"));
    EXPECT_FALSE(called);
    EXPECT_EQ(runner_.active(), 0u);
}

TEST_F(RunnerTest, DisallowedArgumentsAreRefusedBeforeStarting) {
    Action a = script("noargs", "echo ran > ran.txt\n");
    auto s = runner_.start(a, {"x"}, {}, [](const RunResult&) { FAIL(); });
    EXPECT_FALSE(s.started);
    EXPECT_EQ(s.refusal.status, RunStatus::BadArguments);
    a.allow_args = true;
    a.arg_pattern = "[a-z]+";
    a.max_args = 1;
    s = runner_.start(a, {"UPPER"}, {}, [](const RunResult&) { FAIL(); });
    EXPECT_EQ(s.refusal.status, RunStatus::BadArguments);
    s = runner_.start(a, {"a", "b"}, {}, [](const RunResult&) { FAIL(); });
    EXPECT_EQ(s.refusal.status, RunStatus::BadArguments);
    EXPECT_FALSE(std::filesystem::exists(dir_ / "ran.txt"));
}

TEST_F(RunnerTest, DestroyingTheRunnerKillsAndReapsRunningActions) {
    Action a = script("forever", "echo $$ > \"$1\"\nexec sleep 1000\n");
    allow_any_args(a);
    const auto pidpipe = fifo("pid");
    bool called = false;
    pid_t pid = -1;
    {
        Runner runner(loop_);
        ASSERT_TRUE(
            runner.start(a, {pidpipe.string()}, {}, [&](const RunResult&) { called = true; })
                .started);
        const std::string text = bzs::test::read_file(pidpipe);  // waits for the writer
        pid = std::stoi(text);
    }
    // Killed and reaped by the destructor: not even a zombie is left.
    EXPECT_EQ(::kill(pid, 0), -1);
    EXPECT_EQ(errno, ESRCH);
    EXPECT_FALSE(called);
}

TEST_F(RunnerTest, RunBlockingRunsToCompletionAndRestoresTheSignalMask) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ASSERT_EQ(::pthread_sigmask(SIG_UNBLOCK, &chld, nullptr), 0);
    const Action a = script("cli", "echo \"$BLUEZSCRIPT_TRANSPORT\"\nexit 4\n");
    RunContext ctx;
    ctx.transport = "cli";
    const RunResult r = bzs::actions::run_blocking(a, {}, ctx);
    EXPECT_EQ(r.status, RunStatus::Failed);
    EXPECT_EQ(r.exit_code, 4);
    EXPECT_EQ(r.output, "cli\n");
    EXPECT_FALSE(EventLoop::signal_blocked(SIGCHLD));

    Action missing = a;
    missing.path = dir_ / "absent";
    EXPECT_EQ(bzs::actions::run_blocking(missing, {}, {}).status, RunStatus::StartFailed);
}

TEST_F(RunnerTest, StartWithoutBlockedSigchldIsAProgrammingError) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ASSERT_EQ(::pthread_sigmask(SIG_UNBLOCK, &chld, nullptr), 0);
    const Action a = script("x", "exit 0\n");
    EXPECT_THROW(runner_.start(a, {}, {}, nullptr), std::logic_error);
    EXPECT_EQ(runner_.active(), 0u);
}

TEST(RunStatusMapping, MapsToProtocolStatuses) {
    using bzs::actions::to_protocol_status;
    using bzs::core::protocol::Status;
    EXPECT_EQ(to_protocol_status(RunStatus::Ok), Status::Ok);
    EXPECT_EQ(to_protocol_status(RunStatus::Failed), Status::ActionFailed);
    EXPECT_EQ(to_protocol_status(RunStatus::Timeout), Status::ActionTimeout);
    EXPECT_EQ(to_protocol_status(RunStatus::Busy), Status::ActionBusy);
    EXPECT_EQ(to_protocol_status(RunStatus::StartFailed), Status::ActionStartFailed);
    EXPECT_EQ(to_protocol_status(RunStatus::BadArguments), Status::BadArguments);
    EXPECT_EQ(bzs::actions::run_status_name(RunStatus::StartFailed), "start_failed");
}

}  // namespace
