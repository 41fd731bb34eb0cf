#include "plan/memory_planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <random>

namespace parallax {
namespace {

TEST(MemoryPlanner, EmptyGraph) {
  MemoryPlan p = PlanMemory({});
  EXPECT_EQ(p.arena_bytes, 0u);
}

TEST(MemoryPlanner, ReusesAfterLastUse) {
  // +0 +1 -0 +2 -1 -2 : buffer 2 reuses buffer 0's bytes.
  MemoryPlan p = PlanMemory({{100, 0, 1}, {50, 1, 2}, {100, 2, 3}});
  EXPECT_EQ(p.offsets[0], 0u);
  EXPECT_EQ(p.offsets[2], 0u);
  EXPECT_EQ(p.offsets[1], 128u);
  EXPECT_EQ(p.arena_bytes, 192u);
}

TEST(MemoryPlanner, OverlappingLifetimesNeverShare) {
  MemoryPlan p = PlanMemory({{64, 0, 5}, {64, 2, 3}, {64, 3, 9}});
  EXPECT_NE(p.offsets[0], p.offsets[1]);
  EXPECT_NE(p.offsets[1], p.offsets[2]);
  EXPECT_NE(p.offsets[0], p.offsets[2]);
  EXPECT_EQ(p.arena_bytes, 192u);
}

TEST(MemoryPlanner, PrefersSmallestFittingGap) {
  // Long-lived A [0,64), gap, B; a small late buffer fits in the gap.
  MemoryPlan p = PlanMemory({{256, 0, 10}, {128, 0, 1}, {256, 0, 10}, {64, 5, 6}});
  EXPECT_EQ(p.offsets[3], p.offsets[1]);
}

TEST(MemoryPlanner, RandomPlansHaveNoLiveOverlap) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BufferRequest> reqs;
    int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      int32_t first = static_cast<int32_t>(rng() % 30);
      reqs.push_back({1 + rng() % 5000, first, first + static_cast<int32_t>(rng() % 10)});
    }
    MemoryPlan p = PlanMemory(reqs);
    EXPECT_GE(p.arena_bytes, PeakLiveBytes(reqs));
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(p.offsets[i] % 64, 0u);
      EXPECT_LE(p.offsets[i] + reqs[i].size, p.arena_bytes);
      for (int j = i + 1; j < n; ++j) {
        bool live_together = reqs[i].first <= reqs[j].last && reqs[j].first <= reqs[i].last;
        bool bytes_overlap = p.offsets[i] < p.offsets[j] + reqs[j].size &&
                             p.offsets[j] < p.offsets[i] + reqs[i].size;
        EXPECT_FALSE(live_together && bytes_overlap)
            << "trial " << trial << " buffers " << i << "," << j;
      }
    }
  }
}

// Happens-before of a DAG with at most 64 nodes: bit a of ancestors[b] is
// set iff a path a -> ... -> b exists.
struct SmallDag {
  std::vector<uint64_t> ancestors;
  bool Before(int32_t a, int32_t b) const { return (ancestors[b] >> a) & 1; }
  HappensBeforeFn Fn() const {
    return [this](int32_t a, int32_t b) { return Before(a, b); };
  }
};

// Diamond with a two-node branch: A -> B1 -> B2 -> D, A -> C -> D, D -> E.
// Node ids: A 0, B1 1, B2 2, C 3, D 4, E 5.
SmallDag Diamond() {
  SmallDag dag;
  const std::vector<std::vector<int>> preds = {{}, {0}, {1}, {0}, {2, 3}, {4}};
  for (const auto& ps : preds) {
    uint64_t anc = 0;
    for (int p : ps) anc |= dag.ancestors[p] | (uint64_t{1} << p);
    dag.ancestors.push_back(anc);
  }
  return dag;
}

