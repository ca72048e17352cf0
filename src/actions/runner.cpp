// SPDX-License-Identifier: GPL-3.0-or-later
#include "actions/runner.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "util/unique_fd.h"

namespace bzs::actions {

namespace {

constexpr std::string_view kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr std::size_t kReadChunk = std::size_t{16} * 1024;
constexpr int kReadsPerWakeup = 16;  // then yield, so a chatty action cannot starve the loop

std::string errno_text(int err) {
    return std::generic_category().message(err);
}

/// "KEY=value" with NUL bytes dropped (they would silently cut the value short).
std::string env_entry(std::string_view key, std::string_view value) {
    std::string out(key);
    out += '=';
    for (const char c : value) {
        if (c != '\0') {
            out += c;
        }
    }
    return out;
}

using Fd = util::UniqueFd;

/// A close-on-exec pipe whose ends are >= 3, so the child's dup2 onto 0-2 can never
/// clobber them even if the daemon was started with closed standard fds.
std::optional<std::pair<Fd, Fd>> make_pipe(int& err) {
    std::array<int, 2> raw{};
    if (::pipe2(raw.data(), O_CLOEXEC) < 0) {
        err = errno;
        return std::nullopt;
    }
    Fd r(raw[0]);
    Fd w(raw[1]);
    for (Fd* f : {&r, &w}) {
        if (f->get() < 3) {
            const int moved = ::fcntl(f->get(), F_DUPFD_CLOEXEC, 3);
            if (moved < 0) {
                err = errno;
                return std::nullopt;
            }
            *f = Fd(moved);
        }
    }
    const int flags = ::fcntl(r.get(), F_GETFL);
    if (flags < 0 || ::fcntl(r.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
        err = errno;
        return std::nullopt;
    }
    return std::make_pair(std::move(r), std::move(w));
}

/// posix_spawn settings for an action: own process group, default signal state, stdin
/// from /dev/null, stdout+stderr to `out_fd`, cwd `dir`, no other fd.
class SpawnSetup {
  public:
    SpawnSetup() {
        ::posix_spawnattr_init(&attr_);
        ::posix_spawn_file_actions_init(&files_);
    }
    ~SpawnSetup() {
        ::posix_spawn_file_actions_destroy(&files_);
        ::posix_spawnattr_destroy(&attr_);
    }
    SpawnSetup(const SpawnSetup&) = delete;
    SpawnSetup& operator=(const SpawnSetup&) = delete;

    /// 0 or an errno value.
    int prepare(const std::string& dir, int out_fd) {
        // The daemon blocks SIGCHLD, SIGTERM, ...; the action must not inherit that.
        sigset_t none;
        sigemptyset(&none);
        sigset_t all;
        sigfillset(&all);
        sigdelset(&all, SIGKILL);
        sigdelset(&all, SIGSTOP);
        const auto flags = static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                              POSIX_SPAWN_SETSIGDEF);
        for (const int r :
             {::posix_spawnattr_setpgroup(&attr_, 0), ::posix_spawnattr_setsigmask(&attr_, &none),
              ::posix_spawnattr_setsigdefault(&attr_, &all),
              ::posix_spawnattr_setflags(&attr_, flags),
              ::posix_spawn_file_actions_addchdir_np(&files_, dir.c_str()),
              ::posix_spawn_file_actions_addopen(&files_, STDIN_FILENO, "/dev/null", O_RDONLY, 0),
              ::posix_spawn_file_actions_adddup2(&files_, out_fd, STDOUT_FILENO),
              ::posix_spawn_file_actions_adddup2(&files_, out_fd, STDERR_FILENO),
              ::posix_spawn_file_actions_addclosefrom_np(&files_, 3)}) {
            if (r != 0) {
                return r;
            }
        }
        return 0;
    }
    [[nodiscard]] const posix_spawnattr_t* attr() const { return &attr_; }
    [[nodiscard]] const posix_spawn_file_actions_t* files() const { return &files_; }

  private:
    posix_spawnattr_t attr_{};
    posix_spawn_file_actions_t files_{};
};

RunResult refusal(RunStatus status, std::string error) {
    RunResult r;
    r.status = status;
    r.error = std::move(error);
    return r;
}

/// Blocks one signal in the calling thread and restores the previous mask on exit.
class ScopedSignalBlock {
  public:
    explicit ScopedSignalBlock(int sig) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        const int r = ::pthread_sigmask(SIG_BLOCK, &set, &old_);
        if (r != 0) {
            throw std::system_error(r, std::generic_category(), "pthread_sigmask");
        }
    }
    ~ScopedSignalBlock() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
    ScopedSignalBlock(const ScopedSignalBlock&) = delete;
    ScopedSignalBlock& operator=(const ScopedSignalBlock&) = delete;

  private:
    sigset_t old_{};
};

}  // namespace

std::string_view run_status_name(RunStatus s) {
    switch (s) {
        case RunStatus::Ok:
            return "ok";
        case RunStatus::Failed:
            return "failed";
        case RunStatus::Timeout:
            return "timeout";
        case RunStatus::Busy:
            return "busy";
        case RunStatus::StartFailed:
            return "start_failed";
        case RunStatus::BadArguments:
            return "bad_arguments";
    }
    return "unknown";
}

