// SPDX-License-Identifier: GPL-3.0-or-later
// The built `bluezscriptd` binary with BLE turned off: it starts, makes its state
// private, reports unsafe actions, reloads on SIGHUP and stops cleanly on SIGTERM or
// SIGINT; it refuses to start on state others could read and on a bad configuration.
// Readiness is awaited by reading its log on a pipe, never by sleeping.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "state_dir.h"
#include "test_support.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using bzs::test::mode_of;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kDaemon = std::string(BZS_BIN_DIR) + "/bluezscriptd";
const std::string kCli = std::string(BZS_BIN_DIR) + "/bluezscript";

/// A child process with its stdout and stderr on pipes, read incrementally. Every wait
/// is bounded by one overall deadline, a safety net so a hung daemon fails the test
/// instead of hanging it; no wait relies on it for synchronisation.
class Process {
  public:
    static constexpr std::chrono::seconds kDeadline{30};

    Process(const std::vector<std::string>& argv, const std::vector<std::string>& env)
        : deadline_(std::chrono::steady_clock::now() + kDeadline) {
        std::array<int, 2> out{};
        std::array<int, 2> err{};
        if (::pipe2(out.data(), O_CLOEXEC) != 0 || ::pipe2(err.data(), O_CLOEXEC) != 0) {
            throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        // The test runner may block signals; the daemon must start with a clean mask.
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t none;
        sigemptyset(&none);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);

        std::vector<char*> cargv;
        for (const auto& a : argv) {
            cargv.push_back(const_cast<char*>(a.c_str()));
        }
        cargv.push_back(nullptr);
        std::vector<std::string> envs = env;
        std::vector<char*> cenv;
        for (auto& e : envs) {
            cenv.push_back(e.data());
        }
        cenv.push_back(nullptr);
        const int rc = ::posix_spawn(&pid_, cargv[0], &fa, &attr, cargv.data(), cenv.data());
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        ::close(out[1]);
        ::close(err[1]);
        out_fd_ = out[0];
        err_fd_ = err[0];
        if (rc != 0) {
            pid_ = -1;
            throw std::runtime_error(argv[0] + ": posix_spawn: " + std::strerror(rc));
        }
    }

    ~Process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        close_fd(out_fd_);
        close_fd(err_fd_);
    }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    /// Reads stderr until a line containing `needle` arrived. False when the process
    /// closed its output (exited) first, or at the deadline.
    bool wait_for_line(std::string_view needle) {
        while (true) {
            std::size_t start = 0;
            while (true) {
                const auto nl = err_.find('\n', start);
                if (nl == std::string::npos) {
                    break;
                }
                if (std::string_view(err_).substr(start, nl - start).find(needle) !=
                    std::string_view::npos) {
                    return true;
                }
                start = nl + 1;
            }
            if (!pump()) {
                return false;
            }
        }
    }

    void signal(int sig) const { ASSERT_EQ(::kill(pid_, sig), 0) << std::strerror(errno); }

    /// Reads all remaining output, then reaps the process. Returns its exit status, or
    /// 128 + signal; -1 if it did not exit before the deadline.
    int wait_exit() {
        while (pump()) {
        }
        const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
        if (pidfd >= 0) {
            pollfd p{pidfd, POLLIN, 0};
            const int r = ::poll(&p, 1, remaining_ms());
            ::close(pidfd);
            if (r != 1) {
                return -1;
            }
        }
        int status = 0;
        if (::waitpid(pid_, &status, 0) != pid_) {
            return -1;
        }
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

    [[nodiscard]] const std::string& err() const { return err_; }
    [[nodiscard]] const std::string& out() const { return out_; }
    [[nodiscard]] pid_t pid() const { return pid_; }

  private:
    static void close_fd(int& fd) {
        if (fd >= 0) {
            ::close(fd);
            fd = -1;
        }
    }

    [[nodiscard]] int remaining_ms() const {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline_ - std::chrono::steady_clock::now());
        return left.count() > 0 ? static_cast<int>(left.count()) : 0;
    }

    /// Waits for and reads what is available on either pipe. False once both pipes
    /// are closed, or at the deadline.
    bool pump() {
        std::array<pollfd, 2> fds{{{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}}};
        if (out_fd_ < 0 && err_fd_ < 0) {
            return false;
        }
        const int ms = remaining_ms();
        if (ms == 0) {
            ADD_FAILURE() << "the process did not finish within " << kDeadline.count()
                          << " s; stderr so far:\n"
                          << err_;
            return false;
        }
        const int r = ::poll(fds.data(), fds.size(), ms);
        if (r < 0 && errno != EINTR) {
            return false;
        }
        std::array<char, 4096> buf{};
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) {
                continue;
            }
            const ssize_t n = ::read(fds[i].fd, buf.data(), buf.size());
            if (n <= 0) {
                close_fd(i == 0 ? out_fd_ : err_fd_);
            } else {
                (i == 0 ? out_ : err_).append(buf.data(), static_cast<std::size_t>(n));
            }
        }
        return true;
    }

    pid_t pid_ = -1;
    int out_fd_ = -1;
    int err_fd_ = -1;
    std::string out_;
    std::string err_;
    std::chrono::steady_clock::time_point deadline_;
};

