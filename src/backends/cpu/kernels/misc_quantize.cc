// QuantizeLinear / DequantizeLinear (opset 10: per-tensor; 13+: per-axis;
// 19+: float16 scales) and DynamicQuantizeLinear (opset 11).
//
//   QuantizeLinear:   y = saturate(round_half_even(x / scale) + zero_point)
//   DequantizeLinear: y = (x - zero_point) * scale
//
// Arithmetic is in float32 like the reference runtimes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/kernels/misc_util.h"
#include "ops/dispatch.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

// x viewed as [outer, channels, inner]; scale/zero point index = channel.
struct Layout {
  int64_t outer = 1, channels = 1, inner = 1;
};

// Checks scale / zero point shapes and returns the channel layout: per
// tensor when scale has one element, per axis (opset 13+) when 1-D.
Result<Layout> QuantLayout(KernelContext& ctx, const Tensor& x, const Tensor& scale,
                           const Tensor* zp) {
  if (ctx.node().attr_int("block_size", 0) != 0)
    return Unsupported(ctx.node().Describe() + ": blocked quantization is not supported");
  if (zp != nullptr && zp->numel() != scale.numel())
    return ctx.Error("zero point shape " + ShapeToString(zp->shape()) +
                     " differs from scale shape " + ShapeToString(scale.shape()));
  Layout l;
  if (scale.rank() == 0 || (scale.rank() == 1 && scale.numel() == 1 && ctx.opset() < 13)) {
    l.inner = x.numel();
    return l;
  }
  if (scale.rank() != 1 || ctx.opset() < 13)
    return ctx.Error("scale must be a scalar" + std::string(ctx.opset() >= 13 ? " or 1-D" : "") +
                     ", got shape " + ShapeToString(scale.shape()));
  if (x.rank() == 0) {
    if (scale.numel() != 1) return ctx.Error("per-axis scale needs an input of rank >= 1");
    return l;
  }
  auto axis = NormalizeAxis(ctx.node().attr_int("axis", 1), x.rank());
  if (!axis.ok()) return ctx.Error(axis.status().message());
  const int a = axis.value();
  if (scale.numel() == 1) {  // [1] scale: still one value for the tensor.
    l.inner = x.numel();
    return l;
  }
  if (scale.dim(0) != x.dim(a))
    return ctx.Error("scale has " + std::to_string(scale.dim(0)) + " values but axis " +
                     std::to_string(a) + " of input " + ShapeToString(x.shape()) + " has " +
                     std::to_string(x.dim(a)));
  for (int i = 0; i < a; ++i) l.outer *= x.dim(i);
  l.channels = x.dim(a);
  for (int i = a + 1; i < x.rank(); ++i) l.inner *= x.dim(i);
  return l;
}

Result<std::vector<float>> ReadFloats(KernelContext& ctx, const Tensor& t, const char* what) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  switch (t.dtype()) {
    case DType::kFloat32:
      std::copy(t.data<float>(), t.data<float>() + v.size(), v.begin());
      break;
    case DType::kFloat16:
      for (size_t i = 0; i < v.size(); ++i) v[i] = HalfToFloat(t.data<Half>()[i]);
      break;
    case DType::kFloat64:
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data<double>()[i]);
      break;
    case DType::kInt32:
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data<int32_t>()[i]);
      break;
    default:
      return ctx.Error(std::string(what) + " has unsupported dtype " +
                       std::string(DTypeName(t.dtype())));
  }
  return v;
}

bool IsQuantType(DType t) {
  return t == DType::kUInt8 || t == DType::kInt8 || t == DType::kUInt16 || t == DType::kInt16;
}

template <typename Q>
void QuantizeTo(const std::vector<float>& x, const std::vector<float>& scale, const Tensor* zp,
                const Layout& l, Q* y) {
  const float qmin = static_cast<float>(std::numeric_limits<Q>::min());
  const float qmax = static_cast<float>(std::numeric_limits<Q>::max());
  for (int64_t o = 0; o < l.outer; ++o) {
    for (int64_t c = 0; c < l.channels; ++c) {
      const float s = scale[c];
      const float z = zp ? static_cast<float>(zp->data<Q>()[c]) : 0.f;
      const int64_t base = (o * l.channels + c) * l.inner;
      for (int64_t i = 0; i < l.inner; ++i) {
        const float v = std::nearbyint(x[base + i] / s) + z;
        y[base + i] = static_cast<Q>(std::clamp(v, qmin, qmax));
      }
    }
  }
}

