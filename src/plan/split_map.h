// Split maps: how one node's computation divides along an axis, the rule
// the memory split (plan/memory_split.h) grows its regions by.
//
// A node "splits along axis a of input i" when each slice of its output 0
// along one output axis is computed from the matching slices of some inputs
// along their axes and the whole of the others. E.g. MatMul A [M,K] x B [K,N]
// sliced along M of A reads B whole and writes rows of Y; Softmax over the
// last axis splits along any other axis; Conv splits along the batch axis.
//
// Pure functions of a node, its graph (for constant inputs such as Slice
// axes) and the value shapes one run observed.
#ifndef PARALLAX_PLAN_SPLIT_MAP_H_
#define PARALLAX_PLAN_SPLIT_MAP_H_

#include <optional>
#include <vector>

#include "graph/graph.h"
#include "plan/flops.h"

namespace parallax {

// A sliding window along a spatial axis (Conv, pooling): output cells
// [a, b) read input cells [a * stride - pad, (b - 1) * stride - pad + span),
// the part of that outside the input being the node's padding. An
// upsampling node (nearest Resize by an integer factor) computes output
// cells in aligned groups of `upsample` from one input cell each: [a, b),
// a and b multiples of `upsample`, read [a / upsample, b / upsample).
struct AxisWindow {
  int64_t stride = 1, pad = 0, span = 1;
  int64_t upsample = 1;
  int spatial_dim = 0;   // Index of the axis among the node's spatial axes:
  int spatial_rank = 0;  // its begin pad is pads[spatial_dim], its end pad
                         // pads[spatial_dim + spatial_rank]; 0: no pads.
};

// Every output is sliced along out_axis; input i is read sliced along
// in_axes[i], or whole where in_axes[i] is -1. Sliced inputs have the same
// extent along their axis as the output along out_axis, except input 0 when
// `window` is set (a piece of the output reads the window's input cells),
// and the inputs of a Concat along the split axis: input i covers output
// cells [offsets[i], offsets[i] + its extent).
struct SplitMap {
  int out_axis = -1;
  std::vector<int> in_axes;
  std::optional<AxisWindow> window;
  std::vector<int64_t> offsets;
};

// How `n` splits when its input `in` is sliced along `axis`; nullopt when it
// does not split that way or shapes are unknown. Only Split may have
// several outputs.
// Covered: elementwise ops (numpy broadcasting), MatMul / ScaledMatMul /
// FusedMatMul (batch, M and N axes; along N a FusedMatMul's bias and
// residual are sliced too; operands read through perm_a / perm_b along
// their own axes), Gemm (rows), Softmax / LogSoftmax /
// LayerNormalization (other than the normalised axes), Transpose, Reshape /
// Flatten / Squeeze / Unsqueeze (an axis they keep whole; Reshape / Flatten
// also one they merge with the axes after it, as a window; Reshape also one
// it splits into it and the axes after it, e.g. [T, H*D] -> [T, H, D] along
// the heads, each head reading a window of D cells), Expand, Gather
// (other than the gathered axis), Concat (along any axis), Split and Slice
// (other than their axes), reductions
// (other than the reduced axes), and per-sample ops along the batch axis
// (Conv, pooling, BatchNormalization, InstanceNormalization, and their
// com.parallax channels-last forms), and Conv / MaxPool / AveragePool (ONNX
// or com.parallax, explicit pads, no ceil_mode) along a spatial axis with a
// window, and nearest Resize by an integer factor (constant scales) along
// any axis.
std::optional<SplitMap> MapSplit(const Graph& g, const std::vector<ValueShape>& shapes,
                                 const Node& n, int in, int axis);

// Ops that compute each output cell from the same cell of their inputs
// (numpy broadcasting): Add, Relu, Cast, Where, ...
bool IsElementwise(const Node& n);

// ONNX MatMul and com.parallax FusedMatMul / ScaledMatMul: A [..., M, K] x
// B [..., K, N], whatever else they fuse.
bool IsMatMulFamily(const Node& n);

// ONNX ReduceMean, ReduceSum, ReduceMax, ... (every Reduce* op).
bool IsReduction(const Node& n);

// The window of Conv / MaxPool / AveragePool `n` (ONNX, or com.parallax
// Conv / FusedConv / MaxPool / AveragePool) along its spatial dim `d` of
// `sr`, with its end pad in `pad_end`; nullopt unless its pads are explicit
// or VALID and ceil_mode is off. A conv's kernel comes from W's shape in
// `shapes`.
std::optional<AxisWindow> SpatialWindow(const std::vector<ValueShape>& shapes, const Node& n, int d,
                                        int sr, int64_t* pad_end);

// The shape of `v` in `shapes`, or nullptr when it is not known.
const Shape* KnownShape(const std::vector<ValueShape>& shapes, ValueId v);

// True for nodes whose piece copies need a per-piece shape input (Reshape,
// Expand: input 1 names the output dims, so each piece gets its own).
bool NeedsPieceShape(const Node& n);

}  // namespace parallax

#endif  // PARALLAX_PLAN_SPLIT_MAP_H_
