// Memory splitting (plan/memory_split.h): the peak estimate and the region
// rewrite on tiny hand-built graphs, and sessions whose budget is below the
// leanest plan running a split copy within it.
#include "plan/memory_split.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model_builder.h"
#include "parallax/parallax.h"
#include "plan/fusion_util.h"
#include "shaped_graph.h"
#include "split_run_util.h"

namespace parallax {
namespace {

using fusion::IntAttr;
using fusion::IntsAttr;
using testing::ExpectSplitRuns;
using testing::FreeRun;
using testing::Random;
using testing::ShapedGraph;

// q [1,H,S,D] x kt [1,H,D,S] -> scores -> Softmax -> x v [1,H,S,D] -> o.
struct Attention {
  ShapedGraph sg;
  ValueId q, kt, v, scores, probs, o;
  Attention(int64_t heads, int64_t seq, int64_t d) {
    q = sg.Value("q", {1, heads, seq, d});
    kt = sg.Value("kt", {1, heads, d, seq});
    v = sg.Value("v", {1, heads, seq, d});
    scores = sg.Value("scores", {1, heads, seq, seq});
    probs = sg.Value("probs", {1, heads, seq, seq});
    o = sg.Value("o", {1, heads, seq, d});
    sg.Add("MatMul", {q, kt}, {scores});
    sg.Add("Softmax", {scores}, {probs}).attrs["axis"] = IntAttr(-1);
    sg.Add("MatMul", {probs, v}, {o});
    Graph& g = sg.graph();
    g.inputs = {q, kt, v};
    g.outputs = {o};
  }
};

TEST(MemorySplit, EstimateCountsActivationsFromProducerToLastReader) {
  Attention a(4, 8, 2);
  // Scores and probs live together at the Softmax (no in-place writes):
  // 2 * 4*8*8*4 bytes; the output is not yet written.
  const PeakEstimate pe = EstimateSequentialPeak(a.sg.graph(), a.sg.shapes());
  EXPECT_EQ(pe.bytes, 2u * 4 * 8 * 8 * 4);
  EXPECT_EQ(pe.live_at_peak, (std::vector<ValueId>{a.scores, a.probs}));
  // Softmax may write over its input: then probs shares the scores' bytes.
  auto softmax_in_place = [](const Node& n) {
    return n.op_type == "Softmax" ? std::vector<int>{0} : std::vector<int>{};
  };
  EXPECT_EQ(EstimateSequentialPeak(a.sg.graph(), a.sg.shapes(), softmax_in_place).bytes,
            4u * 8 * 8 * 4 + 4u * 8 * 2 * 4);  // Scores, then probs' bytes + the output.
}

TEST(MemorySplit, AttentionRunsHeadByHead) {
  Attention a(4, 64, 2);  // Scores much larger than q, kt, v (which Splits copy).
  const size_t unsplit = EstimateSequentialPeak(a.sg.graph(), a.sg.shapes()).bytes;
  auto split = SplitForMemory(a.sg.graph(), a.sg.shapes(), unsplit / 3);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  const Graph& g = split->graph;
  EXPECT_EQ(split->regions, 1);
  EXPECT_EQ(split->max_pieces, 4);  // 2 pieces are not enough: 2/3 of the peak.
  EXPECT_LE(split->estimated_peak_bytes, unsplit / 3);
  EXPECT_EQ(split->estimated_peak_bytes, EstimateSequentialPeak(g, split->shapes).bytes);
  // Split q, kt, v by head; 4 pieces of MatMul, Softmax, MatMul; one Concat.
  int splits = 0, concats = 0, copies = 0;
  ASSERT_EQ(split->origin.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type == "Split") {
      ++splits;
      EXPECT_EQ(n.attr_int("axis", -1), 1) << n.name;
      EXPECT_EQ(split->origin[i], -1);
    } else if (n.op_type == "Concat") {
      ++concats;
      EXPECT_EQ(n.attr_int("axis", -1), 1);
      EXPECT_EQ(n.outputs, std::vector<ValueId>{a.o});  // Readers of o are unchanged.
    } else {
      ++copies;
      EXPECT_EQ(g.nodes[i].op_type,
                a.sg.graph().nodes[static_cast<size_t>(split->origin[i])].op_type);
      EXPECT_EQ(split->shapes[static_cast<size_t>(n.outputs[0])].dims[1], 1) << n.name;
    }
  }
  EXPECT_EQ(splits, 3);
  EXPECT_EQ(concats, 1);
  EXPECT_EQ(copies, 12);
  // A budget that already fits changes nothing.
  auto same = SplitForMemory(a.sg.graph(), a.sg.shapes(), unsplit);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->regions, 0);
  EXPECT_EQ(same->graph.nodes.size(), 3u);
  EXPECT_FALSE(same->reordered);  // Demand order is the same order here.
}

