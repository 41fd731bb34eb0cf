// Float32 leaf loops of the long-tail CPU kernels (activations, broadcast
// arithmetic, softmax and layer-norm rows), compiled once per ISA level
// (baseline x86-64, AVX2, AVX-512F) and picked at run time from what the CPU
// supports (the environment variable PARALLAX_VEC_ISA=baseline|avx2|avx512
// caps the level, for benchmarking). Callers split work into ranges/rows (and
// threads) themselves.
//
// Every ISA variant performs the same IEEE operations in the same order (no
// FMA contraction, fixed 16-lane reduction trees), so results are
// bit-identical whichever variant runs; only the speed differs.
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_VEC_MATH_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_VEC_MATH_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backends/cpu/kernels/fast_math.h"

namespace parallax {
namespace vec {

enum class Isa { kBaseline, kAvx2, kAvx512 };
const char* IsaName(Isa isa);

// Unary float32 maps; the per-element formulas are the Scalar* functions
// below (alpha/beta are the op's attributes where it has any).
enum class UnaryOp {
  kSigmoid,
  kTanh,
  kErf,
  kExp,
  kRelu,
  kLeakyRelu,    // alpha
  kHardSigmoid,  // alpha, beta
  kHardSwish,
  kClip,  // alpha = min, beta = max
  kSqrt,
  kNeg,
  kAbs,
  kReciprocal,
  kGelu,      // Exact (erf) form.
  kGeluTanh,  // approximate = "tanh".
  kElu,       // alpha
  kSoftsign,
  kMish,
};
constexpr int kNumUnaryOps = static_cast<int>(UnaryOp::kMish) + 1;

// kMax is `b > a ? b : a` (keeps a when b is NaN), for running maxima.
enum class BinaryOp { kAdd, kSub, kMul, kDiv, kMax };

// The element formula of each UnaryOp, shared by the vector loops and tests.
inline float ScalarUnary(UnaryOp op, float x, float alpha, float beta) {
  switch (op) {
    case UnaryOp::kSigmoid:
      return 1.0f / (1.0f + ExpF(-x));
    case UnaryOp::kTanh:
      return TanhF(x);
    case UnaryOp::kErf:
      return ErfF(x);
    case UnaryOp::kExp:
      return ExpF(x);
    case UnaryOp::kRelu:
      return x > 0.0f ? x : 0.0f;
    case UnaryOp::kLeakyRelu:
      return x >= 0.0f ? x : alpha * x;
    case UnaryOp::kHardSigmoid:
      return std::min(1.0f, std::max(0.0f, alpha * x + beta));
    case UnaryOp::kHardSwish:
      return x * std::min(1.0f, std::max(0.0f, x / 6.0f + 0.5f));
    case UnaryOp::kClip: {
      const float v = x < alpha ? alpha : x;
      return v > beta ? beta : v;
    }
    case UnaryOp::kSqrt:
      return std::sqrt(x);
    case UnaryOp::kNeg:
      return -x;
    case UnaryOp::kAbs:
      return std::abs(x);
    case UnaryOp::kReciprocal:
      return 1.0f / x;
    case UnaryOp::kGelu:
      return 0.5f * x * (1.0f + ErfF(x * 0.70710678118654752f));
    case UnaryOp::kGeluTanh:
      return 0.5f * x * (1.0f + TanhF(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case UnaryOp::kElu:
      return x >= 0.0f ? x : alpha * (ExpF(x) - 1.0f);
    case UnaryOp::kSoftsign:
      return x / (1.0f + std::abs(x));
    case UnaryOp::kMish: {
      const float e = ExpF(std::min(x, 20.0f));
      const float n = e * (e + 2.0f);
      return x * n / (n + 2.0f);
    }
  }
  return x;
}

inline float ScalarBinary(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::kAdd:
      return a + b;
    case BinaryOp::kSub:
      return a - b;
    case BinaryOp::kMul:
      return a * b;
    case BinaryOp::kDiv:
      return a / b;
    case BinaryOp::kMax:
      return b > a ? b : a;
  }
  return a;
}

// One ISA variant's loops. Pointers may alias only as noted.
struct Kernels {
  Isa isa;
  // y[i] = ScalarUnary(op, x[i], alpha, beta), i < n; y may equal x.
  void (*unary)(UnaryOp op, const float* x, float* y, int64_t n, float alpha, float beta);
  // y[i] = a[i * sa] op b[i * sb], i < n, with sa, sb in {0, 1}; y may equal
  // a or b when its stride is 1.
  void (*binary)(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                 int64_t n);
  // max of x[0..n) (n >= 1) as a fold of `v > m ? v : m` over lanes
  // seeded with x[0] (NaN elements after x[0] are skipped).
  float (*max)(const float* x, int64_t n);
  // y[i] = ExpF(x[i] - shift); returns the sum of y in a fixed 16-lane order.
  // y may equal x. REQUIRES: shift >= every x[i] (Softmax's row max).
  float (*exp_shift_sum)(const float* x, float shift, float* y, int64_t n);
  // mean of x[0..n) and 1 / sqrt(variance + eps), two passes, 16-lane sums;
  // n >= 1.
  void (*mean_inv_std)(const float* x, int64_t n, float eps, float* mean, float* inv_std);
  // y[i] = ((x[i] - mean) * inv_std) * scale[i] + bias[i]; y may equal x.
  void (*norm_affine)(const float* x, float mean, float inv_std, const float* scale,
                      const float* bias, float* y, int64_t n);
  // y[i] = alpha * dot(a[i * lda, i * lda + k), x[0, k)) for i < m (a
  // matrix times a vector, A streamed once), each dot summed in a fixed
  // 16-lane order, so every variant and every split of the rows gives the
  // same bits.
  void (*row_dots)(const float* a, int64_t lda, const float* x, int64_t k, int64_t m, float alpha,
                   float* y);
};

// The fastest variant this CPU runs (resolved once).
const Kernels& Best();
// The variant for `isa`, or nullptr when this CPU cannot run it.
const Kernels* ForIsa(Isa isa);

}  // namespace vec
}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_VEC_MATH_H_
