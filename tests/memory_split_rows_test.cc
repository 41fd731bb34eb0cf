// Memory splitting along image rows (plan/memory_split.h with the windowed
// maps of plan/split_map.h): bands with halos, per-band pads, Concat along
// the split axis, and sessions running such splits within their budget.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "fusion_test_util.h"
#include "model_builder.h"
#include "parallax/parallax.h"
#include "plan/fusion_util.h"
#include "plan/memory_split.h"
#include "shaped_graph.h"
#include "split_run_util.h"

namespace parallax {
namespace {

using fusion::IntAttr;
using fusion::IntsAttr;
using testing::AttrInts;
using testing::AttrS;
using testing::ExpectNear;
using testing::ExpectSplitRuns;
using testing::FreeRun;
using testing::Random;
using testing::RandomInit;
using testing::ShapedGraph;

TEST(MemorySplit, ImageRowsRunInBandsWithHalos) {
  // One image: x [1,2,16,16] -> Conv 3x3 pads 1 -> c [1,8,16,16] -> Relu ->
  // Conv 3x3 stride 2 pads 1 -> y [1,8,8,8]. Split along rows, each piece
  // computes a band of y from a band of c one row larger on each inner side
  // (the second conv's window), and only the outermost pieces keep a pad.
  ShapedGraph sg;
  const ValueId x = sg.Value("x", {1, 2, 16, 16}), w1 = sg.Value("w1", {8, 2, 3, 3});
  const ValueId c = sg.Value("c", {1, 8, 16, 16}), r = sg.Value("r", {1, 8, 16, 16});
  const ValueId w2 = sg.Value("w2", {8, 8, 3, 3}), y = sg.Value("y", {1, 8, 8, 8});
  sg.Add("Conv", {x, w1}, {c}).attrs["pads"] = IntsAttr({1, 1, 1, 1});
  sg.Add("Relu", {c}, {r});
  Node& down = sg.Add("Conv", {r, w2}, {y});
  down.attrs["pads"] = IntsAttr({1, 1, 1, 1});
  down.attrs["strides"] = IntsAttr({2, 2});
  Graph& g = sg.graph();
  g.inputs = {x, w1, w2};
  g.outputs = {y};
  const size_t unsplit = EstimateSequentialPeak(g, sg.shapes()).bytes;
  ASSERT_EQ(unsplit, 2u * 8 * 16 * 16 * 4);  // c and r.
  auto split = SplitForMemory(g, sg.shapes(), unsplit * 6 / 10);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ(split->regions, 1);
  EXPECT_LE(split->estimated_peak_bytes, unsplit * 6 / 10);
  const Graph& out = split->graph;
  std::vector<std::vector<int64_t>> first_pads, down_pads;  // Per piece.
  std::vector<int64_t> rows;                                // Of c per piece.
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    const Node& n = out.nodes[i];
    if (n.op_type != "Conv") continue;
    ASSERT_GE(split->origin[i], 0);
    const Shape& dims = split->shapes[static_cast<size_t>(n.outputs[0])].dims;
    if (split->origin[i] == 0) {
      first_pads.push_back(n.attr_ints("pads"));
      rows.push_back(dims[2]);
    } else {
      down_pads.push_back(n.attr_ints("pads"));
    }
  }
  const size_t pieces = static_cast<size_t>(split->max_pieces);
  ASSERT_GE(pieces, 2u);
  ASSERT_EQ(first_pads.size(), pieces);
  ASSERT_EQ(down_pads.size(), pieces);
  // Piece 0 of y: rows [0, 8 / K), reading c rows [0, 16 / K + 1) with the top pad only.
  EXPECT_EQ(first_pads.front(), (std::vector<int64_t>{1, 1, 0, 1}));
  EXPECT_EQ(first_pads.back(), (std::vector<int64_t>{0, 1, 1, 1}));
  EXPECT_EQ(down_pads.front(), (std::vector<int64_t>{1, 1, 0, 1}));
  // The stride-2 window of y's last row ends on c's last row: its bottom pad
  // was never read.
  EXPECT_EQ(down_pads.back(), (std::vector<int64_t>{0, 1, 0, 1}));
  // c's band per piece: y rows [a, b) read c rows [2a - 1, 2b).
  EXPECT_EQ(rows.front(), static_cast<int64_t>(16 / pieces));
  int64_t total = 0;
  for (int64_t n : rows) total += n;
  EXPECT_LE(total, 16 + static_cast<int64_t>(pieces));  // Recomputes at most a row per border.
}

TEST(MemorySplit, ConcatAlongTheSplitAxisReadsOnlyThePartsItCovers) {
  // Like a detector head: ea [1,4,64] and eb [1,4,32] concatenated along the
  // last axis (anchors), then per-anchor ops. Split along the anchors, a
  // piece inside ea's run concatenates ea's part alone.
  ShapedGraph sg;
  const ValueId a = sg.Value("a", {1, 4, 64}), b = sg.Value("b", {1, 4, 32});
  const ValueId ea = sg.Value("ea", {1, 4, 64}), eb = sg.Value("eb", {1, 4, 32});
  const ValueId c = sg.Value("c", {1, 4, 96}), r = sg.Value("r", {1, 4, 96});
  const ValueId y = sg.Value("y", {1, 1, 96});
  sg.Add("Exp", {a}, {ea});
  sg.Add("Exp", {b}, {eb});
  sg.Add("Concat", {ea, eb}, {c}).attrs["axis"] = IntAttr(2);
  sg.Add("Relu", {c}, {r});
  sg.Add("ReduceSum", {r, sg.Ints("axes", {1})}, {y});
  Graph& g = sg.graph();
  g.inputs = {a, b};
  g.outputs = {y};
  const size_t unsplit = EstimateSequentialPeak(g, sg.shapes()).bytes;
  auto split = SplitForMemory(g, sg.shapes(), unsplit * 6 / 10);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_GE(split->regions, 1);
  EXPECT_LE(split->estimated_peak_bytes, unsplit * 6 / 10);
  const Graph& out = split->graph;
  int single = 0, copies = 0;
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    const Node& n = out.nodes[i];
    if (n.op_type != "Concat" || split->origin[i] != 2) continue;
    ++copies;
    single += n.inputs.size() == 1 ? 1 : 0;
    int64_t cells = 0;  // The inputs' parts add up to the piece.
    for (ValueId u : n.inputs) cells += split->shapes[static_cast<size_t>(u)].dims[2];
    EXPECT_EQ(cells, split->shapes[static_cast<size_t>(n.outputs[0])].dims[2]);
  }
  EXPECT_EQ(copies, split->max_pieces);
  EXPECT_GE(single, 1);
}

