// Pattern fusions into standard ops (Gelu, LayerNormalization, Softmax) on
// tiny hand-built models, including subgraph bodies: the pass fires on each
// exporter form, not when an intermediate has another reader, and the result
// matches the unfused model within 1e-5.
#include <gtest/gtest.h>

#include "fusion_test_util.h"

namespace parallax {
namespace {

using testing::AttrI;
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

Session::NamedTensors XInput(Shape s = {2, 3, 16}) { return {{"x", RandomTensor(s, 5, -3, 3)}}; }

// The three exporter forms of x * 0.5 * (1 + erf(x / sqrt(2))).
TEST(FusionPatterns, GeluFormsBecomeOneGelu) {
  for (int form = 0; form < 3; ++form) {
    SCOPED_TRACE(form);
    ModelBuilder b(13);
    b.Input("x", kFloat, {2, 3, 16}).Output("y", kFloat, {2, 3, 16});
    b.FloatInit("sqrt2", {}, {1.4142135f}).FloatInit("rsqrt2", {1}, {0.70710677f});
    b.FloatInit("one", {}, {1.f}).FloatInit("half", {}, {.5f});
    if (form == 0) {
      b.Node("Div", {"x", "sqrt2"}, {"d"});
    } else {
      b.Node("Mul", {"rsqrt2", "x"}, {"d"});
    }
    b.Node("Erf", {"d"}, {"e"});
    b.Node("Add", {"one", "e"}, {"p"});
    if (form == 0) {  // (x * (1 + erf)) * 0.5
      b.Node("Mul", {"x", "p"}, {"q"});
      b.Node("Mul", {"q", "half"}, {"y"});
    } else if (form == 1) {  // x * ((1 + erf) * 0.5)
      b.Node("Mul", {"p", "half"}, {"q"});
      b.Node("Mul", {"x", "q"}, {"y"});
    } else {  // (x * 0.5) * (1 + erf)
      b.Node("Mul", {"x", "half"}, {"h"});
      b.Node("Mul", {"h", "p"}, {"y"});
    }
    auto m = LoadAndCompare(b.Write("fuse_gelu_" + std::to_string(form)), XInput());
    ASSERT_TRUE(m);
    EXPECT_EQ(Fired(*m, "Gelu"), 1);
    EXPECT_EQ(OpCounts(*m), (Ops{{"Gelu", 1}}));
  }
}

TEST(FusionPatterns, GeluWithAnErfReadElsewhereStaysApart) {
  ModelBuilder b(13);
  b.Input("x", kFloat, {2, 3, 16}).Output("y", kFloat, {2, 3, 16}).Output("e", kFloat, {2, 3, 16});
  b.FloatInit("sqrt2", {}, {1.4142135f}).FloatInit("one", {}, {1.f}).FloatInit("half", {}, {.5f});
  b.Node("Div", {"x", "sqrt2"}, {"d"});
  b.Node("Erf", {"d"}, {"e"});
  b.Node("Add", {"e", "one"}, {"p"});
  b.Node("Mul", {"x", "p"}, {"q"});
  b.Node("Mul", {"q", "half"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_gelu_shared"), XInput());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "Gelu"), 0);
  EXPECT_EQ(OpCounts(*m).count("Erf"), 1u);
}

// ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div, Mul gamma, Add beta
// over `axes` of x [2,3,16]; `d_output` also exposes the centred x.
ModelBuilder LayerNormModel(std::vector<int64_t> axes, bool d_output = false) {
  ModelBuilder b(13);
  b.Input("x", kFloat, {2, 3, 16}).Output("y", kFloat, {2, 3, 16});
  if (d_output) b.Output("d", kFloat, {2, 3, 16});
  b.FloatInit("two", {}, {2.f}).FloatInit("eps", {}, {1e-5f});
  RandomInit(b, "gamma", {16}, 1);
  RandomInit(b, "beta", {16}, 2);
  AttrInts(b.Node("ReduceMean", {"x"}, {"mean"}), "axes", axes);
  b.Node("Sub", {"x", "mean"}, {"d"});
  b.Node("Pow", {"d", "two"}, {"sq"});
  AttrInts(b.Node("ReduceMean", {"sq"}, {"var"}), "axes", axes);
  b.Node("Add", {"var", "eps"}, {"ve"});
  b.Node("Sqrt", {"ve"}, {"std"});
  b.Node("Div", {"d", "std"}, {"n"});
  b.Node("Mul", {"n", "gamma"}, {"g"});
  b.Node("Add", {"g", "beta"}, {"y"});
  return b;
}

TEST(FusionPatterns, DecomposedLayerNormBecomesLayerNormalization) {
  auto m = LoadAndCompare(LayerNormModel({-1}).Write("fuse_layernorm"), XInput());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "LayerNorm"), 1);
  const Node* ln = OnlyNode(*m, "LayerNormalization");
  ASSERT_NE(ln, nullptr);
  EXPECT_EQ(OpCounts(*m).size(), 1u);
  EXPECT_EQ(ln->attr_int("axis", 0), 2);
  EXPECT_FLOAT_EQ(ln->attr_float("epsilon", 0), 1e-5f);
  EXPECT_EQ(ln->inputs.size(), 3u);
}

TEST(FusionPatterns, LayerNormOverANonTrailingAxisStaysApart) {
  auto m = LoadAndCompare(LayerNormModel({1}).Write("fuse_layernorm_axis1"), XInput());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "LayerNorm"), 0);
  EXPECT_EQ(OpCounts(*m).count("LayerNormalization"), 0u);
}

