#include "plan/memory_planner.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace parallax
