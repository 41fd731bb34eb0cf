// Helpers shared by the reduction-family kernels (reduction*.cc): the
// (outer, n, inner) view of a tensor around one axis, float16 <-> compute-type
// conversion, and the registration entry points of the family's files.
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_REDUCTION_UTIL_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_REDUCTION_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cpu/kernels/fast_math.h"
#include "ops/dispatch.h"
#include "ops/registry.h"
#include "parallax/tensor.h"

namespace parallax {

// Runs kernel F and names the node in errors that do not already (e.g. an
// unsupported dtype reported by a Dispatch* helper).
template <KernelFn F>
Status NamedKernel(KernelContext& ctx) {
  Status s = F(ctx);
  if (s.ok()) return s;
  const std::string who = ctx.node().Describe();
  if (s.message().compare(0, who.size(), who) == 0) return s;
  return s.WithContext(who);
}

// exp in the compute type: ExpF for float, std::exp otherwise.
template <typename C>
inline C Exp(C x) {
  if constexpr (std::is_same_v<C, float>)
    return ExpF(x);
  else
    return std::exp(x);
}

// Registration of the family's files; RegisterReductionOps calls them all.
void RegisterSoftmaxFamilyOps(OpRegistry& r);  // reduction_softmax.cc
void RegisterNormalizationOps(OpRegistry& r);  // reduction_norm.cc
void RegisterLossOps(OpRegistry& r);           // reduction_loss.cc

// A tensor viewed as [outer, n, inner] around axis `axis` (or, with
// `coerce_2d`, as [outer, prod(dims[axis:]), 1] like opset<13 Softmax).
struct AxisView {
  int64_t outer = 1;
  int64_t n = 1;
  int64_t inner = 1;
};

inline AxisView MakeAxisView(const Shape& shape, int axis, bool coerce_2d = false) {
  AxisView v;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    int64_t d = shape[static_cast<size_t>(i)];
    if (i < axis)
      v.outer *= d;
    else if (i == axis || coerce_2d)
      v.n *= d;
    else
      v.inner *= d;
  }
  return v;
}

// Type computations on T are carried out in: float for float16.
template <typename T>
using ComputeT = std::conditional_t<std::is_same_v<T, Half>, float, T>;

template <typename T>
inline ComputeT<T> ToCompute(T v) {
  if constexpr (std::is_same_v<T, Half>)
    return HalfToFloat(v);
  else
    return v;
}

template <typename T>
inline T FromCompute(ComputeT<T> v) {
  if constexpr (std::is_same_v<T, Half>)
    return FloatToHalf(v);
  else
    return v;
}

// Reads a float/double/float16 tensor into a vector of C (float or double).
template <typename C>
inline std::vector<C> ReadAsFloats(const Tensor& t) {
  std::vector<C> v(static_cast<size_t>(t.numel()));
  switch (t.dtype()) {
    case DType::kFloat32:
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<C>(t.data<float>()[i]);
      break;
    case DType::kFloat64:
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<C>(t.data<double>()[i]);
      break;
    case DType::kFloat16:
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<C>(HalfToFloat(t.data<Half>()[i]));
      break;
    default:
      break;
  }
  return v;
}

// Dispatches float32 / float64 / float16 (as Half).
template <typename F>
Status DispatchFloatHalf(DType t, F&& f) {
  if (t == DType::kFloat16) return f.template operator()<Half>();
  return DispatchFloat(t, f);
}

}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_REDUCTION_UTIL_H_
