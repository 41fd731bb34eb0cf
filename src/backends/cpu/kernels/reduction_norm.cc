// Normalisation ops: LayerNormalization, InstanceNormalization, LRN and
// LpNormalization. Statistics use two passes (mean, then centred squares).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cpu/kernels/reduction_util.h"
#include "backends/cpu/kernels/vec_math.h"
#include "ops/dispatch.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

bool IsFloatLike(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16;
}

// Reads a float tensor broadcast (numpy-style, unidirectionally) to `target`.
template <typename C>
Result<std::vector<C>> ExpandTo(const KernelContext& ctx, const Tensor& t, const Shape& target,
                                const char* name) {
  if (!IsFloatLike(t.dtype()))
    return ctx.Error(std::string(name) + " must be a float tensor, got " +
                     std::string(DTypeName(t.dtype())));
  const std::vector<C> src = ReadAsFloats<C>(t);
  if (t.shape() == target) return src;
  bool ok = t.rank() <= static_cast<int>(target.size());
  for (int i = 0; ok && i < t.rank(); ++i) {
    const int64_t d = t.dim(t.rank() - 1 - i);
    ok = d == 1 || d == target[target.size() - 1 - static_cast<size_t>(i)];
  }
  if (!ok)
    return ctx.Error(std::string(name) + " shape " + ShapeToString(t.shape()) +
                     " cannot be broadcast to " + ShapeToString(target));
  std::vector<C> out(static_cast<size_t>(NumElements(target)));
  if (out.empty()) return out;
  StridedIndex it(target, {BroadcastStrides(t.shape(), target)});
  size_t i = 0;
  do {
    out[i++] = src[static_cast<size_t>(it.offset(0))];
  } while (it.Next());
  return out;
}

// Elements per intra-op task (~0.3 ns each), so a task outlasts waking a
// worker.
constexpr int64_t kMinTaskElements = 64 * 1024;

// Mean and 1/sqrt(var + eps) of n contiguous values.
template <typename S, typename T>
void MeanInvStd(const T* x, int64_t n, S eps, S* mean, S* inv_std) {
  S sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += static_cast<S>(ToCompute(x[j]));
  const S m = n > 0 ? sum / static_cast<S>(n) : S(0);
  S sq = 0;
  for (int64_t j = 0; j < n; ++j) {
    const S d = static_cast<S>(ToCompute(x[j])) - m;
    sq += d * d;
  }
  *mean = m;
  *inv_std = S(1) / std::sqrt((n > 0 ? sq / static_cast<S>(n) : S(0)) + eps);
}

template <typename T, typename S>
Status LayerNormImpl(KernelContext& ctx, int axis, Tensor* y, Tensor* mean_t, Tensor* inv_t) {
  const Tensor& x = ctx.input(0);
  const Shape norm_shape(x.shape().begin() + axis, x.shape().end());
  PX_ASSIGN_OR_RETURN(std::vector<S> scale, ExpandTo<S>(ctx, ctx.input(1), norm_shape, "Scale"));
  std::vector<S> bias(scale.size(), S(0));
  if (ctx.has_input(2)) {
    PX_ASSIGN_OR_RETURN(bias, ExpandTo<S>(ctx, ctx.input(2), norm_shape, "B"));
  }
  const AxisView v = MakeAxisView(x.shape(), axis, /*coerce_2d=*/true);
  const S eps = static_cast<S>(ctx.node().attr_float("epsilon", 1e-5f));
  auto store = [](Tensor* t, int64_t o, S value) {
    if (t == nullptr) return;
    if (t->dtype() == DType::kFloat64)
      t->data<double>()[o] = value;
    else
      t->data<float>()[o] = static_cast<float>(value);
  };
  // Rows are independent; each is reduced on one thread in a fixed order.
  auto rows = [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      const T* xs = x.data<T>() + o * v.n;
      T* ys = y->data<T>() + o * v.n;
      S mean = 0, inv = 0;
      bool done = false;
      if constexpr (std::is_same_v<T, float> && std::is_same_v<S, float>) {
        if (v.n > 0) {
          const vec::Kernels& k = vec::Best();
          k.mean_inv_std(xs, v.n, eps, &mean, &inv);
          k.norm_affine(xs, mean, inv, scale.data(), bias.data(), ys, v.n);
          done = true;
        }
      }
      if (!done) {
        MeanInvStd<S>(xs, v.n, eps, &mean, &inv);
        for (int64_t j = 0; j < v.n; ++j) {
          const S norm = (static_cast<S>(ToCompute(xs[j])) - mean) * inv;
          ys[j] = FromCompute<T>(static_cast<ComputeT<T>>(norm * scale[static_cast<size_t>(j)] +
                                                          bias[static_cast<size_t>(j)]));
        }
      }
      store(mean_t, o, mean);
      store(inv_t, o, inv);
    }
  };
  ctx.intra_op().ParallelRanges(
      v.outer, std::max<int64_t>(1, kMinTaskElements / std::max<int64_t>(1, v.n)), rows);
  return Status::Ok();
}

