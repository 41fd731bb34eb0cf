// The sequential executor: memory plans, plan caching per input shape,
// external data, control flow.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "model_builder.h"
#include "parallax/parallax.h"

namespace parallax {
namespace {

using testing::ModelBuilder;

// y = Relu(x) + Neg(x) ... a chain long enough that buffers get reused.
std::string ChainModel() {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1}).Output("y", onnx::TensorProto::FLOAT, {-1});
  b.Node("Relu", {"x"}, {"a"});
  b.Node("Neg", {"a"}, {"b"});
  b.Node("Relu", {"b"}, {"c"});
  b.Node("Add", {"c", "a"}, {"d"});
  b.Node("Neg", {"d"}, {"y"});
  return b.Write("chain");
}

std::vector<float> RunChain(Session& s, const std::vector<float>& x) {
  auto out = s.Run(
      {{"x", Tensor::FromVector<float>(DType::kFloat32, {static_cast<int64_t>(x.size())}, x)}});
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  const Tensor& y = (*out)[0];
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

TEST(Executor, PlansOnFirstRunAndReusesPerShape) {
  auto m = Model::Load(ChainModel());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto s = Session::Create(*m);
  ASSERT_TRUE(s.ok());
  // y = -(relu(-relu(x)) + relu(x)) = -relu(x)
  EXPECT_EQ(RunChain(*s, {1, -2, 3}), (std::vector<float>{-1, 0, -3}));
  EXPECT_EQ(s->last_stats().planned_activation_bytes, 0u);  // First run: dynamic, records sizes.
  EXPECT_EQ(RunChain(*s, {4, 5, -6}), (std::vector<float>{-4, -5, 0}));
  RunStats planned = s->last_stats();
  EXPECT_GT(planned.planned_activation_bytes, 0u);
  EXPECT_EQ(planned.dynamic_bytes, 0u);
  // Liveness reuse: 4 intermediates of 12 bytes, never more than 3 live.
  EXPECT_LE(planned.planned_activation_bytes, 3u * 64u);
  // A new shape gets its own plan; the old one is still valid afterwards.
  std::vector<float> big(1000, 2.0f);
  EXPECT_EQ(RunChain(*s, big), std::vector<float>(1000, -2.0f));
  EXPECT_EQ(RunChain(*s, big), std::vector<float>(1000, -2.0f));
  EXPECT_EQ(RunChain(*s, {-1, 7, 0}), (std::vector<float>{0, -7, 0}));
  EXPECT_EQ(s->last_stats().dynamic_bytes, 0u);
}

// Flatten hands out its input's bytes; the planner must keep them until the
// alias's last reader, or Neg(x) would reuse relu(x)'s slot before Add reads
// it through the alias.
TEST(Executor, ForwardedOutputsKeepTheirRootAlive) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1}).Output("y", onnx::TensorProto::FLOAT, {1, -1});
  b.Node("Relu", {"x"}, {"a"});
  b.Node("Flatten", {"a"}, {"f"})->add_attribute()->CopyFrom([] {
    onnx::AttributeProto at;
    at.set_name("axis");
    at.set_type(onnx::AttributeProto::INT);
    at.set_i(0);
    return at;
  }());
  b.Node("Neg", {"x"}, {"c"});
  b.Node("Neg", {"c"}, {"d"});
  b.Node("Add", {"f", "d"}, {"e"});
  b.Node("Neg", {"e"}, {"y"});
  auto m = Model::Load(b.Write("forward"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto s = Session::Create(*m);
  ASSERT_TRUE(s.ok());
  for (int run = 0; run < 3; ++run) {  // Runs 2 and 3 use the memory plan.
    std::vector<float> x = {1, -2, 3, -4, 5};
    auto out = s->Run({{"x", Tensor::FromVector<float>(DType::kFloat32, {5}, x)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ((*out)[0].shape(), (Shape{1, 5}));
    for (size_t i = 0; i < x.size(); ++i)  // y = -(relu(x) + x)
      EXPECT_EQ((*out)[0].data<float>()[i], -(std::max(x[i], 0.f) + x[i])) << run << " " << i;
  }
  EXPECT_GT(s->last_stats().planned_activation_bytes, 0u);
}

TEST(Executor, ExternalDataInitializers) {
  auto dir = std::filesystem::temp_directory_path() / "parallax_external";
  std::filesystem::create_directories(dir);
  float w[4] = {1.5f, -2.f, 3.f, 0.25f};
  std::ofstream(dir / "weights.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(w), sizeof w);
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {4}).Output("y", onnx::TensorProto::FLOAT, {4});
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(4);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = t->add_external_data();
  loc->set_key("location");
  loc->set_value("weights.bin");
  b.Node("Add", {"x", "w"}, {"y"});
  std::string path = (dir / "model.onnx").string();
  std::ofstream f(path, std::ios::binary);
  b.proto().SerializeToOstream(&f);
  f.close();
  auto m = Model::Load(path);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto s = Session::Create(*m);
  ASSERT_TRUE(s.ok());
  auto out = s->Run({{"x", Tensor::FromVector<float>(DType::kFloat32, {4}, {1, 1, 1, 1})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<float>()[0], 2.5f);
  EXPECT_EQ((*out)[0].data<float>()[3], 1.25f);

  std::filesystem::remove(dir / "weights.bin");
  auto missing = Model::Load(path);
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find("weights.bin"), std::string::npos);
}

// Two data-dependent intermediates (NonZero of each input) whose sizes peak
// on different runs at the same input shape: after each has been seen at its
// largest, runs fit the plan (nothing allocated outside it, no re-plan).
TEST(Executor, DataDependentSizesSettleIntoThePlan) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {8}).Input("y", onnx::TensorProto::FLOAT, {8});
  b.Output("sx", onnx::TensorProto::INT64, {2}).Output("sy", onnx::TensorProto::INT64, {2});
  b.Node("NonZero", {"x"}, {"nx"});
  b.Node("NonZero", {"y"}, {"ny"});
  b.Node("Shape", {"nx"}, {"sx"});
  b.Node("Shape", {"ny"}, {"sy"});
  auto m = Model::Load(b.Write("nonzero2"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto s = Session::Create(*m);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto input = [](int nonzeros) {
    std::vector<float> v(8, 0.f);
    for (int i = 0; i < nonzeros; ++i) v[static_cast<size_t>(i)] = 1.f;
    return Tensor::FromVector<float>(DType::kFloat32, {8}, v);
  };
  const int dense = 8, sparse = 1;
  for (int run = 0; run < 6; ++run) {
    const bool x_dense = run % 2 == 0;
    auto out =
        s->Run({{"x", input(x_dense ? dense : sparse)}, {"y", input(x_dense ? sparse : dense)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].data<int64_t>()[1], x_dense ? dense : sparse) << run;
    EXPECT_EQ((*out)[1].data<int64_t>()[1], x_dense ? sparse : dense) << run;
    // Run 0 plans; run 1 grows ny past its slot; from run 2 on both fit.
    if (run >= 2) {
      EXPECT_EQ(s->last_stats().dynamic_bytes, 0u) << run;
    } else if (run == 1) {
      EXPECT_GT(s->last_stats().dynamic_bytes, 0u);
    }
  }
}

// Gives `loop` a body (Identity, Mul, Identity) that doubles its carried
// value, with a scan output of every intermediate; "two" is captured.
void AddDoublingBody(onnx::NodeProto* loop) {
  auto* attr = loop->add_attribute();
  attr->set_name("body");
  attr->set_type(onnx::AttributeProto::GRAPH);
  auto* g = attr->mutable_g();
  g->set_name("body");
  auto add_io = [](google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list, const char* name,
                   int type) {
    auto* v = list->Add();
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(type);
  };
  add_io(g->mutable_input(), "i", onnx::TensorProto::INT64);
  add_io(g->mutable_input(), "cond_in", onnx::TensorProto::BOOL);
  add_io(g->mutable_input(), "v", onnx::TensorProto::FLOAT);
  add_io(g->mutable_output(), "cond_out", onnx::TensorProto::BOOL);
  add_io(g->mutable_output(), "v_out", onnx::TensorProto::FLOAT);
  add_io(g->mutable_output(), "scan", onnx::TensorProto::FLOAT);
  auto* id = g->add_node();
  id->set_op_type("Identity");
  id->add_input("cond_in");
  id->add_output("cond_out");
  auto* mul = g->add_node();
  mul->set_op_type("Mul");
  mul->add_input("v");
  mul->add_input("two");  // Captured from the outer graph.
  mul->add_output("v_out");
  auto* cp = g->add_node();
  cp->set_op_type("Identity");
  cp->add_input("v_out");
  cp->add_output("scan");
}

// Loop computing x * 2^n, with a scan output of every intermediate.
std::string DoublingLoopModel() {
  ModelBuilder b(13);
  b.Input("n", onnx::TensorProto::INT64, {}).Input("x", onnx::TensorProto::FLOAT, {2});
  b.Output("final", onnx::TensorProto::FLOAT, {2}).Output("all", onnx::TensorProto::FLOAT, {-1, 2});
  b.FloatInit("two", {1}, {2.f});
  AddDoublingBody(b.Node("Loop", {"n", "", "x"}, {"final", "all"}));
  return b.Write("loop");
}

Session::NamedTensors LoopInputs(int64_t n) {
  return {{"n", Tensor::FromVector<int64_t>(DType::kInt64, {}, {n})},
          {"x", Tensor::FromVector<float>(DType::kFloat32, {2}, {1.f, -3.f})}};
}

// Exercises captures and dynamic trip counts.
TEST(Executor, LoopWithScanOutputs) {
  auto m = Model::Load(DoublingLoopModel());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto s = Session::Create(*m);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (int64_t n : {0, 1, 3}) {
    auto out = s->Run(LoopInputs(n));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    float scale = static_cast<float>(1 << n);
    EXPECT_EQ((*out)[0].data<float>()[1], -3.f * scale);
    EXPECT_EQ((*out)[1].shape(), (Shape{n, 2}));
    if (n == 3) {
      EXPECT_EQ((*out)[1].data<float>()[0], 2.f);
      EXPECT_EQ((*out)[1].data<float>()[4], 8.f);
    }
  }
}

// Loop whose body has intermediates (v * 2, negated twice) of x's 4096
// floats: the body's own arena, which the session budget must cover too.
std::string LoopWithBodyArenaModel() {
  ModelBuilder b(13);
  b.Input("n", onnx::TensorProto::INT64, {}).Input("x", onnx::TensorProto::FLOAT, {4096});
  b.Output("final", onnx::TensorProto::FLOAT, {4096});
  b.FloatInit("two", {1}, {2.f});
  onnx::NodeProto* loop = b.Node("Loop", {"n", "", "x"}, {"final"});
  auto* attr = loop->add_attribute();
  attr->set_name("body");
  attr->set_type(onnx::AttributeProto::GRAPH);
  onnx::GraphProto* g = attr->mutable_g();
  g->set_name("body");
  for (auto [name, type] : {std::pair<const char*, int>{"i", onnx::TensorProto::INT64},
                            {"cond_in", onnx::TensorProto::BOOL},
                            {"v", onnx::TensorProto::FLOAT}}) {
    auto* in = g->add_input();
    in->set_name(name);
    in->mutable_type()->mutable_tensor_type()->set_elem_type(type);
  }
  for (auto [name, type] : {std::pair<const char*, int>{"cond_out", onnx::TensorProto::BOOL},
                            {"v_out", onnx::TensorProto::FLOAT}}) {
    auto* out = g->add_output();
    out->set_name(name);
    out->mutable_type()->mutable_tensor_type()->set_elem_type(type);
  }
  auto node = [&](const char* op, std::vector<const char*> ins, const char* out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    for (const char* i : ins) n->add_input(i);
    n->add_output(out);
  };
  node("Identity", {"cond_in"}, "cond_out");
  node("Mul", {"v", "two"}, "a");
  node("Exp", {"a"}, "e");
  node("Add", {"a", "e"}, "s");  // a and e live together: 32 KiB.
  node("Sub", {"s", "e"}, "v_out");
  return b.Write("loop_body_arena");
}

// The budget covers subgraph bodies: their arenas are reported, a budget
// with room runs, and one below what the body needs fails naming the Loop
// (it used to run the body unbudgeted).
TEST(Executor, SubgraphBodiesRunWithinTheBudget) {
  auto m = Model::Load(LoopWithBodyArenaModel());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  Session::NamedTensors in = {{"n", Tensor::FromVector<int64_t>(DType::kInt64, {}, {3})},
                              {"x", Tensor::Empty(DType::kFloat32, {4096})}};
  for (int64_t i = 0; i < 4096; ++i) in[1].second.data<float>()[i] = 0.25f;
  SessionOptions unlimited;
  unlimited.memory_budget_bytes = -1;
  auto free_session = Session::Create(*m, unlimited);
  ASSERT_TRUE(free_session.ok()) << free_session.status().ToString();
  for (int rep = 0; rep < 2; ++rep) ASSERT_TRUE(free_session->Run(in).ok());
  const RunStats free_stats = free_session->last_stats();
  EXPECT_GE(free_stats.subgraph_arena_bytes, 2u * 4096 * sizeof(float));
  const size_t need = free_stats.planned_activation_bytes + free_stats.subgraph_arena_bytes;

  SessionOptions roomy;
  roomy.memory_budget_bytes = static_cast<int64_t>(4 * need);
  auto ok_session = Session::Create(*m, roomy);
  ASSERT_TRUE(ok_session.ok());
  for (int rep = 0; rep < 3; ++rep) {
    auto out = ok_session->Run(in);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].data<float>()[7], 2.f);  // 0.25 * 2^3
    const RunStats st = ok_session->last_stats();
    EXPECT_LE(st.planned_activation_bytes + st.subgraph_arena_bytes, 4 * need);
  }

  SessionOptions tight;
  tight.memory_budget_bytes = static_cast<int64_t>(free_stats.subgraph_arena_bytes / 2);
  auto tight_session = Session::Create(*m, tight);
  ASSERT_TRUE(tight_session.ok());
  auto out = tight_session->Run(in);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(out.status().message().find("Loop node"), std::string::npos) << out.status().ToString();
  EXPECT_NE(out.status().message().find("iteration 0"), std::string::npos)
      << out.status().ToString();
}

// A trace shows body ops nested in their Loop's slice: one slice for the Loop
// and one per body node per iteration; only the main graph samples memory.
TEST(Executor, TraceRecordsLoopBodyOps) {
  auto m = Model::Load(DoublingLoopModel());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  SessionOptions opts;
  opts.threads = 2;
  auto s = Session::Create(*m, opts);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(s->Run(LoopInputs(3)).ok());
  s->StartTrace();
  ASSERT_TRUE(s->Run(LoopInputs(3)).ok());
  const std::string path =
      (std::filesystem::temp_directory_path() / "parallax_loop_trace.json").string();
  ASSERT_TRUE(s->WriteTrace(path).ok());
  std::ifstream f(path);
  const std::string json((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t p = json.find(needle); p != std::string::npos; p = json.find(needle, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("\"ph\":\"X\""), 1u + 3u * 3u);
  EXPECT_EQ(count("\"op\":\"Mul\""), 3u);
  EXPECT_EQ(count("\"op\":\"Loop\""), 1u);
  EXPECT_EQ(count("\"ph\":\"C\""), 1u);  // After the Loop only.
  std::filesystem::remove(path);
}

// In-place execution ---------------------------------------------------------

// Runs `model` twice (the second run uses the memory plan) on x and returns
// the second run's output 0 and planned arena bytes.
std::pair<std::vector<float>, size_t> RunTwice(const std::string& model, ExecutionMode mode,
                                               int threads, bool in_place,
                                               const Session::NamedTensors& inputs) {
  auto m = Model::Load(model);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok()) return {};
  SessionOptions opts;
  opts.mode = mode;
  opts.threads = threads;
  opts.in_place = in_place;
  auto s = Session::Create(*m, opts);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  std::vector<float> y;
  for (int run = 0; run < 2; ++run) {
    auto out = s->Run(inputs);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    if (!out.ok()) return {};
    const Tensor& t = (*out)[0];
    y.assign(t.data<float>(), t.data<float>() + t.numel());
  }
  return {y, s->last_stats().planned_activation_bytes};
}

Session::NamedTensors Ramp(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.01f - 5.f;
  return {{"x", Tensor::FromVector<float>(DType::kFloat32, {n}, x)}};
}

// Exp, then Relu, Sigmoid and Softmax each write over their input (nothing
// else reads it): one 4000-byte buffer holds the chain instead of two, and
// the bits are those of separate buffers.
TEST(Executor, InPlaceChainRunsInOneBuffer) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1}).Output("y", onnx::TensorProto::FLOAT, {-1});
  b.Node("Exp", {"x"}, {"a"});
  b.Node("Relu", {"a"}, {"b"});
  b.Node("Sigmoid", {"b"}, {"c"});
  b.Node("Softmax", {"c"}, {"d"});
  b.Node("Neg", {"d"}, {"y"});
  const std::string model = b.Write("inplace_chain");
  const Session::NamedTensors x = Ramp(1000);
  for (ExecutionMode mode : {ExecutionMode::kSequential, ExecutionMode::kDataflow}) {
    auto [y, bytes] = RunTwice(model, mode, 2, true, x);
    auto [y_sep, bytes_sep] = RunTwice(model, mode, 2, false, x);
    EXPECT_EQ(bytes, 4032u) << ExecutionModeName(mode);
    EXPECT_EQ(bytes_sep, 2u * 4032u) << ExecutionModeName(mode);
    ASSERT_EQ(y.size(), 1000u);
    EXPECT_EQ(y, y_sep) << ExecutionModeName(mode);
    float sum = 0;
    for (float v : y) sum += v;
    EXPECT_NEAR(sum, -1.f, 1e-4f);
  }
}

// a = Exp(x) is read three times, so Neg must not write over it (Mul then
// writes over Neg's output, its only reader): y = a * -a + a.
TEST(Executor, InPlaceNeverOverwritesAValueReadLater) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1}).Output("y", onnx::TensorProto::FLOAT, {-1});
  b.Node("Exp", {"x"}, {"a"});
  b.Node("Neg", {"a"}, {"n"});
  b.Node("Mul", {"a", "n"}, {"m"});
  b.Node("Add", {"m", "a"}, {"y"});
  const std::string model = b.Write("inplace_shared");
  const Session::NamedTensors x = Ramp(64);
  for (ExecutionMode mode : {ExecutionMode::kSequential, ExecutionMode::kDataflow}) {
    auto [y, bytes] = RunTwice(model, mode, 2, true, x);
    ASSERT_EQ(y.size(), 64u);
    for (size_t i = 0; i < y.size(); ++i) {
      const float a = std::exp(x[0].second.data<float>()[i]);
      EXPECT_FLOAT_EQ(y[i], a * -a + a) << i;
    }
  }
}

