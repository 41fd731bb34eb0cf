// Memory splitting: a graph rewrite that lowers the activation peak below
// what any schedule of the unchanged graph needs, by running regions of
// slice-separable ops piece by piece (used when a memory budget is below the
// leanest plan).
//
// A region is a set of nodes that all split along one axis of the values
// they pass between them (plan/split_map.h): attention along heads or
// windows, an MLP along rows, a CNN along its batch, or one image along its
// rows (convolutions and pooling read a few rows more than they write, so
// neighbouring pieces recompute those halo rows). It grows from its seed
// (a large value live at the peak, split along one of its axes) backwards
// over large inputs only region nodes read and forwards over every reader
// that splits the same way, alternately until neither adds a node, then is
// cut where the fewest bytes leave it. A split region runs in K pieces:
// inputs from outside that vary along the axis are Split (or Sliced per
// piece where pieces overlap; constant weights are sliced once), each piece
// runs copies of the region's nodes on its slices (windowed nodes with the
// padding of their band), one piece after another, and a Concat rebuilds each value read
// after the region (its exits) under its original value id, so the rest of
// the graph is unchanged. E.g. attention scores [1,6,1500,1500] = Q K^T ->
// Softmax -> x V run head by head; a 3-image CNN runs image by image.
//
// The pieces compute the same mathematics, but kernels may block smaller
// shapes differently, so results agree to rounding, not bit for bit.
//
// Pure functions of a graph and the value shapes one run observed.
#ifndef PARALLAX_PLAN_MEMORY_SPLIT_H_
#define PARALLAX_PLAN_MEMORY_SPLIT_H_

#include <cstddef>
#include <functional>
#include <vector>

#include "graph/graph.h"
#include "parallax/status.h"
#include "plan/flops.h"

namespace parallax {

// Inputs of a node whose bytes its kernel may write output 0 over
// (Backend::ReusableInputs); may be empty (no in-place writes assumed).
using ReusableInputsFn = std::function<std::vector<int>(const Node&)>;

// Reshape-like nodes (Reshape, Flatten, Squeeze, Unsqueeze) whose output 0
// may share input 0's bytes (the executor's aliases; KernelContext::ForwardInput).
bool ForwardsInput(const Node& n);

// Bytes of value `v` at its shape in `shapes`: 0 when unknown or not a
// tensor (sequences, optionals, strings); an undefined dtype counts as float.
size_t ValueBytes(const Graph& g, const std::vector<ValueShape>& shapes, ValueId v);

// Live activation bytes of running `graph` node by node in its order: node
// outputs (graph outputs included, graph inputs and constants excluded) from
// their producer to their last reader. Outputs of Reshape / Flatten / Squeeze
// / Unsqueeze, and outputs written over a reusable input that nothing else
// reads, share their input's bytes. `shapes` is per value; a value with an
// unknown shape counts 0 bytes.
struct PeakEstimate {
  size_t bytes = 0;
  std::vector<ValueId> live_at_peak;  // Values holding bytes at the peak step.
  std::vector<size_t> step_bytes;     // Live bytes while each node runs.
};
PeakEstimate EstimateSequentialPeak(const Graph& graph, const std::vector<ValueShape>& shapes,
                                    const ReusableInputsFn& reusable = {});

struct MemorySplit {
  Graph graph;                      // Rewritten, topologically sorted, links rebuilt.
  std::vector<NodeId> origin;       // Per node of `graph`: the input graph's node it
                                    // copies, or -1 for an inserted Split / Concat.
  std::vector<ValueShape> shapes;   // Per value of `graph`.
  int regions = 0;                  // Regions split.
  int max_pieces = 1;               // Most pieces of one region.
  bool reordered = false;           // Nodes run in demand order (DemandOrder), which
                                    // lowered the peak.
  size_t estimated_peak_bytes = 0;  // EstimateSequentialPeak of `graph`.
  bool shapes_missing = false;      // Over the budget, but estimated without the
                                    // shapes of some values (see SplitForMemory).
};

// Splits as few regions into as few pieces as it takes for the estimated
// peak to be at most `budget_bytes`: repeatedly the largest value live at the
// peak either seeds a new region or, inside a split region, doubles its
// pieces. A seed offers regions along each of its axes; where there is a
// choice they are estimated (in 2, 4 or 8 pieces) and the one with the
// lowest peak, then the fewest bytes over the budget summed over the
// nodes, is taken. A region whose exits are as large as its seed (e.g.
// attention head by head from the Q, K, V projections, whose pieces read
// their columns of the weights, to the merged context) is taken only when
// that score improves. Each candidate graph is also tried in demand order
// (every node right before its first reader needs it, depth-first from the
// outputs), kept when that lowers the peak: alone it can suffice, e.g. for a
// decoder that computes every layer's cross-attention keys up front. Fails
// with ResourceExhausted,
// naming the lowest peak reached, when no split fits, except when some
// activation shapes are unknown (e.g. after a Slice with computed bounds):
// then it returns the lowest-peak split with shapes_missing set, since the
// regions it could not grow may grow once a run of that split (stopped by
// the budget where it must) teaches the missing shapes. With nothing to
// split it returns the graph unchanged.
Result<MemorySplit> SplitForMemory(const Graph& graph, const std::vector<ValueShape>& shapes,
                                   size_t budget_bytes, const ReusableInputsFn& reusable = {});

}  // namespace parallax

#endif  // PARALLAX_PLAN_MEMORY_SPLIT_H_
