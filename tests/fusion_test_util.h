// Helpers for the fusion tests: build tiny ONNX models, load them with and
// without fusion, run both on the same random inputs and compare.
#ifndef PARALLAX_TESTS_FUSION_TEST_UTIL_H_
#define PARALLAX_TESTS_FUSION_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "model_builder.h"
#include "parallax/parallax.h"
#include "runtime/model_data.h"

namespace parallax::testing {

constexpr int kFloat = onnx::TensorProto::FLOAT;

inline void AttrF(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

inline void AttrI(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

inline void AttrInts(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

inline void AttrS(onnx::NodeProto* n, const std::string& name, const std::string& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

// Deterministic values in [lo, hi).
inline std::vector<float> Values(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

inline Tensor RandomTensor(Shape shape, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  return Tensor::FromVector<float>(DType::kFloat32, shape,
                                   Values(NumElements(shape), seed, lo, hi));
}

// Float initializer of random values.
inline void RandomInit(ModelBuilder& b, const std::string& name, std::vector<int64_t> dims,
                       uint32_t seed, float lo = -1.f, float hi = 1.f) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  b.FloatInit(name, dims, Values(n, seed, lo, hi));
}

// Ops of the optimised main graph by "domain::type" ("" domain: type only).
inline std::map<std::string, int> OpCounts(const Model& m) {
  std::map<std::string, int> ops;
  for (const Node& n : m.data().graph->nodes)
    ++ops[(n.domain.empty() ? "" : n.domain + "::") + n.op_type];
  return ops;
}

// The single node of `type` in the optimised main graph (fails the test
// when there is not exactly one).
inline const Node* OnlyNode(const Model& m, const std::string& op_type) {
  const Node* found = nullptr;
  int count = 0;
  for (const Node& n : m.data().graph->nodes)
    if (n.op_type == op_type) {
      found = &n;
      ++count;
    }
  EXPECT_EQ(count, 1) << op_type;
  return count == 1 ? found : nullptr;
}

inline int64_t Fired(const Model& m, const std::string& pass) {
  auto it = m.fusions().find(pass);
  return it == m.fusions().end() ? 0 : it->second;
}

inline std::vector<Tensor> RunModel(const Model& m, const Session::NamedTensors& inputs) {
  Result<Session> s = Session::Create(m);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  Result<std::vector<Tensor>> out = s->Run(inputs);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? *out : std::vector<Tensor>{};
}

// Loads `path` fused and unfused, runs both on `inputs`, expects every output
// within `rtol` of the unfused output's largest magnitude; returns the fused
// model (nullopt when loading failed, which fails the test).
inline std::optional<Model> LoadAndCompare(const std::string& path,
                                           const Session::NamedTensors& inputs,
                                           double rtol = 1e-5) {
  Result<Model> fused = Model::Load(path);
  LoadOptions off;
  off.fusion = false;
  Result<Model> plain = Model::Load(path, off);
  EXPECT_TRUE(fused.ok()) << fused.status().ToString();
  EXPECT_TRUE(plain.ok()) << plain.status().ToString();
  if (!fused.ok() || !plain.ok()) return std::nullopt;
  EXPECT_TRUE(plain->fusions().empty());
  std::vector<Tensor> a = RunModel(*fused, inputs), b = RunModel(*plain, inputs);
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_EQ(a[i].shape(), b[i].shape()) << "output " << i;
    if (a[i].shape() != b[i].shape() || a[i].dtype() != DType::kFloat32) continue;
    double worst = 0, scale = 1e-6;
    for (int64_t k = 0; k < b[i].numel(); ++k) {
      worst = std::max(worst, std::fabs(double{a[i].data<float>()[k]} - b[i].data<float>()[k]));
      scale = std::max(scale, std::fabs(double{b[i].data<float>()[k]}));
    }
    EXPECT_LE(worst, rtol * scale) << "output " << i << ": max diff " << worst << ", max " << scale;
  }
  return *fused;
}

}  // namespace parallax::testing

#endif  // PARALLAX_TESTS_FUSION_TEST_UTIL_H_
