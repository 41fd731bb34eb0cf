#include "plan/memory_split.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "plan/fusion_util.h"

namespace parallax {
namespace {

constexpr const char* kParallaxDomain = "com.parallax";
constexpr int kMaxIterations = 256;

const Shape* ShapeOf(const std::vector<ValueShape>& shapes, ValueId v) {
  if (v == kNoValue || static_cast<size_t>(v) >= shapes.size() || !shapes[v].known) return nullptr;
  return &shapes[v].dims;
}

size_t Bytes(const Graph& g, const std::vector<ValueShape>& shapes, ValueId v) {
  const Shape* s = ShapeOf(shapes, v);
  if (s == nullptr) return 0;
  const DType t = g.values[static_cast<size_t>(v)].dtype;
  if (t == DType::kSequence || t == DType::kOptional || t == DType::kString) return 0;
  const size_t element = t == DType::kUndefined ? 4 : DTypeSize(t);  // Unknown: assume float.
  return static_cast<size_t>(NumElements(*s)) * element;
}

bool IsElementwise(const Node& n) {
  static const std::set<std::string> kOps = {
      "Add",       "Sub",  "Mul",   "Div",     "Pow",         "Max",       "Min",  "Where", "Relu",
      "LeakyRelu", "Elu",  "Selu",  "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf",   "Exp",
      "Log",       "Neg",  "Abs",   "Sqrt",    "Reciprocal",  "Softplus",  "Gelu", "Cast",  "Clip",
      "Floor",     "Ceil", "Round", "Sin",     "Cos",         "Mish",      "Not",  "Equal", "Less",
      "Greater",   "And",  "Or",    "PRelu",   "Identity",    "Sign"};
  return n.domain.empty() && kOps.count(n.op_type) != 0;
}

// How one node splits: sliced along `out_axis` of its output 0, it reads
// input i sliced along in_axes[i], or whole when in_axes[i] is -1.
struct SplitMap {
  int out_axis = -1;
  std::vector<int> in_axes;
};

// Numpy broadcasting: inputs [from, end) of `n` vary along output axis
// `o` (of rank `r`, size `extent`) where they have that axis with size > 1.
bool MapBroadcast(const Node& n, const std::vector<ValueShape>& shapes, int o, int r,
                  int64_t extent, size_t from, SplitMap* m) {
  for (size_t i = from; i < n.inputs.size(); ++i) {
    if (n.inputs[i] == kNoValue) continue;
    const Shape* s = ShapeOf(shapes, n.inputs[i]);
    if (s == nullptr) return false;
    const int ai = o - (r - static_cast<int>(s->size()));
    if (ai < 0 || (*s)[static_cast<size_t>(ai)] == 1) continue;
    if ((*s)[static_cast<size_t>(ai)] != extent) return false;
    m->in_axes[i] = ai;
  }
  return true;
}

// MatMul-family (A [..., M, K] x B [..., K, N]) with input `in` sliced along
// `axis`: a batch axis (B or A follows where it has that axis), M of A or N
// of B. The reduced K axis does not split.
bool MapMatMul(const Node& n, const std::vector<ValueShape>& shapes, int in, int axis, int r,
               SplitMap* m) {
  const Shape* a = ShapeOf(shapes, n.inputs[0]);
  const Shape* b = n.inputs.size() > 1 ? ShapeOf(shapes, n.inputs[1]) : nullptr;
  if (a == nullptr || b == nullptr || a->size() < 2 || b->size() < 2 || in > 1) return false;
  const int ra = static_cast<int>(a->size()), rb = static_cast<int>(b->size());
  const int rx = in == 0 ? ra : rb;
  const Shape* other = in == 0 ? b : a;
  const int ro = in == 0 ? rb : ra;
  if (axis == rx - 1 - in) return false;  // K.
  m->in_axes[static_cast<size_t>(in)] = axis;
  if (axis == rx - 2 + in) {  // M of A or N of B: the other operand is read whole.
    m->out_axis = r - 2 + in;
    return true;
  }
  m->out_axis = axis + (r - rx);  // Batch.
  const int oi = m->out_axis - (r - ro);
  if (oi >= 0 && oi < ro - 2 && (*other)[static_cast<size_t>(oi)] != 1)
    m->in_axes[static_cast<size_t>(1 - in)] = oi;
  return true;
}

// How `n` splits when input `in` is sliced along `axis`; nullopt when it
// does not (or shapes are unknown).
std::optional<SplitMap> MapSplit(const std::vector<ValueShape>& shapes, const Node& n, int in,
                                 int axis) {
  if (n.outputs.empty() || n.outputs[0] == kNoValue || !n.implicit_inputs.empty())
    return std::nullopt;
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (n.outputs[i] != kNoValue) return std::nullopt;
  const Shape* out = ShapeOf(shapes, n.outputs[0]);
  const Shape* x = ShapeOf(shapes, n.inputs[static_cast<size_t>(in)]);
  if (out == nullptr || x == nullptr) return std::nullopt;
  const int r = static_cast<int>(out->size()), rx = static_cast<int>(x->size());
  if (axis < 0 || axis >= rx) return std::nullopt;
  const int64_t extent = (*x)[static_cast<size_t>(axis)];
  SplitMap m;
  m.in_axes.assign(n.inputs.size(), -1);
  const std::string& op = n.op_type;
  const bool onnx = n.domain.empty();
  if (IsElementwise(n)) {
    m.out_axis = axis + (r - rx);
    if (m.out_axis < 0 || !MapBroadcast(n, shapes, m.out_axis, r, extent, 0, &m))
      return std::nullopt;
  } else if (onnx && (op == "Softmax" || op == "LogSoftmax" || op == "LayerNormalization")) {
    if (in != 0) return std::nullopt;
    const bool single = op != "LayerNormalization" && n.opset >= 13;
    int64_t norm = n.attr_int("axis", op == "LayerNormalization" || single ? -1 : 1);
    if (norm < 0) norm += rx;
    if (single ? axis == norm : axis >= norm) return std::nullopt;  // Normalised axes stay whole.
    m.out_axis = axis;
    m.in_axes[0] = axis;
  } else if (onnx && op == "Transpose") {
    std::vector<int64_t> perm = n.attr_ints("perm");
    if (perm.empty())
      for (int d = rx - 1; d >= 0; --d) perm.push_back(d);
    for (size_t j = 0; j < perm.size(); ++j)
      if (perm[j] == axis) m.out_axis = static_cast<int>(j);
    m.in_axes[0] = axis;
  } else if ((onnx && op == "MatMul") ||
             (n.domain == kParallaxDomain && (op == "ScaledMatMul" || op == "FusedMatMul"))) {
    if (!MapMatMul(n, shapes, in, axis, r, &m)) return std::nullopt;
    if (op == "FusedMatMul") {  // Bias along N stays whole; a residual broadcasts.
      if (in != 0 || m.out_axis == r - 1) return std::nullopt;
      if (!MapBroadcast(n, shapes, m.out_axis, r, extent, 2, &m)) return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  if (m.out_axis < 0 || m.out_axis >= r || (*out)[static_cast<size_t>(m.out_axis)] != extent ||
      m.in_axes[static_cast<size_t>(in)] != axis)
    return std::nullopt;
  return m;
}

struct ChainNode {
  NodeId node = -1;
  SplitMap map;
};

struct Chain {
  std::vector<ChainNode> nodes;  // In execution order.
  int64_t extent = 0;            // Size of the split axis.
  int pieces = 2;
};

struct Context {
  const Graph& g;
  const std::vector<ValueShape>& shapes;
  std::vector<bool> is_output;  // Per value.
  std::vector<bool> taken;      // Per node: in a chain.
};

// Distinct nodes reading `v`.
std::vector<NodeId> Readers(const Graph& g, ValueId v) {
  std::vector<NodeId> r = g.values[static_cast<size_t>(v)].consumers;
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

// A split of node `n` whose output is sliced along `out_axis`, reading some
// non-constant input sliced.
std::optional<SplitMap> FitOutput(const Context& cx, NodeId n, int out_axis) {
  const Node& node = cx.g.nodes[static_cast<size_t>(n)];
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const ValueId u = node.inputs[i];
    if (u == kNoValue || cx.g.values[static_cast<size_t>(u)].is_constant()) continue;
    const Shape* s = ShapeOf(cx.shapes, u);
    for (int ax = 0; s != nullptr && ax < static_cast<int>(s->size()); ++ax) {
      auto m = MapSplit(cx.shapes, node, static_cast<int>(i), ax);
      if (m && m->out_axis == out_axis) return m;
    }
  }
  return std::nullopt;
}

// An intermediate a chain may pass through: one reader, not a graph output.
bool PassesThrough(const Context& cx, ValueId v, NodeId reader) {
  const std::vector<NodeId> r = Readers(cx.g, v);
  return !cx.is_output[static_cast<size_t>(v)] && r.size() == 1 && r[0] == reader;
}

// The chain around `seed` (a node output): split along its outermost
// non-unit axis, grown backwards and forwards over values at least half the
// seed's size.
std::optional<Chain> SeedChain(const Context& cx, ValueId seed) {
  const Graph& g = cx.g;
  const NodeId p = g.values[static_cast<size_t>(seed)].producer;
  const Shape* s = ShapeOf(cx.shapes, seed);
  if (p < 0 || cx.taken[static_cast<size_t>(p)] || s == nullptr) return std::nullopt;
  int axis = 0;
  while (axis < static_cast<int>(s->size()) && (*s)[static_cast<size_t>(axis)] <= 1) ++axis;
  if (axis == static_cast<int>(s->size())) return std::nullopt;
  auto head = FitOutput(cx, p, axis);
  if (!head) return std::nullopt;
  const size_t big = Bytes(g, cx.shapes, seed) / 2;
  Chain c;
  c.extent = (*s)[static_cast<size_t>(axis)];
  c.nodes.push_back({p, *head});
  for (;;) {  // Backwards: the largest sliced input made by a splittable node.
    const ChainNode& first = c.nodes.front();
    const Node& n = g.nodes[static_cast<size_t>(first.node)];
    std::optional<ChainNode> best;
    size_t best_bytes = 0;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const ValueId u = n.inputs[i];
      if (u == kNoValue || first.map.in_axes[i] < 0) continue;
      const NodeId q = g.values[static_cast<size_t>(u)].producer;
      const size_t bytes = Bytes(g, cx.shapes, u);
      if (q < 0 || cx.taken[static_cast<size_t>(q)] || bytes < big || bytes <= best_bytes ||
          !PassesThrough(cx, u, first.node))
        continue;
      if (auto m = FitOutput(cx, q, first.map.in_axes[i])) {
        best = ChainNode{q, *m};
        best_bytes = bytes;
      }
    }
    if (!best) break;
    c.nodes.insert(c.nodes.begin(), *best);
  }
  for (;;) {  // Forwards while the chain's output is still large.
    const ChainNode& last = c.nodes.back();
    const ValueId w = g.nodes[static_cast<size_t>(last.node)].outputs[0];
    if (Bytes(g, cx.shapes, w) < big || cx.is_output[static_cast<size_t>(w)]) break;
    const std::vector<NodeId> r = Readers(g, w);
    if (r.size() != 1 || cx.taken[static_cast<size_t>(r[0])]) break;
    const Node& next = g.nodes[static_cast<size_t>(r[0])];
    const auto at = std::find(next.inputs.begin(), next.inputs.end(), w);
    auto m =
        MapSplit(cx.shapes, next, static_cast<int>(at - next.inputs.begin()), last.map.out_axis);
    if (!m) break;
    c.nodes.push_back({r[0], *m});
  }
  // A chain that ends on a large value saves nothing: its Concat rebuilds it.
  const ValueId end = g.nodes[static_cast<size_t>(c.nodes.back().node)].outputs[0];
  if (Bytes(g, cx.shapes, end) >= big) return std::nullopt;
  return c;
}

struct Rewritten {
  MemorySplit split;
  std::vector<int> interior_chain;  // Per value: chain whose piece-internal value it is, or -1.
};

// A value like `like` (dtype, name + suffix) of shape `dims`.
ValueId AddPieceValue(Rewritten* rw, const Value& like, const std::string& suffix,
                      const Shape& dims, int interior_chain) {
  Value v;
  v.name = like.name + suffix;
  v.dtype = like.dtype;
  v.has_shape = true;
  for (int64_t d : dims) v.dims.push_back(Dim{d, ""});
  const ValueId id = rw->split.graph.AddValue(std::move(v));
  rw->split.shapes.push_back(ValueShape{true, dims});
  rw->interior_chain.push_back(interior_chain);
  return id;
}

// Emits chain `ci` piece by piece: Splits of the inputs that vary along the
// axis, the chain's nodes per piece, a Concat into the chain's output.
void EmitChain(const Graph& g, const Chain& c, int ci, Rewritten* rw) {
  Graph& out = rw->split.graph;
  const int k_pieces = c.pieces;
  std::vector<int64_t> sizes;
  for (int k = 0; k < k_pieces; ++k)
    sizes.push_back(c.extent / k_pieces + (k < c.extent % k_pieces ? 1 : 0));
  const Node& last = g.nodes[static_cast<size_t>(c.nodes.back().node)];
  ValueId sizes_value = kNoValue;
  std::map<std::pair<ValueId, int>, std::vector<ValueId>> slices;
  auto slice = [&](ValueId u, int axis) -> const std::vector<ValueId>& {
    auto [it, inserted] = slices.try_emplace({u, axis});
    if (!inserted) return it->second;
    if (sizes_value == kNoValue) {
      sizes_value = out.AddConstant(last.name + "/split_sizes",
                                    Tensor::FromVector(DType::kInt64, {k_pieces}, sizes));
      rw->split.shapes.push_back(ValueShape{true, {k_pieces}});
      rw->interior_chain.push_back(-1);
    }
    Node split;
    split.name = g.values[static_cast<size_t>(u)].name + "/split";
    split.op_type = "Split";
    split.opset = 13;
    split.inputs = {u, sizes_value};
    split.attrs["axis"] = fusion::IntAttr(axis);
    for (int k = 0; k < k_pieces; ++k) {
      Shape dims = rw->split.shapes[static_cast<size_t>(u)].dims;
      dims[static_cast<size_t>(axis)] = sizes[static_cast<size_t>(k)];
      split.outputs.push_back(AddPieceValue(rw, g.values[static_cast<size_t>(u)],
                                            "/piece" + std::to_string(k), dims, -1));
    }
    out.nodes.push_back(std::move(split));
    rw->split.origin.push_back(-1);
    it->second = out.nodes.back().outputs;
    return it->second;
  };
  std::vector<ValueId> piece_outputs;
  for (int k = 0; k < k_pieces; ++k) {
    ValueId prev = kNoValue;
    for (size_t j = 0; j < c.nodes.size(); ++j) {
      const ChainNode& cn = c.nodes[j];
      const Node& orig = g.nodes[static_cast<size_t>(cn.node)];
      const ValueId prev_orig =
          j == 0 ? kNoValue : g.nodes[static_cast<size_t>(c.nodes[j - 1].node)].outputs[0];
      Node n = orig;
      n.name += "/piece" + std::to_string(k);
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const ValueId u = orig.inputs[i];
        if (u == kNoValue) continue;
        if (j > 0 && u == prev_orig)
          n.inputs[i] = prev;
        else if (cn.map.in_axes[i] >= 0)
          n.inputs[i] = slice(u, cn.map.in_axes[i])[static_cast<size_t>(k)];
      }
      const ValueId y = orig.outputs[0];
      Shape dims = rw->split.shapes[static_cast<size_t>(y)].dims;
      dims[static_cast<size_t>(cn.map.out_axis)] = sizes[static_cast<size_t>(k)];
      const bool interior = j + 1 < c.nodes.size();
      prev = AddPieceValue(rw, g.values[static_cast<size_t>(y)], "/piece" + std::to_string(k), dims,
                           interior ? ci : -1);
      n.outputs[0] = prev;
      out.nodes.push_back(std::move(n));
      rw->split.origin.push_back(cn.node);
    }
    piece_outputs.push_back(prev);
  }
  Node concat;
  concat.name = last.name + "/concat";
  concat.op_type = "Concat";
  concat.opset = 13;
  concat.inputs = piece_outputs;
  concat.outputs = {last.outputs[0]};
  concat.attrs["axis"] = fusion::IntAttr(c.nodes.back().map.out_axis);
  out.nodes.push_back(std::move(concat));
  rw->split.origin.push_back(-1);
}

// The graph with `chains` split, each emitted where its last node was (every
// input of the chain is computed by then).
Result<Rewritten> Rewrite(const Graph& g, const std::vector<ValueShape>& shapes,
                          const std::vector<Chain>& chains) {
  Rewritten rw;
  Graph& out = rw.split.graph;
  out.name = g.name;
  out.values = g.values;
  out.inputs = g.inputs;
  out.outputs = g.outputs;
  out.captures = g.captures;
  rw.split.shapes = shapes;
  rw.split.shapes.resize(g.values.size());
  rw.interior_chain.assign(g.values.size(), -1);
  std::vector<int> chain_of(g.nodes.size(), -1);
  for (size_t c = 0; c < chains.size(); ++c)
    for (const ChainNode& cn : chains[c].nodes)
      chain_of[static_cast<size_t>(cn.node)] = static_cast<int>(c);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const int c = chain_of[i];
    if (c < 0) {
      out.nodes.push_back(g.nodes[i]);
      rw.split.origin.push_back(static_cast<NodeId>(i));
    } else if (chains[static_cast<size_t>(c)].nodes.back().node == static_cast<NodeId>(i)) {
      EmitChain(g, chains[static_cast<size_t>(c)], c, &rw);
      rw.split.max_pieces = std::max(rw.split.max_pieces, chains[static_cast<size_t>(c)].pieces);
    }
  }
  rw.split.chains = static_cast<int>(chains.size());
  out.RebuildLinks();
  // Emission order is topological (see above); TopologicalSort would reorder
  // `origin` out of step, so a violation is reported, not repaired.
  std::vector<bool> ready(out.values.size(), false);
  for (size_t v = 0; v < out.values.size(); ++v) ready[v] = out.values[v].producer < 0;
  for (const Node& n : out.nodes) {
    for (ValueId u : n.inputs)
      if (u != kNoValue && !ready[static_cast<size_t>(u)])
        return Internal("memory split: " + n.Describe() + " reads '" +
                        out.values[static_cast<size_t>(u)].name + "' before it is computed");
    for (ValueId o : n.outputs)
      if (o != kNoValue) ready[static_cast<size_t>(o)] = true;
  }
  return rw;
}

}  // namespace

