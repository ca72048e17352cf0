// SPDX-License-Identifier: GPL-3.0-or-later
// The sd-event wrapper: each source kind fires, handles stop their sources, and
// exceptions escaping callbacks surface from run().
#include "loop/event_loop.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using bzs::loop::EventLoop;
using bzs::loop::Source;
using namespace std::chrono_literals;

class EventLoopTest : public ::testing::Test {
  protected:
    void SetUp() override { EventLoop::block_signals({SIGCHLD, SIGUSR1}); }
};

TEST_F(EventLoopTest, TimerFiresAndRunReturnsExitCode) {
    EventLoop loop;
    bool fired = false;
    Source t = loop.add_timer_relative(1ms, [&] {
        fired = true;
        loop.exit(7);
    });
    EXPECT_EQ(loop.run(), 7);
    EXPECT_TRUE(fired);
}

TEST_F(EventLoopTest, DestroyedSourceNeverFires) {
    EventLoop loop;
    bool cancelled_fired = false;
    {
        Source doomed = loop.add_timer_relative(0us, [&] { cancelled_fired = true; });
    }
    Source moved_out = loop.add_timer_relative(0us, [&] { cancelled_fired = true; });
    Source target = std::move(moved_out);
    target.reset();
    EXPECT_FALSE(target);
    Source stop = loop.add_timer_relative(5ms, [&] { loop.exit(0); });
    loop.run();
    EXPECT_FALSE(cancelled_fired);
}

TEST_F(EventLoopTest, DeferRunsOnceAndPostedCallbacksRunInOrder) {
    EventLoop loop;
    std::vector<std::string> seen;
    int defer_count = 0;
    Source d = loop.add_defer([&] { ++defer_count; });
    loop.post([&] { seen.push_back("first"); });
    loop.post([&] {
        seen.push_back("second");
        loop.post([&] { seen.push_back("third"); });
    });
    loop.run_until([&] { return seen.size() == 3; });
    // A few more iterations: the one-shot defer must not run again.
    int ticks = 0;
    Source tick;
    std::function<void()> again = [&] {
        if (++ticks < 3) {
            tick = loop.add_timer_relative(0us, again);
        }
    };
    tick = loop.add_timer_relative(0us, again);
    loop.run_until([&] { return ticks == 3; });
    EXPECT_EQ(defer_count, 1);
    EXPECT_EQ(seen, (std::vector<std::string>{"first", "second", "third"}));
}

TEST_F(EventLoopTest, IoSourceSeesWrittenData) {
    std::array<int, 2> fds{};
    ASSERT_EQ(::pipe2(fds.data(), O_CLOEXEC | O_NONBLOCK), 0);
    EventLoop loop;
    std::string got;
    Source io = loop.add_io(fds[0], EPOLLIN, [&](int fd, std::uint32_t revents) {
        EXPECT_TRUE(revents & EPOLLIN);
        std::array<char, 16> buf{};
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n > 0) {
            got.append(buf.data(), static_cast<std::size_t>(n));
        }
    });
    ASSERT_EQ(::write(fds[1], "ping", 4), 4);
    loop.run_until([&] { return got == "ping"; });
    io.reset();
    ::close(fds[0]);
    ::close(fds[1]);
    EXPECT_EQ(got, "ping");
}

TEST_F(EventLoopTest, SignalSourceDeliversBlockedSignal) {
    EventLoop loop;
    std::uint32_t signo = 0;
    Source s = loop.add_signal(SIGUSR1, [&](const signalfd_siginfo& info) {
        signo = info.ssi_signo;
        loop.exit(0);
    });
    ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
    loop.run();
    EXPECT_EQ(signo, static_cast<std::uint32_t>(SIGUSR1));
}

TEST_F(EventLoopTest, ChildSourceReportsExitStatusAndReaps) {
    pid_t pid = -1;
    std::array<char*, 4> argv = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
                                 const_cast<char*>("exit 5"), nullptr};
    std::array<char*, 1> envp = {nullptr};
    ASSERT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv.data(), envp.data()), 0);
    EventLoop loop;
    int code = -1;
    int si_code = 0;
    Source c = loop.add_child(pid, [&](const siginfo_t& info) {
        code = info.si_status;
        si_code = info.si_code;
        loop.exit(0);
    });
    loop.run();
    EXPECT_EQ(si_code, CLD_EXITED);
    EXPECT_EQ(code, 5);
    c.reset();
    // sd-event reaped it: nothing is left to wait for.
    EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

TEST_F(EventLoopTest, CallbackMayDestroyItsOwnSource) {
    EventLoop loop;
    Source self;
    int calls = 0;
    self = loop.add_timer_relative(0us, [&] {
        ++calls;
        self.reset();  // must not free the running callback under our feet
        loop.exit(0);
    });
    loop.run();
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(self);
}

TEST_F(EventLoopTest, ExceptionInCallbackIsRethrownByRun) {
    EventLoop loop;
    Source t = loop.add_timer_relative(0us, [] { throw std::runtime_error("boom"); });
    EXPECT_THROW(
        {
            try {
                loop.run();
            } catch (const std::runtime_error& e) {
                EXPECT_STREQ(e.what(), "boom");
                throw;
            }
        },
        std::runtime_error);
}

TEST_F(EventLoopTest, SignalBlockedReflectsTheMask) {
    EXPECT_TRUE(EventLoop::signal_blocked(SIGCHLD));
    EXPECT_FALSE(EventLoop::signal_blocked(SIGUSR2));
}

TEST_F(EventLoopTest, NowFollowsTheMonotonicClock) {
    EventLoop loop;
    const auto before = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point inside;
    Source t = loop.add_timer_relative(0us, [&] {
        inside = loop.now();
        loop.exit(0);
    });
    loop.run();
    EXPECT_GE(inside, before);
    EXPECT_LE(inside, std::chrono::steady_clock::now());
}

}  // namespace
