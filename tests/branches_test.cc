// Branch/layer analysis and happens-before on tiny hand-built graphs.
#include "plan/branches.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "tiny_graph.h"

namespace parallax {
namespace {

using testing::TinyGraph;

using Ids = std::vector<int32_t>;

BranchAnalysis Analyze(const Graph& g, std::vector<double> flops = {},
                       const BranchPolicy& policy = {}) {
  if (flops.empty()) flops.assign(g.nodes.size(), 1);
  Result<BranchAnalysis> a = AnalyzeBranches(g, flops, policy);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  return a.ok() ? *a : BranchAnalysis{};
}

TEST(Branches, NodeClassNames) {
  EXPECT_STREQ(NodeClassName(NodeClass::kSequential), "sequential");
  EXPECT_STREQ(NodeClassName(NodeClass::kSplitter), "splitter");
  EXPECT_STREQ(NodeClassName(NodeClass::kMerger), "merger");
  EXPECT_STREQ(NodeClassName(NodeClass::kSplitMerge), "split-merge");
}

TEST(Branches, EmptyGraph) {
  Graph g;
  BranchAnalysis a = Analyze(g);
  EXPECT_TRUE(a.branches.empty());
  EXPECT_TRUE(a.layers.empty());
  EXPECT_EQ(a.parallel_layers, 0);
  EXPECT_EQ(a.max_branch_width, 0);
}

TEST(Branches, Diamond) {
  // n0 -> {n1, n2} -> n3.
  TinyGraph t;
  t.Add({"x"}, {"a"}).Add({"a"}, {"b"}).Add({"a"}, {"c"}).Add({"b", "c"}, {"y"});
  const Graph& g = t.Build();
  BranchAnalysis a = Analyze(g, {1, 2, 3, 4});
  EXPECT_EQ(a.node_class, (std::vector<NodeClass>{NodeClass::kSplitter, NodeClass::kSequential,
                                                  NodeClass::kSequential, NodeClass::kMerger}));
  ASSERT_EQ(a.branches.size(), 4u);
  EXPECT_EQ(a.branch_of, (Ids{0, 1, 2, 3}));
  EXPECT_EQ(a.position, (Ids{0, 0, 0, 0}));
  EXPECT_EQ(a.branches[0].succs, (Ids{1, 2}));
  EXPECT_EQ(a.branches[3].preds, (Ids{1, 2}));
  EXPECT_DOUBLE_EQ(a.branches[2].flops, 3);
  EXPECT_EQ(a.layers, (std::vector<Ids>{{0}, {1, 2}, {3}}));
  EXPECT_EQ(a.max_branch_width, 2);
  // One-node branches fail min_nodes = 3.
  EXPECT_EQ(a.layer_parallel, (std::vector<bool>{false, false, false}));
  EXPECT_EQ(a.parallel_layers, 0);
  BranchPolicy off;
  off.refine = false;
  a = Analyze(g, {1, 2, 3, 4}, off);
  EXPECT_EQ(a.layer_parallel, (std::vector<bool>{false, true, false}));
  EXPECT_EQ(a.parallel_layers, 1);
}

// The header's example, with the two chains' nodes interleaved in the order.
Graph& HeaderExample(TinyGraph& t) {
  t.Add({"x"}, {"a"})             // n0 a
      .Add({"a"}, {"b1"})         // n1 b1
      .Add({"a"}, {"c1"})         // n2 c1
      .Add({"b1"}, {"b2"})        // n3 b2
      .Add({"c1"}, {"c2"})        // n4 c2
      .Add({"b2"}, {"b3"})        // n5 b3
      .Add({"c2"}, {"c3"})        // n6 c3
      .Add({"b3", "c3"}, {"d"});  // n7 d
  return t.Build();
}

TEST(Branches, HeaderExample) {
  TinyGraph t;
  const Graph& g = HeaderExample(t);
  BranchAnalysis a = Analyze(g);
  ASSERT_EQ(a.branches.size(), 4u);
  EXPECT_EQ(a.branches[0].nodes, (Ids{0}));
  EXPECT_EQ(a.branches[1].nodes, (Ids{1, 3, 5}));
  EXPECT_EQ(a.branches[2].nodes, (Ids{2, 4, 6}));
  EXPECT_EQ(a.branches[3].nodes, (Ids{7}));
  EXPECT_EQ(a.position, (Ids{0, 0, 0, 1, 1, 2, 2, 0}));
  EXPECT_EQ(a.branches[1].preds, (Ids{0}));
  EXPECT_EQ(a.branches[1].succs, (Ids{3}));
  EXPECT_EQ(a.layers, (std::vector<Ids>{{0}, {1, 2}, {3}}));
  EXPECT_EQ(a.layer_parallel, (std::vector<bool>{false, true, false}));
  EXPECT_EQ(a.parallel_layers, 1);
  EXPECT_EQ(a.max_branch_width, 2);
  EXPECT_DOUBLE_EQ(a.branches[1].flops, 3);
}

TEST(Branches, ResidualBlock) {
  // s splits into a 3-node chain and a direct skip edge; m merges them.
  TinyGraph t;
  t.Add({"x"}, {"s"})
      .Add({"s"}, {"r1"})
      .Add({"r1"}, {"r2"})
      .Add({"r2"}, {"r3"})
      .Add({"s", "r3"}, {"m"})
      .Add({"m"}, {"y"});
  BranchAnalysis a = Analyze(t.Build());
  EXPECT_EQ(a.node_class[0], NodeClass::kSplitter);
  EXPECT_EQ(a.node_class[4], NodeClass::kMerger);
  ASSERT_EQ(a.branches.size(), 3u);
  EXPECT_EQ(a.branches[1].nodes, (Ids{1, 2, 3}));
  EXPECT_EQ(a.branches[2].nodes, (Ids{4, 5}));
  EXPECT_EQ(a.branches[0].succs, (Ids{1, 2}));
  EXPECT_EQ(a.branches[2].preds, (Ids{0, 1}));
  EXPECT_EQ(a.layers, (std::vector<Ids>{{0}, {1}, {2}}));
  EXPECT_EQ(a.parallel_layers, 0);
  EXPECT_EQ(a.max_branch_width, 1);
  HappensBefore hb(a);
  EXPECT_TRUE(hb.Before(0, 4));
  EXPECT_TRUE(hb.Before(2, 5));
  EXPECT_FALSE(hb.Before(4, 2));
}

TEST(Branches, PureChainIsOneBranch) {
  TinyGraph t;
  t.Add({"x"}, {"a"}).Add({"a"}, {"b"}).Add({"b"}, {"c"}).Add({"c"}, {"y"});
  BranchAnalysis a = Analyze(t.Build());
  ASSERT_EQ(a.branches.size(), 1u);
  EXPECT_EQ(a.branches[0].nodes, (Ids{0, 1, 2, 3}));
  EXPECT_EQ(a.position, (Ids{0, 1, 2, 3}));
  EXPECT_EQ(a.layers.size(), 1u);
  EXPECT_EQ(a.parallel_layers, 0);
  EXPECT_EQ(a.max_branch_width, 1);
  for (NodeClass c : a.node_class) EXPECT_EQ(c, NodeClass::kSequential);
}

TEST(Branches, MultipleSources) {
  // Two chains from the graph input x (no producer: no dependency), a node
  // without inputs, and a merger of all three.
  TinyGraph t;
  t.Add({"x"}, {"a1"})
      .Add({"x"}, {"b1"})
      .Add({"a1"}, {"a2"})
      .Add({"b1"}, {"b2"})
      .Add({"a2"}, {"a3"})
      .Add({"b2"}, {"b3"})
      .Add({}, {"k"})
      .Add({"a3", "b3", "k"}, {"y"});
  BranchAnalysis a = Analyze(t.Build());
  ASSERT_EQ(a.branches.size(), 4u);
  EXPECT_EQ(a.branches[0].nodes, (Ids{0, 2, 4}));
  EXPECT_EQ(a.branches[1].nodes, (Ids{1, 3, 5}));
  EXPECT_EQ(a.branches[2].nodes, (Ids{6}));
  EXPECT_EQ(a.branches[3].preds, (Ids{0, 1, 2}));
  EXPECT_EQ(a.node_class[7], NodeClass::kMerger);
  EXPECT_EQ(a.layers, (std::vector<Ids>{{0, 1, 2}, {3}}));
  EXPECT_EQ(a.max_branch_width, 3);
  EXPECT_EQ(a.parallel_layers, 0);  // The one-node source fails min_nodes.
}

TEST(Branches, SplitMergeAndImplicitInputs) {
  // n2 reads a and b (merger) and feeds two nodes (splitter); n3 reads n2's
  // output only through a subgraph capture (implicit input).
  TinyGraph t;
  t.Add({"x"}, {"a"})
      .Add({"x"}, {"b"})
      .Add({"a", "b"}, {"m"})
      .Add({"x"}, {"y1"}, {"m"})
      .Add({"m", "m"}, {"y2"});
  BranchAnalysis a = Analyze(t.Build());
  EXPECT_EQ(a.node_class[2], NodeClass::kSplitMerge);
  EXPECT_EQ(a.node_class[4], NodeClass::kSequential);  // Reads m twice: one pred.
  EXPECT_EQ(a.branches[static_cast<size_t>(a.branch_of[3])].preds, (Ids{a.branch_of[2]}));
  EXPECT_EQ(a.layers.size(), 3u);
}

TEST(Branches, TwoOutputsReadByOneNodeContinueTheChain) {
  TinyGraph t;
  t.Add({"x"}, {"p", "q"}).Add({"p", "q"}, {"y"});
  BranchAnalysis a = Analyze(t.Build());
  ASSERT_EQ(a.branches.size(), 1u);
  EXPECT_EQ(a.node_class[1], NodeClass::kSequential);
}

TEST(Branches, RefinementPolicy) {
  // x -> {2-node chain, 2-node chain} from the graph input.
  TinyGraph t;
  t.Add({"x"}, {"a1"}).Add({"a1"}, {"a2"}).Add({"x"}, {"b1"}).Add({"b1"}, {"b2"});
  const Graph& g = t.Build();
  ASSERT_EQ(Analyze(g).layers.size(), 1u);
  EXPECT_FALSE(Analyze(g).layer_parallel[0]);  // 2 nodes < min_nodes 3.
  BranchPolicy p;
  p.min_nodes = 2;
  EXPECT_TRUE(Analyze(g, {1, 1, 1, 1}, p).layer_parallel[0]);
  // FLOP ratio 1.5 is allowed, 1.6 is not.
  EXPECT_TRUE(Analyze(g, {1, 1, 1, 2}, p).layer_parallel[0]);
  EXPECT_TRUE(Analyze(g, {1, 2, 1, 1}, p).layer_parallel[0]);
  EXPECT_FALSE(Analyze(g, {1, 2.2, 1, 1}, p).layer_parallel[0]);
  p.max_flop_ratio = 2;
  EXPECT_TRUE(Analyze(g, {1, 2.2, 1, 1}, p).layer_parallel[0]);
  // Zero-FLOP branches: parallel only when all are free.
  EXPECT_TRUE(Analyze(g, {0, 0, 0, 0}, p).layer_parallel[0]);
  EXPECT_FALSE(Analyze(g, {0, 0, 1, 0}, p).layer_parallel[0]);
  // refine = false ignores node counts and FLOPs.
  BranchPolicy off;
  off.refine = false;
  BranchAnalysis a = Analyze(g, {1, 100, 1, 1}, off);
  EXPECT_TRUE(a.layer_parallel[0]);
  EXPECT_EQ(a.parallel_layers, 1);
}

TEST(Branches, NotTopologicallySortedIsAnError) {
  TinyGraph t;
  t.Add({"b"}, {"a"}).Add({"x"}, {"b"});
  Result<BranchAnalysis> a = AnalyzeBranches(t.Build(), {1, 1});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("'n0'"), std::string::npos) << a.status().message();
  EXPECT_NE(a.status().message().find("topological"), std::string::npos);
}

TEST(Branches, WrongFlopCountIsAnError) {
  TinyGraph t;
  t.Add({"x"}, {"a"}).Add({"a"}, {"b"});
  Result<BranchAnalysis> a = AnalyzeBranches(t.Build(), {1});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
}

// "v<i>". (Not "v" + std::to_string(i): GCC 12 reports a false -Wrestrict
// for it when inlined here.)
std::string ValueName(int i) {
  std::string s = "v";
  s += std::to_string(i);
  return s;
}

// x -> n0 -> five one-node branches n1..n5 -> n6 (reads all five).
Graph& FanOut(TinyGraph& t) {
  t.Add({"x"}, {"a"});
  std::vector<std::string> outs;
  for (int i = 1; i <= 5; ++i) {
    std::string name = "b";
    name.append(std::to_string(i));  // (Not "b" + ...: GCC 12 -Wrestrict false positive.)
    outs.push_back(name);
    t.Add({"a"}, {name});
  }
  t.Add(outs, {"y"});
  return t.Build();
}

TEST(Branches, ConstrainBranchesAddsOnlyTheRequestedOrder) {
  TinyGraph t;
  const Graph& g = FanOut(t);
  BranchPolicy off;
  off.refine = false;
  const BranchAnalysis a = Analyze(g, {}, off);
  ASSERT_EQ(a.layers, (std::vector<Ids>{{0}, {1, 2, 3, 4, 5}, {6}}));
  auto succs = [](const BranchAnalysis& c) {
    std::vector<Ids> out;
    for (const Branch& b : c.branches) out.push_back(b.succs);
    return out;
  };
  // Nothing requested: the same DAG.
  EXPECT_EQ(succs(ConstrainBranches(a, {})), succs(a));
  // Width 2: two round-robin chains 1 -> 3 -> 5 and 2 -> 4.
  BranchConstraints w2;
  w2.max_width = 2;
  const BranchAnalysis c2 = ConstrainBranches(a, w2);
  EXPECT_EQ(c2.branches[1].succs, (Ids{3, 6}));
  EXPECT_EQ(c2.branches[2].succs, (Ids{4, 6}));
  EXPECT_EQ(c2.branches[3].succs, (Ids{5, 6}));
  EXPECT_EQ(c2.branches[5].preds, (Ids{0, 3}));
  HappensBefore hb2(c2);
  EXPECT_TRUE(hb2.Before(1, 5));
  EXPECT_FALSE(hb2.Before(1, 2));
  EXPECT_FALSE(hb2.Before(2, 1));
  // Width 1 and chain_all: one chain; the layer then runs one at a time.
  BranchConstraints w1;
  w1.max_width = 1;
  BranchConstraints all;
  all.chain_all = true;
  EXPECT_EQ(succs(ConstrainBranches(a, w1)), succs(ConstrainBranches(a, all)));
  HappensBefore hb1(ConstrainBranches(a, w1));
  for (NodeId i = 1; i < 5; ++i) EXPECT_TRUE(hb1.Before(i, i + 1)) << i;
  // Widths at or above the layer's leave it free.
  BranchConstraints w5;
  w5.max_width = 5;
  EXPECT_EQ(succs(ConstrainBranches(a, w5)), succs(a));
  // chain_serial only touches layers the policy does not mark parallel.
  BranchConstraints serial;
  serial.chain_serial = true;
  EXPECT_EQ(succs(ConstrainBranches(a, serial)), succs(a));
  const BranchAnalysis refined = Analyze(g);  // One-node branches: not parallel.
  EXPECT_EQ(succs(ConstrainBranches(refined, serial)), succs(ConstrainBranches(a, all)));
  // Barriers: every branch of a layer before every branch of the next.
  BranchConstraints barriers;
  barriers.layer_barriers = true;
  EXPECT_EQ(succs(ConstrainBranches(a, barriers)), succs(a));  // Already so here.
}

// A random DAG in topological order: node i reads 0-3 earlier outputs or x.
Graph& RandomDag(TinyGraph& t, int nodes, unsigned seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < nodes; ++i) {
    std::vector<std::string> ins;
    const int k = static_cast<int>(rng() % 4);
    for (int j = 0; j < k && i > 0; ++j) {
      // Prefer recent nodes so chains form.
      const int back = 1 + static_cast<int>(rng() % std::min(i, j == 0 ? 2 : 6));
      ins.push_back(ValueName(i - back));
    }
    if (ins.empty()) ins.push_back("x");
    t.Add(ins, {ValueName(i)});
  }
  return t.Build();
}

