// Reduce* ops, ArgMax/ArgMin and MeanVarianceNormalization.
//
// The reduction core merges runs of adjacent reduced / kept axes (and drops
// size-1 axes), so that the common cases become [outer, reduced, inner]
// problems. It walks the input in memory order one contiguous run of the last
// merged axis at a time: a reduced last axis is folded with several
// independent accumulators, a kept last axis is combined element-wise into a
// contiguous output row. Both inner loops are branch-free and vectorisable.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "backends/cpu/kernels/reduction_util.h"
#include "ops/dispatch.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

// A reduction with runs of equally treated axes merged and size-1 axes
// dropped. `dims` always holds at least one entry.
struct ReducePlan {
  Shape out_shape;
  std::vector<int64_t> dims;
  std::vector<char> reduced;
  std::vector<int64_t> out_strides;  // 0 on reduced dims.
  int64_t out_numel = 1;
  int64_t count = 1;  // Input elements folded into each output element.
};

ReducePlan MakePlan(const Shape& shape, const std::vector<char>& mask, bool keepdims) {
  ReducePlan p;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (mask[i]) {
      p.count *= shape[i];
      if (keepdims) p.out_shape.push_back(1);
    } else {
      p.out_shape.push_back(shape[i]);
      p.out_numel *= shape[i];
    }
    if (shape[i] == 1) continue;
    if (!p.dims.empty() && p.reduced.back() == mask[i]) {
      p.dims.back() *= shape[i];
    } else {
      p.dims.push_back(shape[i]);
      p.reduced.push_back(mask[i]);
    }
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    p.reduced.push_back(0);
  }
  p.out_strides.assign(p.dims.size(), 0);
  int64_t acc = 1;
  for (size_t i = p.dims.size(); i-- > 0;) {
    if (p.reduced[i]) continue;
    p.out_strides[i] = acc;
    acc *= p.dims[i];
  }
  return p;
}

// Calls f(in_offset, out_offset) for each contiguous run of the last merged
// dim (dims.back() input elements starting at in_offset).
template <class F>
void ForEachRun(const ReducePlan& p, F&& f) {
  const size_t nd = p.dims.size();
  const int64_t len = p.dims.back();
  int64_t runs = 1;
  for (size_t i = 0; i + 1 < nd; ++i) runs *= p.dims[i];
  if (runs == 0 || len == 0) return;
  std::vector<int64_t> idx(nd, 0);
  int64_t out_off = 0;
  for (int64_t r = 0; r < runs; ++r) {
    f(r * len, out_off);
    for (size_t d = nd - 1; d-- > 0;) {
      if (++idx[d] < p.dims[d]) {
        out_off += p.out_strides[d];
        break;
      }
      out_off -= p.out_strides[d] * (p.dims[d] - 1);
      idx[d] = 0;
    }
  }
}

// Reduction ops over accumulator type A. Init<T>() is the identity (T is the
// element type, used for integer min/max limits); Map is applied to each
// element, Combine folds, Finalize sees the folded value and element count.
template <typename A>
struct SumOp {
  static constexpr bool kFloatAcc = false;
  template <typename T>
  static A Init() {
    return A(0);
  }
  static A Map(A x) { return x; }
  static A Combine(A a, A b) { return a + b; }
  static A Finalize(A a, int64_t) { return a; }
};

template <typename A>
struct MeanOp : SumOp<A> {
  static A Finalize(A a, int64_t n) {
    if constexpr (std::is_floating_point_v<A>)
      return a / static_cast<A>(n);
    else
      return n == 0 ? A(0) : static_cast<A>(a / static_cast<A>(n));
  }
};

template <typename A>
struct ProdOp : SumOp<A> {
  template <typename T>
  static A Init() {
    return A(1);
  }
  static A Combine(A a, A b) { return a * b; }
};

template <typename A>
struct MaxOp : SumOp<A> {
  template <typename T>
  static A Init() {
    if constexpr (std::is_floating_point_v<A>)
      return -std::numeric_limits<A>::infinity();
    else
      return static_cast<A>(std::numeric_limits<T>::lowest());
  }
  static A Combine(A a, A b) { return ((a >= b) | (a != a)) ? a : b; }  // NaN sticks.
};

