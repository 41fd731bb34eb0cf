// Static shape inference (plan/shape_infer.h) on tiny hand-built graphs.
#include "plan/shape_infer.h"

#include <gtest/gtest.h>

#include <vector>

#include "plan/fusion_util.h"
#include "shaped_graph.h"

namespace parallax {
namespace {

using fusion::IntAttr;
using fusion::IntsAttr;
using testing::ShapedGraph;

// Marks `v` unknown in `shapes`.
void Forget(std::vector<ValueShape>* shapes, ValueId v) {
  (*shapes)[static_cast<size_t>(v)] = ValueShape{};
}

TEST(ShapeInfer, FollowsConvPoolConcatSliceAndReshape) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {1, 3, 16, 16}), w = t.Value("w", {8, 3, 3, 3});
  const ValueId c = t.Value("c", {1, 8, 8, 8}), p = t.Value("p", {1, 8, 4, 4});
  const ValueId b = t.Value("b", {1, 8, 1, 1}), a = t.Value("a", {1, 8, 4, 4});
  const ValueId cat = t.Value("cat", {1, 16, 4, 4}), s = t.Value("s", {1, 16, 2, 4});
  const ValueId r = t.Value("r", {1, 128});
  Node& conv = t.Add("Conv", {x, w}, {c});
  conv.attrs["strides"] = IntsAttr({2, 2});
  conv.attrs["pads"] = IntsAttr({1, 1, 1, 1});
  Node& pool = t.Add("MaxPool", {c}, {p});
  pool.attrs["kernel_shape"] = IntsAttr({2, 2});
  pool.attrs["strides"] = IntsAttr({2, 2});
  t.Add("Add", {p, b}, {a});
  t.Add("Concat", {p, a}, {cat}).attrs["axis"] = IntAttr(1);
  t.Add("Slice", {cat, t.Ints("starts", {1}), t.Ints("ends", {-1}), t.Ints("axes", {2})}, {s});
  t.Add("Reshape", {s, t.Ints("shape", {0, -1})}, {r});
  const Graph& g = t.graph();
  std::vector<ValueShape> shapes = t.shapes();
  for (ValueId v : {c, p, a, cat, s, r}) Forget(&shapes, v);
  const std::vector<ValueShape> got = InferShapes(g, shapes);
  for (ValueId v : {c, p, a, cat, s, r}) {
    ASSERT_TRUE(got[static_cast<size_t>(v)].known) << g.values[static_cast<size_t>(v)].name;
    EXPECT_EQ(got[static_cast<size_t>(v)].dims, t.shapes()[static_cast<size_t>(v)].dims)
        << g.values[static_cast<size_t>(v)].name;
  }
}

TEST(ShapeInfer, ChannelsLastConvAndComputedBoundsStayUnknownWhereTheyMust) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {1, 10, 12, 4}), w = t.Value("w", {6, 4, 3, 3});
  const ValueId y = t.Value("y", {1, 10, 12, 6}), ends = t.Value("ends", {1});
  const ValueId s = t.Value("s", {1, 10, 12, 3}), e = t.Value("e", {1, 10, 12, 3});
  Node& conv = t.Add("Conv", {x, w}, {y});
  conv.domain = "com.parallax";
  conv.attrs["channels_last"] = IntAttr(1);
  conv.attrs["pads"] = IntsAttr({1, 1, 1, 1});
  // Bounds from a computed value: the Slice (and what follows) stays unknown.
  t.Add("Slice", {y, t.Ints("starts", {0}), ends, t.Ints("axes", {3})}, {s});
  t.Add("Relu", {s}, {e});
  const Graph& g = t.graph();
  std::vector<ValueShape> shapes = t.shapes();
  for (ValueId v : {y, s, e}) Forget(&shapes, v);
  const std::vector<ValueShape> got = InferShapes(g, shapes);
  ASSERT_TRUE(got[static_cast<size_t>(y)].known);
  EXPECT_EQ(got[static_cast<size_t>(y)].dims, (Shape{1, 10, 12, 6}));
  EXPECT_FALSE(got[static_cast<size_t>(s)].known);
  EXPECT_FALSE(got[static_cast<size_t>(e)].known);
  // Once a run has taught the Slice's shape, inference continues after it.
  shapes[static_cast<size_t>(s)] = ValueShape{true, {1, 10, 12, 3}};
  EXPECT_EQ(InferShapes(g, shapes)[static_cast<size_t>(e)].dims, (Shape{1, 10, 12, 3}));
}

}  // namespace
}  // namespace parallax
