// Fusions into the epilogues of the com.parallax FusedConv / FusedMatMul
// kernels: bias, residual Add, activation and a final scalar affine
// (contracts in plan/fusion.h).
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "plan/fusion.h"
#include "plan/fusion_util.h"

namespace parallax {
namespace {

using namespace fusion;  // NOLINT: the pass helpers.

bool IsFused(const Node& n, const char* op_type) {
  return n.domain == kDomain && n.op_type == op_type;
}

// False when the shapes provably differ (rank, or a dim known on both sides);
// true when they are equal or unknown: the fused kernels broadcast a residual
// whose shape turns out different (correct, without the fused speed-up).
bool MaybeSameShape(const Graph& g, ValueId a, ValueId b) {
  const Value& va = g.values[static_cast<size_t>(a)];
  const Value& vb = g.values[static_cast<size_t>(b)];
  if (!va.has_shape || !vb.has_shape) return true;
  if (va.dims.size() != vb.dims.size()) return false;
  for (size_t i = 0; i < va.dims.size(); ++i) {
    const Dim &x = va.dims[i], &y = vb.dims[i];
    if (x.known() && y.known() && x.size != y.size) return false;
  }
  return true;
}

bool HasResidual(const Node& n) { return n.inputs.size() > 3 && n.inputs[3] != kNoValue; }

// Which epilogue step a fused node (or a plain Conv) can still take.
enum class Step { kResidual, kActivation, kLateResidual };

bool Accepts(const Node& n, Step step) {
  if (n.outputs.size() != 1) return false;
  if (Is(n, "Conv")) return n.inputs.size() >= 2 && step != Step::kLateResidual;
  if (!IsFused(n, "FusedConv") && !IsFused(n, "FusedMatMul")) return false;
  if (n.has_attr("linear")) return false;
  const bool act = n.has_attr("activation"), z = HasResidual(n);
  switch (step) {
    case Step::kResidual:
      return !act && !z;
    case Step::kActivation:
      return !act && !(z && n.attr_int("sum_after_activation", 0) != 0);
    case Step::kLateResidual:
      return act && !z;
  }
  return false;
}

Node AsFused(const Node& n) {
  if (n.domain == kDomain) return n;
  Node f = n;
  f.domain = kDomain;
  f.op_type = "FusedConv";
  f.opset = 1;
  return f;
}

// Conv / fused op followed by Add of a tensor of (possibly) its shape.
int64_t ResidualOnce(Graph& g, Step step) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& n = g.nodes[i];
    if (ed.removed(id) || !Accepts(n, step) || !IsFloat32(g, n.outputs[0])) continue;
    const ValueId y = n.outputs[0];
    Pattern p(ed, id);
    const NodeId add_id = p.SoleConsumer(y, "Add");
    if (add_id < 0) continue;
    const Node& add = g.nodes[static_cast<size_t>(add_id)];
    const ValueId z = OtherInput(add, y);
    if (z == kNoValue || !IsFloat32(g, z) || !MaybeSameShape(g, y, z)) continue;
    Node fused = AsFused(n);
    fused.inputs.resize(4, kNoValue);
    fused.inputs[3] = z;
    if (step == Step::kLateResidual) fused.attrs["sum_after_activation"] = IntAttr(1);
    fused.outputs = {add.outputs[0]};
    ed.Replace(p.nodes(), std::move(fused));
  }
  return ed.Commit();
}

int64_t ResidualAddOnce(Graph& g) { return ResidualOnce(g, Step::kResidual); }
int64_t LateResidualAddOnce(Graph& g) { return ResidualOnce(g, Step::kLateResidual); }

