// The image op family: Resize/Upsample (image_resize.cc), NonMaxSuppression
// (image_nms.cc), RoiAlign/GridSample (image_sample.cc) and MaxUnpool (here).
#include <algorithm>
#include <string>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "backends/cpu/kernels/image_util.h"
#include "ops/dispatch.h"
#include "ops/kernel.h"
#include "ops/shape_util.h"

namespace parallax {
namespace image {

Result<std::vector<double>> ReadDoubles(const Tensor& t) {
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<double> v(n);
  switch (t.dtype()) {
    case DType::kFloat32:
      for (size_t i = 0; i < n; ++i) v[i] = t.data<float>()[i];
      return v;
    case DType::kFloat64:
      for (size_t i = 0; i < n; ++i) v[i] = t.data<double>()[i];
      return v;
    case DType::kFloat16:
      for (size_t i = 0; i < n; ++i) v[i] = HalfToFloat(t.data<Half>()[i]);
      return v;
    case DType::kInt64:
    case DType::kInt32: {
      PX_ASSIGN_OR_RETURN(std::vector<int64_t> ints, ReadInt64s(t));
      for (size_t i = 0; i < n; ++i) v[i] = static_cast<double>(ints[i]);
      return v;
    }
    default:
      return InvalidArgument("expected a float tensor, got " + std::string(DTypeName(t.dtype())));
  }
}

namespace {

// MaxUnpool (opset 9, 11): scatters X into zeros at the flat indices I
// (indices into the default output shape); an explicit output_shape pads
// that result with zeros at the end of each spatial axis.
Status MaxUnpool(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!ctx.has_input(1)) return ctx.Error("missing indices input I");
  const Tensor& ind = ctx.input(1);
  const int rank = x.rank();
  if (rank < 3) return ctx.Error("X must be [N, C, spatial...], got " + ShapeToString(x.shape()));
  if (ind.shape() != x.shape()) {
    return ctx.Error("I " + ShapeToString(ind.shape()) + " must have the shape of X " +
                     ShapeToString(x.shape()));
  }
  const size_t ns = static_cast<size_t>(rank - 2);
  const std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  std::vector<int64_t> pads = ctx.node().attr_ints("pads");
  std::vector<int64_t> strides = ctx.node().attr_ints("strides");
  if (pads.empty()) pads.assign(2 * ns, 0);
  if (strides.empty()) strides.assign(ns, 1);
  if (kernel.size() != ns || pads.size() != 2 * ns || strides.size() != ns) {
    return ctx.Error("kernel_shape/strides need " + std::to_string(ns) + " values and pads " +
                     std::to_string(2 * ns) + " for input " + ShapeToString(x.shape()));
  }
  Shape inferred = x.shape();
  for (size_t i = 0; i < ns; ++i) {
    inferred[i + 2] = (x.shape()[i + 2] - 1) * strides[i] + kernel[i] - pads[i] - pads[i + ns];
    if (inferred[i + 2] < 0) return ctx.Error("negative inferred output size");
  }
  Shape out_shape = inferred;
  if (ctx.has_input(2)) {
    Result<std::vector<int64_t>> os = ReadInt64s(ctx.input(2));
    if (!os.ok()) return ctx.Error("output_shape: " + os.status().message());
    if (static_cast<int>(os->size()) != rank)
      return ctx.Error("output_shape must have " + std::to_string(rank) + " values");
    for (int d = 0; d < rank; ++d) {
      if ((*os)[static_cast<size_t>(d)] < inferred[static_cast<size_t>(d)]) {
        return ctx.Error("output_shape " + ShapeToString(*os) +
                         " is smaller than the unpooled shape " + ShapeToString(inferred));
      }
    }
    out_shape = *os;
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), out_shape));
  PX_ASSIGN_OR_RETURN(std::vector<int64_t> idx, ReadInt64s(ind));
  const int64_t limit = NumElements(inferred);
  const bool same = out_shape == inferred;
  const std::vector<int64_t> in_strides = Strides(inferred);
  const std::vector<int64_t> out_strides = Strides(out_shape);
  return DispatchBySize(x.dtype(), [&]<typename T>() -> Status {
    T* y = out->data<T>();
    const T* xs = x.data<T>();
    std::fill_n(y, out->numel(), T(0));
    for (size_t i = 0; i < idx.size(); ++i) {
      int64_t k = idx[i];
      if (k < 0 || k >= limit) {
        return ctx.Error("index " + std::to_string(k) + " is outside the unpooled output " +
                         ShapeToString(inferred));
      }
      if (!same) {
        int64_t rem = k;
        k = 0;
        for (int d = 0; d < rank; ++d) {
          k += rem / in_strides[static_cast<size_t>(d)] * out_strides[static_cast<size_t>(d)];
          rem %= in_strides[static_cast<size_t>(d)];
        }
      }
      y[k] = xs[i];
    }
    return Status::Ok();
  });
}

}  // namespace

void RegisterUnpoolOps(OpRegistry& r) { r.Register("MaxUnpool", MaxUnpool); }

}  // namespace image

void RegisterImageOps(OpRegistry& r) {
  image::RegisterResizeOps(r);
  image::RegisterNmsOps(r);
  image::RegisterSamplingOps(r);
  image::RegisterUnpoolOps(r);
}

}  // namespace parallax