TEST(Branches, HappensBeforeMatchesBruteForceOnAllPairs) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    TinyGraph t;
    const Graph& g = RandomDag(t, 24, seed);
    const size_t n = g.nodes.size();
    BranchAnalysis a = Analyze(g);
    // reach[i][j]: a path i -> j of one or more edges.
    std::vector<std::vector<bool>> reach(n, std::vector<bool>(n, false));
    for (size_t j = 0; j < n; ++j)
      for (ValueId v : g.nodes[j].inputs) {
        const NodeId p = g.values[static_cast<size_t>(v)].producer;
        if (p < 0) continue;
        reach[static_cast<size_t>(p)][j] = true;
        for (size_t i = 0; i < n; ++i)
          if (reach[i][static_cast<size_t>(p)]) reach[i][j] = true;
      }
    // Branch ancestry by brute force over the branch DAG.
    const size_t nb = a.branches.size();
    std::vector<std::vector<bool>> anc(nb, std::vector<bool>(nb, false));
    for (size_t b = 0; b < nb; ++b)
      for (int32_t p : a.branches[b].preds) {
        ASSERT_LT(static_cast<size_t>(p), b);
        anc[static_cast<size_t>(p)][b] = true;
        for (size_t q = 0; q < nb; ++q)
          if (anc[q][static_cast<size_t>(p)]) anc[q][b] = true;
      }
    HappensBefore hb(a);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) {
        const size_t bi = static_cast<size_t>(a.branch_of[i]);
        const size_t bj = static_cast<size_t>(a.branch_of[j]);
        const bool spec = bi == bj ? a.position[i] < a.position[j] : anc[bi][bj];
        const bool got = hb.Before(static_cast<NodeId>(i), static_cast<NodeId>(j));
        EXPECT_EQ(got, spec) << "seed " << seed << " nodes " << i << ", " << j;
        // Chains make branch order exactly node reachability.
        EXPECT_EQ(got, static_cast<bool>(reach[i][j])) << "seed " << seed << " " << i << "," << j;
      }
  }
}

