#include "plan/memory_split.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "plan/fusion_util.h"
#include "plan/split_map.h"

namespace parallax {
namespace {

constexpr const char* kParallaxDomain = "com.parallax";
constexpr int kMaxIterations = 256;

size_t Bytes(const Graph& g, const std::vector<ValueShape>& shapes, ValueId v) {
  const Shape* s = KnownShape(shapes, v);
  if (s == nullptr) return 0;
  const DType t = g.values[static_cast<size_t>(v)].dtype;
  if (t == DType::kSequence || t == DType::kOptional || t == DType::kString) return 0;
  const size_t element = t == DType::kUndefined ? 4 : DTypeSize(t);  // Unknown: assume float.
  return static_cast<size_t>(NumElements(*s)) * element;
}

struct RegionNode {
  NodeId node = -1;
  SplitMap map;
};

struct Region {
  std::vector<RegionNode> nodes;  // In node (execution) order.
  std::vector<ValueId> exits;     // Values read after the region (or graph outputs).
  int64_t extent = 0;             // Size of the split axis.
  int pieces = 2;
};

struct Context {
  const Graph& g;
  const std::vector<ValueShape>& shapes;
  std::vector<bool> is_output;  // Per value.
  std::vector<bool> taken;      // Per node: in a region.
};

// An ONNX Shape node: it reads only its input's shape, which the split
// copy knows, so the rewrite replaces one reading a region value by a constant.
bool IsShape(const Node& n) { return n.domain.empty() && n.op_type == "Shape"; }

// Distinct nodes reading `v`'s data (Shape nodes excluded).
std::vector<NodeId> Readers(const Graph& g, ValueId v) {
  std::vector<NodeId> r;
  for (NodeId c : g.values[static_cast<size_t>(v)].consumers)
    if (!IsShape(g.nodes[static_cast<size_t>(c)])) r.push_back(c);
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

// The output of Shape node `n` (start / end attributes applied).
Tensor ShapeConstant(const Node& n, const Shape& dims) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  auto clamp = [&](int64_t a) { return std::clamp(a < 0 ? a + rank : a, int64_t{0}, rank); };
  const int64_t start = clamp(n.attr_int("start", 0)), end = clamp(n.attr_int("end", rank));
  std::vector<int64_t> v;
  for (int64_t i = start; i < end; ++i) v.push_back(dims[static_cast<size_t>(i)]);
  return Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(v.size())}, v);
}

// A split of node `n` whose output is sliced along `out_axis`, reading some
// non-constant input sliced.
std::optional<SplitMap> FitOutput(const Context& cx, NodeId n, int out_axis) {
  const Node& node = cx.g.nodes[static_cast<size_t>(n)];
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const ValueId u = node.inputs[i];
    if (u == kNoValue || cx.g.values[static_cast<size_t>(u)].is_constant()) continue;
    const Shape* s = KnownShape(cx.shapes, u);
    for (int ax = 0; s != nullptr && ax < static_cast<int>(s->size()); ++ax) {
      auto m = MapSplit(cx.g, cx.shapes, node, static_cast<int>(i), ax);
      if (m && m->out_axis == out_axis) return m;
    }
  }
  return std::nullopt;
}

// A region being grown: its nodes with their maps, and the axis each value
// it computes is sliced along.
struct Growth {
  std::map<NodeId, SplitMap> nodes;
  std::map<ValueId, int> axis_of;
  void Add(const Context& cx, NodeId n, SplitMap m) {
    for (ValueId o : cx.g.nodes[static_cast<size_t>(n)].outputs)
      if (o != kNoValue) axis_of[o] = m.out_axis;
    nodes.emplace(n, std::move(m));
  }
};