// alpha * y + beta for a Mul / Add / Sub / Div of y by a one-element
// constant (Sub and Div with y first).
std::optional<std::pair<double, double>> ScalarAffine(const Graph& g, const Node& n, ValueId y) {
  const ValueId c = OtherInput(n, y);
  const Tensor* t = FloatConstant(g, c);
  const Value& yv = g.values[static_cast<size_t>(y)];
  // The fused ops' outputs have rank >= 1, so a rank <= 1 constant never
  // grows the result.
  if (t == nullptr || t->numel() != 1 ||
      (t->rank() > 1 && (!yv.has_shape || static_cast<size_t>(t->rank()) > yv.dims.size())))
    return std::nullopt;
  const double v = t->data<float>()[0];
  if (Is(n, "Mul")) return std::make_pair(v, 0.0);
  if (Is(n, "Add")) return std::make_pair(1.0, v);
  if (n.inputs[0] != y || v == 0) return std::nullopt;
  if (Is(n, "Sub")) return std::make_pair(1.0, -v);
  if (Is(n, "Div")) return std::make_pair(1.0 / v, 0.0);
  return std::nullopt;
}

int64_t OutputAffineOnce(Graph& g) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& n = g.nodes[i];
    if (ed.removed(id) || !(IsFused(n, "FusedConv") || IsFused(n, "FusedMatMul")) ||
        n.outputs.size() != 1)
      continue;
    const ValueId y = n.outputs[0];
    Pattern p(ed, id);
    std::optional<std::pair<double, double>> ab;
    NodeId next = -1;
    for (const char* op : {"Mul", "Add", "Sub", "Div"}) {
      Pattern q = p;
      if ((next = q.SoleConsumer(y, op)) < 0) continue;
      ab = ScalarAffine(g, g.nodes[static_cast<size_t>(next)], y);
      p = q;
      break;
    }
    if (!ab) continue;
    std::vector<float> lin =
        n.has_attr("linear") ? n.attr_floats("linear") : std::vector<float>{1.f, 0.f};
    if (lin.size() != 2) continue;
    Node fused = n;  // a2 * (a1 * y + b1) + b2.
    fused.attrs["linear"] = FloatsAttr({static_cast<float>(ab->first * lin[0]),
                                        static_cast<float>(ab->first * lin[1] + ab->second)});
    fused.outputs = {g.nodes[static_cast<size_t>(next)].outputs[0]};
    ed.Replace(p.nodes(), std::move(fused));
  }
  return ed.Commit();
}

// A bias of N float32 values along the last axis that does not grow the
// output's rank (`a` is the MatMul's A; its rank may be unknown).
bool IsRowBias(const Tensor* bias, int64_t n, const Value& a) {
  if (bias == nullptr || bias->numel() != n || bias->rank() < 1 || bias->shape().back() != n)
    return false;
  return bias->rank() == 1 || (a.has_shape && static_cast<size_t>(bias->rank()) <= a.dims.size());
}

int64_t MatMulAddOnce(Graph& g) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& mm = g.nodes[i];
    if (ed.removed(id) || !Is(mm, "MatMul") || mm.inputs.size() != 2 || mm.outputs.size() != 1)
      continue;
    const Value& a = g.values[static_cast<size_t>(mm.inputs[0])];
    const Tensor* b = FloatConstant(g, mm.inputs[1]);
    if (b == nullptr || b->rank() != 2 || b->numel() == 0 || !IsFloat32(g, mm.inputs[0]) ||
        !IsFloat32(g, mm.outputs[0]))
      continue;
    Pattern p(ed, id);
    const NodeId add_id = p.SoleConsumer(mm.outputs[0], "Add");
    if (add_id < 0) continue;
    const Node& add = g.nodes[static_cast<size_t>(add_id)];
    const ValueId bias = OtherInput(add, mm.outputs[0]);
    if (!IsRowBias(FloatConstant(g, bias), b->dim(1), a)) continue;
    Node fused = MakeNode(mm, kDomain, "FusedMatMul", 1, {mm.inputs[0], mm.inputs[1], bias},
                          {add.outputs[0]});
    ed.Replace(p.nodes(), std::move(fused));
  }
  return ed.Commit();
}

