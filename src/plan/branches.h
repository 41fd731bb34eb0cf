// Branch and layer analysis (paper §2.2): a pure function over a graph's
// node dependency DAG, returning its own tables indexed by NodeId.
//
// Dependencies: node b depends on node a when b reads (as an explicit or an
// implicit input) a value a produces. If/Loop/Scan nodes are single nodes
// (their bodies are not looked into). Predecessor/successor counts are over
// distinct nodes.
//
// Classes: sequential (<= 1 predecessor, <= 1 successor), splitter (> 1
// successor), merger (> 1 predecessor), split-merge (both).
//
// Branches are maximal chains: a node continues its predecessor's branch iff
// it has exactly one predecessor p and p has exactly one successor (it).
// Hence only a branch's first node has predecessors outside the branch and
// only its last node has successors outside it, so a schedule may treat a
// branch as one task that starts when all its predecessor branches are done.
//
// Layers: Kahn's algorithm over the branch DAG (layer 0 = branches without
// predecessors; a branch's layer = 1 + max layer of its predecessors).
// Refinement (paper, configurable): a layer runs its branches in parallel
// only if it has >= 2 branches, every branch has >= min_nodes nodes and
// max/min branch FLOPs <= max_flop_ratio.
//
// Example: a -> {b1 -> b2 -> b3, c1 -> c2 -> c3} -> d gives branches
// [a], [b1 b2 b3], [c1 c2 c3], [d]; layers {0}, {1, 2}, {3}; one parallel
// layer of width 2 (when the FLOP ratio of the two chains is <= 1.5).
#ifndef PARALLAX_PLAN_BRANCHES_H_
#define PARALLAX_PLAN_BRANCHES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "parallax/status.h"

namespace parallax {

enum class NodeClass : uint8_t { kSequential, kSplitter, kMerger, kSplitMerge };
const char* NodeClassName(NodeClass c);

struct Branch {
  std::vector<NodeId> nodes;   // A chain, in execution order.
  std::vector<int32_t> preds;  // Branch ids, sorted, unique; all < this id.
  std::vector<int32_t> succs;  // Branch ids, sorted, unique; all > this id.
  double flops = 0;            // Sum of node_flops over nodes.
  int32_t layer = 0;
};

struct BranchPolicy {
  bool refine = true;           // false: every layer with >= 2 branches is parallel.
  int min_nodes = 3;            // Paper: every branch has > 2 nodes.
  double max_flop_ratio = 1.5;  // Paper's beta.
};

struct BranchAnalysis {
  std::vector<NodeClass> node_class;         // Per node.
  std::vector<int32_t> branch_of;            // Per node: its branch id.
  std::vector<int32_t> position;             // Per node: index in its branch.
  std::vector<Branch> branches;              // Topologically ordered by id.
  std::vector<std::vector<int32_t>> layers;  // Branch ids per Kahn layer, ascending.
  std::vector<bool> layer_parallel;          // Per layer, after the policy.
  int parallel_layers = 0;                   // Layers with layer_parallel set.
  int max_branch_width = 0;                  // Largest layer size (before the policy).
};

// `node_flops` has one entry per node (>= 0; any unit). Needs graph.nodes
// in topological order.
Result<BranchAnalysis> AnalyzeBranches(const Graph& graph, const std::vector<double>& node_flops,
                                       const BranchPolicy& policy = {});

// Extra ordering a schedule imposes on the branch DAG; the result keeps the
// analysis's invariants (preds < id < succs, sorted, unique) and its
// layers, so HappensBefore of it is exact for a schedule that honours the
// added edges. Edges only go to a later layer or to a higher id in the same
// layer, so the DAG stays acyclic.
struct BranchConstraints {
  bool layer_barriers = false;  // Every branch of layer l precedes every branch of layer l + 1.
  bool chain_serial = false;    // Branches of layers not marked parallel run one after another.
  bool chain_all = false;       // Branches of every layer run one after another.
  // > 0: at most this many branches of a layer run at once (the layer's i-th
  // branch waits for its (i - max_width)-th: max_width chains round-robin).
  int max_width = 0;
};
BranchAnalysis ConstrainBranches(const BranchAnalysis& analysis, const BranchConstraints& c);

// True when the branches form one chain (each layer holds one branch): no
// two nodes can ever run at the same time.
bool IsTotalOrder(const BranchAnalysis& analysis);

// Happens-before between nodes under any schedule that starts a branch only
// after all its predecessor branches finished and runs a branch's nodes in
// order: Before(a, b) iff a finishes before b starts in every such schedule
// (a earlier in the same branch, or a's branch an ancestor of b's).
// Immutable after construction; thread-safe to read.
class HappensBefore {
 public:
  explicit HappensBefore(const BranchAnalysis& analysis);
  bool Before(NodeId a, NodeId b) const;

 private:
  std::vector<int32_t> branch_of_;
  std::vector<int32_t> position_;
  size_t words_ = 0;
  std::vector<uint64_t> reach_;  // Row b: bit a set iff branch a is a strict ancestor of b.
};

// Graphviz dot of the branch DAG: one box per branch (id, layer, node count,
// first/last op, FLOPs), parallel layers as same-rank clusters.
std::string BranchDot(const Graph& graph, const BranchAnalysis& analysis);

}  // namespace parallax

#endif  // PARALLAX_PLAN_BRANCHES_H_