template <typename A>
struct MinOp : SumOp<A> {
  template <typename T>
  static A Init() {
    if constexpr (std::is_floating_point_v<A>)
      return std::numeric_limits<A>::infinity();
    else
      return static_cast<A>(std::numeric_limits<T>::max());
  }
  static A Combine(A a, A b) { return ((a <= b) | (a != a)) ? a : b; }
};

template <typename A>
struct L1Op : SumOp<A> {
  static A Map(A x) {
    if constexpr (std::is_unsigned_v<A>)
      return x;
    else
      return x < 0 ? -x : x;
  }
};

template <typename A>
struct SumSquareOp : SumOp<A> {
  static A Map(A x) { return x * x; }
};

template <typename A>
struct L2Op : SumSquareOp<A> {
  static constexpr bool kFloatAcc = true;
  static A Finalize(A a, int64_t) { return std::sqrt(a); }
};

template <typename A>
struct LogSumOp : SumOp<A> {
  static constexpr bool kFloatAcc = true;
  static A Finalize(A a, int64_t) { return std::log(a); }
};

// Run with a shift (the max): log(sum(exp(x - s))) + s is added by the caller.
template <typename A>
struct LogSumExpOp : LogSumOp<A> {
  static A Map(A x) { return Exp(x); }
};

// The accumulator for element type T under op family Op.
template <typename T, template <class> class Op>
using AccT = std::conditional_t<
    std::is_floating_point_v<T>, T,
    std::conditional_t<
        std::is_same_v<T, Half>, float,
        std::conditional_t<Op<double>::kFloatAcc, double,
                           std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>>>;

template <typename A, typename T>
inline A Load(T v) {
  return static_cast<A>(ToCompute(v));
}

// out[o] = Finalize(fold of Map(x - shift[o]) over the inputs of o).
template <class Op, typename T, typename A, bool kShift>
void ReduceCore(const T* x, A* out, const ReducePlan& p, const A* shift) {
  for (int64_t i = 0; i < p.out_numel; ++i) out[i] = Op::template Init<T>();
  const int64_t len = p.dims.back();
  const bool last_reduced = p.reduced.back() != 0;
  ForEachRun(p, [&](int64_t in_off, int64_t out_off) {
    const T* xs = x + in_off;
    if (last_reduced) {
      const A s = kShift ? shift[out_off] : A(0);
      A acc[4] = {Op::template Init<T>(), Op::template Init<T>(), Op::template Init<T>(),
                  Op::template Init<T>()};
      int64_t j = 0;
      for (; j + 4 <= len; j += 4) {
        for (int k = 0; k < 4; ++k) {
          A v = Load<A>(xs[j + k]);
          if constexpr (kShift) v -= s;
          acc[k] = Op::Combine(acc[k], Op::Map(v));
        }
      }
      for (; j < len; ++j) {
        A v = Load<A>(xs[j]);
        if constexpr (kShift) v -= s;
        acc[0] = Op::Combine(acc[0], Op::Map(v));
      }
      A total = Op::Combine(Op::Combine(acc[0], acc[1]), Op::Combine(acc[2], acc[3]));
      out[out_off] = Op::Combine(out[out_off], total);
    } else {
      A* o = out + out_off;
      for (int64_t j = 0; j < len; ++j) {
        A v = Load<A>(xs[j]);
        if constexpr (kShift) v -= shift[out_off + j];
        o[j] = Op::Combine(o[j], Op::Map(v));
      }
    }
  });
  for (int64_t i = 0; i < p.out_numel; ++i) out[i] = Op::Finalize(out[i], p.count);
}

template <typename T, typename A>
inline T StoreAs(A v) {
  if constexpr (std::is_same_v<T, Half>) {
    return FloatToHalf(static_cast<float>(v));
  } else if constexpr (std::is_integral_v<T> && std::is_floating_point_v<A>) {
    if (!std::isfinite(v)) return v > 0 ? std::numeric_limits<T>::max() : T(0);
    return static_cast<T>(v);
  } else {
    return static_cast<T>(v);
  }
}

template <typename F>
Status DispatchNumericHalf(DType t, F&& f) {
  if (t == DType::kFloat16) return f.template operator()<Half>();
  return DispatchNumeric(t, f);
}