Status QuantizeLinear(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("inputs x and y_scale are required");
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  DType out_dt = zp ? zp->dtype() : DType::kUInt8;
  if (!zp && ctx.node().has_attr("output_dtype"))
    out_dt = static_cast<DType>(ctx.node().attr_int("output_dtype", 2));
  if (!IsQuantType(out_dt))
    return ctx.Error("unsupported quantized dtype " + std::string(DTypeName(out_dt)));
  PX_ASSIGN_OR_RETURN(Layout l, QuantLayout(ctx, x, scale, zp));
  PX_ASSIGN_OR_RETURN(std::vector<float> xs, ReadFloats(ctx, x, "x"));
  PX_ASSIGN_OR_RETURN(std::vector<float> ss, ReadFloats(ctx, scale, "y_scale"));
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out_dt, x.shape()));
  switch (out_dt) {
    case DType::kUInt8:
      QuantizeTo(xs, ss, zp, l, y->data<uint8_t>());
      break;
    case DType::kInt8:
      QuantizeTo(xs, ss, zp, l, y->data<int8_t>());
      break;
    case DType::kUInt16:
      QuantizeTo(xs, ss, zp, l, y->data<uint16_t>());
      break;
    default:
      QuantizeTo(xs, ss, zp, l, y->data<int16_t>());
      break;
  }
  return Status::Ok();
}

template <typename Q>
void DequantizeFrom(const Tensor& x, const std::vector<float>& scale, const Tensor* zp,
                    const Layout& l, float* y) {
  const Q* q = x.data<Q>();
  for (int64_t o = 0; o < l.outer; ++o) {
    for (int64_t c = 0; c < l.channels; ++c) {
      const float s = scale[c];
      const int32_t z = zp ? static_cast<int32_t>(zp->data<Q>()[c]) : 0;
      const int64_t base = (o * l.channels + c) * l.inner;
      for (int64_t i = 0; i < l.inner; ++i)
        y[base + i] = static_cast<float>(static_cast<int32_t>(q[base + i]) - z) * s;
    }
  }
}

Status DequantizeLinear(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("inputs x and x_scale are required");
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (!IsQuantType(x.dtype()) && x.dtype() != DType::kInt32)
    return ctx.Error("unsupported quantized dtype " + std::string(DTypeName(x.dtype())));
  if (zp && zp->dtype() != x.dtype())
    return ctx.Error("x_zero_point dtype " + std::string(DTypeName(zp->dtype())) +
                     " differs from x dtype " + std::string(DTypeName(x.dtype())));
  const DType out_dt = scale.dtype();
  if (out_dt != DType::kFloat32 && out_dt != DType::kFloat16)
    return ctx.Error("x_scale must be float32 or float16, got " + std::string(DTypeName(out_dt)));
  PX_ASSIGN_OR_RETURN(Layout l, QuantLayout(ctx, x, scale, zp));
  PX_ASSIGN_OR_RETURN(std::vector<float> ss, ReadFloats(ctx, scale, "x_scale"));
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out_dt, x.shape()));
  std::vector<float> tmp;
  float* dst = y->data<float>();
  if (out_dt == DType::kFloat16) {
    tmp.resize(static_cast<size_t>(x.numel()));
    dst = tmp.data();
  }
  switch (x.dtype()) {
    case DType::kUInt8:
      DequantizeFrom<uint8_t>(x, ss, zp, l, dst);
      break;
    case DType::kInt8:
      DequantizeFrom<int8_t>(x, ss, zp, l, dst);
      break;
    case DType::kUInt16:
      DequantizeFrom<uint16_t>(x, ss, zp, l, dst);
      break;
    case DType::kInt16:
      DequantizeFrom<int16_t>(x, ss, zp, l, dst);
      break;
    default:
      DequantizeFrom<int32_t>(x, ss, zp, l, dst);
      break;
  }
  for (size_t i = 0; i < tmp.size(); ++i) y->data<Half>()[i] = FloatToHalf(tmp[i]);
  return Status::Ok();
}

// y_scale = (max(0, max(x)) - min(0, min(x))) / 255 (1 when the range is 0),
// y_zero_point = round(clamp(-min / y_scale, 0, 255)), y = quantize(x).
Status DynamicQuantizeLinear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    return ctx.Error("x must be float32, got " + std::string(DTypeName(x.dtype())));
  const float* xs = x.data<float>();
  const int64_t n = x.numel();
  float lo = 0.f, hi = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, xs[i]);
    hi = std::max(hi, xs[i]);
  }
  const float scale = hi == lo ? 1.f : (hi - lo) / 255.f;
  const float zp = std::nearbyint(std::clamp(0.f - lo / scale, 0.f, 255.f));
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DType::kUInt8, x.shape()));
  uint8_t* q = y->data<uint8_t>();
  for (int64_t i = 0; i < n; ++i)
    q[i] = static_cast<uint8_t>(std::clamp(std::nearbyint(xs[i] / scale) + zp, 0.f, 255.f));
  if (ctx.output_used(1)) {
    PX_ASSIGN_OR_RETURN(Tensor * s, ctx.Output(1, DType::kFloat32, {}));
    s->data<float>()[0] = scale;
  }
  if (ctx.output_used(2)) {
    PX_ASSIGN_OR_RETURN(Tensor * z, ctx.Output(2, DType::kUInt8, {}));
    z->data<uint8_t>()[0] = static_cast<uint8_t>(zp);
  }
  return Status::Ok();
}

}  // namespace

void RegisterQuantizeOps(OpRegistry& r) {
  r.Register("QuantizeLinear", QuantizeLinear);
  r.Register("DequantizeLinear", DequantizeLinear);
  r.Register("DynamicQuantizeLinear", DynamicQuantizeLinear);
}

}  // namespace parallax