TEST(FusionPatterns, LayerNormWithTheCentredInputReadElsewhereStaysApart) {
  auto m = LoadAndCompare(LayerNormModel({-1}, true).Write("fuse_layernorm_shared"), XInput());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "LayerNorm"), 0);
}

// Softmax split by the exporter: [ReduceMax, Sub,] Exp, ReduceSum, Div.
TEST(FusionPatterns, SplitSoftmaxBecomesSoftmax) {
  for (bool with_max : {true, false}) {
    SCOPED_TRACE(with_max);
    ModelBuilder b(11);  // ReduceSum takes axes as an attribute.
    b.Input("x", kFloat, {2, 3, 16}).Output("y", kFloat, {2, 3, 16});
    std::string in = "x";
    if (with_max) {
      AttrInts(b.Node("ReduceMax", {"x"}, {"mx"}), "axes", {1});
      b.Node("Sub", {"x", "mx"}, {"t"});
      in = "t";
    }
    b.Node("Exp", {in}, {"e"});
    AttrInts(b.Node("ReduceSum", {"e"}, {"s"}), "axes", {1});
    b.Node("Div", {"e", "s"}, {"y"});
    auto m = LoadAndCompare(b.Write(std::string("fuse_softmax_") + (with_max ? "max" : "plain")),
                            XInput());
    ASSERT_TRUE(m);
    EXPECT_EQ(Fired(*m, "Softmax"), 1);
    const Node* sm = OnlyNode(*m, "Softmax");
    ASSERT_NE(sm, nullptr);
    EXPECT_EQ(OpCounts(*m).size(), 1u);
    EXPECT_EQ(sm->attr_int("axis", 0), 1);
    EXPECT_EQ(m->data().graph->values[static_cast<size_t>(sm->inputs[0])].name, "x");
  }
}

TEST(FusionPatterns, SoftmaxWithTheSumReadElsewhereStaysApart) {
  ModelBuilder b(11);
  b.Input("x", kFloat, {2, 3, 16}).Output("y", kFloat, {2, 3, 16}).Output("s", kFloat, {2, 1, 16});
  b.Node("Exp", {"x"}, {"e"});
  AttrInts(b.Node("ReduceSum", {"e"}, {"s"}), "axes", {1});
  b.Node("Div", {"e", "s"}, {"y"});
  auto m = LoadAndCompare(b.Write("fuse_softmax_shared"), XInput());
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "Softmax"), 0);
}

