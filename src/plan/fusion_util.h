// Pattern-matching helpers shared by the fusion passes (plan/fusion*.cc).
//
// A pass walks a graph whose producer/consumer links are current, finds
// patterns and records each rewrite in a GraphEditor; Commit() then removes
// the replaced nodes and rebuilds the links. Matching reads only links and
// nodes not yet replaced, so one pass may record many disjoint rewrites.
#ifndef PARALLAX_PLAN_FUSION_UTIL_H_
#define PARALLAX_PLAN_FUSION_UTIL_H_

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace parallax::fusion {

// The internal domain of fused ops (kernels in backends/cpu/kernels).
inline constexpr const char* kDomain = "com.parallax";

class GraphEditor {
 public:
  explicit GraphEditor(Graph& g) : g_(g), removed_(g.nodes.size(), false) {}

  Graph& graph() { return g_; }
  // True when `n` is part of a rewrite recorded in this pass.
  bool removed(NodeId n) const { return removed_[static_cast<size_t>(n)]; }
  // Replaces the nodes of `pattern` by `fused`, which takes the slot of the
  // last of them in node order (so every value the pattern reads from outside
  // is produced before it). REQUIRES: `fused` writes the pattern's outputs.
  void Replace(const std::vector<NodeId>& pattern, Node fused);
  int64_t count() const { return count_; }
  // Drops the replaced nodes and rebuilds links; returns count().
  int64_t Commit();

 private:
  Graph& g_;
  std::vector<bool> removed_;  // Replaced nodes (the slot owner is reset below).
  std::vector<std::pair<NodeId, Node>> slots_;
  int64_t count_ = 0;
};

// A match state: the pattern's nodes so far.
class Pattern {
 public:
  Pattern(GraphEditor& ed, NodeId root) : ed_(&ed), nodes_{root} {}

  const std::vector<NodeId>& nodes() const { return nodes_; }
  const Node& node(NodeId n) const { return ed_->graph().nodes[static_cast<size_t>(n)]; }
  // The single consumer of `v` when it is an ONNX `op_type` node not yet
  // replaced, v is not a graph output and nothing else reads v; the node is
  // added to the pattern. Returns -1 otherwise.
  NodeId SoleConsumer(ValueId v, const std::string& op_type);
  // Like SoleConsumer, but `v` may also be read by nodes already in the
  // pattern (e.g. x in x * Sigmoid(x)); returns the one other consumer.
  NodeId NextConsumer(ValueId v, const std::string& op_type);
  // True when every reader of `v` is in the pattern and v is not a graph output.
  bool Internal(ValueId v) const;
  bool Contains(NodeId n) const;
  void Add(NodeId n) { nodes_.push_back(n); }

 private:
  GraphEditor* ed_;
  std::vector<NodeId> nodes_;
};

bool IsGraphOutput(const Graph& g, ValueId v);
// True when the value is float32 (fusions run only on float32 data so fused
// and unfused results round alike).
bool IsFloat32(const Graph& g, ValueId v);
// The value's constant as float32, when it is a float constant.
const Tensor* FloatConstant(const Graph& g, ValueId v);
// The value of a constant whose elements (at least one) are all equal, as float.
std::optional<float> UniformConstant(const Graph& g, ValueId v);
// True when `v` is a uniform constant within 1e-6 relative of `want`.
bool IsConstant(const Graph& g, ValueId v, double want);
// The static shape of `v` when every dim is known.
std::optional<Shape> StaticShape(const Graph& g, ValueId v);
// The operand of a binary node other than `v` (kNoValue when both are v or
// the node is not binary).
ValueId OtherInput(const Node& n, ValueId v);
// The node's reduction axes (attribute before opset 18 for ReduceMean/Max,
// 13 for ReduceSum; a constant input after), or nullopt when not constant.
std::optional<std::vector<int64_t>> ReduceAxes(const Graph& g, const Node& n);
// True for an ONNX-domain node of this op type.
bool Is(const Node& n, const std::string& op_type);
// A fresh node in `domain` named after `like`, reading `inputs`, writing `outputs`.
Node MakeNode(const Node& like, const std::string& domain, const std::string& op_type, int opset,
              std::vector<ValueId> inputs, std::vector<ValueId> outputs);
Attribute FloatAttr(float f);
Attribute IntAttr(int64_t i);
Attribute IntsAttr(std::vector<int64_t> v);
Attribute StringAttr(const std::string& s);
Attribute FloatsAttr(std::vector<float> f);

// Runs `pass` (int64_t(Graph&)) on every subgraph of `g`, then on `g`;
// returns the summed counts.
template <typename F>
int64_t ForEachGraph(Graph& g, F&& pass) {
  int64_t n = 0;
  for (Node& node : g.nodes)
    for (auto& [k, a] : node.attrs)
      if (a.g) n += ForEachGraph(*a.g, pass);
  return n + pass(g);
}

}  // namespace parallax::fusion

#endif  // PARALLAX_PLAN_FUSION_UTIL_H_
