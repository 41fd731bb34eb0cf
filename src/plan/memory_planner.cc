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

// Sorted, deduplicated copy.
std::vector<int32_t> SortedUnique(std::vector<int32_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

size_t IndexOf(const std::vector<int32_t>& sorted, int32_t x) {
  return static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), x) - sorted.begin());
}

// The nodes that access a buffer (writer and readers) that no other accessor
// of it happens before. By transitivity, every accessor happens before a node
// iff all of these do. Never empty; if `before` has a cycle among the
// accessors (not a partial order), returns all of them.
std::vector<int32_t> LastAccessors(const OrderedRequest& r, const HappensBeforeFn& before) {
  std::vector<int32_t> nodes = r.readers;
  nodes.push_back(r.writer);
  nodes = SortedUnique(std::move(nodes));
  std::vector<int32_t> last;
  for (int32_t x : nodes) {
    bool dominated = false;
    for (int32_t y : nodes) dominated = dominated || (x != y && before(x, y));
    if (!dominated) last.push_back(x);
  }
  return last.empty() ? nodes : last;
}

// `nodes` split into chains, each in happens-before order (every node of a
// chain happens before the next), laid out one chain after another. Built
// greedily in the input order: a node joins the first chain whose last node
// happens before it. Few chains when that order is close to a topological
// one (as NodeIds are); one per node at worst, after |nodes|^2 / 2 calls.
struct ChainCover {
  std::vector<int32_t> order;  // Node ids; chain c is [begin[c], begin[c + 1]).
  std::vector<size_t> begin;   // One per chain, then order.size().
  std::vector<size_t> rank;    // Per input index: its position in `order`.
};

ChainCover CoverWithChains(const std::vector<int32_t>& nodes, const HappensBeforeFn& before) {
  std::vector<std::vector<size_t>> chains;
  for (size_t k = 0; k < nodes.size(); ++k) {
    auto it = std::find_if(chains.begin(), chains.end(), [&](const std::vector<size_t>& c) {
      return before(nodes[c.back()], nodes[k]);
    });
    if (it == chains.end())
      chains.push_back({k});
    else
      it->push_back(k);
  }
  ChainCover cover;
  cover.rank.resize(nodes.size());
  for (const std::vector<size_t>& chain : chains) {
    cover.begin.push_back(cover.order.size());
    for (size_t k : chain) {
      cover.rank[k] = cover.order.size();
      cover.order.push_back(nodes[k]);
    }
  }
  cover.begin.push_back(cover.order.size());
  return cover;
}

// flags[r] = before(cover.order[r], node) for every r. In each chain the
// nodes that happen before `node` form a prefix (transitivity), found by
// binary search: O(sum of log(chain length)) calls instead of one per node.
void MarkNodesBefore(const ChainCover& cover, int32_t node, const HappensBeforeFn& before,
                     uint8_t* flags) {
  for (size_t c = 0; c + 1 < cover.begin.size(); ++c) {
    const size_t first = cover.begin[c], end = cover.begin[c + 1];
    size_t lo = first, hi = end;
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (before(cover.order[mid], node))
        lo = mid + 1;
      else
        hi = mid;
    }
    std::fill(flags + first, flags + lo, uint8_t{1});
    std::fill(flags + lo, flags + end, uint8_t{0});
  }
}

bool TestBit(const uint64_t* row, size_t bit) { return (row[bit / 64] >> (bit % 64)) & 1; }

