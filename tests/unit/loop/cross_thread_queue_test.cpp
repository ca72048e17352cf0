// SPDX-License-Identifier: GPL-3.0-or-later
#include "loop/cross_thread_queue.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace bzs::loop {
namespace {

TEST(CrossThreadQueue, TasksFromOtherThreadsRunOnTheLoopThreadInOrder) {
    EventLoop loop;
    CrossThreadQueue q(loop);
    const auto loop_thread = std::this_thread::get_id();
    std::vector<int> seen;
    bool all_on_loop = true;
    constexpr int kPerThread = 200;
    std::vector<std::thread> producers;
    for (int t = 0; t < 2; ++t) {
        producers.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                q.push([&, v = t * 1000 + i] {
                    all_on_loop = all_on_loop && std::this_thread::get_id() == loop_thread;
                    seen.push_back(v);
                });
            }
        });
    }
    loop.run_until([&] { return seen.size() == 2 * kPerThread; });
    for (auto& p : producers) p.join();
    EXPECT_TRUE(all_on_loop);
    // Each producer's tasks keep their order.
    for (int t = 0; t < 2; ++t) {
        int last = -1;
        for (const int v : seen) {
            if (v / 1000 != t) continue;
            EXPECT_EQ(v % 1000, last + 1);
            last = v % 1000;
        }
        EXPECT_EQ(last, kPerThread - 1);
    }
    EXPECT_EQ(q.pending(), 0u);
}

TEST(CrossThreadQueue, CloseDropsQueuedTasksAndRefusesNewOnes) {
    EventLoop loop;
    CrossThreadQueue q(loop);
    bool ran = false;
    auto token = std::make_shared<int>(1);
    EXPECT_TRUE(q.push([&ran, token] { ran = true; }));
    EXPECT_EQ(q.pending(), 1u);
    q.close();
    EXPECT_EQ(q.pending(), 0u);
    EXPECT_EQ(token.use_count(), 1);  // the dropped task released what it held
    EXPECT_FALSE(q.push([&ran] { ran = true; }));
    bool ticked = false;
    auto t = loop.add_timer_relative(std::chrono::milliseconds(1), [&] { ticked = true; });
    loop.run_until([&] { return ticked; });
    EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace bzs::loop
