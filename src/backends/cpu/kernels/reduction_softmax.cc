// Softmax, LogSoftmax, Hardmax, CumSum and TopK: ops that reduce along one
// axis and write a result per element (or per selected element).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "backends/cpu/kernels/reduction_util.h"
#include "backends/cpu/kernels/vec_math.h"
#include "ops/dispatch.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

enum class SoftKind { kSoftmax, kLogSoftmax, kHardmax };

// Normalises an `axis` attribute against `rank`, or returns an error naming
// the shape.
Result<int> AxisOf(const KernelContext& ctx, int64_t axis, const Shape& shape) {
  const int rank = static_cast<int>(shape.size());
  if (axis < -rank || axis >= rank)
    return ctx.Error("axis " + std::to_string(axis) + " is out of range for input shape " +
                     ShapeToString(shape));
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

// Max / sum of n contiguous values with 8 independent lanes, so the loops
// vectorise without reassociation flags.
template <typename C>
C RowMax(const C* x, int64_t n) {
  C acc[8];
  for (C& a : acc) a = x[0];
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] = x[j + k] > acc[k] ? x[j + k] : acc[k];
  for (; j < n; ++j) acc[0] = x[j] > acc[0] ? x[j] : acc[0];
  for (int k = 1; k < 8; ++k) acc[0] = acc[k] > acc[0] ? acc[k] : acc[0];
  return acc[0];
}

template <typename C>
C RowSum(const C* x, int64_t n) {
  C acc[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[j + k];
  for (; j < n; ++j) acc[0] += x[j];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Elements per intra-op task (~0.5-1 ns each: exp-bound), so a task outlasts
// waking a worker.
constexpr int64_t kMinTaskElements = 32 * 1024;

// One contiguous row of n values (inner == 1); float uses vec_math.h.
template <SoftKind K, typename C>
void SoftRow(const C* x, C* y, int64_t n) {
  if (n == 0) return;
  if constexpr (std::is_same_v<C, float> && K != SoftKind::kHardmax) {
    const vec::Kernels& k = vec::Best();
    const float m = k.max(x, n);
    const float s = k.exp_shift_sum(x, m, y, n);
    if constexpr (K == SoftKind::kSoftmax) {
      const float inv = 1.0f / s;
      k.binary(vec::BinaryOp::kMul, y, 1, &inv, 0, y, n);
    } else {
      const float off = m + std::log(s);
      k.binary(vec::BinaryOp::kSub, x, 1, &off, 0, y, n);
    }
    return;
  } else if constexpr (K == SoftKind::kHardmax) {
    int64_t arg = 0;
    for (int64_t j = 1; j < n; ++j) arg = x[j] > x[arg] ? j : arg;
    for (int64_t j = 0; j < n; ++j) y[j] = C(0);
    y[arg] = C(1);
    return;
  }
  const C m = RowMax(x, n);
  for (int64_t j = 0; j < n; ++j) y[j] = Exp(x[j] - m);
  const C s = RowSum(y, n);
  if constexpr (K == SoftKind::kSoftmax) {
    const C inv = C(1) / s;
    for (int64_t j = 0; j < n; ++j) y[j] *= inv;
  } else {
    const C off = m + std::log(s);
    for (int64_t j = 0; j < n; ++j) y[j] = x[j] - off;
  }
}

// Columns of an [n, inner] block that one task reduces at a time.
constexpr int64_t kBlockCols = 512;

// Softmax / LogSoftmax of `cols` columns of an [n, stride] block along n
// through the float32 loops of vec_math.h; m and s hold `cols` values. Same
// operations in the same order as the generic SoftBlock.
template <SoftKind K>
void SoftBlockVec(const float* x, float* y, int64_t n, int64_t stride, int64_t cols, float* m,
                  float* s) {
  const vec::Kernels& k = vec::Best();
  std::copy(x, x + cols, m);
  for (int64_t r = 1; r < n; ++r) k.binary(vec::BinaryOp::kMax, m, 1, x + r * stride, 1, m, cols);
  std::fill(s, s + cols, 0.0f);
  for (int64_t r = 0; r < n; ++r) {
    float* yr = y + r * stride;  // exp(x - m), scratch for LogSoftmax.
    k.binary(vec::BinaryOp::kSub, x + r * stride, 1, m, 1, yr, cols);
    k.unary(vec::UnaryOp::kExp, yr, yr, cols, 0.0f, 0.0f);
    k.binary(vec::BinaryOp::kAdd, s, 1, yr, 1, s, cols);
  }
  if constexpr (K == SoftKind::kSoftmax) {
    k.unary(vec::UnaryOp::kReciprocal, s, s, cols, 0.0f, 0.0f);
    for (int64_t r = 0; r < n; ++r)
      k.binary(vec::BinaryOp::kMul, y + r * stride, 1, s, 1, y + r * stride, cols);
  } else {
    for (int64_t i = 0; i < cols; ++i) s[i] = m[i] + std::log(s[i]);
    for (int64_t r = 0; r < n; ++r)
      k.binary(vec::BinaryOp::kSub, x + r * stride, 1, s, 1, y + r * stride, cols);
  }
}

// `cols` columns of an [n, stride] block reduced along n, vectorised over the
// columns. `m` and `s` are scratch rows of `cols` values.
template <SoftKind K, typename C>
void SoftBlock(const C* x, C* y, int64_t n, int64_t stride, int64_t cols, C* m, C* s) {
  if (n == 0) return;
  if constexpr (std::is_same_v<C, float> && K != SoftKind::kHardmax) {
    return SoftBlockVec<K>(x, y, n, stride, cols, m, s);
  }
  for (int64_t i = 0; i < cols; ++i) {
    m[i] = x[i];
    s[i] = 0;  // Hardmax: index of the max.
  }
  for (int64_t r = 1; r < n; ++r) {
    const C* row = x + r * stride;
    for (int64_t i = 0; i < cols; ++i) {
      const bool take = row[i] > m[i];
      m[i] = take ? row[i] : m[i];
      if constexpr (K == SoftKind::kHardmax) s[i] = take ? C(r) : s[i];
    }
  }
  if constexpr (K == SoftKind::kHardmax) {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < cols; ++i) y[r * stride + i] = s[i] == C(r) ? C(1) : C(0);
    return;
  }
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < cols; ++i) {
      const C e = Exp(x[r * stride + i] - m[i]);
      if constexpr (K == SoftKind::kSoftmax) y[r * stride + i] = e;
      s[i] += e;
    }
  }
  if constexpr (K == SoftKind::kSoftmax) {
    for (int64_t i = 0; i < cols; ++i) s[i] = C(1) / s[i];
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < cols; ++i) y[r * stride + i] *= s[i];
  } else {
    for (int64_t i = 0; i < cols; ++i) s[i] = m[i] + std::log(s[i]);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < cols; ++i) y[r * stride + i] = x[r * stride + i] - s[i];
  }
}