TEST(MemorySplit, RowsSplitAnMlp) {
  // x [64,8] -> MatMul w1 [8,64] -> h [64,64] -> Relu -> MatMul w2 [64,8]
  // -> Add residual x -> y: the chain MatMul, Relu, MatMul runs by rows (x
  // split, the weights read whole) and ends on the small m.
  ShapedGraph sg;
  const ValueId x = sg.Value("x", {64, 8}), w1 = sg.Value("w1", {8, 64});
  const ValueId h = sg.Value("h", {64, 64}), r = sg.Value("r", {64, 64});
  const ValueId w2 = sg.Value("w2", {64, 8}), m = sg.Value("m", {64, 8});
  const ValueId y = sg.Value("y", {64, 8});
  sg.Add("MatMul", {x, w1}, {h});
  sg.Add("Relu", {h}, {r});
  sg.Add("MatMul", {r, w2}, {m});
  sg.Add("Add", {m, x}, {y});
  Graph& g = sg.graph();
  g.inputs = {x, w1, w2};
  g.outputs = {y};
  const size_t unsplit = EstimateSequentialPeak(g, sg.shapes()).bytes;
  auto split = SplitForMemory(g, sg.shapes(), unsplit / 2);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ(split->regions, 1);
  for (const Node& n : split->graph.nodes) {
    if (n.op_type == "Split") {
      EXPECT_EQ(n.inputs[0], x);  // Only x varies along rows.
      EXPECT_EQ(n.attr_int("axis", -1), 0);
    }
    if (n.op_type == "MatMul") {
      EXPECT_TRUE(n.inputs[1] == w1 || n.inputs[1] == w2);
    }
  }
}