// MatMul (any float32 A and B) whose sole reader scales it by a one-element
// constant (Mul, or Div tensor-first) -> ScaledMatMul with that alpha, e.g.
// attention scores Q K^T * 1/sqrt(d) (a full pass over the scores saved).
int64_t MatMulScaleOnce(Graph& g) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& mm = g.nodes[i];
    if (ed.removed(id) || !Is(mm, "MatMul") || mm.inputs.size() != 2 || mm.outputs.size() != 1 ||
        !IsFloat32(g, mm.inputs[0]) || !IsFloat32(g, mm.inputs[1]) || !IsFloat32(g, mm.outputs[0]))
      continue;
    const ValueId y = mm.outputs[0];
    Pattern p(ed, id);
    NodeId next = -1;
    std::optional<std::pair<double, double>> ab;
    for (const char* op : {"Mul", "Div"}) {
      Pattern q = p;
      if ((next = q.SoleConsumer(y, op)) < 0) continue;
      ab = ScalarAffine(g, g.nodes[static_cast<size_t>(next)], y);
      p = q;
      break;
    }
    if (!ab || ab->second != 0.0) continue;
    Node fused = MakeNode(mm, kDomain, "ScaledMatMul", 1, {mm.inputs[0], mm.inputs[1]},
                          {g.nodes[static_cast<size_t>(next)].outputs[0]});
    fused.attrs["alpha"] = FloatAttr(static_cast<float>(ab->first));
    ed.Replace(p.nodes(), std::move(fused));
  }
  return ed.Commit();
}

// The Transpose (or one-element-constant Mul, then Transpose) node feeding
// input `i` of MatMul-like `mm` and read by nothing else, for
// MatMulTransposeOnce; -1 when there is none.
struct FedTranspose {
  NodeId transpose = -1, mul = -1;
  float scale = 1.f;
  std::vector<int64_t> perm;  // Composed over `inner`.
  ValueId source = kNoValue;  // What the (innermost) Transpose reads.
  std::vector<NodeId> inner;  // Transposes feeding `transpose`, outermost first.
};
FedTranspose TransposeFeeding(const Graph& g, const GraphEditor& ed, const Node& mm, size_t i) {
  FedTranspose f;
  auto sole = [&](ValueId v, const char* op) -> NodeId {
    const Value& val = g.values[static_cast<size_t>(v)];
    if (val.producer < 0 || val.consumers.size() != 1 || IsGraphOutput(g, v) ||
        ed.removed(val.producer))
      return -1;
    return Is(g.nodes[static_cast<size_t>(val.producer)], op) ? val.producer : -1;
  };
  ValueId v = mm.inputs[i];
  if (NodeId m = sole(v, "Mul"); m >= 0) {  // A scalar Mul between: folded into alpha.
    const Node& mul = g.nodes[static_cast<size_t>(m)];
    for (size_t j = 0; j < 2 && f.mul < 0; ++j) {
      auto ab = ScalarAffine(g, mul, mul.inputs[j]);
      if (ab && ab->second == 0.0 && IsFloat32(g, mul.inputs[j])) {
        f.mul = m;
        f.scale = static_cast<float>(ab->first);
        v = mul.inputs[j];
      }
    }
    if (f.mul < 0) return FedTranspose{};
  }
  f.transpose = sole(v, "Transpose");
  if (f.transpose < 0) return FedTranspose{};
  const Node& t = g.nodes[static_cast<size_t>(f.transpose)];
  f.perm = t.attr_ints("perm");
  f.source = t.inputs[0];
  if (f.perm.empty() || !IsFloat32(g, f.source)) return FedTranspose{};
  // A chain of Transposes each read only by the next composes into one.
  for (NodeId inner; (inner = sole(f.source, "Transpose")) >= 0;) {
    const Node& ti = g.nodes[static_cast<size_t>(inner)];
    const std::vector<int64_t> p1 = ti.attr_ints("perm");
    if (p1.size() != f.perm.size()) break;
    std::vector<int64_t> composed;
    for (int64_t k : f.perm) composed.push_back(p1[static_cast<size_t>(k)]);
    f.perm = std::move(composed);
    f.source = ti.inputs[0];
    f.inner.push_back(inner);
  }
  return f;
}

