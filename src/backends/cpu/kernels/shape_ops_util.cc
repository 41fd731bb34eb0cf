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

template <typename T>
void StridedCopyT(const T* in, T* out, const std::vector<int64_t>& dims,
                  const std::vector<int64_t>& st) {
  const size_t n = dims.size();
  if (n == 0) {
    out[0] = in[0];
    return;
  }
  const int64_t inner = dims[n - 1];
  const int64_t is = st[n - 1];
  std::vector<int64_t> idx(n - 1, 0);
  int64_t off = 0;
  while (true) {
    const T* src = in + off;
    if (is == 1) {
      std::memcpy(out, src, static_cast<size_t>(inner) * sizeof(T));
    } else if (is == 0) {
      std::fill(out, out + inner, *src);
    } else {
      for (int64_t j = 0; j < inner; ++j) out[j] = src[j * is];
    }
    out += inner;
    size_t d = n - 1;
    while (d-- > 0) {
      off += st[d];
      if (++idx[d] < dims[d]) break;
      off -= st[d] * dims[d];
      idx[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) return;
  }
}

// Transpose core: the output dim `j` has input stride 1 and the last output
// dim has a larger stride; copies 32x32 tiles of (j, last) so both the reads
// and the writes stay within a few cache lines.
template <typename T>
void BlockedTransposeT(const T* in, T* out, const std::vector<int64_t>& dims,
                       const std::vector<int64_t>& st, size_t j) {
  constexpr int64_t kBlock = 32;
  const size_t n = dims.size();
  const std::vector<int64_t> ost = Strides(dims);
  std::vector<size_t> outer;
  for (size_t d = 0; d + 1 < n; ++d)
    if (d != j) outer.push_back(d);
  const int64_t a_dim = dims[j], b_dim = dims[n - 1];
  const int64_t a_ostride = ost[j], b_istride = st[n - 1];
  std::vector<int64_t> idx(outer.size(), 0);
  int64_t in_off = 0, out_off = 0;
  while (true) {
    for (int64_t a0 = 0; a0 < a_dim; a0 += kBlock) {
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
    size_t k = outer.size();
    while (k-- > 0) {
      const size_t d = outer[k];
      in_off += st[d];
      out_off += ost[d];
      if (++idx[k] < dims[d]) break;
      in_off -= st[d] * dims[d];
      out_off -= ost[d] * dims[d];
      idx[k] = 0;
    }
    if (k == static_cast<size_t>(-1)) return;
  }
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
                 const std::vector<int64_t>& in_strides) {
  std::vector<int64_t> dims, st;
  if (!Coalesce(out_shape, in_strides, &dims, &st)) return;
  BySize(elem_size, [&]<typename T>() {
    StridedCopyT(static_cast<const T*>(in), static_cast<T*>(out), dims, st);
  });
}

void TransposeCopy(const void* in, void* out, size_t elem_size, const Shape& in_shape,
                   const std::vector<int>& perm) {
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
      StridedCopyT(static_cast<const T*>(in), static_cast<T*>(out), dims, st);
    });
    return;
  }
  BySize(elem_size, [&]<typename T>() {
    BlockedTransposeT(static_cast<const T*>(in), static_cast<T*>(out), dims, st, unit);
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
