// Index-driven data movement: Gather, GatherElements, GatherND,
// ScatterElements (and the deprecated Scatter), ScatterND, OneHot.
// NonZero, Compress, Unique and ReverseSequence live in indexing_select.cc.
//
// Every index is validated before anything is written, so a bad index yields
// a clear error naming the index and the axis size, never a stray access.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cpu/kernels/families.h"
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

Result<int> Axis(const KernelContext& ctx, int64_t axis, int rank) {
  if (rank < 1) return ctx.Error("input must have rank >= 1");
  auto a = NormalizeAxis(axis, rank);
  if (!a.ok()) return ctx.Error(a.status().message());
  return *a;
}

// ---- Gather ----

Status Gather(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (!ctx.has_input(1)) return ctx.Error("missing 'indices' input");
  const Tensor& it = ctx.input(1);
  PX_ASSIGN_OR_RETURN(const int axis, Axis(ctx, ctx.node().attr_int("axis", 0), x.rank()));
  std::vector<int64_t> idx;
  PX_RETURN_IF_ERROR(ReadIndices(ctx, it, "indices", &idx));
  const int64_t dim = x.dim(axis);
  for (int64_t& v : idx) {
    const int64_t orig = v;
    if (!NormalizeIndex(v, dim)) return ctx.Error(IndexRangeError(orig, axis, dim));
  }
  Shape out_shape(x.shape().begin(), x.shape().begin() + axis);
  out_shape.insert(out_shape.end(), it.shape().begin(), it.shape().end());
  out_shape.insert(out_shape.end(), x.shape().begin() + axis + 1, x.shape().end());
  PX_RETURN_IF_ERROR(CheckOutputSize(ctx, out_shape));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), out_shape));
  if (out->numel() == 0) return Status::Ok();
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  const int64_t n = static_cast<int64_t>(idx.size());
  return DispatchBySize(x.dtype(), [&]<typename T>() -> Status {
    const T* in = x.data<T>();
    T* o = out->data<T>();
    for (int64_t b = 0; b < outer; ++b) {
      const T* src = in + b * dim * inner;
      if (inner == 1) {
        for (int64_t i = 0; i < n; ++i) o[i] = src[idx[static_cast<size_t>(i)]];
        o += n;
      } else {
        for (int64_t i = 0; i < n; ++i, o += inner)
          std::memcpy(o, src + idx[static_cast<size_t>(i)] * inner, sizeof(T) * inner);
      }
    }
    return Status::Ok();
  });
}

// ---- Element-wise indexing (GatherElements / ScatterElements) ----

// Data offsets of every element of `indices` (shape `idx_shape`, values
// along `axis`), validated against `data_shape`.
Status ElementOffsets(const KernelContext& ctx, const Shape& data_shape, const Shape& idx_shape,
                      const std::vector<int64_t>& idx, int axis, std::vector<int64_t>* offs) {
  const size_t r = data_shape.size();
  if (idx_shape.size() != r)
    return ctx.Error("indices rank " + std::to_string(idx_shape.size()) +
                     " differs from data rank " + std::to_string(r));
  for (size_t d = 0; d < r; ++d)
    if (static_cast<int>(d) != axis && idx_shape[d] > data_shape[d])
      return ctx.Error("indices shape " + ShapeToString(idx_shape) + " exceeds data shape " +
                       ShapeToString(data_shape) + " on axis " + std::to_string(d));
  const std::vector<int64_t> st = Strides(data_shape);
  const int64_t dim = data_shape[static_cast<size_t>(axis)];
  offs->resize(idx.size());
  std::vector<int64_t> pos(r, 0);
  int64_t base = 0;
  for (size_t i = 0; i < idx.size(); ++i) {
    int64_t v = idx[i];
    if (!NormalizeIndex(v, dim)) return ctx.Error(IndexRangeError(idx[i], axis, dim));
    (*offs)[i] = base + v * st[static_cast<size_t>(axis)];
    for (size_t d = r; d-- > 0;) {
      const bool moves = static_cast<int>(d) != axis;
      if (moves) base += st[d];
      if (++pos[d] < idx_shape[d]) break;
      if (moves) base -= st[d] * idx_shape[d];
      pos[d] = 0;
    }
  }
  return Status::Ok();
}

