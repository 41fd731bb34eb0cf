// FLOP estimates of single nodes on known shapes.
#include "plan/flops.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace parallax {
namespace {

// One node of `op` over values of the given shapes (empty: unknown).
class OneNode {
 public:
  OneNode(const std::string& op, std::vector<Shape> ins, std::vector<Shape> outs,
          const std::string& domain = "") {
    node_.op_type = op;
    node_.domain = domain;
    node_.name = op;
    for (Shape& s : ins) node_.inputs.push_back(Add(std::move(s)));
    for (Shape& s : outs) node_.outputs.push_back(Add(std::move(s)));
  }
  OneNode& Int(const std::string& key, int64_t v) {
    node_.attrs[key].kind = Attribute::Kind::kInt;
    node_.attrs[key].i = v;
    return *this;
  }
  OneNode& Ints(const std::string& key, std::vector<int64_t> v) {
    node_.attrs[key].kind = Attribute::Kind::kInts;
    node_.attrs[key].ints = std::move(v);
    return *this;
  }
  OneNode& Str(const std::string& key, const std::string& v) {
    node_.attrs[key].kind = Attribute::Kind::kString;
    node_.attrs[key].s = v;
    return *this;
  }
  double Flops() const { return EstimateNodeFlops(graph_, node_, shapes_); }

