// Helpers for tests that run sessions under a memory budget and compare
// against an unconstrained run (memory_split*_test.cc).
#ifndef PARALLAX_TESTS_SPLIT_RUN_UTIL_H_
#define PARALLAX_TESTS_SPLIT_RUN_UTIL_H_

#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

#include "parallax/parallax.h"

namespace parallax::testing {

// Uniform [-2, 2) floats of `shape`.
inline Tensor Random(Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2, 2);
  Tensor t = Tensor::Empty(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

// Runs `m` twice without a budget (the second run planned): its outputs and
// that run's stats.
inline void FreeRun(const Model& m, const Session::NamedTensors& inputs, std::vector<Tensor>* want,
                    RunStats* stats) {
  auto free = Session::Create(m, SessionOptions{});
  ASSERT_TRUE(free.ok()) << free.status().ToString();
  ASSERT_TRUE(free->Run(inputs).ok());
  auto out = free->Run(inputs);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  *want = std::move(*out);
  *stats = free->last_stats();
}

inline void ExpectNear(const Tensor& got, const Tensor& want, double tolerance) {
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < got.numel(); ++i)
    EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], tolerance) << i;
}

}  // namespace parallax::testing

#endif  // PARALLAX_TESTS_SPLIT_RUN_UTIL_H_
