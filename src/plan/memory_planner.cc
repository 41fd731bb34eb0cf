#include "plan/memory_planner.h"

#include <algorithm>
#include <numeric>

namespace parallax {
namespace {

size_t AlignUp(size_t x, size_t a) { return (x + a - 1) / a * a; }

bool Overlaps(const BufferRequest& a, const BufferRequest& b) {
  return a.first <= b.last && b.first <= a.last;
}

}  // namespace

MemoryPlan PlanMemory(const std::vector<BufferRequest>& requests, size_t alignment) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (requests[a].size != requests[b].size) return requests[a].size > requests[b].size;
    return requests[a].first < requests[b].first;
  });
  struct Block {
    size_t offset, end;
  };
  std::vector<size_t> placed;
  std::vector<Block> conflicts;
  for (size_t idx : order) {
    const BufferRequest& r = requests[idx];
    size_t size = AlignUp(std::max<size_t>(r.size, 1), alignment);
    conflicts.clear();
    for (size_t p : placed)
      if (Overlaps(r, requests[p]))
        conflicts.push_back(
            {plan.offsets[p],
             plan.offsets[p] + AlignUp(std::max<size_t>(requests[p].size, 1), alignment)});
    std::sort(conflicts.begin(), conflicts.end(),
              [](const Block& a, const Block& b) { return a.offset < b.offset; });
    // Best fit: smallest gap that holds `size`; else after the last block.
    size_t best = SIZE_MAX, best_gap = SIZE_MAX, cursor = 0;
    for (const Block& b : conflicts) {
      if (b.offset > cursor && b.offset - cursor >= size && b.offset - cursor < best_gap) {
        best = cursor;
        best_gap = b.offset - cursor;
      }
      cursor = std::max(cursor, b.end);
    }
    if (best == SIZE_MAX) best = cursor;
    plan.offsets[idx] = best;
    plan.arena_bytes = std::max(plan.arena_bytes, best + size);
    placed.push_back(idx);
  }
  return plan;
}

size_t PeakLiveBytes(const std::vector<BufferRequest>& requests) {
  std::vector<std::pair<int32_t, int64_t>> events;  // (step, +size at first / -size after last)
  for (const auto& r : requests) {
    events.push_back({r.first, static_cast<int64_t>(r.size)});
    events.push_back({r.last + 1, -static_cast<int64_t>(r.size)});
  }
  std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second < b.second;
  });
  int64_t live = 0, peak = 0;
  for (const auto& e : events) {
    live += e.second;
    peak = std::max(peak, live);
  }
  return static_cast<size_t>(peak);
}

}  // namespace parallax