TEST(FusionPatterns, FusesInsideIfBranches) {
  ModelBuilder b(13);
  b.Input("cond", onnx::TensorProto::BOOL, {}).Input("x", kFloat, {2, 3, 16});
  b.Output("y", kFloat, {2, 3, 16});
  auto* node = b.Node("If", {"cond"}, {"y"});
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto* attr = node->add_attribute();
    attr->set_name(branch);
    attr->set_type(onnx::AttributeProto::GRAPH);
    auto* g = attr->mutable_g();
    g->set_name(branch);
    auto add = [&](const char* op, std::vector<std::string> ins, const char* out) {
      auto* n = g->add_node();
      n->set_op_type(op);
      for (auto& i : ins) n->add_input(i);
      n->add_output(out);
    };
    auto scalar = [&](const char* name, float v) {
      auto* t = g->add_initializer();
      t->set_name(name);
      t->set_data_type(onnx::TensorProto::FLOAT);
      t->add_float_data(v);
    };
    scalar("sqrt2", 1.4142135f);
    scalar("one", 1.f);
    scalar("half", std::string(branch) == "then_branch" ? .5f : .25f);
    add("Div", {"x", "sqrt2"}, "d");  // x is captured from the main graph.
    add("Erf", {"d"}, "e");
    add("Add", {"e", "one"}, "p");
    add("Mul", {"x", "p"}, "q");
    add("Mul", {"q", "half"}, "out");
    auto* o = g->add_output();
    o->set_name("out");
    o->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  std::string path = b.Write("fuse_gelu_in_if");
  for (bool c : {true, false}) {
    Session::NamedTensors in = XInput();
    in.push_back({"cond", Tensor::FromVector<bool>(DType::kBool, {}, {c})});
    auto m = LoadAndCompare(path, in);
    ASSERT_TRUE(m);
    EXPECT_EQ(Fired(*m, "Gelu"), 1);  // Only the then branch has the 0.5 form.
    const Node& n = m->data().graph->nodes.at(0);
    EXPECT_EQ(n.attr("then_branch")->g->nodes.size(), 1u);
    EXPECT_EQ(n.attr("else_branch")->g->nodes.size(), 5u);
  }
}

// Attention over token-major projections [B, T, H, D], as exporters write it:
// Q -> Transpose -> Mul(scale), K -> Transpose(0,2,3,1), V -> Transpose.
// `t` tokens; with t = 64 the products are large enough to tile.
ModelBuilder AttentionModel(int64_t t) {
  ModelBuilder b(13);
  b.Input("q", kFloat, {2, t, 4, 16}).Input("k", kFloat, {2, t, 4, 16});
  b.Input("v", kFloat, {2, t, 4, 16}).Output("y", kFloat, {2, 4, t, 16});
  b.FloatInit("s", {}, {0.25f});
  AttrInts(b.Node("Transpose", {"q"}, {"qt"}), "perm", {0, 2, 1, 3});
  b.Node("Mul", {"qt", "s"}, {"qs"});
  AttrInts(b.Node("Transpose", {"k"}, {"kt"}), "perm", {0, 2, 3, 1});
  b.Node("MatMul", {"qs", "kt"}, {"scores"});
  b.Node("Softmax", {"scores"}, {"p"});
  AttrInts(b.Node("Transpose", {"v"}, {"vt"}), "perm", {0, 2, 1, 3});
  b.Node("MatMul", {"p", "vt"}, {"y"});
  return b;
}

Session::NamedTensors AttentionInputs(int64_t t) {
  return {{"q", RandomTensor({2, t, 4, 16}, 1)},
          {"k", RandomTensor({2, t, 4, 16}, 2)},
          {"v", RandomTensor({2, t, 4, 16}, 3)}};
}

