// Static shape inference for the common ops: fills in value shapes that
// ONNX shape inference (at import) and the runs so far left unknown, so the
// memory split can plan regions past values no run has computed yet (e.g. a
// transformer's attention, whose reshapes take computed target shapes).
//
// Pure function of a graph and the shapes known so far.
#ifndef PARALLAX_PLAN_SHAPE_INFER_H_
#define PARALLAX_PLAN_SHAPE_INFER_H_

#include <vector>

#include "graph/graph.h"
#include "plan/flops.h"

namespace parallax {

// `shapes` (per value) with the outputs of nodes whose inputs have known
// shapes (and whose shape-determining inputs are known) filled in, in node
// order. Shape arithmetic is evaluated on the way: the values of small int
// tensors (constants, Shape of a known shape, and Gather / Unsqueeze /
// Squeeze / Concat / Slice / Cast / Add / Sub / Mul / Div / Equal / Where /
// Max / Min over them) stand in for constant parameters, so a Reshape whose
// target an exporter computes from Shape -> Gather -> Concat is covered.
// Covered: elementwise ops (numpy broadcasting), Softmax, LayerNormalization,
// Conv / MaxPool / AveragePool (ONNX, and com.parallax Conv / FusedConv /
// MaxPool / AveragePool in either layout) with explicit or VALID pads,
// global pooling, MatMul (and com.parallax FusedMatMul / ScaledMatMul),
// Gemm, Concat, Transpose, Split, Slice, Resize, Reshape, Flatten, Squeeze,
// Unsqueeze, Expand, Gather, reductions, Shape, ConstantOfShape and Range.
// Known shapes are kept as they are.
std::vector<ValueShape> InferShapes(const Graph& g, std::vector<ValueShape> shapes);

}  // namespace parallax

#endif  // PARALLAX_PLAN_SHAPE_INFER_H_
