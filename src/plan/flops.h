// FLOP estimates per node (paper Appendix A), from the shapes of the node's
// inputs and outputs as seen in one run. Used to weigh branches (refinement
// policy, critical-path priorities); never for correctness.
//
// Conv: 2 * N * OC * OH * OW * (IC / group) * KH * KW; MatMul/Gemm: 2 * M * N
// * K (batched); elementwise and activations: elements of the output;
// reductions, softmax, norms: a small multiple of the input's elements; data
// movement (Reshape, Transpose, Concat, Gather...): elements moved; shape
// ops: 1. If/Loop/Scan: 1 (their cost is unknown before they run).
#ifndef PARALLAX_PLAN_FLOPS_H_
#define PARALLAX_PLAN_FLOPS_H_

#include <vector>

#include "graph/graph.h"
#include "parallax/tensor.h"

namespace parallax {

// `shapes[v]` is value v's shape (empty vector with known == false when
// unseen). Unknown shapes give the op's minimum estimate of 1; every estimate
// is >= 1. Einsum is output elements x contracted size; RNN/GRU/LSTM are
// 2 x time steps x batch x (|W| + |R|); pooling is output elements x kernel
// size; ops outside the ONNX and com.parallax domains count output elements.
struct ValueShape {
  bool known = false;
  Shape dims;
};
double EstimateNodeFlops(const Graph& graph, const Node& node,
                         const std::vector<ValueShape>& shapes);

// One estimate per node of graph.
std::vector<double> EstimateGraphFlops(const Graph& graph, const std::vector<ValueShape>& shapes);

// Shapes known before any run: constants' shapes and values whose every dim
// is known (graph.values[v].dims); the rest unknown. One entry per value.
std::vector<ValueShape> StaticValueShapes(const Graph& graph);

}  // namespace parallax

#endif  // PARALLAX_PLAN_FLOPS_H_
