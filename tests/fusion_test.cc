// Fusions into com.parallax FusedConv / FusedMatMul and the Conv folds, on
// tiny hand-built models: each pass fires where it should (counts, resulting
// ops and attributes), not where an intermediate has another reader, and the
// fused model computes what the unfused one does (within 1e-5).
#include <gtest/gtest.h>

#include "fusion_test_util.h"

namespace parallax {
namespace {

using testing::AttrF;
using testing::AttrInts;
using testing::Fired;
using testing::kFloat;
using testing::LoadAndCompare;
using testing::ModelBuilder;
using testing::OnlyNode;
using testing::OpCounts;
using testing::RandomInit;
using testing::RandomTensor;

using Ops = std::map<std::string, int>;

// x [1,3,8,8] -> Conv (4 channels, k x k, same padding, bias) -> "c". oneDNN
// runs the 3x3 conv with jit post-ops and the 1x1 conv as a GEMM whose
// epilogue Parallax applies itself (SlowPostOps).
ModelBuilder ConvModel(int opset = 13, int64_t k = 3) {
  ModelBuilder b(opset);
  b.Input("x", kFloat, {1, 3, 8, 8});
  RandomInit(b, "w", {4, 3, k, k}, 1);
  RandomInit(b, "b", {4}, 2);
  const int64_t p = k / 2;
  AttrInts(b.Node("Conv", {"x", "w", "b"}, {"c"}), "pads", {p, p, p, p});
  return b;
}

Session::NamedTensors ConvInputs() { return {{"x", RandomTensor({1, 3, 8, 8}, 7)}}; }

TEST(Fusion, ConvBatchNormFoldsIntoWeights) {
  ModelBuilder b = ConvModel();
  b.Output("y", kFloat, {1, 4, 8, 8});
  RandomInit(b, "scale", {4}, 3);
  RandomInit(b, "shift", {4}, 4);
  RandomInit(b, "mean", {4}, 5);
  RandomInit(b, "var", {4}, 6, 0.5f, 2.f);
  AttrF(b.Node("BatchNormalization", {"c", "scale", "shift", "mean", "var"}, {"y"}), "epsilon",
        1e-3f);
  auto m = LoadAndCompare(b.Write("fuse_conv_bn"), ConvInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "ConvBatchNorm"), 1);
  EXPECT_EQ(OpCounts(*m), (Ops{{"Conv", 1}}));
}

TEST(Fusion, ConvBatchNormSkipsAConvOutputThatIsAlsoAGraphOutput) {
  ModelBuilder b = ConvModel();
  b.Output("y", kFloat, {1, 4, 8, 8}).Output("c", kFloat, {1, 4, 8, 8});
  for (const char* p : {"scale", "shift", "mean", "var"}) RandomInit(b, p, {4}, 3, 0.5f, 2.f);
  b.Node("BatchNormalization", {"c", "scale", "shift", "mean", "var"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_conv_bn_output"), ConvInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "ConvBatchNorm"), 0);
  EXPECT_EQ(OpCounts(*m), (Ops{{"BatchNormalization", 1}, {"Conv", 1}}));
}

TEST(Fusion, ConvAffineFoldsScalarAndPerChannelConstants) {
  ModelBuilder b = ConvModel();
  b.Output("y", kFloat, {1, 4, 8, 8});
  b.FloatInit("k", {1}, {1.5f});
  RandomInit(b, "t", {1, 4, 1, 1}, 8);
  b.Node("Mul", {"k", "c"}, {"m"});
  b.Node("Add", {"m", "t"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_conv_affine"), ConvInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "ConvAffine"), 2);
  EXPECT_EQ(OpCounts(*m), (Ops{{"Conv", 1}}));
}

TEST(Fusion, ConvAffineLeavesAFullTensorConstantToTheResidualFusion) {
  ModelBuilder b = ConvModel();
  b.Output("y", kFloat, {1, 4, 8, 8});
  RandomInit(b, "t", {1, 4, 8, 8}, 8);  // Varies over space: not a bias.
  b.Node("Add", {"c", "t"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_conv_full_add"), ConvInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "ConvAffine"), 0);
  EXPECT_EQ(Fired(*m, "ResidualAdd"), 1);
  EXPECT_EQ(OpCounts(*m), (Ops{{"com.parallax::FusedConv", 1}}));
}

// Conv (3x3 and 1x1) -> one activation node, then Add of a residual.
TEST(Fusion, ConvActivationsBecomeFusedConv) {
  struct Case {
    const char* op;
    int opset;
    std::vector<float> params;
  };
  for (int64_t k : {3, 1})
    for (const Case& c :
         {Case{"Relu", 13, {}}, Case{"LeakyRelu", 13, {0.01f}}, Case{"Tanh", 13, {}},
          Case{"Sigmoid", 13, {}}, Case{"HardSigmoid", 13, {0.2f, 0.5f}}, Case{"HardSwish", 14, {}},
          Case{"Clip", 13, {0.f, 6.f}}}) {
      SCOPED_TRACE(std::string(c.op) + " k=" + std::to_string(k));
      ModelBuilder b = ConvModel(c.opset, k);
      b.Input("z", kFloat, {1, 4, 8, 8}).Output("y", kFloat, {1, 4, 8, 8});
      std::vector<std::string> ins = {"c"};
      if (std::string(c.op) == "Clip") {
        b.FloatInit("lo", {}, {0.f}).FloatInit("hi", {}, {6.f});
        ins = {"c", "lo", "hi"};
      }
      b.Node(c.op, ins, {"a"});
      b.Node("Add", {"a", "z"}, {"y"});
      Session::NamedTensors in = ConvInputs();
      in.push_back({"z", RandomTensor({1, 4, 8, 8}, 9)});
      auto m = LoadAndCompare(b.Write(std::string("fuse_conv_") + c.op + std::to_string(k)), in);
      ASSERT_TRUE(m);
      EXPECT_EQ(Fired(*m, "Activation"), 1);
      EXPECT_EQ(Fired(*m, "ActivationAdd"), 1);
      const Node* f = OnlyNode(*m, "FusedConv");
      ASSERT_NE(f, nullptr);
      EXPECT_EQ(OpCounts(*m).size(), 1u);
      EXPECT_EQ(f->domain, "com.parallax");
      EXPECT_EQ(f->attr_string("activation", ""), c.op);
      EXPECT_EQ(f->attr_floats("activation_params"), c.params);
    }
}

TEST(Fusion, ConvActivationSkipsAConvOutputWithTwoReaders) {
  ModelBuilder b = ConvModel();
  b.Output("y", kFloat, {1, 4, 8, 8}).Output("n", kFloat, {1, 4, 8, 8});
  b.Node("Relu", {"c"}, {"y"});
  b.Node("Neg", {"c"}, {"n"});
  auto m = LoadAndCompare(b.Write("fuse_conv_relu_two_readers"), ConvInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "Activation"), 0);
  EXPECT_EQ(OpCounts(*m), (Ops{{"Conv", 1}, {"Neg", 1}, {"Relu", 1}}));
}

TEST(Fusion, ConvSigmoidMulIsSwish) {
  ModelBuilder b = ConvModel();
  b.Output("y", kFloat, {1, 4, 8, 8});
  b.Node("Sigmoid", {"c"}, {"s"});
  b.Node("Mul", {"c", "s"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_conv_silu"), ConvInputs());
  ASSERT_TRUE(m);
  const Node* f = OnlyNode(*m, "FusedConv");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(OpCounts(*m).size(), 1u);
  EXPECT_EQ(f->attr_string("activation", ""), "Swish");
  EXPECT_EQ(f->attr_floats("activation_params"), std::vector<float>{1.f});
}

TEST(Fusion, SigmoidMulWhoseSigmoidHasAnotherReaderStaysApart) {
  ModelBuilder b = ConvModel();
  b.Output("y", kFloat, {1, 4, 8, 8}).Output("s", kFloat, {1, 4, 8, 8});
  b.Node("Sigmoid", {"c"}, {"s"});
  b.Node("Mul", {"c", "s"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_conv_silu_shared"), ConvInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "Activation"), 0);
  EXPECT_EQ(OpCounts(*m), (Ops{{"Conv", 1}, {"Mul", 1}, {"Sigmoid", 1}}));
}

TEST(Fusion, DecomposedHardSwishFusesIntoTheConv) {
  ModelBuilder b = ConvModel(11);
  b.Output("y", kFloat, {1, 4, 8, 8});
  b.FloatInit("three", {}, {3.f}).FloatInit("zero", {}, {0.f}).FloatInit("six", {}, {6.f});
  b.Node("Add", {"c", "three"}, {"a"});
  b.Node("Clip", {"a", "zero", "six"}, {"r"});
  b.Node("Mul", {"c", "r"}, {"m"});
  b.Node("Div", {"m", "six"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_conv_hardswish"), ConvInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "HardSwish"), 1);
  EXPECT_EQ(Fired(*m, "Activation"), 1);
  const Node* f = OnlyNode(*m, "FusedConv");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(OpCounts(*m).size(), 1u);
  EXPECT_EQ(f->attr_string("activation", ""), "HardSwish");
}

TEST(Fusion, DecomposedHardSwishWithASharedIntermediateStaysApart) {
  ModelBuilder b = ConvModel(11);
  b.Output("y", kFloat, {1, 4, 8, 8}).Output("r", kFloat, {1, 4, 8, 8});
  b.FloatInit("three", {}, {3.f}).FloatInit("zero", {}, {0.f}).FloatInit("six", {}, {6.f});
  b.Node("Add", {"c", "three"}, {"a"});
  b.Node("Clip", {"a", "zero", "six"}, {"r"});
  b.Node("Mul", {"c", "r"}, {"m"});
  b.Node("Div", {"m", "six"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_conv_hardswish_shared"), ConvInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "HardSwish"), 0);
  EXPECT_EQ(OpCounts(*m).count("Clip"), 1u);
}

TEST(Fusion, ConvAddReluAddsTheResidualBeforeTheActivation) {
  ModelBuilder b = ConvModel();
  b.Input("z", kFloat, {1, 4, 8, 8}).Output("y", kFloat, {1, 4, 8, 8});
  b.Node("Add", {"z", "c"}, {"s"});
  b.Node("Relu", {"s"}, {"y"});
  Session::NamedTensors in = ConvInputs();
  in.push_back({"z", RandomTensor({1, 4, 8, 8}, 9)});
  auto m = LoadAndCompare(b.Write("fuse_conv_add_relu"), in);
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "ResidualAdd"), 1);
  EXPECT_EQ(Fired(*m, "Activation"), 1);
  const Node* f = OnlyNode(*m, "FusedConv");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->inputs.size(), 4u);
  EXPECT_EQ(m->data().graph->values[static_cast<size_t>(f->inputs[3])].name, "z");
  EXPECT_EQ(f->attr_int("sum_after_activation", 0), 0);
}

TEST(Fusion, ConvReluAddAddsTheResidualAfterTheActivation) {
  ModelBuilder b = ConvModel();
  b.Input("z", kFloat, {1, 4, 8, 8}).Output("y", kFloat, {1, 4, 8, 8});
  b.Node("Relu", {"c"}, {"r"});
  b.Node("Add", {"r", "z"}, {"y"});
  Session::NamedTensors in = ConvInputs();
  in.push_back({"z", RandomTensor({1, 4, 8, 8}, 9)});
  auto m = LoadAndCompare(b.Write("fuse_conv_relu_add"), in);
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "ActivationAdd"), 1);
  const Node* f = OnlyNode(*m, "FusedConv");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->attr_int("sum_after_activation", 0), 1);
}

TEST(Fusion, ResidualOfUnprovenShapeIsBroadcastAtRunTime) {
  // Symbolic dims: the fusion cannot prove z has the conv's shape; the
  // kernel must broadcast when it does not.
  ModelBuilder b(13);
  b.Input("x", kFloat, {-1, 3, -1, -1}).Input("z", kFloat, {-1, 4, -1, -1});
  b.Output("y", kFloat, {-1, 4, -1, -1});
  const char* kSymbols[2][4] = {{"n", "", "h", "w"}, {"zn", "", "zh", "zw"}};
  for (int i = 0; i < 2; ++i)  // A distinct symbol per dim.
    for (int d : {0, 2, 3})
      b.proto()
          .mutable_graph()
          ->mutable_input(i)
          ->mutable_type()
          ->mutable_tensor_type()
          ->mutable_shape()
          ->mutable_dim(d)
          ->set_dim_param(kSymbols[i][d]);
  RandomInit(b, "w", {4, 3, 3, 3}, 1);
  AttrInts(b.Node("Conv", {"x", "w"}, {"c"}), "pads", {1, 1, 1, 1});
  b.Node("Add", {"c", "z"}, {"s"});
  b.Node("Sigmoid", {"s"}, {"y"});
  std::string path = b.Write("fuse_conv_add_broadcast");
  for (Shape zs : {Shape{2, 4, 5, 6}, Shape{1, 4, 1, 1}, Shape{2, 4, 1, 6}}) {
    SCOPED_TRACE(ShapeToString(zs));
    auto m =
        LoadAndCompare(path, {{"x", RandomTensor({2, 3, 5, 6}, 7)}, {"z", RandomTensor(zs, 9)}});
    ASSERT_TRUE(m);
    EXPECT_EQ(Fired(*m, "ResidualAdd"), 1);
    EXPECT_EQ(OpCounts(*m), (Ops{{"com.parallax::FusedConv", 1}}));
  }
}

TEST(Fusion, ScalarAffineAfterTheActivationBecomesLinear) {
  ModelBuilder b = ConvModel();
  b.Output("y", kFloat, {1, 4, 8, 8});
  b.FloatInit("k", {1}, {2.f}).FloatInit("t", {1}, {-0.5f}).FloatInit("d", {}, {4.f});
  b.Node("Relu", {"c"}, {"r"});
  b.Node("Mul", {"r", "k"}, {"m"});
  b.Node("Add", {"t", "m"}, {"a"});
  b.Node("Div", {"a", "d"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_conv_linear"), ConvInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "OutputAffine"), 3);
  const Node* f = OnlyNode(*m, "FusedConv");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(OpCounts(*m).size(), 1u);
  EXPECT_EQ(f->attr_floats("linear"), (std::vector<float>{0.5f, -0.125f}));
}

// a [2,5,8] x W [8,6] + bias [6] -> "h".
ModelBuilder MatMulModel() {
  ModelBuilder b(13);
  b.Input("a", kFloat, {2, 5, 8});
  RandomInit(b, "w", {8, 6}, 1);
  RandomInit(b, "bias", {6}, 2);
  b.Node("MatMul", {"a", "w"}, {"mm"});
  b.Node("Add", {"bias", "mm"}, {"h"});
  return b;
}

Session::NamedTensors MatMulInputs() { return {{"a", RandomTensor({2, 5, 8}, 3, -2.f, 2.f)}}; }

TEST(Fusion, MatMulBiasGeluBecomesOneFusedMatMul) {
  ModelBuilder b = MatMulModel();
  b.Output("y", kFloat, {2, 5, 6});
  b.FloatInit("sqrt2", {}, {1.4142135f}).FloatInit("one", {}, {1.f}).FloatInit("half", {}, {.5f});
  b.Node("Div", {"h", "sqrt2"}, {"d"});
  b.Node("Erf", {"d"}, {"e"});
  b.Node("Add", {"e", "one"}, {"p"});
  b.Node("Mul", {"h", "p"}, {"q"});
  b.Node("Mul", {"q", "half"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_matmul_gelu"), MatMulInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "Gelu"), 1);
  EXPECT_EQ(Fired(*m, "MatMulAdd"), 1);
  EXPECT_EQ(Fired(*m, "Activation"), 1);
  const Node* f = OnlyNode(*m, "FusedMatMul");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(OpCounts(*m).size(), 1u);
  EXPECT_EQ(f->attr_string("activation", ""), "Gelu");
}

TEST(Fusion, MatMulBiasQuickGeluResidualFuses) {
  ModelBuilder b = MatMulModel();
  b.Input("z", kFloat, {2, 5, 6}).Output("y", kFloat, {2, 5, 6});
  b.FloatInit("k", {}, {1.702f});
  b.Node("Mul", {"h", "k"}, {"hk"});
  b.Node("Sigmoid", {"hk"}, {"s"});
  b.Node("Mul", {"h", "s"}, {"g"});
  b.Node("Add", {"g", "z"}, {"y"});
  Session::NamedTensors in = MatMulInputs();
  in.push_back({"z", RandomTensor({2, 5, 6}, 4)});
  auto m = LoadAndCompare(b.Write("fuse_matmul_quick_gelu"), in);
  ASSERT_TRUE(m);
  const Node* f = OnlyNode(*m, "FusedMatMul");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(OpCounts(*m).size(), 1u);
  EXPECT_EQ(f->attr_string("activation", ""), "Swish");
  EXPECT_EQ(f->attr_floats("activation_params"), std::vector<float>{1.702f});
  EXPECT_EQ(f->attr_int("sum_after_activation", 0), 1);
}

TEST(Fusion, MatMulWhoseOutputHasTwoReadersKeepsItsAdd) {
  ModelBuilder b = MatMulModel();
  b.Output("h", kFloat, {2, 5, 6}).Output("n", kFloat, {2, 5, 6});
  b.Node("Neg", {"mm"}, {"n"});
  auto m = LoadAndCompare(b.Write("fuse_matmul_two_readers"), MatMulInputs());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "MatMulAdd"), 0);
  EXPECT_EQ(OpCounts(*m), (Ops{{"Add", 1}, {"MatMul", 1}, {"Neg", 1}}));
}

// Attention scores: Q [2,3,5,8] x K^T [2,3,8,5] (both runtime tensors), then
// scaled by a scalar constant, as Mul (either operand order) or Div.
TEST(Fusion, MatMulScaleFoldsAScalarIntoScaledMatMul) {
  struct Case {
    const char* op;
    bool scalar_first;
    float k, alpha;
  };
  for (const Case& c : {Case{"Mul", false, 0.125f, 0.125f}, Case{"Mul", true, 0.5f, 0.5f},
                        Case{"Div", false, 8.f, 0.125f}}) {
    SCOPED_TRACE(std::string(c.op) + (c.scalar_first ? " scalar first" : ""));
    ModelBuilder b(13);
    b.Input("q", kFloat, {2, 3, 5, 8}).Input("kt", kFloat, {2, 3, 8, 5});
    b.Output("y", kFloat, {2, 3, 5, 5});
    b.FloatInit("s", {}, {c.k});
    b.Node("MatMul", {"q", "kt"}, {"mm"});
    if (c.scalar_first) {
      b.Node(c.op, {"s", "mm"}, {"y"});
    } else {
      b.Node(c.op, {"mm", "s"}, {"y"});
    }
    auto m = LoadAndCompare(b.Write("fuse_matmul_scale"), {{"q", RandomTensor({2, 3, 5, 8}, 5)},
                                                           {"kt", RandomTensor({2, 3, 8, 5}, 6)}});
    ASSERT_TRUE(m);
    EXPECT_EQ(Fired(*m, "MatMulScale"), 1);
    const Node* f = OnlyNode(*m, "ScaledMatMul");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(OpCounts(*m).size(), 1u);
    EXPECT_FLOAT_EQ(f->attr_float("alpha", 0.f), c.alpha);
  }
}

TEST(Fusion, MatMulScaleSkipsTensorsAndDivisorsFirst) {
  ModelBuilder b(13);
  b.Input("q", kFloat, {2, 5, 8}).Input("kt", kFloat, {2, 8, 5});
  b.Output("y", kFloat, {2, 5, 5}).Output("z", kFloat, {2, 5, 5});
  RandomInit(b, "row", {5}, 9);
  b.FloatInit("s", {}, {2.f});
  b.Node("MatMul", {"q", "kt"}, {"mm"});
  b.Node("Mul", {"mm", "row"}, {"y"});  // Not one element.
  b.Node("MatMul", {"q", "kt"}, {"mm2"});
  b.Node("Div", {"s", "mm2"}, {"z"});  // s / x is not a scale of x.
  auto m = LoadAndCompare(b.Write("fuse_matmul_scale_not"),
                          {{"q", RandomTensor({2, 5, 8}, 5)}, {"kt", RandomTensor({2, 8, 5}, 6)}});
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "MatMulScale"), 0);
  EXPECT_EQ(OpCounts(*m), (Ops{{"Div", 1}, {"MatMul", 2}, {"Mul", 1}}));
}

TEST(Fusion, NoFusionOnFloat64) {
  ModelBuilder b(13);
  b.Input("x", onnx::TensorProto::DOUBLE, {1, 2, 4, 4});
  b.Output("y", onnx::TensorProto::DOUBLE, {1, 2, 4, 4});
  auto* w = b.proto().mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::DOUBLE);
  for (int64_t d : {2, 2, 1, 1}) w->add_dims(d);
  for (double v : {1.0, -1.0, 0.5, 2.0}) w->add_double_data(v);
  b.Node("Conv", {"x", "w"}, {"c"});
  b.Node("Relu", {"c"}, {"y"});
  Result<Model> m = Model::Load(b.Write("fuse_conv_f64"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->fusions().empty());
  EXPECT_EQ(OpCounts(*m), (Ops{{"Conv", 1}, {"Relu", 1}}));
}

}  // namespace
}  // namespace parallax
