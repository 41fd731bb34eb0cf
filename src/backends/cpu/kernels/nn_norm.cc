// BatchNormalization (inference and training mode) in plain C++.
//
// Inference folds the statistics into one multiply-add per element
// (y = a[c] * x + b[c]) over contiguous spatial runs, which is as fast as a
// oneDNN primitive for this memory-bound op. float16/float64 are staged
// through float32 (statistics are accumulated in double).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backends/cpu/kernels/nn_util.h"
#include "ops/kernel.h"

namespace parallax::nn {
namespace {

// y[n, p, s] = a[p] * x[n, p, s] + b[p] for P parameter rows of S elements,
// rows split over the intra-op threads (each element computed alone: the same
// bits for any split).
void ApplyAffine(const IntraOp& par, const float* x, const std::vector<float>& a,
                 const std::vector<float>& b, int64_t batch, int64_t rows, int64_t run, float* y) {
  constexpr int64_t kMinTaskElements = 32 * 1024;
  const int64_t min_rows = std::max<int64_t>(1, kMinTaskElements / std::max<int64_t>(1, run));
  par.ParallelRanges(batch * rows, min_rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xi = x + r * run;
      float* yi = y + r * run;
      const float av = a[static_cast<size_t>(r % rows)], bv = b[static_cast<size_t>(r % rows)];
      for (int64_t i = 0; i < run; ++i) yi[i] = av * xi[i] + bv;
    }
  });
}

// Per-channel batch mean and (population) variance over N and spatial dims.
void BatchStats(const float* x, int64_t batch, int64_t channels, int64_t run,
                std::vector<double>* mean, std::vector<double>* var) {
  mean->assign(static_cast<size_t>(channels), 0.0);
  var->assign(static_cast<size_t>(channels), 0.0);
  double count = static_cast<double>(batch * run);
  for (int64_t c = 0; c < channels; ++c) {
    double s = 0, sq = 0;
    for (int64_t n = 0; n < batch; ++n) {
      const float* xi = x + (n * channels + c) * run;
      for (int64_t i = 0; i < run; ++i) s += xi[i];
    }
    double m = count > 0 ? s / count : 0;
    for (int64_t n = 0; n < batch; ++n) {
      const float* xi = x + (n * channels + c) * run;
      for (int64_t i = 0; i < run; ++i) sq += (xi[i] - m) * (xi[i] - m);
    }
    (*mean)[static_cast<size_t>(c)] = m;
    (*var)[static_cast<size_t>(c)] = count > 0 ? sq / count : 0;
  }
}

Status WriteVector(KernelContext& ctx, int index, DType dtype, const Shape& shape,
                   const std::vector<double>& v) {
  if (index >= ctx.num_outputs() || !ctx.output_used(index)) return Status::Ok();
  PX_ASSIGN_OR_RETURN(Tensor * t, ctx.Output(index, dtype, shape));
  std::vector<float> f(v.begin(), v.end());
  StoreFromFloat32(f.data(), t);
  return Status::Ok();
}

bool TrainingMode(const KernelContext& ctx) {
  if (ctx.opset() >= 14) return ctx.node().attr_int("training_mode", 0) != 0;
  if (ctx.opset() < 7 && ctx.node().attr_int("is_test", 0) != 0) return false;
  for (int i = 1; i < ctx.num_outputs(); ++i)
    if (ctx.output_used(i)) return true;  // Statistics outputs only exist in training.
  return false;
}

Status BatchNorm(KernelContext& ctx) {
  for (int i = 0; i < 5; ++i)
    if (!ctx.has_input(i)) return ctx.Error("expects 5 inputs (X, scale, B, mean, var)");
  const Tensor& xin = ctx.input(0);
  if (!IsFloatLike(xin.dtype()))
    return ctx.Error("X must be a float tensor, got " + std::string(DTypeName(xin.dtype())));
  if (xin.rank() < 2) return ctx.Error("X must have rank >= 2, got " + ShapeToString(xin.shape()));
  int64_t batch = xin.dim(0), channels = xin.dim(1);
  int64_t run = batch * channels == 0 ? 0 : xin.numel() / (batch * channels);
  std::vector<Tensor> prm(4);
  for (int i = 0; i < 4; ++i) {
    PX_ASSIGN_OR_RETURN(prm[static_cast<size_t>(i)], ToFloat32(ctx.input(i + 1)));
  }
  int64_t rows = prm[0].numel();
  // opset < 9 with spatial=0: parameters are per (channel, spatial) element.
  bool per_element = rows != channels && rows == channels * run;
  for (const Tensor& t : prm)
    if (t.numel() != rows || (rows != channels && !per_element))
      return ctx.Error("scale/B/mean/var must have " + std::to_string(channels) +
                       " values, got shape " + ShapeToString(t.shape()));
  int64_t affine_run = per_element ? 1 : run;
  int64_t affine_rows = per_element ? channels * run : channels;
  double eps = ctx.node().attr_float("epsilon", 1e-5f);
  double momentum = ctx.node().attr_float("momentum", 0.9f);
  bool training = TrainingMode(ctx);
  if (training && per_element)
    return Unsupported(ctx.node().Describe() + ": training with spatial=0");
  PX_ASSIGN_OR_RETURN(Tensor x, ToFloat32(xin));
  std::vector<double> mean(prm[2].data<float>(), prm[2].data<float>() + rows);
  std::vector<double> var(prm[3].data<float>(), prm[3].data<float>() + rows);
  std::vector<double> bmean, bvar;
  if (training) BatchStats(x.data<float>(), batch, channels, run, &bmean, &bvar);
  const std::vector<double>& um = training ? bmean : mean;
  const std::vector<double>& uv = training ? bvar : var;
  std::vector<float> a(static_cast<size_t>(rows)), b(static_cast<size_t>(rows));
  for (size_t p = 0; p < a.size(); ++p) {
    double inv = 1.0 / std::sqrt(uv[p] + eps);
    a[p] = static_cast<float>(prm[0].data<float>()[p] * inv);
    b[p] = static_cast<float>(prm[1].data<float>()[p] - um[p] * prm[0].data<float>()[p] * inv);
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, xin.dtype(), xin.shape()));
  Tensor y =
      xin.dtype() == DType::kFloat32 ? *out : Tensor::Uninitialized(DType::kFloat32, xin.shape());
  ApplyAffine(ctx.intra_op(), x.data<float>(), a, b, batch, affine_rows, affine_run,
              y.data<float>());
  if (xin.dtype() != DType::kFloat32) StoreFromFloat32(y.data<float>(), out);
  if (!training) return Status::Ok();
  std::vector<double> rmean(mean.size()), rvar(var.size());
  for (size_t c = 0; c < mean.size(); ++c) {
    rmean[c] = mean[c] * momentum + bmean[c] * (1 - momentum);
    rvar[c] = var[c] * momentum + bvar[c] * (1 - momentum);
  }
  DType stat_type = ctx.input(3).dtype();
  Shape cs = {channels};
  PX_RETURN_IF_ERROR(WriteVector(ctx, 1, stat_type, cs, rmean));
  PX_RETURN_IF_ERROR(WriteVector(ctx, 2, stat_type, cs, rvar));
  PX_RETURN_IF_ERROR(WriteVector(ctx, 3, stat_type, cs, bmean));  // opset < 14: saved_mean.
  return WriteVector(ctx, 4, stat_type, cs, bvar);                // opset < 14: saved_var.
}

}  // namespace

void RegisterNormOps(OpRegistry& r) { r.Register("BatchNormalization", BatchNorm); }

}  // namespace parallax::nn