// Backwards from the region: producers of sliced inputs of at least
// `big` bytes that only region nodes read.
void GrowBackwards(const Context& cx, size_t big, Growth* gr) {
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [id, map] : gr->nodes) {
      const Node& n = cx.g.nodes[static_cast<size_t>(id)];
      for (size_t i = 0; i < n.inputs.size() && !grew; ++i) {
        const ValueId u = n.inputs[i];
        if (u == kNoValue || map.in_axes[i] < 0 || gr->axis_of.count(u) != 0) continue;
        const NodeId q = cx.g.values[static_cast<size_t>(u)].producer;
        if (q < 0 || cx.taken[static_cast<size_t>(q)] || cx.is_output[static_cast<size_t>(u)] ||
            Bytes(cx.g, cx.shapes, u) < big)
          continue;
        bool inside = true;  // Every output of q is read only inside (and is no graph output).
        for (ValueId o : cx.g.nodes[static_cast<size_t>(q)].outputs)
          for (NodeId r : o == kNoValue ? std::vector<NodeId>{} : Readers(cx.g, o))
            inside = inside && gr->nodes.count(r) != 0 && !cx.is_output[static_cast<size_t>(o)];
        if (!inside) continue;
        if (auto m = FitOutput(cx, q, map.in_axes[i])) {
          gr->Add(cx, q, std::move(*m));
          grew = true;
        }
      }
      if (grew) break;  // `nodes` changed: restart the scan.
    }
  }
}

// Forwards, in node order, over every reader of a region value that splits
// along the axes the region slices its inputs by. A reader that does not
// (or is in another region) stays outside and bounds the region: nothing at
// or after it joins, so every outside reader of a region value runs after
// the region's last node, where the rewrite emits the region.
void GrowForwards(const Context& cx, Growth* gr) {
  std::set<NodeId> candidates;
  auto add_readers = [&](ValueId w) {
    for (NodeId r : Readers(cx.g, w))
      if (gr->nodes.count(r) == 0) candidates.insert(r);
  };
  for (const auto& [v, axis] : gr->axis_of) add_readers(v);
  NodeId limit = static_cast<NodeId>(cx.g.nodes.size());
  while (!candidates.empty() && *candidates.begin() < limit) {
    const NodeId c = *candidates.begin();
    candidates.erase(candidates.begin());
    const Node& n = cx.g.nodes[static_cast<size_t>(c)];
    std::optional<SplitMap> m;
    if (!cx.taken[static_cast<size_t>(c)]) {
      for (size_t i = 0; i < n.inputs.size() && !m; ++i) {
        auto it = gr->axis_of.find(n.inputs[i]);
        if (it != gr->axis_of.end())
          m = MapSplit(cx.g, cx.shapes, n, static_cast<int>(i), it->second);
      }
      for (size_t i = 0; m && i < n.inputs.size(); ++i) {
        auto it = gr->axis_of.find(n.inputs[i]);
        if (it != gr->axis_of.end() && m->in_axes[i] != it->second) m.reset();
      }
    }
    if (!m) {
      limit = std::min(limit, c);
      continue;
    }
    gr->Add(cx, c, std::move(*m));
    for (ValueId o : n.outputs)
      if (o != kNoValue) add_readers(o);
  }
}

// Exit values of a region's nodes: those read outside it, or graph outputs.
std::vector<ValueId> Exits(const Context& cx, const std::vector<RegionNode>& nodes) {
  std::set<NodeId> in;
  for (const RegionNode& rn : nodes) in.insert(rn.node);
  std::vector<ValueId> exits;
  for (const RegionNode& rn : nodes) {
    for (ValueId w : cx.g.nodes[static_cast<size_t>(rn.node)].outputs) {
      if (w == kNoValue) continue;
      bool exit = cx.is_output[static_cast<size_t>(w)];
      for (NodeId r : Readers(cx.g, w)) exit = exit || in.count(r) == 0;
      if (exit) exits.push_back(w);
    }
  }
  return exits;
}