// a (A -> B1, C), x (B1 -> B2), y (C -> D), b (B2 -> D), d (D -> E).
std::vector<OrderedRequest> DiamondBuffers() {
  return {{256, 0, {1, 3}}, {128, 1, {2}}, {128, 3, {4}}, {64, 2, {4}}, {64, 4, {5}}};
}

TEST(OrderedMemoryPlanner, DiamondBranchesDoNotShareButJoinDoes) {
  // Conflicts: a-x, a-y, a-b, x-y, x-b, y-b, y-d, b-d. Largest first:
  // a at 0; x after a; y after a and x (x and y run on concurrent branches);
  // b after a, x, y; d conflicts only with y and b, so it reuses a's bytes
  // (a's readers B1 and C both finish before D starts).
  const SmallDag dag = Diamond();
  const auto reqs = DiamondBuffers();
  MemoryPlan p = PlanMemoryOrdered(reqs, dag.Fn());
  EXPECT_EQ(p.offsets, (std::vector<size_t>{0, 256, 384, 512, 0}));
  EXPECT_EQ(p.arena_bytes, 576u);
  EXPECT_TRUE(PlanIsValid(reqs, dag.Fn(), p));
}

TEST(OrderedMemoryPlanner, DiamondUnderOneScheduleLetsBranchesShare) {
  // The sequential schedule A B1 B2 C D E (node id = step) orders the
  // branches, so y may reuse x's bytes: same plan as PlanMemory.
  const auto reqs = DiamondBuffers();
  auto total = [](int32_t a, int32_t b) { return a < b; };
  MemoryPlan p = PlanMemoryOrdered(reqs, total);
  EXPECT_EQ(p.offsets, (std::vector<size_t>{0, 256, 256, 384, 0}));
  EXPECT_EQ(p.arena_bytes, 448u);
  MemoryPlan seq = PlanMemory({{256, 0, 3}, {128, 1, 2}, {128, 3, 4}, {64, 2, 4}, {64, 4, 5}});
  EXPECT_EQ(p.offsets, seq.offsets);
  EXPECT_EQ(p.arena_bytes, seq.arena_bytes);
  // The sequential plan is not valid when the branches run concurrently.
  EXPECT_FALSE(PlanIsValid(reqs, Diamond().Fn(), p));
}

TEST(OrderedMemoryPlanner, EmptyRequestList) {
  auto never = [](int32_t, int32_t) { return false; };
  MemoryPlan p = PlanMemoryOrdered({}, never);
  EXPECT_TRUE(p.offsets.empty());
  EXPECT_EQ(p.arena_bytes, 0u);
  EXPECT_TRUE(PlanIsValid({}, never, p));
}

TEST(OrderedMemoryPlanner, ZeroSizeBuffersTakeOneAlignmentUnit) {
  // Unordered nodes: every pair conflicts, so each buffer gets its own slot.
  const std::vector<OrderedRequest> reqs = {{0, 0, {}}, {0, 1, {}}, {100, 2, {}}};
  auto never = [](int32_t, int32_t) { return false; };
  MemoryPlan p = PlanMemoryOrdered(reqs, never);
  EXPECT_EQ(p.offsets, (std::vector<size_t>{128, 192, 0}));
  EXPECT_EQ(p.arena_bytes, 256u);
  EXPECT_TRUE(PlanIsValid(reqs, never, p));
}

TEST(OrderedMemoryPlanner, PlanIsValidRejectsBadPlans) {
  const SmallDag dag = Diamond();
  const auto reqs = DiamondBuffers();
  const MemoryPlan good = PlanMemoryOrdered(reqs, dag.Fn());
  MemoryPlan p = good;
  p.offsets.pop_back();
  EXPECT_FALSE(PlanIsValid(reqs, dag.Fn(), p));  // Offset count.
  p = good;
  p.offsets[4] = 32;
  EXPECT_FALSE(PlanIsValid(reqs, dag.Fn(), p));  // Misaligned.
  p = good;
  p.arena_bytes = 575;
  EXPECT_FALSE(PlanIsValid(reqs, dag.Fn(), p));  // Does not fit.
  p = good;
  p.offsets[4] = 384;
  EXPECT_FALSE(PlanIsValid(reqs, dag.Fn(), p));  // d over y: both live at D.
}