TEST(MemorySplit, NormalisedAxesDoNotSplit) {
  // Softmax over axis 1 of [1,64,4] (its outermost long axis), then a
  // MatMul by rows: the chain could only be cut along the normalised axis,
  // so a low budget is refused.
  ShapedGraph sg;
  const ValueId x = sg.Value("x", {1, 64, 4}), s = sg.Value("s", {1, 64, 4});
  const ValueId w = sg.Value("w", {4, 1}), y = sg.Value("y", {1, 64, 1});
  sg.Add("Softmax", {x}, {s}).attrs["axis"] = IntAttr(1);
  sg.Add("MatMul", {s, w}, {y});
  Graph& g = sg.graph();
  g.inputs = {x, w};
  g.outputs = {y};
  // Unsplit: s and y live together (1280 bytes); cut by rows, the Split
  // copies of x and thin slices would need about 1050.
  ASSERT_EQ(EstimateSequentialPeak(g, sg.shapes()).bytes, 1280u);
  auto split = SplitForMemory(g, sg.shapes(), 1100);
  ASSERT_FALSE(split.ok());
  EXPECT_EQ(split.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(split.status().message().find("in pieces"), std::string::npos)
      << split.status().message();
}

TEST(MemorySplit, DemandOrderComputesValuesWhenTheyAreNeeded) {
  // k1 and k2 computed up front (like a decoder's cross-attention keys),
  // each reduced later: in demand order k2 waits until k1 is reduced, so the
  // two are never live together.
  ShapedGraph sg;
  const ValueId x = sg.Value("x", {1000});
  const ValueId k1 = sg.Value("k1", {1000}), k2 = sg.Value("k2", {1000});
  const ValueId s1 = sg.Value("s1", {1}), s2 = sg.Value("s2", {1}), y = sg.Value("y", {1});
  sg.Add("Exp", {x}, {k1});
  sg.Add("Exp", {x}, {k2});
  sg.Add("ReduceMax", {k1}, {s1}).attrs["axes"] = IntsAttr({0});
  sg.Add("ReduceMax", {k2}, {s2}).attrs["axes"] = IntsAttr({0});
  sg.Add("Add", {s1, s2}, {y});
  Graph& g = sg.graph();
  g.inputs = {x};
  g.outputs = {y};
  ASSERT_EQ(EstimateSequentialPeak(g, sg.shapes()).bytes, 8004u);  // k1, k2, s1.
  auto split = SplitForMemory(g, sg.shapes(), 6000);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ(split->regions, 0);
  EXPECT_TRUE(split->reordered);
  EXPECT_EQ(split->estimated_peak_bytes, 4008u);  // s1, k2, s2.
  EXPECT_EQ(split->origin, (std::vector<NodeId>{0, 2, 1, 3, 4}));
  const Graph& out = split->graph;
  ASSERT_EQ(out.nodes.size(), 5u);
  EXPECT_EQ(out.nodes[1].outputs, std::vector<ValueId>{s1});
  EXPECT_EQ(out.values[static_cast<size_t>(k2)].producer, 2);  // Links rebuilt.
}

TEST(MemorySplit, WindowAttentionRunsWindowByWindow) {
  // Swin-style: x [4 windows, 8 tokens, 8] -> MatMul -> qkv [4,8,24] ->
  // Reshape [4,8,3,2,4] -> Transpose -> [3,4,2,8,4] -> Split into q, k, v ->
  // Squeeze -> attention per head -> Transpose -> Reshape [4,8,8]. One
  // region along the window axis covers it; a Shape of qkv becomes a
  // constant.
  ShapedGraph sg;
  const ValueId x = sg.Value("x", {4, 8, 8}), w = sg.Value("w", {8, 24});
  const ValueId qkv = sg.Value("qkv", {4, 8, 24}), r = sg.Value("r", {4, 8, 3, 2, 4});
  const ValueId t = sg.Value("t", {3, 4, 2, 8, 4});
  std::vector<ValueId> parts, heads;
  for (const char* n : {"q", "k", "v"}) {
    parts.push_back(sg.Value(std::string(n) + "5", {1, 4, 2, 8, 4}));
    heads.push_back(sg.Value(n, {4, 2, 8, 4}));
  }
  const ValueId kt = sg.Value("kt", {4, 2, 4, 8}), s = sg.Value("s", {4, 2, 8, 8});
  const ValueId p = sg.Value("p", {4, 2, 8, 8}), o = sg.Value("o", {4, 2, 8, 4});
  const ValueId ot = sg.Value("ot", {4, 8, 2, 4}), y = sg.Value("y", {4, 8, 8});
  const ValueId sh = sg.Value("sh", {3});
  sg.Add("MatMul", {x, w}, {qkv});
  sg.Add("Shape", {qkv}, {sh});
  sg.Add("Reshape", {qkv, sg.Ints("r_shape", {4, 8, 3, 2, 4})}, {r});
  sg.Add("Transpose", {r}, {t}).attrs["perm"] = IntsAttr({2, 0, 3, 1, 4});
  sg.Add("Split", {t, sg.Ints("split", {1, 1, 1})}, parts).attrs["axis"] = IntAttr(0);
  for (int i = 0; i < 3; ++i) sg.Add("Squeeze", {parts[i], sg.Ints("axes", {0})}, {heads[i]});
  sg.Add("Transpose", {heads[1]}, {kt}).attrs["perm"] = IntsAttr({0, 1, 3, 2});
  sg.Add("MatMul", {heads[0], kt}, {s});
  sg.Add("Softmax", {s}, {p}).attrs["axis"] = IntAttr(-1);
  sg.Add("MatMul", {p, heads[2]}, {o});
  sg.Add("Transpose", {o}, {ot}).attrs["perm"] = IntsAttr({0, 2, 1, 3});
  sg.Add("Reshape", {ot, sg.Ints("y_shape", {4, 8, 8})}, {y});
  Graph& g = sg.graph();
  g.inputs = {x, w};
  g.outputs = {y, sh};
  const size_t unsplit = EstimateSequentialPeak(g, sg.shapes()).bytes;
  auto split = SplitForMemory(g, sg.shapes(), unsplit * 6 / 10);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ(split->regions, 1);
  EXPECT_LE(split->estimated_peak_bytes, unsplit * 6 / 10);
  const Graph& out = split->graph;
  const int pieces = split->max_pieces;
  int reshapes = 0, concats = 0;
  for (const Node& n : out.nodes) {
    EXPECT_NE(n.op_type, "Shape");  // Folded into a constant.
    if (n.op_type == "Split" && split->origin[static_cast<size_t>(&n - out.nodes.data())] < 0) {
      EXPECT_EQ(n.inputs[0], x);  // Only x is sliced from outside; the weight is read whole.
      EXPECT_EQ(n.attr_int("axis", -1), 0);
    }
    if (n.op_type == "Reshape" && n.outputs[0] != y) {  // y's Reshape runs after the region.
      ++reshapes;
      const Tensor& dims = out.values[static_cast<size_t>(n.inputs[1])].constant;
      ASSERT_TRUE(dims.defined());
      EXPECT_EQ(dims.data<int64_t>()[0], 4 / pieces) << n.name;  // Its piece's windows.
    }
    if (n.op_type == "Concat") {
      ++concats;
      // The cut comes at the first smallest value leaving the region.
      EXPECT_EQ(n.outputs, std::vector<ValueId>{o});
    }
  }
  EXPECT_EQ(reshapes, pieces);
  EXPECT_EQ(concats, 1);
  const Tensor& folded = out.values[static_cast<size_t>(sh)].constant;
  ASSERT_TRUE(folded.defined());
  EXPECT_EQ(std::vector<int64_t>(folded.data<int64_t>(), folded.data<int64_t>() + 3),
            (std::vector<int64_t>{4, 8, 24}));
}

// An ONNX attention block: q, kt, v inputs, scores -> Softmax -> x v -> Transpose.
std::string AttentionModel() {
  testing::ModelBuilder b(13);
  b.Input("q", onnx::TensorProto::FLOAT, {1, 4, 256, 16})
      .Input("kt", onnx::TensorProto::FLOAT, {1, 4, 16, 256})
      .Input("v", onnx::TensorProto::FLOAT, {1, 4, 256, 16})
      .Output("y", onnx::TensorProto::FLOAT, {1, 256, 4, 16});
  b.Node("MatMul", {"q", "kt"}, {"scores"});
  b.Node("Softmax", {"scores"}, {"probs"});
  b.Node("MatMul", {"probs", "v"}, {"o"});
  auto* t = b.Node("Transpose", {"o"}, {"y"});
  auto* perm = t->add_attribute();
  perm->set_name("perm");
  perm->set_type(onnx::AttributeProto::INTS);
  for (int p : {0, 2, 1, 3}) perm->add_ints(p);
  return b.Write("attention_split");
}

TEST(MemorySplit, SessionUnderABudgetBelowTheLeanestPlanRunsInPieces) {
  auto m = Model::Load(AttentionModel());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Session::NamedTensors inputs = {{"q", Random({1, 4, 256, 16}, 1)},
                                        {"kt", Random({1, 4, 16, 256}, 2)},
                                        {"v", Random({1, 4, 256, 16}, 3)}};
  std::vector<Tensor> want;
  RunStats fs;
  ASSERT_NO_FATAL_FAILURE(FreeRun(*m, inputs, &want, &fs));
  const size_t budget = fs.planned_activation_bytes * 6 / 10;
  ASSERT_LT(budget, fs.sequential_plan_bytes);  // No schedule of the graph fits.
  for (ExecutionMode mode : {ExecutionMode::kSequential, ExecutionMode::kDataflow}) {
    SessionOptions o;
    o.mode = mode;
    o.threads = 2;
    o.memory_budget_bytes = static_cast<int64_t>(budget);
    auto s = Session::Create(*m, o);
    ASSERT_TRUE(s.ok());
    for (int rep = 0; rep < 3; ++rep) {  // The first run is unplanned, the others planned.
      auto got = s->Run(inputs);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      const RunStats st = s->last_stats();
      EXPECT_GE(st.split_regions, 1) << rep;
      EXPECT_GE(st.split_pieces, 2) << rep;
      EXPECT_LE(st.measured_activation_bytes, budget) << rep;
      EXPECT_LE(st.planned_activation_bytes, budget) << rep;
      const Tensor& a = (*got)[0];
      const Tensor& b = want[0];
      ASSERT_EQ(a.shape(), b.shape());
      double worst = 0;
      for (int64_t i = 0; i < a.numel(); ++i)
        worst =
            std::max(worst, std::abs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]) /
                                (std::abs(static_cast<double>(b.data<float>()[i])) + 1e-6));
      EXPECT_LE(worst, 1e-5) << rep;
    }
  }
  // Below anything a split reaches: a clear error naming both limits.
  SessionOptions o;
  o.memory_budget_bytes = 4096;
  auto tiny = Session::Create(*m, o);
  ASSERT_TRUE(tiny.ok());
  for (int rep = 0; rep < 2; ++rep) {
    auto out = tiny->Run(inputs);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
    EXPECT_NE(out.status().message().find("4096-byte memory budget"), std::string::npos)
        << out.status().message();
    EXPECT_NE(out.status().message().find("in pieces"), std::string::npos)
        << out.status().message();
  }
}

