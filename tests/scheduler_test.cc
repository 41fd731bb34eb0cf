// The concurrent schedules (layers, dataflow): bit-identical to the
// sequential executor across thread counts, memory within the happens-before
// plan, budget admission, traces, and errors inside branches.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "model_builder.h"
#include "parallax/parallax.h"

namespace parallax {
namespace {

using testing::ModelBuilder;

constexpr ExecutionMode kModes[] = {ExecutionMode::kSequential, ExecutionMode::kLayers,
                                    ExecutionMode::kDataflow};

// x -> `width` independent branches (MatMul, Relu, MatMul, Sigmoid, Mul by
// a per-branch constant) -> summed -> y. Branches of uneven length when
// `uneven`, so the layers policy and critical-path priorities matter.
std::string BranchyModel(int width, int64_t n, bool uneven) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, n}).Output("y", onnx::TensorProto::FLOAT, {-1, n});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.2f, 0.2f);
  std::string sum;
  for (int w = 0; w < width; ++w) {
    std::string p = "b";
    p.append(std::to_string(w)).append("_");
    std::vector<float> wa(static_cast<size_t>(n * n)), wb(wa.size());
    for (float& v : wa) v = u(rng);
    for (float& v : wb) v = u(rng);
    b.FloatInit(p + "wa", {n, n}, wa).FloatInit(p + "wb", {n, n}, wb);
    b.FloatInit(p + "k", {1}, {0.5f + 0.1f * static_cast<float>(w)});
    b.Node("MatMul", {"x", p + "wa"}, {p + "a"});
    b.Node("Relu", {p + "a"}, {p + "r"});
    std::string last = p + "r";
    const int extra = uneven ? w : 0;
    for (int e = 0; e < extra; ++e) {
      std::string m = p;
      m.append("m").append(std::to_string(e));
      b.Node("MatMul", {last, p + "wb"}, {m});
      last = m;
    }
    b.Node("MatMul", {last, p + "wb"}, {p + "c"});
    b.Node("Sigmoid", {p + "c"}, {p + "s"});
    b.Node("Mul", {p + "s", p + "k"}, {p + "o"});
    if (sum.empty()) {
      sum = p + "o";
    } else {
      b.Node("Add", {sum, p + "o"}, {p + "sum"});
      sum = p + "sum";
    }
  }
  b.Node("Identity", {sum}, {"y"});
  std::string stem = "branchy_";
  stem.append(std::to_string(width)).append(uneven ? "_uneven" : "");
  return b.Write(stem);
}