// Random DAG on `n` <= 64 nodes: each node gets each earlier node as a
// predecessor with probability `density`; then, if `shuffle`, node ids are
// permuted so that they are not a topological order.
SmallDag RandomDag(std::mt19937& rng, int n, double density, bool shuffle) {
  std::bernoulli_distribution edge(density);
  std::vector<uint64_t> topo;
  for (int j = 0; j < n; ++j) {
    uint64_t anc = 0;
    for (int i = 0; i < j; ++i)
      if (edge(rng)) anc |= topo[i] | (uint64_t{1} << i);
    topo.push_back(anc);
  }
  std::vector<int> id(n);
  std::iota(id.begin(), id.end(), 0);
  if (shuffle) std::shuffle(id.begin(), id.end(), rng);
  SmallDag dag;
  dag.ancestors.assign(n, 0);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i)
      if ((topo[j] >> i) & 1) dag.ancestors[id[j]] |= uint64_t{1} << id[i];
  return dag;
}

// Readers are mostly nodes after the writer; a few are arbitrary nodes.
std::vector<OrderedRequest> RandomBuffers(std::mt19937& rng, const SmallDag& dag, int count) {
  const int n = static_cast<int>(dag.ancestors.size());
  std::vector<OrderedRequest> reqs;
  for (int b = 0; b < count; ++b) {
    OrderedRequest r;
    r.size = rng() % 8 == 0 ? 0 : 1 + rng() % 5000;
    r.writer = static_cast<int32_t>(rng() % n);
    std::vector<int32_t> later;
    for (int32_t x = 0; x < n; ++x)
      if (dag.Before(r.writer, x)) later.push_back(x);
    const int readers = static_cast<int>(rng() % 4);
    for (int k = 0; k < readers; ++k) {
      if (!later.empty() && rng() % 10 != 0)
        r.readers.push_back(later[rng() % later.size()]);
      else
        r.readers.push_back(static_cast<int32_t>(rng() % n));
    }
    reqs.push_back(std::move(r));
  }
  return reqs;
}

TEST(OrderedMemoryPlanner, RandomDagPlansAreValid) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const int nodes = 1 + static_cast<int>(rng() % 64);
    const SmallDag dag = RandomDag(rng, nodes, 0.02 + 0.3 * (trial % 10) / 10.0, trial % 2);
    const auto reqs = RandomBuffers(rng, dag, static_cast<int>(rng() % 50));
    const MemoryPlan p = PlanMemoryOrdered(reqs, dag.Fn());
    ASSERT_TRUE(PlanIsValid(reqs, dag.Fn(), p)) << "trial " << trial;
    size_t biggest = 0;
    for (const auto& r : reqs) biggest = std::max(biggest, r.size);
    EXPECT_GE(p.arena_bytes, biggest) << "trial " << trial;
  }
}

TEST(OrderedMemoryPlanner, TotalOrderMatchesSequentialPlanner) {
  std::mt19937 rng(5);
  auto total = [](int32_t a, int32_t b) { return a < b; };
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<OrderedRequest> reqs;
    std::vector<BufferRequest> intervals;
    const int n = static_cast<int>(rng() % 50);
    for (int i = 0; i < n; ++i) {
      OrderedRequest r;
      r.size = rng() % 8 == 0 ? 0 : 1 + rng() % 5000;
      r.writer = static_cast<int32_t>(rng() % 30);
      const int readers = static_cast<int>(rng() % 4);
      for (int k = 0; k < readers; ++k)  // Mostly after the writer.
        r.readers.push_back(rng() % 10 == 0 ? static_cast<int32_t>(rng() % 30)
                                            : r.writer + 1 + static_cast<int32_t>(rng() % 8));
      int32_t last = r.writer;
      for (int32_t x : r.readers) last = std::max(last, x);
      intervals.push_back({r.size, r.writer, last});
      reqs.push_back(std::move(r));
    }
    const MemoryPlan ordered = PlanMemoryOrdered(reqs, total);
    const MemoryPlan seq = PlanMemory(intervals);
    ASSERT_TRUE(PlanIsValid(reqs, total, ordered)) << "trial " << trial;
    EXPECT_LE(ordered.arena_bytes, seq.arena_bytes) << "trial " << trial;
    EXPECT_EQ(ordered.offsets, seq.offsets) << "trial " << trial;
  }
}

