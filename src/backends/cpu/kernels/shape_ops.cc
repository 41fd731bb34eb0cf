// Shape ops that only move bytes: Reshape, Flatten, Squeeze, Unsqueeze,
// Transpose, Concat, Split, Shape, Size. The rest of the family (Slice, Pad,
// Tile, Expand, ...) lives in shape_extra.cc.
#include <algorithm>
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "backends/cpu/kernels/shape_ops_util.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

Status CheckMovable(const KernelContext& ctx, const Tensor& t) {
  if (DTypeSize(t.dtype()) == 0)
    return ctx.Error("unsupported dtype " + std::string(DTypeName(t.dtype())));
  return Status::Ok();
}

// Output 0 = a copy of input 0 with a new shape of the same element count.
Status CopyWithShape(KernelContext& ctx, const Shape& shape) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  if (NumElements(shape) != x.numel())
    return ctx.Error("cannot reshape " + ShapeToString(x.shape()) + " (" +
                     std::to_string(x.numel()) + " elements) to " + ShapeToString(shape));
  if (ctx.ForwardInput(shape)) return Status::Ok();
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), shape));
  if (x.nbytes()) std::memcpy(out->raw_data(), x.raw_data(), x.nbytes());
  return Status::Ok();
}

Status Reshape(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> spec;
  if (ctx.opset() < 5) {
    if (!ctx.node().has_attr("shape")) return ctx.Error("missing 'shape' attribute");
    spec = ctx.node().attr_ints("shape");
  } else {
    if (!ctx.has_input(1)) return ctx.Error("missing 'shape' input");
    PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(1), "shape", &spec));
  }
  const bool allowzero = ctx.opset() >= 14 && ctx.node().attr_int("allowzero", 0) != 0;
  Shape out(spec.size());
  int infer = -1;
  bool has_zero = false;
  int64_t known = 1;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t v = spec[i];
    if (v == -1) {
      if (infer >= 0) return ctx.Error("shape " + ShapeToString(spec) + " has more than one -1");
      infer = static_cast<int>(i);
      continue;
    }
    if (v == 0 && !allowzero) {
      if (static_cast<int>(i) >= x.rank())
        return ctx.Error("shape " + ShapeToString(spec) + " copies dim " + std::to_string(i) +
                         " (0) but the input " + ShapeToString(x.shape()) + " has rank " +
                         std::to_string(x.rank()));
      v = x.dim(static_cast<int>(i));
    } else if (v < 0) {
      return ctx.Error("shape " + ShapeToString(spec) + " has invalid dimension " +
                       std::to_string(v));
    }
    if (spec[i] == 0) has_zero = true;
    if (v > 0 && known > std::numeric_limits<int64_t>::max() / v)
      return ctx.Error("shape " + ShapeToString(spec) + " is too large");
    out[i] = v;
    known *= v;
  }
  if (infer >= 0) {
    if (allowzero && has_zero)
      return ctx.Error("shape " + ShapeToString(spec) + " has both 0 and -1 with allowzero=1");
    if (known == 0 || x.numel() % known != 0)
      return ctx.Error("cannot infer the -1 dimension of " + ShapeToString(spec) +
                       " for an input of shape " + ShapeToString(x.shape()));
    out[static_cast<size_t>(infer)] = x.numel() / known;
  }
  return CopyWithShape(ctx, out);
}

Status Flatten(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int r = x.rank();
  int64_t axis = ctx.node().attr_int("axis", 1);
  if (axis < -r || axis > r)
    return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(r));
  if (axis < 0) axis += r;
  int64_t a = 1, b = 1;
  for (int i = 0; i < r; ++i) (i < axis ? a : b) *= x.dim(i);
  return CopyWithShape(ctx, {a, b});
}

// Axes from the attribute (opset < 13) or the optional input 1 (opset >= 13).
Status AxesAttrOrInput(KernelContext& ctx, int since_input_opset, bool* present,
                       std::vector<int64_t>* axes) {
  *present = false;
  if (ctx.opset() < since_input_opset) {
    if (ctx.node().has_attr("axes")) {
      *present = true;
      *axes = ctx.node().attr_ints("axes");
    }
  } else if (ctx.has_input(1)) {
    *present = true;
    PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(1), "axes", axes));
  }
  return Status::Ok();
}

