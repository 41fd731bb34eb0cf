// Optimizer update ops of the ai.onnx.preview.training domain: Adagrad,
// Adam, Momentum. Each takes R (learning rate), T (step), then groups of
// per-tensor inputs, and returns the updated groups. Float32/float64.
#include <cmath>

#include "backends/cpu/kernels/families.h"
#include "ops/dispatch.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

constexpr const char* kDomain = "ai.onnx.preview.training";

// Checks that `groups` equally sized groups follow R and T, and returns the
// group size (number of optimised tensors).
Result<int> GroupSize(const KernelContext& ctx, int groups) {
  int n = ctx.num_inputs() - 2;
  if (n <= 0 || n % groups != 0)
    return ctx.Error("expects R, T and " + std::to_string(groups) +
                     " equally sized groups of tensors");
  for (int i = 0; i < n; ++i)
    if (ctx.input(2 + i).shape() != ctx.input(2 + i % (n / groups)).shape())
      return ctx.Error("tensors of one parameter have different shapes");
  return n / groups;
}

Status Adagrad(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(int n, GroupSize(ctx, 3));
  PX_ASSIGN_OR_RETURN(double r, ReadScalarAsDouble(ctx.input(0)));
  PX_ASSIGN_OR_RETURN(double t, ReadScalarAsDouble(ctx.input(1)));
  const double norm = ctx.node().attr_float("norm_coefficient", 0),
               eps = ctx.node().attr_float("epsilon", 1e-6f);
  const double decay = ctx.node().attr_float("decay_factor", 0);
  const double rate = r / (1 + t * decay);
  for (int p = 0; p < n; ++p) {
    const Tensor &x = ctx.input(2 + p), &g = ctx.input(2 + n + p), &h = ctx.input(2 + 2 * n + p);
    PX_ASSIGN_OR_RETURN(Tensor * xo, ctx.Output(p, x.dtype(), x.shape()));
    PX_ASSIGN_OR_RETURN(Tensor * ho, ctx.Output(n + p, h.dtype(), h.shape()));
    PX_RETURN_IF_ERROR(DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
      for (int64_t i = 0; i < x.numel(); ++i) {
        double gr = norm * x.data<T>()[i] + g.data<T>()[i];
        double hn = h.data<T>()[i] + gr * gr;
        ho->data<T>()[i] = static_cast<T>(hn);
        xo->data<T>()[i] = static_cast<T>(x.data<T>()[i] - rate * gr / (std::sqrt(hn) + eps));
      }
      return Status::Ok();
    }));
  }
  return Status::Ok();
}

Status Adam(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(int n, GroupSize(ctx, 4));
  PX_ASSIGN_OR_RETURN(double r, ReadScalarAsDouble(ctx.input(0)));
  PX_ASSIGN_OR_RETURN(double t, ReadScalarAsDouble(ctx.input(1)));
  const Node& node = ctx.node();
  const double norm = node.attr_float("norm_coefficient", 0),
               post = node.attr_float("norm_coefficient_post", 0);
  const double alpha = node.attr_float("alpha", 0.9f), beta = node.attr_float("beta", 0.999f);
  const double eps = node.attr_float("epsilon", 1e-6f);
  const double rate = t > 0 ? r * std::sqrt(1 - std::pow(beta, t)) / (1 - std::pow(alpha, t)) : r;
  for (int p = 0; p < n; ++p) {
    const Tensor &x = ctx.input(2 + p), &g = ctx.input(2 + n + p), &v = ctx.input(2 + 2 * n + p),
                 &h = ctx.input(2 + 3 * n + p);
    PX_ASSIGN_OR_RETURN(Tensor * xo, ctx.Output(p, x.dtype(), x.shape()));
    PX_ASSIGN_OR_RETURN(Tensor * vo, ctx.Output(n + p, v.dtype(), v.shape()));
    PX_ASSIGN_OR_RETURN(Tensor * ho, ctx.Output(2 * n + p, h.dtype(), h.shape()));
    PX_RETURN_IF_ERROR(DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
      for (int64_t i = 0; i < x.numel(); ++i) {
        double gr = norm * x.data<T>()[i] + g.data<T>()[i];
        double vn = alpha * v.data<T>()[i] + (1 - alpha) * gr;
        double hn = beta * h.data<T>()[i] + (1 - beta) * gr * gr;
        double xn = x.data<T>()[i] - rate * (vn / (std::sqrt(hn) + eps));
        xo->data<T>()[i] = static_cast<T>((1 - post) * xn);
        vo->data<T>()[i] = static_cast<T>(vn);
        ho->data<T>()[i] = static_cast<T>(hn);
      }
      return Status::Ok();
    }));
  }
  return Status::Ok();
}

Status Momentum(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(int n, GroupSize(ctx, 3));
  PX_ASSIGN_OR_RETURN(double r, ReadScalarAsDouble(ctx.input(0)));
  PX_ASSIGN_OR_RETURN(double t, ReadScalarAsDouble(ctx.input(1)));
  const Node& node = ctx.node();
  const double norm = node.attr_float("norm_coefficient", 0), alpha = node.attr_float("alpha", 0);
  const double beta = t > 0 ? node.attr_float("beta", 0) : 1.0;
  const std::string mode = node.attr_string("mode", "standard");
  if (mode != "standard" && mode != "nesterov") return ctx.Error("unknown mode '" + mode + "'");
  for (int p = 0; p < n; ++p) {
    const Tensor &x = ctx.input(2 + p), &g = ctx.input(2 + n + p), &v = ctx.input(2 + 2 * n + p);
    PX_ASSIGN_OR_RETURN(Tensor * xo, ctx.Output(p, x.dtype(), x.shape()));
    PX_ASSIGN_OR_RETURN(Tensor * vo, ctx.Output(n + p, v.dtype(), v.shape()));
    PX_RETURN_IF_ERROR(DispatchFloat(x.dtype(), [&]<typename T>() -> Status {
      for (int64_t i = 0; i < x.numel(); ++i) {
        double gr = norm * x.data<T>()[i] + g.data<T>()[i];
        double vn = alpha * v.data<T>()[i] + beta * gr;
        double step = mode == "nesterov" ? gr + alpha * vn : vn;
        xo->data<T>()[i] = static_cast<T>(x.data<T>()[i] - r * step);
        vo->data<T>()[i] = static_cast<T>(vn);
      }
      return Status::Ok();
    }));
  }
  return Status::Ok();
}

}  // namespace

void RegisterTrainingOps(OpRegistry& r) {
  r.Register(kDomain, "Adagrad", FnKernel(Adagrad));
  r.Register(kDomain, "Adam", FnKernel(Adam));
  r.Register(kDomain, "Momentum", FnKernel(Momentum));
}

}  // namespace parallax