// One image through a small detector-like trunk: Conv -> Relu -> Conv
// stride 2 -> Relu -> MaxPool 3x3 -> Resize x2 (nearest) -> Conv 1x1 ->
// GlobalAveragePool -> Flatten -> Gemm -> Softmax.
std::string ImageCnnModel() {
  testing::ModelBuilder b(13);
  b.Input("x", onnx::TensorProto::FLOAT, {1, 3, 64, 64})
      .Output("y", onnx::TensorProto::FLOAT, {1, 4});
  RandomInit(b, "w1", {8, 3, 3, 3}, 51, -0.5f, 0.5f);
  RandomInit(b, "w2", {16, 8, 3, 3}, 52, -0.5f, 0.5f);
  RandomInit(b, "w3", {4, 16, 1, 1}, 53, -0.5f, 0.5f);
  RandomInit(b, "wf", {4, 4}, 54, -0.5f, 0.5f);
  RandomInit(b, "bf", {4}, 55, -0.5f, 0.5f);
  b.FloatInit("scales", {4}, {1, 1, 2, 2});
  AttrInts(b.Node("Conv", {"x", "w1"}, {"c1"}), "pads", {1, 1, 1, 1});
  b.Node("Relu", {"c1"}, {"r1"});
  auto* down = b.Node("Conv", {"r1", "w2"}, {"c2"});
  AttrInts(down, "pads", {1, 1, 1, 1});
  AttrInts(down, "strides", {2, 2});
  b.Node("Relu", {"c2"}, {"r2"});
  auto* pool = b.Node("MaxPool", {"r2"}, {"p"});
  AttrInts(pool, "kernel_shape", {3, 3});
  AttrInts(pool, "pads", {1, 1, 1, 1});
  auto* up = b.Node("Resize", {"p", "", "scales"}, {"u"});
  AttrS(up, "mode", "nearest");
  AttrS(up, "coordinate_transformation_mode", "asymmetric");
  AttrS(up, "nearest_mode", "floor");
  b.Node("Conv", {"u", "w3"}, {"c3"});
  b.Node("GlobalAveragePool", {"c3"}, {"g"});
  b.Node("Flatten", {"g"}, {"f"});
  b.Node("Gemm", {"f", "wf", "bf"}, {"logits"});
  b.Node("Softmax", {"logits"}, {"y"});
  return b.Write("image_cnn_split");
}

TEST(MemorySplit, OneImageRunsInRowBandsUnderSixtyPercent) {
  auto m = Model::Load(ImageCnnModel());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Session::NamedTensors inputs = {{"x", Random({1, 3, 64, 64}, 13)}};
  std::vector<Tensor> want;
  RunStats fs;
  ASSERT_NO_FATAL_FAILURE(FreeRun(*m, inputs, &want, &fs));
  const size_t budget = fs.planned_activation_bytes * 6 / 10;
  for (ExecutionMode mode : {ExecutionMode::kSequential, ExecutionMode::kDataflow}) {
    SessionOptions o;
    o.mode = mode;
    o.threads = 2;
    o.memory_budget_bytes = static_cast<int64_t>(budget);
    auto s = Session::Create(*m, o);
    ASSERT_TRUE(s.ok());
    ExpectSplitRuns(*s, inputs, want[0], budget, 1e-5, 3);
  }
}

