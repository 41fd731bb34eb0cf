// Test helper: builds IR graphs (graph/graph.h) by hand with float32 values
// of known shapes, for the passes that take per-value shapes.
#ifndef PARALLAX_TESTS_SHAPED_GRAPH_H_
#define PARALLAX_TESTS_SHAPED_GRAPH_H_

#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "plan/flops.h"

namespace parallax::testing {

// Values and nodes in the order added; shapes() follows the values.
class ShapedGraph {
 public:
  ValueId Value(const std::string& name, Shape dims) {
    parallax::Value v;
    v.name = name;
    v.dtype = DType::kFloat32;
    v.has_shape = true;
    for (int64_t d : dims) v.dims.push_back(Dim{d, ""});
    shapes_.push_back(ValueShape{true, dims});
    return g_.AddValue(std::move(v));
  }
  ValueId Ints(const std::string& name, const std::vector<int64_t>& v) {
    const int64_t n = static_cast<int64_t>(v.size());
    shapes_.push_back(ValueShape{true, {n}});
    return g_.AddConstant(name, Tensor::FromVector(DType::kInt64, {n}, v));
  }
  ValueId Scalar(const std::string& name, int64_t v) {
    shapes_.push_back(ValueShape{true, {}});
    return g_.AddConstant(name, Tensor::FromVector(DType::kInt64, {}, std::vector<int64_t>{v}));
  }
  Node& Add(const std::string& op, std::vector<ValueId> ins, std::vector<ValueId> outs,
            int opset = 13) {
    Node n;
    n.name = op + std::to_string(g_.nodes.size());
    n.op_type = op;
    n.opset = opset;
    n.inputs = std::move(ins);
    n.outputs = std::move(outs);
    g_.nodes.push_back(std::move(n));
    return g_.nodes.back();
  }
  Graph& graph() {
    g_.RebuildLinks();
    return g_;
  }
  const std::vector<ValueShape>& shapes() const { return shapes_; }

 private:
  Graph g_;
  std::vector<ValueShape> shapes_;
};

}  // namespace parallax::testing

#endif  // PARALLAX_TESTS_SHAPED_GRAPH_H_
