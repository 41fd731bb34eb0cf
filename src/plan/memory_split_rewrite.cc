// Memory split, second half: plans the pieces of chosen regions and
// rewrites the graph with them (see memory_split_internal.h).
#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "plan/fusion_util.h"
#include "plan/memory_split_internal.h"

namespace parallax::split_detail {
namespace {

// The output of Shape node `n` (start / end attributes applied).
Tensor ShapeConstant(const Node& n, const Shape& dims) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  auto clamp = [&](int64_t a) { return std::clamp(a < 0 ? a + rank : a, int64_t{0}, rank); };
  const int64_t start = clamp(n.attr_int("start", 0)), end = clamp(n.attr_int("end", rank));
  std::vector<int64_t> v;
  for (int64_t i = start; i < end; ++i) v.push_back(dims[static_cast<size_t>(i)]);
  return Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(v.size())}, v);
}

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

// Cells [lo, hi) of `t` along `axis`, copied.
Tensor SliceAlong(const Tensor& t, int axis, int64_t lo, int64_t hi) {
  Shape dims = t.shape();
  const size_t elem = t.numel() > 0 ? t.nbytes() / static_cast<size_t>(t.numel()) : 0;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= dims[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < dims.size(); ++d) inner *= dims[d];
  const int64_t extent = dims[static_cast<size_t>(axis)];
  dims[static_cast<size_t>(axis)] = hi - lo;
  Tensor out = Tensor::Uninitialized(t.dtype(), dims);
  const size_t run = static_cast<size_t>((hi - lo) * inner) * elem;
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(static_cast<char*>(out.raw_data()) + static_cast<size_t>(o) * run,
                static_cast<const char*>(t.raw_data()) +
                    static_cast<size_t>((o * extent + lo) * inner) * elem,
                run);
  return out;
}

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
      if (u == kNoValue || axis < 0 || produced.count(u) != 0 ||
          g.values[static_cast<size_t>(u)].is_constant())
        continue;
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
      bool own_kernel = false;  // Reads sliced weights: the original's kernel does not fit.
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const ValueId u = orig.inputs[i];
        const int axis = rn.map.in_axes[i];
        if (u == kNoValue || axis < 0) continue;
        const Range need = plan.reads[j][i];
        if (need.size() == 0) continue;  // A Concat input this piece does not read.
        const Value& uv = g.values[static_cast<size_t>(u)];
        if (auto it = piece.find(u); it != piece.end()) {
          const auto& [pv, have] = it->second;
          n.inputs[i] =
              have == need ? pv : slice(pv, axis, need.lo - have.lo, need.hi - have.lo, ri);
        } else if (uv.is_constant()) {  // Weights: this piece's columns, as a constant.
          auto [cs, fresh] = rw->const_slices->try_emplace({u, axis, need.lo, need.hi});
          if (fresh) cs->second = SliceAlong(uv.constant, axis, need.lo, need.hi);
          n.inputs[i] = out.AddConstant(uv.name + suffix, cs->second);
          rw->split.shapes.push_back(ValueShape{true, cs->second.shape()});
          rw->interior_region.push_back(-1);
          own_kernel = true;
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
      rw->split.origin.push_back(own_kernel ? -1 : rn.node);
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

// Drops nodes no graph output needs (e.g. the shape arithmetic of a
// reshape whose pieces got constant shapes: left in, it would keep the
// value it reads the shape of alive) and rebuilds links.
void DropUnneeded(Rewritten* rw) {
  Graph& g = rw->split.graph;
  std::vector<bool> needed(g.values.size(), false);
  for (ValueId o : g.outputs) needed[static_cast<size_t>(o)] = true;
  std::vector<bool> keep(g.nodes.size(), false);
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    for (ValueId o : n.outputs)
      keep[i] = keep[i] || (o != kNoValue && needed[static_cast<size_t>(o)]);
    if (!keep[i]) continue;
    for (ValueId u : n.inputs)
      if (u != kNoValue) needed[static_cast<size_t>(u)] = true;
    for (ValueId u : n.implicit_inputs)
      if (u != kNoValue) needed[static_cast<size_t>(u)] = true;
  }
  std::vector<Node> nodes;
  std::vector<NodeId> origin;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!keep[i]) continue;
    nodes.push_back(std::move(g.nodes[i]));
    origin.push_back(rw->split.origin[i]);
  }
  g.nodes = std::move(nodes);
  rw->split.origin = std::move(origin);
  g.RebuildLinks();
}

}  // namespace

bool IsShape(const Node& n) { return n.domain.empty() && n.op_type == "Shape"; }

std::vector<NodeId> Readers(const Graph& g, ValueId v) {
  std::vector<NodeId> r;
  for (NodeId c : g.values[static_cast<size_t>(v)].consumers)
    if (!IsShape(g.nodes[static_cast<size_t>(c)])) r.push_back(c);
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

Range Part(int64_t extent, int k, int pieces) {
  return {extent * k / pieces, extent * (k + 1) / pieces};
}

int64_t AxisExtent(const std::vector<ValueShape>& shapes, ValueId v, int axis) {
  const Shape* s = KnownShape(shapes, v);
  return s == nullptr || axis < 0 || axis >= static_cast<int>(s->size())
             ? 0
             : (*s)[static_cast<size_t>(axis)];
}

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

Result<Rewritten> Rewrite(const Graph& g, const std::vector<ValueShape>& shapes,
                          const std::vector<Region>& regions, ConstSlices* const_slices) {
  Rewritten rw;
  rw.const_slices = const_slices;
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
  DropUnneeded(&rw);
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

}  // namespace parallax::split_detail