// LayerNormalization (opset 17): normalises over dims[axis:], optional bias,
// optional Mean / InvStdDev outputs of dtype `stash_type`.
Status LayerNormalization(KernelContext& ctx) {
  if (!ctx.has_input(1)) return ctx.Error("missing input 'Scale'");
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  const int64_t axis_attr = ctx.node().attr_int("axis", -1);
  if (rank == 0 || axis_attr < -rank || axis_attr >= rank)
    return ctx.Error("axis " + std::to_string(axis_attr) + " is out of range for input shape " +
                     ShapeToString(x.shape()));
  const int axis = static_cast<int>(axis_attr < 0 ? axis_attr + rank : axis_attr);
  const int64_t stash = ctx.node().attr_int("stash_type", 1);
  if (stash != static_cast<int64_t>(DType::kFloat32) &&
      stash != static_cast<int64_t>(DType::kFloat64))
    return ctx.Error("unsupported stash_type " + std::to_string(stash));
  const DType stash_dtype = static_cast<DType>(stash);
  Shape stat_shape(x.shape().begin(), x.shape().begin() + axis);
  stat_shape.resize(static_cast<size_t>(rank), 1);
  // Each row's statistics are taken before the row is written: y may be x.
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.OutputOver(0, x.dtype(), x.shape()));
  Tensor* mean_t = nullptr;
  Tensor* inv_t = nullptr;
  if (ctx.num_outputs() > 1 && ctx.output_used(1)) {
    PX_ASSIGN_OR_RETURN(mean_t, ctx.Output(1, stash_dtype, stat_shape));
  }
  if (ctx.num_outputs() > 2 && ctx.output_used(2)) {
    PX_ASSIGN_OR_RETURN(inv_t, ctx.Output(2, stash_dtype, stat_shape));
  }
  return DispatchFloatHalf(x.dtype(), [&]<typename T>() -> Status {
    if (stash_dtype == DType::kFloat64 || std::is_same_v<T, double>)
      return LayerNormImpl<T, double>(ctx, axis, y, mean_t, inv_t);
    return LayerNormImpl<T, float>(ctx, axis, y, mean_t, inv_t);
  });
}

// InstanceNormalization: per (n, c) statistics over the spatial dims.
Status InstanceNormalization(KernelContext& ctx) {
  if (!ctx.has_input(1) || !ctx.has_input(2)) return ctx.Error("missing input 'scale' or 'B'");
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.Error("input must have rank >= 2, got " + ShapeToString(x.shape()));
  const int64_t c_dim = x.dim(1);
  if (ctx.input(1).numel() != c_dim || ctx.input(2).numel() != c_dim)
    return ctx.Error("scale " + ShapeToString(ctx.input(1).shape()) + " and B " +
                     ShapeToString(ctx.input(2).shape()) + " must have " + std::to_string(c_dim) +
                     " elements for input " + ShapeToString(x.shape()));
  if (!IsFloatLike(ctx.input(1).dtype()) || !IsFloatLike(ctx.input(2).dtype()))
    return ctx.Error("scale and B must be float tensors");
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  const int64_t spatial = x.numel() / std::max<int64_t>(1, x.dim(0) * c_dim);
  const float eps = ctx.node().attr_float("epsilon", 1e-5f);
  return DispatchFloatHalf(x.dtype(), [&]<typename T>() -> Status {
    using S = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const std::vector<S> scale = ReadAsFloats<S>(ctx.input(1));
    const std::vector<S> bias = ReadAsFloats<S>(ctx.input(2));
    for (int64_t nc = 0; nc < x.dim(0) * c_dim; ++nc) {
      const T* xs = x.data<T>() + nc * spatial;
      T* ys = y->data<T>() + nc * spatial;
      S mean, inv;
      MeanInvStd<S>(xs, spatial, static_cast<S>(eps), &mean, &inv);
      const S a = inv * scale[static_cast<size_t>(nc % c_dim)];
      const S b = bias[static_cast<size_t>(nc % c_dim)] - mean * a;
      for (int64_t j = 0; j < spatial; ++j)
        ys[j] = FromCompute<T>(static_cast<ComputeT<T>>(static_cast<S>(ToCompute(xs[j])) * a + b));
    }
    return Status::Ok();
  });
}

