// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opset 12+).
//
// Both view the class scores as [N, C, D] (D = product of the trailing dims)
// and the targets as [N, D]. A target equal to `ignore_index` contributes
// nothing and has weight 0; "mean" divides by the sum of the gathered
// weights (the count of non-ignored targets when there are no weights).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cpu/kernels/reduction_util.h"
#include "ops/dispatch.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

struct LossSetup {
  int64_t n = 0, c = 0, d = 1;
  std::vector<int64_t> target;
  std::vector<double> weight;  // Empty: all ones.
  bool has_ignore = false;
  int64_t ignore = 0;
  std::string reduction;
};

// Checks (scores, target, weight) and the attributes.
Result<LossSetup> PrepareLoss(const KernelContext& ctx) {
  if (!ctx.has_input(1)) return ctx.Error("missing target input");
  const Tensor& x = ctx.input(0);
  const Tensor& t = ctx.input(1);
  if (x.rank() < 2) return ctx.Error("input must have rank >= 2, got " + ShapeToString(x.shape()));
  if (x.dtype() != DType::kFloat32 && x.dtype() != DType::kFloat64 && x.dtype() != DType::kFloat16)
    return ctx.Error("input must be a float tensor, got " + std::string(DTypeName(x.dtype())));
  LossSetup s;
  s.n = x.dim(0);
  s.c = x.dim(1);
  for (int i = 2; i < x.rank(); ++i) s.d *= x.dim(i);
  Shape want = x.shape();
  want.erase(want.begin() + 1);
  if (t.shape() != want)
    return ctx.Error("target shape " + ShapeToString(t.shape()) + " does not match input shape " +
                     ShapeToString(x.shape()) + " (expected " + ShapeToString(want) + ")");
  auto tv = ReadInt64s(t);
  if (!tv.ok()) return ctx.Error("target: " + tv.status().message());
  s.target = std::move(tv).value();
  if (ctx.has_input(2)) {
    const Tensor& w = ctx.input(2);
    if (w.rank() != 1 || w.dim(0) != s.c)
      return ctx.Error("weight shape " + ShapeToString(w.shape()) + " must be [" +
                       std::to_string(s.c) + "]");
    if (w.dtype() != DType::kFloat32 && w.dtype() != DType::kFloat64 &&
        w.dtype() != DType::kFloat16)
      return ctx.Error("weight must be a float tensor");
    s.weight = ReadAsFloats<double>(w);
  }
  s.has_ignore = ctx.node().has_attr("ignore_index");
  s.ignore = ctx.node().attr_int("ignore_index", 0);
  s.reduction = ctx.node().attr_string("reduction", "mean");
  if (s.reduction != "none" && s.reduction != "sum" && s.reduction != "mean")
    return ctx.Error("reduction must be none, sum or mean, got '" + s.reduction + "'");
  return s;
}

template <typename T>
void StoreDoubles(const std::vector<double>& v, Tensor* out) {
  T* o = out->data<T>();
  for (size_t i = 0; i < v.size(); ++i) {
    if constexpr (std::is_same_v<T, Half>)
      o[i] = FloatToHalf(static_cast<float>(v[i]));
    else
      o[i] = static_cast<T>(v[i]);
  }
}

// Gathers -logp[n, target, d] * weight[target] and writes output 0.
Status NllFinish(KernelContext& ctx, const LossSetup& s, const std::vector<double>& logp) {
  std::vector<double> loss(static_cast<size_t>(s.n * s.d), 0.0);
  double wsum = 0, total = 0;
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t d = 0; d < s.d; ++d) {
      const size_t k = static_cast<size_t>(n * s.d + d);
      const int64_t t = s.target[k];
      if (s.has_ignore && t == s.ignore) continue;
      if (t < 0 || t >= s.c)
        return ctx.Error("target value " + std::to_string(t) + " is out of range [0, " +
                         std::to_string(s.c) + ")");
      const double w = s.weight.empty() ? 1.0 : s.weight[static_cast<size_t>(t)];
      loss[k] = -logp[static_cast<size_t>((n * s.c + t) * s.d + d)] * w;
      wsum += w;
      total += loss[k];
    }
  }
  const DType dt = ctx.input(0).dtype();
  Tensor* out;
  if (s.reduction == "none") {
    PX_ASSIGN_OR_RETURN(out, ctx.Output(0, dt, ctx.input(1).shape()));
  } else {
    PX_ASSIGN_OR_RETURN(out, ctx.Output(0, dt, Shape{}));
    loss.assign(1, s.reduction == "sum" ? total : total / wsum);
  }
  return DispatchFloatHalf(dt, [&]<typename T>() -> Status {
    StoreDoubles<T>(loss, out);
    return Status::Ok();
  });
}

Status NegativeLogLikelihoodLoss(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(LossSetup s, PrepareLoss(ctx));
  return NllFinish(ctx, s, ReadAsFloats<double>(ctx.input(0)));
}

// log_softmax over the class axis of an [N, C, D] block, in place.
void LogSoftmaxClasses(std::vector<double>& v, int64_t n_dim, int64_t c_dim, int64_t d_dim) {
  std::vector<double> m(static_cast<size_t>(d_dim)), s(m.size());
  for (int64_t n = 0; n < n_dim; ++n) {
    double* x = v.data() + n * c_dim * d_dim;
    std::fill(m.begin(), m.end(), -INFINITY);
    std::fill(s.begin(), s.end(), 0.0);
    for (int64_t c = 0; c < c_dim; ++c)
      for (int64_t d = 0; d < d_dim; ++d)
        m[static_cast<size_t>(d)] = std::max(m[static_cast<size_t>(d)], x[c * d_dim + d]);
    for (int64_t c = 0; c < c_dim; ++c)
      for (int64_t d = 0; d < d_dim; ++d)
        s[static_cast<size_t>(d)] += std::exp(x[c * d_dim + d] - m[static_cast<size_t>(d)]);
    for (int64_t d = 0; d < d_dim; ++d)
      s[static_cast<size_t>(d)] = m[static_cast<size_t>(d)] + std::log(s[static_cast<size_t>(d)]);
    for (int64_t c = 0; c < c_dim; ++c)
      for (int64_t d = 0; d < d_dim; ++d) x[c * d_dim + d] -= s[static_cast<size_t>(d)];
  }
}

Status SoftmaxCrossEntropyLoss(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(LossSetup s, PrepareLoss(ctx));
  std::vector<double> logp = ReadAsFloats<double>(ctx.input(0));
  LogSoftmaxClasses(logp, s.n, s.c, s.d);
  if (ctx.num_outputs() > 1 && ctx.output_used(1)) {
    const Tensor& x = ctx.input(0);
    PX_ASSIGN_OR_RETURN(Tensor * lp, ctx.Output(1, x.dtype(), x.shape()));
    PX_RETURN_IF_ERROR(DispatchFloatHalf(x.dtype(), [&]<typename T>() -> Status {
      StoreDoubles<T>(logp, lp);
      return Status::Ok();
    }));
  }
  return NllFinish(ctx, s, logp);
}

}  // namespace

void RegisterLossOps(OpRegistry& r) {
  r.Register("NegativeLogLikelihoodLoss", NamedKernel<NegativeLogLikelihoodLoss>);
  r.Register("SoftmaxCrossEntropyLoss", NamedKernel<SoftmaxCrossEntropyLoss>);
}

}  // namespace parallax
