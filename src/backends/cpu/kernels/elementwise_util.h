// Shared helpers of the elementwise op family (elementwise_*.cc): float16
// staging, numpy-broadcast loop plans with contiguous inner runs, and the
// per-file registration entry points.
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_ELEMENTWISE_UTIL_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_ELEMENTWISE_UTIL_H_

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "backends/cpu/kernels/fast_math.h"
#include "ops/kernel.h"
#include "ops/registry.h"
#include "ops/shape_util.h"
#include "parallax/tensor.h"

namespace parallax {
namespace elementwise {

void RegisterUnaryOps(OpRegistry& r);       // elementwise_unary.cc
void RegisterActivationOps(OpRegistry& r);  // elementwise_unary.cc
void RegisterBinaryOps(OpRegistry& r);      // elementwise_binary.cc
void RegisterMiscOps(OpRegistry& r);        // elementwise_misc.cc

// InvalidArgument naming the node unless inputs 0..n-1 are all present.
Status RequireInputs(const KernelContext& ctx, int n);
// Adds the node's description to a dtype-dispatch failure.
Status WithNode(const KernelContext& ctx, Status s);

// Returns `t` itself, or (float16) a float32 copy stored in `*tmp`.
const Tensor& Float16AsFloat(const Tensor& t, Tensor* tmp);
// Converts a float32 tensor into a float16 tensor `out` of the same size.
void StoreFloatAsHalf(const Tensor& f32, Tensor* out);
// Converts every element of `in` into `out` (same element count), C-style
// (float->int truncates, x != 0 -> bool true). Both dtypes must be numeric,
// bool or float16.
Status CastInto(const Tensor& in, Tensor* out);
// `in` converted to `dtype` (shares `in` when the dtype already matches).
Result<Tensor> CastTo(const Tensor& in, DType dtype);

// Before opset 7, binary ops broadcast only with broadcast=1, aligning B at
// `axis` (or at the end). Returns B's shape seen numpy-style.
Shape LegacyBroadcastShape(const Node& node, const Shape& a, const Shape& b);

// A broadcast loop over up to 3 operands, with dims merged as far as possible.
// The output is walked in row-major order as `outer` rows of `inner`
// elements; inside a row operand k advances by inner_stride[k] (0 or 1).
struct BroadcastPlan {
  int num_operands = 0;
  Shape outer_dims;                                   // Outer dims, row-major.
  std::vector<std::array<int64_t, 3>> outer_strides;  // Per outer dim.
  int64_t inner = 1;
  std::array<int64_t, 3> inner_stride{};
  int64_t rows = 1;  // Product of outer_dims.
};

BroadcastPlan MakeBroadcastPlan(const Shape& out, const std::vector<Shape>& inputs);

// Calls row(out_offset, {offset per operand}) for inner rows [r0, r1).
template <typename F>
void ForEachRowIn(const BroadcastPlan& p, int64_t r0, int64_t r1, F&& row) {
  std::array<int64_t, 3> off{};
  const size_t nd = p.outer_dims.size();
  std::vector<int64_t> idx(nd, 0);
  for (size_t d = nd, rest = static_cast<size_t>(r0); d-- > 0;) {
    const size_t dim = static_cast<size_t>(p.outer_dims[d]);
    idx[d] = static_cast<int64_t>(rest % dim);
    rest /= dim;
    for (int k = 0; k < p.num_operands; ++k) off[k] += idx[d] * p.outer_strides[d][k];
  }
  for (int64_t r = r0; r < r1; ++r) {
    row(r * p.inner, off);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < p.outer_dims[d]) {
        for (int k = 0; k < p.num_operands; ++k) off[k] += p.outer_strides[d][k];
        break;
      }
      for (int k = 0; k < p.num_operands; ++k)
        off[k] -= p.outer_strides[d][k] * (p.outer_dims[d] - 1);
      idx[d] = 0;
    }
  }
}

// Calls row(out_offset, {offset per operand}) for each inner row.
template <typename F>
void ForEachRow(const BroadcastPlan& p, F&& row) {
  ForEachRowIn(p, 0, p.rows, row);
}

// Elementwise kernels split their work over the intra-op threads in tasks
// that outlast waking a worker (a few microseconds at best, far more on a
// busy machine): kParallelMinChunk elements for memory-bound maps and
// arithmetic (~0.1-0.3 ns per float32 element), kParallelMinChunkHeavy for
// exp/erf/tanh/divide-based maps and libm calls (~0.3-2 ns per element).
// Boundaries fall on multiples of kParallelAlign elements (64-byte lines).
inline constexpr int64_t kParallelMinChunk = 128 * 1024;
inline constexpr int64_t kParallelMinChunkHeavy = 32 * 1024;
inline constexpr int64_t kParallelAlign = 16;