Status Squeeze(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  bool present = false;
  std::vector<int64_t> axes;
  PX_RETURN_IF_ERROR(AxesAttrOrInput(ctx, 13, &present, &axes));
  std::vector<bool> drop(static_cast<size_t>(x.rank()), false);
  if (present && !axes.empty()) {
    PX_ASSIGN_OR_RETURN(std::vector<int> norm, NormalizeAxes(ctx, axes, x.rank()));
    for (int a : norm) {
      if (x.dim(a) != 1)
        return ctx.Error("cannot squeeze axis " + std::to_string(a) + " of size " +
                         std::to_string(x.dim(a)) + " in " + ShapeToString(x.shape()));
      drop[static_cast<size_t>(a)] = true;
    }
  } else {
    for (int i = 0; i < x.rank(); ++i) drop[static_cast<size_t>(i)] = x.dim(i) == 1;
  }
  Shape out;
  for (int i = 0; i < x.rank(); ++i)
    if (!drop[static_cast<size_t>(i)]) out.push_back(x.dim(i));
  return CopyWithShape(ctx, out);
}

Status Unsqueeze(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  bool present = false;
  std::vector<int64_t> axes;
  PX_RETURN_IF_ERROR(AxesAttrOrInput(ctx, 13, &present, &axes));
  if (!present) return ctx.Error("missing 'axes'");
  const int out_rank = x.rank() + static_cast<int>(axes.size());
  PX_ASSIGN_OR_RETURN(std::vector<int> norm, NormalizeAxes(ctx, axes, out_rank));
  std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
  for (int a : norm) inserted[static_cast<size_t>(a)] = true;
  Shape out(static_cast<size_t>(out_rank));
  int k = 0;
  for (int i = 0; i < out_rank; ++i)
    out[static_cast<size_t>(i)] = inserted[static_cast<size_t>(i)] ? 1 : x.dim(k++);
  return CopyWithShape(ctx, out);
}

// dst[c * R + r] = src[r * cols + c] for c in [c0, c1), r < R: interleaves R
// planes (an image's channels) with R known to the compiler.
template <int R>
void InterleavePlanes(const uint32_t* src, uint32_t* dst, int64_t cols, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c)
    for (int r = 0; r < R; ++r) dst[c * R + r] = src[r * cols + c];
}

// dst[c * rows + r] = src[r * cols + c] over r in [r0, r1), c in [c0, c1):
// 4 x 4 blocks through SSE registers on x86-64 (a plain copy of 32-bit
// patterns), scalar elsewhere and at the edges.
void TransposeTile(const uint32_t* src, uint32_t* dst, int64_t rows, int64_t cols, int64_t r0,
                   int64_t r1, int64_t c0, int64_t c1) {
  int64_t r4 = r0, c4 = c0;
#if defined(__SSE2__)
  c4 = c0 + (c1 - c0) / 4 * 4;
  r4 = r0 + (r1 - r0) / 4 * 4;
  for (int64_t r = r0; r < r4; r += 4) {
    for (int64_t c = c0; c < c4; c += 4) {
      __m128 v[4];
      for (int i = 0; i < 4; ++i)
        v[i] = _mm_castsi128_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + (r + i) * cols + c)));
      _MM_TRANSPOSE4_PS(v[0], v[1], v[2], v[3]);
      for (int i = 0; i < 4; ++i)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (c + i) * rows + r),
                         _mm_castps_si128(v[i]));
    }
    for (int64_t c = c4; c < c1; ++c)
      for (int64_t i = r; i < r + 4; ++i) dst[c * rows + i] = src[i * cols + c];
  }
#endif
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t r = r4; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
}

// Layout reorders NCHW <-> NHWC (perm [0,2,3,1] / [0,3,1,2]) of 4-byte
// elements: per batch item a 2-D transpose of a [rows, cols] matrix, in 32x32
// tiles, parallel over (batch, column tiles); to NHWC with at most 4 channels
// (an RGB image) by interleaving the planes directly. Returns false (nothing
// written) for any other perm or element size.
bool ChannelTranspose(const IntraOp& intra, const Tensor& x, const std::vector<int>& perm,
                      Tensor* out) {
  if (x.rank() != 4 || DTypeSize(x.dtype()) != 4) return false;
  const bool to_nhwc = perm == std::vector<int>{0, 2, 3, 1};
  if (!to_nhwc && perm != std::vector<int>{0, 3, 1, 2}) return false;
  const int64_t n = x.dim(0);
  const int64_t rows = to_nhwc ? x.dim(1) : x.dim(1) * x.dim(2);
  const int64_t cols = to_nhwc ? x.dim(2) * x.dim(3) : x.dim(3);
  constexpr int64_t kTile = 32;
  const int64_t col_tiles = (cols + kTile - 1) / kTile;
  const auto* in = static_cast<const uint32_t*>(x.raw_data());
  auto* o = static_cast<uint32_t*>(out->raw_data());
  if (to_nhwc && rows <= 4) {
    static constexpr void (*kInterleave[])(const uint32_t*, uint32_t*, int64_t, int64_t,
                                           int64_t) = {nullptr, InterleavePlanes<1>,
                                                       InterleavePlanes<2>, InterleavePlanes<3>,
                                                       InterleavePlanes<4>};
    intra.ParallelRanges(n * cols, int64_t{1} << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end;) {  // Whole or partial batch items.
        const int64_t b = i / cols, c0 = i % cols, c1 = std::min(cols, c0 + (end - i));
        kInterleave[rows](in + b * rows * cols, o + b * rows * cols, cols, c0, c1);
        i += c1 - c0;
      }
    });
    return true;
  }
  // Tasks are 32 x 32 tiles (batch item, row tile, column tile): a narrow
  // side (few channels) still splits over the threads along the other one.
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t tiles = n * row_tiles * col_tiles;
  const int64_t min_chunk = std::max<int64_t>(1, (int64_t{1} << 14) / (kTile * kTile));
  intra.ParallelRanges(tiles, min_chunk, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / (row_tiles * col_tiles), rc = t % (row_tiles * col_tiles);
      const int64_t r0 = rc / col_tiles * kTile, c0 = rc % col_tiles * kTile;
      const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      TransposeTile(in + b * rows * cols, o + b * rows * cols, rows, cols, r0, r1, c0, c1);
    }
  });
  return true;
}