// MatMul / ScaledMatMul (float32) reading a Transpose (possibly through a
// scalar Mul, possibly of Transposes) that nothing else reads -> ScaledMatMul
// reading the innermost Transpose's input with the composed perm_a / perm_b
// and the Mul's factor in alpha, e.g. attention Q K^T without copying Q and
// K into head-major order.
int64_t MatMulTransposeOnce(Graph& g) {
  GraphEditor ed(g);
  for (size_t id = 0; id < g.nodes.size(); ++id) {
    const Node& mm = g.nodes[id];
    const bool scaled = mm.domain == kDomain && mm.op_type == "ScaledMatMul";
    if (ed.removed(static_cast<NodeId>(id)) || !(Is(mm, "MatMul") || scaled) ||
        mm.inputs.size() != 2 || mm.outputs.size() != 1 || !IsFloat32(g, mm.inputs[0]) ||
        !IsFloat32(g, mm.inputs[1]) || !IsFloat32(g, mm.outputs[0]) ||
        !mm.attr_ints("perm_a").empty() || !mm.attr_ints("perm_b").empty())
      continue;
    const FedTranspose fed[2] = {TransposeFeeding(g, ed, mm, 0), TransposeFeeding(g, ed, mm, 1)};
    if (fed[0].transpose < 0 && fed[1].transpose < 0) continue;
    Node fused = MakeNode(mm, kDomain, "ScaledMatMul", 1, mm.inputs, mm.outputs);
    fused.name = mm.name;
    float alpha = scaled ? mm.attr_float("alpha", 1.f) : 1.f;
    std::vector<NodeId> pattern;
    for (size_t i = 0; i < 2; ++i) {
      if (fed[i].transpose < 0) continue;
      fused.inputs[i] = fed[i].source;
      fused.attrs[i == 0 ? "perm_a" : "perm_b"] = IntsAttr(fed[i].perm);
      alpha *= fed[i].scale;
      pattern.push_back(fed[i].transpose);
      pattern.insert(pattern.end(), fed[i].inner.begin(), fed[i].inner.end());
      if (fed[i].mul >= 0) pattern.push_back(fed[i].mul);
    }
    fused.attrs["alpha"] = FloatAttr(alpha);
    pattern.push_back(static_cast<NodeId>(id));
    ed.Replace(pattern, std::move(fused));
  }
  return ed.Commit();
}

struct Activation {
  std::string name;
  std::vector<float> params;
  ValueId out = kNoValue;
};

// x * Sigmoid(x) or x * Sigmoid(x * a) (a constant) on `y`, which has
// exactly two readers: the Mul and the Sigmoid chain.
std::optional<Activation> MatchSwish(const Graph& g, Pattern& p, ValueId y) {
  const std::vector<NodeId>& readers = g.values[static_cast<size_t>(y)].consumers;
  for (int k = 0; k < 2; ++k) {
    const Node& mul = g.nodes[static_cast<size_t>(readers[static_cast<size_t>(k)])];
    const Node& head = g.nodes[static_cast<size_t>(readers[static_cast<size_t>(1 - k)])];
    if (!Is(mul, "Mul") || OtherInput(mul, y) == kNoValue) continue;
    Pattern q = p;
    q.Add(readers[static_cast<size_t>(1 - k)]);
    float alpha = 1.f;
    ValueId s_in = head.outputs[0];
    if (Is(head, "Mul")) {
      std::optional<float> a = UniformConstant(g, OtherInput(head, y));
      if (!a || q.SoleConsumer(head.outputs[0], "Sigmoid") < 0) continue;
      alpha = *a;
      s_in = g.nodes[static_cast<size_t>(q.nodes().back())].outputs[0];
    } else if (Is(head, "Sigmoid")) {
      s_in = head.outputs[0];
    } else {
      continue;
    }
    if (OtherInput(mul, y) != s_in || q.SoleConsumer(s_in, "Mul") < 0) continue;
    p = q;
    return Activation{"Swish", {alpha}, mul.outputs[0]};
  }
  return std::nullopt;
}