TEST(Branches, BranchesAreChainsOnRandomGraphs) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    TinyGraph t;
    const Graph& g = RandomDag(t, 60, seed);
    BranchAnalysis a = Analyze(g);
    size_t total = 0, width = 0;
    for (size_t b = 0; b < a.branches.size(); ++b) {
      const Branch& br = a.branches[b];
      total += br.nodes.size();
      for (size_t k = 0; k < br.nodes.size(); ++k) {
        EXPECT_EQ(a.branch_of[static_cast<size_t>(br.nodes[k])], static_cast<int32_t>(b));
        EXPECT_EQ(a.position[static_cast<size_t>(br.nodes[k])], static_cast<int32_t>(k));
      }
      for (int32_t s : br.succs) EXPECT_GT(s, static_cast<int32_t>(b));
      for (int32_t p : br.preds) EXPECT_LT(a.branches[static_cast<size_t>(p)].layer, br.layer);
    }
    EXPECT_EQ(total, g.nodes.size());
    for (const Ids& layer : a.layers) width = std::max(width, layer.size());
    EXPECT_EQ(static_cast<size_t>(a.max_branch_width), width);
  }
}

TEST(Branches, DotShowsBranchesEdgesAndParallelLayers) {
  TinyGraph t;
  const Graph& g = HeaderExample(t);
  BranchAnalysis a = Analyze(g);
  const std::string dot = BranchDot(g, a);
  EXPECT_EQ(dot.rfind("digraph", 0), 0u);
  EXPECT_NE(dot.find("b0 -> b1;"), std::string::npos);
  EXPECT_NE(dot.find("b2 -> b3;"), std::string::npos);
  EXPECT_NE(dot.find("cluster_layer1"), std::string::npos);
  EXPECT_NE(dot.find("3 nodes"), std::string::npos);
  EXPECT_EQ(dot.find("cluster_layer0"), std::string::npos);
}

}  // namespace
}  // namespace parallax