// A 3-image CNN: Conv -> Relu -> Conv -> Relu -> GlobalAveragePool ->
// Flatten -> Gemm -> Softmax (the layout pass runs the convs channels-last).
// With `symbolic`, the batch and image sizes are symbols N, H, W.
std::string BatchCnnModel(bool symbolic = false) {
  testing::ModelBuilder b(13);
  if (symbolic) {
    b.proto().mutable_graph()->set_name("symbolic");
    b.Input("x", onnx::TensorProto::FLOAT, {-1, 3, -1, -1})
        .Output("y", onnx::TensorProto::FLOAT, {-1, 4});
    auto* dims = b.proto()
                     .mutable_graph()
                     ->mutable_input(0)
                     ->mutable_type()
                     ->mutable_tensor_type()
                     ->mutable_shape();
    dims->mutable_dim(2)->set_dim_param("H");
    dims->mutable_dim(3)->set_dim_param("W");
  } else {
    b.Input("x", onnx::TensorProto::FLOAT, {3, 3, 32, 32})
        .Output("y", onnx::TensorProto::FLOAT, {3, 4});
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  auto init = [&](const std::string& name, std::vector<int64_t> dims) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& e : v) e = u(rng);
    b.FloatInit(name, dims, v);
  };
  init("w1", {8, 3, 3, 3});
  init("w2", {8, 8, 3, 3});
  init("wf", {8, 4});
  init("bf", {4});
  for (const char* c : {"1", "2"}) {
    auto* conv = b.Node("Conv", {std::string(c) == "1" ? "x" : "r1", std::string("w") + c},
                        {std::string("c") + c});
    auto* pads = conv->add_attribute();
    pads->set_name("pads");
    pads->set_type(onnx::AttributeProto::INTS);
    for (int i = 0; i < 4; ++i) pads->add_ints(1);
    b.Node("Relu", {std::string("c") + c}, {std::string("r") + c});
  }
  b.Node("GlobalAveragePool", {"r2"}, {"g"});
  b.Node("Flatten", {"g"}, {"f"});
  b.Node("Gemm", {"f", "wf", "bf"}, {"logits"});
  b.Node("Softmax", {"logits"}, {"y"});
  return b.Write(symbolic ? "batch_cnn_split_symbolic" : "batch_cnn_split");
}