core::protocol::Status to_protocol_status(RunStatus s) {
    switch (s) {
        case RunStatus::Ok:
            return core::protocol::Status::Ok;
        case RunStatus::Failed:
            return core::protocol::Status::ActionFailed;
        case RunStatus::Timeout:
            return core::protocol::Status::ActionTimeout;
        case RunStatus::Busy:
            return core::protocol::Status::ActionBusy;
        case RunStatus::StartFailed:
            return core::protocol::Status::ActionStartFailed;
        case RunStatus::BadArguments:
            return core::protocol::Status::BadArguments;
    }
    return core::protocol::Status::Internal;
}

struct Runner::Run {
    std::uint64_t id = 0;
    std::string name;
    pid_t pid = -1;  ///< also the process group id
    Fd out;          ///< read end of the output pipe; closed at EOF
    std::size_t limit = 0;
    std::string output;
    bool truncated = false;
    std::chrono::steady_clock::time_point started;
    DoneCallback on_done;

    loop::Source child;
    loop::Source io;
    loop::Source timeout;
    loop::Source grace;  ///< SIGKILL after SIGTERM, or the wait for the pipe after exit

    bool exited = false;  ///< the child was seen exiting (sd-event reaps it)
    bool eof = false;     ///< everything holding the pipe's write end is gone
    bool killed = false;  ///< the group got SIGKILL
    bool timed_out = false;
    int exit_code = 0;

