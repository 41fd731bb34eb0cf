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

// Calls row(out_offset, {offset per operand}) for each inner row.
template <typename F>
void ForEachRow(const BroadcastPlan& p, F&& row) {
  std::array<int64_t, 3> off{};
  const size_t nd = p.outer_dims.size();
  std::vector<int64_t> idx(nd, 0);
  for (int64_t r = 0; r < p.rows; ++r) {
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

// out[i] = f(a[i], b[i]) with numpy broadcasting of a and b to `out_shape`.
// Inner rows run as tight loops for the same-shape, scalar-operand and
// broadcast-operand cases.
template <typename TA, typename TB, typename TO, typename F>
void BinaryLoop(const TA* a, const Shape& sa, const TB* b, const Shape& sb, TO* out,
                const Shape& so, F f) {
  const int64_t n = NumElements(so);
  if (n == 0) return;
  const int64_t na = NumElements(sa), nb = NumElements(sb);
  if (na == n && nb == n) {
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
    return;
  }
  if (nb == 1 && na == n) {
    const TB bv = b[0];
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], bv);
    return;
  }
  if (na == 1 && nb == n) {
    const TA av = a[0];
    for (int64_t i = 0; i < n; ++i) out[i] = f(av, b[i]);
    return;
  }
  BroadcastPlan p = MakeBroadcastPlan(so, {sa, sb});
  const int64_t m = p.inner;
  const int64_t ka = p.inner_stride[0], kb = p.inner_stride[1];
  ForEachRow(p, [&](int64_t o, const std::array<int64_t, 3>& off) {
    TO* po = out + o;
    const TA* pa = a + off[0];
    const TB* pb = b + off[1];
    if (ka == 1 && kb == 1) {
      for (int64_t i = 0; i < m; ++i) po[i] = f(pa[i], pb[i]);
    } else if (ka == 1) {
      const TB bv = pb[0];
      for (int64_t i = 0; i < m; ++i) po[i] = f(pa[i], bv);
    } else if (kb == 1) {
      const TA av = pa[0];
      for (int64_t i = 0; i < m; ++i) po[i] = f(av, pb[i]);
    } else {
      const TO v = f(pa[0], pb[0]);
      for (int64_t i = 0; i < m; ++i) po[i] = v;
    }
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
