// Internals of the memory split (plan/memory_split.h), shared by its two
// files: memory_split.cc grows regions and chooses among them,
// memory_split_rewrite.cc plans their pieces and rewrites the graph. Not an
// interface for anything else.
#ifndef PARALLAX_PLAN_MEMORY_SPLIT_INTERNAL_H_
#define PARALLAX_PLAN_MEMORY_SPLIT_INTERNAL_H_

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "graph/graph.h"
#include "parallax/status.h"
#include "plan/memory_split.h"
#include "plan/split_map.h"

namespace parallax::split_detail {

struct RegionNode {
  NodeId node = -1;
  SplitMap map;
};

struct Region {
  std::vector<RegionNode> nodes;  // In node (execution) order.
  std::vector<ValueId> exits;     // Values read after the region (or graph outputs).
  int64_t extent = 0;             // Size of the split axis.
  int pieces = 2;
  bool even = false;  // Exits as large as the seed: kept only when the
                      // split lowers the estimated peak.
};

// Cells [lo, hi) of a value along its split axis.
struct Range {
  int64_t lo = 0, hi = 0;
  int64_t size() const { return hi - lo; }
  bool operator==(const Range&) const = default;
};

// What piece k of a region computes: the cells of each region value it
// needs (its share of the exits, and what its region readers read), and the
// cells each region node reads of each sliced input. Windowed nodes read
// overlapping cells (halos), so pieces recompute a few cells near their
// borders.
struct PiecePlan {
  std::map<ValueId, Range> rows;          // Region values this piece computes.
  std::vector<std::vector<Range>> reads;  // Per region node, per input (sliced ones).
  std::vector<bool> runs;                 // Per region node: some of its output is needed.
};

// Slices of constants (weights a piece reads its columns of), by (value,
// axis, lo, hi): made once per SplitForMemory, shared by its rewrites.
using ConstSlices = std::map<std::tuple<ValueId, int, int64_t, int64_t>, Tensor>;

struct Rewritten {
  MemorySplit split;
  std::vector<int> interior_region;  // Per value: region whose piece-internal value it is, or -1.
  ConstSlices* const_slices = nullptr;
};

// An ONNX Shape node: it reads only its input's shape, which the split
// copy knows, so the rewrite replaces one reading a region value by a constant.
bool IsShape(const Node& n);

// Distinct nodes reading `v`'s data (Shape nodes excluded).
std::vector<NodeId> Readers(const Graph& g, ValueId v);

// The cells of an exit (of `extent` along its axis) piece k of `pieces` owns.
Range Part(int64_t extent, int k, int pieces);

// Extent of `v` along `axis`, 0 when unknown.
int64_t AxisExtent(const std::vector<ValueShape>& shapes, ValueId v, int axis);

// Plans of every piece of `c`; empty when some piece cannot be planned.
std::vector<PiecePlan> PlanPieces(const Graph& g, const std::vector<ValueShape>& shapes,
                                  const Region& c);

// Cells computed over all pieces of `c` per cell of its values, at most:
// 1 when pieces never overlap, more where windows make them recompute
// cells near their borders. Infinity when `c` cannot be planned.
double Recompute(const Graph& g, const std::vector<ValueShape>& shapes, const Region& c);

// The graph with `regions` split, each emitted where its last node was
// (every outside input of the region is computed by then, and every outside
// reader of its values comes later), nodes no output needs dropped.
// Constant slices come from (and go to) `const_slices`.
Result<Rewritten> Rewrite(const Graph& g, const std::vector<ValueShape>& shapes,
                          const std::vector<Region>& regions, ConstSlices* const_slices);

// Nodes in demand order: depth-first from the graph outputs (inputs in
// order), each node just before the first node that needs it, so a value is
// computed when its reader is about to run. E.g. a decoder's cross-attention
// keys and values per layer right before that layer, not all up front.
// Nodes no output needs follow in their order.
std::vector<NodeId> DemandOrder(const Graph& g);

// `rw` with its nodes (and their origins) in `order`.
void Reorder(const std::vector<NodeId>& order, Rewritten* rw);

}  // namespace parallax::split_detail

#endif  // PARALLAX_PLAN_MEMORY_SPLIT_INTERNAL_H_
