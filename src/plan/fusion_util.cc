#include "plan/fusion_util.h"

#include <algorithm>
#include <cmath>

#include "ops/shape_util.h"

namespace parallax::fusion {

void GraphEditor::Replace(const std::vector<NodeId>& pattern, Node fused) {
  NodeId last = *std::max_element(pattern.begin(), pattern.end());
  for (NodeId n : pattern) removed_[static_cast<size_t>(n)] = true;
  slots_.emplace_back(last, std::move(fused));
  ++count_;
}

int64_t GraphEditor::Commit() {
  if (count_ == 0) return 0;
  std::vector<Node*> fused_at(g_.nodes.size(), nullptr);
  for (auto& [slot, node] : slots_) fused_at[static_cast<size_t>(slot)] = &node;
  std::vector<Node> kept;
  kept.reserve(g_.nodes.size());
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    if (fused_at[i] != nullptr)
      kept.push_back(std::move(*fused_at[i]));
    else if (!removed_[i])
      kept.push_back(std::move(g_.nodes[i]));
  }
  g_.nodes = std::move(kept);
  g_.RebuildLinks();
  slots_.clear();
  removed_.assign(g_.nodes.size(), false);
  int64_t n = count_;
  count_ = 0;
  return n;
}

bool Pattern::Contains(NodeId n) const {
  return std::find(nodes_.begin(), nodes_.end(), n) != nodes_.end();
}

bool Pattern::Internal(ValueId v) const {
  const Graph& g = ed_->graph();
  if (v == kNoValue || IsGraphOutput(g, v)) return false;
  for (NodeId c : g.values[static_cast<size_t>(v)].consumers)
    if (!Contains(c)) return false;
  return true;
}

NodeId Pattern::NextConsumer(ValueId v, const std::string& op_type) {
  const Graph& g = ed_->graph();
  if (v == kNoValue || IsGraphOutput(g, v)) return -1;
  NodeId found = -1;
  for (NodeId c : g.values[static_cast<size_t>(v)].consumers) {
    if (Contains(c)) continue;
    if (found >= 0) return -1;  // A second reader outside the pattern.
    found = c;
  }
  if (found < 0 || ed_->removed(found) || !Is(node(found), op_type)) return -1;
  nodes_.push_back(found);
  return found;
}

NodeId Pattern::SoleConsumer(ValueId v, const std::string& op_type) {
  const Graph& g = ed_->graph();
  if (v == kNoValue || g.values[static_cast<size_t>(v)].consumers.size() != 1) return -1;
  return NextConsumer(v, op_type);
}

bool IsGraphOutput(const Graph& g, ValueId v) {
  return std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
}

bool IsFloat32(const Graph& g, ValueId v) {
  return v != kNoValue && g.values[static_cast<size_t>(v)].dtype == DType::kFloat32;
}

const Tensor* FloatConstant(const Graph& g, ValueId v) {
  if (v == kNoValue) return nullptr;
  const Value& val = g.values[static_cast<size_t>(v)];
  if (!val.is_constant() || val.constant.dtype() != DType::kFloat32) return nullptr;
  return &val.constant;
}

std::optional<float> UniformConstant(const Graph& g, ValueId v) {
  if (v == kNoValue) return std::nullopt;
  const Value& val = g.values[static_cast<size_t>(v)];
  if (!val.is_constant()) return std::nullopt;
  const Tensor& t = val.constant;
  DType d = t.dtype();
  if (t.numel() < 1 || t.is_sequence() ||
      !(d == DType::kFloat32 || d == DType::kFloat64 || d == DType::kFloat16 ||
        d == DType::kInt64 || d == DType::kInt32))
    return std::nullopt;
  double first = ElementAsDouble(t, 0);
  for (int64_t i = 1; i < t.numel(); ++i)
    if (ElementAsDouble(t, i) != first) return std::nullopt;
  return static_cast<float>(first);
}

bool IsConstant(const Graph& g, ValueId v, double want) {
  std::optional<float> c = UniformConstant(g, v);
  return c && std::fabs(*c - want) <= 1e-6 * std::max(1.0, std::fabs(want));
}

std::optional<Shape> StaticShape(const Graph& g, ValueId v) {
  if (v == kNoValue) return std::nullopt;
  const Value& val = g.values[static_cast<size_t>(v)];
  if (val.is_constant()) return val.constant.shape();
  if (!val.has_shape) return std::nullopt;
  Shape s;
  for (const Dim& d : val.dims) {
    if (!d.known()) return std::nullopt;
    s.push_back(d.size);
  }
  return s;
}

ValueId OtherInput(const Node& n, ValueId v) {
  if (n.inputs.size() != 2) return kNoValue;
  if (n.inputs[0] == v && n.inputs[1] != v) return n.inputs[1];
  if (n.inputs[1] == v && n.inputs[0] != v) return n.inputs[0];
  return kNoValue;
}

std::optional<std::vector<int64_t>> ReduceAxes(const Graph& g, const Node& n) {
  int input_from = n.op_type == "ReduceSum" ? 13 : 18;
  if (n.opset < input_from) return n.attr_ints("axes");
  if (n.inputs.size() < 2 || n.inputs[1] == kNoValue) {
    if (n.attr_int("noop_with_empty_axes", 0) != 0) return std::nullopt;
    return std::vector<int64_t>{};
  }
  const Value& a = g.values[static_cast<size_t>(n.inputs[1])];
  if (!a.is_constant()) return std::nullopt;
  Result<std::vector<int64_t>> axes = ReadInt64s(a.constant);
  if (!axes.ok()) return std::nullopt;
  return *axes;
}

bool Is(const Node& n, const std::string& op_type) {
  return n.op_type == op_type && (n.domain.empty() || n.domain == "ai.onnx");
}

Node MakeNode(const Node& like, const std::string& domain, const std::string& op_type, int opset,
              std::vector<ValueId> inputs, std::vector<ValueId> outputs) {
  Node n;
  n.name = like.name + "/" + op_type;
  n.op_type = op_type;
  n.domain = domain;
  n.opset = opset;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

Attribute FloatAttr(float f) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = f;
  return a;
}

Attribute IntAttr(int64_t i) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = i;
  return a;
}

Attribute IntsAttr(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}

Attribute StringAttr(const std::string& s) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = s;
  return a;
}

Attribute FloatsAttr(std::vector<float> f) {
  Attribute a;
  a.kind = Attribute::Kind::kFloats;
  a.floats = std::move(f);
  return a;
}

}  // namespace parallax::fusion
