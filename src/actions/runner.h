// SPDX-License-Identifier: GPL-3.0-or-later
// Runs actions as child processes on the event loop: no shell, a clean environment,
// stdin from /dev/null, stdout and stderr merged into one capped capture, its own
// process group (so a timeout kills everything it started), and a timeout.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "actions/registry.h"
#include "core/protocol/protocol.h"
#include "loop/event_loop.h"

namespace bzs::actions {

/// Who asked for a run; passed to the action as BLUEZSCRIPT_* environment variables.
struct RunContext {
    std::string device_name;    ///< BLUEZSCRIPT_DEVICE_NAME
    std::string device_id_hex;  ///< BLUEZSCRIPT_DEVICE_ID
    std::string request_id;     ///< BLUEZSCRIPT_REQUEST_ID
    std::string transport;      ///< BLUEZSCRIPT_TRANSPORT ("ble", "cli", ...)
};

enum class RunStatus {
    Ok,            ///< exited 0
    Failed,        ///< exited non-zero or was killed by a signal
    Timeout,       ///< killed at its timeout
    Busy,          ///< refused: already running and not concurrent
    StartFailed,   ///< refused: could not be started (exec failed, ...)
    BadArguments,  ///< refused: arguments not allowed by the action's metadata
};
/// "ok", "failed", "timeout", "busy", "start_failed", "bad_arguments".
std::string_view run_status_name(RunStatus s);
/// The protocol status a run reports to the client.
core::protocol::Status to_protocol_status(RunStatus s);

struct RunResult {
    RunStatus status = RunStatus::StartFailed;
    int exit_code = 0;       ///< exit status, or -signal if killed; 0 when refused
    std::string output;      ///< stdout and stderr merged, at most output_limit bytes
    bool truncated = false;  ///< output went past output_limit (the rest was discarded)
    std::int64_t duration_ms = 0;
    std::string error;  ///< why a run was refused (Busy, StartFailed, BadArguments)
};

struct RunnerOptions {
    /// Between SIGTERM and SIGKILL at a timeout; also how long to wait for the output
    /// pipe to close after the action exited before killing what still holds it.
    std::chrono::milliseconds kill_grace{2000};
};

/// What start() did: started (with an id) or refused (with a result saying why).
struct StartResult {
    bool started = false;
    std::uint64_t run_id = 0;  ///< valid when started
    RunResult refusal;         ///< valid when !started
    [[nodiscard]] explicit operator bool() const { return started; }
};

/// Runs actions on an EventLoop. SIGCHLD must be blocked in the calling thread
/// (EventLoop::block_signals). Destroying the Runner SIGKILLs the process groups of
/// runs still in progress, reaps them and does not call their callbacks.
class Runner {
  public:
    using DoneCallback = std::function<void(const RunResult&)>;

    explicit Runner(loop::EventLoop& loop, RunnerOptions options = {});
    ~Runner();
    Runner(const Runner&) = delete;
    Runner& operator=(const Runner&) = delete;

    /// Starts `action` with `args` (passed verbatim as argv[1..], never through a
    /// shell). `on_done` is called from the loop once the action exited and its output
    /// was collected; the run no longer counts as running by then. Refusals (Busy,
    /// BadArguments, StartFailed) are returned at once and `on_done` is not called.
    /// The process runs in the action's directory with only PATH, LANG and the
    /// BLUEZSCRIPT_* variables of `ctx` in its environment.
    StartResult start(const Action& action, const std::vector<std::string>& args,
                      const RunContext& ctx, DoneCallback on_done);

    /// True while a run of the action called `name` is in progress.
    [[nodiscard]] bool running(std::string_view name) const;
    /// Runs in progress.
    [[nodiscard]] std::size_t active() const { return runs_.size(); }

  private:
    struct Run;
    void on_child_exit(std::uint64_t id, const siginfo_t& info);
    void on_output(std::uint64_t id);
    void on_timeout(std::uint64_t id);
    void on_grace_over(std::uint64_t id);
    void arm_grace(Run& run);
    void maybe_finish(std::uint64_t id);

    loop::EventLoop& loop_;
    RunnerOptions options_;
    std::uint64_t next_id_ = 1;
    std::map<std::uint64_t, std::unique_ptr<Run>> runs_;
};

/// Runs `action` to completion on a private EventLoop and returns its result (refusals
/// included). Blocks SIGCHLD for the call's duration. For `bluezscript actions run`.
RunResult run_blocking(const Action& action, const std::vector<std::string>& args,
                       const RunContext& ctx, RunnerOptions options = {});

}  // namespace bzs::actions
