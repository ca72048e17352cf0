// SPDX-License-Identifier: GPL-3.0-or-later
#include "loop/event_loop.h"

#include <pthread.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <system_error>
#include <utility>

namespace bzs::loop {

namespace {

[[noreturn]] void fail(int negative_errno, const char* what) {
    throw std::system_error(-negative_errno, std::generic_category(), what);
}

std::uint64_t to_usec(std::chrono::microseconds d) {
    return d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0;
}

}  // namespace

Source& Source::operator=(Source&& o) noexcept {
    if (this != &o) {
        reset();
        src_ = o.src_;
        o.src_ = nullptr;
    }
    return *this;
}

void Source::reset() noexcept {
    if (src_ != nullptr) {
        sd_event_source_disable_unref(src_);
        src_ = nullptr;
    }
}

void Source::set_enabled(bool on) {
    if (src_ == nullptr) {
        return;
    }
    const int r = sd_event_source_set_enabled(src_, on ? SD_EVENT_ON : SD_EVENT_OFF);
    if (r < 0) {
        fail(r, "sd_event_source_set_enabled");
    }
}

// The callback lives in a heap box passed to sd-event as userdata and freed by the
// source's destroy callback, so it lives exactly as long as the source does (sd-event
// defers that while the source is dispatching).
struct EventLoop::Detail {
    template <class F>
    struct Box {
        EventLoop* loop;
        F fn;
    };

    template <class F>
    static void destroy(void* p) {
        delete static_cast<Box<F>*>(p);
    }

    // Exceptions must not cross sd-event's C frames: park them and stop the loop.
    template <class F, class... A>
    static int call(void* userdata, A&&... args) {
        auto* box = static_cast<Box<F>*>(userdata);
        try {
            box->fn(std::forward<A>(args)...);
        } catch (...) {
            box->loop->capture_exception(std::current_exception());
        }
        return 0;
    }

    static int on_io(sd_event_source* /*s*/, int fd, std::uint32_t revents, void* ud) {
        return call<IoCallback>(ud, fd, revents);
    }
    static int on_time(sd_event_source* /*s*/, std::uint64_t /*usec*/, void* ud) {
        return call<TimerCallback>(ud);
    }
    static int on_child(sd_event_source* /*s*/, const siginfo_t* si, void* ud) {
        return call<ChildCallback>(ud, *si);
    }
    static int on_signal(sd_event_source* /*s*/, const signalfd_siginfo* si, void* ud) {
        return call<SignalCallback>(ud, *si);
    }
    static int on_defer(sd_event_source* /*s*/, void* ud) { return call<DeferCallback>(ud); }
    static int on_posted(sd_event_source* s, void* ud) {
        auto* box = static_cast<Box<DeferCallback>*>(ud);
        EventLoop* loop = box->loop;
        const int r = call<DeferCallback>(ud);
        loop->posted_.erase(s);  // freed once this dispatch returns
        return r;
    }

