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

// A transformer's attention prologue as exporters write it: the head split's
// target shape computed from Shape -> Gather -> Unsqueeze -> Concat, the
// embedding Gather, MatMuls, a reduction, Expand of a computed shape and a
// Range over a computed bound.
TEST(ShapeInfer, EvaluatesShapeArithmeticAndTransformerOps) {
  ShapedGraph t;
  const ValueId ids = t.Value("ids", {1, 32}), table = t.Value("table", {100, 768});
  const ValueId emb = t.Value("emb", {1, 32, 768}), wq = t.Value("wq", {768, 768});
  const ValueId q = t.Value("q", {1, 32, 768}), sh = t.Value("sh", {3});
  const ValueId seq = t.Value("seq", {}), useq = t.Value("useq", {1});
  const ValueId target = t.Value("target", {4}), q4 = t.Value("q4", {1, 32, 12, 64});
  const ValueId qt = t.Value("qt", {1, 12, 32, 64}), kt = t.Value("kt", {1, 12, 64, 32});
  const ValueId scores = t.Value("scores", {1, 12, 32, 32}), mean = t.Value("mean", {1, 12, 1, 32});
  const ValueId grid = t.Value("grid", {2}), ex = t.Value("ex", {1, 12, 32, 32});
  const ValueId pos = t.Value("pos", {32}), flat = t.Value("flat", {12, 1024});
  const ValueId sq = t.Value("sq", {12, 32}), gemm = t.Value("gemm", {12, 5});
  const ValueId wg = t.Value("wg", {5, 32});
  t.Add("Gather", {table, ids}, {emb});
  t.Add("MatMul", {emb, wq}, {q});
  t.Add("Shape", {q}, {sh});
  t.Add("Gather", {sh, t.Scalar("one", 1)}, {seq}).attrs["axis"] = IntAttr(0);
  t.Add("Unsqueeze", {seq, t.Ints("axes0", {0})}, {useq});
  t.Add("Concat", {t.Ints("b", {1}), useq, t.Ints("h", {12}), t.Ints("d", {-1})}, {target})
      .attrs["axis"] = IntAttr(0);
  t.Add("Reshape", {q, target}, {q4});
  t.Add("Transpose", {q4}, {qt}).attrs["perm"] = IntsAttr({0, 2, 1, 3});
  t.Add("Transpose", {q4}, {kt}).attrs["perm"] = IntsAttr({0, 2, 3, 1});
  t.Add("MatMul", {qt, kt}, {scores});
  t.Add("ReduceMean", {scores}, {mean}, 13).attrs["axes"] = IntsAttr({2});
  t.Add("Concat", {useq, useq}, {grid}).attrs["axis"] = IntAttr(0);
  t.Add("Expand", {mean, grid}, {ex});
  t.Add("Range", {t.Scalar("zero", 0), seq, t.Scalar("step", 1)}, {pos});
  t.Add("Flatten", {ex}, {flat}).attrs["axis"] = IntAttr(2);
  t.Add("Squeeze", {mean, t.Ints("axes2", {0, 2})}, {sq});
  t.Add("Gemm", {sq, wg}, {gemm}).attrs["transB"] = IntAttr(1);
  Graph& g = t.graph();
  std::vector<ValueShape> shapes = t.shapes();
  const std::vector<ValueId> inferred = {emb, q,      sh,   seq,  useq, target, q4, qt,
                                         kt,  scores, mean, grid, ex,   pos,    sq, gemm};
  for (ValueId v : inferred) Forget(&shapes, v);
  Forget(&shapes, flat);
  const std::vector<ValueShape> got = InferShapes(g, shapes);
  for (ValueId v : inferred) {
    ASSERT_TRUE(got[static_cast<size_t>(v)].known) << g.values[static_cast<size_t>(v)].name;
    EXPECT_EQ(got[static_cast<size_t>(v)].dims, t.shapes()[static_cast<size_t>(v)].dims)
        << g.values[static_cast<size_t>(v)].name;
  }
  // Flatten at axis 2 of [1,12,32,32] is [12, 1024].
  EXPECT_EQ(got[static_cast<size_t>(flat)].dims, (Shape{12, 1024}));
}

TEST(ShapeInfer, ShapeArithmeticOnUnknownShapesStaysUnknown) {
  ShapedGraph t;
  const ValueId x = t.Value("x", {1, 8}), sh = t.Value("sh", {2}), y = t.Value("y", {8});
  t.Add("Shape", {x}, {sh});
  t.Add("Reshape", {x, sh}, {y});  // Reshape to its own shape: [1, 8].
  Graph& g = t.graph();
  std::vector<ValueShape> shapes = t.shapes();
  Forget(&shapes, x);
  Forget(&shapes, sh);
  Forget(&shapes, y);
  std::vector<ValueShape> got = InferShapes(g, shapes);
  EXPECT_FALSE(got[static_cast<size_t>(sh)].known);
  EXPECT_FALSE(got[static_cast<size_t>(y)].known);
  shapes[static_cast<size_t>(x)] = ValueShape{true, {1, 8}};
  got = InferShapes(g, shapes);
  ASSERT_TRUE(got[static_cast<size_t>(y)].known);
  EXPECT_EQ(got[static_cast<size_t>(y)].dims, (Shape{1, 8}));
}

}  // namespace
}  // namespace parallax
