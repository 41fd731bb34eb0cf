#include "backends/cpu/kernels/shape_ops_util.h"

#include <algorithm>
#include <cstring>

#include "ops/shape_util.h"

namespace parallax {
namespace {

// Drops size-1 dims and merges dims that are contiguous in the input
// (outer stride == inner stride * inner size). Returns false for empty output.
bool Coalesce(const Shape& shape, const std::vector<int64_t>& strides, std::vector<int64_t>* dims,
              std::vector<int64_t>* st) {
  dims->clear();
  st->clear();
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return false;
    if (shape[d] == 1) continue;
    if (!dims->empty() && st->back() == strides[d] * shape[d]) {
      dims->back() *= shape[d];
      st->back() = strides[d];
    } else {
      dims->push_back(shape[d]);
      st->push_back(strides[d]);
    }
  }
  return true;
}

// Bytes per parallel task of the copy kernels, so a task outlasts waking a
// worker (copies run at several GB/s).
constexpr int64_t kMinTaskBytes = 512 * 1024;

// Input offset of the first element of row `row` of coalesced dims (the rows
// are dims[0..n-1) in row-major order); fills idx with its index.
int64_t RowOffset(int64_t row, const std::vector<int64_t>& dims, const std::vector<int64_t>& st,
                  size_t n, std::vector<int64_t>* idx) {
  int64_t off = 0;
  for (size_t d = n; d-- > 0;) {
    (*idx)[d] = row % dims[d];
    row /= dims[d];
    off += (*idx)[d] * st[d];
  }
  return off;
}

// Copies rows [r0, r1) of the last coalesced dim (out advances row by row).
template <typename T>
void StridedRowsT(const T* in, T* out, const std::vector<int64_t>& dims,
                  const std::vector<int64_t>& st, int64_t r0, int64_t r1) {
  const size_t n = dims.size();
  const int64_t inner = dims[n - 1];
  const int64_t is = st[n - 1];
  std::vector<int64_t> idx(n - 1, 0);
  int64_t off = RowOffset(r0, dims, st, n - 1, &idx);
  out += r0 * inner;
  for (int64_t r = r0; r < r1; ++r) {
    const T* src = in + off;
    if (is == 1) {
      std::memcpy(out, src, static_cast<size_t>(inner) * sizeof(T));
    } else if (is == 0) {
      std::fill(out, out + inner, *src);
    } else {
      for (int64_t j = 0; j < inner; ++j) out[j] = src[j * is];
    }
    out += inner;
    for (size_t d = n - 1; d-- > 0;) {
      off += st[d];
      if (++idx[d] < dims[d]) break;
      off -= st[d] * dims[d];
      idx[d] = 0;
    }
  }
}

template <typename T>
void StridedCopyT(const T* in, T* out, const std::vector<int64_t>& dims,
                  const std::vector<int64_t>& st, const IntraOp& par) {
  const size_t n = dims.size();
  if (n == 0) {
    out[0] = in[0];
    return;
  }
  const int64_t rows = NumElements(Shape(dims.begin(), dims.end() - 1));
  const int64_t row_bytes = dims[n - 1] * static_cast<int64_t>(sizeof(T));
  par.ParallelRanges(rows, std::max<int64_t>(1, kMinTaskBytes / row_bytes),
                     [&](int64_t r0, int64_t r1) { StridedRowsT(in, out, dims, st, r0, r1); });
}

// Transpose core: the output dim `j` has input stride 1 and the last output
// dim has a larger stride; copies 32x32 tiles of (j, last) so both the reads
// and the writes stay within a few cache lines. A task is a strip of 32
// values of dim j (all of the last dim) for one index of the other dims.
template <typename T>
void BlockedTransposeT(const T* in, T* out, const std::vector<int64_t>& dims,
                       const std::vector<int64_t>& st, size_t j, const IntraOp& par) {
  constexpr int64_t kBlock = 32;
  const size_t n = dims.size();
  const std::vector<int64_t> ost = Strides(dims);
  std::vector<int64_t> odims, ist, osts;  // The other dims, outermost first.
  for (size_t d = 0; d + 1 < n; ++d) {
    if (d == j) continue;
    odims.push_back(dims[d]);
    ist.push_back(st[d]);
    osts.push_back(ost[d]);
  }
  const int64_t a_dim = dims[j], b_dim = dims[n - 1];
  const int64_t a_ostride = ost[j], b_istride = st[n - 1];
  const int64_t strips = (a_dim + kBlock - 1) / kBlock;
  const int64_t tasks = NumElements(Shape(odims.begin(), odims.end())) * strips;
  const int64_t task_bytes = kBlock * b_dim * static_cast<int64_t>(sizeof(T));
  par.ParallelRanges(
      tasks, std::max<int64_t>(1, kMinTaskBytes / task_bytes), [&](int64_t t0, int64_t t1) {
        std::vector<int64_t> idx(odims.size());
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t in_off = RowOffset(t / strips, odims, ist, odims.size(), &idx);
          const int64_t out_off = RowOffset(t / strips, odims, osts, odims.size(), &idx);
          const int64_t a0 = t % strips * kBlock;
          const int64_t a1 = std::min(a_dim, a0 + kBlock);
          for (int64_t b0 = 0; b0 < b_dim; b0 += kBlock) {
            const int64_t b1 = std::min(b_dim, b0 + kBlock);
            for (int64_t a = a0; a < a1; ++a) {
              T* o = out + out_off + a * a_ostride;
              const T* s = in + in_off + a;
              for (int64_t b = b0; b < b1; ++b) o[b] = s[b * b_istride];
            }
          }
        }
      });
}

