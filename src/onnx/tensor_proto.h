// Conversion between onnx::TensorProto and Tensor (initializers, Constant
// attributes, and the .pb files of ONNX test data).
#ifndef PARALLAX_ONNX_TENSOR_PROTO_H_
#define PARALLAX_ONNX_TENSOR_PROTO_H_

#include <string>

#include "parallax/status.h"
#include "parallax/tensor.h"

namespace onnx {
class TensorProto;
}

namespace parallax {

// Reads raw or typed fields; external data is read relative to `base_dir`.
Result<Tensor> TensorFromProto(const onnx::TensorProto& proto, const std::string& base_dir);
void TensorToProto(const Tensor& t, const std::string& name, onnx::TensorProto* proto);

// Serialized TensorProto files (.pb).
// `kind` kSequence reads a SequenceProto, kOptional an OptionalProto (whose
// value may be a tensor, a sequence or absent); anything else a TensorProto.
Result<Tensor> ReadValueProtoFile(const std::string& path, DType kind);
Result<Tensor> ReadTensorProtoFile(const std::string& path, std::string* name);
Status WriteTensorProtoFile(const Tensor& t, const std::string& name, const std::string& path);

}  // namespace parallax

#endif  // PARALLAX_ONNX_TENSOR_PROTO_H_
