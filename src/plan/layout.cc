#include "plan/layout.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "plan/fusion_util.h"

namespace parallax {
namespace {

constexpr char kDomain[] = "com.parallax";
constexpr int kToNhwc[4] = {0, 2, 3, 1};  // new[i] = old[kToNhwc[i]].

enum class Kind {
  kNone,
  kConv,
  kPool,
  kUnary,
  kBinary,
  kConcat,
  kSplit,
  kSlice,
  kResize,
  kShape,
  kGlobalPool
};
constexpr int64_t kAxisToNhwc[4] = {0, 3, 1, 2};  // NCHW axis -> its NHWC position.

// Nodes that run the convolution kernel. A fused conv (com.parallax FusedConv)
// joins with one more line here, once its kernel honours channels_last.
// Conv, or a fusion's FusedConv (its epilogue is elementwise, so it runs in
// any layout; a residual Z is an activation input like X).
bool IsConvOp(const Node& n) {
  return (n.domain.empty() && n.op_type == "Conv") ||
         (n.domain == kDomain && n.op_type == "FusedConv" && n.attr_int("channels_last", 0) == 0);
}

bool IsUnaryOp(const std::string& op) {
  static const std::set<std::string> kOps = {
      "Relu", "Sigmoid",  "Tanh", "Clip", "HardSigmoid", "HardSwish", "LeakyRelu", "Identity",
      "Elu",  "Softplus", "Neg",  "Abs",  "Exp",         "Erf",       "Sqrt"};
  return kOps.count(op) != 0;
}

bool IsBinaryOp(const std::string& op) {
  return op == "Add" || op == "Mul" || op == "Sub" || op == "Div";
}

// A non-constant 4-D float32 value: what a region's activations are.
bool IsAct(const Graph& g, ValueId v) {
  if (v == kNoValue) return false;
  const Value& val = g.values[static_cast<size_t>(v)];
  return !val.is_constant() && val.dtype == DType::kFloat32 && val.has_shape &&
         val.dims.size() == 4;
}

const Tensor* ConstOf(const Graph& g, ValueId v) {
  if (v == kNoValue || !g.values[static_cast<size_t>(v)].is_constant()) return nullptr;
  return &g.values[static_cast<size_t>(v)].constant;
}

// A constant that broadcasts against a 4-D activation the same way in NCHW
// and, rewritten by ConvertNode, in NHWC: a single value, or a per-channel
// [1,K,1,1] / [K,1,1] (valid iff K is 1 or C in both layouts).
bool IsLayoutFreeConst(const Graph& g, ValueId v) {
  const Tensor* t = ConstOf(g, v);
  if (t == nullptr) return false;
  if (t->numel() == 1) return true;
  const Shape& s = t->shape();
  return (s.size() == 4 && s[0] == 1 && s[2] == 1 && s[3] == 1) ||
         (s.size() == 3 && s[1] == 1 && s[2] == 1);
}

// Slice (opset 10+) with a constant axes input.
bool SliceConvertible(const Graph& g, const Node& n) {
  if (n.opset < 10 || n.inputs.size() < 4) return false;
  const Tensor* axes = ConstOf(g, n.inputs[3]);
  if (axes == nullptr || axes->rank() != 1) return false;
  return axes->dtype() == DType::kInt64 || axes->dtype() == DType::kInt32;
}

// New axes constant for a converted Slice: each axis moves to its NHWC place.
Tensor SliceAxesToNhwc(const Tensor& axes) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < axes.numel(); ++i) {
    int64_t a = axes.dtype() == DType::kInt64 ? axes.data<int64_t>()[i] : axes.data<int32_t>()[i];
    if (a < 0) a += 4;
    v.push_back(a >= 0 && a < 4 ? kAxisToNhwc[a] : a);  // Invalid axes stay for the kernel.
  }
  return Tensor::FromVector(DType::kInt64, {axes.numel()}, v);
}

