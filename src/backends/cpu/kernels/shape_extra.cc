// The rest of the shape family: Slice, Pad, Tile, Expand, Trilu,
// DepthToSpace, SpaceToDepth, ConstantOfShape, Range, EyeLike.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
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

// The bit pattern of `v` converted to dtype `t`, in the low DTypeSize(t) bytes.
Status ValueBits(DType t, double v, uint64_t* bits) {
  *bits = 0;
  return DispatchAll(t, [&]<typename T>() -> Status {
    T val;
    if constexpr (std::is_same_v<T, Half>)
      val = FloatToHalf(static_cast<float>(v));
    else if constexpr (std::is_same_v<T, bool>)
      val = v != 0;
    else
      val = static_cast<T>(v);
    std::memcpy(bits, &val, sizeof(T));
    return Status::Ok();
  });
}

Status ReadScalarInt(const KernelContext& ctx, int i, const char* what, int64_t* v) {
  std::vector<int64_t> vals;
  PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(i), what, &vals));
  if (vals.size() != 1)
    return ctx.Error(std::string(what) + " must hold one value, got shape " +
                     ShapeToString(ctx.input(i).shape()));
  *v = vals[0];
  return Status::Ok();
}

// ---- Slice ----

struct SliceParams {
  std::vector<int64_t> starts, ends, axes, steps;
};

Status ReadSliceParams(const KernelContext& ctx, int rank, SliceParams* p) {
  const Node& node = ctx.node();
  if (ctx.opset() < 10) {
    p->starts = node.attr_ints("starts");
    p->ends = node.attr_ints("ends");
    if (node.has_attr("axes")) p->axes = node.attr_ints("axes");
  } else {
    if (!ctx.has_input(1) || !ctx.has_input(2)) return ctx.Error("missing starts/ends inputs");
    PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(1), "starts", &p->starts));
    PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(2), "ends", &p->ends));
    if (ctx.has_input(3)) PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(3), "axes", &p->axes));
    if (ctx.has_input(4)) PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(4), "steps", &p->steps));
  }
  const size_t n = p->starts.size();
  if (p->axes.empty() && (ctx.opset() < 10 || !ctx.has_input(3)))
    for (size_t i = 0; i < n; ++i) p->axes.push_back(static_cast<int64_t>(i));
  if (p->steps.empty() && (ctx.opset() < 10 || !ctx.has_input(4))) p->steps.assign(n, 1);
  if (p->ends.size() != n || p->axes.size() != n || p->steps.size() != n)
    return ctx.Error("starts/ends/axes/steps have different lengths (" + std::to_string(n) + ", " +
                     std::to_string(p->ends.size()) + ", " + std::to_string(p->axes.size()) + ", " +
                     std::to_string(p->steps.size()) + ")");
  if (static_cast<int>(n) > rank)
    return ctx.Error("more slice axes than the input rank " + std::to_string(rank));
  return Status::Ok();
}

Status Slice(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  SliceParams p;
  PX_RETURN_IF_ERROR(ReadSliceParams(ctx, x.rank(), &p));
  PX_ASSIGN_OR_RETURN(std::vector<int> axes, NormalizeAxes(ctx, p.axes, x.rank()));
  Shape out_shape = x.shape();
  const std::vector<int64_t> st = Strides(x.shape());
  std::vector<int64_t> in_strides = st;
  int64_t offset = 0;
  for (size_t k = 0; k < axes.size(); ++k) {
    const size_t a = static_cast<size_t>(axes[k]);
    const int64_t dim = x.shape()[a], step = p.steps[k];
    if (step == 0) return ctx.Error("step is 0 for axis " + std::to_string(a));
    int64_t s = p.starts[k], e = p.ends[k], n = 0;
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (dim == 0) {
      s = 0;
    } else if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      n = e > s ? (e - s - 1) / step + 1 : 0;
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      const int64_t neg =
          step == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : -step;
      n = s > e ? (s - e - 1) / neg + 1 : 0;
    }
    out_shape[a] = n;
    if (n > 0) offset += s * st[a];
    in_strides[a] = n > 1 ? st[a] * step : st[a];
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), out_shape));
  if (out->numel() == 0) return Status::Ok();
  const size_t es = DTypeSize(x.dtype());
  StridedCopy(static_cast<const char*>(x.raw_data()) + offset * static_cast<int64_t>(es),
              out->raw_data(), es, out_shape, in_strides, ctx.intra_op());
  return Status::Ok();
}

// ---- Pad ----