template <typename F>
void BySize(size_t elem_size, F&& f) {
  switch (elem_size) {
    case 1:
      f.template operator()<uint8_t>();
      break;
    case 2:
      f.template operator()<uint16_t>();
      break;
    case 4:
      f.template operator()<uint32_t>();
      break;
    case 8:
      f.template operator()<uint64_t>();
      break;
    default:
      break;
  }
}

}  // namespace

void StridedCopy(const void* in, void* out, size_t elem_size, const Shape& out_shape,
                 const std::vector<int64_t>& in_strides, const IntraOp& par) {
  std::vector<int64_t> dims, st;
  if (!Coalesce(out_shape, in_strides, &dims, &st)) return;
  BySize(elem_size, [&]<typename T>() {
    StridedCopyT(static_cast<const T*>(in), static_cast<T*>(out), dims, st, par);
  });
}

void TransposeCopy(const void* in, void* out, size_t elem_size, const Shape& in_shape,
                   const std::vector<int>& perm, const IntraOp& par) {
  const std::vector<int64_t> in_strides = Strides(in_shape);
  Shape out_shape(perm.size());
  std::vector<int64_t> strides(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) {
    out_shape[k] = in_shape[static_cast<size_t>(perm[k])];
    strides[k] = in_strides[static_cast<size_t>(perm[k])];
  }
  std::vector<int64_t> dims, st;
  if (!Coalesce(out_shape, strides, &dims, &st)) return;
  size_t unit = dims.size();
  for (size_t d = 0; d < dims.size(); ++d)
    if (st[d] == 1) unit = d;
  if (dims.size() < 2 || unit >= dims.size() - 1) {  // Contiguous rows: plain copy.
    BySize(elem_size, [&]<typename T>() {
      StridedCopyT(static_cast<const T*>(in), static_cast<T*>(out), dims, st, par);
    });
    return;
  }
  BySize(elem_size, [&]<typename T>() {
    BlockedTransposeT(static_cast<const T*>(in), static_cast<T*>(out), dims, st, unit, par);
  });
}

Status CheckOutputSize(const KernelContext& ctx, const Shape& shape) {
  constexpr int64_t kMaxElements = int64_t{1} << 56;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return ctx.Error("negative output dimension in " + ShapeToString(shape));
    if (d == 0) return Status::Ok();
  }
  for (int64_t d : shape) {
    if (d > kMaxElements / n)
      return ctx.Error("output shape " + ShapeToString(shape) + " is too large");
    n *= d;
  }
  return Status::Ok();
}

Status ReadIndices(const KernelContext& ctx, const Tensor& t, const char* what,
                   std::vector<int64_t>* out) {
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return ctx.Error(std::string(what) + " must be int32 or int64, got " +
                     std::string(DTypeName(t.dtype())));
  auto r = ReadInt64s(t);
  if (!r.ok()) return ctx.Error(std::string(what) + ": " + r.status().message());
  *out = std::move(r).value();
  return Status::Ok();
}

Result<std::vector<int>> NormalizeAxes(const KernelContext& ctx, const std::vector<int64_t>& axes,
                                       int rank) {
  std::vector<int> out;
  std::vector<bool> seen(static_cast<size_t>(std::max(rank, 0)), false);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      return ctx.Error("axis " + std::to_string(a) + " is out of range for rank " +
                       std::to_string(rank));
    const int n = static_cast<int>(a < 0 ? a + rank : a);
    if (seen[static_cast<size_t>(n)])
      return ctx.Error("axis " + std::to_string(a) + " is repeated");
    seen[static_cast<size_t>(n)] = true;
    out.push_back(n);
  }
  return out;
}

}  // namespace parallax
