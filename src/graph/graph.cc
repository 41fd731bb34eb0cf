#include "graph/graph.h"

#include <queue>

namespace parallax {

std::string DimsToString(const std::vector<Dim>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    if (dims[i].known())
      s += std::to_string(dims[i].size);
    else
      s += dims[i].symbol.empty() ? "?" : dims[i].symbol;
  }
  return s + "]";
}

const Attribute* Node::attr(const std::string& key) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? nullptr : &it->second;
}

int64_t Node::attr_int(const std::string& key, int64_t def) const {
  const Attribute* a = attr(key);
  return a ? a->i : def;
}

float Node::attr_float(const std::string& key, float def) const {
  const Attribute* a = attr(key);
  return a ? a->f : def;
}

std::string Node::attr_string(const std::string& key, const std::string& def) const {
  const Attribute* a = attr(key);
  return a ? a->s : def;
}

std::vector<int64_t> Node::attr_ints(const std::string& key) const {
  const Attribute* a = attr(key);
  return a ? a->ints : std::vector<int64_t>{};
}

std::vector<float> Node::attr_floats(const std::string& key) const {
  const Attribute* a = attr(key);
  return a ? a->floats : std::vector<float>{};
}

std::string Node::Describe() const {
  std::string s = op_type;
  if (!domain.empty()) s = domain + "::" + s;
  s += " node '" + name + "' (opset " + std::to_string(opset) + ")";
  return s;
}

ValueId Graph::AddValue(Value v) {
  values.push_back(std::move(v));
  return static_cast<ValueId>(values.size() - 1);
}

ValueId Graph::AddConstant(std::string name, Tensor t) {
  Value v;
  v.name = std::move(name);
  v.dtype = t.dtype();
  v.has_shape = true;
  for (int64_t d : t.shape()) v.dims.push_back(Dim{d, ""});
  v.constant = std::move(t);
  return AddValue(std::move(v));
}

void Graph::RebuildLinks() {
  for (Value& v : values) {
    v.producer = -1;
    v.consumers.clear();
  }
  for (size_t n = 0; n < nodes.size(); ++n) {
    NodeId id = static_cast<NodeId>(n);
    for (ValueId o : nodes[n].outputs)
      if (o != kNoValue) values[o].producer = id;
    auto add_consumer = [&](ValueId v) {
      if (v == kNoValue) return;
      auto& c = values[v].consumers;
      if (c.empty() || c.back() != id) c.push_back(id);
    };
    for (ValueId i : nodes[n].inputs) add_consumer(i);
    for (ValueId i : nodes[n].implicit_inputs) add_consumer(i);
  }
}

ValueId Graph::FindValue(const std::string& n) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == n) return static_cast<ValueId>(i);
  return kNoValue;
}

int64_t Graph::TotalNodeCount() const {
  int64_t n = static_cast<int64_t>(nodes.size());
  for (const Node& node : nodes)
    for (const auto& [k, a] : node.attrs)
      if (a.g) n += a.g->TotalNodeCount();
  return n;
}

Status TopologicalSort(Graph& graph) {
  const size_t n = graph.nodes.size();
  std::vector<NodeId> producer(graph.values.size(), -1);
  for (size_t i = 0; i < n; ++i)
    for (ValueId o : graph.nodes[i].outputs)
      if (o != kNoValue) producer[o] = static_cast<NodeId>(i);
  std::vector<int> indegree(n, 0);
  std::vector<std::vector<NodeId>> succ(n);
  for (size_t i = 0; i < n; ++i) {
    auto add = [&](ValueId v) {
      if (v == kNoValue || producer[v] < 0) return;
      succ[producer[v]].push_back(static_cast<NodeId>(i));
      ++indegree[i];
    };
    for (ValueId v : graph.nodes[i].inputs) add(v);
    for (ValueId v : graph.nodes[i].implicit_inputs) add(v);
  }
  // Min-heap on original index keeps the file order where possible.
  std::priority_queue<NodeId, std::vector<NodeId>, std::greater<>> ready;
  for (size_t i = 0; i < n; ++i)
    if (indegree[i] == 0) ready.push(static_cast<NodeId>(i));
  std::vector<NodeId> order;
  order.reserve(n);
  while (!ready.empty()) {
    NodeId id = ready.top();
    ready.pop();
    order.push_back(id);
    for (NodeId s : succ[id])
      if (--indegree[s] == 0) ready.push(s);
  }
  if (order.size() != n) {
    for (size_t i = 0; i < n; ++i)
      if (indegree[i] > 0)
        return InvalidModel("graph '" + graph.name +
                            "' has a cycle or an input "
                            "produced by no node, involving " +
                            graph.nodes[i].Describe());
  }
  std::vector<Node> sorted;
  sorted.reserve(n);
  for (NodeId id : order) sorted.push_back(std::move(graph.nodes[id]));
  graph.nodes = std::move(sorted);
  graph.RebuildLinks();
  return Status::Ok();
}

}  // namespace parallax