// Source index along one dim for each output position; -1 = constant value.
Status PadMap(const KernelContext& ctx, const std::string& mode, int64_t dim, int64_t begin,
              int64_t out_dim, std::vector<int64_t>* map) {
  map->resize(static_cast<size_t>(out_dim));
  if (dim == 0 && out_dim > 0 && mode != "constant")
    return ctx.Error("cannot pad an empty dimension in '" + mode + "' mode");
  for (int64_t o = 0; o < out_dim; ++o) {
    int64_t i = o - begin;
    if (i < 0 || i >= dim) {
      if (mode == "constant") {
        i = -1;
      } else if (mode == "edge") {
        i = i < 0 ? 0 : dim - 1;
      } else if (mode == "wrap") {
        i = ((i % dim) + dim) % dim;
      } else if (dim == 1) {  // reflect of a single element
        i = 0;
      } else {
        const int64_t period = 2 * (dim - 1);
        i = ((i % period) + period) % period;
        if (i >= dim) i = period - i;
      }
    }
    (*map)[static_cast<size_t>(o)] = i;
  }
  return Status::Ok();
}

template <typename T>
void PadRows(const T* in, T* out, T value, const Shape& in_shape, const Shape& out_shape,
             const std::vector<std::vector<int64_t>>& maps, int64_t begin_last) {
  const size_t r = out_shape.size();
  const std::vector<int64_t> st = Strides(in_shape);
  const std::vector<int64_t>& last = maps[r - 1];
  const int64_t n_out = out_shape[r - 1], n_in = in_shape[r - 1];
  // Positions [lo, hi) of the last output dim copy the input row contiguously.
  const int64_t lo = std::clamp<int64_t>(begin_last, 0, n_out);
  const int64_t hi = std::clamp<int64_t>(begin_last + n_in, lo, n_out);
  std::vector<int64_t> idx(r - 1, 0);
  while (true) {
    int64_t off = 0;
    bool constant_row = false;
    for (size_t d = 0; d + 1 < r; ++d) {
      const int64_t m = maps[d][static_cast<size_t>(idx[d])];
      if (m < 0) constant_row = true;
      off += m * st[d];
    }
    if (constant_row) {
      std::fill(out, out + n_out, value);
    } else {
      const T* src = in + off;
      for (int64_t j = 0; j < lo; ++j) {
        const int64_t m = last[static_cast<size_t>(j)];
        out[j] = m < 0 ? value : src[m];
      }
      if (hi > lo) std::memcpy(out + lo, src + (lo - begin_last), sizeof(T) * (hi - lo));
      for (int64_t j = hi; j < n_out; ++j) {
        const int64_t m = last[static_cast<size_t>(j)];
        out[j] = m < 0 ? value : src[m];
      }
    }
    out += n_out;
    size_t d = r - 1;
    while (d-- > 0) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) return;
  }
}

Status ReadPads(KernelContext& ctx, int rank, std::vector<int64_t>* begin,
                std::vector<int64_t>* end) {
  std::vector<int64_t> pads;
  if (ctx.opset() < 11) {
    pads = ctx.node().attr_ints(ctx.opset() < 2 ? "paddings" : "pads");
  } else {
    if (!ctx.has_input(1)) return ctx.Error("missing 'pads' input");
    PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(1), "pads", &pads));
  }
  std::vector<int> axes;
  if (ctx.opset() >= 18 && ctx.has_input(3)) {
    std::vector<int64_t> raw;
    PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(3), "axes", &raw));
    PX_ASSIGN_OR_RETURN(axes, NormalizeAxes(ctx, raw, rank));
  } else {
    for (int i = 0; i < rank; ++i) axes.push_back(i);
  }
  if (pads.size() != 2 * axes.size())
    return ctx.Error("pads " + ShapeToString(pads) + " must have 2*" + std::to_string(axes.size()) +
                     " values");
  begin->assign(static_cast<size_t>(rank), 0);
  end->assign(static_cast<size_t>(rank), 0);
  for (size_t k = 0; k < axes.size(); ++k) {
    (*begin)[static_cast<size_t>(axes[k])] = pads[k];
    (*end)[static_cast<size_t>(axes[k])] = pads[k + axes.size()];
  }
  return Status::Ok();
}