Status GatherElements(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (!ctx.has_input(1)) return ctx.Error("missing 'indices' input");
  const Tensor& it = ctx.input(1);
  PX_ASSIGN_OR_RETURN(const int axis, Axis(ctx, ctx.node().attr_int("axis", 0), x.rank()));
  std::vector<int64_t> idx, offs;
  PX_RETURN_IF_ERROR(ReadIndices(ctx, it, "indices", &idx));
  PX_RETURN_IF_ERROR(ElementOffsets(ctx, x.shape(), it.shape(), idx, axis, &offs));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), it.shape()));
  return DispatchBySize(x.dtype(), [&]<typename T>() -> Status {
    const T* in = x.data<T>();
    T* o = out->data<T>();
    for (size_t i = 0; i < offs.size(); ++i) o[i] = in[offs[i]];
    return Status::Ok();
  });
}

// ---- Scatter reductions ----

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Result<Reduction> ReadReduction(const KernelContext& ctx) {
  if (ctx.opset() < 16) return Reduction::kNone;
  const std::string r = ctx.node().attr_string("reduction", "none");
  if (r == "none") return Reduction::kNone;
  if (r == "add") return Reduction::kAdd;
  if (r == "mul") return Reduction::kMul;
  if (ctx.opset() >= 18 && r == "max") return Reduction::kMax;
  if (ctx.opset() >= 18 && r == "min") return Reduction::kMin;
  return ctx.Error("unsupported reduction '" + r + "'");
}

template <typename T>
T Combine(Reduction red, T a, T b) {
  if constexpr (std::is_same_v<T, Half>) {
    return FloatToHalf(Combine<float>(red, HalfToFloat(a), HalfToFloat(b)));
  } else if constexpr (std::is_same_v<T, bool>) {
    return (red == Reduction::kAdd || red == Reduction::kMax) ? (a || b) : (a && b);
  } else {
    switch (red) {
      case Reduction::kAdd:
        return static_cast<T>(a + b);
      case Reduction::kMul:
        return static_cast<T>(a * b);
      case Reduction::kMax:
        return std::max(a, b);
      case Reduction::kMin:
        return std::min(a, b);
      default:
        return b;
    }
  }
}

// dst[offs[i] + j] (op)= src[i * slice + j] for every offset and j < slice.
Status ScatterApply(DType dtype, Reduction red, void* dst, const void* src,
                    const std::vector<int64_t>& offs, int64_t slice) {
  if (red == Reduction::kNone) {
    return DispatchBySize(dtype, [&]<typename T>() -> Status {
      T* d = static_cast<T*>(dst);
      const T* s = static_cast<const T*>(src);
      for (size_t i = 0; i < offs.size(); ++i)
        std::memcpy(d + offs[i], s + static_cast<int64_t>(i) * slice, sizeof(T) * slice);
      return Status::Ok();
    });
  }
  return DispatchAll(dtype, [&]<typename T>() -> Status {
    T* d = static_cast<T*>(dst);
    const T* s = static_cast<const T*>(src);
    for (size_t i = 0; i < offs.size(); ++i) {
      T* o = d + offs[i];
      const T* u = s + static_cast<int64_t>(i) * slice;
      for (int64_t j = 0; j < slice; ++j) o[j] = Combine<T>(red, o[j], u[j]);
    }
    return Status::Ok();
  });
}

Status CopyDataToOutput(KernelContext& ctx, Tensor** out) {
  const Tensor& x = ctx.input(0);
  PX_ASSIGN_OR_RETURN(*out, ctx.Output(0, x.dtype(), x.shape()));
  if (x.nbytes()) std::memcpy((*out)->raw_data(), x.raw_data(), x.nbytes());
  return Status::Ok();
}

Status ScatterElements(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (!ctx.has_input(1) || !ctx.has_input(2)) return ctx.Error("needs indices and updates");
  const Tensor& it = ctx.input(1);
  const Tensor& up = ctx.input(2);
  if (up.dtype() != x.dtype() || up.shape() != it.shape())
    return ctx.Error("updates " + std::string(DTypeName(up.dtype())) + ShapeToString(up.shape()) +
                     " must match the indices shape " + ShapeToString(it.shape()) +
                     " and the data dtype " + std::string(DTypeName(x.dtype())));
  PX_ASSIGN_OR_RETURN(const int axis, Axis(ctx, ctx.node().attr_int("axis", 0), x.rank()));
  PX_ASSIGN_OR_RETURN(const Reduction red, ReadReduction(ctx));
  std::vector<int64_t> idx, offs;
  PX_RETURN_IF_ERROR(ReadIndices(ctx, it, "indices", &idx));
  PX_RETURN_IF_ERROR(ElementOffsets(ctx, x.shape(), it.shape(), idx, axis, &offs));
  Tensor* out = nullptr;
  PX_RETURN_IF_ERROR(CopyDataToOutput(ctx, &out));
  return ScatterApply(x.dtype(), red, out->raw_data(), up.raw_data(), offs, 1);
}