    /// Reads what is available now; returns false at EOF or a read error.
    bool read_some(int max_reads) {
        std::array<char, kReadChunk> buf;
        for (int i = 0; i < max_reads; ++i) {
            const ssize_t n = ::read(out.get(), buf.data(), buf.size());
            if (n > 0) {
                const auto got = static_cast<std::size_t>(n);
                const std::size_t room = limit - std::min(limit, output.size());
                output.append(buf.data(), std::min(got, room));
                truncated = truncated || got > room;  // the rest is read and dropped
                continue;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return n < 0 && errno == EAGAIN;
        }
        return true;
    }
    void close_output() {
        io.reset();
        out.reset();
        eof = true;
    }
};

Runner::Runner(loop::EventLoop& loop, RunnerOptions options) : loop_(loop), options_(options) {}

Runner::~Runner() {
    for (auto& [id, run] : runs_) {
        run->child.reset();
        run->io.reset();
        run->timeout.reset();
        run->grace.reset();
        ::killpg(run->pid, SIGKILL);
        if (!run->exited) {
            while (::waitpid(run->pid, nullptr, 0) < 0 && errno == EINTR) {
            }
        }
    }
}

bool Runner::running(std::string_view name) const {
    return std::any_of(runs_.begin(), runs_.end(),
                       [&](const auto& entry) { return entry.second->name == name; });
}

StartResult Runner::start(const Action& action, const std::vector<std::string>& args,
                          const RunContext& ctx, DoneCallback on_done) {
    if (!loop::EventLoop::signal_blocked(SIGCHLD)) {
        throw std::logic_error("actions::Runner needs SIGCHLD blocked (EventLoop::block_signals)");
    }
    StartResult res;
    if (auto why = check_arguments(action, args)) {
        res.refusal = refusal(RunStatus::BadArguments, *why);
        return res;
    }
    if (!action.concurrent && running(action.name)) {
        res.refusal = refusal(RunStatus::Busy, "action " + action.name + " is already running");
        return res;
    }

    std::error_code ec;
    const std::filesystem::path exe = std::filesystem::absolute(action.path, ec);
    if (ec) {
        res.refusal = refusal(RunStatus::StartFailed,
                              "cannot start " + action.path.string() + ": " + ec.message());
        return res;
    }
    const std::string dir = exe.parent_path().string();

    std::vector<std::string> argv_s;
    argv_s.reserve(args.size() + 1);
    argv_s.push_back(exe.string());
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    const std::vector<std::string> env_s = {
        env_entry("PATH", kPath),
        env_entry("LANG", "C.UTF-8"),
        env_entry("BLUEZSCRIPT_ACTION", action.name),
        env_entry("BLUEZSCRIPT_DEVICE_NAME", ctx.device_name),
        env_entry("BLUEZSCRIPT_DEVICE_ID", ctx.device_id_hex),
        env_entry("BLUEZSCRIPT_REQUEST_ID", ctx.request_id),
        env_entry("BLUEZSCRIPT_TRANSPORT", ctx.transport),
    };
    // posix_spawn takes char* const[]; it does not modify the strings.
    auto c_array = [](const std::vector<std::string>& v) {
        std::vector<char*> out;
        out.reserve(v.size() + 1);
        for (const auto& s : v) {
            out.push_back(const_cast<char*>(s.c_str()));
        }
        out.push_back(nullptr);
        return out;
    };
    const std::vector<char*> argv = c_array(argv_s);
    const std::vector<char*> envp = c_array(env_s);

    auto fail = [&](int err) {
        res.refusal = refusal(RunStatus::StartFailed,
                              "cannot start " + exe.string() + ": " + errno_text(err));
        return res;
    };
    int err = 0;
    auto pipe = make_pipe(err);
    if (!pipe) {
        return fail(err);
    }
    auto& [read_end, write_end] = *pipe;
    SpawnSetup setup;
    if (err = setup.prepare(dir, write_end.get()); err != 0) {
        return fail(err);
    }
    pid_t pid = -1;
    err = ::posix_spawn(&pid, exe.c_str(), setup.files(), setup.attr(), argv.data(), envp.data());
    if (err != 0) {
        return fail(err);
    }
    write_end.reset();  // only the child (and what it starts) may hold it, so EOF means done

    auto run = std::make_unique<Run>();
    run->name = action.name;
    run->pid = pid;
    run->out = std::move(read_end);
    run->limit = action.output_limit;
    run->started = std::chrono::steady_clock::now();
    run->on_done = std::move(on_done);
    const std::uint64_t id = next_id_++;
    run->id = id;
    try {
        run->child =
            loop_.add_child(pid, [this, id](const siginfo_t& info) { on_child_exit(id, info); });
        run->io = loop_.add_io(run->out.get(), EPOLLIN,
                               [this, id](int /*fd*/, std::uint32_t /*ev*/) { on_output(id); });
        run->timeout = loop_.add_timer_relative(action.timeout, [this, id] { on_timeout(id); });
    } catch (const std::system_error& e) {
        run->child.reset();
        ::killpg(pid, SIGKILL);
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        res.refusal = refusal(RunStatus::StartFailed,
                              "cannot watch " + exe.string() + ": " + std::string(e.what()));
        return res;
    }
    runs_.emplace(id, std::move(run));
    res.started = true;
    res.run_id = id;
    return res;
}

void Runner::on_child_exit(std::uint64_t id, const siginfo_t& info) {
    const auto it = runs_.find(id);
    if (it == runs_.end()) {
        return;
    }
    Run& run = *it->second;
    run.exited = true;
    run.exit_code = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
    run.timeout.reset();  // an exited action can no longer time out
    if (!run.eof) {
        // Something it started still holds the output pipe: give it the grace period.
        arm_grace(run);
    }
    maybe_finish(id);
}

void Runner::on_output(std::uint64_t id) {
    const auto it = runs_.find(id);
    if (it == runs_.end()) {
        return;
    }
    Run& run = *it->second;
    if (!run.read_some(kReadsPerWakeup)) {
        run.close_output();
        maybe_finish(id);
    }
}

void Runner::on_timeout(std::uint64_t id) {
    const auto it = runs_.find(id);
    if (it == runs_.end()) {
        return;
    }
    Run& run = *it->second;
    run.timed_out = true;
    // The whole group, so that whatever the action started dies with it.
    ::killpg(run.pid, SIGTERM);
    arm_grace(run);
}

void Runner::arm_grace(Run& run) {
    if (run.grace) {
        return;
    }
    run.grace =
        loop_.add_timer_relative(options_.kill_grace, [this, id = run.id] { on_grace_over(id); });
}

void Runner::on_grace_over(std::uint64_t id) {
    const auto it = runs_.find(id);
    if (it == runs_.end()) {
        return;
    }
    Run& run = *it->second;
    ::killpg(run.pid, SIGKILL);
    run.killed = true;
    maybe_finish(id);
}

void Runner::maybe_finish(std::uint64_t id) {
    const auto it = runs_.find(id);
    if (it == runs_.end()) {
        return;
    }
    Run& run = *it->second;
    // Done once the child is gone and either the pipe is closed or what held it was
    // killed (a process stuck holding it must not keep the run open forever).
    if (!run.exited || !(run.eof || run.killed)) {
        return;
    }
    if (!run.eof) {
        run.read_some(kReadsPerWakeup);  // keep what was written before the kill
    }
    RunResult result;
    if (run.timed_out) {
        result.status = RunStatus::Timeout;
    } else {
        result.status = run.exit_code == 0 ? RunStatus::Ok : RunStatus::Failed;
    }
    result.exit_code = run.exit_code;
    result.output = std::move(run.output);
    result.truncated = run.truncated;
    result.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - run.started)
                             .count();
    DoneCallback done = std::move(run.on_done);
    runs_.erase(it);  // sd-event keeps the dispatching source alive until it returns
    if (done) {
        done(result);
    }
}

RunResult run_blocking(const Action& action, const std::vector<std::string>& args,
                       const RunContext& ctx, RunnerOptions options) {
    const ScopedSignalBlock block(SIGCHLD);
    loop::EventLoop loop;
    Runner runner(loop, options);
    std::optional<RunResult> result;
    StartResult started = runner.start(action, args, ctx, [&](const RunResult& r) { result = r; });
    if (!started) {
        return std::move(started.refusal);
    }
    loop.run_until([&] { return result.has_value(); });
    return std::move(*result);
}

}  // namespace bzs::actions
