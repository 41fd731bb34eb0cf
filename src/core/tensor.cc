#include "parallax/tensor.h"

#include <cstdlib>
#include <cstring>

namespace parallax {

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kFloat32:
    case DType::kInt32:
    case DType::kUInt32:
      return 4;
    case DType::kUInt8:
    case DType::kInt8:
    case DType::kBool:
      return 1;
    case DType::kUInt16:
    case DType::kInt16:
    case DType::kFloat16:
      return 2;
    case DType::kInt64:
    case DType::kFloat64:
    case DType::kUInt64:
      return 8;
    case DType::kBFloat16:
      return 2;
    case DType::kString:
    case DType::kUndefined:
    case DType::kSequence:
    case DType::kOptional:
      return 0;
  }
  return 0;
}

std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kUndefined:
      return "undefined";
    case DType::kFloat32:
      return "float32";
    case DType::kUInt8:
      return "uint8";
    case DType::kInt8:
      return "int8";
    case DType::kUInt16:
      return "uint16";
    case DType::kInt16:
      return "int16";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
    case DType::kString:
      return "string";
    case DType::kBool:
      return "bool";
    case DType::kFloat16:
      return "float16";
    case DType::kFloat64:
      return "float64";
    case DType::kUInt32:
      return "uint32";
    case DType::kUInt64:
      return "uint64";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kSequence:
      return "sequence";
    case DType::kOptional:
      return "optional";
  }
  return "unknown";
}

bool IsSupportedDType(DType t) { return DTypeSize(t) != 0; }

bool IsFloatingDType(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kFloat64;
}

float BFloat16ToFloat(BFloat16 h) {
  uint32_t bits = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

BFloat16 FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  BFloat16 h;
  if ((x & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it a quiet NaN.
    h.bits = static_cast<uint16_t>((x >> 16) | 0x40u);
    return h;
  }
  x += 0x7fffu + ((x >> 16) & 1u);
  h.bits = static_cast<uint16_t>(x >> 16);
  return h;
}

float HalfToFloat(Half h) {
  uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1f;
  uint32_t mant = h.bits & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // Subnormal: normalise.
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

Half FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t abs = x & 0x7fffffffu;
  Half h;
  if (abs >= 0x7f800000u) {  // Inf or NaN.
    h.bits = static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
    return h;
  }
  if (abs >= 0x477ff000u) {  // Rounds to >= 65520: overflow to inf.
    h.bits = static_cast<uint16_t>(sign | 0x7c00u);
    return h;
  }
  if (abs < 0x38800000u) {  // Subnormal or zero in half.
    // Value = abs_float; half subnormal unit = 2^-24.
    float af;
    std::memcpy(&af, &abs, sizeof af);
    float scaled = af * 16777216.0f;  // 2^24
    // Round half to even via nearbyint semantics.
    uint32_t m = static_cast<uint32_t>(scaled);
    float frac = scaled - static_cast<float>(m);
    if (frac > 0.5f || (frac == 0.5f && (m & 1u))) ++m;
    h.bits = static_cast<uint16_t>(sign | m);
    return h;
  }
  uint32_t exp = ((abs >> 23) - 127 + 15);
  uint32_t mant = abs & 0x7fffffu;
  uint32_t half = (exp << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  h.bits = static_cast<uint16_t>(sign | half);
  return h;
}

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor Tensor::Empty(DType dtype, Shape shape) {
  Tensor t = Uninitialized(dtype, std::move(shape));
  if (t.data_ != nullptr) std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::Uninitialized(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  size_t bytes = t.nbytes();
  size_t alloc = (bytes + 63) / 64 * 64;
  if (alloc == 0) alloc = 64;
  void* p = std::aligned_alloc(64, alloc);
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = p;
  return t;
}

Tensor Tensor::Sequence(DType element_dtype, std::vector<Tensor> elements) {
  Tensor t;
  t.dtype_ = DType::kSequence;
  t.element_dtype_ = element_dtype;
  t.elements_ = std::make_shared<const std::vector<Tensor>>(std::move(elements));
  t.owner_ = std::const_pointer_cast<std::vector<Tensor>>(t.elements_);
  return t;
}

Tensor Tensor::None() {
  Tensor t;
  t.dtype_ = DType::kOptional;
  t.owner_ = std::make_shared<int>(0);
  return t;
}

Tensor Tensor::View(DType dtype, Shape shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

Tensor Tensor::Copy(const Tensor& other) {
  if (other.is_sequence() || other.is_none()) return other;  // Immutable values.
  Tensor t = Empty(other.dtype_, other.shape_);
  if (other.nbytes() > 0) std::memcpy(t.data_, other.data_, other.nbytes());
  return t;
}

Tensor Tensor::Reinterpreted(DType dtype) const {
  Tensor t = *this;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::Reshaped(Shape shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

}  // namespace parallax
