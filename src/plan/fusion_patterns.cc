// Fusions of decomposed patterns into standard ONNX ops: HardSwish, Gelu,
// LayerNormalization and Softmax (contracts in plan/fusion.h).
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "plan/fusion.h"
#include "plan/fusion_util.h"

namespace parallax {
namespace {

using namespace fusion;  // NOLINT: the pass helpers.

const Node& At(const Graph& g, NodeId n) { return g.nodes[static_cast<size_t>(n)]; }
ValueId Out(const Graph& g, NodeId n) { return At(g, n).outputs[0]; }

// A binary node `n` reading `v` and a constant equal to `c`.
bool TakesConstant(const Graph& g, const Node& n, ValueId v, double c) {
  return IsConstant(g, OtherInput(n, v), c);
}

// Div(v, c) or Mul(v, 1 / c) read by consumer `n`.
bool DividesBy(const Graph& g, const Node& n, ValueId v, double c) {
  if (Is(n, "Div")) return n.inputs[0] == v && IsConstant(g, n.inputs[1], c);
  return Is(n, "Mul") && TakesConstant(g, n, v, 1.0 / c);
}

// The first single-output node reading `v` among `ops`, added to `p`.
NodeId NextOf(const Graph& g, Pattern& p, ValueId v, std::initializer_list<const char*> ops) {
  for (const char* op : ops) {
    Pattern q = p;
    NodeId n = q.SoleConsumer(v, op);
    if (n >= 0 && At(g, n).outputs.size() == 1) {
      p = q;
      return n;
    }
  }
  return -1;
}

// True when a node of `p` is already part of another rewrite.
bool Taken(const GraphEditor& ed, const Pattern& p) {
  for (NodeId m : p.nodes())
    if (ed.removed(m)) return true;
  return false;
}

Node Replacement(const Graph& g, const Pattern& p, const std::string& op, int opset,
                 std::vector<ValueId> inputs, NodeId last) {
  return MakeNode(At(g, p.nodes().front()), "", op, opset, std::move(inputs), {Out(g, last)});
}

// HardSwish from the anchor Add(x, 3) or HardSigmoid(x): returns the last
// pattern node (the one writing x * relu6(x + 3) / 6), or -1.
NodeId MatchHardSwish(const Graph& g, Pattern& p, ValueId x) {
  const Node& head = At(g, p.nodes().front());
  ValueId gate;  // relu6(x + 3), or the HardSigmoid (already divided by 6).
  bool divided = false;
  if (Is(head, "HardSigmoid")) {
    if (std::fabs(head.attr_float("alpha", 0.2f) - 1.0 / 6) > 1e-6 ||
        std::fabs(head.attr_float("beta", 0.5f) - 0.5) > 1e-6)
      return -1;
    gate = head.outputs[0];
    divided = true;
  } else {
    if (!TakesConstant(g, head, x, 3.0)) return -1;
    NodeId clip = NextOf(g, p, head.outputs[0], {"Clip"});
    if (clip < 0) return -1;
    const Node& c = At(g, clip);
    if (c.opset < 11 ? c.attr_float("min", -1) != 0 || c.attr_float("max", -1) != 6
                     : c.inputs.size() != 3 || !IsConstant(g, c.inputs[1], 0) ||
                           !IsConstant(g, c.inputs[2], 6))
      return -1;
    gate = c.outputs[0];
  }
  NodeId n = NextOf(g, p, gate, {"Mul", "Div"});
  if (n < 0) return -1;
  if (!divided && DividesBy(g, At(g, n), gate, 6.0)) {  // x * (relu6(x + 3) / 6).
    gate = Out(g, n);
    divided = true;
    n = NextOf(g, p, gate, {"Mul"});
    if (n < 0) return -1;
  }
  if (!Is(At(g, n), "Mul") || OtherInput(At(g, n), gate) != x) return -1;
  if (divided) return n;
  NodeId d = NextOf(g, p, Out(g, n), {"Div", "Mul"});  // (x * relu6(x + 3)) / 6.
  return d >= 0 && DividesBy(g, At(g, d), Out(g, n), 6.0) ? d : -1;
}

int64_t HardSwishOnce(Graph& g) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& n = g.nodes[i];
    if (ed.removed(id) || !(Is(n, "Add") || Is(n, "HardSigmoid")) || n.outputs.size() != 1)
      continue;
    for (ValueId x : n.inputs) {
      if (!IsFloat32(g, x) || g.values[static_cast<size_t>(x)].is_constant()) continue;
      Pattern p(ed, id);
      NodeId last = MatchHardSwish(g, p, x);
      if (last < 0 || Taken(ed, p)) continue;
      ed.Replace(p.nodes(), Replacement(g, p, "HardSwish", 14, {x}, last));
      break;
    }
  }
  return ed.Commit();
}

