#include "plan/branches.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace parallax {
namespace {

// The node dependency DAG in compressed form: preds of node i are
// pred_ids[pred_begin[i] .. pred_begin[i + 1]), distinct, in first-read order.
struct NodeDeps {
  std::vector<size_t> pred_begin;
  std::vector<NodeId> pred_ids;
  std::vector<int32_t> succ_count;  // Distinct successor nodes.
  size_t preds(size_t i) const { return pred_begin[i + 1] - pred_begin[i]; }
  NodeId first_pred(size_t i) const { return pred_ids[pred_begin[i]]; }
};

// Fails when a node reads an unknown value or a value produced by itself or
// a later node (graph.nodes not in topological order).
Result<NodeDeps> BuildDeps(const Graph& graph) {
  const size_t n = graph.nodes.size();
  NodeDeps d;
  d.pred_begin.reserve(n + 1);
  d.pred_begin.push_back(0);
  d.succ_count.assign(n, 0);
  std::vector<NodeId> seen_by(n, -1);  // seen_by[p] == i: p already a pred of i.
  for (size_t i = 0; i < n; ++i) {
    const Node& node = graph.nodes[i];
    auto add = [&](ValueId v) -> Status {
      if (v == kNoValue) return Status::Ok();
      if (v < 0 || static_cast<size_t>(v) >= graph.values.size())
        return InvalidArgument("branch analysis: " + node.Describe() + " reads an unknown value");
      const NodeId p = graph.values[static_cast<size_t>(v)].producer;
      if (p < 0) return Status::Ok();
      if (static_cast<size_t>(p) >= i)
        return InvalidArgument(
            "branch analysis: nodes are not in topological order: " + node.Describe() + " reads '" +
            graph.values[static_cast<size_t>(v)].name + "', produced by a later node");
      if (seen_by[static_cast<size_t>(p)] == static_cast<NodeId>(i)) return Status::Ok();
      seen_by[static_cast<size_t>(p)] = static_cast<NodeId>(i);
      d.pred_ids.push_back(p);
      ++d.succ_count[static_cast<size_t>(p)];
      return Status::Ok();
    };
    for (ValueId v : node.inputs) PX_RETURN_IF_ERROR(add(v));
    for (ValueId v : node.implicit_inputs) PX_RETURN_IF_ERROR(add(v));
    d.pred_begin.push_back(d.pred_ids.size());
  }
  return d;
}

NodeClass Classify(size_t preds, int32_t succs) {
  if (preds > 1 && succs > 1) return NodeClass::kSplitMerge;
  if (preds > 1) return NodeClass::kMerger;
  if (succs > 1) return NodeClass::kSplitter;
  return NodeClass::kSequential;
}

// Assigns node classes, branches (maximal chains) and branch preds/succs/flops.
void BuildBranches(const NodeDeps& d, const std::vector<double>& node_flops, BranchAnalysis* a) {
  const size_t n = node_flops.size();
  a->node_class.resize(n);
  a->branch_of.resize(n);
  a->position.resize(n);
  for (size_t i = 0; i < n; ++i) {
    a->node_class[i] = Classify(d.preds(i), d.succ_count[i]);
    int32_t b = -1;
    if (d.preds(i) == 1 && d.succ_count[static_cast<size_t>(d.first_pred(i))] == 1) {
      b = a->branch_of[static_cast<size_t>(d.first_pred(i))];
    } else {
      b = static_cast<int32_t>(a->branches.size());
      a->branches.emplace_back();
      // Only a branch's first node has predecessors outside the branch.
      Branch& br = a->branches.back();
      for (size_t k = d.pred_begin[i]; k < d.pred_begin[i + 1]; ++k)
        br.preds.push_back(a->branch_of[static_cast<size_t>(d.pred_ids[k])]);
      std::sort(br.preds.begin(), br.preds.end());
      br.preds.erase(std::unique(br.preds.begin(), br.preds.end()), br.preds.end());
      for (int32_t p : br.preds) a->branches[static_cast<size_t>(p)].succs.push_back(b);
    }
    Branch& br = a->branches[static_cast<size_t>(b)];
    a->branch_of[i] = b;
    a->position[i] = static_cast<int32_t>(br.nodes.size());
    br.nodes.push_back(static_cast<NodeId>(i));
    br.flops += node_flops[i];
  }
}

// Whether a layer's branches may run in parallel under `policy`.
bool LayerParallel(const BranchAnalysis& a, const std::vector<int32_t>& layer,
                   const BranchPolicy& policy) {
  if (layer.size() < 2) return false;
  if (!policy.refine) return true;
  double lo = 0, hi = 0;
  for (size_t k = 0; k < layer.size(); ++k) {
    const Branch& br = a.branches[static_cast<size_t>(layer[k])];
    if (static_cast<int64_t>(br.nodes.size()) < policy.min_nodes) return false;
    lo = k == 0 ? br.flops : std::min(lo, br.flops);
    hi = k == 0 ? br.flops : std::max(hi, br.flops);
  }
  if (hi <= 0) return true;  // All branches free: ratio 1.
  if (lo <= 0) return false;
  return hi / lo <= policy.max_flop_ratio;
}

// Kahn layers over the branch DAG (branch ids are already topological).
void BuildLayers(const BranchPolicy& policy, BranchAnalysis* a) {
  for (size_t b = 0; b < a->branches.size(); ++b) {
    Branch& br = a->branches[b];
    br.layer = 0;
    for (int32_t p : br.preds)
      br.layer = std::max(br.layer, a->branches[static_cast<size_t>(p)].layer + 1);
    if (static_cast<size_t>(br.layer) >= a->layers.size()) a->layers.resize(br.layer + 1);
    a->layers[static_cast<size_t>(br.layer)].push_back(static_cast<int32_t>(b));
  }
  a->layer_parallel.assign(a->layers.size(), false);
  for (size_t l = 0; l < a->layers.size(); ++l) {
    a->layer_parallel[l] = LayerParallel(*a, a->layers[l], policy);
    if (a->layer_parallel[l]) ++a->parallel_layers;
    a->max_branch_width = std::max(a->max_branch_width, static_cast<int>(a->layers[l].size()));
  }
}

// "12", "3.4K", "5.6M", "7.8G" FLOPs.
std::string FormatFlops(double f) {
  const char* units[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (f >= 1000 && u < 4) {
    f /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f%s" : "%.1f%s", f, units[u]);
  return buf;
}

// Quotes `s` for a dot label.
std::string DotEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

const char* NodeClassName(NodeClass c) {
  switch (c) {
    case NodeClass::kSequential:
      return "sequential";
    case NodeClass::kSplitter:
      return "splitter";
    case NodeClass::kMerger:
      return "merger";
    case NodeClass::kSplitMerge:
      return "split-merge";
  }
  return "?";
}

Result<BranchAnalysis> AnalyzeBranches(const Graph& graph, const std::vector<double>& node_flops,
                                       const BranchPolicy& policy) {
  if (node_flops.size() != graph.nodes.size())
    return InvalidArgument("branch analysis: " + std::to_string(node_flops.size()) +
                           " FLOP estimates for " + std::to_string(graph.nodes.size()) + " nodes");
  Result<NodeDeps> deps = BuildDeps(graph);
  if (!deps.ok()) return deps.status();
  BranchAnalysis a;
  BuildBranches(*deps, node_flops, &a);
  BuildLayers(policy, &a);
  return a;
}

BranchAnalysis ConstrainBranches(const BranchAnalysis& analysis, const BranchConstraints& c) {
  BranchAnalysis out = analysis;
  auto edge = [&out](int32_t from, int32_t to) {
    out.branches[static_cast<size_t>(from)].succs.push_back(to);
    out.branches[static_cast<size_t>(to)].preds.push_back(from);
  };
  for (size_t l = 0; l < out.layers.size(); ++l) {
    const std::vector<int32_t>& layer = out.layers[l];
    if (c.chain_all || (c.chain_serial && !out.layer_parallel[l])) {
      for (size_t i = 1; i < layer.size(); ++i) edge(layer[i - 1], layer[i]);
    } else if (c.max_width > 0) {
      const size_t w = static_cast<size_t>(c.max_width);
      for (size_t i = w; i < layer.size(); ++i) edge(layer[i - w], layer[i]);
    }
    if (c.layer_barriers && l + 1 < out.layers.size())
      for (int32_t from : layer)
        for (int32_t to : out.layers[l + 1]) edge(from, to);
  }
  for (Branch& b : out.branches) {
    for (std::vector<int32_t>* v : {&b.preds, &b.succs}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
  }
  return out;
}

bool IsTotalOrder(const BranchAnalysis& analysis) {
  for (const std::vector<int32_t>& layer : analysis.layers)
    if (layer.size() > 1) return false;
  return true;
}

HappensBefore::HappensBefore(const BranchAnalysis& analysis)
    : branch_of_(analysis.branch_of), position_(analysis.position) {
  const size_t nb = analysis.branches.size();
  words_ = (nb + 63) / 64;
  reach_.assign(nb * words_, 0);
  for (size_t b = 0; b < nb; ++b) {
    uint64_t* row = &reach_[b * words_];
    for (int32_t p : analysis.branches[b].preds) {
      const uint64_t* prow = &reach_[static_cast<size_t>(p) * words_];
      for (size_t w = 0; w < words_; ++w) row[w] |= prow[w];
      row[static_cast<size_t>(p) / 64] |= uint64_t{1} << (static_cast<size_t>(p) % 64);
    }
  }
}

bool HappensBefore::Before(NodeId a, NodeId b) const {
  if (a < 0 || b < 0 || static_cast<size_t>(a) >= branch_of_.size() ||
      static_cast<size_t>(b) >= branch_of_.size())
    return false;
  const size_t ba = static_cast<size_t>(branch_of_[static_cast<size_t>(a)]);
  const size_t bb = static_cast<size_t>(branch_of_[static_cast<size_t>(b)]);
  if (ba == bb) return position_[static_cast<size_t>(a)] < position_[static_cast<size_t>(b)];
  return (reach_[bb * words_ + ba / 64] >> (ba % 64)) & 1;
}

std::string BranchDot(const Graph& graph, const BranchAnalysis& analysis) {
  std::string out = "digraph branches {\n  rankdir=TB;\n  node [shape=box, fontsize=10];\n";
  for (size_t b = 0; b < analysis.branches.size(); ++b) {
    const Branch& br = analysis.branches[b];
    std::string first, last;
    if (!br.nodes.empty()) {
      first = graph.nodes[static_cast<size_t>(br.nodes.front())].op_type;
      last = graph.nodes[static_cast<size_t>(br.nodes.back())].op_type;
    }
    out += "  b" + std::to_string(b) + " [label=\"b" + std::to_string(b) + " L" +
           std::to_string(br.layer) + "\\n" + std::to_string(br.nodes.size()) + " node" +
           (br.nodes.size() == 1 ? "" : "s") + "\\n" + DotEscape(first) +
           (br.nodes.size() > 1 ? " .. " + DotEscape(last) : "") + "\\n" + FormatFlops(br.flops) +
           " FLOPs\"];\n";
  }
  for (size_t l = 0; l < analysis.layers.size(); ++l) {
    if (l >= analysis.layer_parallel.size() || !analysis.layer_parallel[l]) continue;
    out += "  subgraph cluster_layer" + std::to_string(l) + " {\n    label=\"layer " +
           std::to_string(l) + " (parallel)\";\n    rank=same;\n   ";
    for (int32_t b : analysis.layers[l]) out += " b" + std::to_string(b) + ";";
    out += "\n  }\n";
  }
  for (size_t b = 0; b < analysis.branches.size(); ++b)
    for (int32_t s : analysis.branches[b].succs)
      out += "  b" + std::to_string(b) + " -> b" + std::to_string(s) + ";\n";
  out += "}\n";
  return out;
}

}  // namespace parallax
