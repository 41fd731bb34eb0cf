#include "plan/memory_planner.h"

#include <algorithm>
#include <numeric>

namespace parallax {
namespace {

size_t AlignUp(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Bytes a buffer occupies in the arena: at least one alignment unit.
size_t SlotBytes(size_t size, size_t alignment) {
  return AlignUp(std::max<size_t>(size, 1), alignment);
}

bool Overlaps(const BufferRequest& a, const BufferRequest& b) {
  return a.first <= b.last && b.first <= a.last;
}

// Request indices sorted by size, largest first; ties by `keys` ascending,
// then by index.
std::vector<size_t> LargestFirst(const std::vector<size_t>& sizes,
                                 const std::vector<int32_t>& keys) {
  std::vector<size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (sizes[a] != sizes[b]) return sizes[a] > sizes[b];
    return keys[a] < keys[b];
  });
  return order;
}

// Places the buffers in `order`: each at the start of the smallest gap between
// already placed buffers p with conflicts(idx, p) that holds its slot, else
// after the last of them. `conflicts` must be symmetric. O(n^2) calls.
template <typename Conflicts>
MemoryPlan PlaceBestFit(const std::vector<size_t>& slots, const std::vector<size_t>& order,
                        Conflicts&& conflicts) {
  MemoryPlan plan;
  plan.offsets.assign(slots.size(), 0);
  std::vector<size_t> placed;  // Sorted by offset, so conflicting blocks come out sorted.
  for (size_t idx : order) {
    const size_t size = slots[idx];
    // Best fit: smallest gap that holds `size`; else after the last block.
    size_t best = SIZE_MAX, best_gap = SIZE_MAX, cursor = 0;
    for (size_t p : placed) {
      if (!conflicts(idx, p)) continue;
      const size_t offset = plan.offsets[p];
      if (offset > cursor && offset - cursor >= size && offset - cursor < best_gap) {
        best = cursor;
        best_gap = offset - cursor;
      }
      cursor = std::max(cursor, offset + slots[p]);
    }
    if (best == SIZE_MAX) best = cursor;
    plan.offsets[idx] = best;
    plan.arena_bytes = std::max(plan.arena_bytes, best + size);
    auto pos = std::upper_bound(placed.begin(), placed.end(), best,
                                [&](size_t off, size_t p) { return off < plan.offsets[p]; });
    placed.insert(pos, idx);
  }
  return plan;
}

}  // namespace

MemoryPlan PlanMemory(const std::vector<BufferRequest>& requests, size_t alignment) {
  std::vector<size_t> sizes(requests.size()), slots(requests.size());
  std::vector<int32_t> keys(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    sizes[i] = requests[i].size;
    slots[i] = SlotBytes(requests[i].size, alignment);
    keys[i] = requests[i].first;
  }
  return PlaceBestFit(slots, LargestFirst(sizes, keys),
                      [&](size_t a, size_t b) { return Overlaps(requests[a], requests[b]); });
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