Tensor RandomInput(int64_t rows, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  Tensor t = Tensor::Empty(DType::kFloat32, {rows, n});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

Tensor RunOnce(Session& s, const Tensor& x) {
  auto out = s.Run({{"x", x}});
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? (*out)[0] : Tensor();
}

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

Session MakeSession(const Model& m, ExecutionMode mode, int threads, int64_t budget = -1,
                    double max_plan_ratio = 1.15) {
  SessionOptions o;
  o.mode = mode;
  o.max_plan_ratio = max_plan_ratio;
  o.threads = threads;
  o.memory_budget_bytes = budget;
  auto s = Session::Create(m, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

TEST(Scheduler, ModesAreBitIdenticalToSequential) {
  for (bool uneven : {false, true}) {
    auto m = Model::Load(BranchyModel(4, 96, uneven));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    for (int threads : {1, 2, 3, 4}) {
      Session seq = MakeSession(*m, ExecutionMode::kSequential, threads);
      // Small inputs run in the sequential order, large ones concurrently;
      // re-plans on a new shape, reuses the plan on an old one.
      for (int64_t rows : {5, 160, 5}) {
        const Tensor x = RandomInput(rows, 96, static_cast<uint32_t>(rows));
        const Tensor want = RunOnce(seq, x);
        for (ExecutionMode mode : {ExecutionMode::kLayers, ExecutionMode::kDataflow}) {
          Session s = MakeSession(*m, mode, threads);
          for (int rep = 0; rep < 3; ++rep)  // Unplanned first run, then planned.
            EXPECT_TRUE(SameBits(RunOnce(s, x), want))
                << ExecutionModeName(mode) << " threads " << threads << " rows " << rows << " rep "
                << rep << (uneven ? " uneven" : "");
        }
      }
    }
  }
}

TEST(Scheduler, SmallOrChainGraphsRunInTheSequentialOrder) {
  auto m = Model::Load(BranchyModel(4, 16, false));  // ~0.1 MFLOP: not worth a hand-off.
  ASSERT_TRUE(m.ok());
  Session s = MakeSession(*m, ExecutionMode::kDataflow, 4);
  RunOnce(s, RandomInput(4, 16, 6));
  RunOnce(s, RandomInput(4, 16, 6));
  EXPECT_EQ(s.last_stats().mode, ExecutionMode::kSequential);
  auto big = Model::Load(BranchyModel(4, 128, false));
  ASSERT_TRUE(big.ok());
  Session b = MakeSession(*big, ExecutionMode::kDataflow, 4, -1, /*max_plan_ratio=*/100);
  RunOnce(b, RandomInput(128, 128, 6));
  RunOnce(b, RandomInput(128, 128, 6));
  EXPECT_EQ(b.last_stats().mode, ExecutionMode::kDataflow);
}

TEST(Scheduler, ReportsBranchStructure) {
  auto m = Model::Load(BranchyModel(4, 16, false));
  ASSERT_TRUE(m.ok());
  Session s = MakeSession(*m, ExecutionMode::kDataflow, 2);
  const BranchSummary b = s.branch_summary();
  EXPECT_EQ(b.nodes, static_cast<int>(m->node_count()));
  EXPECT_GE(b.max_branch_width, 4);
  EXPECT_GE(b.parallel_layers, 1);
}

TEST(Scheduler, ConcurrentPlanStaysNearTheSequentialPlan) {
  auto m = Model::Load(BranchyModel(4, 128, true));
  ASSERT_TRUE(m.ok());
  for (ExecutionMode mode : kModes) {
    Session s = MakeSession(*m, mode, 4);
    const Tensor x = RandomInput(128, 128, 1);
    RunOnce(s, x);
    RunOnce(s, x);
    const RunStats st = s.last_stats();
    EXPECT_GT(st.planned_activation_bytes, 0u) << ExecutionModeName(mode);
    EXPECT_GT(st.sequential_plan_bytes, 0u);
    // Planned runs allocate nothing outside the arena but the outputs.
    EXPECT_LE(st.dynamic_bytes, 0u) << ExecutionModeName(mode);
    if (mode == ExecutionMode::kSequential) {
      EXPECT_EQ(st.planned_activation_bytes, st.sequential_plan_bytes);
    }
    EXPECT_LE(st.measured_activation_bytes, st.planned_activation_bytes + 128 * 128 * 4)
        << ExecutionModeName(mode);
  }
}

// Runs `x` twice through an uncapped (max_plan_ratio 100), unbudgeted
// 4-thread dataflow session; `want` gets the output, the result is the
// planned (second) run's stats.
RunStats FreeSchedule(const Model& m, const Tensor& x, Tensor* want) {
  Session free_run = MakeSession(m, ExecutionMode::kDataflow, 4, -1, /*max_plan_ratio=*/100);
  *want = RunOnce(free_run, x);
  RunOnce(free_run, x);
  return free_run.last_stats();
}

TEST(Scheduler, BudgetFallsBackToTheSequentialPlan) {
  auto m = Model::Load(BranchyModel(4, 128, false));
  ASSERT_TRUE(m.ok());
  const Tensor x = RandomInput(128, 128, 2);
  Tensor want;
  const RunStats unconstrained = FreeSchedule(*m, x, &want);
  ASSERT_GT(unconstrained.planned_activation_bytes, unconstrained.sequential_plan_bytes);
  // A budget between the two plans: runs complete, sequentially, within it.
  const int64_t budget =
      static_cast<int64_t>(unconstrained.sequential_plan_bytes + 128 * 128 * 4 /* the output */);
  ASSERT_LT(static_cast<size_t>(budget), unconstrained.planned_activation_bytes);
  Session tight = MakeSession(*m, ExecutionMode::kDataflow, 4, budget, 100);
  for (int rep = 0; rep < 3; ++rep) {
    EXPECT_TRUE(SameBits(RunOnce(tight, x), want)) << rep;
    const RunStats st = tight.last_stats();
    EXPECT_EQ(st.memory_budget_bytes, static_cast<size_t>(budget));
    EXPECT_EQ(st.mode, ExecutionMode::kSequential);
    EXPECT_LE(st.measured_activation_bytes, static_cast<size_t>(budget)) << rep;
    EXPECT_LE(st.planned_activation_bytes, static_cast<size_t>(budget)) << rep;
  }
  // Far too small: a clear error, no crash, on the first and planned runs.
  Session tiny = MakeSession(*m, ExecutionMode::kDataflow, 4, 4096);
  for (int rep = 0; rep < 2; ++rep) {
    auto out = tiny.Run({{"x", x}});
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
    EXPECT_NE(out.status().message().find("memory budget"), std::string::npos)
        << out.status().ToString();
  }
}

// A budget just under the free schedule's plan narrows the branches (fewer
// at once) instead of dropping to the sequential order: still concurrent,
// within the budget, same bits.
TEST(Scheduler, BudgetNarrowsConcurrencyBeforeGoingSequential) {
  auto m = Model::Load(BranchyModel(4, 128, false));
  ASSERT_TRUE(m.ok());
  const Tensor x = RandomInput(128, 128, 3);
  Tensor want;
  const RunStats unconstrained = FreeSchedule(*m, x, &want);
  ASSERT_EQ(unconstrained.mode, ExecutionMode::kDataflow);
  EXPECT_EQ(unconstrained.layer_width, 4);
  const size_t budget = unconstrained.planned_activation_bytes - 1;
  Session tight = MakeSession(*m, ExecutionMode::kDataflow, 4, static_cast<int64_t>(budget), 100);
  RunOnce(tight, x);  // Plans this shape.
  for (int rep = 0; rep < 3; ++rep) {
    EXPECT_TRUE(SameBits(RunOnce(tight, x), want)) << rep;
    const RunStats st = tight.last_stats();
    EXPECT_EQ(st.mode, ExecutionMode::kDataflow) << rep;
    EXPECT_GT(st.layer_width, 1) << rep;  // Narrower, still concurrent.
    EXPECT_LT(st.layer_width, 4) << rep;
    EXPECT_LE(st.planned_activation_bytes, budget) << rep;
    EXPECT_LE(st.measured_activation_bytes, budget) << rep;
  }
}

TEST(Scheduler, PlanRatioCapSerialisesBranches) {
  auto m = Model::Load(BranchyModel(4, 128, false));
  ASSERT_TRUE(m.ok());
  const Tensor x = RandomInput(128, 128, 5);
  Tensor want;
  const RunStats st_free = FreeSchedule(*m, x, &want);
  ASSERT_GT(st_free.planned_activation_bytes, st_free.sequential_plan_bytes);
  for (double ratio : {1.0, 1.15, 1.5}) {
    Session capped = MakeSession(*m, ExecutionMode::kDataflow, 4, -1, ratio);
    for (int rep = 0; rep < 2; ++rep) EXPECT_TRUE(SameBits(RunOnce(capped, x), want));
    const RunStats st = capped.last_stats();
    EXPECT_LE(static_cast<double>(st.planned_activation_bytes),
              ratio * static_cast<double>(st.sequential_plan_bytes))
        << ratio;
  }
  SessionOptions bad;
  bad.max_plan_ratio = 0.5;
  auto s = Session::Create(*m, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("max_plan_ratio"), std::string::npos);
}

TEST(Scheduler, OsBudgetIsReadPerRun) {
  auto m = Model::Load(BranchyModel(2, 16, false));
  ASSERT_TRUE(m.ok());
  Session s = MakeSession(*m, ExecutionMode::kDataflow, 2, /*budget=*/0);
  RunOnce(s, RandomInput(4, 16, 3));
  EXPECT_GT(s.last_stats().memory_budget_bytes, 0u);  // From MemAvailable.
}

TEST(Scheduler, TraceHasASlicePerNodeAndACounter) {
  auto m = Model::Load(BranchyModel(3, 16, false));
  ASSERT_TRUE(m.ok());
  Session s = MakeSession(*m, ExecutionMode::kDataflow, 3);
  const Tensor x = RandomInput(4, 16, 4);
  RunOnce(s, x);
  s.StartTrace();
  RunOnce(s, x);
  const std::string path =
      (std::filesystem::temp_directory_path() / "parallax_scheduler_trace.json").string();
  ASSERT_TRUE(s.WriteTrace(path).ok());
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string json = ss.str();
  size_t slices = 0;
  for (size_t p = json.find("\"ph\":\"X\""); p != std::string::npos;
       p = json.find("\"ph\":\"X\"", p + 1))
    ++slices;
  EXPECT_EQ(slices, static_cast<size_t>(m->node_count()));
  EXPECT_NE(json.find("activation bytes"), std::string::npos);
  EXPECT_FALSE(s.WriteTrace(path).ok());  // Stopped: nothing is being recorded.
  std::filesystem::remove(path);
}

TEST(Scheduler, ErrorInsideABranchIsReportedWithoutHanging) {
  // Branch 1 reshapes to a shape that only fits some inputs.
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1}).Output("y", onnx::TensorProto::FLOAT, {-1});
  b.Node("Relu", {"x"}, {"a0"});
  b.Node("Neg", {"a0"}, {"a1"});
  b.Node("Relu", {"a1"}, {"a2"});
  b.Node("Neg", {"x"}, {"b0"});
  auto* shape = b.proto().mutable_graph()->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(2);
  shape->add_int64_data(2);
  shape->add_int64_data(2);
  b.Node("Reshape", {"b0", "shape"}, {"b1"});
  b.Node("Shape", {"b1"}, {"b2"});
  b.Node("Cast", {"b2"}, {"b3"})->add_attribute()->CopyFrom([] {
    onnx::AttributeProto a;
    a.set_name("to");
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(onnx::TensorProto::FLOAT);
    return a;
  }());
  b.Node("ReduceSum", {"b3"}, {"b4"});
  b.Node("Add", {"a2", "b4"}, {"y"});
  auto m = Model::Load(b.Write("branch_error"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  for (ExecutionMode mode : kModes)
    for (int threads : {1, 4}) {
      Session s = MakeSession(*m, mode, threads);
      auto good = s.Run({{"x", Tensor::FromVector<float>(DType::kFloat32, {4}, {1, 2, 3, 4})}});
      ASSERT_TRUE(good.ok()) << good.status().ToString();
      auto bad = s.Run({{"x", Tensor::FromVector<float>(DType::kFloat32, {5}, {1, 2, 3, 4, 5})}});
      ASSERT_FALSE(bad.ok()) << ExecutionModeName(mode);
      EXPECT_NE(bad.status().message().find("Reshape"), std::string::npos)
          << bad.status().ToString();
      // The session stays usable.
      auto again = s.Run({{"x", Tensor::FromVector<float>(DType::kFloat32, {4}, {1, 2, 3, 4})}});
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      EXPECT_TRUE(SameBits((*again)[0], (*good)[0]));
    }
}

int64_t RssBytes() {
  std::ifstream f("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * 4096;
}

TEST(Scheduler, RssStaysFlatOverManyRunsWithVaryingShapes) {
  // 1,000 dataflow runs over 300 input lengths (more signatures than the
  // plan cache keeps): plans are evicted and rebuilt, memory must not grow.
  auto m = Model::Load(BranchyModel(4, 64, true));
  ASSERT_TRUE(m.ok());
  Session s = MakeSession(*m, ExecutionMode::kDataflow, 3, -1, 100);
  std::mt19937 rng(11);
  std::vector<Tensor> inputs;
  for (int64_t rows = 1; rows <= 300; ++rows) inputs.push_back(RandomInput(rows, 64, 0));
  int64_t rss_after_warmup = 0;
  for (int run = 0; run < 1000; ++run) {
    const Tensor& x = inputs[rng() % inputs.size()];
    auto out = s.Run({{"x", x}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ((*out)[0].shape(), x.shape());
    if (run == 299) rss_after_warmup = RssBytes();
  }
  const int64_t growth = RssBytes() - rss_after_warmup;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // AddressSanitizer's quarantine keeps up to 256 MiB of freed memory
  // resident by design (flat with ASAN_OPTIONS=quarantine_size_mb=1);
  // ThreadSanitizer's shadow of every address range the allocator hands out
  // stays resident (16 MiB over this test).
  (void)growth;
#else
  EXPECT_LT(growth, int64_t{16} << 20) << "RSS grew " << growth << " bytes over 700 runs";
#endif
}

TEST(Scheduler, ParsesModeNames) {
  for (ExecutionMode mode : kModes) {
    auto parsed = ParseExecutionMode(ExecutionModeName(mode));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, mode);
  }
  auto bad = ParseExecutionMode("fast");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("fast"), std::string::npos);
}

}  // namespace
}  // namespace parallax