TEST(MemorySplit, BatchCnnRunsImageByImageUnderSixtyPercent) {
  auto m = Model::Load(BatchCnnModel());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Session::NamedTensors inputs = {{"x", Random({3, 3, 32, 32}, 11)}};
  std::vector<Tensor> want;
  RunStats fs;
  ASSERT_NO_FATAL_FAILURE(FreeRun(*m, inputs, &want, &fs));
  const size_t budget = fs.planned_activation_bytes * 6 / 10;
  SessionOptions o;
  o.threads = 2;
  o.memory_budget_bytes = static_cast<int64_t>(budget);
  auto s = Session::Create(*m, o);
  ASSERT_TRUE(s.ok());
  ExpectSplitRuns(*s, inputs, want[0], budget, 1e-6, 3, 1, 1);
}

// With its symbolic input dims fixed at load (LoadOptions::free_dims) the
// model's shapes are known before its first run, so the first split copy
// is planned with every shape.
TEST(MemorySplit, FreeDimsLetTheFirstRunSplit) {
  const std::string path = BatchCnnModel(true);
  const Session::NamedTensors inputs = {{"x", Random({3, 3, 32, 32}, 11)}};
  auto plain = Model::Load(path);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->inputs()[0].ShapeString(), "[N,3,H,W]");
  std::vector<Tensor> want;
  RunStats fs;
  ASSERT_NO_FATAL_FAILURE(FreeRun(*plain, inputs, &want, &fs));
  const size_t budget = fs.planned_activation_bytes * 6 / 10;
  SessionOptions o;
  o.memory_budget_bytes = static_cast<int64_t>(budget);
  {  // Symbolic: the first run stops at the peak, knowing no shape past it;
     // split copies planned without the missing shapes run on, each
     // teaching more, until one fits.
    auto s = Session::Create(*plain, o);
    ASSERT_TRUE(s.ok());
    ExpectSplitRuns(*s, inputs, want[0], budget, 1e-6);
  }
  LoadOptions lo;
  lo.free_dims = {{"N", 3}, {"H", 32}, {"W", 32}};
  auto fixed = Model::Load(path, lo);
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_EQ(fixed->inputs()[0].ShapeString(), "[3,3,32,32]");
  auto s = Session::Create(*fixed, o);
  ASSERT_TRUE(s.ok());
  ExpectSplitRuns(*s, inputs, want[0], budget, 1e-6);
  // Inputs of another size, unknown symbols and sizes below 1 are refused.
  auto wrong = s->Run({{"x", Random({2, 3, 32, 32}, 1)}});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  lo.free_dims = {{"batch", 3}};
  auto unknown = Model::Load(path, lo);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("no input dimension is named 'batch'"),
            std::string::npos)
      << unknown.status().message();
  lo.free_dims = {{"N", 0}};
  auto zero = Model::Load(path, lo);
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("at least 1"), std::string::npos)
      << zero.status().message();
}

