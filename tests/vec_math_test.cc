// The per-ISA float32 loops (vec_math.h): every variant this CPU runs must
// compute the scalar formulas bit for bit (so results never depend on the
// machine), and the reductions must stay accurate.
#include "backends/cpu/kernels/vec_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace parallax {
namespace {

using vec::BinaryOp;
using vec::Isa;
using vec::Kernels;
using vec::UnaryOp;

const std::vector<int64_t> kSizes = {1, 7, 17, 1000, 100003};

std::vector<const Kernels*> Variants() {
  std::vector<const Kernels*> v;
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512})
    if (const Kernels* k = vec::ForIsa(isa)) v.push_back(k);
  return v;
}

// Values in [-lim, lim] with specials (signed zeros, infinities, NaN, huge,
// tiny and denormal values) sprinkled in.
std::vector<float> Inputs(int64_t n, float lim, uint32_t seed) {
  static const float kSpecial[] = {0.0f,
                                   -0.0f,
                                   std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(),
                                   std::numeric_limits<float>::quiet_NaN(),
                                   100.0f,
                                   -100.0f,
                                   1e-30f,
                                   -3e-39f,
                                   88.5f,
                                   -87.5f};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-lim, lim);
  std::vector<float> x(static_cast<size_t>(n));
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = i % 13 == 5 ? kSpecial[(i / 13) % std::size(kSpecial)] : dist(rng);
  return x;
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// Bits, with every NaN mapped to one value: IEEE 754 leaves the sign and
// payload of an operation's NaN unspecified, and compilers differ there
// (e.g. sanitizer builds of the scalar reference).
uint32_t ValueBits(float f) { return std::isnan(f) ? 0x7fc00000u : Bits(f); }

// Distance in units in the last place between two finite floats.
int64_t UlpDistance(float a, float b) {
  auto key = [](float f) {
    const int64_t u = Bits(f);
    return u & 0x80000000u ? -(u & 0x7fffffff) : u;
  };
  return std::llabs(key(a) - key(b));
}

struct UnaryCase {
  UnaryOp op;
  const char* name;
  float alpha, beta;
};

const UnaryCase kUnaryCases[] = {
    {UnaryOp::kSigmoid, "Sigmoid", 0, 0},
    {UnaryOp::kTanh, "Tanh", 0, 0},
    {UnaryOp::kErf, "Erf", 0, 0},
    {UnaryOp::kExp, "Exp", 0, 0},
    {UnaryOp::kRelu, "Relu", 0, 0},
    {UnaryOp::kLeakyRelu, "LeakyRelu", 0.1f, 0},
    {UnaryOp::kHardSigmoid, "HardSigmoid", 0.2f, 0.5f},
    {UnaryOp::kHardSwish, "HardSwish", 0, 0},
    {UnaryOp::kClip, "Clip", -1.5f, 2.5f},
    {UnaryOp::kSqrt, "Sqrt", 0, 0},
    {UnaryOp::kNeg, "Neg", 0, 0},
    {UnaryOp::kAbs, "Abs", 0, 0},
    {UnaryOp::kReciprocal, "Reciprocal", 0, 0},
    {UnaryOp::kGelu, "Gelu", 0, 0},
    {UnaryOp::kGeluTanh, "GeluTanh", 0, 0},
    {UnaryOp::kElu, "Elu", 1.0f, 0},
    {UnaryOp::kSoftsign, "Softsign", 0, 0},
    {UnaryOp::kMish, "Mish", 0, 0},
};

TEST(VecMath, EveryUnaryOpIsCovered) {
  EXPECT_EQ(static_cast<int>(std::size(kUnaryCases)), vec::kNumUnaryOps);
}

TEST(VecMath, BestVariantRunsHere) {
  ASSERT_NE(vec::ForIsa(Isa::kBaseline), nullptr);
  EXPECT_EQ(vec::ForIsa(vec::Best().isa), &vec::Best());
}