// ---- GatherND / ScatterND ----

// For indices [..., k] into data (after `batch` leading batch dims), the
// offset of each addressed slice (including the batch offset), validated.
Status TupleOffsets(const KernelContext& ctx, const Shape& data_shape, const Tensor& it,
                    int64_t batch_dims, std::vector<int64_t>* offs) {
  std::vector<int64_t> idx;
  PX_RETURN_IF_ERROR(ReadIndices(ctx, it, "indices", &idx));
  const int q = it.rank();
  const int64_t r = static_cast<int64_t>(data_shape.size());
  if (q < 1) return ctx.Error("indices must have rank >= 1");
  const int64_t k = it.dim(q - 1);
  if (batch_dims < 0 || batch_dims >= q || batch_dims >= r || batch_dims + k > r)
    return ctx.Error("indices " + ShapeToString(it.shape()) + " with batch_dims=" +
                     std::to_string(batch_dims) + " do not fit data " + ShapeToString(data_shape));
  int64_t batch = 1, tuples = 1;
  for (int64_t d = 0; d < batch_dims; ++d) {
    if (it.dim(static_cast<int>(d)) != data_shape[static_cast<size_t>(d)])
      return ctx.Error("batch dim " + std::to_string(d) + " differs: indices " +
                       ShapeToString(it.shape()) + " vs data " + ShapeToString(data_shape));
    batch *= data_shape[static_cast<size_t>(d)];
  }
  for (int d = static_cast<int>(batch_dims); d + 1 < q; ++d) tuples *= it.dim(d);
  const std::vector<int64_t> st = Strides(data_shape);
  const int64_t batch_stride = batch_dims > 0 ? st[static_cast<size_t>(batch_dims - 1)] : 0;
  offs->resize(static_cast<size_t>(batch * tuples));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < tuples; ++t) {
      const size_t row = static_cast<size_t>(b * tuples + t);
      int64_t off = b * batch_stride;
      for (int64_t j = 0; j < k; ++j) {
        const size_t a = static_cast<size_t>(batch_dims + j);
        const int64_t orig = idx[row * static_cast<size_t>(k) + static_cast<size_t>(j)];
        int64_t v = orig;
        if (!NormalizeIndex(v, data_shape[a]))
          return ctx.Error(IndexRangeError(orig, static_cast<int>(a), data_shape[a]));
        off += v * st[a];
      }
      (*offs)[row] = off;
    }
  }
  return Status::Ok();
}

Status GatherND(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (!ctx.has_input(1)) return ctx.Error("missing 'indices' input");
  const Tensor& it = ctx.input(1);
  const int64_t b = ctx.opset() >= 12 ? ctx.node().attr_int("batch_dims", 0) : 0;
  std::vector<int64_t> offs;
  PX_RETURN_IF_ERROR(TupleOffsets(ctx, x.shape(), it, b, &offs));
  const int64_t k = it.dim(it.rank() - 1);
  Shape out_shape(it.shape().begin(), it.shape().end() - 1);
  out_shape.insert(out_shape.end(), x.shape().begin() + b + k, x.shape().end());
  int64_t slice = 1;
  for (int d = static_cast<int>(b + k); d < x.rank(); ++d) slice *= x.dim(d);
  PX_RETURN_IF_ERROR(CheckOutputSize(ctx, out_shape));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), out_shape));
  if (out->numel() == 0) return Status::Ok();
  return DispatchBySize(x.dtype(), [&]<typename T>() -> Status {
    const T* in = x.data<T>();
    T* o = out->data<T>();
    for (size_t i = 0; i < offs.size(); ++i, o += slice) {
      if (slice == 1)
        *o = in[offs[i]];
      else
        std::memcpy(o, in + offs[i], sizeof(T) * slice);
    }
    return Status::Ok();
  });
}

