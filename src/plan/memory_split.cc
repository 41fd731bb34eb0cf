#include "plan/memory_split.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "plan/fusion_util.h"
#include "plan/shape_infer.h"
#include "plan/split_map.h"

namespace parallax {
namespace {

constexpr const char* kParallaxDomain = "com.parallax";
constexpr int kMaxIterations = 256;
// Most cells two pieces of a region may compute per cell of a value (1 +
// the halos windows make them recompute).
constexpr double kMaxRecompute = 1.25;
// Values live at the peak below this share of it neither seed a region nor
// make theirs split into more pieces.
constexpr size_t kSmallShare = 64;

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
            ValueBytes(cx.g, cx.shapes, u) < big)
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

// Cells [lo, hi) of a value along its split axis.
struct Range {
  int64_t lo = 0, hi = 0;
  int64_t size() const { return hi - lo; }
  bool operator==(const Range&) const = default;
};

// The cells of an exit (of `extent` along its axis) piece k of `pieces` owns.
Range Part(int64_t extent, int k, int pieces) {
  return {extent * k / pieces, extent * (k + 1) / pieces};
}

int64_t AxisExtent(const std::vector<ValueShape>& shapes, ValueId v, int axis) {
  const Shape* s = KnownShape(shapes, v);
  return s == nullptr || axis < 0 || axis >= static_cast<int>(s->size())
             ? 0
             : (*s)[static_cast<size_t>(axis)];
}

// What piece k of a region computes: the cells of each region value it
// needs (its share of the exits, and what its region readers read), and the
// cells each region node reads of each sliced input. Windowed nodes read
// overlapping cells (halos), so pieces recompute a few cells near their
// borders.
struct PiecePlan {
  std::map<ValueId, Range> rows;          // Region values this piece computes.
  std::vector<std::vector<Range>> reads;  // Per region node, per input (sliced ones).
  std::vector<bool> runs;                 // Per region node: some of its output is needed.
};

// Piece k's plan; nullopt when a window reads only padding.
std::optional<PiecePlan> PlanPiece(const Graph& g, const std::vector<ValueShape>& shapes,
                                   const Region& c, int k) {
  PiecePlan p;
  p.reads.resize(c.nodes.size());
  p.runs.assign(c.nodes.size(), false);
  std::set<ValueId> produced;
  for (const RegionNode& rn : c.nodes)
    for (ValueId o : g.nodes[static_cast<size_t>(rn.node)].outputs) {
      produced.insert(o);
      if (std::find(c.exits.begin(), c.exits.end(), o) != c.exits.end())
        p.rows[o] = Part(AxisExtent(shapes, o, rn.map.out_axis), k, c.pieces);
    }
  auto hull = [&](ValueId v, Range r) {
    auto [it, fresh] = p.rows.try_emplace(v, r);
    if (!fresh) it->second = {std::min(it->second.lo, r.lo), std::max(it->second.hi, r.hi)};
  };
  for (size_t j = c.nodes.size(); j-- > 0;) {
    const RegionNode& rn = c.nodes[j];
    const Node& n = g.nodes[static_cast<size_t>(rn.node)];
    std::optional<Range> out;
    for (ValueId o : n.outputs) {
      auto it = o == kNoValue ? p.rows.end() : p.rows.find(o);
      if (it != p.rows.end())
        out = out ? Range{std::min(out->lo, it->second.lo), std::max(out->hi, it->second.hi)}
                  : it->second;
    }
    if (!out) continue;                                  // Nothing of it is needed in this piece.
    if (rn.map.window && rn.map.window->upsample > 1) {  // Whole groups of cells.
      const int64_t u = rn.map.window->upsample;
      out = Range{out->lo / u * u, (out->hi + u - 1) / u * u};
    }
    p.runs[j] = true;
    for (ValueId o : n.outputs)
      if (o != kNoValue) p.rows[o] = *out;
    p.reads[j].assign(n.inputs.size(), Range{});
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const ValueId u = n.inputs[i];
      if (u == kNoValue || rn.map.in_axes[i] < 0) continue;
      Range need = *out;
      if (!rn.map.offsets.empty()) {  // Concat along the axis: the input's part, maybe none.
        const int64_t off = rn.map.offsets[i];
        need = {std::max(out->lo, off) - off,
                std::min(out->hi, off + AxisExtent(shapes, u, rn.map.in_axes[i])) - off};
        if (need.lo >= need.hi) continue;  // Not read by this piece: reads[j][i] stays empty.
      } else if (i == 0 && rn.map.window) {
        const AxisWindow& w = *rn.map.window;
        const int64_t extent = AxisExtent(shapes, u, rn.map.in_axes[i]);
        const Range cells = {out->lo / w.upsample, out->hi / w.upsample};
        need = {std::max<int64_t>(0, cells.lo * w.stride - w.pad),
                std::min(extent, (cells.hi - 1) * w.stride - w.pad + w.span)};
        if (need.lo >= need.hi) return std::nullopt;
      }
      p.reads[j][i] = need;
      if (produced.count(u) != 0) hull(u, need);
    }
  }
  return p;
}