// Builds the plan for a Reduce* node: axes from the attribute (older opsets)
// or the optional second input (ReduceSum >= 13, all others >= 18).
Result<ReducePlan> PlanFromContext(const KernelContext& ctx, const Shape& shape) {
  const Node& n = ctx.node();
  const bool axes_input = ctx.opset() >= 18 || (n.op_type == "ReduceSum" && ctx.opset() >= 13);
  std::vector<int64_t> axes;
  if (axes_input) {
    if (ctx.has_input(1)) {
      auto r = ReadInt64s(ctx.input(1));
      if (!r.ok()) return ctx.Error("axes input: " + r.status().message());
      axes = std::move(r).value();
    }
  } else {
    axes = n.attr_ints("axes");
  }
  const bool keepdims = n.attr_int("keepdims", 1) != 0;
  const bool noop = n.attr_int("noop_with_empty_axes", 0) != 0;
  const int rank = static_cast<int>(shape.size());
  std::vector<char> mask(static_cast<size_t>(rank), axes.empty() && !noop ? 1 : 0);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      return ctx.Error("axis " + std::to_string(a) + " is out of range for input shape " +
                       ShapeToString(shape));
    mask[static_cast<size_t>(a < 0 ? a + rank : a)] = 1;
  }
  return MakePlan(shape, mask, keepdims);
}

template <template <class> class Op>
Status RunReduce(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("missing input 'data'");
  const Tensor& x = ctx.input(0);
  PX_ASSIGN_OR_RETURN(ReducePlan p, PlanFromContext(ctx, x.shape()));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), p.out_shape));
  return DispatchNumericHalf(x.dtype(), [&]<typename T>() -> Status {
    using A = AccT<T, Op>;
    std::vector<A> acc(static_cast<size_t>(p.out_numel));
    if constexpr (std::is_same_v<Op<A>, LogSumExpOp<A>>) {
      std::vector<A> shift(acc.size());
      ReduceCore<MaxOp<A>, T, A, false>(x.data<T>(), shift.data(), p, nullptr);
      for (A& s : shift) s = std::isfinite(s) ? s : A(0);
      ReduceCore<Op<A>, T, A, true>(x.data<T>(), acc.data(), p, shift.data());
      for (size_t i = 0; i < acc.size(); ++i) acc[i] += shift[i];
    } else {
      ReduceCore<Op<A>, T, A, false>(x.data<T>(), acc.data(), p, nullptr);
    }
    T* o = out->data<T>();
    for (size_t i = 0; i < acc.size(); ++i) o[i] = StoreAs<T>(acc[i]);
    return Status::Ok();
  });
}

// ArgMax / ArgMin over one axis; ties go to the first (or, with
// select_last_index, the last) index.
template <bool kMax>
Status ArgReduce(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Node& n = ctx.node();
  if (x.rank() == 0) return ctx.Error("input must have rank >= 1, got a scalar");
  const int64_t axis_attr = n.attr_int("axis", 0);
  if (axis_attr < -x.rank() || axis_attr >= x.rank())
    return ctx.Error("axis " + std::to_string(axis_attr) + " is out of range for input shape " +
                     ShapeToString(x.shape()));
  const int axis = static_cast<int>(axis_attr < 0 ? axis_attr + x.rank() : axis_attr);
  const bool keepdims = n.attr_int("keepdims", 1) != 0;
  const bool last = n.attr_int("select_last_index", 0) != 0;
  const AxisView v = MakeAxisView(x.shape(), axis);
  if (v.n == 0 && x.numel() == 0 && v.outer * v.inner != 0)
    return ctx.Error("cannot take an arg-reduction over an empty axis in shape " +
                     ShapeToString(x.shape()));
  Shape out_shape;
  for (int i = 0; i < x.rank(); ++i) {
    if (i != axis)
      out_shape.push_back(x.dim(i));
    else if (keepdims)
      out_shape.push_back(1);
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, out_shape));
  if (out->numel() == 0) return Status::Ok();
  return DispatchNumericHalf(x.dtype(), [&]<typename T>() -> Status {
    using C = ComputeT<T>;
    std::vector<C> best(static_cast<size_t>(v.inner));
    for (int64_t o = 0; o < v.outer; ++o) {
      const T* xs = x.data<T>() + o * v.n * v.inner;
      int64_t* oi = out->data<int64_t>() + o * v.inner;
      if (v.inner == 1) {  // Contiguous row: a plain scan.
        C b = ToCompute(xs[0]);
        int64_t arg = 0;
        for (int64_t r = 1; r < v.n; ++r) {
          const C val = ToCompute(xs[r]);
          const bool take = kMax ? (last ? val >= b : val > b) : (last ? val <= b : val < b);
          b = take ? val : b;
          arg = take ? r : arg;
        }
        *oi = arg;
        continue;
      }
      for (int64_t i = 0; i < v.inner; ++i) {
        best[static_cast<size_t>(i)] = ToCompute(xs[i]);
        oi[i] = 0;
      }
      for (int64_t r = 1; r < v.n; ++r) {
        const T* row = xs + r * v.inner;
        for (int64_t i = 0; i < v.inner; ++i) {
          const C val = ToCompute(row[i]);
          C& b = best[static_cast<size_t>(i)];
          const bool take = kMax ? (last ? val >= b : val > b) : (last ? val <= b : val < b);
          b = take ? val : b;
          oi[i] = take ? r : oi[i];
        }
      }
    }
    return Status::Ok();
  });
}

