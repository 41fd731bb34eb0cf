// Binary elementwise ops with numpy broadcasting: arithmetic, Pow, Mod,
// comparisons, logical and bitwise ops, PRelu. float16 is computed in
// float32. Integer division/modulo by zero yields 0 instead of trapping.
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "backends/cpu/kernels/elementwise_util.h"
#include "backends/cpu/kernels/vec_math.h"
#include "ops/dispatch.h"

namespace parallax {
namespace elementwise {
namespace {

enum TypeSet { kFloats = 1, kInts = 2, kBools = 4 };

struct BinaryShapes {
  Shape sa, sb, so;
};

Result<BinaryShapes> PrepareBinary(const KernelContext& ctx, bool same_dtype,
                                   const Shape* b_shape = nullptr) {
  PX_RETURN_IF_ERROR(RequireInputs(ctx, 2));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (same_dtype && a.dtype() != b.dtype())
    return ctx.Error("inputs have different dtypes " + std::string(DTypeName(a.dtype())) + " and " +
                     std::string(DTypeName(b.dtype())));
  BinaryShapes s;
  s.sa = a.shape();
  s.sb = b_shape != nullptr ? *b_shape : LegacyBroadcastShape(ctx.node(), a.shape(), b.shape());
  Result<Shape> so = BroadcastShapes(s.sa, s.sb);
  if (!so.ok()) return ctx.Error(so.status().message());
  s.so = std::move(so).value();
  return s;
}

bool IsFloatType(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16;
}

// Spans shorter than this run inline rather than through a vec:: call.
constexpr int64_t kMinVecSpan = 16;

// out = a `op` b for float32 with numpy broadcasting, through the vectorised
// loops of vec_math.h, split over ctx's intra-op threads.
void VecBinary(const IntraOp& par, vec::BinaryOp op, const float* a, const float* b, float* out,
               const BinaryShapes& s) {
  const vec::Kernels& k = vec::Best();
  ForEachBinarySpan(par, s.sa, s.sb, s.so,
                    [&](int64_t o, int64_t ia, int64_t ka, int64_t ib, int64_t kb, int64_t m) {
                      if (m >= kMinVecSpan) {
                        k.binary(op, a + ia, ka, b + ib, kb, out + o, m);
                        return;
                      }
                      auto f = [op](float x, float y) { return vec::ScalarBinary(op, x, y); };
                      BinarySpan(a + ia, ka, b + ib, kb, out + o, m, f);
                    });
}

// out = f(a, b) broadcast; both inputs share a dtype from `kTypes`. The output
// has the input dtype, or bool when kBoolOut.
// `b_shape` overrides how input 1's shape is seen (same element count).
// With `vop`, float32 and float16 use its vectorised float32 loop, which must
// compute what f computes for float. Work is split over ctx's intra-op threads.
template <int kTypes, bool kBoolOut = false, typename F>
Status Binary(KernelContext& ctx, F f, const Shape* b_shape = nullptr,
              const vec::BinaryOp* vop = nullptr) {
  PX_ASSIGN_OR_RETURN(BinaryShapes s, PrepareBinary(ctx, true, b_shape));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  const DType dt = a.dtype();
  const IntraOp& par = ctx.intra_op();
  auto run = [&]<typename T>(const Tensor& x, const Tensor& y, Tensor* out) -> Status {
    if constexpr (kBoolOut) {
      BinaryLoop(x.data<T>(), s.sa, y.data<T>(), s.sb, out->data<bool>(), s.so, f, par);
    } else if constexpr (std::is_same_v<T, float>) {
      if (vop != nullptr) {
        VecBinary(par, *vop, x.data<float>(), y.data<float>(), out->data<float>(), s);
        return Status::Ok();
      }
    }
    if constexpr (!kBoolOut) {
      BinaryLoop(
          x.data<T>(), s.sa, y.data<T>(), s.sb, out->data<T>(), s.so,
          [&f](T p, T q) { return static_cast<T>(f(p, q)); }, par);
    }
    return Status::Ok();
  };
  const DType out_dt = kBoolOut ? DType::kBool : dt;
  if constexpr ((kTypes & kFloats) != 0) {
    if (dt == DType::kFloat16) {
      Tensor ta, tb;
      const Tensor& fa = Float16AsFloat(a, &ta);
      const Tensor& fb = Float16AsFloat(b, &tb);
      PX_ASSIGN_OR_RETURN(Tensor * out, ctx.OutputOver(ctx.reusable_input(), out_dt, s.so));
      if constexpr (kBoolOut) return run.template operator()<float>(fa, fb, out);
      Tensor tmp = Tensor::Uninitialized(DType::kFloat32, s.so);
      PX_RETURN_IF_ERROR(run.template operator()<float>(fa, fb, &tmp));
      StoreFloatAsHalf(tmp, out);
      return Status::Ok();
    }
    if (dt == DType::kFloat32 || dt == DType::kFloat64) {
      PX_ASSIGN_OR_RETURN(Tensor * out, ctx.OutputOver(ctx.reusable_input(), out_dt, s.so));
      return DispatchFloat(dt, [&]<typename T>() { return run.template operator()<T>(a, b, out); });
    }
  }
  if constexpr ((kTypes & kInts) != 0) {
    if (!IsFloatType(dt) && dt != DType::kBool && IsSupportedDType(dt)) {
      PX_ASSIGN_OR_RETURN(Tensor * out, ctx.OutputOver(ctx.reusable_input(), out_dt, s.so));
      return WithNode(ctx, DispatchInt(dt, [&]<typename T>() {
                        return run.template operator()<T>(a, b, out);
                      }));
    }
  }
  if constexpr ((kTypes & kBools) != 0) {
    if (dt == DType::kBool) {
      PX_ASSIGN_OR_RETURN(Tensor * out, ctx.OutputOver(ctx.reusable_input(), out_dt, s.so));
      return run.template operator()<bool>(a, b, out);
    }
  }
  return ctx.Error("does not support input dtype " + std::string(DTypeName(dt)));
}

template <typename F>
Status BinaryNumeric(KernelContext& ctx, F f, const Shape* b_shape = nullptr,
                     const vec::BinaryOp* vop = nullptr) {
  return Binary<kFloats | kInts>(ctx, f, b_shape, vop);
}
template <typename F>
Status Compare(KernelContext& ctx, F f) {
  return Binary<kFloats | kInts | kBools, true>(ctx, f);
}

// Arithmetic ---------------------------------------------------------------

Status Add(KernelContext& c) {
  static constexpr vec::BinaryOp kVec = vec::BinaryOp::kAdd;
  return BinaryNumeric(
      c, [](auto x, auto y) { return WrapAdd(x, y); }, nullptr, &kVec);
}
Status Sub(KernelContext& c) {
  static constexpr vec::BinaryOp kVec = vec::BinaryOp::kSub;
  return BinaryNumeric(
      c, [](auto x, auto y) { return WrapSub(x, y); }, nullptr, &kVec);
}
Status Mul(KernelContext& c) {
  static constexpr vec::BinaryOp kVec = vec::BinaryOp::kMul;
  return BinaryNumeric(
      c, [](auto x, auto y) { return WrapMul(x, y); }, nullptr, &kVec);
}
Status Div(KernelContext& c) {
  static constexpr vec::BinaryOp kVec = vec::BinaryOp::kDiv;
  return BinaryNumeric(
      c,
      [](auto x, auto y) {
        using T = decltype(x);
        if constexpr (std::is_integral_v<T>) {
          if (y == T(0)) return T(0);
          if constexpr (std::is_signed_v<T>) {
            if (y == T(-1)) return static_cast<T>(0 - static_cast<std::make_unsigned_t<T>>(x));
          }
          return static_cast<T>(x / y);  // Truncates toward zero like C.
        } else {
          return x / y;
        }
      },
      nullptr, &kVec);
}

Status Mod(KernelContext& c) {
  const bool fmod = c.node().attr_int("fmod", 0) != 0;
  return BinaryNumeric(c, [fmod](auto x, auto y) {
    using T = decltype(x);
    if constexpr (std::is_integral_v<T>) {
      if (y == T(0)) return T(0);
      if constexpr (std::is_signed_v<T>) {
        if (y == T(-1)) return T(0);
        T r = static_cast<T>(x % y);
        if (!fmod && r != 0 && ((r < 0) != (y < 0))) r = static_cast<T>(r + y);
        return r;
      } else {
        return static_cast<T>(x % y);
      }
    } else {
      T r = std::fmod(x, y);
      if (!fmod && r != T(0) && ((r < T(0)) != (y < T(0)))) r += y;
      return r;
    }
  });
}

Status PRelu(KernelContext& c) {
  PX_RETURN_IF_ERROR(RequireInputs(c, 2));
  const Shape& sx = c.input(0).shape();
  const Shape& sl = c.input(1).shape();
  Shape slope_shape = sl;
  // Before opset 7 a 1-D slope of size C applies per channel (axis 1).
  if (c.opset() < 7 && sl.size() == 1 && sx.size() >= 2 && sl[0] != 1 && sl[0] == sx[1]) {
    slope_shape.assign(sx.size() - 1, 1);
    slope_shape[0] = sl[0];
  }
  Result<Shape> so = BroadcastShapes(sx, slope_shape);
  if (!so.ok() || *so != sx)
    return c.Error("slope shape " + ShapeToString(sl) + " does not broadcast to input shape " +
                   ShapeToString(sx));
  return BinaryNumeric(
      c, [](auto x, auto slope) { return x < decltype(x)(0) ? WrapMul(x, slope) : x; },
      &slope_shape);
}

// Pow: the exponent may have another dtype than the base.
Status Pow(KernelContext& c) {
  PX_ASSIGN_OR_RETURN(BinaryShapes s, PrepareBinary(c, false));
  const Tensor& a = c.input(0);
  const Tensor& b = c.input(1);
  const DType dt = a.dtype();
  if (!IsSupportedDType(b.dtype()) || b.dtype() == DType::kBool)
    return c.Error("unsupported exponent dtype " + std::string(DTypeName(b.dtype())));
  // Floating bases compute in their own type (float16 in float32); integer
  // bases compute in double and truncate back.
  const DType compute = dt == DType::kFloat16 ? DType::kFloat32
                        : IsFloatType(dt)     ? dt
                        : dt != DType::kBool  ? DType::kFloat64
                                              : DType::kUndefined;
  if (compute == DType::kUndefined || !IsSupportedDType(dt))
    return c.Error("unsupported base dtype " + std::string(DTypeName(dt)));
  PX_ASSIGN_OR_RETURN(Tensor ca, CastTo(a, compute));
  PX_ASSIGN_OR_RETURN(Tensor cb, CastTo(b, compute));
  Tensor res = compute == dt ? Tensor() : Tensor::Uninitialized(compute, s.so);
  PX_ASSIGN_OR_RETURN(Tensor * out, c.Output(0, dt, s.so));
  Tensor* dst = compute == dt ? out : &res;
  PX_RETURN_IF_ERROR(DispatchFloat(compute, [&]<typename T>() -> Status {
    const T* pa = ca.data<T>();
    T* po = dst->data<T>();
    if (cb.numel() == 1 && NumElements(s.sa) == NumElements(s.so)) {
      const T e = cb.data<T>()[0];
      const int64_t n = NumElements(s.so);
      if (e == T(2)) {
        for (int64_t i = 0; i < n; ++i) po[i] = pa[i] * pa[i];
        return Status::Ok();
      }
      if (e == T(1)) {
        for (int64_t i = 0; i < n; ++i) po[i] = pa[i];
        return Status::Ok();
      }
      if (e == T(0.5)) {
        for (int64_t i = 0; i < n; ++i) po[i] = std::sqrt(pa[i]);
        return Status::Ok();
      }
      if (e == T(3)) {
        for (int64_t i = 0; i < n; ++i) po[i] = pa[i] * pa[i] * pa[i];
        return Status::Ok();
      }
    }
    BinaryLoop(pa, s.sa, cb.data<T>(), s.sb, po, s.so, [](T x, T y) { return std::pow(x, y); });
    return Status::Ok();
  }));
  if (dst != out) PX_RETURN_IF_ERROR(CastInto(res, out));
  return Status::Ok();
}

Status BitShift(KernelContext& c) {
  const std::string dir = c.node().attr_string("direction", "");
  if (dir != "LEFT" && dir != "RIGHT")
    return c.Error("direction must be LEFT or RIGHT, got '" + dir + "'");
  const bool left = dir == "LEFT";
  return Binary<kInts>(c, [left](auto x, auto y) {
    using T = decltype(x);
    using U = std::make_unsigned_t<T>;
    const U bits = static_cast<U>(sizeof(T) * 8);
    if (y < T(0) || static_cast<U>(y) >= bits) return T(0);
    return left ? static_cast<T>(static_cast<U>(x) << y) : static_cast<T>(x >> y);
  });
}

}  // namespace

void RegisterBinaryOps(OpRegistry& r) {
  r.Register("Add", Add);
  r.Register("Sub", Sub);
  r.Register("Mul", Mul);
  r.Register("Div", Div);
  // Binary<> reads a same-shape input at the output's own index: the output
  // may overwrite either input.
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) r.SetReusableInputs("", op, {0, 1});
  r.Register("Mod", Mod);
  r.Register("Pow", Pow);
  r.Register("PRelu", PRelu);
  r.Register("BitShift", BitShift);
  r.Register("Equal",
             [](KernelContext& c) { return Compare(c, [](auto x, auto y) { return x == y; }); });
  r.Register("Greater",
             [](KernelContext& c) { return Compare(c, [](auto x, auto y) { return x > y; }); });
  r.Register("Less",
             [](KernelContext& c) { return Compare(c, [](auto x, auto y) { return x < y; }); });
  r.Register("GreaterOrEqual",
             [](KernelContext& c) { return Compare(c, [](auto x, auto y) { return x >= y; }); });
  r.Register("LessOrEqual",
             [](KernelContext& c) { return Compare(c, [](auto x, auto y) { return x <= y; }); });
  r.Register("And", [](KernelContext& c) {
    return Binary<kBools>(c, [](bool x, bool y) { return x && y; });
  });
  r.Register("Or", [](KernelContext& c) {
    return Binary<kBools>(c, [](bool x, bool y) { return x || y; });
  });
  r.Register("Xor", [](KernelContext& c) {
    return Binary<kBools>(c, [](bool x, bool y) { return x != y; });
  });
  r.Register("BitwiseAnd", [](KernelContext& c) {
    return Binary<kInts>(c, [](auto x, auto y) { return x & y; });
  });
  r.Register("BitwiseOr", [](KernelContext& c) {
    return Binary<kInts>(c, [](auto x, auto y) { return x | y; });
  });
  r.Register("BitwiseXor", [](KernelContext& c) {
    return Binary<kInts>(c, [](auto x, auto y) { return x ^ y; });
  });
}

}  // namespace elementwise
}  // namespace parallax
