// Variadic broadcasting ops (Max, Min, Sum, Mean), Where, Clip, Cast,
// CastLike, Identity and inference-mode Dropout.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "backends/cpu/kernels/elementwise_util.h"
#include "backends/cpu/kernels/vec_math.h"
#include "ops/dispatch.h"

namespace parallax {
namespace elementwise {
namespace {

// Variadic ops --------------------------------------------------------------

// out = f(...f(f(x0, x1), x2)...) with all inputs broadcast; divides by the
// input count when `mean`. `floats_only` limits the dtypes to float types.
template <typename F>
Status Variadic(KernelContext& ctx, bool floats_only, bool mean, F f) {
  const int n = ctx.num_inputs();
  if (n < 1) return ctx.Error("needs at least one input");
  PX_RETURN_IF_ERROR(RequireInputs(ctx, n));
  const DType dt = ctx.input(0).dtype();
  Shape so = ctx.input(0).shape();
  for (int i = 1; i < n; ++i) {
    if (ctx.input(i).dtype() != dt)
      return ctx.Error("input " + std::to_string(i) + " has dtype " +
                       std::string(DTypeName(ctx.input(i).dtype())) + ", input 0 has " +
                       std::string(DTypeName(dt)));
    Result<Shape> s = BroadcastShapes(so, ctx.input(i).shape());
    if (!s.ok()) return ctx.Error(s.status().message());
    so = std::move(s).value();
  }
  const bool is_float = dt == DType::kFloat32 || dt == DType::kFloat64 || dt == DType::kFloat16;
  if ((floats_only && !is_float) || dt == DType::kBool || !IsSupportedDType(dt))
    return ctx.Error("does not support input dtype " + std::string(DTypeName(dt)));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dt, so));
  Tensor tmp_out;
  Tensor* acc = out;
  if (dt == DType::kFloat16) {
    tmp_out = Tensor::Uninitialized(DType::kFloat32, so);
    acc = &tmp_out;
  }
  const DType cdt = acc->dtype();
  PX_RETURN_IF_ERROR(WithNode(ctx, DispatchNumeric(cdt, [&]<typename T>() -> Status {
                                T* o = acc->data<T>();
                                for (int i = 0; i < n; ++i) {
                                  Tensor tmp;
                                  const Tensor& x = Float16AsFloat(ctx.input(i), &tmp);
                                  if (i == 0)
                                    BroadcastCopy(x.data<T>(), x.shape(), o, so);
                                  else
                                    BinaryLoop(o, so, x.data<T>(), x.shape(), o, so,
                                               [&f](T p, T q) { return static_cast<T>(f(p, q)); });
                                }
                                if (mean) {
                                  const int64_t m = NumElements(so);
                                  const T count = static_cast<T>(n);
                                  for (int64_t i = 0; i < m; ++i) o[i] = o[i] / count;
                                }
                                return Status::Ok();
                              })));
  if (acc != out) StoreFloatAsHalf(*acc, out);
  return Status::Ok();
}

template <typename T>
inline T MaxValue(T x, T y) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(x)) return x;
  }
  return x >= y ? x : y;
}
template <typename T>
inline T MinValue(T x, T y) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(x)) return x;
  }
  return x <= y ? x : y;
}

Status Max(KernelContext& c) {
  return Variadic(c, false, false, [](auto x, auto y) { return MaxValue(x, y); });
}
Status Min(KernelContext& c) {
  return Variadic(c, false, false, [](auto x, auto y) { return MinValue(x, y); });
}
Status Sum(KernelContext& c) {
  return Variadic(c, false, false, [](auto x, auto y) { return WrapAdd(x, y); });
}
Status Mean(KernelContext& c) {
  return Variadic(c, true, true, [](auto x, auto y) { return x + y; });
}

// Where ---------------------------------------------------------------------