// From the anchor x / sqrt(2) (or x * (1 / sqrt(2))): Erf, Add 1, and the
// products by x and 0.5 in any order. Returns the last node, or -1.
NodeId MatchGelu(const Graph& g, Pattern& p, ValueId x) {
  const Node& head = At(g, p.nodes().front());
  if (!DividesBy(g, head, x, std::sqrt(2.0))) return -1;
  NodeId erf = NextOf(g, p, head.outputs[0], {"Erf"});
  NodeId add = erf < 0 ? -1 : NextOf(g, p, Out(g, erf), {"Add"});
  if (add < 0 || !TakesConstant(g, At(g, add), Out(g, erf), 1.0)) return -1;
  NodeId m1 = NextOf(g, p, Out(g, add), {"Mul"});
  if (m1 < 0) return -1;
  const ValueId other = OtherInput(At(g, m1), Out(g, add));
  if (other == x || IsConstant(g, other, 0.5)) {  // Then the remaining factor.
    NodeId m2 = NextOf(g, p, Out(g, m1), {"Mul"});
    if (m2 < 0) return -1;
    const ValueId last = OtherInput(At(g, m2), Out(g, m1));
    return (other == x ? IsConstant(g, last, 0.5) : last == x) ? m2 : -1;
  }
  // (x * 0.5) * (1 + erf): the half product is read only by m1.
  if (other == kNoValue) return -1;
  const NodeId h = g.values[static_cast<size_t>(other)].producer;
  if (h < 0 || !Is(At(g, h), "Mul") || !TakesConstant(g, At(g, h), x, 0.5)) return -1;
  p.Add(h);
  return p.Internal(other) ? m1 : -1;
}

int64_t GeluOnce(Graph& g) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& n = g.nodes[i];
    if (ed.removed(id) || !(Is(n, "Div") || Is(n, "Mul")) || n.inputs.size() != 2 ||
        n.outputs.size() != 1)
      continue;
    for (ValueId x : n.inputs) {
      if (!IsFloat32(g, x) || g.values[static_cast<size_t>(x)].is_constant()) continue;
      Pattern p(ed, id);
      const NodeId last = MatchGelu(g, p, x);
      if (last < 0 || Taken(ed, p)) continue;
      ed.Replace(p.nodes(), Replacement(g, p, "Gelu", 20, {x}, last));
      break;
    }
  }
  return ed.Commit();
}

