// Split maps (plan/split_map.h): how single nodes divide along an axis, on
// tiny hand-built graphs.
#include "plan/split_map.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plan/fusion_util.h"
#include "shaped_graph.h"

namespace parallax {
namespace {

using fusion::IntAttr;
using fusion::IntsAttr;
using fusion::StringAttr;
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

// Q K^T read from token-major [B, T, H, D] projections through perm_a /
// perm_b: heads (source axis 2) map to the output's batch axis 1 in both
// operands, Q's tokens to the output's rows, K's tokens to its columns.
TEST(SplitMap, TransposedMatMulOperandsSplitAlongTheirOwnAxes) {
  ShapedGraph t;
  const ValueId q = t.Value("q", {1, 6, 4, 8}), k = t.Value("k", {1, 6, 4, 8}),
                y = t.Value("y", {1, 4, 6, 6});
  Node& mm = t.Add("ScaledMatMul", {q, k}, {y});
  mm.domain = "com.parallax";
  mm.attrs["perm_a"] = IntsAttr({0, 2, 1, 3});
  mm.attrs["perm_b"] = IntsAttr({0, 2, 3, 1});
  EXPECT_EQ(MapLast(t, 0, 2), (Map{1, {2, 2}}));  // Heads.
  EXPECT_EQ(MapLast(t, 1, 2), (Map{1, {2, 2}}));
  EXPECT_EQ(MapLast(t, 0, 1), (Map{2, {1, -1}}));  // Rows of Q; K read whole.
  EXPECT_EQ(MapLast(t, 1, 1), (Map{3, {-1, 1}}));  // Columns (K's tokens).
  EXPECT_EQ(MapLast(t, 0, 3), kNone);              // D is reduced.
  EXPECT_EQ(MapLast(t, 1, 3), kNone);
}

// A projection along N reads its columns of the constant weights and bias
// (and of a residual); Reshape [T, H*D] -> [T, H, D] maps heads to runs of
// D columns (a window of stride and span D).
TEST(SplitMap, ProjectionsSplitAlongNAndReshapesIntoHeads) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {1, 6, 8}), w = t.Value("w", {8, 12}), b = t.Value("b", {12}),
                y = t.Value("y", {1, 6, 12});
  t.Add("FusedMatMul", {x, w, b}, {y}).domain = "com.parallax";
  EXPECT_EQ(MapLast(t, 1, 1), (Map{2, {-1, 1, 0}}));   // Columns of W and the bias.
  EXPECT_EQ(MapLast(t, 0, 1), (Map{1, {1, -1, -1}}));  // Rows: weights whole.
  const ValueId h = t.Value("h", {1, 6, 3, 4});
  t.Add("Reshape", {y, t.Ints("heads", {1, 6, 3, 4})}, {h});
  const Graph& g = t.graph();
  auto m = MapSplit(g, t.shapes(), g.nodes.back(), 0, 2);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->out_axis, 2);
  ASSERT_TRUE(m->window);
  EXPECT_EQ(m->window->stride, 4);
  EXPECT_EQ(m->window->span, 4);
  EXPECT_EQ(MapLast(t, 0, 1), (Map{1, {1, -1}}));  // Tokens stay whole.
}

TEST(SplitMap, ReshapesKeepAnAxisWholeOrMergeItWithTheNext) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {4, 6, 5}), y = t.Value("y", {4, 30});
  t.Add("Reshape", {x, t.Ints("target", {4, 30})}, {y});
  EXPECT_EQ(MapLast(t, 0, 0), (Map{0, {0, -1}}));
  // Merged with the axis after it into 30: each of its cells becomes a run of 5.
  EXPECT_EQ(MapLast(t, 0, 1), (Map{1, {1, -1}}));
  auto merged = MapSplit(t.graph(), t.shapes(), t.graph().nodes.back(), 0, 1);
  ASSERT_TRUE(merged && merged->window);
  EXPECT_EQ(merged->window->upsample, 5);
  EXPECT_EQ(MapLast(t, 0, 2), kNone);  // The inner axis of a merge.
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

TEST(SplitMap, ConcatSlicesEveryInputAlongAnyAxis) {
  ShapedGraph t;
  const ValueId a = t.Value("a", {4, 2, 5}), b = t.Value("b", {4, 3, 5}),
                y = t.Value("y", {4, 5, 5});
  t.Add("Concat", {a, b}, {y}).attrs["axis"] = IntAttr(1);
  EXPECT_EQ(MapLast(t, 1, 0), (Map{0, {0, 0}}));
  // Along its own axis each input covers its run of the output.
  EXPECT_EQ(MapLast(t, 0, 1), (Map{1, {1, 1}}));
  auto along = MapSplit(t.graph(), t.shapes(), t.graph().nodes.back(), 1, 1);
  ASSERT_TRUE(along.has_value());
  EXPECT_EQ(along->offsets, (std::vector<int64_t>{0, 2}));
}

