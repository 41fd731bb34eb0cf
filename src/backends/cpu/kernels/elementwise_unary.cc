// Unary elementwise ops: math functions and activations. float16 is computed
// in float32, in small chunks, and rounded back.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "backends/cpu/kernels/elementwise_util.h"
#include "backends/cpu/kernels/vec_math.h"
#include "ops/dispatch.h"

namespace parallax {
namespace elementwise {
namespace {

constexpr int64_t kHalfChunk = 256;

// The float32 loop of a unary op (vec_math.h) and its attributes.
struct VecOp {
  vec::UnaryOp op;
  float alpha = 0.0f, beta = 0.0f;
};

// out[i] = f(in[i]) for float16 input, computed in float32 in small chunks
// (through `vop`'s float32 loop when given).
template <typename TO, typename F>
void MapHalf(const Half* in, TO* out, int64_t n, F& f, const VecOp* vop) {
  float buf[kHalfChunk];
  for (int64_t s = 0; s < n; s += kHalfChunk) {
    const int64_t m = std::min(kHalfChunk, n - s);
    for (int64_t i = 0; i < m; ++i) buf[i] = HalfToFloat(in[s + i]);
    if constexpr (std::is_same_v<TO, Half>) {
      if (vop != nullptr)
        vec::Best().unary(vop->op, buf, buf, m, vop->alpha, vop->beta);
      else
        for (int64_t i = 0; i < m; ++i) buf[i] = static_cast<float>(f(buf[i]));
      for (int64_t i = 0; i < m; ++i) out[s + i] = FloatToHalf(buf[i]);
    } else {
      for (int64_t i = 0; i < m; ++i) out[s + i] = static_cast<TO>(f(buf[i]));
    }
  }
}

// Elements per intra-op task: float maps through exp, erf, tanh, a divide or
// libm (no vop) are heavy; integer maps and the select-like float ones are
// cheap.
int64_t MinChunk(DType dt, const VecOp* vop) {
  if (dt != DType::kFloat32 && dt != DType::kFloat64 && dt != DType::kFloat16)
    return kParallelMinChunk;
  if (vop == nullptr) return kParallelMinChunkHeavy;
  switch (vop->op) {
    case vec::UnaryOp::kRelu:
    case vec::UnaryOp::kLeakyRelu:
    case vec::UnaryOp::kHardSigmoid:
    case vec::UnaryOp::kHardSwish:
    case vec::UnaryOp::kClip:
    case vec::UnaryOp::kNeg:
    case vec::UnaryOp::kAbs:
      return kParallelMinChunk;
    default:
      return kParallelMinChunkHeavy;
  }
}

// o[i] = f(in[i]) for i < n, or vop's loop for float32, split over par's
// threads in tasks of at least `chunk` elements.
template <typename T, typename TO, typename F>
void MapParallel(const IntraOp& par, int64_t chunk, const T* in, TO* o, int64_t n, F& f,
                 const VecOp* vop) {
  if constexpr (std::is_same_v<T, float> && std::is_same_v<TO, float>) {
    if (vop != nullptr) {
      const vec::Kernels& k = vec::Best();
      par.ParallelRanges(
          n, chunk,
          [&](int64_t b, int64_t e) {
            k.unary(vop->op, in + b, o + b, e - b, vop->alpha, vop->beta);
          },
          kParallelAlign);
      return;
    }
  }
  par.ParallelRanges(
      n, chunk,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) o[i] = static_cast<TO>(f(in[i]));
      },
      kParallelAlign);
}

enum TypeSet { kFloats = 1, kInts = 2, kBools = 4 };

// Applies f elementwise to input 0; the output has the input's dtype, or
// bool when kBoolOut. `kTypes` says which input dtypes f accepts. With `vop`,
// float32 and float16 run its vectorised float32 loop, which must compute
// what f computes for float. Work is split over ctx's intra-op threads.
template <int kTypes, bool kBoolOut = false, typename F>
Status Unary(KernelContext& ctx, F f, const VecOp* vop = nullptr) {
  PX_RETURN_IF_ERROR(RequireInputs(ctx, 1));
  const Tensor& x = ctx.input(0);
  const DType dt = x.dtype();
  const int64_t n = x.numel();
  const DType out_dt = kBoolOut ? DType::kBool : dt;
  const IntraOp& par = ctx.intra_op();
  const int64_t chunk = MinChunk(dt, vop);
  auto run = [&]<typename T>() -> Status {
    PX_ASSIGN_OR_RETURN(Tensor * out, ctx.OutputOver(0, out_dt, x.shape()));
    if constexpr (kBoolOut)
      MapParallel(par, chunk, x.data<T>(), out->data<bool>(), n, f, vop);
    else
      MapParallel(par, chunk, x.data<T>(), out->data<T>(), n, f, vop);
    return Status::Ok();
  };
  if constexpr ((kTypes & kFloats) != 0) {
    if (dt == DType::kFloat16) {
      PX_ASSIGN_OR_RETURN(Tensor * out, ctx.OutputOver(0, out_dt, x.shape()));
      const Half* in = x.data<Half>();
      par.ParallelRanges(
          n, kParallelMinChunkHeavy,  // float16 conversions dominate.
          [&](int64_t b, int64_t e) {
            if constexpr (kBoolOut)
              MapHalf(in + b, out->data<bool>() + b, e - b, f, vop);
            else
              MapHalf(in + b, out->data<Half>() + b, e - b, f, vop);
          },
          kParallelAlign);
      return Status::Ok();
    }
    if (dt == DType::kFloat32 || dt == DType::kFloat64) return DispatchFloat(dt, run);
  }
  if constexpr ((kTypes & kInts) != 0) {
    if (dt != DType::kBool && dt != DType::kFloat16 && dt != DType::kFloat32 &&
        dt != DType::kFloat64)
      return WithNode(ctx, DispatchInt(dt, run));
  }
  if constexpr ((kTypes & kBools) != 0) {
    if (dt == DType::kBool) return run.template operator()<bool>();
  }
  return ctx.Error("does not support input dtype " + std::string(DTypeName(dt)));
}

template <typename F>
Status UnaryFloat(KernelContext& ctx, F f, const VecOp* vop = nullptr) {
  return Unary<kFloats>(ctx, f, vop);
}
template <typename F>
Status UnaryNumeric(KernelContext& ctx, F f, const VecOp* vop = nullptr) {
  return Unary<kFloats | kInts>(ctx, f, vop);
}

float Attr(const KernelContext& ctx, const char* name, float def) {
  return ctx.node().attr_float(name, def);
}

// Math ------------------------------------------------------------------

Status Abs(KernelContext& c) {
  static constexpr VecOp kVec{vec::UnaryOp::kAbs};
  return UnaryNumeric(
      c,
      [](auto x) {
        using T = decltype(x);
        if constexpr (std::is_unsigned_v<T>)
          return x;
        else if constexpr (std::is_integral_v<T>)
          return x < 0 ? WrapSub(T(0), x) : x;
        else
          return std::abs(x);
      },
      &kVec);
}
Status Neg(KernelContext& c) {
  static constexpr VecOp kVec{vec::UnaryOp::kNeg};
  return UnaryNumeric(
      c,
      [](auto x) {
        using T = decltype(x);
        if constexpr (std::is_integral_v<T>)  // Wraps like two's complement.
          return static_cast<T>(0 - static_cast<std::make_unsigned_t<T>>(x));
        else
          return -x;
      },
      &kVec);
}
Status Sign(KernelContext& c) {
  return UnaryNumeric(c, [](auto x) {
    using T = decltype(x);
    return static_cast<T>((x > T(0)) - (x < T(0)));
  });
}
Status Round(KernelContext& c) {
  return UnaryFloat(c, [](auto x) { return std::nearbyint(x); });  // Ties to even.
}
Status IsNaN(KernelContext& c) {
  return Unary<kFloats, true>(c, [](auto x) { return std::isnan(x); });
}
Status IsInf(KernelContext& c) {
  const bool neg = c.node().attr_int("detect_negative", 1) != 0;
  const bool pos = c.node().attr_int("detect_positive", 1) != 0;
  return Unary<kFloats, true>(
      c, [neg, pos](auto x) { return std::isinf(x) && ((x > 0 && pos) || (x < 0 && neg)); });
}
Status Not(KernelContext& c) {
  return Unary<kBools>(c, [](bool x) { return !x; });
}
Status BitwiseNot(KernelContext& c) {
  return Unary<kInts>(c, [](auto x) { return static_cast<decltype(x)>(~x); });
}

// Activations -------------------------------------------------------------

Status Relu(KernelContext& c) {
  static constexpr VecOp kVec{vec::UnaryOp::kRelu};
  return UnaryNumeric(
      c, [](auto x) { return x > decltype(x)(0) ? x : decltype(x)(0); }, &kVec);
}
Status LeakyRelu(KernelContext& c) {
  const float alpha = Attr(c, "alpha", 0.01f);
  const VecOp v{vec::UnaryOp::kLeakyRelu, alpha};
  return UnaryFloat(
      c,
      [alpha](auto x) {
        using T = decltype(x);
        return x >= T(0) ? x : static_cast<T>(alpha) * x;
      },
      &v);
}
Status Elu(KernelContext& c) {
  const float alpha = Attr(c, "alpha", 1.0f);
  const VecOp v{vec::UnaryOp::kElu, alpha};
  return UnaryFloat(
      c,
      [alpha](auto x) {
        using T = decltype(x);
        return x >= T(0) ? x : static_cast<T>(alpha) * (Exp(x) - T(1));
      },
      &v);
}
Status Selu(KernelContext& c) {
  const float alpha = Attr(c, "alpha", 1.67326319217681884765625f);
  const float gamma = Attr(c, "gamma", 1.05070102214813232421875f);
  return UnaryFloat(c, [alpha, gamma](auto x) {
    using T = decltype(x);
    const T g = static_cast<T>(gamma);
    return x > T(0) ? g * x : g * static_cast<T>(alpha) * (Exp(x) - T(1));
  });
}
Status Celu(KernelContext& c) {
  const float alpha = Attr(c, "alpha", 1.0f);
  if (alpha == 0.0f) return c.Error("alpha must not be 0");
  return UnaryFloat(c, [alpha](auto x) {
    using T = decltype(x);
    const T a = static_cast<T>(alpha);
    return x > T(0) ? x : a * (Exp(x / a) - T(1));
  });
}
Status Sigmoid(KernelContext& c) {
  // exp(-x) overflows to inf for very negative x, giving exactly 0.
  static constexpr VecOp kVec{vec::UnaryOp::kSigmoid};
  return UnaryFloat(
      c, [](auto x) { return decltype(x)(1) / (decltype(x)(1) + Exp(-x)); }, &kVec);
}
Status HardSigmoid(KernelContext& c) {
  const float alpha = Attr(c, "alpha", 0.2f), beta = Attr(c, "beta", 0.5f);
  const VecOp vop{vec::UnaryOp::kHardSigmoid, alpha, beta};
  return UnaryFloat(
      c,
      [alpha, beta](auto x) {
        using T = decltype(x);
        const T v = static_cast<T>(alpha) * x + static_cast<T>(beta);
        return std::min(T(1), std::max(T(0), v));
      },
      &vop);
}
Status HardSwish(KernelContext& c) {
  static constexpr VecOp kVec{vec::UnaryOp::kHardSwish};
  return UnaryFloat(
      c,
      [](auto x) {
        using T = decltype(x);
        const T v = x / T(6) + T(0.5);
        return x * std::min(T(1), std::max(T(0), v));
      },
      &kVec);
}
template <typename T>
inline T SoftplusValue(T x) {
  return x > T(0) ? x + std::log1p(Exp(-x)) : std::log1p(Exp(x));
}
Status Softplus(KernelContext& c) {
  return UnaryFloat(c, [](auto x) { return SoftplusValue(x); });
}
Status Softsign(KernelContext& c) {
  static constexpr VecOp kVec{vec::UnaryOp::kSoftsign};
  return UnaryFloat(
      c, [](auto x) { return x / (decltype(x)(1) + std::abs(x)); }, &kVec);
}
Status ThresholdedRelu(KernelContext& c) {
  const float alpha = Attr(c, "alpha", 1.0f);
  return UnaryFloat(c, [alpha](auto x) {
    using T = decltype(x);
    return x > static_cast<T>(alpha) ? x : T(0);
  });
}
Status Shrink(KernelContext& c) {
  const double lambd = Attr(c, "lambd", 0.5f), bias = Attr(c, "bias", 0.0f);
  return UnaryNumeric(c, [lambd, bias](auto x) {
    using T = decltype(x);
    const double v = static_cast<double>(x);
    if (v < -lambd) return static_cast<T>(v + bias);
    if (v > lambd) return static_cast<T>(v - bias);
    return T(0);
  });
}
Status Mish(KernelContext& c) {
  // tanh(log(1 + e^x)) = n / (n + 2) with n = e^x (e^x + 2); x is capped at
  // 20, where the ratio is 1 in both float and double.
  static constexpr VecOp kVec{vec::UnaryOp::kMish};
  return UnaryFloat(
      c,
      [](auto x) {
        using T = decltype(x);
        const T e = Exp(std::min(x, T(20)));
        const T n = e * (e + T(2));
        return x * n / (n + T(2));
      },
      &kVec);
}
Status Gelu(KernelContext& c) {
  const std::string approx = c.node().attr_string("approximate", "none");
  if (approx == "tanh") {
    static constexpr VecOp kVec{vec::UnaryOp::kGeluTanh};
    return UnaryFloat(
        c,
        [](auto x) {
          using T = decltype(x);
          const T k = static_cast<T>(0.7978845608028654);  // sqrt(2 / pi)
          return T(0.5) * x * (T(1) + Tanh(k * (x + T(0.044715) * x * x * x)));
        },
        &kVec);
  }
  if (approx != "none") return c.Error("unknown approximate mode '" + approx + "'");
  static constexpr VecOp kVec{vec::UnaryOp::kGelu};
  return UnaryFloat(
      c,
      [](auto x) {
        using T = decltype(x);
        return T(0.5) * x * (T(1) + Erf(x * static_cast<T>(0.7071067811865476)));
      },
      &kVec);
}

}  // namespace