Status Pad(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  const int r = x.rank();
  const std::string mode = ctx.node().attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    return ctx.Error("unknown mode '" + mode + "'");
  std::vector<int64_t> begin, end;
  PX_RETURN_IF_ERROR(ReadPads(ctx, r, &begin, &end));
  uint64_t bits = 0;
  if (ctx.opset() < 11) {
    PX_RETURN_IF_ERROR(ValueBits(x.dtype(), ctx.node().attr_float("value", 0.f), &bits));
  } else if (ctx.has_input(2) && ctx.input(2).numel() > 0) {
    const Tensor& c = ctx.input(2);
    if (c.dtype() != x.dtype())
      return ctx.Error("constant_value dtype " + std::string(DTypeName(c.dtype())) +
                       " differs from data dtype " + std::string(DTypeName(x.dtype())));
    std::memcpy(&bits, c.raw_data(), DTypeSize(c.dtype()));
  }
  Shape out_shape(static_cast<size_t>(r));
  for (int d = 0; d < r; ++d) {
    const size_t u = static_cast<size_t>(d);
    const int64_t limit = int64_t{1} << 56;
    if (begin[u] > limit || begin[u] < -limit || end[u] > limit || end[u] < -limit)
      return ctx.Error("pads on axis " + std::to_string(d) + " are too large");
    out_shape[u] = x.dim(d) + begin[u] + end[u];
    if (out_shape[u] < 0)
      return ctx.Error("pads make axis " + std::to_string(d) + " of size " +
                       std::to_string(x.dim(d)) + " negative");
  }
  PX_RETURN_IF_ERROR(CheckOutputSize(ctx, out_shape));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), out_shape));
  if (out->numel() == 0) return Status::Ok();
  std::vector<std::vector<int64_t>> maps(static_cast<size_t>(r));
  for (int d = 0; d < r; ++d) {
    const size_t u = static_cast<size_t>(d);
    PX_RETURN_IF_ERROR(PadMap(ctx, mode, x.dim(d), begin[u], out_shape[u], &maps[u]));
  }
  if (r == 0) {
    std::memcpy(out->raw_data(), x.raw_data(), x.nbytes());
    return Status::Ok();
  }
  return DispatchBySize(x.dtype(), [&]<typename T>() -> Status {
    T value;
    std::memcpy(&value, &bits, sizeof(T));
    PadRows<T>(x.data<T>(), out->data<T>(), value, x.shape(), out_shape, maps,
               begin[static_cast<size_t>(r - 1)]);
    return Status::Ok();
  });
}

// ---- Tile / Expand ----

Status Tile(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  const int r = x.rank();
  std::vector<int64_t> repeats;
  if (!ctx.has_input(1)) return ctx.Error("missing 'repeats' input");
  if (ctx.opset() < 6) {  // Tile-1: scalar `tiles` and `axis` inputs.
    if (!ctx.has_input(2)) return ctx.Error("missing 'axis' input");
    int64_t tiles = 0, axis = 0;
    PX_RETURN_IF_ERROR(ReadScalarInt(ctx, 1, "tiles", &tiles));
    PX_RETURN_IF_ERROR(ReadScalarInt(ctx, 2, "axis", &axis));
    auto a = NormalizeAxis(axis, r);
    if (!a.ok()) return ctx.Error(a.status().message());
    repeats.assign(static_cast<size_t>(r), 1);
    repeats[static_cast<size_t>(*a)] = tiles;
  } else {
    PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(1), "repeats", &repeats));
  }
  if (static_cast<int>(repeats.size()) != r)
    return ctx.Error("repeats " + ShapeToString(repeats) + " must have one value per input dim " +
                     ShapeToString(x.shape()));
  Shape out_shape(static_cast<size_t>(r)), view;
  std::vector<int64_t> strides;
  const std::vector<int64_t> st = Strides(x.shape());
  for (int d = 0; d < r; ++d) {
    const int64_t rep = repeats[static_cast<size_t>(d)];
    if (rep < 0) return ctx.Error("negative repeat " + std::to_string(rep));
    if (x.dim(d) > 0 && rep > (int64_t{1} << 56) / x.dim(d))
      return ctx.Error("repeat " + std::to_string(rep) + " is too large");
    out_shape[static_cast<size_t>(d)] = rep * x.dim(d);
    view.push_back(rep);
    view.push_back(x.dim(d));
    strides.push_back(0);
    strides.push_back(st[static_cast<size_t>(d)]);
  }
  PX_RETURN_IF_ERROR(CheckOutputSize(ctx, out_shape));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), out_shape));
  if (out->numel() == 0) return Status::Ok();
  StridedCopy(x.raw_data(), out->raw_data(), DTypeSize(x.dtype()), view, strides, ctx.intra_op());
  return Status::Ok();
}

