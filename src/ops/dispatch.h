// Dtype dispatch: call a templated lambda with the C++ type for a DType.
//
//   return DispatchNumeric(t.dtype(), [&]<typename T>() -> Status { ... });
//
// float16 is dispatched as `Half` only by DispatchAll; arithmetic kernels
// usually convert float16 to float32 at their edges instead.
#ifndef PARALLAX_OPS_DISPATCH_H_
#define PARALLAX_OPS_DISPATCH_H_

#include <cstdint>
#include <string>

#include "parallax/dtype.h"
#include "parallax/status.h"

namespace parallax {

template <typename T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
  static constexpr DType value = DType::kFloat32;
};
template <>
struct DTypeOf<double> {
  static constexpr DType value = DType::kFloat64;
};
template <>
struct DTypeOf<int8_t> {
  static constexpr DType value = DType::kInt8;
};
template <>
struct DTypeOf<uint8_t> {
  static constexpr DType value = DType::kUInt8;
};
template <>
struct DTypeOf<int16_t> {
  static constexpr DType value = DType::kInt16;
};
template <>
struct DTypeOf<uint16_t> {
  static constexpr DType value = DType::kUInt16;
};
template <>
struct DTypeOf<int32_t> {
  static constexpr DType value = DType::kInt32;
};
template <>
struct DTypeOf<uint32_t> {
  static constexpr DType value = DType::kUInt32;
};
template <>
struct DTypeOf<int64_t> {
  static constexpr DType value = DType::kInt64;
};
template <>
struct DTypeOf<uint64_t> {
  static constexpr DType value = DType::kUInt64;
};
template <>
struct DTypeOf<bool> {
  static constexpr DType value = DType::kBool;
};
template <>
struct DTypeOf<Half> {
  static constexpr DType value = DType::kFloat16;
};

inline Status UnsupportedDType(DType t, const char* what) {
  return Unsupported(std::string(what) + " does not support dtype " + std::string(DTypeName(t)));
}

// float32 / float64.
template <typename F>
Status DispatchFloat(DType t, F&& f) {
  switch (t) {
    case DType::kFloat32:
      return f.template operator()<float>();
    case DType::kFloat64:
      return f.template operator()<double>();
    default:
      return UnsupportedDType(t, "this op");
  }
}

// Signed/unsigned integers (not bool).
template <typename F>
Status DispatchInt(DType t, F&& f) {
  switch (t) {
    case DType::kInt8:
      return f.template operator()<int8_t>();
    case DType::kUInt8:
      return f.template operator()<uint8_t>();
    case DType::kInt16:
      return f.template operator()<int16_t>();
    case DType::kUInt16:
      return f.template operator()<uint16_t>();
    case DType::kInt32:
      return f.template operator()<int32_t>();
    case DType::kUInt32:
      return f.template operator()<uint32_t>();
    case DType::kInt64:
      return f.template operator()<int64_t>();
    case DType::kUInt64:
      return f.template operator()<uint64_t>();
    default:
      return UnsupportedDType(t, "this op");
  }
}

// Floats and integers (not bool, not float16).
template <typename F>
Status DispatchNumeric(DType t, F&& f) {
  if (t == DType::kFloat32 || t == DType::kFloat64) return DispatchFloat(t, f);
  return DispatchInt(t, f);
}

// Every storable type, including bool and Half (for data movement ops).
template <typename F>
Status DispatchAll(DType t, F&& f) {
  if (t == DType::kBool) return f.template operator()<bool>();
  if (t == DType::kFloat16) return f.template operator()<Half>();
  return DispatchNumeric(t, f);
}

// By element size only (for pure data movement: transpose, gather, concat).
template <typename F>
Status DispatchBySize(DType t, F&& f) {
  switch (DTypeSize(t)) {
    case 1:
      return f.template operator()<uint8_t>();
    case 2:
      return f.template operator()<uint16_t>();
    case 4:
      return f.template operator()<uint32_t>();
    case 8:
      return f.template operator()<uint64_t>();
    default:
      return UnsupportedDType(t, "this op");
  }
}

}  // namespace parallax

#endif  // PARALLAX_OPS_DISPATCH_H_