// The region around `seed` (a node output), split along its outermost
// non-unit axis: grown backwards over large inputs and forwards as far as
// ops split, then cut after the node (not before the seed's producer) that
// leaves the fewest bytes to rebuild by Concat. Fails when those are at
// least half the seed's: the region would save little.
std::optional<Region> SeedRegion(const Context& cx, ValueId seed) {
  const Graph& g = cx.g;
  const NodeId p = g.values[static_cast<size_t>(seed)].producer;
  const Shape* s = KnownShape(cx.shapes, seed);
  if (p < 0 || cx.taken[static_cast<size_t>(p)] || s == nullptr) return std::nullopt;
  int axis = 0;
  while (axis < static_cast<int>(s->size()) && (*s)[static_cast<size_t>(axis)] <= 1) ++axis;
  if (axis == static_cast<int>(s->size())) return std::nullopt;
  auto head = FitOutput(cx, p, axis);
  if (!head) return std::nullopt;
  const size_t big = Bytes(g, cx.shapes, seed) / 2;
  Growth gr;
  gr.Add(cx, p, std::move(*head));
  GrowBackwards(cx, big, &gr);
  GrowForwards(cx, &gr);
  Region region;
  region.extent = (*s)[static_cast<size_t>(axis)];
  for (auto& [id, map] : gr.nodes) region.nodes.push_back({id, std::move(map)});
  // The cut: running exit bytes per prefix, maintained incrementally.
  std::map<ValueId, size_t> unread;  // Prefix values: readers not yet in the prefix.
  size_t exit_bytes = 0, best_bytes = std::numeric_limits<size_t>::max(), best_count = 0;
  for (size_t i = 0; i < region.nodes.size(); ++i) {
    const Node& n = g.nodes[static_cast<size_t>(region.nodes[i].node)];
    std::set<ValueId> read(n.inputs.begin(), n.inputs.end());
    for (ValueId u : read) {
      auto it = unread.find(u);
      if (it == unread.end() || --it->second > 0 || cx.is_output[static_cast<size_t>(u)]) continue;
      exit_bytes -= Bytes(g, cx.shapes, u);
    }
    for (ValueId w : n.outputs) {
      if (w == kNoValue) continue;
      unread[w] = Readers(g, w).size();
      if (unread[w] > 0 || cx.is_output[static_cast<size_t>(w)])
        exit_bytes += Bytes(g, cx.shapes, w);
    }
    if (region.nodes[i].node >= p && exit_bytes < best_bytes) {
      best_bytes = exit_bytes;
      best_count = i + 1;
    }
  }
  if (best_bytes >= big) return std::nullopt;
  region.nodes.resize(best_count);
  region.exits = Exits(cx, region.nodes);
  return region;
}

struct Rewritten {
  MemorySplit split;
  std::vector<int> interior_region;  // Per value: region whose piece-internal value it is, or -1.
};

// A value like `like` (dtype, name + suffix) of shape `dims`.
ValueId AddPieceValue(Rewritten* rw, const Value& like, const std::string& suffix,
                      const Shape& dims, int interior_region) {
  Value v;
  v.name = like.name + suffix;
  v.dtype = like.dtype;
  v.has_shape = true;
  for (int64_t d : dims) v.dims.push_back(Dim{d, ""});
  const ValueId id = rw->split.graph.AddValue(std::move(v));
  rw->split.shapes.push_back(ValueShape{true, dims});
  rw->interior_region.push_back(interior_region);
  return id;
}

ValueId AddInt64s(Rewritten* rw, const std::string& name, const std::vector<int64_t>& v) {
  const int64_t n = static_cast<int64_t>(v.size());
  const ValueId id = rw->split.graph.AddConstant(name, Tensor::FromVector(DType::kInt64, {n}, v));
  rw->split.shapes.push_back(ValueShape{true, {n}});
  rw->interior_region.push_back(-1);
  return id;
}