bool AxisIsChannels(const Node& n, int64_t def) {
  const int64_t axis = n.attr_int("axis", def);
  return axis == 1 || axis == -3;
}

// Resize (opset 11+) whose roi/scales/sizes are constants over all 4 axes.
bool ResizeConvertible(const Graph& g, const Node& n) {
  if (n.opset < 11 || n.has_attr("axes")) return false;
  if (n.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch") return false;
  const size_t expect[4] = {0, 8, 4, 4};  // Element counts of roi, scales, sizes.
  for (size_t i = 1; i < n.inputs.size() && i < 4; ++i) {
    if (n.inputs[i] == kNoValue) continue;
    const Tensor* t = ConstOf(g, n.inputs[i]);
    if (t == nullptr || t->rank() != 1) return false;
    if (t->numel() != 0 && static_cast<size_t>(t->numel()) != expect[i]) return false;
  }
  return n.inputs.size() <= 4;
}

bool PoolConvertible(const Graph& g, const Node& n) {
  if (n.outputs.size() > 1 && n.outputs[1] != kNoValue) {
    const Value& idx = g.values[static_cast<size_t>(n.outputs[1])];
    if (!idx.consumers.empty()) return false;
    for (ValueId o : g.outputs)
      if (o == n.outputs[1]) return false;
  }
  return !(n.op_type == "AveragePool" && n.attr_int("ceil_mode", 0) != 0 &&
           n.attr_int("count_include_pad", 0) != 0);
}

bool BinaryConvertible(const Graph& g, const Node& n) {
  if (n.inputs.size() != 2) return false;
  const ValueId a = n.inputs[0], b = n.inputs[1];
  // Two 4-D operands broadcast axis by axis, so permuting both alike keeps
  // the result (permuted): any shapes are fine.
  if (IsAct(g, a) && IsAct(g, b)) return true;
  if (IsAct(g, a)) return IsLayoutFreeConst(g, b);
  if (IsAct(g, b)) return IsLayoutFreeConst(g, a);
  return false;
}

Kind KindOf(const Graph& g, const Node& n) {
  if (n.domain.empty() && n.op_type == "Shape" && n.inputs.size() == 1 && IsAct(g, n.inputs[0]) &&
      !n.has_attr("start") && !n.has_attr("end"))
    return Kind::kShape;  // Reads the NHWC shape and gathers it back to NCHW order.
  if (n.inputs.empty() || n.outputs.empty() || !IsAct(g, n.outputs[0])) return Kind::kNone;
  const std::string& op = n.op_type;
  if (IsConvOp(n)) {
    if (n.inputs.size() < 2 || !IsAct(g, n.inputs[0]) || n.inputs[1] == kNoValue)
      return Kind::kNone;
    if (n.inputs.size() > 3 && n.inputs[3] != kNoValue && !IsAct(g, n.inputs[3]))
      return Kind::kNone;  // A residual must be a 4-D activation too.
    const Value& w = g.values[static_cast<size_t>(n.inputs[1])];
    return w.has_shape && w.dims.size() == 4 ? Kind::kConv : Kind::kNone;
  }
  if (!n.domain.empty()) return Kind::kNone;
  if (op == "MaxPool" || op == "AveragePool")
    return IsAct(g, n.inputs[0]) && PoolConvertible(g, n) ? Kind::kPool : Kind::kNone;
  if (IsUnaryOp(op)) {
    for (size_t i = 1; i < n.inputs.size(); ++i)
      if (IsAct(g, n.inputs[i])) return Kind::kNone;  // Clip bounds are scalars.
    return IsAct(g, n.inputs[0]) ? Kind::kUnary : Kind::kNone;
  }
  if (IsBinaryOp(op)) return BinaryConvertible(g, n) ? Kind::kBinary : Kind::kNone;
  if (op == "Concat") {
    if (!AxisIsChannels(n, 1)) return Kind::kNone;
    for (ValueId v : n.inputs)
      if (!IsAct(g, v)) return Kind::kNone;
    return Kind::kConcat;
  }
  if (op == "Split") {
    if (!AxisIsChannels(n, 0) || !IsAct(g, n.inputs[0])) return Kind::kNone;
    for (ValueId v : n.outputs)
      if (v != kNoValue && !IsAct(g, v)) return Kind::kNone;
    return Kind::kSplit;
  }
  if (op == "Resize")
    return IsAct(g, n.inputs[0]) && ResizeConvertible(g, n) ? Kind::kResize : Kind::kNone;
  if (op == "Slice")
    return IsAct(g, n.inputs[0]) && SliceConvertible(g, n) ? Kind::kSlice : Kind::kNone;
  if (op == "GlobalAveragePool" || op == "GlobalMaxPool")
    return IsAct(g, n.inputs[0]) ? Kind::kGlobalPool : Kind::kNone;
  return Kind::kNone;
}

// Input positions that carry activations (NHWC inside a region).
std::vector<size_t> ActInputs(const Graph& g, const Node& n, Kind k) {
  if (k == Kind::kConcat || k == Kind::kBinary) {
    std::vector<size_t> pos;
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (IsAct(g, n.inputs[i])) pos.push_back(i);
    return pos;
  }
  if (k == Kind::kConv && n.inputs.size() > 3 && n.inputs[3] != kNoValue) return {0, 3};
  return {0};
}

std::vector<size_t> ActOutputs(const Node& n, Kind k) {
  if (k == Kind::kShape) return {};
  if (k != Kind::kSplit) return {0};
  std::vector<size_t> pos;
  for (size_t i = 0; i < n.outputs.size(); ++i)
    if (n.outputs[i] != kNoValue) pos.push_back(i);
  return pos;
}

void PermuteDims(Value& v) {
  if (v.dims.size() != 4) return;
  std::vector<Dim> d = v.dims;
  for (size_t i = 0; i < 4; ++i) v.dims[i] = d[static_cast<size_t>(kToNhwc[i])];
}

// A fresh, unlinked value like `v` (NHWC dims) named `name`.
ValueId AddNhwcTwin(Graph& g, ValueId v, const std::string& name) {
  Value t;
  t.name = name;
  t.dtype = g.values[static_cast<size_t>(v)].dtype;
  t.has_shape = true;
  t.dims = g.values[static_cast<size_t>(v)].dims;
  PermuteDims(t);
  return g.AddValue(std::move(t));
}

Node Reorder(const std::string& prefix, const std::string& value, ValueId in, ValueId out,
             bool to_nhwc) {
  Node n;
  n.name = prefix + value;
  n.op_type = "Transpose";
  n.opset = 13;
  n.inputs = {in};
  n.outputs = {out};
  n.attrs["perm"] = fusion::IntsAttr(to_nhwc ? std::vector<int64_t>{0, 2, 3, 1}
                                             : std::vector<int64_t>{0, 3, 1, 2});
  return n;
}

// Redirects a converted Shape node to a new NHWC shape value and returns the
// Gather (indices [0,3,1,2]) that rebuilds its original NCHW output.
Node ShapeBackToNchw(Graph& g, Node& shape) {
  const ValueId orig = shape.outputs[0];
  const std::string name = g.values[static_cast<size_t>(orig)].name;
  Value t;
  t.name = name + "/nhwc";
  t.dtype = DType::kInt64;
  t.has_shape = true;
  t.dims = {Dim{4, ""}};
  shape.outputs[0] = g.AddValue(std::move(t));
  const ValueId idx =
      g.AddConstant(name + "/to_nchw_indices",
                    Tensor::FromVector(DType::kInt64, {4}, std::vector<int64_t>{0, 3, 1, 2}));
  Node n;
  n.name = "shape_to_nchw/" + name;
  n.op_type = "Gather";
  n.opset = 13;
  n.inputs = {shape.outputs[0], idx};
  n.outputs = {orig};
  return n;
}

// Permutes a constant 1-D [4] (or roi's [8] = starts, ends) axis vector.
Tensor PermuteAxisVector(const Tensor& t) {
  Tensor out = Tensor::Copy(t);
  const size_t es = DTypeSize(t.dtype());
  const auto* src = static_cast<const char*>(t.raw_data());
  auto* dst = static_cast<char*>(out.raw_data());
  for (int64_t half = 0; half < t.numel() / 4; ++half)
    for (size_t i = 0; i < 4; ++i)
      std::memcpy(dst + (half * 4 + static_cast<int64_t>(i)) * static_cast<int64_t>(es),
                  src + (half * 4 + kToNhwc[i]) * static_cast<int64_t>(es), es);
  return out;
}

// Rewrites `n`'s attributes and non-activation constant inputs for NHWC.
void ConvertNode(Graph& g, Node& n, Kind k) {
  switch (k) {
    case Kind::kConv:
    case Kind::kPool:
      n.domain = kDomain;
      n.attrs["channels_last"] = fusion::IntAttr(1);
      if (k == Kind::kPool) n.outputs.resize(1);  // Indices is unused (PoolConvertible).
      break;
    case Kind::kConcat:
    case Kind::kSplit:
      n.attrs["axis"] = fusion::IntAttr(3);
      break;
    case Kind::kBinary:
      for (ValueId& v : n.inputs) {
        const Tensor* t = ConstOf(g, v);
        if (t == nullptr || t->numel() == 1) continue;  // Activation or scalar.
        const std::string name = g.values[static_cast<size_t>(v)].name + "/nhwc";
        v = g.AddConstant(name, Tensor::Copy(*t).Reshaped({1, 1, 1, t->numel()}));
      }
      break;
    case Kind::kGlobalPool:  // [N,H,W,C] -> [N,1,1,C], the bytes of NCHW [N,C,1,1].
      n.op_type = n.op_type == "GlobalMaxPool" ? "ReduceMax" : "ReduceMean";
      n.opset = 13;  // Axes as an attribute.
      n.attrs.clear();
      n.attrs["axes"] = fusion::IntsAttr({1, 2});
      n.attrs["keepdims"] = fusion::IntAttr(1);
      break;
    case Kind::kSlice: {
      const ValueId axes = n.inputs[3];
      n.inputs[3] = g.AddConstant(g.values[static_cast<size_t>(axes)].name + "/nhwc",
                                  SliceAxesToNhwc(*ConstOf(g, axes)));
      break;
    }
    case Kind::kResize:
      for (size_t i = 1; i < n.inputs.size(); ++i) {
        const Tensor* t = ConstOf(g, n.inputs[i]);
        if (t == nullptr || t->numel() == 0) continue;
        const std::string name = g.values[static_cast<size_t>(n.inputs[i])].name + "/nhwc";
        n.inputs[i] = g.AddConstant(name, PermuteAxisVector(*t));
      }
      break;
    default:
      break;
  }
}

// Marks `v` as a 4-D float32 activation (rank-4 metadata, unknown dims) when
// shape inference left it without a shape.
void MarkRank4(Graph& g, ValueId v) {
  if (v == kNoValue) return;
  Value& val = g.values[static_cast<size_t>(v)];
  if (val.has_shape || val.is_constant() || val.dtype != DType::kFloat32) return;
  val.has_shape = true;
  val.dims.assign(4, Dim{});
}

bool Rank4OrConst(const Graph& g, ValueId v) {
  const Tensor* t = ConstOf(g, v);
  return IsAct(g, v) || (t != nullptr && t->rank() <= 4);
}

// Where ONNX shape inference stopped (e.g. after a Slice with computed
// bounds), proves values 4-D through the ops the pass converts: a conv with
// a 4-D weight has 4-D input and output, and rank flows through unary ops,
// pooling, Split/Slice/Resize, Concat and binary ops of 4-D operands.
void InferRank4(Graph& g) {
  for (int pass = 0; pass < 2; ++pass)
    for (const Node& n : g.nodes) {
      if (n.inputs.empty() || n.outputs.empty() || n.inputs[0] == kNoValue) continue;
      const std::string& op = n.op_type;
      const bool in4 = IsAct(g, n.inputs[0]);
      if (IsConvOp(n) && n.inputs.size() >= 2 && n.inputs[1] != kNoValue) {
        const Value& w = g.values[static_cast<size_t>(n.inputs[1])];
        if ((w.has_shape && w.dims.size() == 4) || (w.is_constant() && w.constant.rank() == 4)) {
          MarkRank4(g, n.inputs[0]);
          MarkRank4(g, n.outputs[0]);
        }
      } else if (!n.domain.empty()) {
        continue;
      } else if (op == "MaxPool" || op == "AveragePool") {
        if (in4 || n.attr_ints("kernel_shape").size() == 2) {
          MarkRank4(g, n.inputs[0]);
          MarkRank4(g, n.outputs[0]);
        }
      } else if (in4 && (IsUnaryOp(op) || op == "Split" || op == "Slice" || op == "Resize" ||
                         op == "GlobalAveragePool" || op == "GlobalMaxPool")) {
        for (ValueId o : n.outputs) MarkRank4(g, o);
      } else if (op == "Concat") {
        bool any = false;
        for (ValueId v : n.inputs) any = any || IsAct(g, v);
        if (!any) continue;
        for (ValueId v : n.inputs) MarkRank4(g, v);
        MarkRank4(g, n.outputs[0]);
      } else if (IsBinaryOp(op) && n.inputs.size() == 2) {
        const bool ok = Rank4OrConst(g, n.inputs[0]) && Rank4OrConst(g, n.inputs[1]);
        if (ok && (in4 || IsAct(g, n.inputs[1]))) MarkRank4(g, n.outputs[0]);
      }
    }
}

struct Regions {
  std::vector<Kind> kind;
  std::vector<bool> converted;
  LayoutStats stats;
};

int Find(std::vector<int>& parent, int x) {
  while (parent[static_cast<size_t>(x)] != x)
    x = parent[static_cast<size_t>(x)] =
        parent[static_cast<size_t>(parent[static_cast<size_t>(x)])];
  return x;
}

// Groups candidate nodes that share an activation value; marks those in
// groups with at least two convolutions as converted.
Regions FindRegions(const Graph& g) {
  const size_t nn = g.nodes.size();
  Regions r;
  r.kind.resize(nn);
  r.converted.assign(nn, false);
  std::vector<int> parent(nn);
  std::iota(parent.begin(), parent.end(), 0);
  std::vector<int> owner(g.values.size(), -1);
  auto touch = [&](int node, ValueId v) {
    int& o = owner[static_cast<size_t>(v)];
    if (o < 0)
      o = node;
    else
      parent[static_cast<size_t>(Find(parent, o))] = Find(parent, node);
  };
  for (size_t i = 0; i < nn; ++i) {
    const Node& n = g.nodes[i];
    r.kind[i] = KindOf(g, n);
    if (r.kind[i] == Kind::kNone) continue;
    for (size_t p : ActInputs(g, n, r.kind[i])) touch(static_cast<int>(i), n.inputs[p]);
    for (size_t p : ActOutputs(n, r.kind[i])) touch(static_cast<int>(i), n.outputs[p]);
  }
  std::map<int, int> convs;
  for (size_t i = 0; i < nn; ++i)
    if (r.kind[i] == Kind::kConv) ++convs[Find(parent, static_cast<int>(i))];
  std::set<int> roots;
  for (size_t i = 0; i < nn; ++i) {
    const int root = Find(parent, static_cast<int>(i));
    if (r.kind[i] == Kind::kNone || convs[root] < 2) continue;
    r.converted[i] = true;
    roots.insert(root);
    ++r.stats.nodes;
  }
  r.stats.regions = static_cast<int64_t>(roots.size());
  return r;
}

// Whether value `v` (produced in a region) is also read as NCHW: a graph
// output, an input of an unconverted node, a non-activation input of a
// converted one, or a subgraph capture.
bool NeededAsNchw(const Graph& g, const Regions& r, ValueId v) {
  for (ValueId o : g.outputs)
    if (o == v) return true;
  for (NodeId c : g.values[static_cast<size_t>(v)].consumers) {
    const Node& n = g.nodes[static_cast<size_t>(c)];
    if (!r.converted[static_cast<size_t>(c)]) return true;
    for (ValueId i : n.implicit_inputs)
      if (i == v) return true;
    std::vector<size_t> act = ActInputs(g, n, r.kind[static_cast<size_t>(c)]);
    for (size_t p = 0; p < n.inputs.size(); ++p)
      if (n.inputs[p] == v && std::find(act.begin(), act.end(), p) == act.end()) return true;
  }
  return false;
}

LayoutStats ConvertRegions(Graph& g) {
  InferRank4(g);
  Regions r = FindRegions(g);
  if (r.stats.nodes == 0) return r.stats;
  std::map<ValueId, ValueId> twin;  // NCHW value -> its NHWC twin.
  std::vector<Node> out;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!r.converted[i]) {
      out.push_back(std::move(g.nodes[i]));
      continue;
    }
    Node n = std::move(g.nodes[i]);
    const Kind k = r.kind[i];
    for (size_t p : ActInputs(g, n, k)) {
      const ValueId v = n.inputs[p];
      const NodeId prod = g.values[static_cast<size_t>(v)].producer;
      auto it = twin.find(v);
      if (it != twin.end()) {
        n.inputs[p] = it->second;
      } else if (prod < 0 || !r.converted[static_cast<size_t>(prod)]) {  // Region input.
        const std::string name = g.values[static_cast<size_t>(v)].name;
        const ValueId t = AddNhwcTwin(g, v, name + "/nhwc");
        out.push_back(Reorder("reorder_to_nhwc/", name, v, t, true));
        ++r.stats.reorders;
        twin[v] = t;
        n.inputs[p] = t;
      }  // Else produced in the region as NHWC under its own id.
    }
    std::vector<Node> after;
    for (size_t p : ActOutputs(n, k)) {
      const ValueId v = n.outputs[p];
      if (!NeededAsNchw(g, r, v)) {
        PermuteDims(g.values[static_cast<size_t>(v)]);
        continue;
      }
      const std::string name = g.values[static_cast<size_t>(v)].name;
      const ValueId t = AddNhwcTwin(g, v, name + "/nhwc");
      after.push_back(Reorder("reorder_to_nchw/", name, t, v, false));
      ++r.stats.reorders;
      twin[v] = t;
      n.outputs[p] = t;
    }
    if (k == Kind::kShape) after.push_back(ShapeBackToNchw(g, n));
    ConvertNode(g, n, k);
    out.push_back(std::move(n));
    for (Node& a : after) out.push_back(std::move(a));
  }
  g.nodes = std::move(out);
  g.RebuildLinks();
  return r.stats;
}

}  // namespace

LayoutStats AssignChannelsLast(Graph& graph) {
  LayoutStats total;
  for (Node& node : graph.nodes)
    for (auto& [key, a] : node.attrs)
      if (a.g) {
        LayoutStats s = AssignChannelsLast(*a.g);
        total.regions += s.regions;
        total.nodes += s.nodes;
        total.reorders += s.reorders;
      }
  LayoutStats s = ConvertRegions(graph);
  total.regions += s.regions;
  total.nodes += s.nodes;
  total.reorders += s.reorders;
  return total;
}

}  // namespace parallax
