// Helpers shared by the image op family (image*.cc): registration entry
// points of the family's files and float conversions for mixed dtypes.
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_IMAGE_UTIL_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_IMAGE_UTIL_H_

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/registry.h"
#include "parallax/status.h"
#include "parallax/tensor.h"

namespace parallax {
namespace image {

void RegisterResizeOps(OpRegistry& r);    // image_resize.cc: Resize, Upsample
void RegisterNmsOps(OpRegistry& r);       // image_nms.cc: NonMaxSuppression
void RegisterSamplingOps(OpRegistry& r);  // image_sample.cc: RoiAlign, GridSample
void RegisterUnpoolOps(OpRegistry& r);    // image.cc: MaxUnpool

// Reads a float32/float64/float16 tensor (or an int tensor) as doubles.
Result<std::vector<double>> ReadDoubles(const Tensor& t);

// The type arithmetic on T is done in: double for float64 and wide
// integers, float otherwise (float16, float32, narrow integers, bool).
template <typename T>
using ComputeOf = std::conditional_t<std::is_same_v<T, double> || std::is_same_v<T, int64_t> ||
                                         std::is_same_v<T, uint64_t> ||
                                         std::is_same_v<T, int32_t> || std::is_same_v<T, uint32_t>,
                                     double, float>;

template <typename C, typename T>
inline C ToCompute(T v) {
  if constexpr (std::is_same_v<T, Half>) {
    return static_cast<C>(HalfToFloat(v));
  } else {
    return static_cast<C>(v);
  }
}

// Converts back: float16 rounds to nearest even, integers round to nearest
// and saturate, bool is "not zero".
template <typename T, typename C>
inline T FromCompute(C v) {
  if constexpr (std::is_same_v<T, Half>) {
    return FloatToHalf(static_cast<float>(v));
  } else if constexpr (std::is_same_v<T, bool>) {
    return v != C(0);
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return T(0);
    C r = std::nearbyint(v);
    if (r <= static_cast<C>(std::numeric_limits<T>::lowest()))
      return std::numeric_limits<T>::lowest();
    if (r >= static_cast<C>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(r);
  }
}

}  // namespace image
}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_IMAGE_UTIL_H_
