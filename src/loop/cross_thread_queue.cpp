// SPDX-License-Identifier: GPL-3.0-or-later
#include "loop/cross_thread_queue.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace bzs::loop {

CrossThreadQueue::CrossThreadQueue(EventLoop& loop) {
    fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd_ < 0) {
        throw std::system_error(errno, std::generic_category(),
                                "eventfd for the cross-thread queue");
    }
    try {
        source_ = loop.add_io(fd_, EPOLLIN, [this](int, std::uint32_t) { drain(); });
    } catch (...) {
        ::close(fd_);
        throw;
    }
}

CrossThreadQueue::~CrossThreadQueue() {
    source_.reset();
    ::close(fd_);
}

bool CrossThreadQueue::push(Task task) {
    {
        const std::lock_guard lock(mu_);
        if (closed_) {
            return false;
        }
        tasks_.push_back(std::move(task));
    }
    const std::uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop is woken anyway.
    [[maybe_unused]] const auto n = ::write(fd_, &one, sizeof one);
    return true;
}

void CrossThreadQueue::close() {
    std::deque<Task> dropped;
    {
        const std::lock_guard lock(mu_);
        closed_ = true;
        dropped.swap(tasks_);
    }
}

std::size_t CrossThreadQueue::pending() const {
    const std::lock_guard lock(mu_);
    return tasks_.size();
}

void CrossThreadQueue::drain() {
    std::uint64_t count = 0;
    [[maybe_unused]] const auto n = ::read(fd_, &count, sizeof count);
    while (true) {
        Task task;
        {
            const std::lock_guard lock(mu_);
            if (tasks_.empty()) {
                return;
            }
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        task();
    }
}

}  // namespace bzs::loop
