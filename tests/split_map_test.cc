// Split maps (plan/split_map.h): how single nodes divide along an axis, on
// tiny hand-built graphs.
#include "plan/split_map.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "plan/fusion_util.h"
#include "shaped_graph.h"

namespace parallax {
namespace {

using fusion::IntAttr;
using fusion::IntsAttr;
using testing::ShapedGraph;
using Map = std::pair<int, std::vector<int>>;

// (out_axis, in_axes) of the last node of `t` when its input `in` is sliced
// along `axis`; out_axis -2 when it does not split that way.
Map MapLast(ShapedGraph& t, int in, int axis) {
  const Graph& g = t.graph();
  auto m = MapSplit(g, t.shapes(), g.nodes.back(), in, axis);
  if (!m) return {-2, {}};
  return {m->out_axis, m->in_axes};
}
const Map kNone = {-2, {}};

TEST(SplitMap, GatherKeepsOtherAxesAndShiftsThoseAfterIt) {
  ShapedGraph t;
  const ValueId data = t.Value("data", {4, 5, 6}), idx = t.Value("idx", {2, 3}),
                y = t.Value("y", {4, 2, 3, 6});
  t.Add("Gather", {data, idx}, {y}).attrs["axis"] = IntAttr(1);
  EXPECT_EQ(MapLast(t, 0, 0), (Map{0, {0, -1}}));
  EXPECT_EQ(MapLast(t, 0, 2), (Map{3, {2, -1}}));  // After the two index dims.
  EXPECT_EQ(MapLast(t, 0, 1), kNone);              // The gathered axis.
  EXPECT_EQ(MapLast(t, 1, 0), kNone);              // Indices are read whole.
}

TEST(SplitMap, ReductionsWithoutKeepdimsShiftLaterAxes) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {4, 5, 6}), y = t.Value("y", {4, 6});
  Node& mean = t.Add("ReduceMean", {x}, {y});
  mean.attrs["axes"] = IntsAttr({1});
  mean.attrs["keepdims"] = IntAttr(0);
  EXPECT_EQ(MapLast(t, 0, 0), (Map{0, {0}}));
  EXPECT_EQ(MapLast(t, 0, 2), (Map{1, {2}}));
  EXPECT_EQ(MapLast(t, 0, 1), kNone);
}

TEST(SplitMap, GemmSplitsRowsOfATransposedOrNot) {
  ShapedGraph t;
  const ValueId a = t.Value("a", {5, 4}), b = t.Value("b", {5, 3}), c = t.Value("c", {4, 3}),
                y = t.Value("y", {4, 3});
  t.Add("Gemm", {a, b, c}, {y}).attrs["transA"] = IntAttr(1);  // A is [K, M]: M is axis 1.
  EXPECT_EQ(MapLast(t, 0, 1), (Map{0, {1, -1, 0}}));           // C [M, N] follows the rows.
  EXPECT_EQ(MapLast(t, 0, 0), kNone);                          // K.
  EXPECT_EQ(MapLast(t, 1, 1), kNone);                          // Columns of B: not covered.
}

TEST(SplitMap, ReshapesKeepAnAxisOnlyWhenItStaysWhole) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {4, 6, 5}), y = t.Value("y", {4, 30});
  t.Add("Reshape", {x, t.Ints("target", {4, 30})}, {y});
  EXPECT_EQ(MapLast(t, 0, 0), (Map{0, {0, -1}}));
  EXPECT_EQ(MapLast(t, 0, 1), kNone);  // Merged into 30.
  Node reshape;
  reshape.op_type = "Reshape";
  EXPECT_TRUE(NeedsPieceShape(reshape));  // Each piece gets its own target dims.
  ShapedGraph s;
  const ValueId u = s.Value("u", {1, 4, 5}), v = s.Value("v", {4, 5});
  s.Add("Squeeze", {u, s.Ints("axes", {0})}, {v});
  EXPECT_EQ(MapLast(s, 0, 1), (Map{0, {1, -1}}));
}

TEST(SplitMap, SplitOpSlicesEveryOutputAwayFromItsAxis) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {4, 6, 8}), a = t.Value("a", {4, 6, 4}),
                b = t.Value("b", {4, 6, 4});
  t.Add("Split", {x, t.Ints("sizes", {4, 4})}, {a, b}).attrs["axis"] = IntAttr(2);
  EXPECT_EQ(MapLast(t, 0, 0), (Map{0, {0, -1}}));
  EXPECT_EQ(MapLast(t, 0, 1), (Map{1, {1, -1}}));
  EXPECT_EQ(MapLast(t, 0, 2), kNone);
}

TEST(SplitMap, ConcatSlicesEveryInputAwayFromItsAxis) {
  ShapedGraph t;
  const ValueId a = t.Value("a", {4, 2, 5}), b = t.Value("b", {4, 3, 5}),
                y = t.Value("y", {4, 5, 5});
  t.Add("Concat", {a, b}, {y}).attrs["axis"] = IntAttr(1);
  EXPECT_EQ(MapLast(t, 1, 0), (Map{0, {0, 0}}));
  EXPECT_EQ(MapLast(t, 0, 1), kNone);
}

TEST(SplitMap, ConvolutionsSplitOnlyAlongTheBatch) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {3, 8, 8, 4}), w = t.Value("w", {6, 4, 3, 3}),
                b = t.Value("b", {6});
  const ValueId z = t.Value("z", {3, 8, 8, 6}), y = t.Value("y", {3, 8, 8, 6});
  t.Add("FusedConv", {x, w, b, z}, {y}).domain = "com.parallax";  // Channels-last, residual z.
  EXPECT_EQ(MapLast(t, 0, 0), (Map{0, {0, -1, -1, 0}}));
  EXPECT_EQ(MapLast(t, 0, 1), kNone);  // Rows would need halos.
  EXPECT_EQ(MapLast(t, 3, 0), kNone);  // Only through X.
}

TEST(SplitMap, BroadcastInputsFollowOnlyWhereTheyHaveTheAxis) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {4, 5}), bias = t.Value("bias", {5}), col = t.Value("col", {4, 1});
  const ValueId y = t.Value("y", {4, 5});
  t.Add("Add", {x, bias}, {y});
  EXPECT_EQ(MapLast(t, 0, 0), (Map{0, {0, -1}}));
  EXPECT_EQ(MapLast(t, 0, 1), (Map{1, {1, 0}}));
  t.Add("Mul", {x, col}, {y});
  EXPECT_EQ(MapLast(t, 0, 0), (Map{0, {0, 0}}));
  EXPECT_EQ(MapLast(t, 0, 1), (Map{1, {1, -1}}));
}

}  // namespace
}  // namespace parallax
