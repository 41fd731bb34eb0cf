// Static shape inference for the common ops: fills in value shapes that
// ONNX shape inference (at import) and the runs so far left unknown, so the
// memory split can plan regions past values no run has computed yet (e.g.
// after a Slice whose bounds a shape subgraph computes, once a run has
// taught that Slice's shape).
//
// Pure function of a graph and the shapes known so far.
#ifndef PARALLAX_PLAN_SHAPE_INFER_H_
#define PARALLAX_PLAN_SHAPE_INFER_H_

#include <vector>

#include "graph/graph.h"
#include "plan/flops.h"

namespace parallax {

// `shapes` (per value) with the outputs of nodes whose inputs have known
// shapes (and whose shape-determining inputs are constants) filled in, in
// node order. Covered: elementwise ops (numpy broadcasting), Conv /
// MaxPool / AveragePool (ONNX, and com.parallax Conv / FusedConv / MaxPool /
// AveragePool in either layout) with explicit or VALID pads, Concat,
// Transpose, Split, Slice, Resize and Reshape with constant parameters.
// Known shapes are kept as they are.
std::vector<ValueShape> InferShapes(const Graph& g, std::vector<ValueShape> shapes);

}  // namespace parallax

#endif  // PARALLAX_PLAN_SHAPE_INFER_H_