// Covers the numpy broadcast of a (shape sa) and b (shape sb) to `so` with
// spans: span(o, ia, ka, ib, kb, len) stands for out[o + i] = f(a[ia + i * ka],
// b[ib + i * kb]) for i < len, with ka, kb in {0, 1}. Spans are split over
// `par`'s threads (flat cases by element ranges, others by whole rows), so
// a span function must only write its own output elements.
template <typename F>
void ForEachBinarySpan(const IntraOp& par, const Shape& sa, const Shape& sb, const Shape& so,
                       F&& span) {
  const int64_t n = NumElements(so);
  if (n == 0) return;
  const int64_t na = NumElements(sa), nb = NumElements(sb);
  if ((na == n || na == 1) && (nb == n || nb == 1)) {
    const int64_t ka = na == n ? 1 : 0, kb = nb == n ? 1 : 0;
    par.ParallelRanges(
        n, kParallelMinChunk, [&](int64_t b, int64_t e) { span(b, b * ka, ka, b * kb, kb, e - b); },
        kParallelAlign);
    return;
  }
  const BroadcastPlan p = MakeBroadcastPlan(so, {sa, sb});
  const int64_t m = p.inner;
  const int64_t ka = p.inner_stride[0], kb = p.inner_stride[1];
  par.ParallelRanges(p.rows, std::max<int64_t>(1, kParallelMinChunk / m),
                     [&](int64_t r0, int64_t r1) {
                       ForEachRowIn(p, r0, r1, [&](int64_t o, const std::array<int64_t, 3>& off) {
                         span(o, off[0], ka, off[1], kb, m);
                       });
                     });
}

// out[i] = f(a[i * ka], b[i * kb]) for i < m; ka, kb in {0, 1}.
template <typename TA, typename TB, typename TO, typename F>
void BinarySpan(const TA* a, int64_t ka, const TB* b, int64_t kb, TO* out, int64_t m, F& f) {
  if (ka == 1 && kb == 1) {
    for (int64_t i = 0; i < m; ++i) out[i] = f(a[i], b[i]);
  } else if (ka == 1) {
    const TB bv = b[0];
    for (int64_t i = 0; i < m; ++i) out[i] = f(a[i], bv);
  } else if (kb == 1) {
    const TA av = a[0];
    for (int64_t i = 0; i < m; ++i) out[i] = f(av, b[i]);
  } else {
    const TO v = f(a[0], b[0]);
    for (int64_t i = 0; i < m; ++i) out[i] = v;
  }
}

// out[i] = f(a[i], b[i]) with numpy broadcasting of a and b to `so`, split
// over `par`'s threads (f may run on several threads at once).
template <typename TA, typename TB, typename TO, typename F>
void BinaryLoop(const TA* a, const Shape& sa, const TB* b, const Shape& sb, TO* out,
                const Shape& so, F f, const IntraOp& par = IntraOp{}) {
  ForEachBinarySpan(par, sa, sb, so,
                    [&](int64_t o, int64_t ia, int64_t ka, int64_t ib, int64_t kb, int64_t m) {
                      BinarySpan(a + ia, ka, b + ib, kb, out + o, m, f);
                    });
}

// Copies `in` broadcast to `out_shape` into `out` (elements of type T).
template <typename T>
void BroadcastCopy(const T* in, const Shape& si, T* out, const Shape& so) {
  const int64_t n = NumElements(so);
  if (n == 0) return;
  if (NumElements(si) == n) {
    for (int64_t i = 0; i < n; ++i) out[i] = in[i];
    return;
  }
  BroadcastPlan p = MakeBroadcastPlan(so, {si});
  const int64_t m = p.inner;
  const bool contiguous = p.inner_stride[0] == 1;
  ForEachRow(p, [&](int64_t o, const std::array<int64_t, 3>& off) {
    T* po = out + o;
    const T* pi = in + off[0];
    if (contiguous) {
      for (int64_t i = 0; i < m; ++i) po[i] = pi[i];
    } else {
      const T v = pi[0];
      for (int64_t i = 0; i < m; ++i) po[i] = v;
    }
  });
}

// Integer arithmetic that wraps (two's complement) instead of overflowing
// into undefined behaviour; plain arithmetic for floating types.
template <typename T>
inline T WrapAdd(T x, T y) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(x) + static_cast<U>(y)));
  } else {
    return x + y;
  }
}
template <typename T>
inline T WrapSub(T x, T y) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(x) - static_cast<U>(y)));
  } else {
    return x - y;
  }
}
template <typename T>
inline T WrapMul(T x, T y) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // Multiply in at least unsigned int so small types do not promote to int.
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
    return static_cast<T>(static_cast<U>(x) * static_cast<U>(y));
  } else {
    return x * y;
  }
}

// Overloads for generic kernels: the fast versions for float, libm for double.
inline float Exp(float x) { return ExpF(x); }
inline double Exp(double x) { return std::exp(x); }
inline float Tanh(float x) { return TanhF(x); }
inline double Tanh(double x) { return std::tanh(x); }
inline float Erf(float x) { return ErfF(x); }
inline double Erf(double x) { return std::erf(x); }

}  // namespace elementwise
}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_ELEMENTWISE_UTIL_H_