#define PX_UNARY_FLOAT(NAME, EXPR) \
  r.Register(NAME, [](KernelContext& c) { return UnaryFloat(c, [](auto x) { return EXPR; }); })
// A unary float op with a vectorised float32 loop OP computing EXPR.
#define PX_UNARY_VEC(NAME, OP, EXPR)            \
  r.Register(NAME, [](KernelContext& c) {       \
    static constexpr VecOp kVec{OP};            \
    return UnaryFloat(                          \
        c, [](auto x) { return EXPR; }, &kVec); \
  })

void RegisterUnaryOps(OpRegistry& r) {
  r.Register("Abs", Abs);
  r.Register("Neg", Neg);
  r.Register("Sign", Sign);
  r.Register("Round", Round);
  r.Register("IsNaN", IsNaN);
  r.Register("IsInf", IsInf);
  r.Register("Not", Not);
  r.Register("BitwiseNot", BitwiseNot);
  PX_UNARY_VEC("Exp", vec::UnaryOp::kExp, Exp(x));
  PX_UNARY_FLOAT("Log", std::log(x));
  PX_UNARY_VEC("Sqrt", vec::UnaryOp::kSqrt, std::sqrt(x));
  PX_UNARY_VEC("Reciprocal", vec::UnaryOp::kReciprocal, decltype(x)(1) / x);
  PX_UNARY_FLOAT("Floor", std::floor(x));
  PX_UNARY_FLOAT("Ceil", std::ceil(x));
  PX_UNARY_FLOAT("Sin", std::sin(x));
  PX_UNARY_FLOAT("Cos", std::cos(x));
  PX_UNARY_FLOAT("Tan", std::tan(x));
  PX_UNARY_FLOAT("Asin", std::asin(x));
  PX_UNARY_FLOAT("Acos", std::acos(x));
  PX_UNARY_FLOAT("Atan", std::atan(x));
  PX_UNARY_FLOAT("Sinh", std::sinh(x));
  PX_UNARY_FLOAT("Cosh", std::cosh(x));
  PX_UNARY_FLOAT("Asinh", std::asinh(x));
  PX_UNARY_FLOAT("Acosh", std::acosh(x));
  PX_UNARY_FLOAT("Atanh", std::atanh(x));
  PX_UNARY_VEC("Erf", vec::UnaryOp::kErf, Erf(x));
  PX_UNARY_VEC("Tanh", vec::UnaryOp::kTanh, Tanh(x));
  // Unary<> maps element i to element i: output 0 may overwrite input 0.
  for (const char* op :
       {"Abs",        "Neg",   "Sign",  "Round", "Not",   "BitwiseNot", "Exp",  "Log",  "Sqrt",
        "Reciprocal", "Floor", "Ceil",  "Sin",   "Cos",   "Tan",        "Asin", "Acos", "Atan",
        "Sinh",       "Cosh",  "Asinh", "Acosh", "Atanh", "Erf",        "Tanh"})
    r.SetReusableInputs("", op, {0});
}

#undef PX_UNARY_VEC
#undef PX_UNARY_FLOAT

void RegisterActivationOps(OpRegistry& r) {
  r.Register("Relu", Relu);
  r.Register("LeakyRelu", LeakyRelu);
  r.Register("Elu", Elu);
  r.Register("Selu", Selu);
  r.Register("Celu", Celu);
  r.Register("Sigmoid", Sigmoid);
  r.Register("HardSigmoid", HardSigmoid);
  r.Register("HardSwish", HardSwish);
  r.Register("Softplus", Softplus);
  r.Register("Softsign", Softsign);
  r.Register("ThresholdedRelu", ThresholdedRelu);
  r.Register("Shrink", Shrink);
  r.Register("Mish", Mish);
  r.Register("Gelu", Gelu);
  for (const char* op :
       {"Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish",
        "Softplus", "Softsign", "ThresholdedRelu", "Shrink", "Mish", "Gelu"})
    r.SetReusableInputs("", op, {0});
}

}  // namespace elementwise
}  // namespace parallax