// All of a Softmax-like op on [outer, n, inner] values, split over the
// intra-op threads by whole rows (inner == 1) or by blocks of columns, so each
// reduction runs on one thread in a fixed order whatever the thread count.
template <SoftKind K, typename C>
void SoftAll(const IntraOp& par, const C* xs, C* ys, const AxisView& v) {
  const int64_t block = v.n * v.inner;
  if (v.inner == 1) {
    par.ParallelRanges(v.outer, std::max<int64_t>(1, kMinTaskElements / block),
                       [&](int64_t o0, int64_t o1) {
                         for (int64_t o = o0; o < o1; ++o)
                           SoftRow<K>(xs + o * block, ys + o * block, v.n);
                       });
    return;
  }
  const int64_t col_blocks = (v.inner + kBlockCols - 1) / kBlockCols;
  const int64_t task = v.n * std::min(v.inner, kBlockCols);
  par.ParallelRanges(v.outer * col_blocks, std::max<int64_t>(1, kMinTaskElements / task),
                     [&](int64_t t0, int64_t t1) {
                       std::vector<C> m(static_cast<size_t>(kBlockCols)), s(m.size());
                       for (int64_t t = t0; t < t1; ++t) {
                         const int64_t off = t / col_blocks * block + t % col_blocks * kBlockCols;
                         const int64_t cols =
                             std::min(kBlockCols, v.inner - t % col_blocks * kBlockCols);
                         SoftBlock<K>(xs + off, ys + off, v.n, v.inner, cols, m.data(), s.data());
                       }
                     });
}