Status ScatterND(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (!ctx.has_input(1) || !ctx.has_input(2)) return ctx.Error("needs indices and updates");
  const Tensor& it = ctx.input(1);
  const Tensor& up = ctx.input(2);
  PX_ASSIGN_OR_RETURN(const Reduction red, ReadReduction(ctx));
  std::vector<int64_t> offs;
  PX_RETURN_IF_ERROR(TupleOffsets(ctx, x.shape(), it, 0, &offs));
  const int64_t k = it.dim(it.rank() - 1);
  Shape want(it.shape().begin(), it.shape().end() - 1);
  want.insert(want.end(), x.shape().begin() + k, x.shape().end());
  if (up.dtype() != x.dtype() || up.shape() != want)
    return ctx.Error("updates " + std::string(DTypeName(up.dtype())) + ShapeToString(up.shape()) +
                     " must be " + std::string(DTypeName(x.dtype())) + ShapeToString(want));
  int64_t slice = 1;
  for (int d = static_cast<int>(k); d < x.rank(); ++d) slice *= x.dim(d);
  Tensor* out = nullptr;
  PX_RETURN_IF_ERROR(CopyDataToOutput(ctx, &out));
  if (slice == 0) return Status::Ok();
  return ScatterApply(x.dtype(), red, out->raw_data(), up.raw_data(), offs, slice);
}

// ---- OneHot ----

// Reads any numeric tensor as int64 values (floats truncate toward zero).
Status ReadAsInt64(const KernelContext& ctx, const Tensor& t, const char* what,
                   std::vector<int64_t>* out) {
  out->resize(static_cast<size_t>(t.numel()));
  if (DTypeSize(t.dtype()) == 0)
    return ctx.Error(std::string(what) + " has unsupported dtype " +
                     std::string(DTypeName(t.dtype())));
  return DispatchAll(t.dtype(), [&]<typename T>() -> Status {
    const T* p = t.data<T>();
    for (size_t i = 0; i < out->size(); ++i) {
      if constexpr (std::is_same_v<T, Half>)
        (*out)[i] = static_cast<int64_t>(HalfToFloat(p[i]));
      else
        (*out)[i] = static_cast<int64_t>(p[i]);
    }
    return Status::Ok();
  });
}

Status OneHot(KernelContext& ctx) {
  if (!ctx.has_input(1) || !ctx.has_input(2)) return ctx.Error("needs indices, depth and values");
  const Tensor& it = ctx.input(0);
  const Tensor& values = ctx.input(2);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, values));
  if (values.numel() != 2)
    return ctx.Error("values must hold [off, on], got shape " + ShapeToString(values.shape()));
  std::vector<int64_t> depth_v, idx;
  PX_RETURN_IF_ERROR(ReadAsInt64(ctx, ctx.input(1), "depth", &depth_v));
  if (depth_v.size() != 1) return ctx.Error("depth must be a scalar");
  const int64_t depth = depth_v[0];
  if (depth < 1) return ctx.Error("depth must be positive, got " + std::to_string(depth));
  PX_RETURN_IF_ERROR(ReadAsInt64(ctx, it, "indices", &idx));
  const int out_rank = it.rank() + 1;
  int64_t axis = ctx.node().attr_int("axis", -1);
  if (axis < -out_rank || axis >= out_rank)
    return ctx.Error("axis " + std::to_string(axis) + " is out of range for output rank " +
                     std::to_string(out_rank));
  if (axis < 0) axis += out_rank;
  Shape out_shape = it.shape();
  out_shape.insert(out_shape.begin() + axis, depth);
  PX_RETURN_IF_ERROR(CheckOutputSize(ctx, out_shape));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < it.rank(); ++d) (d < axis ? outer : inner) *= it.dim(d);
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, values.dtype(), out_shape));
  return DispatchBySize(values.dtype(), [&]<typename T>() -> Status {
    const T off = values.data<T>()[0], on = values.data<T>()[1];
    T* o = out->data<T>();
    std::fill(o, o + out->numel(), off);
    for (int64_t a = 0; a < outer; ++a) {
      for (int64_t i = 0; i < inner; ++i) {
        int64_t v = idx[static_cast<size_t>(a * inner + i)];
        if (NormalizeIndex(v, depth)) o[(a * depth + v) * inner + i] = on;
      }
    }
    return Status::Ok();
  });
}

}  // namespace

void RegisterIndexingOps(OpRegistry& r) {
  r.Register("Gather", Gather);
  r.Register("GatherElements", GatherElements);
  r.Register("GatherND", GatherND);
  r.Register("ScatterElements", ScatterElements);
  r.Register("Scatter", ScatterElements);
  r.Register("ScatterND", ScatterND);
  r.Register("OneHot", OneHot);
  RegisterSelectionOps(r);
}

}  // namespace parallax
