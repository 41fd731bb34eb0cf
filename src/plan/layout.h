// Layout assignment: runs chains of 2-D convolutions, pooling and
// elementwise ops on channels-last (NHWC) activations, the layout oneDNN's
// convolutions prefer, so no kernel reorders activations internally.
//
// The pass finds connected regions of 4-D float32 nodes that can run
// channels-last (Conv, MaxPool/AveragePool, unary and binary elementwise,
// Concat/Split on channels, Slice with constant axes, Resize with constant
// scales or sizes, GlobalAveragePool/GlobalMaxPool, which become
// ReduceMean/ReduceMax over axes [1,2]) and
// converts every region holding at least two convolutions. Inside a region
// tensors are NHWC (value dims permuted to [N,H,W,C]); at each region input
// a Transpose node "reorder_to_nhwc/<value>" (perm [0,2,3,1]) and at each
// region output used outside the region (or a graph output) a Transpose
// "reorder_to_nchw/<value>" (perm [0,3,1,2]) is inserted, so every original
// value keeps its NCHW meaning and name outside the region. Converted Conv
// and pooling nodes move to domain "com.parallax" with channels_last=1; a
// Shape of a region tensor reads the NHWC tensor and a Gather
// "shape_to_nchw/<value>" puts its output back in NCHW order. Values that
// shape inference left without a shape but that the pass proves 4-D get
// rank-4 metadata with unknown dims.
#ifndef PARALLAX_PLAN_LAYOUT_H_
#define PARALLAX_PLAN_LAYOUT_H_

#include <cstdint>

#include "graph/graph.h"

namespace parallax {

struct LayoutStats {
  int64_t regions = 0;   // Regions converted to channels-last.
  int64_t nodes = 0;     // Nodes converted (reorders not counted).
  int64_t reorders = 0;  // Transpose nodes inserted.
};

// Converts `graph` in place (and its subgraphs, recursively); the graph stays
// topologically sorted with links rebuilt. Computes the same outputs as
// before.
LayoutStats AssignChannelsLast(Graph& graph);

}  // namespace parallax

#endif  // PARALLAX_PLAN_LAYOUT_H_
