// The Parallax IR: a graph as plain data addressed by integer ids.
//
// Values (tensors) and nodes live in vectors; ValueId / NodeId index them.
// Nodes are kept in a topological order after import. Passes (shape
// inference, constant folding, dead-node removal, memory planning, later
// partitioning and branch analysis) read a Graph and return their own tables
// indexed by these ids. A Graph owns its subgraphs (If/Loop/Scan bodies)
// through node attributes; a subgraph reaches outer values only through
// `Graph::captures`, and the owning node lists those outer values in
// `Node::implicit_inputs` so outer-graph liveness sees them.
#ifndef PARALLAX_GRAPH_GRAPH_H_
#define PARALLAX_GRAPH_GRAPH_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "parallax/status.h"
#include "parallax/tensor.h"

namespace parallax {

using ValueId = int32_t;
using NodeId = int32_t;
inline constexpr ValueId kNoValue = -1;

// One dimension: a known size, or a symbol ("batch"), or unknown.
struct Dim {
  int64_t size = -1;   // >= 0 when known.
  std::string symbol;  // Set for named symbolic dims.
  bool known() const { return size >= 0; }
};
std::string DimsToString(const std::vector<Dim>& dims);

struct Value {
  std::string name;
  DType dtype = DType::kUndefined;
  bool has_shape = false;  // False when even the rank is unknown.
  std::vector<Dim> dims;
  NodeId producer = -1;  // -1 for graph inputs, initializers, captures.
  std::vector<NodeId> consumers;
  Tensor constant;  // Defined for initializers and folded constants.
  bool is_constant() const { return constant.defined(); }
};

class Graph;

struct Attribute {
  enum class Kind { kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings };
  Kind kind = Kind::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;                    // "" is the default ONNX domain.
  int opset = 0;                         // The model's opset for `domain`.
  std::vector<ValueId> inputs;           // kNoValue for an omitted optional input.
  std::vector<ValueId> outputs;          // kNoValue for an omitted optional output.
  std::vector<ValueId> implicit_inputs;  // Outer values read by subgraphs.
  std::map<std::string, Attribute> attrs;

  const Attribute* attr(const std::string& key) const;
  int64_t attr_int(const std::string& key, int64_t def) const;
  float attr_float(const std::string& key, float def) const;
  std::string attr_string(const std::string& key, const std::string& def) const;
  std::vector<int64_t> attr_ints(const std::string& key) const;
  std::vector<float> attr_floats(const std::string& key) const;
  bool has_attr(const std::string& key) const { return attrs.count(key) != 0; }
  // "Conv 'conv1' (opset 11)": how errors name a node.
  std::string Describe() const;
};

class Graph {
 public:
  std::string name;
  std::vector<Value> values;
  std::vector<Node> nodes;      // Topologically sorted.
  std::vector<ValueId> inputs;  // Runtime inputs (initializers excluded).
  std::vector<ValueId> outputs;
  // For subgraphs: (outer value in the parent graph, local value id).
  std::vector<std::pair<ValueId, ValueId>> captures;

  ValueId AddValue(Value v);
  // Adds a constant value named `name` holding `t` (dtype and shape from t).
  ValueId AddConstant(std::string name, Tensor t);
  // Rebuilds producer/consumer links from nodes.
  void RebuildLinks();
  // Returns the value with this name, or kNoValue.
  ValueId FindValue(const std::string& name) const;
  // Total node count including nodes inside subgraphs.
  int64_t TotalNodeCount() const;
};

// Sorts nodes topologically (stable w.r.t. the given order). Fails on cycles.
Status TopologicalSort(Graph& graph);

}  // namespace parallax

#endif  // PARALLAX_GRAPH_GRAPH_H_
