// SPDX-License-Identifier: GPL-3.0-or-later
// The daemon's one event loop: a thin RAII wrapper over sd-event. Every long-running
// piece (BLE, action runs, timers, signals) attaches here and runs on the loop's one
// thread; other threads (the web server's workers) reach it only through
// loop::CrossThreadQueue. No polling, so an idle daemon makes no wake-ups.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <unordered_map>

namespace bzs::loop {

/// Owning handle of one sd-event source. Destroying (or reset()) disables and unrefs
/// the source, so its callback never runs again. Movable, not copyable. A callback may
/// destroy its own Source: sd-event keeps the source (and the callback) alive until the
/// dispatch returns.
class Source {
  public:
    Source() = default;
    explicit Source(sd_event_source* s) noexcept : src_(s) {}
    ~Source() { reset(); }
    Source(Source&& o) noexcept : src_(o.src_) { o.src_ = nullptr; }
    Source& operator=(Source&& o) noexcept;
    Source(const Source&) = delete;
    Source& operator=(const Source&) = delete;

    /// Disables and releases the source; a no-op on an empty handle.
    void reset() noexcept;
    /// Turns the source on (SD_EVENT_ON) or off without releasing it.
    void set_enabled(bool on);
    [[nodiscard]] explicit operator bool() const { return src_ != nullptr; }
    [[nodiscard]] sd_event_source* native() const { return src_; }

  private:
    sd_event_source* src_ = nullptr;
};

/// The event loop. Callbacks run on the thread that calls run(). An exception that
/// escapes a callback stops the loop and is rethrown by run().
class EventLoop {
  public:
    using IoCallback = std::function<void(int fd, std::uint32_t revents)>;
    using TimerCallback = std::function<void()>;
    using ChildCallback = std::function<void(const siginfo_t& info)>;
    using SignalCallback = std::function<void(const signalfd_siginfo& info)>;
    using DeferCallback = std::function<void()>;

    /// Creates a private loop (sd_event_new). Throws std::system_error on failure.
    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    /// Blocks the signals for the calling thread (sigprocmask). Call at program start,
    /// before any thread exists: child and signal sources need their signals blocked.
    static void block_signals(std::initializer_list<int> signals);
    /// True if `sig` is blocked in the calling thread.
    static bool signal_blocked(int sig);

    /// Watches `fd` for epoll `events` (EPOLLIN, ...). The fd stays owned by the caller
    /// and must outlive the source.
    Source add_io(int fd, std::uint32_t events, IoCallback cb);
    /// One-shot CLOCK_MONOTONIC timer `after` from now.
    Source add_timer_relative(std::chrono::microseconds after, TimerCallback cb,
                              std::chrono::microseconds accuracy = std::chrono::milliseconds(1));
    /// Calls `cb` once when child `pid` exits (WEXITED); sd-event reaps it after the
    /// callback returns. SIGCHLD must be blocked (see block_signals).
    Source add_child(pid_t pid, ChildCallback cb);
    /// Delivers `sig` through the loop. The signal must be blocked (see block_signals).
    Source add_signal(int sig, SignalCallback cb);
    /// Runs `cb` once in a later iteration, before the loop waits again.
    Source add_defer(DeferCallback cb);
    /// Runs `cb` after every loop iteration that dispatched something.
    Source add_post(DeferCallback cb);
    /// Fire-and-forget add_defer: the loop owns the source and frees it after it ran.
    void post(DeferCallback cb);

    /// Runs until exit() is called; returns the code passed to exit(). Rethrows an
    /// exception that escaped a callback. After exit() the loop is finished for good
    /// (sd-event cannot restart), so run() is meant to be called once.
    int run();
    /// Dispatches events until `done()` is true (checked before each wait). Unlike run()
    /// it leaves the loop reusable. Rethrows an exception that escaped a callback.
    void run_until(const std::function<bool()>& done);
    /// Asks run() to return `code` once the current iteration is done.
    void exit(int code);
    /// The loop's CLOCK_MONOTONIC timestamp of the current iteration.
    [[nodiscard]] std::chrono::steady_clock::time_point now() const;
    /// For attaching sd-bus (sd_bus_attach_event).
    [[nodiscard]] sd_event* native() const { return event_; }

  private:
    struct Detail;
    friend struct Detail;
    void capture_exception(std::exception_ptr e) noexcept;

    sd_event* event_ = nullptr;
    std::exception_ptr pending_;
    std::unordered_map<sd_event_source*, Source> posted_;  ///< sources made by post()
};

}  // namespace bzs::loop