Status Where(KernelContext& c) {
  PX_RETURN_IF_ERROR(RequireInputs(c, 3));
  const Tensor& cond = c.input(0);
  const Tensor& x = c.input(1);
  const Tensor& y = c.input(2);
  if (cond.dtype() != DType::kBool)
    return c.Error("condition must be bool, got " + std::string(DTypeName(cond.dtype())));
  if (x.dtype() != y.dtype())
    return c.Error("X and Y have different dtypes " + std::string(DTypeName(x.dtype())) + " and " +
                   std::string(DTypeName(y.dtype())));
  Result<Shape> s1 = BroadcastShapes(cond.shape(), x.shape());
  if (!s1.ok()) return c.Error(s1.status().message());
  Result<Shape> s2 = BroadcastShapes(*s1, y.shape());
  if (!s2.ok()) return c.Error(s2.status().message());
  const Shape so = *s2;
  PX_ASSIGN_OR_RETURN(Tensor * out, c.Output(0, x.dtype(), so));
  return WithNode(
      c, DispatchBySize(x.dtype(), [&]<typename T>() -> Status {
        const bool* pc = cond.data<bool>();
        const T* px = x.data<T>();
        const T* py = y.data<T>();
        T* po = out->data<T>();
        const int64_t n = NumElements(so);
        const IntraOp& par = c.intra_op();
        if (cond.numel() == n && x.numel() == n && y.numel() == n) {
          par.ParallelRanges(
              n, kParallelMinChunk,
              [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) po[i] = pc[i] ? px[i] : py[i];
              },
              kParallelAlign);
          return Status::Ok();
        }
        if (n == 0) return Status::Ok();
        BroadcastPlan p = MakeBroadcastPlan(so, {cond.shape(), x.shape(), y.shape()});
        const int64_t m = p.inner;
        const int64_t kc = p.inner_stride[0], kx = p.inner_stride[1], ky = p.inner_stride[2];
        auto row = [&](int64_t o, const std::array<int64_t, 3>& off) {
          const bool* rc = pc + off[0];
          const T* rx = px + off[1];
          const T* ry = py + off[2];
          T* ro = po + o;
          if (kc == 1 && kx == 1 && ky == 1) {
            for (int64_t i = 0; i < m; ++i) ro[i] = rc[i] ? rx[i] : ry[i];
          } else {
            for (int64_t i = 0; i < m; ++i) ro[i] = rc[i * kc] ? rx[i * kx] : ry[i * ky];
          }
        };
        par.ParallelRanges(p.rows, std::max<int64_t>(1, kParallelMinChunk / m),
                           [&](int64_t r0, int64_t r1) { ForEachRowIn(p, r0, r1, row); });
        return Status::Ok();
      }));
}

// Clip ----------------------------------------------------------------------

// Reads bound input i (a scalar of type T) into *v; leaves *v when omitted.
template <typename T>
Status ReadBound(const KernelContext& c, int i, T* v) {
  if (!c.has_input(i)) return Status::Ok();
  const Tensor& t = c.input(i);
  if (t.numel() != 1)
    return c.Error("input " + std::to_string(i) + " must be a scalar, got shape " +
                   ShapeToString(t.shape()));
  if (t.dtype() == DType::kFloat16 && std::is_same_v<T, float>) {
    *v = static_cast<T>(HalfToFloat(t.data<Half>()[0]));
    return Status::Ok();
  }
  if (t.dtype() != DTypeOf<T>::value)
    return c.Error("input " + std::to_string(i) + " has dtype " +
                   std::string(DTypeName(t.dtype())) + ", expected the input's dtype");
  *v = t.data<T>()[0];
  return Status::Ok();
}

Status Clip(KernelContext& c) {
  PX_RETURN_IF_ERROR(RequireInputs(c, 1));
  const Tensor& in = c.input(0);
  Tensor tmp;
  const Tensor& x = Float16AsFloat(in, &tmp);
  PX_ASSIGN_OR_RETURN(Tensor * out, c.OutputOver(0, in.dtype(), in.shape()));  // Elementwise.
  Tensor tmp_out;
  Tensor* dst = out;
  if (in.dtype() == DType::kFloat16) {
    tmp_out = Tensor::Uninitialized(DType::kFloat32, in.shape());
    dst = &tmp_out;
  }
  PX_RETURN_IF_ERROR(WithNode(c, DispatchNumeric(x.dtype(), [&]<typename T>() -> Status {
                                T lo = std::numeric_limits<T>::lowest();
                                T hi = std::numeric_limits<T>::max();
                                if (c.opset() < 11) {
                                  if (c.node().has_attr("min"))
                                    lo = static_cast<T>(c.node().attr_float("min", 0));
                                  if (c.node().has_attr("max"))
                                    hi = static_cast<T>(c.node().attr_float("max", 0));
                                } else {
                                  PX_RETURN_IF_ERROR(ReadBound(c, 1, &lo));
                                  PX_RETURN_IF_ERROR(ReadBound(c, 2, &hi));
                                }
                                const T* px = x.data<T>();
                                T* po = dst->data<T>();
                                c.intra_op().ParallelRanges(
                                    x.numel(), kParallelMinChunk,
                                    [&](int64_t b, int64_t e) {
                                      if constexpr (std::is_same_v<T, float>) {
                                        vec::Best().unary(vec::UnaryOp::kClip, px + b, po + b,
                                                          e - b, lo, hi);
                                      } else {
                                        for (int64_t i = b; i < e; ++i) {
                                          const T v = px[i] < lo ? lo : px[i];
                                          po[i] = v > hi ? hi : v;
                                        }
                                      }
                                    },
                                    kParallelAlign);
                                return Status::Ok();
                              })));
  if (dst != out) StoreFloatAsHalf(*dst, out);
  return Status::Ok();
}

// Cast / Identity / Dropout ---------------------------------------------------

