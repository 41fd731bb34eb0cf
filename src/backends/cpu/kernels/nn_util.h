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

void RegisterConvOps(OpRegistry& r);    // nn_conv.cc
void RegisterMatMulOps(OpRegistry& r);  // nn_matmul.cc
void RegisterPoolOps(OpRegistry& r);    // nn_pool.cc
void RegisterNormOps(OpRegistry& r);    // nn_norm.cc
void RegisterQuantOps(OpRegistry& r);   // nn_quant.cc

// A float32 tensor with t's values (t itself, shared, when already float32).
// Supports float32/float64/float16.
Result<Tensor> ToFloat32(const Tensor& t);
// Writes float32 values into `out` (float32/float64/float16), n = out->numel().
void StoreFromFloat32(const float* src, Tensor* out);

// Channels-last (NHWC) helpers for 4-D tensors: the logical NCHW dims of a
// physical [N,H,W,C] shape and back, and the NHWC strides of logical NCHW dims.
inline Shape NhwcToNchw(const Shape& s) { return {s[0], s[3], s[1], s[2]}; }
inline Shape NchwToNhwc(const Shape& s) { return {s[0], s[2], s[3], s[1]}; }
inline std::vector<int64_t> NhwcStrides(const Shape& d) {
  return {d[2] * d[3] * d[1], 1, d[3] * d[1], d[1]};
}
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

// Shapes of one numpy matmul: both operands padded to the output rank.
struct MatMulShapes {
  Shape a, b,
      y;      // Padded to equal rank >= 2 (1-D operands become [1,K] / [K,1]).
  Shape out;  // The ONNX output shape (1-D operands' dims dropped).
  int64_t m = 0, k = 0, n = 0;
};
Result<MatMulShapes> BroadcastMatMulShapes(Shape a, Shape b);

// Batched matmul with broadcast batch dims, plain C++: y = a x b in T.
template <typename T>
void BatchedMatMul(const MatMulShapes& s, const T* a, const T* b, T* y) {
  Shape batch(s.y.begin(), s.y.end() - 2);
  Shape ab(s.a.begin(), s.a.end() - 2), bb(s.b.begin(), s.b.end() - 2);
  std::vector<int64_t> bi(batch.size(), 0);
  int64_t nb = NumElements(batch), mk = s.m * s.k, kn = s.k * s.n, mn = s.m * s.n;
  for (int64_t t = 0; t < nb; ++t) {
    int64_t oa = 0, ob = 0;  // Broadcast offsets of this batch index.
    for (size_t d = 0; d < batch.size(); ++d) {
      oa = oa * ab[d] + (ab[d] == 1 ? 0 : bi[d]);
      ob = ob * bb[d] + (bb[d] == 1 ? 0 : bi[d]);
    }
    const T* pa = a + oa * mk;
    const T* pb = b + ob * kn;
    T* py = y + t * mn;
    for (int64_t i = 0; i < mn; ++i) py[i] = T(0);
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t kk = 0; kk < s.k; ++kk) {
        T av = pa[i * s.k + kk];
        const T* rb = pb + kk * s.n;
        T* ry = py + i * s.n;
        for (int64_t j = 0; j < s.n; ++j) ry[j] += av * rb[j];
      }
    for (size_t d = batch.size(); d-- > 0;) {  // Next batch index.
      if (++bi[d] < batch[d]) break;
      bi[d] = 0;
    }
  }
}

}  // namespace parallax::nn

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_NN_UTIL_H_