Status Expand(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (!ctx.has_input(1)) return ctx.Error("missing 'shape' input");
  std::vector<int64_t> shape;
  PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(1), "shape", &shape));
  for (int64_t d : shape)
    if (d < 0) return ctx.Error("negative dimension in shape " + ShapeToString(shape));
  auto out_shape = BroadcastShapes(x.shape(), shape);
  if (!out_shape.ok()) return ctx.Error(out_shape.status().message());
  PX_RETURN_IF_ERROR(CheckOutputSize(ctx, *out_shape));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), *out_shape));
  if (out->numel() == 0) return Status::Ok();
  StridedCopy(x.raw_data(), out->raw_data(), DTypeSize(x.dtype()), *out_shape,
              BroadcastStrides(x.shape(), *out_shape), ctx.intra_op());
  return Status::Ok();
}

// ---- Trilu ----

Status Trilu(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (x.rank() < 2) return ctx.Error("input must have rank >= 2, got " + ShapeToString(x.shape()));
  int64_t k = 0;
  if (ctx.has_input(1)) PX_RETURN_IF_ERROR(ReadScalarInt(ctx, 1, "k", &k));
  const bool upper = ctx.node().attr_int("upper", 1) != 0;
  const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
  k = std::clamp<int64_t>(k, -rows - 1, cols + 1);
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), x.shape()));
  if (x.numel() == 0) return Status::Ok();
  const int64_t mats = x.numel() / (rows * cols);
  return DispatchBySize(x.dtype(), [&]<typename T>() -> Status {
    const T* in = x.data<T>();
    T* o = out->data<T>();
    for (int64_t m = 0; m < mats; ++m) {
      for (int64_t i = 0; i < rows; ++i, in += cols, o += cols) {
        // upper keeps j >= i + k; lower keeps j <= i + k.
        const int64_t cut = std::clamp<int64_t>(upper ? i + k : i + k + 1, 0, cols);
        const size_t c = static_cast<size_t>(cut), w = static_cast<size_t>(cols);
        const size_t keep_lo = upper ? c : 0, keep_hi = upper ? w : c;
        const size_t zero_lo = upper ? 0 : c, zero_hi = upper ? c : w;
        std::memset(o + zero_lo, 0, sizeof(T) * (zero_hi - zero_lo));
        std::memcpy(o + keep_lo, in + keep_lo, sizeof(T) * (keep_hi - keep_lo));
      }
    }
    return Status::Ok();
  });
}

// ---- DepthToSpace / SpaceToDepth ----

Status BlockRearrange(KernelContext& ctx, bool to_space) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (x.rank() != 4) return ctx.Error("input must be 4-D NCHW, got " + ShapeToString(x.shape()));
  const int64_t bs = ctx.node().attr_int("blocksize", 0);
  if (bs <= 0) return ctx.Error("'blocksize' must be positive, got " + std::to_string(bs));
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  Shape view, out_shape;
  std::vector<int> perm;
  if (to_space) {
    if (c % (bs * bs) != 0)
      return ctx.Error("channels " + std::to_string(c) + " not divisible by blocksize^2 " +
                       std::to_string(bs * bs));
    const int64_t c2 = c / (bs * bs);
    const std::string mode = ctx.node().attr_string("mode", "DCR");
    if (mode == "DCR") {
      view = {n, bs, bs, c2, h, w};
      perm = {0, 3, 4, 1, 5, 2};
    } else if (mode == "CRD") {
      view = {n, c2, bs, bs, h, w};
      perm = {0, 1, 4, 2, 5, 3};
    } else {
      return ctx.Error("unknown mode '" + mode + "'");
    }
    out_shape = {n, c2, h * bs, w * bs};
  } else {
    if (h % bs != 0 || w % bs != 0)
      return ctx.Error("spatial dims " + ShapeToString(x.shape()) + " not divisible by blocksize " +
                       std::to_string(bs));
    view = {n, c, h / bs, bs, w / bs, bs};
    perm = {0, 3, 5, 1, 2, 4};
    out_shape = {n, c * bs * bs, h / bs, w / bs};
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), out_shape));
  if (x.numel() == 0) return Status::Ok();
  TransposeCopy(x.raw_data(), out->raw_data(), DTypeSize(x.dtype()), view, perm, ctx.intra_op());
  return Status::Ok();
}

Status DepthToSpace(KernelContext& ctx) { return BlockRearrange(ctx, true); }
Status SpaceToDepth(KernelContext& ctx) { return BlockRearrange(ctx, false); }

// ---- Generators ----

