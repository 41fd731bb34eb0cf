// NumPy .npy files (format versions 1-3, little-endian, C order) <-> Tensor.
#ifndef PARALLAX_IO_NPY_H_
#define PARALLAX_IO_NPY_H_

#include <string>

#include "parallax/status.h"
#include "parallax/tensor.h"

namespace parallax {

Result<Tensor> ReadNpy(const std::string& path);
Status WriteNpy(const Tensor& t, const std::string& path);

// Reads .npy or a serialized ONNX TensorProto (.pb), chosen by extension.
Result<Tensor> ReadTensorFile(const std::string& path);

}  // namespace parallax

#endif  // PARALLAX_IO_NPY_H_
