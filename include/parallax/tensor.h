// Tensor: a typed, shaped, contiguous (row-major) block of elements.
//
// A Tensor either owns its bytes (Tensor::Empty / Tensor::Copy) or views bytes
// owned elsewhere (Tensor::View: the caller keeps them alive). Copies of a
// Tensor share the same bytes. Not thread-safe for concurrent writes.
#ifndef PARALLAX_TENSOR_H_
#define PARALLAX_TENSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parallax/dtype.h"

namespace parallax {

using Shape = std::vector<int64_t>;

// Product of dims; 1 for a scalar (empty shape).
int64_t NumElements(const Shape& shape);
// "[1,3,224,224]".
std::string ShapeToString(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // Allocates zero-initialised, 64-byte-aligned storage.
  static Tensor Empty(DType dtype, Shape shape);
  // Allocates 64-byte-aligned storage with unspecified contents.
  static Tensor Uninitialized(DType dtype, Shape shape);
  // Views `data` without owning it; `data` must outlive every copy.
  static Tensor View(DType dtype, Shape shape, void* data);
  // Deep copy into freshly owned storage.
  static Tensor Copy(const Tensor& other);
  // A float32/int64/... scalar or 1-D tensor built from values.
  template <typename T>
  static Tensor FromVector(DType dtype, Shape shape, const std::vector<T>& v);
  // An ONNX sequence value holding `elements` (all of `element_dtype`).
  static Tensor Sequence(DType element_dtype, std::vector<Tensor> elements);
  // An ONNX optional value without an element.
  static Tensor None();

  bool defined() const { return dtype_ != DType::kUndefined; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[static_cast<size_t>(i)]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return NumElements(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }

  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }
  template <typename T>
  T* data() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }

  bool is_sequence() const { return dtype_ == DType::kSequence; }
  bool is_none() const { return dtype_ == DType::kOptional; }
  // REQUIRES: is_sequence().
  const std::vector<Tensor>& elements() const { return *elements_; }
  DType element_dtype() const { return element_dtype_; }

  // True when this tensor does not own (share ownership of) its bytes.
  bool is_view() const { return owner_ == nullptr; }
  // This tensor when it owns (shares ownership of) its bytes, else a deep
  // copy: the result stays valid however long the viewed memory lives.
  Tensor Detached() const { return is_view() ? Copy(*this) : *this; }
  // Same bytes, new shape with the same element count (caller checks).
  Tensor Reshaped(Shape shape) const;
  // Same bytes read as another dtype of the same size (caller checks).
  Tensor Reinterpreted(DType dtype) const;

 private:
  DType dtype_ = DType::kUndefined;
  Shape shape_;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;                          // Null for views.
  std::shared_ptr<const std::vector<Tensor>> elements_;  // Sequences only.
  DType element_dtype_ = DType::kUndefined;
};

template <typename T>
Tensor Tensor::FromVector(DType dtype, Shape shape, const std::vector<T>& v) {
  Tensor t = Empty(dtype, std::move(shape));
  T* p = t.data<T>();
  for (size_t i = 0; i < v.size() && static_cast<int64_t>(i) < t.numel(); ++i) p[i] = v[i];
  return t;
}

}  // namespace parallax

#endif  // PARALLAX_TENSOR_H_