// A random single-image chain of Conv (kernel 1/3/5, stride 1/2, any pads
// up to the kernel's reach, sometimes dilated), MaxPool / AveragePool,
// nearest Resize x2, Relu and residual Add, then GlobalAveragePool.
std::string RandomImageChain(uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  testing::ModelBuilder b(13);
  int64_t c = 3, h = 48 + 8 * pick(4), w = 40;
  b.Input("x", onnx::TensorProto::FLOAT, {1, c, h, w});
  std::uniform_real_distribution<float> u(-0.4f, 0.4f);
  std::string cur = "x";
  for (int layer = 0; layer < 6; ++layer) {
    const std::string id = std::to_string(layer);
    std::string out = "v", wn = "w", sn = "scales", relu = "r";
    out += id;
    wn += id;
    sn += id;
    relu += id;
    const int kind = layer == 0 ? 0 : pick(5);
    if (kind <= 1) {  // Conv.
      const int64_t k = std::vector<int64_t>{1, 3, 5}[static_cast<size_t>(pick(3))];
      const int64_t stride = h > 24 && pick(2) == 0 ? 2 : 1;
      const int64_t dil = k == 3 && pick(4) == 0 ? 2 : 1;
      const int64_t reach = (k - 1) * dil;
      const int64_t top = pick(static_cast<int>(reach) + 1), bottom = reach - top;
      const int64_t oc = 4 + 4 * pick(3);
      std::vector<float> wv(static_cast<size_t>(oc * c * k * k));
      for (float& e : wv) e = u(rng);
      b.FloatInit(wn, {oc, c, k, k}, wv);
      auto* n = b.Node("Conv", {cur, wn}, {out});
      AttrInts(n, "pads", {top, reach / 2, bottom, reach - reach / 2});
      AttrInts(n, "strides", {stride, 1});
      AttrInts(n, "dilations", {dil, dil});
      h = (h + reach - ((k - 1) * dil + 1)) / stride + 1;
      c = oc;
    } else if (kind == 2) {  // Pooling.
      auto* n = b.Node(pick(2) == 0 ? "MaxPool" : "AveragePool", {cur}, {out});
      AttrInts(n, "kernel_shape", {3, 3});
      AttrInts(n, "pads", {1, 1, 1, 1});
      const int64_t stride = h > 24 ? 2 : 1;
      AttrInts(n, "strides", {stride, stride});
      h = (h - 1) / stride + 1;
      w = (w - 1) / stride + 1;
    } else if (kind == 3 && h < 64) {  // Nearest upsampling along rows.
      b.FloatInit(sn, {4}, {1, 1, 2, 1});
      auto* n = b.Node("Resize", {cur, "", sn}, {out});
      auto* mode = n->add_attribute();
      mode->set_name("mode");
      mode->set_type(onnx::AttributeProto::STRING);
      mode->set_s("nearest");
      h *= 2;
    } else if (kind == 4) {  // Residual: Relu(cur) + cur.
      b.Node("Relu", {cur}, {relu});
      b.Node("Add", {relu, cur}, {out});
    } else {
      b.Node("Relu", {cur}, {out});
    }
    cur = out;
  }
  b.Node("GlobalAveragePool", {cur}, {"y"});
  b.Output("y", onnx::TensorProto::FLOAT, {1, c, 1, 1});
  std::string stem = "random_image_chain_";
  stem += std::to_string(seed);
  return b.Write(stem);
}

// Differential: random chains under 40-70% of their plan give the
// unconstrained result (to float rounding), within the budget, or are
// refused with ResourceExhausted; most of them do split.
TEST(MemorySplitRows, RandomImageChainsMatchTheUnsplitRun) {
  int split = 0;
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    auto m = Model::Load(RandomImageChain(seed));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    const Session::NamedTensors inputs = {{"x", Random(m->inputs()[0].dims, seed + 100)}};
    std::vector<Tensor> want;
    RunStats fs;
    ASSERT_NO_FATAL_FAILURE(FreeRun(*m, inputs, &want, &fs));
    SessionOptions o;
    o.memory_budget_bytes =
        static_cast<int64_t>(fs.planned_activation_bytes * (40 + 10 * (seed % 4)) / 100);
    auto s = Session::Create(*m, o);
    ASSERT_TRUE(s.ok());
    auto got = s->Run(inputs);
    if (!got.ok()) {
      EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted) << seed;
      continue;
    }
    const RunStats st = s->last_stats();
    EXPECT_LE(st.measured_activation_bytes, static_cast<size_t>(o.memory_budget_bytes)) << seed;
    split += st.split_regions > 0 ? 1 : 0;
    ExpectNear((*got)[0], want[0], 1e-4);
  }
  EXPECT_GE(split, 8);
}

}  // namespace
}  // namespace parallax