// Softmax-like ops. Opset < 13: input coerced to 2-D at `axis` (default 1);
// opset >= 13: one axis (default -1).
template <SoftKind K>
Status SoftKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const bool legacy = ctx.opset() < 13;
  if (x.rank() == 0) return ctx.Error("input must have rank >= 1, got a scalar");
  PX_ASSIGN_OR_RETURN(int axis,
                      AxisOf(ctx, ctx.node().attr_int("axis", legacy ? 1 : -1), x.shape()));
  const AxisView v = MakeAxisView(x.shape(), axis, legacy);
  // Softmax reads each element before it writes it (SoftRow, SoftBlock), so
  // it may overwrite x; LogSoftmax reads x again after using y as scratch.
  PX_ASSIGN_OR_RETURN(Tensor * out, K == SoftKind::kSoftmax
                                        ? ctx.OutputOver(0, x.dtype(), x.shape())
                                        : ctx.Output(0, x.dtype(), x.shape()));
  if (x.numel() == 0) return Status::Ok();
  return DispatchFloatHalf(x.dtype(), [&]<typename T>() -> Status {
    using C = ComputeT<T>;
    std::vector<C> xbuf, ybuf;
    const C* xs;
    C* ys;
    if constexpr (std::is_same_v<T, Half>) {
      xbuf = ReadAsFloats<C>(x);
      ybuf.resize(xbuf.size());
      xs = xbuf.data();
      ys = ybuf.data();
    } else {
      xs = x.data<T>();
      ys = out->data<T>();
    }
    SoftAll<K>(ctx.intra_op(), xs, ys, v);
    if constexpr (std::is_same_v<T, Half>) {
      for (size_t i = 0; i < ybuf.size(); ++i) out->data<Half>()[i] = FloatToHalf(ybuf[i]);
    }
    return Status::Ok();
  });
}

template <typename F>
Status DispatchNumericHalf(DType t, F&& f) {
  if (t == DType::kFloat16) return f.template operator()<Half>();
  return DispatchNumeric(t, f);
}

// CumSum(x, axis) with `exclusive` and `reverse` attributes.
Status CumSum(KernelContext& ctx) {
  if (!ctx.has_input(1)) return ctx.Error("missing input 'axis'");
  const Tensor& x = ctx.input(0);
  PX_ASSIGN_OR_RETURN(std::vector<int64_t> axis_v, ReadInt64s(ctx.input(1)));
  if (axis_v.size() != 1)
    return ctx.Error("axis must hold one value, got shape " + ShapeToString(ctx.input(1).shape()));
  if (x.rank() == 0) return ctx.Error("input must have rank >= 1, got a scalar");
  PX_ASSIGN_OR_RETURN(int axis, AxisOf(ctx, axis_v[0], x.shape()));
  const bool exclusive = ctx.node().attr_int("exclusive", 0) != 0;
  const bool reverse = ctx.node().attr_int("reverse", 0) != 0;
  const AxisView v = MakeAxisView(x.shape(), axis);
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), x.shape()));
  return DispatchNumericHalf(x.dtype(), [&]<typename T>() -> Status {
    using C = ComputeT<T>;
    std::vector<C> acc(static_cast<size_t>(v.inner));
    for (int64_t o = 0; o < v.outer; ++o) {
      std::fill(acc.begin(), acc.end(), C(0));
      for (int64_t k = 0; k < v.n; ++k) {
        const int64_t r = reverse ? v.n - 1 - k : k;
        const T* xs = x.data<T>() + (o * v.n + r) * v.inner;
        T* ys = out->data<T>() + (o * v.n + r) * v.inner;
        for (int64_t i = 0; i < v.inner; ++i) {
          const C prev = acc[static_cast<size_t>(i)];
          const C next = static_cast<C>(prev + ToCompute(xs[i]));
          acc[static_cast<size_t>(i)] = next;
          ys[i] = FromCompute<T>(exclusive ? prev : next);
        }
      }
    }
    return Status::Ok();
  });
}