TEST(VecMath, UnaryMatchesScalarFormulaBitForBitOnEveryIsa) {
  for (const UnaryCase& c : kUnaryCases) {
    for (int64_t n : kSizes) {
      const std::vector<float> x = Inputs(n + 1, 12.0f, static_cast<uint32_t>(n));
      for (const Kernels* k : Variants()) {
        // Offset by one element so the loops also start unaligned.
        std::vector<float> y(static_cast<size_t>(n));
        k->unary(c.op, x.data() + 1, y.data(), n, c.alpha, c.beta);
        std::vector<float> inplace(x.begin() + 1, x.end());
        k->unary(c.op, inplace.data(), inplace.data(), n, c.alpha, c.beta);
        for (int64_t i = 0; i < n; ++i) {
          const float want = vec::ScalarUnary(c.op, x[static_cast<size_t>(i) + 1], c.alpha, c.beta);
          ASSERT_EQ(ValueBits(y[static_cast<size_t>(i)]), ValueBits(want))
              << c.name << " " << vec::IsaName(k->isa) << " n=" << n << " x=" << x[i + 1];
          ASSERT_EQ(ValueBits(inplace[static_cast<size_t>(i)]), ValueBits(want))
              << c.name << " in place";
        }
      }
    }
  }
}

TEST(VecMath, SigmoidIsWithinUlpsOfLibm) {
  const std::vector<float> x = Inputs(100003, 30.0f, 7);
  for (const Kernels* k : Variants()) {
    std::vector<float> y(x.size());
    k->unary(UnaryOp::kSigmoid, x.data(), y.data(), static_cast<int64_t>(x.size()), 0, 0);
    int64_t worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      if (std::isnan(x[i])) {
        EXPECT_TRUE(std::isnan(y[i]));
        continue;
      }
      const float want = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x[i]))));
      // ExpF flushes results below FLT_MIN to zero, so sigmoid(x < -87.3) is 0.
      if (want < std::numeric_limits<float>::min()) {
        EXPECT_LT(y[i], 2 * std::numeric_limits<float>::min());
        continue;
      }
      worst = std::max(worst, UlpDistance(y[i], want));
    }
    EXPECT_LE(worst, 4) << vec::IsaName(k->isa);
  }
}

TEST(VecMath, BinaryIsExactForEveryStrideOnEveryIsa) {
  for (int64_t n : kSizes) {
    const std::vector<float> a = Inputs(n, 50.0f, 1), b = Inputs(n, 50.0f, 2);
    for (BinaryOp op :
         {BinaryOp::kAdd, BinaryOp::kSub, BinaryOp::kMul, BinaryOp::kDiv, BinaryOp::kMax}) {
      for (int64_t sa : {0, 1}) {
        for (int64_t sb : {0, 1}) {
          for (const Kernels* k : Variants()) {
            std::vector<float> y(static_cast<size_t>(n));
            k->binary(op, a.data(), sa, b.data(), sb, y.data(), n);
            for (int64_t i = 0; i < n; ++i) {
              const float want = vec::ScalarBinary(op, a[static_cast<size_t>(i * sa)],
                                                   b[static_cast<size_t>(i * sb)]);
              ASSERT_EQ(Bits(y[static_cast<size_t>(i)]), Bits(want))
                  << "op " << static_cast<int>(op) << " sa=" << sa << " sb=" << sb << " n=" << n
                  << " " << vec::IsaName(k->isa);
            }
          }
        }
      }
    }
  }
}

// The reductions: identical bits on every ISA, and close to a double
// reference.
TEST(VecMath, RowReductionsAgreeAcrossIsasAndWithDouble) {
  for (int64_t n : kSizes) {
    std::vector<float> x = Inputs(n, 8.0f, static_cast<uint32_t>(n) + 3);
    for (float& v : x)
      if (!std::isfinite(v) || std::fabs(v) > 8.0f) v = 0.5f;
    double dmax = x[0], dsum = 0, dmean = 0, dvar = 0;
    for (float v : x) dmax = std::max<double>(dmax, v);
    for (float v : x) dsum += std::exp(static_cast<double>(v) - dmax);
    for (float v : x) dmean += v;
    dmean /= static_cast<double>(n);
    for (float v : x) dvar += (v - dmean) * (v - dmean);
    dvar /= static_cast<double>(n);
    const std::vector<float> scale = Inputs(n, 2.0f, 9), bias = Inputs(n, 2.0f, 10);
    std::vector<uint32_t> first;
    for (const Kernels* k : Variants()) {
      const float mx = k->max(x.data(), n);
      std::vector<float> e(x.size());
      const float sum = k->exp_shift_sum(x.data(), mx, e.data(), n);
      float mean = 0, inv = 0;
      k->mean_inv_std(x.data(), n, 1e-5f, &mean, &inv);
      std::vector<float> y(x.size());
      k->norm_affine(x.data(), mean, inv, scale.data(), bias.data(), y.data(), n);
      EXPECT_EQ(mx, static_cast<float>(dmax));
      EXPECT_NEAR(sum, dsum, 1e-5 * dsum);
      EXPECT_NEAR(mean, dmean, 1e-5);
      EXPECT_NEAR(inv, 1.0 / std::sqrt(dvar + 1e-5), 1e-5 / std::sqrt(dvar + 1e-5));
      for (int64_t i = 0; i < n; ++i) {
        const size_t u = static_cast<size_t>(i);
        ASSERT_EQ(Bits(e[u]), Bits(ExpF(x[u] - mx)));
        ASSERT_EQ(Bits(y[u]), Bits(((x[u] - mean) * inv) * scale[u] + bias[u]));
      }
      std::vector<uint32_t> bits = {Bits(mx), Bits(sum), Bits(mean), Bits(inv)};
      if (first.empty()) first = bits;
      EXPECT_EQ(bits, first) << vec::IsaName(k->isa) << " n=" << n;
    }
  }
}

