// Element types a Parallax tensor can hold, with their sizes and names.
#ifndef PARALLAX_DTYPE_H_
#define PARALLAX_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace parallax {

// Values match onnx::TensorProto::DataType so import is a range check.
enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,  // Recognised so errors can name it; not computable.
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
  // Not element types: a Tensor with these dtypes is an ONNX non-tensor value.
  kSequence = 100,  // A sequence of tensors (Tensor::elements()).
  kOptional = 101,  // An optional without a value ("None").
};

// Bytes per element; 0 for kUndefined, kString, kSequence and kOptional.
size_t DTypeSize(DType t);
// "float32", "int64", ...
std::string_view DTypeName(DType t);
// True for the types kernels can compute on (everything but string/undefined).
bool IsSupportedDType(DType t);
bool IsFloatingDType(DType t);

// bfloat16 storage type (upper half of a float32).
struct BFloat16 {
  uint16_t bits = 0;
};
float BFloat16ToFloat(BFloat16 h);
BFloat16 FloatToBFloat16(float f);  // Round to nearest even.

// IEEE binary16 storage type; convert with HalfToFloat/FloatToHalf.
struct Half {
  uint16_t bits = 0;
};
float HalfToFloat(Half h);
Half FloatToHalf(float f);  // Round to nearest even.

}  // namespace parallax

#endif  // PARALLAX_DTYPE_H_