// LRN across channels: y = x / (bias + alpha / size * sum(x^2 over
// window))^beta.
Status Lrn(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.Error("input must have rank >= 2, got " + ShapeToString(x.shape()));
  if (!ctx.node().has_attr("size")) return ctx.Error("missing attribute 'size'");
  const int64_t size = ctx.node().attr_int("size", 1);
  if (size < 1) return ctx.Error("size must be positive, got " + std::to_string(size));
  const double alpha = ctx.node().attr_float("alpha", 1e-4f);
  const double beta = ctx.node().attr_float("beta", 0.75f);
  const double bias = ctx.node().attr_float("bias", 1.0f);
  const int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
  const int64_t n_dim = x.dim(0), c_dim = x.dim(1);
  const int64_t spatial = x.numel() / std::max<int64_t>(1, n_dim * c_dim);
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  return DispatchFloatHalf(x.dtype(), [&]<typename T>() -> Status {
    using C = ComputeT<T>;
    std::vector<C> sq(static_cast<size_t>(c_dim * spatial)), acc(static_cast<size_t>(spatial));
    const C k = static_cast<C>(alpha / static_cast<double>(size));
    for (int64_t n = 0; n < n_dim; ++n) {
      const T* xs = x.data<T>() + n * c_dim * spatial;
      T* ys = y->data<T>() + n * c_dim * spatial;
      for (size_t i = 0; i < sq.size(); ++i) {
        const C v = ToCompute(xs[i]);
        sq[i] = v * v;
      }
      for (int64_t c = 0; c < c_dim; ++c) {
        std::fill(acc.begin(), acc.end(), C(0));
        for (int64_t w = std::max<int64_t>(0, c - lo); w <= std::min(c_dim - 1, c + hi); ++w) {
          const C* row = sq.data() + w * spatial;
          for (int64_t j = 0; j < spatial; ++j) acc[static_cast<size_t>(j)] += row[j];
        }
        for (int64_t j = 0; j < spatial; ++j) {
          const C d = std::pow(static_cast<C>(bias) + k * acc[static_cast<size_t>(j)],
                               static_cast<C>(beta));
          ys[c * spatial + j] = FromCompute<T>(ToCompute(xs[c * spatial + j]) / d);
        }
      }
    }
    return Status::Ok();
  });
}

// LpNormalization: x / ||x||_p along `axis` (p is 1 or 2).
Status LpNormalization(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  const int64_t axis_attr = ctx.node().attr_int("axis", -1);
  if (rank == 0 || axis_attr < -rank || axis_attr >= rank)
    return ctx.Error("axis " + std::to_string(axis_attr) + " is out of range for input shape " +
                     ShapeToString(x.shape()));
  const int axis = static_cast<int>(axis_attr < 0 ? axis_attr + rank : axis_attr);
  const int64_t p = ctx.node().attr_int("p", 2);
  if (p != 1 && p != 2) return ctx.Error("p must be 1 or 2, got " + std::to_string(p));
  const AxisView v = MakeAxisView(x.shape(), axis);
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  return DispatchFloatHalf(x.dtype(), [&]<typename T>() -> Status {
    using C = ComputeT<T>;
    std::vector<C> norm(static_cast<size_t>(v.inner));
    for (int64_t o = 0; o < v.outer; ++o) {
      const T* xs = x.data<T>() + o * v.n * v.inner;
      T* ys = y->data<T>() + o * v.n * v.inner;
      std::fill(norm.begin(), norm.end(), C(0));
      for (int64_t r = 0; r < v.n; ++r) {
        for (int64_t i = 0; i < v.inner; ++i) {
          const C e = ToCompute(xs[r * v.inner + i]);
          norm[static_cast<size_t>(i)] += p == 1 ? std::abs(e) : e * e;
        }
      }
      if (p == 2)
        for (C& s : norm) s = std::sqrt(s);
      for (int64_t r = 0; r < v.n; ++r)
        for (int64_t i = 0; i < v.inner; ++i)
          ys[r * v.inner + i] =
              FromCompute<T>(ToCompute(xs[r * v.inner + i]) / norm[static_cast<size_t>(i)]);
    }
    return Status::Ok();
  });
}

}  // namespace

void RegisterNormalizationOps(OpRegistry& r) {
  r.Register("LayerNormalization", NamedKernel<LayerNormalization>);
  r.SetReusableInputs("", "LayerNormalization", {0});
  r.Register("InstanceNormalization", NamedKernel<InstanceNormalization>);
  r.Register("LRN", NamedKernel<Lrn>);
  r.Register("LpNormalization", NamedKernel<LpNormalization>);
}

}  // namespace parallax