TEST(VecMath, RowDotsAgreeAcrossIsasRowSplitsAndWithDouble) {
  for (int64_t k : {1, 15, 16, 47, 384}) {
    const int64_t m = 9, lda = k + 3;  // Rows padded: lda is honoured.
    std::vector<float> a = Inputs(m * lda, 2.0f, static_cast<uint32_t>(k)), x = Inputs(k, 2.0f, 5);
    for (float& v : a)
      if (!std::isfinite(v) || std::fabs(v) > 2.0f) v = 0.25f;
    for (float& v : x)
      if (!std::isfinite(v) || std::fabs(v) > 2.0f) v = -0.5f;
    std::vector<uint32_t> first;
    for (const Kernels* kv : Variants()) {
      std::vector<float> y(static_cast<size_t>(m)), y_split(y.size());
      kv->row_dots(a.data(), lda, x.data(), k, m, 0.5f, y.data());
      for (int64_t r0 : {0, 4, 5})  // Rows split as intra-op tiles would.
        kv->row_dots(a.data() + r0 * lda, lda, x.data(), k,
                     (r0 == 0   ? 4
                      : r0 == 4 ? 1
                                : m - 5),
                     0.5f, y_split.data() + r0);
      std::vector<uint32_t> bits;
      for (int64_t r = 0; r < m; ++r) {
        double want = 0, mag = 0;
        for (int64_t j = 0; j < k; ++j) {
          want += static_cast<double>(a[r * lda + j]) * x[j];
          mag += std::fabs(static_cast<double>(a[r * lda + j]) * x[j]);
        }
        EXPECT_NEAR(y[r], 0.5 * want, 1e-6 * mag + 1e-30) << "k=" << k << " row " << r;
        EXPECT_EQ(Bits(y[r]), Bits(y_split[r]));
        bits.push_back(Bits(y[r]));
      }
      if (first.empty()) first = bits;
      EXPECT_EQ(bits, first) << vec::IsaName(kv->isa) << " k=" << k;
    }
  }
}

TEST(VecMath, MaxSkipsNaNAfterTheFirstElement) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x(40, 1.0f);
  x[3] = nan;
  x[21] = 5.0f;
  x[39] = nan;
  for (const Kernels* k : Variants()) EXPECT_EQ(k->max(x.data(), 40), 5.0f);
  x[0] = nan;
  for (const Kernels* k : Variants()) EXPECT_TRUE(std::isnan(k->max(x.data(), 40)));
}

// Softmax's exp(x - max) takes the short path: the same bits as ExpF on every
// non-positive float (sampled through the bit patterns, every exponent), the
// boundaries and NaN.
TEST(VecMath, ExpNonPositiveIsExpFBitForBit) {
  std::vector<float> xs = {0.0f,
                           -0.0f,
                           -87.33654f,
                           -87.3365f,
                           -87.34f,
                           -88.0f,
                           -103.9f,
                           -1e30f,
                           -std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::denorm_min()};
  for (uint64_t b = 0x80000000u; b < 0xff800000u; b += 4099) {
    float x;
    const uint32_t bits = static_cast<uint32_t>(b);
    std::memcpy(&x, &bits, sizeof(x));
    xs.push_back(x);
  }
  for (float x : xs) ASSERT_EQ(Bits(ExpNonPositive(x)), Bits(ExpF(x))) << x;
  EXPECT_TRUE(std::isnan(ExpNonPositive(std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace parallax