// Plans one buffer per node of the DAG given by `preds` (node ids in
// topological order), read by all its successors; prints the time and checks
// the plan.
void PlanLargeDag(const char* shape, const std::vector<std::vector<int32_t>>& preds,
                  std::mt19937& rng) {
  const size_t nodes = preds.size(), words = (nodes + 63) / 64;
  std::vector<uint64_t> anc(nodes * words, 0);  // Row b: ancestors of b.
  std::vector<OrderedRequest> reqs(nodes);
  for (size_t b = 0; b < nodes; ++b) {
    reqs[b].size = 64 * (1 + rng() % 1000);
    reqs[b].writer = static_cast<int32_t>(b);
    for (int32_t a : preds[b]) {
      reqs[a].readers.push_back(static_cast<int32_t>(b));
      for (size_t w = 0; w < words; ++w) anc[b * words + w] |= anc[a * words + w];
      anc[b * words + a / 64] |= uint64_t{1} << (a % 64);
    }
  }
  auto before = [&](int32_t a, int32_t b) { return (anc[b * words + a / 64] >> (a % 64)) & 1; };
  const auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  const MemoryPlan p = PlanMemoryOrdered(reqs, before);
  const double cpu_ms = 1000.0 * static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  size_t total = 0;
  for (const auto& r : reqs) total += r.size;
  std::printf("PlanMemoryOrdered (%s): %zu buffers in %.1f ms (%.1f ms CPU), arena %zu of %zu\n",
              shape, nodes, ms, cpu_ms, p.arena_bytes, total);
  EXPECT_TRUE(PlanIsValid(reqs, before, p)) << shape;
}

// 3000 nodes shaped like a multi-branch model: repeatedly a fork node, 1-4
// parallel branches of 1-12 nodes, and a join reading every branch's end and
// the fork (a residual).
TEST(OrderedMemoryPlanner, Plans3000BufferBranchyModel) {
  constexpr size_t kNodes = 3000;
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> preds = {{}};
  while (preds.size() < kNodes) {
    const int32_t fork = static_cast<int32_t>(preds.size()) - 1;
    std::vector<int32_t> join = {fork};
    for (int b = 1 + static_cast<int>(rng() % 4); b > 0; --b) {
      int32_t prev = fork;
      for (int len = 1 + static_cast<int>(rng() % 12); len > 0; --len) {
        preds.push_back({prev});
        prev = static_cast<int32_t>(preds.size()) - 1;
      }
      join.push_back(prev);
    }
    preds.push_back(join);
  }
  preds.resize(kNodes);  // Preds only name earlier nodes, so any prefix is a DAG.
  PlanLargeDag("branchy", preds, rng);
}

// 3000 nodes, each with 1-2 predecessors among the 40 before it: a wide DAG
// with many dead ends, the slow case for the chain cover.
TEST(OrderedMemoryPlanner, Plans3000BufferWideDag) {
  constexpr int kNodes = 3000;
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> preds(kNodes);
  for (int b = 1; b < kNodes; ++b)
    for (int k = 1 + static_cast<int>(rng() % 2); k > 0; --k)
      preds[b].push_back(std::max(0, b - 1 - static_cast<int>(rng() % 40)));
  PlanLargeDag("wide", preds, rng);
}

}  // namespace
}  // namespace parallax
