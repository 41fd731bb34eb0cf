// The channels-last layout pass (plan/layout.h): graph rewrites on tiny
// hand-built models, and outputs equal to the unconverted graph (tiny models
// and real ones) on 1 and 3 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "model_builder.h"
#include "parallax/parallax.h"
#include "runtime/model_data.h"

namespace parallax {
namespace {

constexpr int kFloat = onnx::TensorProto::FLOAT;

void SetInts(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

void SetInt(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

std::vector<float> Random(int64_t n, uint32_t seed, float lo = -0.5f, float hi = 0.5f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

// Adds a 3x3 (pads 1) conv `in` -> `out` with weight [oc, ic, 3, 3] and bias.
void Conv3x3(testing::ModelBuilder& b, const std::string& in, const std::string& out, int64_t ic,
             int64_t oc, uint32_t seed) {
  b.FloatInit(out + "_w", {oc, ic, 3, 3}, Random(oc * ic * 9, seed));
  b.FloatInit(out + "_b", {oc}, Random(oc, seed + 1));
  auto* n = b.Node("Conv", {in, out + "_w", out + "_b"}, {out});
  SetInts(n, "pads", {1, 1, 1, 1});
  SetInts(n, "kernel_shape", {3, 3});
}

// Fusions are off unless asked for, so the layout pass is tested alone.
Model Load(const std::string& path, bool layout, bool fusion = false) {
  LoadOptions o;
  o.layout = layout;
  o.fusion = fusion;
  Result<Model> m = Model::Load(path, o);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(*m);
}

// "domain::op name" per node, in order.
std::vector<std::string> Ops(const Model& m) {
  std::vector<std::string> ops;
  for (const Node& n : m.data().graph->nodes)
    ops.push_back((n.domain.empty() ? "" : n.domain + "::") + n.op_type + " " + n.name);
  return ops;
}

const Node* FindNode(const Model& m, const std::string& name) {
  for (const Node& n : m.data().graph->nodes)
    if (n.name == name) return &n;
  return nullptr;
}

// Runs the model with and without the pass on the same random inputs (1 and
// 3 threads) and expects equal outputs within `tol` relative to each output's
// largest magnitude. Inputs are uniform in [lo, hi].
void ExpectSameOutputs(const std::string& path, const std::vector<Shape>& shapes, double tol = 1e-5,
                       float lo = -0.5f, float hi = 0.5f) {
  // Channels-last (alone, then after fusions) against plain NCHW.
  for (bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused + layout" : "layout");
    Model with = Load(path, true, fused), without = Load(path, false);
    Session::NamedTensors inputs;
    for (size_t i = 0; i < with.inputs().size(); ++i) {
      std::vector<float> v = Random(NumElements(shapes[i]), 7 + static_cast<uint32_t>(i), lo, hi);
      inputs.emplace_back(with.inputs()[i].name,
                          Tensor::Copy(Tensor::FromVector(DType::kFloat32, shapes[i], v)));
    }
    for (int threads : {1, 3}) {
      SessionOptions o;
      o.threads = threads;
      Result<Session> a = Session::Create(with, o), b = Session::Create(without, o);
      ASSERT_TRUE(a.ok() && b.ok());
      for (int run = 0; run < 2; ++run) {  // Second run uses the memory plan.
        Result<std::vector<Tensor>> ya = a->Run(inputs), yb = b->Run(inputs);
        ASSERT_TRUE(ya.ok()) << ya.status().ToString();
        ASSERT_TRUE(yb.ok()) << yb.status().ToString();
        ASSERT_EQ(ya->size(), yb->size());
        for (size_t k = 0; k < ya->size(); ++k) {
          const Tensor &ga = (*ya)[k], &gb = (*yb)[k];
          ASSERT_EQ(ga.shape(), gb.shape()) << path << " output " << k;
          if (ga.dtype() != DType::kFloat32) continue;
          double scale = 0, worst = 0;
          for (int64_t e = 0; e < gb.numel(); ++e)
            scale = std::max(scale, std::fabs(static_cast<double>(gb.data<float>()[e])));
          for (int64_t e = 0; e < gb.numel(); ++e)
            worst = std::max(
                worst, std::fabs(static_cast<double>(ga.data<float>()[e]) - gb.data<float>()[e]));
          EXPECT_LE(worst, tol * std::max(scale, 1e-3))
              << path << " output " << k << " on " << threads << " threads";
        }
      }
    }
  }
}

TEST(Layout, ConvReluConvBecomesChannelsLast) {
  testing::ModelBuilder b(13);
  b.Input("x", kFloat, {1, 3, 8, 8}).Output("y", kFloat, {1, 4, 8, 8});
  Conv3x3(b, "x", "c1", 3, 4, 1);
  b.Node("Relu", {"c1"}, {"r1"});
  Conv3x3(b, "r1", "y", 4, 4, 3);
  std::string path = b.Write("layout_crc");
  Model m = Load(path, true);
  std::vector<std::string> want = {"Transpose reorder_to_nhwc/x", "com.parallax::Conv Conv_1",
                                   "Relu Relu_2", "com.parallax::Conv Conv_3",
                                   "Transpose reorder_to_nchw/y"};
  EXPECT_EQ(Ops(m), want);
  EXPECT_EQ(m.data().layout.regions, 1);
  EXPECT_EQ(m.data().layout.nodes, 3);
  EXPECT_EQ(m.data().layout.reorders, 2);
  EXPECT_EQ(FindNode(m, "Conv_1")->attr_int("channels_last", 0), 1);
  const Graph& g = *m.data().graph;
  const Value& r1 = g.values[static_cast<size_t>(g.FindValue("r1"))];
  EXPECT_EQ(DimsToString(r1.dims), DimsToString({{1, ""}, {8, ""}, {8, ""}, {4, ""}}));
  EXPECT_EQ(Ops(Load(path, false)).size(), 3u);
  ExpectSameOutputs(path, {{1, 3, 8, 8}});
}

TEST(Layout, SingleConvRegionIsLeftAlone) {
  testing::ModelBuilder b(13);
  b.Input("x", kFloat, {1, 3, 8, 8}).Output("y", kFloat, {1, 4, 8, 8});
  Conv3x3(b, "x", "c1", 3, 4, 1);
  b.Node("Relu", {"c1"}, {"y"});
  Model m = Load(b.Write("layout_single"), true);
  std::vector<std::string> want = {"Conv Conv_1", "Relu Relu_2"};
  EXPECT_EQ(Ops(m), want);
  EXPECT_EQ(m.data().layout.regions, 0);
}

TEST(Layout, ValueUsedOutsideGetsReorderBack) {
  testing::ModelBuilder b(13);
  b.Input("x", kFloat, {1, 3, 8, 8})
      .Output("y", kFloat, {1, 4, 8, 8})
      .Output("f", kFloat, {1, 256})
      .Output("a", kFloat, {1, 4, 8, 8});
  Conv3x3(b, "x", "a", 3, 4, 1);
  Conv3x3(b, "a", "y", 4, 4, 3);
  b.Node("Flatten", {"a"}, {"f"});
  std::string path = b.Write("layout_outside");
  Model m = Load(path, true);
  const Node* back = FindNode(m, "reorder_to_nchw/a");
  ASSERT_NE(back, nullptr);
  const Graph& g = *m.data().graph;
  EXPECT_EQ(g.values[static_cast<size_t>(back->outputs[0])].name, "a");
  EXPECT_EQ(m.data().layout.reorders, 3);  // x in; a and y out.
  EXPECT_EQ(m.outputs()[2].name, "a");
  ExpectSameOutputs(path, {{1, 3, 8, 8}});
}

TEST(Layout, PerChannelConstantIsRewritten) {
  testing::ModelBuilder b(13);
  b.Input("x", kFloat, {1, 3, 8, 8}).Output("y", kFloat, {1, 4, 8, 8});
  Conv3x3(b, "x", "c1", 3, 4, 1);
  b.FloatInit("scale", {1, 4, 1, 1}, {1.f, 2.f, 3.f, 4.f}).FloatInit("half", {}, {0.5f});
  b.Node("Mul", {"c1", "scale"}, {"m"});
  b.Node("Add", {"half", "m"}, {"s"});
  Conv3x3(b, "s", "y", 4, 4, 3);
  std::string path = b.Write("layout_perchannel");
  Model m = Load(path, true);
  const Graph& g = *m.data().graph;
  const Node* mul = FindNode(m, "Mul_2");
  ASSERT_NE(mul, nullptr);
  const Value& c = g.values[static_cast<size_t>(mul->inputs[1])];
  ASSERT_TRUE(c.is_constant());
  EXPECT_EQ(c.constant.shape(), Shape({1, 1, 1, 4}));
  EXPECT_EQ(c.constant.data<float>()[3], 4.f);
  EXPECT_EQ(m.data().layout.nodes, 4);
  ExpectSameOutputs(path, {{1, 3, 8, 8}});
}

// A squeeze-excite block: GlobalAveragePool becomes ReduceMean over H, W
// inside the region, and the broadcast Mul stays channels-last.
TEST(Layout, SqueezeExciteStaysInRegion) {
  testing::ModelBuilder b(13);
  b.Input("x", kFloat, {1, 8, 12, 12}).Output("y", kFloat, {1, 8, 12, 12});
  Conv3x3(b, "x", "c1", 8, 8, 1);
  b.Node("GlobalAveragePool", {"c1"}, {"gap"});
  b.FloatInit("se_w", {8, 8, 1, 1}, Random(64, 9));
  b.Node("Conv", {"gap", "se_w"}, {"se"});
  b.Node("HardSigmoid", {"se"}, {"gate"});
  b.Node("Mul", {"c1", "gate"}, {"scaled"});
  Conv3x3(b, "scaled", "y", 8, 8, 3);
  std::string path = b.Write("layout_se");
  Model m = Load(path, true);
  EXPECT_EQ(m.data().layout.nodes, 6);
  EXPECT_EQ(m.data().layout.reorders, 2);
  EXPECT_EQ(FindNode(m, "GlobalAveragePool_2")->op_type, "ReduceMean");
  ExpectSameOutputs(path, {{1, 8, 12, 12}});
}

// Stride-2 and pointwise convs split into NHWC row bands on 3 threads (the YOLO stem).
TEST(Layout, StridedConvsMatchNchw) {
  testing::ModelBuilder b(13);
  b.Input("x", kFloat, {1, 3, 320, 320}).Output("y", kFloat, {1, 32, 80, 80});
  Conv3x3(b, "x", "c1", 3, 16, 1);
  SetInts(b.proto().mutable_graph()->mutable_node(0), "strides", {2, 2});
  Conv3x3(b, "c1", "c2", 16, 32, 3);
  SetInts(b.proto().mutable_graph()->mutable_node(1), "strides", {2, 2});
  b.FloatInit("pw", {32, 32, 1, 1}, Random(32 * 32, 5));
  b.Node("Conv", {"c2", "pw"}, {"y"});  // Pointwise: NHWC row bands too.
  std::string path = b.Write("layout_strided");
  EXPECT_EQ(Load(path, true).data().layout.nodes, 3);
  ExpectSameOutputs(path, {{1, 3, 320, 320}});
}

// A YOLO-like block over every convertible kind, big enough for conv row-band
// tiling on 3 threads.
TEST(Layout, MixedBlockMatchesNchw) {
  testing::ModelBuilder b(13);
  b.Input("x", kFloat, {1, 16, 40, 40}).Output("y", kFloat, {1, 32, 80, 80});
  Conv3x3(b, "x", "c1", 16, 32, 1);
  b.Node("Sigmoid", {"c1"}, {"s1"});
  b.Node("Mul", {"c1", "s1"}, {"a1"});
  auto* split_sizes = b.proto().mutable_graph()->add_initializer();
  split_sizes->set_name("sizes");
  split_sizes->set_data_type(onnx::TensorProto::INT64);
  split_sizes->add_dims(2);
  split_sizes->add_int64_data(16);
  split_sizes->add_int64_data(16);
  SetInt(b.Node("Split", {"a1", "sizes"}, {"p0", "p1"}), "axis", 1);
  Conv3x3(b, "p1", "c2", 16, 16, 3);
  SetInt(b.Node("Concat", {"p0", "c2", "p1"}, {"cat"}), "axis", 1);
  auto* pool = b.Node("MaxPool", {"cat"}, {"mp"});
  SetInts(pool, "kernel_shape", {3, 3});
  SetInts(pool, "pads", {1, 1, 1, 1});
  b.FloatInit("scales", {4}, {1.f, 1.f, 2.f, 2.f});
  b.Node("Resize", {"mp", "", "scales"}, {"up"})->add_attribute()->CopyFrom([] {
    onnx::AttributeProto a;
    a.set_name("mode");
    a.set_type(onnx::AttributeProto::STRING);
    a.set_s("nearest");
    return a;
  }());
  Conv3x3(b, "up", "c3", 48, 32, 5);
  b.Node("Relu", {"c3"}, {"y"});
  std::string path = b.Write("layout_mixed");
  Model m = Load(path, true);
  EXPECT_EQ(m.data().layout.regions, 1);
  EXPECT_EQ(m.data().layout.nodes, 10);
  EXPECT_EQ(m.data().layout.reorders, 2);
  ExpectSameOutputs(path, {{1, 16, 40, 40}});
}

// Real models: the pass must not change outputs (1e-5 relative to each
// output's largest magnitude).
std::string CacheDir() {
  const char* env = std::getenv("PARALLAX_CACHE");
  return env ? env : std::string(PARALLAX_SOURCE_DIR) + "/.cache";
}

void RealModel(const std::string& rel, const std::vector<Shape>& shapes, bool expect_converted) {
  std::string path = CacheDir() + "/" + rel;
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing";
  Model m = Load(path, true);
  const LayoutStats& s = m.data().layout;
  std::printf("%s: %lld region(s), %lld nodes, %lld reorders\n", rel.c_str(),
              static_cast<long long>(s.regions), static_cast<long long>(s.nodes),
              static_cast<long long>(s.reorders));
  EXPECT_EQ(s.regions > 0, expect_converted) << rel;
  ExpectSameOutputs(path, shapes, 1e-5, 0.f, 1.f);  // Image-like inputs.
}

TEST(LayoutRealModels, Yolov8n) { RealModel("zoo/yolov8n.onnx", {{1, 3, 640, 640}}, true); }
TEST(LayoutRealModels, PpocrV4Det) {
  RealModel("models/ppocr_v4_det.onnx", {{1, 3, 640, 640}}, true);
}
TEST(LayoutRealModels, PpocrMobileV2Cls) {
  RealModel("models/ppocr_mobile_v2_cls.onnx", {{1, 3, 48, 192}}, true);
}
TEST(LayoutRealModels, WhisperTinyEncoderIsUntouched) {
  RealModel("zoo/whisper_tiny_encoder.onnx", {{1, 80, 3000}}, false);
}

}  // namespace
}  // namespace parallax