    // Creates a source through `add(&source, userdata)` and hands `cb` to it.
    template <class F, class Add>
    static Source attach(EventLoop* loop, F cb, const char* what, Add add) {
        auto box = std::make_unique<Box<F>>(Box<F>{loop, std::move(cb)});
        sd_event_source* raw = nullptr;
        int r = add(&raw, box.get());
        if (r < 0) {
            fail(r, what);
        }
        Source src(raw);
        r = sd_event_source_set_destroy_callback(raw, &destroy<F>);
        if (r < 0) {
            fail(r, "sd_event_source_set_destroy_callback");
        }
        (void)box.release();  // now owned by the source
        return src;
    }
};

EventLoop::EventLoop() {
    const int r = sd_event_new(&event_);
    if (r < 0) {
        fail(r, "sd_event_new");
    }
}

EventLoop::~EventLoop() {
    posted_.clear();
    sd_event_unref(event_);
}

void EventLoop::block_signals(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (const int sig : signals) {
        if (sigaddset(&set, sig) < 0) {
            throw std::system_error(errno, std::generic_category(), "sigaddset");
        }
    }
    const int r = pthread_sigmask(SIG_BLOCK, &set, nullptr);
    if (r != 0) {
        throw std::system_error(r, std::generic_category(), "pthread_sigmask");
    }
}

bool EventLoop::signal_blocked(int sig) {
    sigset_t cur;
    sigemptyset(&cur);
    if (pthread_sigmask(SIG_SETMASK, nullptr, &cur) != 0) {
        return false;
    }
    return sigismember(&cur, sig) == 1;
}

Source EventLoop::add_io(int fd, std::uint32_t events, IoCallback cb) {
    return Detail::attach(this, std::move(cb), "sd_event_add_io",
                          [&](sd_event_source** s, void* ud) {
                              return sd_event_add_io(event_, s, fd, events, &Detail::on_io, ud);
                          });
}

Source EventLoop::add_timer_relative(std::chrono::microseconds after, TimerCallback cb,
                                     std::chrono::microseconds accuracy) {
    // sd-event reads accuracy 0 as "default" (250 ms); ask for at least 1 us.
    const std::uint64_t acc = std::max<std::uint64_t>(to_usec(accuracy), 1);
    return Detail::attach(
        this, std::move(cb), "sd_event_add_time_relative", [&](sd_event_source** s, void* ud) {
            return sd_event_add_time_relative(event_, s, CLOCK_MONOTONIC, to_usec(after), acc,
                                              &Detail::on_time, ud);
        });
}

Source EventLoop::add_child(pid_t pid, ChildCallback cb) {
    return Detail::attach(
        this, std::move(cb), "sd_event_add_child", [&](sd_event_source** s, void* ud) {
            return sd_event_add_child(event_, s, pid, WEXITED, &Detail::on_child, ud);
        });
}

Source EventLoop::add_signal(int sig, SignalCallback cb) {
    return Detail::attach(this, std::move(cb), "sd_event_add_signal",
                          [&](sd_event_source** s, void* ud) {
                              return sd_event_add_signal(event_, s, sig, &Detail::on_signal, ud);
                          });
}

Source EventLoop::add_defer(DeferCallback cb) {
    return Detail::attach(this, std::move(cb), "sd_event_add_defer",
                          [&](sd_event_source** s, void* ud) {
                              return sd_event_add_defer(event_, s, &Detail::on_defer, ud);
                          });
}

Source EventLoop::add_post(DeferCallback cb) {
    return Detail::attach(this, std::move(cb), "sd_event_add_post",
                          [&](sd_event_source** s, void* ud) {
                              return sd_event_add_post(event_, s, &Detail::on_defer, ud);
                          });
}

void EventLoop::post(DeferCallback cb) {
    Source src = Detail::attach(this, std::move(cb), "sd_event_add_defer",
                                [&](sd_event_source** s, void* ud) {
                                    return sd_event_add_defer(event_, s, &Detail::on_posted, ud);
                                });
    sd_event_source* key = src.native();
    posted_.emplace(key, std::move(src));
}

int EventLoop::run() {
    const int r = sd_event_loop(event_);
    if (pending_) {
        std::exception_ptr e = std::exchange(pending_, nullptr);
        std::rethrow_exception(e);
    }
    if (r < 0) {
        fail(r, "sd_event_loop");
    }
    return r;
}

void EventLoop::run_until(const std::function<bool()>& done) {
    while (!done()) {
        const int r = sd_event_run(event_, UINT64_MAX);
        if (pending_) {
            std::exception_ptr e = std::exchange(pending_, nullptr);
            std::rethrow_exception(e);
        }
        if (r < 0) {
            fail(r, "sd_event_run");
        }
    }
}

void EventLoop::exit(int code) {
    const int r = sd_event_exit(event_, code);
    if (r < 0) {
        fail(r, "sd_event_exit");
    }
}

std::chrono::steady_clock::time_point EventLoop::now() const {
    std::uint64_t usec = 0;
    if (sd_event_now(event_, CLOCK_MONOTONIC, &usec) < 0) {
        return std::chrono::steady_clock::now();
    }
    // libstdc++'s steady_clock is CLOCK_MONOTONIC.
    return std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::microseconds(static_cast<std::int64_t>(usec))));
}

void EventLoop::capture_exception(std::exception_ptr e) noexcept {
    if (!pending_) {
        pending_ = std::move(e);
    }
    sd_event_exit(event_, -ECANCELED);
}

}  // namespace bzs::loop
