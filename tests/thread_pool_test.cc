// ThreadPool and IntraOp: every index runs exactly once, nesting runs inline,
// concurrent callers do not interfere, ranges tile exactly.
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

#include "ops/kernel.h"

namespace parallax {
namespace {

TEST(ThreadPoolTest, EveryIndexRunsOnce) {
  for (int spin_us : {0, ThreadPool::kDefaultSpinUs}) {
    for (int threads : {1, 2, 3, 8}) {
      ThreadPool pool(threads, spin_us);
      EXPECT_EQ(pool.num_threads(), threads);
      for (int64_t n : {0, 1, 2, 7, 1000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.ParallelFor(n, threads, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
      }
    }
  }
}

double ProcessCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// Workers poll for at most the spin window after their last work, then sleep:
// an idle pool burns (almost) no CPU, where three spinning workers would burn
// about three times the wall time.
TEST(ThreadPoolTest, IdleWorkersSleepAfterTheSpinWindow) {
  ThreadPool pool(4, /*spin_us=*/2000);
  std::atomic<int64_t> sum{0};
  pool.ParallelFor(64, 4, [&](int64_t i) { sum += i; });
  EXPECT_EQ(sum.load(), 64 * 63 / 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Past the window.
  const double cpu0 = ProcessCpuMs();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_LT(ProcessCpuMs() - cpu0, 60.0);
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

// A random DAG over n tasks (edges only from lower to higher ids).
std::vector<std::vector<int32_t>> RandomDag(int n, uint32_t seed) {
  std::vector<std::vector<int32_t>> succs(static_cast<size_t>(n));
  uint32_t x = seed * 2654435761u + 1;
  for (int a = 0; a < n; ++a)
    for (int b = a + 1; b < n; ++b) {
      x = x * 1664525u + 1013904223u;
      if ((x >> 24) % 5 == 0) succs[static_cast<size_t>(a)].push_back(b);
    }
  return succs;
}

TEST(ThreadPoolTest, RunGraphRespectsDependencies) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (uint32_t seed = 0; seed < 20; ++seed) {
      const int n = 1 + static_cast<int>(seed * 7 % 40);
      auto succs = RandomDag(n, seed);
      std::vector<double> prio(static_cast<size_t>(n));
      for (int t = 0; t < n; ++t) prio[static_cast<size_t>(t)] = (t * 37) % 11;
      ThreadPool::TaskGraph graph(succs, prio);
      std::vector<std::atomic<int>> done(static_cast<size_t>(n));
      std::atomic<int> running{0}, max_running{0};
      std::atomic<bool> order_ok{true};
      for (int rep = 0; rep < 3; ++rep) {  // The graph is reusable.
        for (auto& d : done) d = 0;
        pool.RunGraph(graph, threads, [&](int32_t t) {
          int now = ++running;
          int seen = max_running.load();
          while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
          }
          for (int a = 0; a < n; ++a)
            for (int32_t s : succs[static_cast<size_t>(a)])
              if (s == t && done[static_cast<size_t>(a)].load() == 0) order_ok = false;
          done[static_cast<size_t>(t)]++;
          --running;
        });
        for (int t = 0; t < n; ++t) EXPECT_EQ(done[static_cast<size_t>(t)].load(), 1);
      }
      EXPECT_TRUE(order_ok.load()) << "threads " << threads << " seed " << seed;
      EXPECT_LE(max_running.load(), threads);
    }
  }
}

TEST(ThreadPoolTest, RunGraphRunsIndependentTasksConcurrently) {
  ThreadPool pool(3);
  // Three independent tasks each wait (bounded) for the others to start.
  ThreadPool::TaskGraph graph({{}, {}, {}}, {0, 0, 0});
  std::atomic<int> arrived{0};
  std::atomic<int> saw_all{0};
  pool.RunGraph(graph, 3, [&](int32_t) {
    arrived++;
    for (int spin = 0; spin < 2000 && arrived.load() < 3; ++spin)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (arrived.load() == 3) saw_all++;
  });
  EXPECT_EQ(saw_all.load(), 3);
}

TEST(ThreadPoolTest, RunGraphTasksRecruitIdleWorkersForParallelFor) {
  // One task (a single-branch model): its ParallelFor must use all threads.
  ThreadPool pool(3);
  ThreadPool::TaskGraph graph({{}}, {0});
  std::mutex mu;
  std::vector<std::thread::id> ids;
  pool.RunGraph(graph, 3, [&](int32_t) {
    std::atomic<int> arrived{0};
    pool.ParallelFor(3, 3, [&](int64_t) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ids.push_back(std::this_thread::get_id());
      }
      arrived++;
      for (int spin = 0; spin < 2000 && arrived.load() < 3; ++spin)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  });
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::unique(ids.begin(), ids.end()) - ids.begin(), 3);
}

TEST(ThreadPoolTest, RunGraphHighestPriorityFirst) {
  ThreadPool pool(1);  // One thread: the order is exactly the priority order.
  ThreadPool::TaskGraph graph({{3}, {}, {}, {}}, {1, 5, 3, 10});
  std::vector<int32_t> order;
  pool.RunGraph(graph, 1, [&](int32_t t) { order.push_back(t); });
  EXPECT_EQ(order, (std::vector<int32_t>{1, 2, 0, 3}));
}

TEST(ThreadPoolTest, NestedRunGraphFromATask) {
  ThreadPool pool(3);
  ThreadPool::TaskGraph outer({{2}, {2}, {}}, {0, 0, 0});
  ThreadPool::TaskGraph inner0({{1}, {}}, {0, 0});
  ThreadPool::TaskGraph inner1({{1}, {}}, {0, 0});
  std::atomic<int> count{0};
  pool.RunGraph(outer, 3, [&](int32_t t) {
    if (t < 2) pool.RunGraph(t == 0 ? inner0 : inner1, 3, [&](int32_t) { count++; });
    count++;
  });
  EXPECT_EQ(count.load(), 7);
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
