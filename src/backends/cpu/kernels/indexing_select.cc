// Data-dependent selection ops: NonZero, Compress, Unique, ReverseSequence.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cpu/kernels/shape_ops_util.h"
#include "ops/dispatch.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

Status CheckMovable(const KernelContext& ctx, const Tensor& t) {
  if (DTypeSize(t.dtype()) == 0)
    return ctx.Error("unsupported dtype " + std::string(DTypeName(t.dtype())));
  return Status::Ok();
}

template <typename T>
bool IsNonZero(T v) {
  if constexpr (std::is_same_v<T, Half>)
    return (v.bits & 0x7fff) != 0;
  else
    return v != T(0);
}

// ---- NonZero ----

Status NonZero(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  std::vector<int64_t> flat;
  PX_RETURN_IF_ERROR(DispatchAll(x.dtype(), [&]<typename T>() -> Status {
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i)
      if (IsNonZero(p[i])) flat.push_back(i);
    return Status::Ok();
  }));
  const int64_t nnz = static_cast<int64_t>(flat.size());
  const int r = std::max(x.rank(), 1);  // A scalar is treated as shape [1].
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, {r, nnz}));
  int64_t* o = out->data<int64_t>();
  if (x.rank() == 0) {
    std::fill(o, o + nnz, 0);
    return Status::Ok();
  }
  for (int64_t i = 0; i < nnz; ++i) {
    int64_t rem = flat[static_cast<size_t>(i)];
    for (int d = r - 1; d >= 0; --d) {
      o[d * nnz + i] = rem % x.dim(d);
      rem /= x.dim(d);
    }
  }
  return Status::Ok();
}

// ---- Compress ----

Status Compress(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (!ctx.has_input(1)) return ctx.Error("missing 'condition' input");
  const Tensor& cond = ctx.input(1);
  if (cond.dtype() != DType::kBool || cond.rank() != 1)
    return ctx.Error("condition must be a 1-D bool tensor, got " +
                     std::string(DTypeName(cond.dtype())) + ShapeToString(cond.shape()));
  const bool has_axis = ctx.node().has_attr("axis");
  int axis = 0;
  int64_t outer = 1, dim = x.numel(), inner = 1;
  if (has_axis) {
    if (x.rank() < 1) return ctx.Error("input must have rank >= 1 when 'axis' is given");
    auto a = NormalizeAxis(ctx.node().attr_int("axis", 0), x.rank());
    if (!a.ok()) return ctx.Error(a.status().message());
    axis = *a;
    dim = x.dim(axis);
    outer = 1;
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  }
  std::vector<int64_t> keep;
  const bool* c = cond.data<bool>();
  for (int64_t i = 0; i < cond.numel(); ++i) {
    if (!c[i]) continue;
    if (i >= dim)
      return ctx.Error("condition selects index " + std::to_string(i) +
                       " beyond the compressed size " + std::to_string(dim));
    keep.push_back(i);
  }
  const int64_t n = static_cast<int64_t>(keep.size());
  Shape out_shape = {n};
  if (has_axis) {
    out_shape = x.shape();
    out_shape[static_cast<size_t>(axis)] = n;
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), out_shape));
  if (out->numel() == 0) return Status::Ok();
  const size_t es = DTypeSize(x.dtype());
  const size_t row = static_cast<size_t>(inner) * es;
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out->raw_data());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : keep) {
      std::memcpy(dst, src + static_cast<size_t>(o * dim + k) * row, row);
      dst += row;
    }
  return Status::Ok();
}

// ---- Unique ----

template <typename T>
bool ElemLess(T a, T b) {
  if constexpr (std::is_same_v<T, Half>) {
    return ElemLess<float>(HalfToFloat(a), HalfToFloat(b));
  } else if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return false;  // NaNs sort last and compare equal.
    if (std::isnan(b)) return true;
    return a < b;
  } else {
    return a < b;
  }
}

struct UniqueResult {
  std::vector<int64_t> first;    // per unique slice, in output order
  std::vector<int64_t> counts;   // per unique slice
  std::vector<int64_t> inverse;  // per input slice
};

// Groups the n slices of `len` contiguous elements in `buf`.
template <typename T>
UniqueResult GroupSlices(const T* buf, int64_t n, int64_t len, bool sorted) {
  auto slice_less = [&](int64_t i, int64_t j) {
    const T* a = buf + i * len;
    const T* b = buf + j * len;
    for (int64_t k = 0; k < len; ++k) {
      if (ElemLess(a[k], b[k])) return true;
      if (ElemLess(b[k], a[k])) return false;
    }
    return false;
  };
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), slice_less);
  std::vector<int64_t> group_of(static_cast<size_t>(n));
  UniqueResult res;
  for (size_t p = 0; p < order.size(); ++p) {
    if (p == 0 || slice_less(order[p - 1], order[p])) {
      res.first.push_back(order[p]);  // Stable sort: the lowest index comes first.
      res.counts.push_back(0);
    }
    group_of[static_cast<size_t>(order[p])] = static_cast<int64_t>(res.first.size() - 1);
    ++res.counts.back();
  }
  const size_t u = res.first.size();
  std::vector<int64_t> rank(u);  // group (sorted position) -> output position
  if (sorted) {
    std::iota(rank.begin(), rank.end(), 0);
  } else {
    std::vector<int64_t> by_first(u);
    std::iota(by_first.begin(), by_first.end(), 0);
    std::sort(by_first.begin(), by_first.end(),
              [&](int64_t a, int64_t b) { return res.first[a] < res.first[b]; });
    std::vector<int64_t> first(u), counts(u);
    for (size_t k = 0; k < u; ++k) {
      rank[static_cast<size_t>(by_first[k])] = static_cast<int64_t>(k);
      first[k] = res.first[static_cast<size_t>(by_first[k])];
      counts[k] = res.counts[static_cast<size_t>(by_first[k])];
    }
    res.first = std::move(first);
    res.counts = std::move(counts);
  }
  res.inverse.resize(static_cast<size_t>(n));
  for (size_t i = 0; i < res.inverse.size(); ++i)
    res.inverse[i] = rank[static_cast<size_t>(group_of[i])];
  return res;
}