// Emits region `ri` piece by piece: Splits of the outside inputs it slices,
// the region's nodes per piece, a Concat into each exit value.
void EmitRegion(const Graph& g, const Region& c, int ri, Rewritten* rw) {
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
    if (sizes_value == kNoValue) sizes_value = AddInt64s(rw, last.name + "/split_sizes", sizes);
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
  const std::vector<ValueId>& exits = c.exits;
  std::map<ValueId, std::vector<ValueId>> exit_pieces;
  for (int k = 0; k < k_pieces; ++k) {
    const std::string suffix = "/piece" + std::to_string(k);
    std::map<ValueId, ValueId> piece;  // Region value -> this piece's.
    for (const RegionNode& rn : c.nodes) {
      const Node& orig = g.nodes[static_cast<size_t>(rn.node)];
      Node n = orig;
      n.name += suffix;
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const ValueId u = orig.inputs[i];
        if (u == kNoValue) continue;
        if (auto it = piece.find(u); it != piece.end())
          n.inputs[i] = it->second;
        else if (rn.map.in_axes[i] >= 0)
          n.inputs[i] = slice(u, rn.map.in_axes[i])[static_cast<size_t>(k)];
      }
      for (size_t o = 0; o < orig.outputs.size(); ++o) {
        const ValueId y = orig.outputs[o];
        if (y == kNoValue) continue;
        Shape dims = rw->split.shapes[static_cast<size_t>(y)].dims;
        dims[static_cast<size_t>(rn.map.out_axis)] = sizes[static_cast<size_t>(k)];
        if (NeedsPieceShape(orig)) n.inputs[1] = AddInt64s(rw, orig.name + suffix + "/shape", dims);
        const bool exit = std::find(exits.begin(), exits.end(), y) != exits.end();
        const ValueId py =
            AddPieceValue(rw, g.values[static_cast<size_t>(y)], suffix, dims, exit ? -1 : ri);
        piece[y] = py;
        if (exit) exit_pieces[y].push_back(py);
        n.outputs[o] = py;
      }
      out.nodes.push_back(std::move(n));
      rw->split.origin.push_back(rn.node);
    }
  }
  for (const RegionNode& rn : c.nodes) {
    for (ValueId y : g.nodes[static_cast<size_t>(rn.node)].outputs) {
      auto it = exit_pieces.find(y);
      if (y == kNoValue || it == exit_pieces.end()) continue;
      Node concat;
      concat.name = g.values[static_cast<size_t>(y)].name + "/concat";
      concat.op_type = "Concat";
      concat.opset = 13;
      concat.inputs = it->second;
      concat.outputs = {y};
      concat.attrs["axis"] = fusion::IntAttr(rn.map.out_axis);
      out.nodes.push_back(std::move(concat));
      rw->split.origin.push_back(-1);
    }
  }
}

// The graph with `regions` split, each emitted where its last node was
// (every outside input of the region is computed by then, and every outside
// reader of its values comes later: see GrowForwards).
Result<Rewritten> Rewrite(const Graph& g, const std::vector<ValueShape>& shapes,
                          const std::vector<Region>& regions) {
  Rewritten rw;
  Graph& out = rw.split.graph;
  out.name = g.name;
  out.values = g.values;
  out.inputs = g.inputs;
  out.outputs = g.outputs;
  out.captures = g.captures;
  rw.split.shapes = shapes;
  rw.split.shapes.resize(g.values.size());
  rw.interior_region.assign(g.values.size(), -1);
  std::vector<int> region_of(g.nodes.size(), -1);
  for (size_t c = 0; c < regions.size(); ++c)
    for (const RegionNode& rn : regions[c].nodes)
      region_of[static_cast<size_t>(rn.node)] = static_cast<int>(c);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const int c = region_of[i];
    const Node& n = g.nodes[i];
    const ValueId x = n.inputs.empty() ? kNoValue : n.inputs[0];
    const NodeId xp = x == kNoValue ? -1 : g.values[static_cast<size_t>(x)].producer;
    if (IsShape(n) && xp >= 0 && region_of[static_cast<size_t>(xp)] >= 0 &&
        shapes[static_cast<size_t>(x)].known && n.outputs[0] != kNoValue) {
      out.values[static_cast<size_t>(n.outputs[0])].constant =
          ShapeConstant(n, shapes[static_cast<size_t>(x)].dims);
      continue;  // Folded: no node.
    }
    if (c < 0) {
      out.nodes.push_back(g.nodes[i]);
      rw.split.origin.push_back(static_cast<NodeId>(i));
    } else if (regions[static_cast<size_t>(c)].nodes.back().node == static_cast<NodeId>(i)) {
      EmitRegion(g, regions[static_cast<size_t>(c)], c, &rw);
      rw.split.max_pieces = std::max(rw.split.max_pieces, regions[static_cast<size_t>(c)].pieces);
    }
  }
  rw.split.regions = static_cast<int>(regions.size());
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