TEST(FusionPatterns, MatMulReadsTransposedOperandsInPlace) {
  for (int64_t t : {5, 64}) {
    SCOPED_TRACE(t);
    const std::string path = AttentionModel(t).Write("fuse_matmul_transpose_" + std::to_string(t));
    auto m = LoadAndCompare(path, AttentionInputs(t));
    ASSERT_TRUE(m);
    EXPECT_EQ(Fired(*m, "MatMulTranspose"), 2);
    EXPECT_EQ(OpCounts(*m), (Ops{{"Softmax", 1}, {"com.parallax::ScaledMatMul", 2}}));
    for (const Node& n : m->data().graph->nodes) {
      if (n.op_type != "ScaledMatMul") continue;
      if (n.attr_ints("perm_a").empty()) {  // P x V^T.
        EXPECT_EQ(n.attr_ints("perm_b"), (std::vector<int64_t>{0, 2, 1, 3}));
        EXPECT_FLOAT_EQ(n.attr_float("alpha", 0.f), 1.f);
      } else {  // Q K^T with the scale folded in.
        EXPECT_EQ(n.attr_ints("perm_a"), (std::vector<int64_t>{0, 2, 1, 3}));
        EXPECT_EQ(n.attr_ints("perm_b"), (std::vector<int64_t>{0, 2, 3, 1}));
        EXPECT_FLOAT_EQ(n.attr_float("alpha", 0.f), 0.25f);
      }
    }
    // Tiled over the batch on several threads: the same as one thread.
    for (int threads : {2, 3}) {
      SessionOptions o;
      o.threads = threads;
      Result<Session> s = Session::Create(*m, o);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      Result<std::vector<Tensor>> got = s->Run(AttentionInputs(t));
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      const std::vector<Tensor> want = testing::RunModel(*m, AttentionInputs(t));
      ASSERT_EQ(want.size(), 1u);
      for (int64_t i = 0; i < want[0].numel(); ++i)
        ASSERT_NEAR((*got)[0].data<float>()[i], want[0].data<float>()[i], 1e-5f) << i;
    }
  }
}

// A transposed operand whose batch dims broadcast against the other's (a
// shared [D, T] key for every head) runs on a transposed copy; a Transpose
// with a second reader stays.
TEST(FusionPatterns, MatMulTransposeBroadcastAndSharedTransposes) {
  ModelBuilder b(13);
  b.Input("q", kFloat, {2, 3, 5, 8}).Input("k", kFloat, {5, 8});
  b.Output("y", kFloat, {2, 3, 5, 5}).Output("z", kFloat, {2, 3, 8, 5}).Output("w", kFloat, {8, 5});
  AttrInts(b.Node("Transpose", {"k"}, {"kt"}), "perm", {1, 0});
  b.Node("MatMul", {"q", "kt"}, {"y"});
  AttrInts(b.Node("Transpose", {"q"}, {"qt"}), "perm", {0, 1, 3, 2});
  b.Node("MatMul", {"qt", "q"}, {"qq"});
  b.Node("Neg", {"qt"}, {"nq"});  // qt has a second reader: not fused.
  b.Node("MatMul", {"nq", "q"}, {"z2"});
  b.Node("Add", {"qq", "z2"}, {"z3"});
  AttrInts(b.Node("Transpose", {"z3"}, {"z4"}), "perm", {0, 1, 2, 3});
  b.Node("Identity", {"z4"}, {"z"});
  b.Node("Identity", {"kt"}, {"w0"});
  b.Node("Neg", {"w0"}, {"w"});
  auto m = LoadAndCompare(b.Write("fuse_matmul_transpose_broadcast"),
                          {{"q", RandomTensor({2, 3, 5, 8}, 1)}, {"k", RandomTensor({5, 8}, 2)}});
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "MatMulTranspose"), 0);  // kt and qt both have other readers.
  ModelBuilder c(13);
  c.Input("q", kFloat, {2, 3, 5, 8}).Input("k", kFloat, {5, 8});
  c.Output("y", kFloat, {2, 3, 5, 5});
  AttrInts(c.Node("Transpose", {"k"}, {"kt"}), "perm", {1, 0});
  c.Node("MatMul", {"q", "kt"}, {"y"});
  m = LoadAndCompare(c.Write("fuse_matmul_transpose_broadcast2"),
                     {{"q", RandomTensor({2, 3, 5, 8}, 1)}, {"k", RandomTensor({5, 8}, 2)}});
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "MatMulTranspose"), 1);
  EXPECT_EQ(OpCounts(*m), (Ops{{"com.parallax::ScaledMatMul", 1}}));
}

// An int64 initializer.
void IntInit(ModelBuilder& b, const std::string& name, std::vector<int64_t> dims,
             const std::vector<int64_t>& values) {
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  for (int64_t d : dims) t->add_dims(d);
  for (int64_t v : values) t->add_int64_data(v);
}