// Transposes a 64 x 64 bit block in place: bit c of a[r] <-> bit r of a[c].
// Swaps off-diagonal blocks of halving size (32, 16, ..., 1).
void Transpose64(uint64_t a[64]) {
  uint64_t mask = 0x00000000FFFFFFFFull;
  for (int j = 32; j != 0; j >>= 1, mask ^= mask << j) {
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const uint64_t t = ((a[k] >> j) ^ a[k | j]) & mask;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

// `out` = transpose of the n x n bit matrix `in` (rows of `words` words).
void TransposeBits(const std::vector<uint64_t>& in, size_t n, size_t words,
                   std::vector<uint64_t>* out) {
  out->assign(n * words, 0);
  uint64_t block[64];
  for (size_t rb = 0; rb < words; ++rb) {
    for (size_t cb = 0; cb < words; ++cb) {
      for (size_t r = 0; r < 64; ++r) {
        const size_t row = rb * 64 + r;
        block[r] = row < n ? in[row * words + cb] : 0;
      }
      Transpose64(block);
      for (size_t c = 0; c < 64 && cb * 64 + c < n; ++c)
        (*out)[(cb * 64 + c) * words + rb] = block[c];
    }
  }
}

// Precedes(i, j) for all request pairs, as two n x n bit matrices (one the
// transpose of the other) so that both directions for a fixed request are
// read from one row. For each distinct writer, finds which distinct last
// accessors happen before it (MarkNodesBefore over a chain cover of them).
class PrecedenceTable {
 public:
  PrecedenceTable(const std::vector<OrderedRequest>& requests, const HappensBeforeFn& before);

  // Neither of requests i and j precedes the other.
  bool Conflict(size_t i, size_t j) const {
    return !TestBit(&preceded_by_[i * words_], j) && !TestBit(&precedes_[i * words_], j);
  }

 private:
  size_t words_ = 0;
  std::vector<uint64_t> preceded_by_;  // Row j: bit i set iff i precedes j.
  std::vector<uint64_t> precedes_;     // Row i: bit j set iff i precedes j.
};

PrecedenceTable::PrecedenceTable(const std::vector<OrderedRequest>& requests,
                                 const HappensBeforeFn& before) {
  const size_t n = requests.size();
  words_ = (n + 63) / 64;
  preceded_by_.assign(n * words_, 0);
  std::vector<std::vector<int32_t>> last(n);
  std::vector<int32_t> last_nodes;
  for (size_t i = 0; i < n; ++i) {
    last[i] = LastAccessors(requests[i], before);
    last_nodes.insert(last_nodes.end(), last[i].begin(), last[i].end());
  }
  last_nodes = SortedUnique(std::move(last_nodes));
  const ChainCover cover = CoverWithChains(last_nodes, before);
  // Request i's last accessors as positions in cover.order: first_last[i]
  // and, for the few with more than one, r for each (i, r) in extra_last.
  // Padded to whole words with a position whose flag stays 0.
  std::vector<size_t> first_last(words_ * 64, last_nodes.size());
  std::vector<std::pair<size_t, size_t>> extra_last;
  for (size_t i = 0; i < n; ++i) {
    first_last[i] = cover.rank[IndexOf(last_nodes, last[i][0])];
    for (size_t k = 1; k < last[i].size(); ++k)
      extra_last.push_back({i, cover.rank[IndexOf(last_nodes, last[i][k])]});
  }
  // Requests grouped by writer: one row of preceded_by_ per distinct writer.
  std::vector<size_t> by_writer(n);
  std::iota(by_writer.begin(), by_writer.end(), size_t{0});
  std::stable_sort(by_writer.begin(), by_writer.end(),
                   [&](size_t a, size_t b) { return requests[a].writer < requests[b].writer; });
  std::vector<uint8_t> node_before(last_nodes.size() + 1, 0);  // Per cover position.
  for (size_t g = 0; g < n;) {
    const int32_t writer = requests[by_writer[g]].writer;
    MarkNodesBefore(cover, writer, before, node_before.data());
    uint64_t* row = &preceded_by_[by_writer[g] * words_];
    for (size_t w = 0; w < words_; ++w) {
      uint64_t bits = 0;
      for (size_t b = 0; b < 64; ++b) bits |= uint64_t{node_before[first_last[w * 64 + b]]} << b;
      row[w] = bits;
    }
    for (const auto& [i, r] : extra_last)
      if (!node_before[r]) row[i / 64] &= ~(uint64_t{1} << (i % 64));
    for (++g; g < n && requests[by_writer[g]].writer == writer; ++g)
      std::copy_n(row, words_, &preceded_by_[by_writer[g] * words_]);
  }
  TransposeBits(preceded_by_, n, words_, &precedes_);
}

// Direct form of the definition in the header, for PlanIsValid.
bool PrecedesByDefinition(const OrderedRequest& a, const OrderedRequest& b,
                          const HappensBeforeFn& before) {
  if (!before(a.writer, b.writer)) return false;
  for (int32_t x : a.readers)
    if (!before(x, b.writer)) return false;
  return true;
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

MemoryPlan PlanMemoryOrdered(const std::vector<OrderedRequest>& requests,
                             const HappensBeforeFn& before, size_t alignment) {
  std::vector<size_t> sizes(requests.size()), slots(requests.size());
  std::vector<int32_t> keys(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    sizes[i] = requests[i].size;
    slots[i] = SlotBytes(requests[i].size, alignment);
    keys[i] = requests[i].writer;
  }
  const PrecedenceTable table(requests, before);
  return PlaceBestFit(slots, LargestFirst(sizes, keys),
                      [&](size_t a, size_t b) { return table.Conflict(a, b); });
}

bool PlanIsValid(const std::vector<OrderedRequest>& requests, const HappensBeforeFn& before,
                 const MemoryPlan& plan, size_t alignment) {
  const size_t n = requests.size();
  if (plan.offsets.size() != n || alignment == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    if (plan.offsets[i] % alignment != 0) return false;
    if (plan.offsets[i] > plan.arena_bytes || requests[i].size > plan.arena_bytes - plan.offsets[i])
      return false;
  }
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      // [offset, offset + size) ranges; an empty range overlaps nothing.
      const bool bytes_overlap = requests[i].size > 0 && requests[j].size > 0 &&
                                 plan.offsets[i] < plan.offsets[j] + requests[j].size &&
                                 plan.offsets[j] < plan.offsets[i] + requests[i].size;
      if (bytes_overlap && !PrecedesByDefinition(requests[i], requests[j], before) &&
          !PrecedesByDefinition(requests[j], requests[i], before))
        return false;
    }
  }
  return true;
}

}  // namespace parallax