class DaemonTest : public ::testing::Test, protected bzs::test::StateDir {
  protected:
    void SetUp() override {
        ASSERT_TRUE(fs::exists(kDaemon)) << kDaemon << " is not built";
        ASSERT_EQ(::mkdir(actions_dir.c_str(), 0700), 0);
        script("hello", "echo hello\n");
        write_config("");
    }

    /// The shared config at log level info: the lines the tests wait for are info.
    void write_config(const std::string& extra) const {
        StateDir::write_config(extra, "log_level = \"info\"\n");
    }

    /// The environment without anything that would change how the daemon logs or
    /// which file it reads (journald, sd_notify, the config variable).
    static std::vector<std::string> clean_env() {
        std::vector<std::string> env;
        for (char** e = environ; *e != nullptr; ++e) {
            const std::string_view v(*e);
            if (v.starts_with("JOURNAL_STREAM=") || v.starts_with("NOTIFY_SOCKET=") ||
                v.starts_with("BLUEZSCRIPT_CONFIG=") || v.starts_with("LISTEN_")) {
                continue;
            }
            env.emplace_back(v);
        }
        return env;
    }

    std::unique_ptr<Process> start() const {
        return std::make_unique<Process>(
            std::vector<std::string>{kDaemon, "--config", config.string()}, clean_env());
    }

    /// Starts the daemon, waits until it is ready, and stops it with SIGTERM.
    void start_and_stop() {
        auto d = start();
        ASSERT_TRUE(d->wait_for_line("ready")) << d->err();
        d->signal(SIGTERM);
        ASSERT_EQ(d->wait_exit(), 0) << d->err();
    }

    /// Runs the daemon expecting it to refuse to start; returns its stderr.
    std::string refused_start() const {
        auto d = start();
        const int rc = d->wait_exit();
        EXPECT_NE(rc, 0) << d->err();
        EXPECT_NE(rc, -1) << "the daemon did not exit";
        EXPECT_THAT(d->err(), Not(HasSubstr("ready"))) << d->err();
        EXPECT_EQ(d->out(), "");
        return d->err();
    }
};

TEST_F(DaemonTest, StartsWithoutBleCreatesPrivateStateAndStopsOnSigterm) {
    ASSERT_FALSE(fs::exists(state_dir));
    auto d = start();
    ASSERT_TRUE(d->wait_for_line("ready")) << d->err();
    EXPECT_THAT(d->err(), HasSubstr("actions: 1 in " + actions_dir.string()));
    EXPECT_THAT(d->err(), HasSubstr("devices paired: 0, waiting for their phone: 0"));

    EXPECT_EQ(mode_of(state_dir), 0700U);
    EXPECT_EQ(mode_of(key_path), 0600U);
    EXPECT_EQ(mode_of(db_path), 0600U);
    for (const auto* f : {"bluezscript.db-wal", "bluezscript.db-shm"}) {
        if (fs::exists(state_dir / f)) {
            EXPECT_EQ(mode_of(state_dir / f) & 0077, 0U) << f;
        }
    }

    d->signal(SIGTERM);
    EXPECT_EQ(d->wait_exit(), 0) << d->err();
    EXPECT_THAT(d->err(), HasSubstr("stopping"));
    EXPECT_EQ(d->out(), "") << "the daemon logs to stderr only";
}

TEST_F(DaemonTest, StopsOnSigint) {
    auto d = start();
    ASSERT_TRUE(d->wait_for_line("ready")) << d->err();
    d->signal(SIGINT);
    EXPECT_EQ(d->wait_exit(), 0) << d->err();
}

