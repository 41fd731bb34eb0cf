// Shape helpers shared by kernels: numpy broadcasting, axis normalisation,
// strides, and reading shape-like tensors (int64/int32) into vectors.
#ifndef PARALLAX_OPS_SHAPE_UTIL_H_
#define PARALLAX_OPS_SHAPE_UTIL_H_

#include <cstdint>
#include <vector>

#include "parallax/status.h"
#include "parallax/tensor.h"

namespace parallax {

// Numpy-style broadcast of two shapes; InvalidArgument when incompatible.
Result<Shape> BroadcastShapes(const Shape& a, const Shape& b);
// Row-major element strides.
std::vector<int64_t> Strides(const Shape& shape);
// Strides of `in` viewed as `out` (rank-aligned right, 0 on broadcast dims).
std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out);
// Maps axis in [-rank, rank) to [0, rank); InvalidArgument otherwise.
Result<int> NormalizeAxis(int64_t axis, int rank);
// Reads an int32/int64 tensor into int64 values.
Result<std::vector<int64_t>> ReadInt64s(const Tensor& t);
// Element i of any numeric (or bool, float16, bfloat16) tensor as double;
// 0 for non-numeric kinds.
double ElementAsDouble(const Tensor& t, int64_t i);
// Reads element 0 of a numeric tensor as double; InvalidArgument otherwise.
Result<double> ReadScalarAsDouble(const Tensor& t);

// Iterates an N-d index over `shape` in row-major order, tracking linear
// offsets into up to 3 operands with their own strides. Used by broadcasting
// kernels; inner loops should still run over the last dimension.
class StridedIndex {
 public:
  StridedIndex(const Shape& shape, std::vector<std::vector<int64_t>> strides);
  int64_t offset(size_t operand) const { return offsets_[operand]; }
  // Advances by one element; returns false after the last.
  bool Next();

 private:
  Shape shape_;
  std::vector<std::vector<int64_t>> strides_;
  std::vector<int64_t> index_;
  std::vector<int64_t> offsets_;
};

}  // namespace parallax

#endif  // PARALLAX_OPS_SHAPE_UTIL_H_