TEST(SplitMap, ConvolutionsSplitOnlyAlongTheBatch) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {3, 8, 8, 4}), w = t.Value("w", {6, 4, 3, 3}),
                b = t.Value("b", {6});
  const ValueId z = t.Value("z", {3, 8, 8, 6}), y = t.Value("y", {3, 8, 8, 6});
  t.Add("FusedConv", {x, w, b, z}, {y}).domain = "com.parallax";  // Channels-last, residual z.
  EXPECT_EQ(MapLast(t, 0, 0), (Map{0, {0, -1, -1, 0}}));
  EXPECT_EQ(MapLast(t, 0, 1), kNone);  // Channels (NCHW: no channels_last attribute).
  EXPECT_EQ(MapLast(t, 3, 0), kNone);  // Only through X.
}

// The window of `t`'s last node sliced along `axis` of X, or nullopt.
std::optional<AxisWindow> WindowOf(ShapedGraph& t, int axis) {
  const Graph& g = t.graph();
  auto m = MapSplit(g, t.shapes(), g.nodes.back(), 0, axis);
  return m ? m->window : std::nullopt;
}

TEST(SplitMap, ConvolutionsSplitAlongRowsAndColumnsWithAWindow) {
  // Channels-last FusedConv, 3x3 stride 2 pads (1,0,1,1) (begin H, W, end H, W)
  // on X [1,9,8,4]: Y [1,5,4,6]; rows [a, b) of Y read rows [2a-1, 2b) of X.
  ShapedGraph t;
  const ValueId x = t.Value("x", {1, 9, 8, 4}), w = t.Value("w", {6, 4, 3, 3});
  const ValueId z = t.Value("z", {1, 5, 4, 6}), y = t.Value("y", {1, 5, 4, 6});
  Node& conv = t.Add("FusedConv", {x, w, kNoValue, z}, {y});
  conv.domain = "com.parallax";
  conv.attrs["channels_last"] = IntAttr(1);
  conv.attrs["strides"] = IntsAttr({2, 2});
  conv.attrs["pads"] = IntsAttr({1, 0, 1, 1});
  EXPECT_EQ(MapLast(t, 0, 1), (Map{1, {1, -1, -1, 1}}));  // The residual follows Y's rows.
  auto rows = WindowOf(t, 1);
  ASSERT_TRUE(rows.has_value());
  EXPECT_EQ(rows->stride, 2);
  EXPECT_EQ(rows->pad, 1);
  EXPECT_EQ(rows->span, 3);
  EXPECT_EQ(rows->upsample, 1);
  EXPECT_EQ(rows->spatial_dim, 0);
  EXPECT_EQ(rows->spatial_rank, 2);
  auto cols = WindowOf(t, 2);
  ASSERT_TRUE(cols.has_value());
  EXPECT_EQ(cols->pad, 0);
  EXPECT_EQ(cols->spatial_dim, 1);
  EXPECT_EQ(MapLast(t, 0, 3), kNone);  // Channels.
  // Pooling needs explicit pads and no ceil_mode.
  ShapedGraph p;
  const ValueId px = p.Value("x", {1, 2, 8, 8}), py = p.Value("y", {1, 2, 8, 8});
  Node& pool = p.Add("MaxPool", {px}, {py});
  pool.attrs["kernel_shape"] = IntsAttr({3, 3});
  pool.attrs["pads"] = IntsAttr({1, 1, 1, 1});
  auto pw = WindowOf(p, 2);
  ASSERT_TRUE(pw.has_value());
  EXPECT_EQ(pw->span, 3);
  EXPECT_EQ(pw->pad, 1);
  pool.attrs["ceil_mode"] = IntAttr(1);
  EXPECT_EQ(MapLast(p, 0, 2), kNone);
  pool.attrs.erase("ceil_mode");
  pool.attrs["auto_pad"] = StringAttr("SAME_UPPER");
  EXPECT_EQ(MapLast(p, 0, 2), kNone);
}

TEST(SplitMap, NearestResizeUpsamplesByWholeFactors) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {1, 4, 5, 3}), y = t.Value("y", {1, 8, 5, 3});
  Value scales;
  scales.name = "scales";
  scales.dtype = DType::kFloat32;
  scales.constant = Tensor::FromVector(DType::kFloat32, {4}, std::vector<float>{1, 2, 1, 1});
  const ValueId s = t.graph().AddValue(std::move(scales));
  Node& resize = t.Add("Resize", {x, kNoValue, s}, {y}, 13);
  resize.attrs["coordinate_transformation_mode"] = StringAttr("asymmetric");
  resize.attrs["nearest_mode"] = StringAttr("floor");
  auto rows = WindowOf(t, 1);
  ASSERT_TRUE(rows.has_value());
  EXPECT_EQ(rows->upsample, 2);
  EXPECT_EQ(rows->spatial_rank, 0);  // No pads to adjust.
  auto cols = WindowOf(t, 2);
  ASSERT_TRUE(cols.has_value());
  EXPECT_EQ(cols->upsample, 1);
  resize.attrs["mode"] = StringAttr("linear");  // Reads two input cells per output cell.
  EXPECT_EQ(MapLast(t, 0, 1), kNone);
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