// Opset 1 names the target type as a string.
DType DTypeFromName(const std::string& s) {
  static const std::pair<const char*, DType> kNames[] = {
      {"FLOAT", DType::kFloat32}, {"FLOAT16", DType::kFloat16}, {"DOUBLE", DType::kFloat64},
      {"INT8", DType::kInt8},     {"INT16", DType::kInt16},     {"INT32", DType::kInt32},
      {"INT64", DType::kInt64},   {"UINT8", DType::kUInt8},     {"UINT16", DType::kUInt16},
      {"UINT32", DType::kUInt32}, {"UINT64", DType::kUInt64},   {"BOOL", DType::kBool},
      {"STRING", DType::kString}};
  for (const auto& [name, dt] : kNames)
    if (s == name) return dt;
  return DType::kUndefined;
}

Status CastToDType(KernelContext& c, DType to, const std::string& what) {
  const Tensor& x = c.input(0);
  if (!IsSupportedDType(to)) return c.Error("cannot cast to " + what);
  if (!IsSupportedDType(x.dtype()))
    return c.Error("cannot cast from " + std::string(DTypeName(x.dtype())));
  PX_ASSIGN_OR_RETURN(Tensor * out, c.Output(0, to, x.shape()));
  return WithNode(c, CastInto(x, out));
}

Status Cast(KernelContext& c) {
  PX_RETURN_IF_ERROR(RequireInputs(c, 1));
  const Attribute* a = c.node().attr("to");
  if (a == nullptr) return c.Error("missing attribute 'to'");
  if (a->kind == Attribute::Kind::kString) return CastToDType(c, DTypeFromName(a->s), a->s);
  const DType to = static_cast<DType>(a->i);
  std::string what = "type " + std::to_string(a->i);
  if (IsSupportedDType(to) || to == DType::kString) what = std::string(DTypeName(to));
  return CastToDType(c, to, what);
}

Status CastLike(KernelContext& c) {
  PX_RETURN_IF_ERROR(RequireInputs(c, 2));
  const DType to = c.input(1).dtype();
  return CastToDType(c, to, std::string(DTypeName(to)));
}

Status CopyInput(KernelContext& c, int out_index) {
  const Tensor& x = c.input(0);
  PX_ASSIGN_OR_RETURN(Tensor * out, c.Output(out_index, x.dtype(), x.shape()));
  if (x.nbytes() != 0) std::memcpy(out->raw_data(), x.raw_data(), x.nbytes());
  return Status::Ok();
}

Status Dropout(KernelContext& c) {
  PX_RETURN_IF_ERROR(RequireInputs(c, 1));
  const Tensor& x = c.input(0);
  if (c.opset() >= 12) {
    bool training = false;
    if (c.has_input(2)) {
      const Tensor& t = c.input(2);
      if (t.dtype() != DType::kBool || t.numel() != 1)
        return c.Error("training_mode must be a bool scalar");
      training = t.data<bool>()[0];
    }
    double ratio = 0.5;
    if (c.has_input(1)) {
      Result<double> r = ReadScalarAsDouble(c.input(1));
      if (!r.ok()) return c.Error("ratio: " + r.status().message());
      ratio = *r;
    }
    if (training && ratio != 0.0)
      return Unsupported(c.node().Describe() + ": training_mode=true with ratio " +
                         std::to_string(ratio) +
                         " is not supported (inference runtime; only ratio 0)");
  }
  PX_RETURN_IF_ERROR(CopyInput(c, 0));
  if (c.num_outputs() > 1 && c.output_used(1)) {
    const DType mask_dt = c.opset() >= 10 ? DType::kBool : x.dtype();
    PX_ASSIGN_OR_RETURN(Tensor * mask, c.Output(1, mask_dt, x.shape()));
    Tensor one = Tensor::Uninitialized(DType::kBool, {1});
    one.data<bool>()[0] = true;
    Tensor ones = Tensor::Uninitialized(mask_dt, {1});
    PX_RETURN_IF_ERROR(CastInto(one, &ones));
    const size_t es = DTypeSize(mask_dt);
    auto* dst = static_cast<unsigned char*>(mask->raw_data());
    for (int64_t i = 0; i < mask->numel(); ++i)
      std::memcpy(dst + static_cast<size_t>(i) * es, ones.raw_data(), es);
  }
  return Status::Ok();
}

}  // namespace

void RegisterMiscOps(OpRegistry& r) {
  r.Register("Max", Max);
  r.Register("Min", Min);
  r.Register("Sum", Sum);
  r.Register("Mean", Mean);
  r.Register("Where", Where);
  r.Register("Clip", Clip);
  r.SetReusableInputs("", "Clip", {0});
  r.Register("Cast", Cast);
  r.Register("CastLike", CastLike);
  r.Register("Dropout", Dropout);
}

}  // namespace elementwise
}  // namespace parallax
