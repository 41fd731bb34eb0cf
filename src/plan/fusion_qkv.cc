// QkvUnpack: a packed query/key/value projection split into three
// projections (plan/fusion.h).
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ops/shape_util.h"
#include "plan/fusion.h"
#include "plan/fusion_util.h"
#include "plan/optimize.h"

namespace parallax {
namespace {

using namespace fusion;  // NOLINT: the pass helpers.

// The sole reader of `v` when it is an ONNX `op` node (and v no graph output).
NodeId SoleReader(const Graph& g, ValueId v, const char* op) {
  const Value& val = g.values[static_cast<size_t>(v)];
  if (val.consumers.size() != 1 || IsGraphOutput(g, v)) return -1;
  const NodeId r = val.consumers[0];
  return Is(g.nodes[static_cast<size_t>(r)], op) ? r : -1;
}

// The int values of input `i` of `n` when constant.
std::optional<std::vector<int64_t>> Ints(const Graph& g, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return std::nullopt;
  const Value& v = g.values[static_cast<size_t>(n.inputs[i])];
  if (!v.is_constant()) return std::nullopt;
  Result<std::vector<int64_t>> r = ReadInt64s(v.constant);
  return r.ok() ? std::optional(*r) : std::nullopt;
}

// The last `count` values of a Reshape's target: a constant, or a Concat
// whose trailing inputs are constants holding them.
std::optional<std::vector<int64_t>> TargetTail(const Graph& g, const Node& reshape, size_t count) {
  std::optional<std::vector<int64_t>> t = Ints(g, reshape, 1);
  if (!t) {
    const NodeId p = g.values[static_cast<size_t>(reshape.inputs[1])].producer;
    if (p < 0 || !Is(g.nodes[static_cast<size_t>(p)], "Concat")) return std::nullopt;
    const Node& cat = g.nodes[static_cast<size_t>(p)];
    t = std::vector<int64_t>{};
    for (size_t i = cat.inputs.size(); i-- > 0 && t->size() < count;) {
      std::optional<std::vector<int64_t>> part = Ints(g, cat, i);
      if (!part) return std::nullopt;
      t->insert(t->begin(), part->begin(), part->end());
    }
  }
  if (t->size() < count) return std::nullopt;
  return std::vector<int64_t>(t->end() - static_cast<std::ptrdiff_t>(count), t->end());
}

// True when position `i` of a Reshape target, given by int value `v` (one
// element), keeps dim i of `a`: a constant 0 (copy the dim) or a's known
// size there, or Unsqueeze(Gather(Shape(a or y), i)) as exporters write it.
bool KeepsDim(const Graph& g, ValueId v, size_t i, ValueId a, ValueId y) {
  const Value& val = g.values[static_cast<size_t>(v)];
  const Value& av = g.values[static_cast<size_t>(a)];
  if (val.is_constant()) {
    Result<std::vector<int64_t>> c = ReadInt64s(val.constant);
    return c.ok() && c->size() == 1 &&
           ((*c)[0] == 0 ||
            (i < av.dims.size() && av.dims[i].known() && av.dims[i].size == (*c)[0]));
  }
  const NodeId un = val.producer;
  if (un < 0 || !Is(g.nodes[static_cast<size_t>(un)], "Unsqueeze")) return false;
  const NodeId ga =
      g.values[static_cast<size_t>(g.nodes[static_cast<size_t>(un)].inputs[0])].producer;
  if (ga < 0 || !Is(g.nodes[static_cast<size_t>(ga)], "Gather")) return false;
  const Node& gather = g.nodes[static_cast<size_t>(ga)];
  const std::optional<std::vector<int64_t>> idx = Ints(g, gather, 1);
  const NodeId sh = g.values[static_cast<size_t>(gather.inputs[0])].producer;
  if (!idx || idx->size() != 1 || (*idx)[0] != static_cast<int64_t>(i) || sh < 0 ||
      !Is(g.nodes[static_cast<size_t>(sh)], "Shape") || gather.attr_int("axis", 0) != 0)
    return false;
  const Node& shape = g.nodes[static_cast<size_t>(sh)];
  const ValueId z = shape.inputs[0];
  return (z == a || z == y) && shape.attr_int("start", 0) == 0;
}

// True when the first `lead` entries of the Reshape's target keep the
// leading dims of the projection input `a` (and output `y`): then the
// unpacked reshapes may copy them (target 0).
bool KeepsLeadingDims(const Graph& g, const Node& reshape, size_t lead, ValueId a, ValueId y) {
  if (std::optional<std::vector<int64_t>> t = Ints(g, reshape, 1)) {
    for (size_t i = 0; i < lead; ++i) {
      const Value& av = g.values[static_cast<size_t>(a)];
      const int64_t d = (*t)[i];
      if (!(d == 0 || (i < av.dims.size() && av.dims[i].known() && av.dims[i].size == d)))
        return false;
    }
    return true;
  }
  const NodeId p = g.values[static_cast<size_t>(reshape.inputs[1])].producer;
  if (p < 0 || !Is(g.nodes[static_cast<size_t>(p)], "Concat")) return false;
  const Node& cat = g.nodes[static_cast<size_t>(p)];
  for (size_t i = 0; i < lead; ++i)  // One element per input up to `lead`.
    if (i >= cat.inputs.size() || !KeepsDim(g, cat.inputs[i], i, a, y)) return false;
  return true;
}

// True when `v` is read only by a MatMul / ScaledMatMul, directly or through
// Transposes each read only by the next: unpacked, such a Q, K or V is read
// in place (MatMulTranspose). Elsewhere (e.g. Swin V2 normalising Q and K
// first) the transposed copies would stay and three parallel projections
// would only widen the schedule, so the projection stays packed.
bool FeedsMatMul(const Graph& g, ValueId v) {
  for (;;) {
    const Value& val = g.values[static_cast<size_t>(v)];
    if (val.consumers.size() != 1 || IsGraphOutput(g, v)) return false;
    const Node& r = g.nodes[static_cast<size_t>(val.consumers[0])];
    if (Is(r, "MatMul") || (r.domain == kDomain && r.op_type == "ScaledMatMul")) return true;
    if (!Is(r, "Transpose")) return false;
    v = r.outputs[0];
  }
}

// A matched packed projection: Y = A x W + b ([..., 3C]) -> Reshape
// [..., 3, H, D] -> Transpose (the 3 first) -> Split into 3 along axis 0 ->
// Squeeze axis 0, giving Q, K, V.
struct Packed {
  NodeId mm = -1;
  std::vector<NodeId> removed;  // Reshape, Transpose, Split, Squeezes.
  std::vector<int64_t> perm;    // Q's (and K's, V's) transpose of [..., H, D].
  int64_t heads = 0, dim = 0;
  std::vector<ValueId> outs;  // The Squeezes' outputs: Q, K, V.
};

std::optional<Packed> Match(const Graph& g, NodeId id) {
  const Node& mm = g.nodes[static_cast<size_t>(id)];
  if (mm.domain != kDomain || mm.op_type != "FusedMatMul" || mm.inputs.size() != 3 ||
      !mm.attrs.empty() || mm.outputs.size() != 1)
    return std::nullopt;
  const Tensor* w = FloatConstant(g, mm.inputs[1]);
  const Tensor* b = FloatConstant(g, mm.inputs[2]);
  if (w == nullptr || b == nullptr || w->rank() != 2 || b->rank() != 1 || w->dim(1) % 3 != 0)
    return std::nullopt;
  Packed p;
  p.mm = id;
  const NodeId rs = SoleReader(g, mm.outputs[0], "Reshape");
  if (rs < 0) return std::nullopt;
  const Node& reshape = g.nodes[static_cast<size_t>(rs)];
  const auto tail = TargetTail(g, reshape, 3);
  if (!tail || (*tail)[0] != 3 || (*tail)[1] <= 0 || (*tail)[2] <= 0 ||
      (*tail)[1] * (*tail)[2] * 3 != w->dim(1))
    return std::nullopt;
  p.heads = (*tail)[1];
  p.dim = (*tail)[2];
  const NodeId tr = SoleReader(g, reshape.outputs[0], "Transpose");
  if (tr < 0) return std::nullopt;
  const std::vector<int64_t> perm = g.nodes[static_cast<size_t>(tr)].attr_ints("perm");
  const int64_t r = static_cast<int64_t>(perm.size());  // Rank of [..., 3, H, D].
  if (r < 4 || perm[0] != r - 3) return std::nullopt;
  // The unpacked reshapes copy A's leading dims (target 0): the packed
  // one's must be those.
  if (!KeepsLeadingDims(g, reshape, static_cast<size_t>(r - 3), mm.inputs[0], mm.outputs[0]))
    return std::nullopt;
  for (size_t j = 1; j < perm.size(); ++j)  // Drop the 3 axis: Q's perm of [..., H, D].
    p.perm.push_back(perm[j] < r - 3 ? perm[j] : perm[j] - 1);
  const NodeId sp = SoleReader(g, g.nodes[static_cast<size_t>(tr)].outputs[0], "Split");
  if (sp < 0) return std::nullopt;
  const Node& split = g.nodes[static_cast<size_t>(sp)];
  std::vector<int64_t> sizes = split.attr_ints("split");
  if (auto s = Ints(g, split, 1)) sizes = *s;
  if (split.attr_int("axis", 0) != 0 || split.outputs.size() != 3 ||
      !(sizes.empty() || sizes == std::vector<int64_t>{1, 1, 1}))
    return std::nullopt;
  p.removed = {rs, tr, sp};
  for (ValueId o : split.outputs) {
    const NodeId sq = o == kNoValue ? -1 : SoleReader(g, o, "Squeeze");
    if (sq < 0) return std::nullopt;
    const Node& squeeze = g.nodes[static_cast<size_t>(sq)];
    std::vector<int64_t> axes = squeeze.attr_ints("axes");
    if (auto a = Ints(g, squeeze, 1)) axes = *a;
    if (axes != std::vector<int64_t>{0}) return std::nullopt;
    if (!FeedsMatMul(g, squeeze.outputs[0])) return std::nullopt;
    p.removed.push_back(sq);
    p.outs.push_back(squeeze.outputs[0]);
  }
  return p;
}

// Columns [c0, c0 + n) of W [K, N], or elements of bias [N].
Tensor Columns(const Tensor& t, int64_t c0, int64_t n) {
  const int64_t rows = t.rank() == 2 ? t.dim(0) : 1, cols = t.shape().back();
  Tensor out = Tensor::Uninitialized(DType::kFloat32, t.rank() == 2 ? Shape{rows, n} : Shape{n});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c)
      out.data<float>()[r * n + c] = t.data<float>()[r * cols + c0 + c];
  return out;
}

ValueId AddFloatValue(Graph& g, const std::string& name) {
  Value v;
  v.name = name;
  v.dtype = DType::kFloat32;
  return g.AddValue(std::move(v));
}

// The three projections, reshapes and transposes that replace `p`.
std::vector<Node> Unpacked(Graph& g, const Packed& p) {
  const Node mm = g.nodes[static_cast<size_t>(p.mm)];
  const Tensor w = *FloatConstant(g, mm.inputs[1]);
  const Tensor b = *FloatConstant(g, mm.inputs[2]);
  const int64_t c = w.dim(1) / 3;
  const int64_t rank = static_cast<int64_t>(p.perm.size());       // Of [..., H, D].
  std::vector<int64_t> target(static_cast<size_t>(rank - 2), 0);  // 0: keep the dim.
  target.push_back(p.heads);
  target.push_back(p.dim);
  std::vector<Node> out;
  const char* parts[] = {"q", "k", "v"};
  for (int i = 0; i < 3; ++i) {
    const std::string base = mm.name + "/" + parts[i];
    const ValueId wi = g.AddConstant(base + "/weight", Columns(w, i * c, c));
    const ValueId bi = g.AddConstant(base + "/bias", Columns(b, i * c, c));
    const ValueId ti =
        g.AddConstant(base + "/heads", Tensor::FromVector(DType::kInt64, {rank}, target));
    const ValueId yi = AddFloatValue(g, base + "/projected");
    const ValueId hi = AddFloatValue(g, base + "/heads_out");
    Node proj = MakeNode(mm, kDomain, "FusedMatMul", 1, {mm.inputs[0], wi, bi}, {yi});
    proj.name = base;
    Node reshape = MakeNode(mm, "", "Reshape", 14, {yi, ti}, {hi});
    reshape.name = base + "/Reshape";
    Node transpose = MakeNode(mm, "", "Transpose", 13, {hi}, {p.outs[static_cast<size_t>(i)]});
    transpose.name = base + "/Transpose";
    transpose.attrs["perm"] = IntsAttr(p.perm);
    out.push_back(std::move(proj));
    out.push_back(std::move(reshape));
    out.push_back(std::move(transpose));
  }
  return out;
}

int64_t QkvUnpackOnce(Graph& g) {
  std::vector<Packed> found;
  std::vector<bool> taken(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (auto p = Match(g, static_cast<NodeId>(i))) {
      for (NodeId n : p->removed) taken[static_cast<size_t>(n)] = true;
      taken[i] = true;
      found.push_back(std::move(*p));
    }
  if (found.empty()) return 0;
  std::vector<std::vector<Node>> at(g.nodes.size());
  for (const Packed& p : found) at[static_cast<size_t>(p.mm)] = Unpacked(g, p);
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!at[i].empty()) {  // The projections take the packed one's place.
      for (Node& n : at[i]) kept.push_back(std::move(n));
    } else if (!taken[i]) {
      kept.push_back(std::move(g.nodes[i]));
    }
  }
  g.nodes = std::move(kept);
  g.RebuildLinks();
  RemoveDeadNodes(g);  // The reshape target's shape arithmetic.
  return static_cast<int64_t>(found.size());
}

}  // namespace

int64_t FuseQkvUnpack(Graph& g) { return fusion::ForEachGraph(g, QkvUnpackOnce); }

}  // namespace parallax