Status ConstantOfShape(KernelContext& ctx) {
  std::vector<int64_t> shape;
  PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(0), "shape", &shape));
  for (int64_t d : shape)
    if (d < 0) return ctx.Error("negative dimension in shape " + ShapeToString(shape));
  PX_RETURN_IF_ERROR(CheckOutputSize(ctx, shape));
  DType dtype = DType::kFloat32;
  uint64_t bits = 0;
  const Attribute* value = ctx.node().attr("value");
  if (value != nullptr) {
    if (value->kind != Attribute::Kind::kTensor || value->t.numel() != 1 ||
        DTypeSize(value->t.dtype()) == 0)
      return ctx.Error("'value' must be a one-element tensor");
    dtype = value->t.dtype();
    std::memcpy(&bits, value->t.raw_data(), DTypeSize(dtype));
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dtype, shape));
  return DispatchBySize(dtype, [&]<typename T>() -> Status {
    T v;
    std::memcpy(&v, &bits, sizeof(T));
    std::fill(out->data<T>(), out->data<T>() + out->numel(), v);
    return Status::Ok();
  });
}

Status Range(KernelContext& ctx) {
  const Tensor& start = ctx.input(0);
  if (!ctx.has_input(1) || !ctx.has_input(2)) return ctx.Error("needs start, limit and delta");
  const Tensor& limit = ctx.input(1);
  const Tensor& delta = ctx.input(2);
  if (limit.dtype() != start.dtype() || delta.dtype() != start.dtype())
    return ctx.Error("start, limit and delta must have the same dtype");
  if (start.numel() != 1 || limit.numel() != 1 || delta.numel() != 1)
    return ctx.Error("start, limit and delta must be scalars");
  return DispatchNumeric(start.dtype(), [&]<typename T>() -> Status {
    const T s = start.data<T>()[0], l = limit.data<T>()[0], d = delta.data<T>()[0];
    if (d == T(0)) return ctx.Error("delta is 0");
    int64_t n = 0;
    if constexpr (std::is_floating_point_v<T>) {
      const double c =
          std::ceil((static_cast<double>(l) - static_cast<double>(s)) / static_cast<double>(d));
      if (!(c < 9e18)) return ctx.Error("range is too long");
      n = c > 0 ? static_cast<int64_t>(c) : 0;
    } else {
      const long double c = std::ceil((static_cast<long double>(l) - static_cast<long double>(s)) /
                                      static_cast<long double>(d));
      n = c > 0 ? static_cast<int64_t>(c) : 0;
    }
    PX_RETURN_IF_ERROR(CheckOutputSize(ctx, {n}));
    PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, start.dtype(), {n}));
    T* o = out->data<T>();
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(s + static_cast<T>(i) * d);
    return Status::Ok();
  });
}

Status EyeLike(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) return ctx.Error("input must be 2-D, got " + ShapeToString(x.shape()));
  DType dtype = x.dtype();
  if (ctx.node().has_attr("dtype")) dtype = static_cast<DType>(ctx.node().attr_int("dtype", 1));
  if (!IsSupportedDType(dtype))
    return ctx.Error("unsupported output dtype " + std::to_string(static_cast<int>(dtype)));
  const int64_t rows = x.dim(0), cols = x.dim(1);
  const int64_t k = std::clamp<int64_t>(ctx.node().attr_int("k", 0), -rows, cols);
  uint64_t one = 0;
  PX_RETURN_IF_ERROR(ValueBits(dtype, 1.0, &one));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dtype, x.shape()));
  return DispatchBySize(dtype, [&]<typename T>() -> Status {
    T v;
    std::memcpy(&v, &one, sizeof(T));
    T* o = out->data<T>();
    std::fill(o, o + out->numel(), T{});
    for (int64_t i = std::max<int64_t>(0, -k); i < rows; ++i) {
      if (i + k >= cols) break;
      o[i * cols + i + k] = v;
    }
    return Status::Ok();
  });
}

}  // namespace

void RegisterShapeExtraOps(OpRegistry& r) {
  r.Register("Slice", Slice);
  r.Register("Pad", Pad);
  r.Register("Tile", Tile);
  r.Register("Expand", Expand);
  r.Register("Trilu", Trilu);
  r.Register("DepthToSpace", DepthToSpace);
  r.Register("SpaceToDepth", SpaceToDepth);
  r.Register("ConstantOfShape", ConstantOfShape);
  r.Register("Range", Range);
  r.Register("EyeLike", EyeLike);
}

}  // namespace parallax
