// Internal helpers shared by the NN kernel files (nn_*.cc): registration
// entry points per file, float16/float64 <-> float32 staging, and the
// window geometry (pads, auto_pad, ceil_mode) of Conv and pooling ops.
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_NN_UTIL_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_NN_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "ops/registry.h"
#include "parallax/status.h"
#include "parallax/tensor.h"

namespace parallax::nn {

void RegisterConvOps(OpRegistry& r);     // nn_conv.cc
void RegisterMatMulOps(OpRegistry& r);   // nn_matmul.cc
void RegisterPoolOps(OpRegistry& r);     // nn_pool.cc
void RegisterNormOps(OpRegistry& r);     // nn_norm.cc
void RegisterQuantOps(OpRegistry& r);    // nn_quant.cc

// A float32 tensor with t's values (t itself, shared, when already float32).
// Supports float32/float64/float16.
Result<Tensor> ToFloat32(const Tensor& t);
// Writes float32 values into `out` (float32/float64/float16), n = out->numel().
void StoreFromFloat32(const float* src, Tensor* out);
inline bool IsFloatLike(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16;
}

// Window geometry of one convolution/pooling node for a concrete input.
struct Window {
  int rank = 0;  // Spatial rank.
  std::vector<int64_t> in, kernel, stride, dilation, pad_begin, pad_end, out;
};

// Reads strides/dilations/pads/auto_pad from `node` and computes the output
// spatial size for `in` (spatial dims) and `kernel`. `ceil_mode` is the
// pooling attribute (Conv passes false). Errors name the node via `where`.
Result<Window> ComputeWindow(const Node& node, const std::vector<int64_t>& in,
                             const std::vector<int64_t>& kernel, bool ceil_mode,
                             bool use_dilations);

// Reads the optional `kernel_shape` attribute, checking its rank.
Result<std::vector<int64_t>> KernelShapeAttr(const Node& node, int spatial_rank);

}  // namespace parallax::nn

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_NN_UTIL_H_