// Orders (value, index) pairs for TopK: NaN counts as the largest value,
// ties go to the lower index.
template <typename C, bool kLargest>
struct TopKOrder {
  bool operator()(const std::pair<C, int64_t>& a, const std::pair<C, int64_t>& b) const {
    if constexpr (std::is_floating_point_v<C>) {
      const bool an = std::isnan(a.first), bn = std::isnan(b.first);
      if (an || bn) {
        if (an && bn) return a.second < b.second;
        return kLargest ? an : bn;
      }
    }
    if (a.first != b.first) return kLargest ? a.first > b.first : a.first < b.first;
    return a.second < b.second;
  }
};

Result<int64_t> TopKCount(const KernelContext& ctx) {
  if (ctx.opset() < 10) {
    if (!ctx.node().has_attr("k")) return ctx.Error("missing attribute 'k'");
    return ctx.node().attr_int("k", 0);
  }
  if (!ctx.has_input(1)) return ctx.Error("missing input 'K'");
  auto k = ReadInt64s(ctx.input(1));
  if (!k.ok()) return ctx.Error("K: " + k.status().message());
  if (k->size() != 1)
    return ctx.Error("K must hold one value, got shape " + ShapeToString(ctx.input(1).shape()));
  return (*k)[0];
}

template <typename T, bool kLargest>
void TopKSlices(const T* x, T* vals, int64_t* idx, const AxisView& v, int64_t k) {
  using C = ComputeT<T>;
  std::vector<std::pair<C, int64_t>> buf(static_cast<size_t>(v.n));
  const TopKOrder<C, kLargest> order;
  for (int64_t o = 0; o < v.outer; ++o) {
    for (int64_t i = 0; i < v.inner; ++i) {
      const T* xs = x + o * v.n * v.inner + i;
      for (int64_t r = 0; r < v.n; ++r)
        buf[static_cast<size_t>(r)] = {ToCompute(xs[r * v.inner]), r};
      std::partial_sort(buf.begin(), buf.begin() + k, buf.end(), order);
      const int64_t base = o * k * v.inner + i;
      for (int64_t r = 0; r < k; ++r) {
        vals[base + r * v.inner] = FromCompute<T>(buf[static_cast<size_t>(r)].first);
        idx[base + r * v.inner] = buf[static_cast<size_t>(r)].second;
      }
    }
  }
}

// TopK: k as attribute (opset 1) or input (opset >= 10); `largest` and
// `sorted` from opset 11. Results are always sorted.
Status TopK(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() == 0) return ctx.Error("input must have rank >= 1, got a scalar");
  PX_ASSIGN_OR_RETURN(int64_t k, TopKCount(ctx));
  PX_ASSIGN_OR_RETURN(int axis, AxisOf(ctx, ctx.node().attr_int("axis", -1), x.shape()));
  const bool largest = ctx.node().attr_int("largest", 1) != 0;
  if (k < 0 || k > x.dim(axis))
    return ctx.Error("k = " + std::to_string(k) + " is out of range for axis " +
                     std::to_string(axis) + " of input shape " + ShapeToString(x.shape()));
  Shape out_shape = x.shape();
  out_shape[static_cast<size_t>(axis)] = k;
  PX_ASSIGN_OR_RETURN(Tensor * vals, ctx.Output(0, x.dtype(), out_shape));
  PX_ASSIGN_OR_RETURN(Tensor * idx, ctx.Output(1, DType::kInt64, out_shape));
  if (vals->numel() == 0) return Status::Ok();
  const AxisView v = MakeAxisView(x.shape(), axis);
  return DispatchNumericHalf(x.dtype(), [&]<typename T>() -> Status {
    if (largest)
      TopKSlices<T, true>(x.data<T>(), vals->data<T>(), idx->data<int64_t>(), v, k);
    else
      TopKSlices<T, false>(x.data<T>(), vals->data<T>(), idx->data<int64_t>(), v, k);
    return Status::Ok();
  });
}

}  // namespace

void RegisterSoftmaxFamilyOps(OpRegistry& r) {
  r.Register("Softmax", NamedKernel<SoftKernel<SoftKind::kSoftmax>>);
  r.Register("LogSoftmax", NamedKernel<SoftKernel<SoftKind::kLogSoftmax>>);
  r.Register("Hardmax", NamedKernel<SoftKernel<SoftKind::kHardmax>>);
  r.SetReusableInputs("", "Softmax", {0});
  r.Register("CumSum", NamedKernel<CumSum>);
  r.Register("TopK", NamedKernel<TopK>);
}

}  // namespace parallax
