// Liveness-based memory planning: pure functions from buffer requests to
// offsets in one arena.
//
// Sequential schedules (PlanMemory): each request is a buffer of `size` bytes
// that is written at step `first` and last read at step `last` (inclusive, in
// execution order). Two buffers may share bytes only if their [first, last]
// intervals are disjoint.
//
// Concurrent schedules (PlanMemoryOrdered): each request is a buffer written
// by one node and read by others; `before` is the happens-before order of
// nodes that holds in every schedule. Two buffers may share bytes only if all
// accesses of one provably finish before the other is written.
//
// Both planners place requests largest-first at the lowest offset that does
// not overlap any already placed, conflicting buffer (best-fit gap). Every
// buffer, even one of size 0, occupies at least one alignment unit, so live
// buffers never share an address.
//
// Example: sizes {100, 50, 100} with lifetimes [0,1], [1,2], [2,3]:
// buffer 0 at 0, buffer 2 reuses offset 0, buffer 1 at 128 (64-aligned);
// arena = 192 bytes.
#ifndef PARALLAX_PLAN_MEMORY_PLANNER_H_
#define PARALLAX_PLAN_MEMORY_PLANNER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
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

// A buffer written by node `writer` and read by nodes `readers` (may be empty,
// e.g. a graph output; duplicates are fine).
struct OrderedRequest {
  size_t size = 0;
  int32_t writer = 0;
  std::vector<int32_t> readers;
};

// before(a, b): node a finishes before node b starts in every schedule. Must
// be a strict partial order (irreflexive, transitive) and pure (it may be
// called many times for the same pair).
using HappensBeforeFn = std::function<bool(int32_t, int32_t)>;

// Buffer i precedes buffer j iff before(x, j.writer) for x = i.writer and for
// every x in i.readers. Buffers i and j may share bytes iff i precedes j or j
// precedes i; otherwise they conflict (may be live at the same time).
//
// Placement is PlanMemory's (largest first, ties by writer then index;
// best-fit gap among conflicting placed buffers). When before(a, b) is a < b
// and first = writer, last = max(writer, readers), buffers conflict exactly
// when their intervals overlap, so the plan equals PlanMemory's.
//
// Cost: O(n^2) time and n^2 / 4 bytes of scratch for n requests (2.2 MB for
// 3000). Relies on transitivity to call `before` sparingly: the nodes that
// last access some buffer are split into happens-before chains, and per
// distinct writer a binary search per chain finds the nodes before it. Few
// chains when node ids roughly follow a topological order: 3000 buffers of
// a branchy model take ~0.1M calls; a very wide DAG ~6M; at worst (no two
// nodes ordered) L^2 / 2 + W * L for L last accessors and W writers.
MemoryPlan PlanMemoryOrdered(const std::vector<OrderedRequest>& requests,
                             const HappensBeforeFn& before, size_t alignment = 64);

// True iff `plan` has one offset per request, every offset is a multiple of
// `alignment`, every buffer fits in [0, arena_bytes), and no two conflicting
// buffers (neither precedes the other) overlap in [offset, offset + size).
// Checks the definition directly (O(n^2) pairs, independent of the planner's
// tables); for tests and debug checks.
bool PlanIsValid(const std::vector<OrderedRequest>& requests, const HappensBeforeFn& before,
                 const MemoryPlan& plan, size_t alignment = 64);

}  // namespace parallax

#endif  // PARALLAX_PLAN_MEMORY_PLANNER_H_