// MeanVarianceNormalization: (x - mean) / (std + 1e-9) over `axes`
// (default [0, 2, 3]), population variance.
Status MeanVarianceNormalization(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> axes =
      ctx.node().has_attr("axes") ? ctx.node().attr_ints("axes") : std::vector<int64_t>{0, 2, 3};
  const int rank = x.rank();
  std::vector<char> mask(static_cast<size_t>(rank), 0);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      return ctx.Error("axis " + std::to_string(a) + " is out of range for input shape " +
                       ShapeToString(x.shape()));
    mask[static_cast<size_t>(a < 0 ? a + rank : a)] = 1;
  }
  const ReducePlan p = MakePlan(x.shape(), mask, true);
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), x.shape()));
  return DispatchFloatHalf(x.dtype(), [&]<typename T>() -> Status {
    using A = ComputeT<T>;
    std::vector<A> mean(static_cast<size_t>(p.out_numel)), var(mean.size());
    ReduceCore<MeanOp<A>, T, A, false>(x.data<T>(), mean.data(), p, nullptr);
    ReduceCore<SumSquareOp<A>, T, A, true>(x.data<T>(), var.data(), p, mean.data());
    const A n = static_cast<A>(p.count);
    for (A& s : var) s = A(1) / (std::sqrt(s / n) + A(1e-9));  // Now 1 / (std + eps).
    const T* xs = x.data<T>();
    T* ys = out->data<T>();
    const int64_t len = p.dims.back();
    const bool last_reduced = p.reduced.back() != 0;
    ForEachRun(p, [&](int64_t in_off, int64_t out_off) {
      for (int64_t j = 0; j < len; ++j) {
        const int64_t o = last_reduced ? out_off : out_off + j;
        ys[in_off + j] = FromCompute<T>((ToCompute(xs[in_off + j]) - mean[o]) * var[o]);
      }
    });
    return Status::Ok();
  });
}

}  // namespace

void RegisterReductionOps(OpRegistry& r) {
  r.Register("ReduceSum", NamedKernel<RunReduce<SumOp>>);
  r.Register("ReduceMean", NamedKernel<RunReduce<MeanOp>>);
  r.Register("ReduceMax", NamedKernel<RunReduce<MaxOp>>);
  r.Register("ReduceMin", NamedKernel<RunReduce<MinOp>>);
  r.Register("ReduceProd", NamedKernel<RunReduce<ProdOp>>);
  r.Register("ReduceL1", NamedKernel<RunReduce<L1Op>>);
  r.Register("ReduceL2", NamedKernel<RunReduce<L2Op>>);
  r.Register("ReduceLogSum", NamedKernel<RunReduce<LogSumOp>>);
  r.Register("ReduceLogSumExp", NamedKernel<RunReduce<LogSumExpOp>>);
  r.Register("ReduceSumSquare", NamedKernel<RunReduce<SumSquareOp>>);
  r.Register("ArgMax", NamedKernel<ArgReduce<true>>);
  r.Register("ArgMin", NamedKernel<ArgReduce<false>>);
  r.Register("MeanVarianceNormalization", NamedKernel<MeanVarianceNormalization>);
  RegisterSoftmaxFamilyOps(r);
  RegisterNormalizationOps(r);
  RegisterLossOps(r);
}

}  // namespace parallax
