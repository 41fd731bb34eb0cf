// ThreadPool and IntraOp: every index runs exactly once, nesting runs inline,
// concurrent callers do not interfere, ranges tile exactly.
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "ops/kernel.h"

namespace parallax {
namespace {

TEST(ThreadPoolTest, EveryIndexRunsOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.ParallelFor(n, threads, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
    }
  }
}

TEST(ThreadPoolTest, UsesWorkerThreads) {
  ThreadPool pool(4);
  std::mutex mu;
  std::vector<std::thread::id> ids;
  std::atomic<int> arrived{0};
  // Each task waits (bounded) until all four have started, so four threads
  // must have taken part when the pool has idle workers.
  pool.ParallelFor(4, 4, [&](int64_t) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ids.push_back(std::this_thread::get_id());
    }
    arrived++;
    for (int spin = 0; spin < 2000 && arrived.load() < 4; ++spin)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::unique(ids.begin(), ids.end()) - ids.begin(), 4);
}

TEST(ThreadPoolTest, NestedCallsRunInline) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  pool.ParallelFor(6, 3, [&](int64_t i) {
    const auto outer = std::this_thread::get_id();
    pool.ParallelFor(5, 3, [&](int64_t j) {
      EXPECT_EQ(std::this_thread::get_id(), outer);
      sum += i * 10 + j;
    });
  });
  int64_t want = 0;
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 5; ++j) want += i * 10 + j;
  EXPECT_EQ(sum.load(), want);
}

TEST(ThreadPoolTest, ConcurrentCallers) {
  ThreadPool pool(3);
  std::vector<std::thread> callers;
  std::vector<int64_t> sums(4, 0);
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&, c] {
      for (int rep = 0; rep < 200; ++rep) {
        std::atomic<int64_t> s{0};
        pool.ParallelFor(64, 3, [&](int64_t i) { s += i; });
        sums[static_cast<size_t>(c)] += s.load();
      }
    });
  for (auto& t : callers) t.join();
  for (int64_t s : sums) EXPECT_EQ(s, 200 * (63 * 64 / 2));
}

TEST(IntraOpTest, RangesTileExactlyAndAlign) {
  ThreadPool pool(3);
  for (int threads : {1, 2, 3}) {
    IntraOp op{&pool, threads};
    for (int64_t total : {0, 1, 5, 64, 1001}) {
      for (int64_t align : {1, 8}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(total));
        std::atomic<int> calls{0};
        op.ParallelRanges(
            total, 4,
            [&](int64_t b, int64_t e) {
              calls++;
              EXPECT_EQ(b % align, 0);
              for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
            },
            align);
        for (auto& h : hits) EXPECT_EQ(h.load(), 1);
        EXPECT_LE(calls.load(), op.Chunks(total, 4));
      }
    }
  }
}

}  // namespace
}  // namespace parallax