 private:
  ValueId Add(Shape s) {
    ValueShape vs;
    vs.known = !s.empty();
    vs.dims = std::move(s);
    shapes_.push_back(std::move(vs));
    Value v;
    v.name = "v" + std::to_string(graph_.values.size());
    return graph_.AddValue(std::move(v));
  }
  Graph graph_;
  Node node_;
  std::vector<ValueShape> shapes_;
};

TEST(Flops, Conv) {
  // 2 * N * OC * OH * OW * IC * KH * KW.
  EXPECT_DOUBLE_EQ(OneNode("Conv", {{1, 3, 8, 8}, {16, 3, 3, 3}}, {{1, 16, 6, 6}}).Flops(),
                   2.0 * 16 * 6 * 6 * 3 * 3 * 3);
  // Depthwise: W [C, 1, 3, 3], group C.
  EXPECT_DOUBLE_EQ(
      OneNode("Conv", {{2, 8, 5, 5}, {8, 1, 3, 3}, {8}}, {{2, 8, 5, 5}}).Int("group", 8).Flops(),
      2.0 * 2 * 8 * 5 * 5 * 9);
  // Channels-last FusedConv: NHWC activations, OIHW weights, same count.
  EXPECT_DOUBLE_EQ(
      OneNode("FusedConv", {{1, 8, 8, 3}, {16, 3, 3, 3}}, {{1, 6, 6, 16}}, "com.parallax")
          .Int("channels_last", 1)
          .Flops(),
      2.0 * 16 * 6 * 6 * 3 * 3 * 3);
  // Unknown W shape: IC from the channel axis, kernel from kernel_shape.
  EXPECT_DOUBLE_EQ(OneNode("Conv", {{1, 8, 8, 4}, {}}, {{1, 6, 6, 16}}, "com.parallax")
                       .Int("channels_last", 1)
                       .Int("group", 2)
                       .Ints("kernel_shape", {3, 3})
                       .Flops(),
                   2.0 * 16 * 6 * 6 * 2 * 3 * 3);
  EXPECT_DOUBLE_EQ(OneNode("Conv", {{1, 3, 8, 8}, {16, 3, 3, 3}}, {{}}).Flops(), 1);
}

TEST(Flops, ConvTranspose) {
  // X [1, 4, 5, 5], W [4, 2, 3, 3]: each input element meets 2 * 9 weights.
  EXPECT_DOUBLE_EQ(OneNode("ConvTranspose", {{1, 4, 5, 5}, {4, 2, 3, 3}}, {{1, 2, 7, 7}}).Flops(),
                   2.0 * 4 * 5 * 5 * 2 * 3 * 3);
}

TEST(Flops, MatMulAndGemm) {
  EXPECT_DOUBLE_EQ(OneNode("MatMul", {{2, 4, 5}, {5, 6}}, {{2, 4, 6}}).Flops(),
                   2.0 * 2 * 4 * 6 * 5);
  EXPECT_DOUBLE_EQ(OneNode("FusedMatMul", {{7, 5}, {5, 3}, {3}}, {{7, 3}}, "com.parallax").Flops(),
                   2.0 * 7 * 3 * 5);
  EXPECT_DOUBLE_EQ(OneNode("Gemm", {{4, 5}, {5, 6}, {6}}, {{4, 6}}).Flops(), 2.0 * 4 * 6 * 5);
  EXPECT_DOUBLE_EQ(
      OneNode("Gemm", {{5, 4}, {6, 5}}, {{4, 6}}).Int("transA", 1).Int("transB", 1).Flops(),
      2.0 * 4 * 6 * 5);
  EXPECT_DOUBLE_EQ(OneNode("MatMul", {{}, {5, 6}}, {{4, 6}}).Flops(), 24);  // K unknown.
}

TEST(Flops, Einsum) {
  EXPECT_DOUBLE_EQ(OneNode("Einsum", {{2, 3, 4}, {2, 4, 5}}, {{2, 3, 5}})
                       .Str("equation", "bij,bjk->bik")
                       .Flops(),
                   2.0 * 2 * 3 * 5 * 4);
  EXPECT_DOUBLE_EQ(OneNode("Einsum", {{7, 2, 3, 4}, {4, 5}}, {{7, 2, 3, 5}})
                       .Str("equation", "...ij,jk->...ik")
                       .Flops(),
                   2.0 * 7 * 2 * 3 * 5 * 4);
  // Implicit output: j appears twice, so it is contracted.
  EXPECT_DOUBLE_EQ(OneNode("Einsum", {{3, 4}, {4, 5}}, {{3, 5}}).Str("equation", "ij,jk").Flops(),
                   2.0 * 3 * 5 * 4);
  EXPECT_DOUBLE_EQ(OneNode("Einsum", {{3, 4}}, {{4, 3}}).Str("equation", "ij->ji").Flops(), 12);
}

TEST(Flops, ElementwiseReductionsPoolingAndShapeOps) {
  EXPECT_DOUBLE_EQ(OneNode("Relu", {{2, 3, 4}}, {{2, 3, 4}}).Flops(), 24);
  EXPECT_DOUBLE_EQ(OneNode("Add", {{2, 3, 4}, {4}}, {{2, 3, 4}}).Flops(), 24);
  EXPECT_DOUBLE_EQ(OneNode("Relu", {{}}, {{}}).Flops(), 1);
  EXPECT_DOUBLE_EQ(OneNode("ReduceMean", {{2, 3, 4}}, {{2, 3, 1}}).Flops(), 24);
  EXPECT_GT(OneNode("Softmax", {{2, 3, 4}}, {{2, 3, 4}}).Flops(), 24);
  EXPECT_DOUBLE_EQ(
      OneNode("MaxPool", {{1, 2, 8, 8}}, {{1, 2, 4, 4}}).Ints("kernel_shape", {2, 2}).Flops(),
      32 * 4);
  EXPECT_DOUBLE_EQ(OneNode("Transpose", {{2, 3, 4}}, {{4, 3, 2}}).Flops(), 24);
  EXPECT_DOUBLE_EQ(OneNode("Split", {{2, 6}}, {{2, 2}, {2, 4}}).Flops(), 12);
  EXPECT_DOUBLE_EQ(OneNode("Shape", {{2, 3, 4}}, {{3}}).Flops(), 1);
  EXPECT_DOUBLE_EQ(OneNode("Loop", {{}, {}}, {{5, 5}}).Flops(), 1);
}

TEST(Flops, LstmCountsWeightsPerStep) {
  // X [seq 5, batch 2, in 3], W [1, 4*4, 3], R [1, 4*4, 4].
  EXPECT_DOUBLE_EQ(OneNode("LSTM", {{5, 2, 3}, {1, 16, 3}, {1, 16, 4}}, {{5, 1, 2, 4}}).Flops(),
                   2.0 * 5 * 2 * (16 * 3 + 16 * 4));
}

TEST(Flops, StaticValueShapesAndGraphEstimates) {
  Graph g;
  Value x;
  x.name = "x";
  x.has_shape = true;
  x.dims = {Dim{2, ""}, Dim{3, ""}};
  Value y = x;
  y.name = "y";
  y.dims[0] = Dim{-1, "batch"};
  Value w;
  w.name = "w";
  w.constant = Tensor::Empty(DType::kFloat32, {3, 4});
  const ValueId xi = g.AddValue(x), yi = g.AddValue(y), wi = g.AddValue(w);
  std::vector<ValueShape> s = StaticValueShapes(g);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_TRUE(s[static_cast<size_t>(xi)].known);
  EXPECT_EQ(s[static_cast<size_t>(xi)].dims, (Shape{2, 3}));
  EXPECT_FALSE(s[static_cast<size_t>(yi)].known);
  EXPECT_EQ(s[static_cast<size_t>(wi)].dims, (Shape{3, 4}));
  Node relu;
  relu.op_type = "Relu";
  relu.inputs = {xi};
  relu.outputs = {yi};
  g.nodes.push_back(relu);
  relu.outputs = {xi};
  g.nodes.push_back(relu);
  EXPECT_EQ(EstimateGraphFlops(g, s), (std::vector<double>{1, 6}));
}

}  // namespace
}  // namespace parallax