// Nodes in demand order: depth-first from the graph outputs (inputs in
// order), each node just before the first node that needs it, so a value is
// computed when its reader is about to run. E.g. a decoder's cross-attention
// keys and values per layer right before that layer, not all up front.
// Nodes no output needs follow in their order.
std::vector<NodeId> DemandOrder(const Graph& g) {
  std::vector<uint8_t> state(g.nodes.size(), 0);  // 0 unseen, 1 on the stack, 2 placed.
  std::vector<NodeId> order;
  std::vector<std::pair<NodeId, size_t>> stack;  // Node, next input to visit.
  auto visit = [&](NodeId root) {
    if (root < 0 || state[static_cast<size_t>(root)] != 0) return;
    state[static_cast<size_t>(root)] = 1;
    stack.push_back({root, 0});
    while (!stack.empty()) {
      const NodeId n = stack.back().first;
      const size_t i = stack.back().second++;
      const Node& node = g.nodes[static_cast<size_t>(n)];
      if (i < node.inputs.size() + node.implicit_inputs.size()) {
        const ValueId u =
            i < node.inputs.size() ? node.inputs[i] : node.implicit_inputs[i - node.inputs.size()];
        const NodeId p = u == kNoValue ? -1 : g.values[static_cast<size_t>(u)].producer;
        if (p >= 0 && state[static_cast<size_t>(p)] == 0) {
          state[static_cast<size_t>(p)] = 1;
          stack.push_back({p, 0});
        }
        continue;
      }
      state[static_cast<size_t>(n)] = 2;
      order.push_back(n);
      stack.pop_back();
    }
  };
  for (ValueId o : g.outputs) visit(g.values[static_cast<size_t>(o)].producer);
  for (size_t n = 0; n < g.nodes.size(); ++n) visit(static_cast<NodeId>(n));
  return order;
}

// `rw` with its nodes (and their origins) in `order`.
void Reorder(const std::vector<NodeId>& order, Rewritten* rw) {
  std::vector<Node> nodes;
  std::vector<NodeId> origin;
  for (NodeId n : order) {
    nodes.push_back(std::move(rw->split.graph.nodes[static_cast<size_t>(n)]));
    origin.push_back(rw->split.origin[static_cast<size_t>(n)]);
  }
  rw->split.graph.nodes = std::move(nodes);
  rw->split.origin = std::move(origin);
  rw->split.graph.RebuildLinks();
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
  std::vector<Region> regions;
  size_t lowest = std::numeric_limits<size_t>::max();
  for (int iter = 0; iter < kMaxIterations; ++iter) {
    PX_ASSIGN_OR_RETURN(Rewritten rw, Rewrite(graph, shapes, regions));
    PeakEstimate pe = EstimateSequentialPeak(rw.split.graph, rw.split.shapes, reusable);
    // The same graph in demand order, when that differs and lowers the peak.
    const std::vector<NodeId> order = DemandOrder(rw.split.graph);
    if (!std::is_sorted(order.begin(), order.end())) {
      Rewritten lazy = rw;
      Reorder(order, &lazy);
      PeakEstimate pl = EstimateSequentialPeak(lazy.split.graph, lazy.split.shapes, reusable);
      if (pl.bytes < pe.bytes) {
        rw = std::move(lazy);
        pe = std::move(pl);
        rw.split.reordered = true;
      }
    }
    rw.split.estimated_peak_bytes = pe.bytes;
    if (pe.bytes <= budget_bytes) return std::move(rw.split);
    lowest = std::min(lowest, pe.bytes);
    std::vector<ValueId> live = pe.live_at_peak;
    std::stable_sort(live.begin(), live.end(), [&](ValueId a, ValueId b) {
      return Bytes(rw.split.graph, rw.split.shapes, a) > Bytes(rw.split.graph, rw.split.shapes, b);
    });
    bool changed = false;
    for (ValueId x : live) {
      const int c = rw.interior_region[static_cast<size_t>(x)];
      if (c >= 0) {  // Inside a piece of a split region: more, smaller pieces.
        Region& region = regions[static_cast<size_t>(c)];
        if (region.pieces >= region.extent) continue;
        region.pieces = static_cast<int>(std::min<int64_t>(region.extent, region.pieces * 2));
        changed = true;
        break;
      }
      if (static_cast<size_t>(x) >= graph.values.size()) continue;  // A Split's or piece's output.
      auto region = SeedRegion(cx, x);
      if (region) {
        for (const RegionNode& rn : region->nodes) cx.taken[static_cast<size_t>(rn.node)] = true;
        regions.push_back(std::move(*region));
        changed = true;
        break;
      }
    }
    if (!changed) break;
  }
  return ResourceExhausted("running regions of ops in pieces lowers its estimated peak to " +
                           std::to_string(lowest) + " bytes at best, still over " +
                           std::to_string(budget_bytes));
}

}  // namespace parallax