Status WriteInt64s(KernelContext& ctx, int i, const std::vector<int64_t>& v) {
  if (!ctx.output_used(i)) return Status::Ok();
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(i, DType::kInt64, {static_cast<int64_t>(v.size())}));
  if (!v.empty()) std::memcpy(out->raw_data(), v.data(), v.size() * sizeof(int64_t));
  return Status::Ok();
}

Status Unique(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  const bool sorted = ctx.node().attr_int("sorted", 1) != 0;
  const bool has_axis = ctx.node().has_attr("axis");
  int axis = 0;
  int64_t outer = 1, n = x.numel(), inner = 1;
  if (has_axis) {
    auto a = NormalizeAxis(ctx.node().attr_int("axis", 0), x.rank());
    if (!a.ok() || x.rank() < 1)
      return ctx.Error("invalid axis for input " + ShapeToString(x.shape()));
    axis = *a;
    n = x.dim(axis);
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  }
  const int64_t len = outer * inner;
  UniqueResult res;
  PX_RETURN_IF_ERROR(DispatchAll(x.dtype(), [&]<typename T>() -> Status {
    // Slice i gathered contiguously: buf[i * len + o * inner + k].
    std::unique_ptr<T[]> buf(new T[static_cast<size_t>(n * len)]);
    const T* p = x.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < n; ++i)
        std::copy(p + (o * n + i) * inner, p + (o * n + i + 1) * inner,
                  buf.get() + i * len + o * inner);
    res = GroupSlices(buf.get(), n, len, sorted);
    return Status::Ok();
  }));
  const int64_t u = static_cast<int64_t>(res.first.size());
  Shape y_shape = {u};
  if (has_axis) {
    y_shape = x.shape();
    y_shape[static_cast<size_t>(axis)] = u;
  }
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), y_shape));
  const size_t row = static_cast<size_t>(inner) * DTypeSize(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(y->raw_data());
  for (int64_t o = 0; o < outer && row > 0; ++o)
    for (int64_t g = 0; g < u; ++g)
      std::memcpy(dst + static_cast<size_t>(o * u + g) * row,
                  src + static_cast<size_t>(o * n + res.first[static_cast<size_t>(g)]) * row, row);
  PX_RETURN_IF_ERROR(WriteInt64s(ctx, 1, res.first));
  PX_RETURN_IF_ERROR(WriteInt64s(ctx, 2, res.inverse));
  return WriteInt64s(ctx, 3, res.counts);
}

// ---- ReverseSequence ----

Status ReverseSequence(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (!ctx.has_input(1)) return ctx.Error("missing 'sequence_lens' input");
  if (x.rank() < 2) return ctx.Error("input must have rank >= 2, got " + ShapeToString(x.shape()));
  const int64_t time_axis = ctx.node().attr_int("time_axis", 0);
  const int64_t batch_axis = ctx.node().attr_int("batch_axis", 1);
  if (!((time_axis == 0 && batch_axis == 1) || (time_axis == 1 && batch_axis == 0)))
    return ctx.Error("time_axis/batch_axis must be 0/1 or 1/0, got " + std::to_string(time_axis) +
                     "/" + std::to_string(batch_axis));
  std::vector<int64_t> lens;
  PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(1), "sequence_lens", &lens));
  const int64_t steps = x.dim(static_cast<int>(time_axis));
  const int64_t batch = x.dim(static_cast<int>(batch_axis));
  if (static_cast<int64_t>(lens.size()) != batch)
    return ctx.Error("sequence_lens has " + std::to_string(lens.size()) +
                     " values for a batch of " + std::to_string(batch));
  for (int64_t b = 0; b < batch; ++b)
    if (lens[static_cast<size_t>(b)] < 0 || lens[static_cast<size_t>(b)] > steps)
      return ctx.Error("sequence_lens[" + std::to_string(b) +
                       "] = " + std::to_string(lens[static_cast<size_t>(b)]) + " is outside [0, " +
                       std::to_string(steps) + "]");
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), x.shape()));
  int64_t inner = 1;
  for (int d = 2; d < x.rank(); ++d) inner *= x.dim(d);
  const size_t row = static_cast<size_t>(inner) * DTypeSize(x.dtype());
  if (row == 0) return Status::Ok();
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out->raw_data());
  auto at = [&](int64_t t, int64_t b) {
    return static_cast<size_t>(time_axis == 0 ? t * batch + b : b * steps + t) * row;
  };
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t len = lens[static_cast<size_t>(b)];
    for (int64_t t = 0; t < steps; ++t)
      std::memcpy(dst + at(t, b), src + at(t < len ? len - 1 - t : t, b), row);
  }
  return Status::Ok();
}

}  // namespace

void RegisterSelectionOps(OpRegistry& r) {
  r.Register("NonZero", NonZero);
  r.Register("Compress", Compress);
  r.Register("Unique", Unique);
  r.Register("ReverseSequence", ReverseSequence);
}

}  // namespace parallax
