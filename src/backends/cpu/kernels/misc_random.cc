// RandomUniform, RandomNormal, RandomUniformLike, RandomNormalLike, Bernoulli.
//
// Each kernel owns a 64-bit Mersenne Twister seeded from the `seed`
// attribute (or from std::random_device when absent); successive runs
// continue the stream. Values are reproducible for a given seed on any
// platform (uniform and normal draws are computed here, not by <random>
// distributions), but they do not match other runtimes.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numbers>
#include <random>
#include <string>
#include <type_traits>

#include "backends/cpu/kernels/misc_util.h"
#include "ops/dispatch.h"

namespace parallax {
namespace {

enum class RandomKind { kUniform, kNormal, kUniformLike, kNormalLike, kBernoulli };

bool IsFloat(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16;
}

class RandomKernel : public Kernel {
 public:
  RandomKernel(RandomKind kind, const Node& node) : kind_(kind) {
    if (node.has_attr("seed")) {
      float seed = node.attr_float("seed", 0.f);
      uint32_t bits = 0;
      std::memcpy(&bits, &seed, sizeof(bits));
      gen_.seed(bits);
    } else {
      std::random_device rd;
      gen_.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
    }
    const bool normal = kind == RandomKind::kNormal || kind == RandomKind::kNormalLike;
    a_ = node.attr_float(normal ? "mean" : "low", 0.f);
    b_ = node.attr_float(normal ? "scale" : "high", 1.f);
  }

  Status Run(KernelContext& ctx) override {
    if (kind_ == RandomKind::kBernoulli) return RunBernoulli(ctx);
    const Node& node = ctx.node();
    Shape shape;
    DType dt = DType::kFloat32;
    if (kind_ == RandomKind::kUniform || kind_ == RandomKind::kNormal) {
      if (!node.has_attr("shape")) return ctx.Error("attribute 'shape' is required");
      shape = node.attr_ints("shape");
      for (int64_t d : shape)
        if (d < 0) return ctx.Error("negative dimension in shape " + ShapeToString(shape));
    } else {
      if (!ctx.has_input(0)) return ctx.Error("input is required");
      shape = ctx.input(0).shape();
      dt = ctx.input(0).dtype();
    }
    if (node.has_attr("dtype")) dt = static_cast<DType>(node.attr_int("dtype", 1));
    if (!IsFloat(dt))
      return ctx.Error("output dtype must be float16/float32/float64, got " +
                       std::string(DTypeName(dt)));
    PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dt, shape));
    const bool normal = kind_ == RandomKind::kNormal || kind_ == RandomKind::kNormalLike;
    const int64_t n = out->numel();
    for (int64_t i = 0; i < n; ++i) {
      const double v = normal ? a_ + b_ * Normal() : a_ + (b_ - a_) * Uniform();
      Store(out, i, v);
    }
    return Status::Ok();
  }

 private:
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }

  // Standard normal by the Box-Muller transform.
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = Uniform(), u2 = Uniform();
    while (u1 <= 0.0) u1 = Uniform();
    const double r = std::sqrt(-2.0 * std::log(u1)), t = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }

  static void Store(Tensor* out, int64_t i, double v) {
    switch (out->dtype()) {
      case DType::kFloat16:
        out->data<Half>()[i] = FloatToHalf(static_cast<float>(v));
        break;
      case DType::kFloat32:
        out->data<float>()[i] = static_cast<float>(v);
        break;
      default:
        out->data<double>()[i] = v;
        break;
    }
  }

  Status RunBernoulli(KernelContext& ctx) {
    const Tensor& p = ctx.input(0);
    if (!IsFloat(p.dtype()))
      return ctx.Error("input must be float16/float32/float64, got " +
                       std::string(DTypeName(p.dtype())));
    DType dt = p.dtype();
    if (ctx.node().has_attr("dtype")) dt = static_cast<DType>(ctx.node().attr_int("dtype", 1));
    if (!IsSupportedDType(dt)) return ctx.Error("unsupported output dtype");
    PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dt, p.shape()));
    const int64_t n = p.numel();
    return DispatchAll(dt, [&]<typename T>() -> Status {
      T* o = out->data<T>();
      for (int64_t i = 0; i < n; ++i) {
        double prob = p.dtype() == DType::kFloat16   ? HalfToFloat(p.data<Half>()[i])
                      : p.dtype() == DType::kFloat32 ? p.data<float>()[i]
                                                     : p.data<double>()[i];
        const bool one = Uniform() < prob;
        if constexpr (std::is_same_v<T, Half>)
          o[i] = FloatToHalf(one ? 1.f : 0.f);
        else
          o[i] = static_cast<T>(one ? 1 : 0);
      }
      return Status::Ok();
    });
  }

  RandomKind kind_;
  std::mt19937_64 gen_;
  double a_ = 0.0, b_ = 1.0;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

KernelFactory RandomFactory(RandomKind kind) {
  return [kind](const KernelInit& init) -> Result<std::unique_ptr<Kernel>> {
    return std::unique_ptr<Kernel>(new RandomKernel(kind, init.node));
  };
}

}  // namespace

void RegisterRandomOps(OpRegistry& r) {
  r.Register("", "RandomUniform", RandomFactory(RandomKind::kUniform));
  r.Register("", "RandomNormal", RandomFactory(RandomKind::kNormal));
  r.Register("", "RandomUniformLike", RandomFactory(RandomKind::kUniformLike));
  r.Register("", "RandomNormalLike", RandomFactory(RandomKind::kNormalLike));
  r.Register("", "Bernoulli", RandomFactory(RandomKind::kBernoulli));
}

}  // namespace parallax
