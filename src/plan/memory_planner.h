// Liveness-based memory planning: a pure function from buffer requests to
// offsets in one arena.
//
// Each request is a buffer of `size` bytes that is written at step `first`
// and last read at step `last` (inclusive, in execution order). Two buffers
// may share bytes only if their [first, last] intervals are disjoint. The
// planner places requests largest-first at the lowest offset that does not
// overlap any already placed, lifetime-overlapping buffer (best-fit gap).
//
// Example: sizes {100, 50, 100} with lifetimes [0,1], [1,2], [2,3]:
// buffer 0 at 0, buffer 2 reuses offset 0, buffer 1 at 128 (64-aligned);
// arena = 192 bytes.
#ifndef PARALLAX_PLAN_MEMORY_PLANNER_H_
#define PARALLAX_PLAN_MEMORY_PLANNER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace parallax {

struct BufferRequest {
  size_t size = 0;
  int32_t first = 0;
  int32_t last = 0;
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // One per request, aligned.
  size_t arena_bytes = 0;
};

MemoryPlan PlanMemory(const std::vector<BufferRequest>& requests, size_t alignment = 64);

// Maximum over steps of the summed sizes of live buffers: a lower bound on
// any plan's arena size for these lifetimes.
size_t PeakLiveBytes(const std::vector<BufferRequest>& requests);

}  // namespace parallax

#endif  // PARALLAX_PLAN_MEMORY_PLANNER_H_