// timm / open_clip attention on x [2, 5, 16]: qkv = x W + b, reshaped by
// the int64 value `target` to [..., 3, H, D], permuted (2, 0, 3, 1, 4),
// unbound into Q, K, V; K^T by a second Transpose; y = Softmax(s Q K^T) V.
void PackedAttention(ModelBuilder& b, const std::string& target) {
  RandomInit(b, "w", {16, 48}, 1);
  RandomInit(b, "bias", {48}, 2);
  b.FloatInit("s", {}, {0.35f});
  IntInit(b, "ax0", {1}, {0});
  IntInit(b, "ones", {3}, {1, 1, 1});
  b.Node("MatMul", {"x", "w"}, {"mm"});
  b.Node("Add", {"bias", "mm"}, {"qkv"});
  b.Node("Reshape", {"qkv", target}, {"qkv5"});
  AttrInts(b.Node("Transpose", {"qkv5"}, {"qkvt"}), "perm", {2, 0, 3, 1, 4});
  b.Node("Split", {"qkvt", "ones"}, {"s0", "s1", "s2"});
  b.Node("Squeeze", {"s0", "ax0"}, {"q"});
  b.Node("Squeeze", {"s1", "ax0"}, {"k"});
  b.Node("Squeeze", {"s2", "ax0"}, {"v"});
  AttrInts(b.Node("Transpose", {"k"}, {"kt"}), "perm", {0, 1, 3, 2});
  b.Node("MatMul", {"q", "kt"}, {"scores"});
  b.Node("Mul", {"scores", "s"}, {"scaled"});
  b.Node("Softmax", {"scaled"}, {"p"});
  b.Node("MatMul", {"p", "v"}, {"y"});
}

// The batch and token dims of the reshape taken from Shape(x), as exporters
// write it.
TEST(FusionPatterns, PackedQkvProjectionUnpacksIntoThree) {
  ModelBuilder b(13);
  b.Input("x", kFloat, {2, 5, 16}).Output("y", kFloat, {2, 2, 5, 8});
  IntInit(b, "i0", {}, {0});
  IntInit(b, "i1", {}, {1});
  IntInit(b, "three", {1}, {3});
  IntInit(b, "heads", {1}, {2});
  IntInit(b, "dim", {1}, {8});
  b.Node("Shape", {"x"}, {"shape"});
  b.Node("Gather", {"shape", "i0"}, {"bsz"});
  b.Node("Gather", {"shape", "i1"}, {"tok"});
  b.Node("Unsqueeze", {"bsz", "ax0"}, {"bsz1"});
  b.Node("Unsqueeze", {"tok", "ax0"}, {"tok1"});
  AttrI(b.Node("Concat", {"bsz1", "tok1", "three", "heads", "dim"}, {"target"}), "axis", 0);
  PackedAttention(b, "target");
  auto m = LoadAndCompare(b.Write("fuse_qkv_unpack"), {{"x", RandomTensor({2, 5, 16}, 3)}});
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "QkvUnpack"), 1);
  // No packed tensor, no transposed copies: Q, K^T and V are read in place.
  EXPECT_EQ(OpCounts(*m), (Ops{{"Reshape", 3},
                               {"Softmax", 1},
                               {"com.parallax::FusedMatMul", 3},
                               {"com.parallax::ScaledMatMul", 2}}));
}

// A packed projection reshaped to leading dims other than its input's
// ([2,5,48] -> [10,1,3,2,8]) stays packed: the unpacked reshapes would keep
// the input's.
TEST(FusionPatterns, PackedQkvWithOtherLeadingDimsStaysPacked) {
  ModelBuilder b(13);
  b.Input("x", kFloat, {2, 5, 16}).Output("y", kFloat, {10, 2, 1, 8});
  IntInit(b, "target", {5}, {10, 1, 3, 2, 8});
  PackedAttention(b, "target");
  auto m = LoadAndCompare(b.Write("fuse_qkv_other_dims"), {{"x", RandomTensor({2, 5, 16}, 3)}});
  ASSERT_TRUE(m);
  EXPECT_EQ(Fired(*m, "QkvUnpack"), 0);
}

}  // namespace
}  // namespace parallax
