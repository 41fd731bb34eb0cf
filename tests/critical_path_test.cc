#include "plan/critical_path.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tiny_graph.h"

namespace parallax {
namespace {

using testing::TinyGraph;

TEST(CriticalPath, EmptyGraph) {
  Graph g;
  Result<CriticalPath> cp = ComputeCriticalPath(g, {});
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->length, 0);
  EXPECT_TRUE(cp->nodes.empty());
}

TEST(CriticalPath, ChainSumsAllNodes) {
  TinyGraph t;
  t.Add({"x"}, {"a"}).Add({"a"}, {"b"}).Add({"b"}, {"y"});
  Result<CriticalPath> cp = ComputeCriticalPath(t.Build(), {1, 2, 3});
  ASSERT_TRUE(cp.ok());
  EXPECT_DOUBLE_EQ(cp->length, 6);
  EXPECT_EQ(cp->nodes, (std::vector<NodeId>{0, 1, 2}));
}

TEST(CriticalPath, DiamondTakesHeavierBranch) {
  // n0 -> {n1 (5), n2 (2)} -> n3.
  TinyGraph t;
  t.Add({"x"}, {"a"}).Add({"a"}, {"b"}).Add({"a"}, {"c"}).Add({"b", "c"}, {"y"});
  Result<CriticalPath> cp = ComputeCriticalPath(t.Build(), {1, 5, 2, 1});
  ASSERT_TRUE(cp.ok());
  EXPECT_DOUBLE_EQ(cp->length, 7);
  EXPECT_EQ(cp->nodes, (std::vector<NodeId>{0, 1, 3}));
  // Swap the branch weights: the other branch becomes critical.
  cp = ComputeCriticalPath(t.Build(), {1, 2, 5, 1});
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->nodes, (std::vector<NodeId>{0, 2, 3}));
}

TEST(CriticalPath, IndependentBranchesTakeTheLongest) {
  // Two unconnected chains: 1+1 and 4; the path does not join them.
  TinyGraph t;
  t.Add({"x"}, {"a"}).Add({"a"}, {"y1"}).Add({"x"}, {"y2"});
  Result<CriticalPath> cp = ComputeCriticalPath(t.Build(), {1, 1, 4});
  ASSERT_TRUE(cp.ok());
  EXPECT_DOUBLE_EQ(cp->length, 4);
  EXPECT_EQ(cp->nodes, (std::vector<NodeId>{2}));
}

TEST(CriticalPath, ImplicitInputsAreDependencies) {
  // n1 (an If, say) reads `a` only through its subgraph's capture.
  TinyGraph t;
  t.Add({"x"}, {"a"}).Add({"x"}, {"cond"}).Add({"cond"}, {"y"}, {"a"});
  Result<CriticalPath> cp = ComputeCriticalPath(t.Build(), {10, 1, 2});
  ASSERT_TRUE(cp.ok());
  EXPECT_DOUBLE_EQ(cp->length, 12);
  EXPECT_EQ(cp->nodes, (std::vector<NodeId>{0, 2}));
}

TEST(CriticalPath, OmittedOptionalInputsAndZeroWeights) {
  TinyGraph t;
  t.Add({"x"}, {"a"}).Add({"a", ""}, {"y"});
  Result<CriticalPath> cp = ComputeCriticalPath(t.Build(), {0, 0});
  ASSERT_TRUE(cp.ok());
  EXPECT_DOUBLE_EQ(cp->length, 0);
}

TEST(CriticalPath, RejectsBadWeights) {
  TinyGraph t;
  t.Add({"x"}, {"a"});
  Graph& g = t.Build();
  EXPECT_FALSE(ComputeCriticalPath(g, {}).ok());
  EXPECT_FALSE(ComputeCriticalPath(g, {-1}).ok());
}

TEST(CriticalPath, RejectsNonTopologicalOrder) {
  TinyGraph t;
  t.Add({"a"}, {"y"}).Add({"x"}, {"a"});
  Result<CriticalPath> cp = ComputeCriticalPath(t.Build(), {1, 1});
  EXPECT_FALSE(cp.ok());
}

TEST(CriticalPath, LowerBound) {
  EXPECT_DOUBLE_EQ(LowerBound(10, 3, 1), 10);
  EXPECT_DOUBLE_EQ(LowerBound(10, 3, 2), 5);
  EXPECT_DOUBLE_EQ(LowerBound(10, 3, 4), 3);
  EXPECT_DOUBLE_EQ(LowerBound(10, 3, 0), 10);
}

}  // namespace
}  // namespace parallax
