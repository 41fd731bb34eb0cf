// Helpers shared by the shape and indexing kernel files (shape_ops*.cc,
// indexing*.cc): byte-level strided copies and transposes, index checks, and
// the registration entry points of the files split off shape_ops.cc and
// indexing.cc.
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_SHAPE_OPS_UTIL_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_SHAPE_OPS_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ops/kernel.h"
#include "ops/registry.h"
#include "parallax/status.h"
#include "parallax/tensor.h"

namespace parallax {

// Registered from RegisterShapeOps / RegisterIndexingOps.
void RegisterShapeExtraOps(OpRegistry& r);  // shape_extra.cc
void RegisterSelectionOps(OpRegistry& r);   // indexing_select.cc

// out (contiguous, shape `out_shape`) <- in[base + sum(i_d * in_strides[d])].
// Strides are in elements and may be zero or negative; `in` points at the
// element for the all-zero index. Works for any element size. Large copies
// are split by output rows over `par`'s threads.
void StridedCopy(const void* in, void* out, size_t elem_size, const Shape& out_shape,
                 const std::vector<int64_t>& in_strides, const IntraOp& par = IntraOp{});

// out = transpose(in, perm): out dim k is in dim perm[k]. `perm` must be a
// valid permutation of [0, rank) (callers validate). Large copies are split
// over `par`'s threads.
void TransposeCopy(const void* in, void* out, size_t elem_size, const Shape& in_shape,
                   const std::vector<int>& perm, const IntraOp& par = IntraOp{});

// Maps a possibly negative index into [0, dim); false when out of range.
inline bool NormalizeIndex(int64_t& idx, int64_t dim) {
  if (idx < 0) idx += dim;
  return idx >= 0 && idx < dim;
}

inline std::string IndexRangeError(int64_t idx, int axis, int64_t dim) {
  return "index " + std::to_string(idx) + " is out of range for axis " + std::to_string(axis) +
         " of size " + std::to_string(dim) + " (valid: [" + std::to_string(-dim) + ", " +
         std::to_string(dim - 1) + "])";
}

// Fails unless every dim of `shape` is >= 0 and its element count (and byte
// size) fits comfortably in int64, so NumElements() cannot wrap around.
Status CheckOutputSize(const KernelContext& ctx, const Shape& shape);

// Reads an int32/int64 index tensor as int64 values into `out`.
Status ReadIndices(const KernelContext& ctx, const Tensor& t, const char* what,
                   std::vector<int64_t>* out);

// Normalises a list of axes against `rank`, rejecting duplicates.
Result<std::vector<int>> NormalizeAxes(const KernelContext& ctx, const std::vector<int64_t>& axes,
                                       int rank);

}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_SHAPE_OPS_UTIL_H_
