#include "plan/memory_split.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "plan/memory_split_internal.h"
#include "plan/shape_infer.h"
#include "plan/split_map.h"

namespace parallax {
namespace {

using namespace split_detail;  // NOLINT: the split's own internals.

constexpr int kMaxIterations = 256;
// Most cells two pieces of a region may compute per cell of a value (1 +
// the halos windows make them recompute).
constexpr double kMaxRecompute = 1.25;
// Values live at the peak below this share of it neither seed a region nor
// make theirs split into more pieces.
constexpr size_t kSmallShare = 64;

struct Context {
  const Graph& g;
  const std::vector<ValueShape>& shapes;
  std::vector<bool> is_output;  // Per value.
  std::vector<bool> taken;      // Per node: in a region.
};

// A split of node `n` whose output is sliced along `out_axis`, reading some
// non-constant input sliced (or a MatMul's constant B along N: each piece
// then reads its own columns of the weights, e.g. a head's).
std::optional<SplitMap> FitOutput(const Context& cx, NodeId n, int out_axis) {
  const Node& node = cx.g.nodes[static_cast<size_t>(n)];
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const ValueId u = node.inputs[i];
    if (u == kNoValue ||
        (cx.g.values[static_cast<size_t>(u)].is_constant() && !(i == 1 && IsMatMulFamily(node))))
      continue;
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

// The region around `seed` (a node output) split along `axis`: grown
// backwards over inputs of at least 1/share of its bytes and forwards as
// far as ops split, then cut after the node (not before the seed's
// producer) that leaves the fewest bytes to rebuild by Concat, among cuts
// whose pieces recompute little. Fails when those are more than the seed's;
// as many (e.g. attention head by head, whose exit is as large as the Q it
// is seeded from) is marked `even`, for the caller to keep only where the
// values inside the region were what kept the peak up.
std::vector<Region> SeedRegionAlong(const Context& cx, ValueId seed, int axis, int share) {
  const Graph& g = cx.g;
  const NodeId p = g.values[static_cast<size_t>(seed)].producer;
  auto head = FitOutput(cx, p, axis);
  if (!head) return {};
  const size_t seed_bytes = ValueBytes(g, cx.shapes, seed);
  Growth gr;
  gr.Add(cx, p, std::move(*head));
  // Until neither direction adds nodes: readers found forwards may read
  // large values worth growing back over (attention seeded at Q reaches
  // Q K^T, then K's projection).
  for (size_t size = 0; size != gr.nodes.size();) {
    size = gr.nodes.size();
    GrowBackwards(cx, seed_bytes / static_cast<size_t>(share), &gr);
    GrowForwards(cx, &gr);
  }
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
  // little (windows: halos), and the last with as few (more values inside:
  // attention's projections through its context), for the caller to weigh.
  std::stable_sort(cuts.begin(), cuts.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Region> out;
  for (const auto& [bytes, count] : cuts) {
    if (bytes > seed_bytes || (!out.empty() && bytes > cuts.front().first)) break;
    Region region;
    region.even = bytes == seed_bytes;
    region.nodes.assign(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(count));
    region.exits = Exits(cx, region.nodes);
    region.extent = std::numeric_limits<int64_t>::max();
    for (const RegionNode& rn : region.nodes)
      for (ValueId o : g.nodes[static_cast<size_t>(rn.node)].outputs)
        if (std::find(region.exits.begin(), region.exits.end(), o) != region.exits.end())
          region.extent = std::min(region.extent, AxisExtent(cx.shapes, o, rn.map.out_axis));
    if (region.extent < 2 || Recompute(g, cx.shapes, region) > kMaxRecompute) continue;
    if (out.size() == 2) out.pop_back();
    if (out.empty() || region.nodes.size() > out.front().nodes.size())
      out.push_back(std::move(region));
  }
  return out;
}

bool SameNodes(const Region& a, const Region& b) {
  return std::equal(a.nodes.begin(), a.nodes.end(), b.nodes.begin(), b.nodes.end(),
                    [](const RegionNode& x, const RegionNode& y) { return x.node == y.node; });
}

// The regions around `seed` along each of its non-unit axes that split
// (e.g. the batch, rows of a channels-last image, tokens or heads), grown
// back over inputs of at least 1/share of the seed's bytes.
std::vector<Region> SeedRegions(const Context& cx, ValueId seed, int share) {
  const NodeId p = cx.g.values[static_cast<size_t>(seed)].producer;
  const Shape* s = KnownShape(cx.shapes, seed);
  std::vector<Region> out;
  if (p < 0 || cx.taken[static_cast<size_t>(p)] || s == nullptr) return out;
  for (int axis = 0; axis < static_cast<int>(s->size()); ++axis)
    if ((*s)[static_cast<size_t>(axis)] > 1)
      for (Region& region : SeedRegionAlong(cx, seed, axis, share))
        out.push_back(std::move(region));
  return out;
}

// How far an estimate is from fitting: its peak, then its bytes over the
// budget summed over the steps (lower is better).
using Score = std::pair<size_t, size_t>;
Score ScoreOf(const PeakEstimate& pe, size_t budget) {
  size_t over = 0;
  for (size_t b : pe.step_bytes) over += b > budget ? b - budget : 0;
  return {pe.bytes, over};
}

// The estimated peak of `rw`, which is put in demand order when that
// differs and lowers it.
PeakEstimate LowerPeakOrder(Rewritten* rw, const ReusableInputsFn& reusable) {
  PeakEstimate pe = EstimateSequentialPeak(rw->split.graph, rw->split.shapes, reusable);
  const std::vector<NodeId> order = DemandOrder(rw->split.graph);
  if (std::is_sorted(order.begin(), order.end())) return pe;
  Rewritten lazy = *rw;
  Reorder(order, &lazy);
  PeakEstimate pl = EstimateSequentialPeak(lazy.split.graph, lazy.split.shapes, reusable);
  if (pl.bytes >= pe.bytes) return pe;
  *rw = std::move(lazy);
  rw->split.reordered = true;
  return pl;
}

// What estimating a candidate region takes: the graph, its shapes, the
// regions chosen so far, and the budget it is scored against.
struct Trials {
  const Graph& graph;
  const std::vector<ValueShape>& shapes;
  const std::vector<Region>& regions;
  size_t budget;
  const ReusableInputsFn& reusable;
  ConstSlices* slices;
};

// The candidate whose split scores best (in 2, 4 or 8 pieces), estimated
// when there is a choice (or it is even); an even one only when it scores better than `current`
// (it lowers the peak, or the bytes over the budget elsewhere, e.g.
// attention head by head leaving an MLP's equal peak).
std::optional<Region> BestRegion(const Trials& t, std::vector<Region> candidates,
                                 const Score& current) {
  std::optional<Region> best;
  Score best_score;
  for (Region& r : candidates) {
    Score score;
    if (candidates.size() > 1 || r.even) {  // In 2, 4 or 8 pieces, the best.
      std::optional<Score> found;
      const int pieces = r.pieces;
      for (int k = pieces; k <= 4 * pieces && k <= r.extent; k *= 2) {
        std::vector<Region> trial = t.regions;
        trial.push_back(r);
        trial.back().pieces = k;
        auto rw = Rewrite(t.graph, t.shapes, trial, t.slices);
        if (!rw.ok()) continue;
        const Score s = ScoreOf(LowerPeakOrder(&*rw, t.reusable), t.budget);
        if (!found || s < *found) {
          found = s;
          r.pieces = k;
        }
      }
      if (!found || (r.even && !(*found < current))) continue;
      score = *found;
    }
    if (!best || score < best_score) {
      best = std::move(r);
      best_score = score;
    }
  }
  return best;
}

}  // namespace

Result<MemorySplit> SplitForMemory(const Graph& graph, const std::vector<ValueShape>& known,
                                   size_t budget_bytes, const ReusableInputsFn& reusable) {
  const std::vector<ValueShape> shapes = InferShapes(graph, known);
  Context cx{graph, shapes, std::vector<bool>(graph.values.size(), false),
             std::vector<bool>(graph.nodes.size(), false)};
  for (ValueId o : graph.outputs) cx.is_output[static_cast<size_t>(o)] = true;
  std::vector<Region> regions;
  ConstSlices const_slices;
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
    PX_ASSIGN_OR_RETURN(Rewritten rw, Rewrite(graph, shapes, regions, &const_slices));
    PeakEstimate pe = LowerPeakOrder(&rw, reusable);
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
    std::vector<Region> pool;  // Even regions of the seeds so far.
    const Score current = ScoreOf(pe, budget_bytes);
    const Trials trials{graph, shapes, regions, budget_bytes, reusable, &const_slices};
    auto take = [&](Region region) {
      for (const RegionNode& rn : region.nodes) cx.taken[static_cast<size_t>(rn.node)] = true;
      regions.push_back(std::move(region));
      changed = true;
    };
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
      // Along any axis, grown back over inputs of half the seed's bytes, or
      // of a quarter (e.g. a detection head's conv chains). Seeds with only
      // even regions (e.g. attention's Q, K, V, context) pool theirs.
      std::vector<Region> candidates;
      for (int share : {2, 4})
        for (Region& r : SeedRegions(cx, x, share))
          if (std::none_of(candidates.begin(), candidates.end(),
                           [&](const Region& c) { return SameNodes(c, r); }))
            candidates.push_back(std::move(r));
      if (std::all_of(candidates.begin(), candidates.end(),
                      [](const Region& r) { return r.even; })) {
        for (Region& r : candidates) pool.push_back(std::move(r));
        continue;
      }
      if (auto region = BestRegion(trials, std::move(candidates), current)) {
        take(std::move(*region));
        break;
      }
    }
    if (!changed && !pool.empty())
      if (auto region = BestRegion(trials, std::move(pool), current)) take(std::move(*region));
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