// Axes as non-negative ints, sorted; nullopt when out of range.
std::optional<std::vector<int64_t>> Normalized(std::vector<int64_t> axes, int64_t rank) {
  for (int64_t& a : axes) {
    if (a < -rank || a >= rank) return std::nullopt;
    if (a < 0) a += rank;
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

// The first axis of a trailing block of axes reduced with keepdims=1 by `n`
// on an input of rank `rank`, or -1.
int64_t TrailingAxis(const Graph& g, const Node& n, int64_t rank) {
  if (n.attr_int("keepdims", 1) != 1) return -1;
  std::optional<std::vector<int64_t>> axes = ReduceAxes(g, n);
  if (!axes || axes->empty()) return -1;
  axes = Normalized(*axes, rank);
  if (!axes) return -1;
  for (size_t i = 0; i < axes->size(); ++i)
    if ((*axes)[i] != rank - static_cast<int64_t>(axes->size() - i)) return -1;
  return axes->front();
}

// gamma / beta of a LayerNorm: a float32 constant broadcasting over the
// trailing `k` dims of `x` without growing the result.
bool IsAffineParam(const Graph& g, ValueId v, const Value& x, int64_t k) {
  const Tensor* t = FloatConstant(g, v);
  if (t == nullptr || t->rank() > k) return false;
  for (int i = 0; i < t->rank(); ++i) {
    const Dim& d = x.dims[x.dims.size() - static_cast<size_t>(t->rank() - i)];
    if (t->dim(i) != 1 && !(d.known() && d.size == t->dim(i))) return false;
  }
  return true;
}

// The Pow(d, 2) or Mul(d, d) reading `d`, added to `p`; `div` gets d's other
// reader, which must be Div(d, .).
NodeId MatchSquare(const Graph& g, Pattern& p, ValueId d, NodeId* div) {
  const std::vector<NodeId>& readers = g.values[static_cast<size_t>(d)].consumers;
  if (readers.size() != 2 || IsGraphOutput(g, d)) return -1;
  for (int k = 0; k < 2; ++k) {
    const Node& sq = At(g, readers[static_cast<size_t>(k)]);
    const Node& other = At(g, readers[static_cast<size_t>(1 - k)]);
    const bool pow = Is(sq, "Pow") && sq.inputs[0] == d && IsConstant(g, sq.inputs[1], 2.0);
    const bool mul =
        Is(sq, "Mul") && sq.inputs.size() == 2 && sq.inputs[0] == d && sq.inputs[1] == d;
    if (!(pow || mul) || !Is(other, "Div") || other.inputs[0] != d) continue;
    p.Add(readers[static_cast<size_t>(k)]);
    *div = readers[static_cast<size_t>(1 - k)];
    return readers[static_cast<size_t>(k)];
  }
  return -1;
}

// From the anchor ReduceMean(x); builds the LayerNormalization or returns
// nullopt.
std::optional<Node> MatchLayerNorm(Graph& g, Pattern& p, ValueId x) {
  const Value& xv = g.values[static_cast<size_t>(x)];
  if (!xv.has_shape || xv.dims.empty()) return std::nullopt;
  const int64_t rank = static_cast<int64_t>(xv.dims.size());
  const int64_t axis = TrailingAxis(g, At(g, p.nodes().front()), rank);
  const ValueId mean = Out(g, p.nodes().front());
  NodeId sub = axis < 0 ? -1 : NextOf(g, p, mean, {"Sub"});
  if (sub < 0 || At(g, sub).inputs[0] != x || At(g, sub).inputs[1] != mean) return std::nullopt;
  const ValueId d = Out(g, sub);
  NodeId div = -1, sq = MatchSquare(g, p, d, &div);
  NodeId r2 = sq < 0 ? -1 : NextOf(g, p, Out(g, sq), {"ReduceMean"});
  if (r2 < 0 || TrailingAxis(g, At(g, r2), rank) != axis) return std::nullopt;
  NodeId add = NextOf(g, p, Out(g, r2), {"Add"});
  std::optional<float> eps;
  if (add >= 0) eps = UniformConstant(g, OtherInput(At(g, add), Out(g, r2)));
  NodeId sqrt = eps ? NextOf(g, p, Out(g, add), {"Sqrt"}) : -1;
  if (sqrt < 0 || NextOf(g, p, Out(g, sqrt), {"Div"}) != div ||
      At(g, div).inputs[1] != Out(g, sqrt))
    return std::nullopt;
  NodeId mul = NextOf(g, p, Out(g, div), {"Mul"});
  const ValueId gamma = mul < 0 ? kNoValue : OtherInput(At(g, mul), Out(g, div));
  if (mul < 0 || !IsAffineParam(g, gamma, xv, rank - axis)) return std::nullopt;
  std::vector<ValueId> inputs = {x, gamma};
  NodeId last = mul;
  Pattern with_bias = p;
  if (NodeId b = NextOf(g, with_bias, Out(g, mul), {"Add"}); b >= 0) {
    const ValueId beta = OtherInput(At(g, b), Out(g, mul));
    if (IsAffineParam(g, beta, xv, rank - axis)) {
      p = with_bias;
      inputs.push_back(beta);
      last = b;
    }
  }
  Node ln = Replacement(g, p, "LayerNormalization", 17, inputs, last);
  ln.attrs["axis"] = IntAttr(axis);
  ln.attrs["epsilon"] = FloatAttr(*eps);
  return ln;
}

int64_t LayerNormOnce(Graph& g) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& n = g.nodes[i];
    if (ed.removed(id) || !Is(n, "ReduceMean") || n.outputs.size() != 1 ||
        !IsFloat32(g, n.inputs[0]))
      continue;
    Pattern p(ed, id);
    std::optional<Node> ln = MatchLayerNorm(g, p, n.inputs[0]);
    if (ln && !Taken(ed, p)) ed.Replace(p.nodes(), std::move(*ln));
  }
  return ed.Commit();
}