Status Transpose(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  const int r = x.rank();
  std::vector<int> perm;
  if (ctx.node().has_attr("perm")) {
    std::vector<int64_t> p = ctx.node().attr_ints("perm");
    if (static_cast<int>(p.size()) != r)
      return ctx.Error("perm " + ShapeToString(p) + " does not match input rank " +
                       std::to_string(r));
    PX_ASSIGN_OR_RETURN(perm, NormalizeAxes(ctx, p, r));
  } else {
    for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  }
  Shape out_shape(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i)
    out_shape[static_cast<size_t>(i)] = x.dim(perm[static_cast<size_t>(i)]);
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), out_shape));
  if (x.numel() == 0) return Status::Ok();
  if (ChannelTranspose(ctx.intra_op(), x, perm, out)) return Status::Ok();
  TransposeCopy(x.raw_data(), out->raw_data(), DTypeSize(x.dtype()), x.shape(), perm,
                ctx.intra_op());
  return Status::Ok();
}

Status Concat(KernelContext& ctx) {
  if (ctx.num_inputs() < 1 || !ctx.has_input(0)) return ctx.Error("needs at least one input");
  const Tensor& first = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, first));
  const int r = first.rank();
  if (ctx.opset() >= 4 && !ctx.node().has_attr("axis")) return ctx.Error("missing 'axis'");
  auto axis_r = NormalizeAxis(ctx.node().attr_int("axis", 1), r);
  if (!axis_r.ok()) return ctx.Error(axis_r.status().message());
  const int axis = *axis_r;
  Shape out_shape = first.shape();
  out_shape[static_cast<size_t>(axis)] = 0;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return ctx.Error("input " + std::to_string(i) + " is missing");
    const Tensor& t = ctx.input(i);
    if (t.dtype() != first.dtype() || t.rank() != r)
      return ctx.Error("input " + std::to_string(i) + " (" + std::string(DTypeName(t.dtype())) +
                       ShapeToString(t.shape()) + ") does not match input 0 (" +
                       std::string(DTypeName(first.dtype())) + ShapeToString(first.shape()) + ")");
    for (int d = 0; d < r; ++d)
      if (d != axis && t.dim(d) != first.dim(d))
        return ctx.Error("input " + std::to_string(i) + " shape " + ShapeToString(t.shape()) +
                         " differs from input 0 shape " + ShapeToString(first.shape()) +
                         " outside axis " + std::to_string(axis));
    out_shape[static_cast<size_t>(axis)] += t.dim(axis);
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, first.dtype(), out_shape));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= out_shape[static_cast<size_t>(d)];
  for (int d = axis + 1; d < r; ++d) inner *= out_shape[static_cast<size_t>(d)];
  const size_t es = DTypeSize(first.dtype());
  const size_t row = static_cast<size_t>(out_shape[static_cast<size_t>(axis)] * inner) * es;
  char* dst = static_cast<char*>(out->raw_data());
  // Output rows in order, each gathered from every input (the output is
  // written once, front to back: a channels-last concat of an image is one
  // short segment per input per pixel), rows split over the intra-op threads.
  constexpr int64_t kMinTaskBytes = 64 * 1024;
  const int64_t min_rows = std::max<int64_t>(1, kMinTaskBytes / std::max<int64_t>(1, row));
  ctx.intra_op().ParallelRanges(outer, min_rows, [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      char* d = dst + static_cast<size_t>(o) * row;
      for (int i = 0; i < ctx.num_inputs(); ++i) {
        const Tensor& t = ctx.input(i);
        const size_t chunk = static_cast<size_t>(t.dim(axis) * inner) * es;
        if (chunk == 0) continue;
        std::memcpy(d, static_cast<const char*>(t.raw_data()) + static_cast<size_t>(o) * chunk,
                    chunk);
        d += chunk;
      }
    }
  });
  return Status::Ok();
}