// A Loop that runs zero times outputs its initial value, the caller's input
// tensor itself: Neg, though its only reader, must not write over it.
TEST(Executor, InPlaceNeverWritesOverBytesItDoesNotOwn) {
  ModelBuilder b(13);
  b.Input("n", onnx::TensorProto::INT64, {}).Input("x", onnx::TensorProto::FLOAT, {2});
  b.Output("y", onnx::TensorProto::FLOAT, {2});
  b.FloatInit("two", {1}, {2.f});
  AddDoublingBody(b.Node("Loop", {"n", "", "x"}, {"final", "all"}));
  b.Node("Neg", {"final"}, {"z"});
  b.Node("Mul", {"z", "two"}, {"y"});
  auto m = Model::Load(b.Write("loop_neg"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto s = Session::Create(*m);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (int64_t n : {0, 0, 0, 2, 0}) {
    Session::NamedTensors in = LoopInputs(n);
    auto out = s->Run(in);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(in[1].second.data<float>()[0], 1.f) << "input overwritten, n = " << n;
    EXPECT_EQ(in[1].second.data<float>()[1], -3.f) << "input overwritten, n = " << n;
    const float scale = static_cast<float>(1 << n);
    EXPECT_EQ((*out)[0].data<float>()[0], -2.f * scale) << n;
    EXPECT_EQ((*out)[0].data<float>()[1], 6.f * scale) << n;
  }
}

// Mul may write over s (its only reader, shape unknown until run time), but
// s turns out to broadcast, so m gets its own bytes, which Add then writes
// over: m's bytes must outlive p's last reader, or t (computed after Add)
// could take them in the plan. y = e^x e^z + 3 e^x.
TEST(Executor, AliasOfAnOutputThatDidNotShareKeepsItsBytes) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1}).Input("z", onnx::TensorProto::FLOAT, {-1}, "M");
  b.Output("y", onnx::TensorProto::FLOAT, {-1});
  b.Node("Exp", {"x"}, {"a"});
  b.Node("Exp", {"z"}, {"s"});
  b.Node("Mul", {"a", "s"}, {"m"});
  b.Node("Add", {"m", "a"}, {"p"});
  b.Node("Exp", {"x"}, {"t"});
  b.Node("Add", {"p", "t"}, {"q"});
  b.Node("Add", {"q", "a"}, {"y"});  // a stays live: t can only take m's bytes.
  const std::string model = b.Write("inplace_fallback");
  Session::NamedTensors in = Ramp(256);
  in.emplace_back("z", Tensor::FromVector<float>(DType::kFloat32, {1}, {0.5f}));
  for (ExecutionMode mode : {ExecutionMode::kSequential, ExecutionMode::kDataflow}) {
    auto [y, bytes] = RunTwice(model, mode, 2, true, in);
    ASSERT_EQ(y.size(), 256u);
    for (size_t i = 0; i < y.size(); ++i) {
      const float e = std::exp(in[0].second.data<float>()[i]);
      EXPECT_FLOAT_EQ(y[i], e * std::exp(0.5f) + e + e + e) << ExecutionModeName(mode) << " " << i;
    }
  }
}

}  // namespace
}  // namespace parallax
