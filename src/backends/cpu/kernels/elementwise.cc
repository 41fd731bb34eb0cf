// Elementwise op family: shared helpers and the family's registration.
// The kernels live in elementwise_unary.cc (math + activations),
// elementwise_binary.cc (broadcasting binary ops) and elementwise_misc.cc
// (variadic, Where, Clip, Cast, Identity, Dropout).
#include <cstring>
#include <string>
#include <type_traits>

#include "backends/cpu/kernels/elementwise_util.h"
#include "backends/cpu/kernels/families.h"
#include "ops/dispatch.h"

namespace parallax {
namespace elementwise {

Status RequireInputs(const KernelContext& ctx, int n) {
  for (int i = 0; i < n; ++i)
    if (!ctx.has_input(i))
      return ctx.Error("needs " + std::to_string(n) + " input(s), input " + std::to_string(i) +
                       " is missing");
  return Status::Ok();
}

Status WithNode(const KernelContext& ctx, Status s) {
  if (s.ok()) return s;
  return s.WithContext(ctx.node().Describe());
}

const Tensor& Float16AsFloat(const Tensor& t, Tensor* tmp) {
  if (t.dtype() != DType::kFloat16) return t;
  *tmp = Tensor::Uninitialized(DType::kFloat32, t.shape());
  const Half* in = t.data<Half>();
  float* out = tmp->data<float>();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(in[i]);
  return *tmp;
}

void StoreFloatAsHalf(const Tensor& f32, Tensor* out) {
  const float* in = f32.data<float>();
  Half* o = out->data<Half>();
  const int64_t n = f32.numel();
  for (int64_t i = 0; i < n; ++i) o[i] = FloatToHalf(in[i]);
}

namespace {

template <typename From, typename To>
inline To ConvertValue(From v) {
  if constexpr (std::is_same_v<From, Half> && std::is_same_v<To, Half>) {
    return v;
  } else if constexpr (std::is_same_v<From, Half>) {
    return static_cast<To>(HalfToFloat(v));
  } else if constexpr (std::is_same_v<To, Half>) {
    return FloatToHalf(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace

Status CastInto(const Tensor& in, Tensor* out) {
  const int64_t n = in.numel();
  if (out->numel() != n) return Internal("CastInto: element counts differ");
  // bfloat16 is storage only: stage through float32.
  if (in.dtype() == DType::kBFloat16) {
    if (out->dtype() == DType::kBFloat16) {
      std::memcpy(out->raw_data(), in.raw_data(), in.nbytes());
      return Status::Ok();
    }
    Tensor f = Tensor::Uninitialized(DType::kFloat32, in.shape());
    for (int64_t i = 0; i < n; ++i) f.data<float>()[i] = BFloat16ToFloat(in.data<BFloat16>()[i]);
    return CastInto(f, out);
  }
  if (out->dtype() == DType::kBFloat16) {
    Tensor f = Tensor::Uninitialized(DType::kFloat32, in.shape());
    PX_RETURN_IF_ERROR(CastInto(in, &f));
    for (int64_t i = 0; i < n; ++i) out->data<BFloat16>()[i] = FloatToBFloat16(f.data<float>()[i]);
    return Status::Ok();
  }
  return DispatchAll(in.dtype(), [&]<typename From>() -> Status {
    const From* src = in.data<From>();
    return DispatchAll(out->dtype(), [&]<typename To>() -> Status {
      To* dst = out->data<To>();
      for (int64_t i = 0; i < n; ++i) dst[i] = ConvertValue<From, To>(src[i]);
      return Status::Ok();
    });
  });
}

Result<Tensor> CastTo(const Tensor& in, DType dtype) {
  if (in.dtype() == dtype) return in;
  Tensor out = Tensor::Uninitialized(dtype, in.shape());
  PX_RETURN_IF_ERROR(CastInto(in, &out));
  return out;
}

Shape LegacyBroadcastShape(const Node& node, const Shape& a, const Shape& b) {
  if (node.opset >= 7 || node.attr_int("broadcast", 0) == 0 || !node.has_attr("axis")) return b;
  int64_t axis = node.attr_int("axis", 0);
  const int64_t ra = static_cast<int64_t>(a.size()), rb = static_cast<int64_t>(b.size());
  if (axis < 0) axis += ra;
  Shape s = b;
  for (int64_t i = axis + rb; i < ra; ++i) s.push_back(1);
  return s;
}

BroadcastPlan MakeBroadcastPlan(const Shape& out, const std::vector<Shape>& inputs) {
  BroadcastPlan p;
  p.num_operands = static_cast<int>(inputs.size());
  std::vector<std::vector<int64_t>> strides;
  for (const Shape& s : inputs) strides.push_back(BroadcastStrides(s, out));
  Shape dims;
  std::vector<std::array<int64_t, 3>> st;
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;
    std::array<int64_t, 3> cur{};
    for (int k = 0; k < p.num_operands; ++k) cur[k] = strides[static_cast<size_t>(k)][d];
    bool merge = !dims.empty();
    for (int k = 0; merge && k < p.num_operands; ++k) merge = (st.back()[k] == 0) == (cur[k] == 0);
    if (merge) {
      dims.back() *= out[d];
      st.back() = cur;
    } else {
      dims.push_back(out[d]);
      st.push_back(cur);
    }
  }
  if (!dims.empty()) {
    p.inner = dims.back();
    p.inner_stride = st.back();
    dims.pop_back();
    st.pop_back();
  }
  p.outer_dims = dims;
  p.outer_strides = st;
  p.rows = NumElements(dims);
  return p;
}

}  // namespace elementwise

void RegisterElementwiseOps(OpRegistry& r) {
  elementwise::RegisterUnaryOps(r);
  elementwise::RegisterActivationOps(r);
  elementwise::RegisterBinaryOps(r);
  elementwise::RegisterMiscOps(r);
}

}  // namespace parallax
