// Bad input gets a clear error that names what is wrong: never a crash.
#include <gtest/gtest.h>

#include <fstream>

#include "model_builder.h"
#include "parallax/parallax.h"

namespace parallax {
namespace {

using testing::ModelBuilder;

// y = Relu(x) with x: float [N, 4].
std::string ReluModel() {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 4}).Output("y", onnx::TensorProto::FLOAT, {-1, 4});
  b.Node("Relu", {"x"}, {"y"});
  return b.Write("relu");
}

Result<Session> MakeSession(const std::string& path) {
  Result<Model> m = Model::Load(path);
  if (!m.ok()) return m.status();
  return Session::Create(*m);
}

#define SESSION_OR_FAIL(var, path)                                    \
  Result<Session> var##_result = MakeSession(path);                   \
  ASSERT_TRUE(var##_result.ok()) << var##_result.status().ToString(); \
  Session& var = *var##_result

void ExpectError(const Status& s, StatusCode code, const std::vector<std::string>& fragments) {
  EXPECT_EQ(s.code(), code) << s.ToString();
  for (const auto& f : fragments)
    EXPECT_NE(s.message().find(f), std::string::npos) << "'" << f << "' not in: " << s.message();
}

TEST(Errors, RunsWhenInputsAreRight) {
  SESSION_OR_FAIL(s, ReluModel());
  Tensor x = Tensor::FromVector<float>(DType::kFloat32, {2, 4}, {-1, 2, -3, 4, 5, -6, 7, -8});
  Result<std::vector<Tensor>> out = s.Run({{"x", x}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<float>()[1], 2.0f);
  EXPECT_EQ((*out)[0].data<float>()[2], 0.0f);
}

TEST(Errors, WrongInputName) {
  SESSION_OR_FAIL(s, ReluModel());
  auto out = s.Run({{"input", Tensor::Empty(DType::kFloat32, {1, 4})}});
  ExpectError(out.status(), StatusCode::kInvalidArgument, {"unknown input 'input'", "x"});
}

TEST(Errors, WrongDType) {
  SESSION_OR_FAIL(s, ReluModel());
  auto out = s.Run({{"x", Tensor::Empty(DType::kInt64, {1, 4})}});
  ExpectError(out.status(), StatusCode::kInvalidArgument, {"'x'", "int64", "float32"});
}

TEST(Errors, WrongShape) {
  SESSION_OR_FAIL(s, ReluModel());
  auto out = s.Run({{"x", Tensor::Empty(DType::kFloat32, {1, 5})}});
  ExpectError(out.status(), StatusCode::kInvalidArgument, {"'x'", "[1,5]", "[N,4]"});
  out = s.Run({{"x", Tensor::Empty(DType::kFloat32, {4})}});
  ExpectError(out.status(), StatusCode::kInvalidArgument, {"'x'", "[4]"});
}

TEST(Errors, MissingInput) {
  SESSION_OR_FAIL(s, ReluModel());
  auto out = s.Run({});
  ExpectError(out.status(), StatusCode::kInvalidArgument, {"missing input 'x'"});
}

TEST(Errors, MissingFile) {
  auto m = Model::Load("/nonexistent/model.onnx");
  ExpectError(m.status(), StatusCode::kNotFound, {"/nonexistent/model.onnx"});
}

TEST(Errors, TruncatedModel) {
  std::string good = ReluModel();
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::string path = good + ".truncated.onnx";
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  auto m = Model::Load(path);
  ExpectError(m.status(), StatusCode::kInvalidModel, {path});
}

TEST(Errors, GarbageModel) {
  std::string path = ::testing::TempDir() + "/garbage.onnx";
  std::ofstream(path) << "this is not a protobuf at all \xff\xfe";
  auto m = Model::Load(path);
  ExpectError(m.status(), StatusCode::kInvalidModel, {path});
}

TEST(Errors, EveryUnsupportedOpListedAtOnce) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Output("z", onnx::TensorProto::FLOAT, {2});
  b.Node("FancyOp", {"x"}, {"y"}, "com.example");
  b.Node("OtherOp", {"y"}, {"z"}, "com.example");
  auto* op = b.proto().add_opset_import();
  op->set_domain("com.example");
  op->set_version(3);
  std::string path = b.Write("unsupported");
  auto m = Model::Load(path);
  ExpectError(m.status(), StatusCode::kUnsupported,
              {path, "2 node(s)", "com.example::FancyOp", "com.example::OtherOp", "opset 3"});
}

TEST(Errors, UndefinedNodeInput) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Output("y", onnx::TensorProto::FLOAT, {2});
  b.Node("Relu", {"nowhere"}, {"y"});
  auto m = Model::Load(b.Write("undefined_input"));
  ExpectError(m.status(), StatusCode::kInvalidModel, {"Relu", "'nowhere'"});
}

TEST(Errors, OldIrVersionRejected) {
  ModelBuilder b(13, 2);
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Output("y", onnx::TensorProto::FLOAT, {2});
  b.Node("Relu", {"x"}, {"y"});
  auto m = Model::Load(b.Write("ir2"));
  ExpectError(m.status(), StatusCode::kUnsupported, {"IR version 2"});
}

TEST(Errors, BadThreadsOption) {
  auto m = Model::Load(ReluModel());
  ASSERT_TRUE(m.ok());
  SessionOptions o;
  o.threads = 0;
  ExpectError(Session::Create(*m, o).status(), StatusCode::kInvalidArgument, {"threads"});
  o.threads = 1;
  o.backend = "vulkan";
  ExpectError(Session::Create(*m, o).status(), StatusCode::kNotFound, {"vulkan"});
}

TEST(Errors, MemoryBudgetExceeded) {
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {1024}).Output("z", onnx::TensorProto::FLOAT, {1024});
  b.Node("Relu", {"x"}, {"y"});
  b.Node("Relu", {"y"}, {"z"});
  auto m = Model::Load(b.Write("budget"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  SessionOptions o;
  o.memory_budget_bytes = 100;
  auto s = Session::Create(*m, o);
  ASSERT_TRUE(s.ok());
  auto out = s->Run({{"x", Tensor::Empty(DType::kFloat32, {1024})}});
  ExpectError(out.status(), StatusCode::kResourceExhausted, {"memory budget", "100"});
}

}  // namespace
}  // namespace parallax