// Plans of every piece of `c`; empty when some piece cannot be planned.
std::vector<PiecePlan> PlanPieces(const Graph& g, const std::vector<ValueShape>& shapes,
                                  const Region& c) {
  std::vector<PiecePlan> plans;
  for (int k = 0; k < c.pieces; ++k) {
    auto p = PlanPiece(g, shapes, c, k);
    if (!p) return {};
    plans.push_back(std::move(*p));
  }
  return plans;
}

// Cells computed over all pieces of `c` per cell of its values, at most:
// 1 when pieces never overlap, more where windows make them recompute
// cells near their borders. Infinity when `c` cannot be planned.
double Recompute(const Graph& g, const std::vector<ValueShape>& shapes, const Region& c) {
  const std::vector<PiecePlan> plans = PlanPieces(g, shapes, c);
  if (plans.empty()) return std::numeric_limits<double>::infinity();
  std::map<ValueId, int64_t> total;
  for (const PiecePlan& p : plans)
    for (const auto& [v, r] : p.rows) total[v] += r.size();
  double worst = 1;
  for (const RegionNode& rn : c.nodes)
    for (ValueId o : g.nodes[static_cast<size_t>(rn.node)].outputs) {
      const int64_t extent = AxisExtent(shapes, o, rn.map.out_axis);
      if (o != kNoValue && extent > 0)
        worst = std::max(worst, static_cast<double>(total[o]) / static_cast<double>(extent));
    }
  return worst;
}

// The region around `seed` (a node output) split along `axis`: grown
// backwards over inputs of at least 1/share of its bytes and forwards as
// far as ops split, then cut after the node (not before the seed's
// producer) that leaves the fewest bytes to rebuild by Concat, among cuts
// whose pieces recompute little. Fails when those are as many as the
// seed's: the region would save nothing.
std::optional<Region> SeedRegionAlong(const Context& cx, ValueId seed, int axis, int share) {
  const Graph& g = cx.g;
  const NodeId p = g.values[static_cast<size_t>(seed)].producer;
  auto head = FitOutput(cx, p, axis);
  if (!head) return std::nullopt;
  const size_t seed_bytes = ValueBytes(g, cx.shapes, seed);
  Growth gr;
  gr.Add(cx, p, std::move(*head));
  GrowBackwards(cx, seed_bytes / static_cast<size_t>(share), &gr);
  GrowForwards(cx, &gr);
  std::vector<RegionNode> nodes;
  for (auto& [id, map] : gr.nodes) nodes.push_back({id, std::move(map)});
  // Cut candidates: (bytes leaving the region, nodes kept) per prefix,
  // with the running exit bytes maintained incrementally.
  std::vector<std::pair<size_t, size_t>> cuts;
  std::map<ValueId, size_t> unread;  // Prefix values: readers not yet in the prefix.
  size_t exit_bytes = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = g.nodes[static_cast<size_t>(nodes[i].node)];
    std::set<ValueId> read(n.inputs.begin(), n.inputs.end());
    for (ValueId u : read) {
      auto it = unread.find(u);
      if (it == unread.end() || --it->second > 0 || cx.is_output[static_cast<size_t>(u)]) continue;
      exit_bytes -= ValueBytes(g, cx.shapes, u);
    }
    for (ValueId w : n.outputs) {
      if (w == kNoValue) continue;
      unread[w] = Readers(g, w).size();
      if (unread[w] > 0 || cx.is_output[static_cast<size_t>(w)])
        exit_bytes += ValueBytes(g, cx.shapes, w);
    }
    if (nodes[i].node >= p) cuts.push_back({exit_bytes, i + 1});
  }
  // The first prefix with the fewest exit bytes whose pieces recompute
  // little (windows: halos).
  std::stable_sort(cuts.begin(), cuts.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [bytes, count] : cuts) {
    if (bytes >= seed_bytes) break;
    Region region;
    region.nodes.assign(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(count));
    region.exits = Exits(cx, region.nodes);
    region.extent = std::numeric_limits<int64_t>::max();
    for (const RegionNode& rn : region.nodes)
      for (ValueId o : g.nodes[static_cast<size_t>(rn.node)].outputs)
        if (std::find(region.exits.begin(), region.exits.end(), o) != region.exits.end())
          region.extent = std::min(region.extent, AxisExtent(cx.shapes, o, rn.map.out_axis));
    if (region.extent >= 2 && Recompute(g, cx.shapes, region) <= kMaxRecompute) return region;
  }
  return std::nullopt;
}