// Self-attention as exporters write it: Q, K, V projected from x by
// constant weights, split into heads by Reshape and Transpose, scaled
// scores, Softmax, heads merged back, plus x. Fused, its projections read
// the weights whole and its attention MatMuls read Q, K and V in place.
std::string ProjectedAttentionModel() {
  testing::ModelBuilder b(13);
  b.Input("x", onnx::TensorProto::FLOAT, {1, 32, 64})
      .Output("y", onnx::TensorProto::FLOAT, {1, 32, 64});
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  auto init = [&](const std::string& name, std::vector<int64_t> dims) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& f : v) f = u(rng);
    b.FloatInit(name, dims, v);
  };
  auto ints = [&](const std::string& name, std::vector<int64_t> v) {
    auto* t = b.proto().mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
  };
  auto perm = [](onnx::NodeProto* n, std::vector<int64_t> p) {
    auto* a = n->add_attribute();
    a->set_name("perm");
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : p) a->add_ints(x);
  };
  ints("heads", {1, 32, 4, 16});
  ints("merged", {1, 32, 64});
  b.FloatInit("scale", {}, {0.25f});
  for (const char* p : {"q", "k", "v"}) {
    const std::string s = p;
    init("w" + s, {64, 64});
    init("b" + s, {64});
    b.Node("MatMul", {"x", "w" + s}, {s + "m"});
    b.Node("Add", {s + "m", "b" + s}, {s + "p"});
    b.Node("Reshape", {s + "p", "heads"}, {s + "4"});
  }
  perm(b.Node("Transpose", {"q4"}, {"qt"}), {0, 2, 1, 3});
  perm(b.Node("Transpose", {"k4"}, {"kt"}), {0, 2, 3, 1});
  perm(b.Node("Transpose", {"v4"}, {"vt"}), {0, 2, 1, 3});
  b.Node("MatMul", {"qt", "kt"}, {"scores"});
  b.Node("Mul", {"scores", "scale"}, {"scaled"});
  b.Node("Softmax", {"scaled"}, {"probs"});
  b.Node("MatMul", {"probs", "vt"}, {"ctx"});
  perm(b.Node("Transpose", {"ctx"}, {"ctxt"}), {0, 2, 1, 3});
  b.Node("Reshape", {"ctxt", "merged"}, {"attn"});
  b.Node("Add", {"attn", "x"}, {"y"});
  return b.Write("projected_attention_split");
}

// Q, K and V are each as large as the output: no split of what follows the
// projections fits 60% of the plan. Head by head, each piece projects its
// own Q, K and V from its columns of the weights.
TEST(MemorySplit, AttentionProjectsHeadByHeadFromWeightColumns) {
  auto m = Model::Load(ProjectedAttentionModel());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Session::NamedTensors inputs = {{"x", Random({1, 32, 64}, 5)}};
  std::vector<Tensor> want;
  RunStats fs;
  ASSERT_NO_FATAL_FAILURE(FreeRun(*m, inputs, &want, &fs));
  const size_t budget = fs.planned_activation_bytes * 6 / 10;
  ASSERT_LT(budget, fs.sequential_plan_bytes);
  SessionOptions o;
  o.memory_budget_bytes = static_cast<int64_t>(budget);
  auto s = Session::Create(*m, o);
  ASSERT_TRUE(s.ok());
  ExpectSplitRuns(*s, inputs, want[0], budget, 1e-4, 3);
}

}  // namespace
}  // namespace parallax
