// SPDX-License-Identifier: GPL-3.0-or-later
// Hands work from other threads (the web server's workers) to the event loop. The
// loop's state is single-threaded by design; a task pushed here runs on the loop's
// thread, in order, after the loop wakes on an eventfd.
#pragma once

#include <deque>
#include <functional>
#include <mutex>

#include "loop/event_loop.h"

namespace bzs::loop {

/// A multi-producer queue of tasks consumed by one EventLoop. push() may be called
/// from any thread; tasks run on the loop's thread, in push order, one loop iteration
/// after the eventfd became readable. An exception escaping a task stops the loop (as
/// for any loop callback); the remaining tasks stay queued. Create and destroy the
/// queue on the loop's thread.
class CrossThreadQueue {
  public:
    using Task = std::function<void()>;

    /// Creates the eventfd and watches it on `loop`. Throws std::system_error.
    explicit CrossThreadQueue(EventLoop& loop);
    /// Drops tasks that have not run.
    ~CrossThreadQueue();
    CrossThreadQueue(const CrossThreadQueue&) = delete;
    CrossThreadQueue& operator=(const CrossThreadQueue&) = delete;

    /// Queues `task` and wakes the loop. Thread-safe. False (task dropped) after close().
    bool push(Task task);
    /// Refuses further tasks and drops the queued ones (called while stopping). Thread-safe.
    void close();
    /// Tasks waiting to run. Thread-safe.
    [[nodiscard]] std::size_t pending() const;

  private:
    void drain();

    int fd_ = -1;
    mutable std::mutex mu_;
    std::deque<Task> tasks_;
    bool closed_ = false;
    Source source_;
};

}  // namespace bzs::loop
