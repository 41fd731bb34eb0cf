// Test helper: builds IR graphs directly (no ONNX import) from nodes given
// as (inputs, outputs, implicit inputs) value-name lists, for passes tested
// alone on tiny hand-built graphs.
#ifndef PARALLAX_TESTS_TINY_GRAPH_H_
#define PARALLAX_TESTS_TINY_GRAPH_H_

#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"

namespace parallax::testing {

// Names not produced by a node are graph inputs; "" is an omitted input.
class TinyGraph {
 public:
  TinyGraph& Add(std::vector<std::string> ins, std::vector<std::string> outs,
                 std::vector<std::string> implicit = {}) {
    Node n;
    n.name = "n" + std::to_string(g_.nodes.size());
    n.op_type = "Op";
    for (const auto& s : ins) n.inputs.push_back(s.empty() ? kNoValue : Id(s));
    for (const auto& s : outs) n.outputs.push_back(Id(s));
    for (const auto& s : implicit) n.implicit_inputs.push_back(Id(s));
    g_.nodes.push_back(std::move(n));
    return *this;
  }
  Graph& Build() {
    g_.RebuildLinks();
    return g_;
  }

 private:
  ValueId Id(const std::string& name) {
    ValueId v = g_.FindValue(name);
    if (v != kNoValue) return v;
    Value val;
    val.name = name;
    return g_.AddValue(std::move(val));
  }
  Graph g_;
};

}  // namespace parallax::testing

#endif  // PARALLAX_TESTS_TINY_GRAPH_H_