// The single axis a keepdims reduction `n` reduces, or nullopt.
std::optional<int64_t> SingleAxis(const Graph& g, const Node& n) {
  std::optional<std::vector<int64_t>> axes = ReduceAxes(g, n);
  if (!axes || axes->size() != 1 || n.attr_int("keepdims", 1) != 1) return std::nullopt;
  return axes->front();
}

// From the anchor Exp(t): ReduceSum and Div over one axis, and a preceding
// Sub(x, ReduceMax(x)) over the same axis when present. Builds the Softmax.
std::optional<Node> MatchSoftmax(const Graph& g, Pattern& p) {
  const Node& exp = At(g, p.nodes().front());
  const ValueId e = exp.outputs[0];
  const std::vector<NodeId>& readers = g.values[static_cast<size_t>(e)].consumers;
  if (readers.size() != 2 || IsGraphOutput(g, e)) return std::nullopt;
  const bool sum_first = Is(At(g, readers[0]), "ReduceSum");
  const NodeId rs = readers[sum_first ? 0 : 1], dv = readers[sum_first ? 1 : 0];
  std::optional<int64_t> axis = SingleAxis(g, At(g, rs));
  if (!Is(At(g, rs), "ReduceSum") || !axis || At(g, rs).inputs[0] != e || !Is(At(g, dv), "Div") ||
      At(g, dv).inputs[0] != e || At(g, dv).inputs[1] != Out(g, rs))
    return std::nullopt;
  p.Add(rs);
  p.Add(dv);
  if (!p.Internal(Out(g, rs)) || !p.Internal(e)) return std::nullopt;
  ValueId in = exp.inputs[0];
  const NodeId sub = g.values[static_cast<size_t>(in)].producer;
  if (sub >= 0 && Is(At(g, sub), "Sub") &&
      g.values[static_cast<size_t>(in)].consumers.size() == 1 && !IsGraphOutput(g, in)) {
    const ValueId x = At(g, sub).inputs[0], mx = At(g, sub).inputs[1];
    const NodeId rm = g.values[static_cast<size_t>(mx)].producer;
    if (rm >= 0 && Is(At(g, rm), "ReduceMax") && At(g, rm).inputs[0] == x &&
        SingleAxis(g, At(g, rm)) == axis) {
      Pattern q = p;
      q.Add(sub);
      q.Add(rm);
      if (q.Internal(mx)) {
        p = q;
        in = x;
      }
    }
  }
  Node sm = Replacement(g, p, "Softmax", 13, {in}, dv);
  sm.attrs["axis"] = IntAttr(*axis);
  return sm;
}

int64_t SoftmaxOnce(Graph& g) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    const Node& n = g.nodes[i];
    if (ed.removed(id) || !Is(n, "Exp") || n.outputs.size() != 1 || !IsFloat32(g, n.inputs[0]))
      continue;
    Pattern p(ed, id);
    std::optional<Node> sm = MatchSoftmax(g, p);
    if (sm && !Taken(ed, p)) ed.Replace(p.nodes(), std::move(*sm));
  }
  return ed.Commit();
}

}  // namespace

int64_t FuseLayerNormPattern(Graph& g) { return fusion::ForEachGraph(g, LayerNormOnce); }
int64_t FuseSoftmaxPattern(Graph& g) { return fusion::ForEachGraph(g, SoftmaxOnce); }
int64_t FuseHardSwishPattern(Graph& g) { return fusion::ForEachGraph(g, HardSwishOnce); }
int64_t FuseGeluPattern(Graph& g) { return fusion::ForEachGraph(g, GeluOnce); }

}  // namespace parallax