bool ForwardsInput(const Node& n) {
  return n.domain.empty() && n.outputs.size() == 1 && !n.inputs.empty() &&
         n.inputs[0] != kNoValue &&
         (n.op_type == "Reshape" || n.op_type == "Flatten" || n.op_type == "Squeeze" ||
          n.op_type == "Unsqueeze");
}

PeakEstimate EstimateSequentialPeak(const Graph& g, const std::vector<ValueShape>& shapes,
                                    const ReusableInputsFn& reusable) {
  const size_t nv = g.values.size();
  const int32_t steps = static_cast<int32_t>(g.nodes.size());
  std::vector<bool> is_output(nv, false);
  for (ValueId o : g.outputs) is_output[static_cast<size_t>(o)] = true;
  std::vector<int32_t> last(nv, -1);
  std::vector<int32_t> readers(nv, 0);
  for (int32_t s = 0; s < steps; ++s) {
    const Node& n = g.nodes[static_cast<size_t>(s)];
    for (const auto* list : {&n.inputs, &n.implicit_inputs})
      for (ValueId u : *list)
        if (u != kNoValue && last[static_cast<size_t>(u)] != s) {
          last[static_cast<size_t>(u)] = s;
          ++readers[static_cast<size_t>(u)];
        }
  }
  std::vector<ValueId> root(nv);
  for (size_t v = 0; v < nv; ++v) root[v] = static_cast<ValueId>(v);
  auto activation = [&](ValueId u) {
    return u != kNoValue && g.values[static_cast<size_t>(u)].producer >= 0 &&
           !is_output[static_cast<size_t>(u)];
  };
  for (int32_t s = 0; s < steps; ++s) {
    const Node& n = g.nodes[static_cast<size_t>(s)];
    if (n.outputs.empty() || n.outputs[0] == kNoValue ||
        is_output[static_cast<size_t>(n.outputs[0])])
      continue;
    const ValueId y = n.outputs[0];
    if (ForwardsInput(n) && activation(n.inputs[0])) {
      root[static_cast<size_t>(y)] = root[static_cast<size_t>(n.inputs[0])];
    } else if (reusable) {
      for (int k : reusable(n)) {
        if (k < 0 || static_cast<size_t>(k) >= n.inputs.size()) continue;
        const ValueId u = n.inputs[static_cast<size_t>(k)];
        if (activation(u) && readers[static_cast<size_t>(u)] == 1 &&
            Bytes(g, shapes, u) == Bytes(g, shapes, y)) {
          root[static_cast<size_t>(y)] = root[static_cast<size_t>(u)];
          break;
        }
      }
    }
  }
  std::vector<int32_t> first(nv, -1), end(nv, -1);  // Per root.
  for (size_t v = 0; v < nv; ++v) {
    const NodeId p = g.values[v].producer;
    if (p < 0) continue;
    const size_t r = static_cast<size_t>(root[v]);
    const int32_t until = is_output[v] ? steps - 1 : std::max(last[v], p);
    if (first[r] < 0 || p < first[r]) first[r] = p;
    end[r] = std::max(end[r], until);
  }
  std::vector<int64_t> delta(static_cast<size_t>(steps) + 1, 0);
  for (size_t r = 0; r < nv; ++r) {
    if (first[r] < 0 || root[r] != static_cast<ValueId>(r)) continue;
    const int64_t b = static_cast<int64_t>(Bytes(g, shapes, static_cast<ValueId>(r)));
    delta[static_cast<size_t>(first[r])] += b;
    delta[static_cast<size_t>(end[r]) + 1] -= b;
  }
  PeakEstimate pe;
  int64_t live = 0;
  int32_t at = -1;
  for (int32_t s = 0; s < steps; ++s) {
    live += delta[static_cast<size_t>(s)];
    if (live > static_cast<int64_t>(pe.bytes)) {
      pe.bytes = static_cast<size_t>(live);
      at = s;
    }
  }
  for (size_t r = 0; at >= 0 && r < nv; ++r)
    if (first[r] >= 0 && root[r] == static_cast<ValueId>(r) && first[r] <= at && at <= end[r] &&
        Bytes(g, shapes, static_cast<ValueId>(r)) > 0)
      pe.live_at_peak.push_back(static_cast<ValueId>(r));
  return pe;
}