TEST_F(DaemonTest, SeesDevicesAddedWithTheCliAndKeepsTheirKey) {
    const auto r = bzs::test::run_command({kCli, "--config", config.string(), "pair", "add",
                                           "alice", "--actions", "hello", "--no-qr"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string key = bzs::test::read_file(key_path);
    auto d = start();
    ASSERT_TRUE(d->wait_for_line("ready")) << d->err();
    // Added, not paired yet: its phone has not used the code.
    EXPECT_THAT(d->err(), HasSubstr("devices paired: 0, waiting for their phone: 1"));
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait_exit(), 0) << d->err();
    EXPECT_EQ(bzs::test::read_file(key_path), key) << "the daemon must not replace the key file";
}

TEST_F(DaemonTest, RefusesAMasterKeyOthersCanRead) {
    start_and_stop();
    ASSERT_EQ(::chmod(key_path.c_str(), 0644), 0);
    const auto err = refused_start();
    EXPECT_THAT(err, HasSubstr(key_path.string()));
    EXPECT_THAT(err, HasSubstr("chmod 600"));
}

// Issue 18, item 2: a deleted master key beside a database with secrets is not
// replaced by a new one; the daemon says how to restore it.
TEST_F(DaemonTest, RefusesToReplaceALostMasterKey) {
    start_and_stop();  // the first start makes the Pi's key, encrypted
    ASSERT_TRUE(std::filesystem::remove(key_path));
    const auto err = refused_start();
    EXPECT_THAT(err, HasSubstr(key_path.string() + " is missing"));
    EXPECT_THAT(err, HasSubstr("Restore master.key from your backup"));
    EXPECT_FALSE(std::filesystem::exists(key_path));
}

// Issue 18, item 3: a damaged database stops the start with a message naming
// the file and what to do, not an abort.
TEST_F(DaemonTest, ADamagedDatabaseIsNamedAtStart) {
    start_and_stop();
    {
        // Overwrite everything after the header page: the schema's tables are gone.
        std::fstream f(db_path, std::ios::in | std::ios::out | std::ios::binary);
        ASSERT_TRUE(f);
        f.seekp(0, std::ios::end);
        const auto size = static_cast<std::streamoff>(f.tellp());
        ASSERT_GT(size, 4096);
        f.seekp(4096);
        const std::string junk(static_cast<std::size_t>(size - 4096), '\xff');
        f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    const auto err = refused_start();
    EXPECT_THAT(err, HasSubstr("cannot start: the database " + db_path.string() + " is damaged"));
    EXPECT_THAT(err, HasSubstr("PRAGMA integrity_check"));
}

TEST_F(DaemonTest, RefusesADatabaseOthersCanRead) {
    start_and_stop();
    ASSERT_EQ(::chmod(db_path.c_str(), 0644), 0);
    const auto err = refused_start();
    EXPECT_THAT(err, HasSubstr(db_path.string()));
    EXPECT_THAT(err, HasSubstr("chmod 600"));
}

TEST_F(DaemonTest, RefusesAStateFolderOthersCanRead) {
    ASSERT_EQ(::mkdir(state_dir.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(state_dir.c_str(), 0755), 0);  // whatever the umask
    const auto err = refused_start();
    EXPECT_THAT(err, HasSubstr(state_dir.string()));
    EXPECT_THAT(err, HasSubstr("chmod 700"));
    // Nothing was created in a folder that is not private.
    EXPECT_FALSE(fs::exists(key_path));
    EXPECT_FALSE(fs::exists(db_path));
}

TEST_F(DaemonTest, RefusesAnUnknownConfigKey) {
    write_config("[security]\nrequre_challenge = true\n");
    const auto err = refused_start();
    EXPECT_THAT(err, HasSubstr(config.string()));
    EXPECT_THAT(err, HasSubstr("security.requre_challenge"));
    EXPECT_FALSE(fs::exists(state_dir));
}

TEST_F(DaemonTest, RefusesABadConfigValue) {
    write_config("[limits]\nlink_max_failures_per_minute = 0\n");
    const auto err = refused_start();
    EXPECT_THAT(err, HasSubstr("limits.link_max_failures_per_minute"));
    EXPECT_THAT(err, HasSubstr("1..10000"));
    EXPECT_THAT(err, HasSubstr("got 0"));
}

TEST_F(DaemonTest, RefusesAMissingConfigFile) {
    fs::remove(config);
    const auto err = refused_start();
    EXPECT_THAT(err, HasSubstr(config.string()));
}

TEST_F(DaemonTest, ReportsAWorldWritableActionAsRefused) {
    script("shared", "echo shared\n", 0777);
    auto d = start();
    ASSERT_TRUE(d->wait_for_line("ready")) << d->err();
    EXPECT_THAT(d->err(), HasSubstr("refused: shared: the file is writable by group or others"));
    EXPECT_THAT(d->err(), HasSubstr("actions: 1 in"));  // only hello
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait_exit(), 0) << d->err();
}

TEST_F(DaemonTest, ReportsAnActionsFolderOthersCanWriteAndLoadsNothing) {
    ASSERT_EQ(::chmod(actions_dir.c_str(), 0777), 0);
    auto d = start();
    ASSERT_TRUE(d->wait_for_line("ready")) << d->err();
    EXPECT_THAT(d->err(), HasSubstr("refused: " + actions_dir.string() +
                                    ": the actions directory is writable by group or others"));
    EXPECT_THAT(d->err(), HasSubstr("actions: 0 in"));
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait_exit(), 0) << d->err();
}

TEST_F(DaemonTest, SighupReloadsTheActions) {
    auto d = start();
    ASSERT_TRUE(d->wait_for_line("ready")) << d->err();
    script("second", "echo second\n");
    script("unsafe", "echo unsafe\n", 0722);
    d->signal(SIGHUP);
    ASSERT_TRUE(d->wait_for_line("actions reloaded: 2")) << d->err();
    EXPECT_THAT(d->err(), HasSubstr("refused: unsafe:"));
    d->signal(SIGTERM);
    EXPECT_EQ(d->wait_exit(), 0) << d->err();
}

}  // namespace
