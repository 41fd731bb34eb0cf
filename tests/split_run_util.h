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

// Runs `s` `reps` times on `inputs`: each run must run split (between
// `min_regions` and `max_regions` regions, at least 2 pieces), stay within
// `budget` and give `want` (output 0) to `tolerance`.
inline void ExpectSplitRuns(Session& s, const Session::NamedTensors& inputs, const Tensor& want,
                            size_t budget, double tolerance, int reps = 1, int min_regions = 1,
                            int max_regions = 1 << 30) {
  for (int rep = 0; rep < reps; ++rep) {
    auto got = s.Run(inputs);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    const RunStats st = s.last_stats();
    EXPECT_GE(st.split_regions, min_regions) << rep;
    EXPECT_LE(st.split_regions, max_regions) << rep;
    EXPECT_GE(st.split_pieces, 2) << rep;
    EXPECT_LE(st.measured_activation_bytes, budget) << rep;
    ExpectNear((*got)[0], want, tolerance);
  }
}

}  // namespace parallax::testing

#endif  // PARALLAX_TESTS_SPLIT_RUN_UTIL_H_