Result<MemorySplit> SplitForMemory(const Graph& graph, const std::vector<ValueShape>& shapes,
                                   size_t budget_bytes, const ReusableInputsFn& reusable) {
  Context cx{graph, shapes, std::vector<bool>(graph.values.size(), false),
             std::vector<bool>(graph.nodes.size(), false)};
  for (ValueId o : graph.outputs) cx.is_output[static_cast<size_t>(o)] = true;
  std::vector<Chain> chains;
  size_t lowest = std::numeric_limits<size_t>::max();
  for (int iter = 0; iter < kMaxIterations; ++iter) {
    PX_ASSIGN_OR_RETURN(Rewritten rw, Rewrite(graph, shapes, chains));
    const PeakEstimate pe = EstimateSequentialPeak(rw.split.graph, rw.split.shapes, reusable);
    rw.split.estimated_peak_bytes = pe.bytes;
    if (pe.bytes <= budget_bytes) return std::move(rw.split);
    lowest = std::min(lowest, pe.bytes);
    std::vector<ValueId> live = pe.live_at_peak;
    std::stable_sort(live.begin(), live.end(), [&](ValueId a, ValueId b) {
      return Bytes(rw.split.graph, rw.split.shapes, a) > Bytes(rw.split.graph, rw.split.shapes, b);
    });
    bool changed = false;
    for (ValueId x : live) {
      const int c = rw.interior_chain[static_cast<size_t>(x)];
      if (c >= 0) {  // A piece of a split chain: more, smaller pieces.
        Chain& chain = chains[static_cast<size_t>(c)];
        if (chain.pieces >= chain.extent) continue;
        chain.pieces = static_cast<int>(std::min<int64_t>(chain.extent, chain.pieces * 2));
        changed = true;
        break;
      }
      if (static_cast<size_t>(x) >= graph.values.size()) continue;  // A Split's or piece's output.
      if (auto chain = SeedChain(cx, x)) {
        for (const ChainNode& cn : chain->nodes) cx.taken[static_cast<size_t>(cn.node)] = true;
        chains.push_back(std::move(*chain));
        changed = true;
        break;
      }
    }
    if (!changed) break;
  }
  return ResourceExhausted("running chains of ops in pieces lowers its estimated peak to " +
                           std::to_string(lowest) + " bytes at best, still over " +
                           std::to_string(budget_bytes));
}

}  // namespace parallax