bool SameNodes(const Region& a, const Region& b) {
  return std::equal(a.nodes.begin(), a.nodes.end(), b.nodes.begin(), b.nodes.end(),
                    [](const RegionNode& x, const RegionNode& y) { return x.node == y.node; });
}

// The region around `seed` along its outermost non-unit axis that splits
// (e.g. the batch, else rows of a channels-last image), grown back over
// inputs of at least 1/share of the seed's bytes.
std::optional<Region> SeedRegion(const Context& cx, ValueId seed, int share) {
  const NodeId p = cx.g.values[static_cast<size_t>(seed)].producer;
  const Shape* s = KnownShape(cx.shapes, seed);
  if (p < 0 || cx.taken[static_cast<size_t>(p)] || s == nullptr) return std::nullopt;
  for (int axis = 0; axis < static_cast<int>(s->size()); ++axis)
    if ((*s)[static_cast<size_t>(axis)] > 1)
      if (auto region = SeedRegionAlong(cx, seed, axis, share)) return region;
  return std::nullopt;
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

// Emits region `ri` piece by piece: each piece's region nodes on its cells,
// reading outside inputs through a Split (when the pieces read them in
// disjoint parts) or per-piece Slices (overlapping windows), region values
// through Slices where a reader needs fewer cells than the piece computed;
// then a Concat into each exit value. A windowed node's piece gets the
// padding of the cells its window reads beyond the input.
Status EmitRegion(const Graph& g, const Region& c, int ri, Rewritten* rw) {
  const std::vector<PiecePlan> plans = PlanPieces(g, rw->split.shapes, c);
  if (plans.empty()) return Internal("memory split: a region no longer plans");
  Graph& out = rw->split.graph;
  const int k_pieces = c.pieces;
  const Node& last = g.nodes[static_cast<size_t>(c.nodes.back().node)];
  // Outside inputs every piece reads in its own part: one Split.
  std::set<ValueId> produced;
  for (const RegionNode& rn : c.nodes)
    for (ValueId o : g.nodes[static_cast<size_t>(rn.node)].outputs) produced.insert(o);
  std::map<ValueId, int> disjoint;  // Outside input -> axis, or -1 when some read overlaps.
  for (size_t j = 0; j < c.nodes.size(); ++j)
    for (size_t i = 0; i < c.nodes[j].map.in_axes.size(); ++i) {
      const ValueId u = g.nodes[static_cast<size_t>(c.nodes[j].node)].inputs[i];
      const int axis = c.nodes[j].map.in_axes[i];
      if (u == kNoValue || axis < 0 || produced.count(u) != 0) continue;
      const int64_t extent = AxisExtent(rw->split.shapes, u, axis);
      auto [it, fresh] = disjoint.try_emplace(u, axis);
      for (int k = 0; k < k_pieces; ++k) {
        const PiecePlan& p = plans[static_cast<size_t>(k)];
        if (p.runs[j] && (p.reads[j][i] != Part(extent, k, k_pieces) || it->second != axis))
          it->second = -1;
      }
    }
  std::map<ValueId, std::vector<ValueId>> splits;
  auto split_of = [&](ValueId u, int axis) -> const std::vector<ValueId>& {
    auto [it, inserted] = splits.try_emplace(u);
    if (!inserted) return it->second;
    const int64_t extent = AxisExtent(rw->split.shapes, u, axis);
    std::vector<int64_t> sizes;
    for (int k = 0; k < k_pieces; ++k) sizes.push_back(Part(extent, k, k_pieces).size());
    Node split;
    split.name = g.values[static_cast<size_t>(u)].name + "/split";
    split.op_type = "Split";
    split.opset = 13;
    split.inputs = {u, AddInt64s(rw, last.name + "/split_sizes/" + split.name, sizes)};
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
  std::map<ValueId, std::vector<ValueId>> exit_pieces;
  for (int k = 0; k < k_pieces; ++k) {
    const PiecePlan& plan = plans[static_cast<size_t>(k)];
    const std::string suffix = "/piece" + std::to_string(k);
    std::map<ValueId, std::pair<ValueId, Range>> piece;  // Region value -> this piece's, cells.
    std::map<std::tuple<ValueId, int64_t, int64_t>, ValueId> sliced;
    // Cells [lo, hi) along `axis` of `v` (a value of the rewritten graph).
    auto slice = [&](ValueId v, int axis, int64_t lo, int64_t hi, int interior) {
      auto [it, fresh] = sliced.try_emplace({v, lo, hi}, kNoValue);
      if (!fresh) return it->second;
      const std::string base = out.values[static_cast<size_t>(v)].name + "/cells" +
                               std::to_string(lo) + "_" + std::to_string(hi) + suffix;
      Shape dims = rw->split.shapes[static_cast<size_t>(v)].dims;
      dims[static_cast<size_t>(axis)] = hi - lo;
      Node s;
      s.name = base;
      s.op_type = "Slice";
      s.opset = 13;
      s.inputs = {v, AddInt64s(rw, base + "/starts", {lo}), AddInt64s(rw, base + "/ends", {hi}),
                  AddInt64s(rw, base + "/axes", {axis})};
      s.outputs = {AddPieceValue(rw, out.values[static_cast<size_t>(v)], "/cells", dims, interior)};
      out.values[static_cast<size_t>(s.outputs[0])].name = base + "/out";
      out.nodes.push_back(std::move(s));
      rw->split.origin.push_back(-1);
      it->second = out.nodes.back().outputs[0];
      return it->second;
    };
    for (size_t j = 0; j < c.nodes.size(); ++j) {
      if (!plan.runs[j]) continue;
      const RegionNode& rn = c.nodes[j];
      const Node& orig = g.nodes[static_cast<size_t>(rn.node)];
      Node n = orig;
      n.name += suffix;
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const ValueId u = orig.inputs[i];
        const int axis = rn.map.in_axes[i];
        if (u == kNoValue || axis < 0) continue;
        const Range need = plan.reads[j][i];
        if (need.size() == 0) continue;  // A Concat input this piece does not read.
        if (auto it = piece.find(u); it != piece.end()) {
          const auto& [pv, have] = it->second;
          n.inputs[i] =
              have == need ? pv : slice(pv, axis, need.lo - have.lo, need.hi - have.lo, ri);
        } else if (disjoint[u] >= 0) {
          n.inputs[i] = split_of(u, axis)[static_cast<size_t>(k)];
        } else if (need != Range{0, AxisExtent(rw->split.shapes, u, axis)}) {
          n.inputs[i] = slice(u, axis, need.lo, need.hi, ri);
        }
      }
      if (!rn.map.offsets.empty()) {  // Only the inputs this piece reads.
        std::vector<ValueId> read;
        for (size_t i = 0; i < n.inputs.size(); ++i)
          if (plan.reads[j][i].size() > 0) read.push_back(n.inputs[i]);
        n.inputs = std::move(read);
      }
      const Range rows = plan.rows.at(orig.outputs[0]);
      if (rn.map.window && rn.map.window->spatial_rank > 0 &&
          orig.attr_string("auto_pad", "NOTSET") == "NOTSET") {
        const AxisWindow& w = *rn.map.window;
        const Range read = plan.reads[j][0];
        std::vector<int64_t> pads = orig.attr_ints("pads");
        pads.resize(static_cast<size_t>(2 * w.spatial_rank), 0);
        pads[static_cast<size_t>(w.spatial_dim)] = read.lo - (rows.lo * w.stride - w.pad);
        pads[static_cast<size_t>(w.spatial_dim + w.spatial_rank)] =
            (rows.hi - 1) * w.stride - w.pad + w.span - read.hi;
        n.attrs["pads"] = fusion::IntsAttr(pads);
      }
      for (size_t o = 0; o < orig.outputs.size(); ++o) {
        const ValueId y = orig.outputs[o];
        if (y == kNoValue) continue;
        Shape dims = rw->split.shapes[static_cast<size_t>(y)].dims;
        dims[static_cast<size_t>(rn.map.out_axis)] = rows.size();
        if (NeedsPieceShape(orig)) n.inputs[1] = AddInt64s(rw, orig.name + suffix + "/shape", dims);
        const bool exit = std::find(c.exits.begin(), c.exits.end(), y) != c.exits.end();
        const ValueId py =
            AddPieceValue(rw, g.values[static_cast<size_t>(y)], suffix, dims, exit ? -1 : ri);
        piece[y] = {py, rows};
        n.outputs[o] = py;
      }
      out.nodes.push_back(std::move(n));
      rw->split.origin.push_back(rn.node);
      for (ValueId y : orig.outputs) {
        if (y == kNoValue || std::find(c.exits.begin(), c.exits.end(), y) == c.exits.end())
          continue;
        const Range part = Part(AxisExtent(rw->split.shapes, y, rn.map.out_axis), k, k_pieces);
        const ValueId py = piece[y].first;
        exit_pieces[y].push_back(
            part == rows ? py
                         : slice(py, rn.map.out_axis, part.lo - rows.lo, part.hi - rows.lo, -1));
      }
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
  return Status::Ok();
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
      PX_RETURN_IF_ERROR(EmitRegion(g, regions[static_cast<size_t>(c)], c, &rw));
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

Result<MemorySplit> SplitForMemory(const Graph& graph, const std::vector<ValueShape>& known,
                                   size_t budget_bytes, const ReusableInputsFn& reusable) {
  const std::vector<ValueShape> shapes = InferShapes(graph, known);
  Context cx{graph, shapes, std::vector<bool>(graph.values.size(), false),
             std::vector<bool>(graph.nodes.size(), false)};
  for (ValueId o : graph.outputs) cx.is_output[static_cast<size_t>(o)] = true;
  std::vector<Region> regions;
  size_t lowest = std::numeric_limits<size_t>::max();
  std::optional<MemorySplit> best;  // The lowest-peak split, returned when shapes are missing.
  bool missing = false;             // Some activation's shape is unknown.
  for (size_t v = 0; v < graph.values.size(); ++v) {
    const Value& val = graph.values[v];
    const DType t = val.dtype;
    missing =
        missing || (val.producer >= 0 && KnownShape(shapes, static_cast<ValueId>(v)) == nullptr &&
                    t != DType::kSequence && t != DType::kOptional && t != DType::kString);
  }
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
    if (pe.bytes < lowest && missing) best = rw.split;
    lowest = std::min(lowest, pe.bytes);
    std::vector<ValueId> live = pe.live_at_peak;
    std::stable_sort(live.begin(), live.end(), [&](ValueId a, ValueId b) {
      return ValueBytes(rw.split.graph, rw.split.shapes, a) >
             ValueBytes(rw.split.graph, rw.split.shapes, b);
    });
    bool changed = false;
    for (ValueId x : live) {
      // Values this small cannot be what keeps the peak over the budget.
      if (ValueBytes(rw.split.graph, rw.split.shapes, x) < pe.bytes / kSmallShare) break;
      const int c = rw.interior_region[static_cast<size_t>(x)];
      if (c >= 0) {  // Inside a piece of a split region: more, smaller pieces.
        Region& region = regions[static_cast<size_t>(c)];
        if (region.pieces >= region.extent) continue;
        Region more = region;
        more.pieces = static_cast<int>(std::min<int64_t>(region.extent, region.pieces * 2));
        if (PlanPieces(graph, shapes, more).empty()) continue;
        region.pieces = more.pieces;
        changed = true;
        break;
      }
      if (static_cast<size_t>(x) >= graph.values.size()) continue;  // A Split's or piece's output.
      // Grown back over inputs of half the seed's bytes, or of a quarter
      // (e.g. a detection head's conv chains) when that lowers the peak more.
      std::vector<Region> candidates;
      for (int share : {2, 4})
        if (auto r = SeedRegion(cx, x, share);
            r && (candidates.empty() || !SameNodes(candidates[0], *r)))
          candidates.push_back(std::move(*r));
      std::optional<Region> region;
      size_t region_peak = 0;
      for (Region& r : candidates) {  // Estimated only when the two differ.
        size_t peak = 0;
        if (candidates.size() > 1) {
          std::vector<Region> trial = regions;
          trial.push_back(r);
          auto t = Rewrite(graph, shapes, trial);
          if (!t.ok()) continue;
          peak = EstimateSequentialPeak(t->split.graph, t->split.shapes, reusable).bytes;
        }
        if (!region || peak < region_peak) {
          region = std::move(r);
          region_peak = peak;
        }
      }
      if (region) {
        for (const RegionNode& rn : region->nodes) cx.taken[static_cast<size_t>(rn.node)] = true;
        regions.push_back(std::move(*region));
        changed = true;
        break;
      }
    }
    if (!changed) break;
  }
  if (best) {
    best->shapes_missing = true;
    return std::move(*best);
  }
  return ResourceExhausted("running regions of ops in pieces lowers its estimated peak to " +
                           std::to_string(lowest) + " bytes at best, still over " +
                           std::to_string(budget_bytes));
}

}  // namespace parallax