// The split sizes from the attribute/input, or equal parts.
Status SplitSizes(KernelContext& ctx, int64_t dim, std::vector<int64_t>* split) {
  const int n = ctx.num_outputs();
  if (ctx.opset() >= 13) {
    if (ctx.has_input(1)) PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(1), "split", split));
  } else if (ctx.node().has_attr("split")) {
    *split = ctx.node().attr_ints("split");
  } else if (ctx.opset() < 2 && ctx.has_input(1)) {
    PX_RETURN_IF_ERROR(ReadIndices(ctx, ctx.input(1), "split", split));
  }
  if (!split->empty()) {
    if (ctx.opset() >= 18 && ctx.node().has_attr("num_outputs"))
      return ctx.Error("'split' and 'num_outputs' are both given");
  } else if (ctx.opset() >= 18 && ctx.node().has_attr("num_outputs")) {
    const int64_t num = ctx.node().attr_int("num_outputs", n);
    if (num != n || num < 1)
      return ctx.Error("num_outputs=" + std::to_string(num) + " but the node has " +
                       std::to_string(n) + " outputs");
    const int64_t chunk = (dim + num - 1) / num;
    const int64_t last = dim - chunk * (num - 1);
    if (last < 0)
      return ctx.Error("cannot split a dimension of size " + std::to_string(dim) + " into " +
                       std::to_string(num) + " chunks of " + std::to_string(chunk));
    split->assign(static_cast<size_t>(num), chunk);
    split->back() = last;
  } else {
    if (n < 1 || dim % n != 0)
      return ctx.Error("cannot split a dimension of size " + std::to_string(dim) + " into " +
                       std::to_string(n) + " equal parts");
    split->assign(static_cast<size_t>(n), dim / n);
  }
  int64_t sum = 0;
  for (int64_t s : *split) {
    if (s < 0) return ctx.Error("negative split size in " + ShapeToString(*split));
    sum += s;
  }
  if (static_cast<int>(split->size()) != n || sum != dim)
    return ctx.Error("split " + ShapeToString(*split) + " does not cover dimension of size " +
                     std::to_string(dim) + " with " + std::to_string(n) + " outputs");
  return Status::Ok();
}

Status Split(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  PX_RETURN_IF_ERROR(CheckMovable(ctx, x));
  auto axis_r = NormalizeAxis(ctx.node().attr_int("axis", 0), x.rank());
  if (!axis_r.ok() || x.rank() == 0)
    return ctx.Error("invalid axis for input rank " + std::to_string(x.rank()));
  const int axis = *axis_r;
  std::vector<int64_t> split;
  PX_RETURN_IF_ERROR(SplitSizes(ctx, x.dim(axis), &split));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  const size_t es = DTypeSize(x.dtype());
  const size_t row = static_cast<size_t>(x.dim(axis) * inner) * es;
  const char* src = static_cast<const char*>(x.raw_data());
  size_t col = 0;
  for (int i = 0; i < ctx.num_outputs(); ++i) {
    Shape shape = x.shape();
    shape[static_cast<size_t>(axis)] = split[static_cast<size_t>(i)];
    const size_t chunk = static_cast<size_t>(split[static_cast<size_t>(i)] * inner) * es;
    if (ctx.output_used(i)) {
      PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(i, x.dtype(), shape));
      char* dst = static_cast<char*>(out->raw_data());
      if (chunk != 0)
        for (int64_t o = 0; o < outer; ++o)
          std::memcpy(dst + static_cast<size_t>(o) * chunk,
                      src + static_cast<size_t>(o) * row + col, chunk);
    }
    col += chunk;
  }
  return Status::Ok();
}

Status ShapeOp(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = x.rank();
  int64_t start = 0, end = r;
  if (ctx.opset() >= 15) {
    start = ctx.node().attr_int("start", 0);
    end = ctx.node().attr_int("end", r);
  }
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  const int64_t n = std::max<int64_t>(0, end - start);
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, {n}));
  for (int64_t i = 0; i < n; ++i) out->data<int64_t>()[i] = x.dim(static_cast<int>(start + i));
  return Status::Ok();
}

Status Size(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt64, {}));
  out->data<int64_t>()[0] = ctx.input(0).numel();
  return Status::Ok();
}

}  // namespace

void RegisterShapeOps(OpRegistry& r) {
  r.Register("Reshape", Reshape);
  r.Register("Flatten", Flatten);
  r.Register("Squeeze", Squeeze);
  r.Register("Unsqueeze", Unsqueeze);
  r.Register("Transpose", Transpose);
  r.Register("Concat", Concat);
  r.Register("Split", Split);
  r.Register("Shape", ShapeOp);
  r.Register("Size", Size);
  RegisterShapeExtraOps(r);
}

}  // namespace parallax