// Constant Clip bounds (attributes before opset 11, inputs after); missing
// bounds are infinite.
std::optional<std::vector<float>> ClipBounds(const Graph& g, const Node& clip) {
  const float inf = std::numeric_limits<float>::infinity();
  if (clip.opset < 11)
    return std::vector<float>{clip.attr_float("min", -inf), clip.attr_float("max", inf)};
  std::vector<float> bounds = {-inf, inf};
  for (size_t i = 1; i < 3 && i < clip.inputs.size(); ++i) {
    if (clip.inputs[i] == kNoValue) continue;
    const Value& v = g.values[static_cast<size_t>(clip.inputs[i])];
    std::optional<float> c = UniformConstant(g, clip.inputs[i]);
    if (!c || v.constant.numel() != 1) return std::nullopt;
    bounds[i - 1] = *c;
  }
  return bounds;
}

// The activation reading `y` (the anchor's output), added to `p`.
std::optional<Activation> MatchActivation(const Graph& g, Pattern& p, ValueId y) {
  const std::vector<NodeId>& readers = g.values[static_cast<size_t>(y)].consumers;
  if (IsGraphOutput(g, y)) return std::nullopt;
  if (readers.size() == 2) return MatchSwish(g, p, y);
  if (readers.size() != 1) return std::nullopt;
  const Node& n = g.nodes[static_cast<size_t>(readers[0])];
  if (!n.domain.empty() || n.inputs.empty() || n.inputs[0] != y || n.outputs.size() != 1)
    return std::nullopt;
  Activation act{n.op_type, {}, n.outputs[0]};
  if (n.op_type == "LeakyRelu") {
    act.params = {n.attr_float("alpha", 0.01f)};
  } else if (n.op_type == "HardSigmoid") {
    act.params = {n.attr_float("alpha", 0.2f), n.attr_float("beta", 0.5f)};
  } else if (n.op_type == "Clip") {
    std::optional<std::vector<float>> bounds = ClipBounds(g, n);
    if (!bounds) return std::nullopt;
    act.params = *bounds;
  } else if (n.op_type == "Gelu") {
    std::string approx = n.attr_string("approximate", "none");
    if (approx != "none" && approx != "tanh") return std::nullopt;
    if (approx == "tanh") act.name = "GeluTanh";
  } else if (n.op_type != "Relu" && n.op_type != "HardSwish" && n.op_type != "Sigmoid" &&
             n.op_type != "Tanh") {
    return std::nullopt;
  }
  if (n.op_type != "Clip" && n.inputs.size() != 1) return std::nullopt;
  p.Add(readers[0]);
  return act;
}

int64_t ActivationOnce(Graph& g) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& n = g.nodes[i];
    if (ed.removed(id) || !Accepts(n, Step::kActivation) || !IsFloat32(g, n.outputs[0])) continue;
    Pattern p(ed, id);
    std::optional<Activation> act = MatchActivation(g, p, n.outputs[0]);
    if (!act) continue;
    bool taken = false;
    for (NodeId m : p.nodes()) taken |= ed.removed(m);
    if (taken) continue;
    Node fused = AsFused(n);
    fused.attrs["activation"] = StringAttr(act->name);
    if (!act->params.empty()) fused.attrs["activation_params"] = FloatsAttr(act->params);
    fused.outputs = {act->out};
    ed.Replace(p.nodes(), std::move(fused));
  }
  return ed.Commit();
}

}  // namespace

int64_t FuseResidualAdd(Graph& g) { return fusion::ForEachGraph(g, ResidualAddOnce); }
int64_t FuseMatMulAdd(Graph& g) { return fusion::ForEachGraph(g, MatMulAddOnce); }
int64_t FuseMatMulScale(Graph& g) { return fusion::ForEachGraph(g, MatMulScaleOnce); }
int64_t FuseMatMulTranspose(Graph& g) { return fusion::ForEachGraph(g, MatMulTransposeOnce); }
int64_t FuseActivation(Graph& g) { return fusion::ForEachGraph(g, ActivationOnce); }
int64_t FuseActivationAdd(Graph& g) { return fusion::ForEachGraph(g, LateResidualAddOnce); }

int64_t FuseOutputAffine(Graph& g) {
  int64_t total = 0;
  while (int64_t n = fusion::ForEachGraph(g, OutputAffineOnce)) total += n;
  return total;
}

}  // namespace parallax
