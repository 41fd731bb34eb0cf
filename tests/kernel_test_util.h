// Test helpers for running single kernels without a model: an allocator that
// hands out owned tensors and attribute constructors.
#ifndef PARALLAX_TESTS_KERNEL_TEST_UTIL_H_
#define PARALLAX_TESTS_KERNEL_TEST_UTIL_H_

#include <string>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "ops/kernel.h"

namespace parallax::testing {

class OwnedAllocator : public OutputAllocator {
 public:
  Result<Tensor> Allocate(int, DType dtype, const Shape& shape) override {
    return Tensor::Uninitialized(dtype, shape);
  }
};

inline Attribute IntAttr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}

inline Attribute FloatAttr(float v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = v;
  return a;
}

inline Attribute StrAttr(std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(v);
  return a;
}

inline Attribute IntsAttr(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}

inline Attribute FloatsAttr(std::vector<float> v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloats;
  a.floats = std::move(v);
  return a;
}

}  // namespace parallax::testing

#endif  // PARALLAX_TESTS_KERNEL_TEST_UTIL_H_
