// ONNX import: an .onnx file -> the Parallax IR (graph/graph.h).
//
// Accepts IR versions 3 and newer and default-domain opsets 1-18 (every
// node records its domain's opset; kernels implement version differences).
// Initializers (raw, typed, external data), Constant nodes (turned into
// constant values), graph attributes (If/Loop/Scan bodies, loaded
// recursively with outer-scope references resolved as captures) and
// symbolic dimensions are imported. ONNX's own shape inference (with data
// propagation) fills value shapes where it can; failures there are not
// fatal. Errors name the file and, where relevant, the node.
#ifndef PARALLAX_ONNX_ONNX_IMPORT_H_
#define PARALLAX_ONNX_ONNX_IMPORT_H_

#include <map>
#include <memory>
#include <string>

#include "graph/graph.h"
#include "parallax/status.h"

namespace parallax {

struct ImportedModel {
  std::string path;
  int64_t ir_version = 0;
  std::map<std::string, int64_t> opsets;  // Domain ("" = default) -> version.
  std::string producer;
  std::shared_ptr<Graph> graph;
  std::string shape_inference_warning;  // Non-empty if ONNX inference failed.
};

inline constexpr int kMinIrVersion = 3;
inline constexpr int kMaxDefaultOpset = 18;

// Symbolic input dimensions fixed at import (ONNX Runtime's free dimension
// overrides): every graph input dim named by a key gets that size before
// shape inference, so values whose sizes follow from the inputs get known
// shapes. A key no input dim uses, or a size below 1, is an error.
using FreeDims = std::map<std::string, int64_t>;

Result<ImportedModel> ImportOnnxFile(const std::string& path, const FreeDims& free_dims = {});
// Parses `bytes` as a ModelProto; `path` is used for messages and as the
// base folder of external data.
Result<ImportedModel> ImportOnnxBytes(const std::string& bytes, const std::string& path,
                                      const FreeDims& free_dims = {});

}  // namespace parallax

#endif  // PARALLAX_ONNX_ONNX_IMPORT_H_
