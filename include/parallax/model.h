// Model: an ONNX model loaded, checked and optimised, ready for sessions.
//
//   parallax::Result<parallax::Model> model = parallax::Model::Load("m.onnx");
//   if (!model.ok()) { puts(model.status().ToString().c_str()); return 1; }
//
// Load parses the file, imports the graph (subgraphs included), checks that
// every op is supported (listing all unsupported ops in one error), folds
// constants, removes dead nodes and fuses operator patterns. A Model is immutable and cheap to
// copy; any number of Sessions may share it, from any thread.
#ifndef PARALLAX_MODEL_H_
#define PARALLAX_MODEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "parallax/dtype.h"
#include "parallax/status.h"

namespace parallax {

struct ModelData;  // Internal.

// A graph input or output as declared by the model.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  bool has_shape = false;
  std::vector<int64_t> dims;         // -1 where not fixed.
  std::vector<std::string> symbols;  // Symbol name where dims[i] == -1 ("" if anonymous).
  std::string ShapeString() const;   // "[batch,3,224,224]".
};

struct LoadOptions {
  bool optimize = true;  // Constant folding and dead-node removal.
  // Channels-last layout assignment (plan/layout.h); runs only with `optimize`.
  bool layout = true;
  // Operator fusions (Conv+BN, Conv+activation, Conv+Add, MatMul+Add,
  // GELU / LayerNorm / Softmax / HardSwish patterns); off for differential
  // testing. Fused and unfused models compute the same function up to float
  // rounding.
  bool fusion = true;
  // Free dimension overrides (as in ONNX Runtime): symbolic input dims fixed
  // at load, e.g. {"batch", 1}. Shape inference then knows every size that
  // follows from the inputs, so a memory budget below the leanest plan can
  // split the graph before its first run; inputs of another size are
  // rejected. A symbol no input uses is an error.
  std::map<std::string, int64_t> free_dims;
};

class Model {
 public:
  static Result<Model> Load(const std::string& path, const LoadOptions& options = {});

  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;
  const std::string& path() const;
  int64_t ir_version() const;
  // Opset per domain ("" is the default ONNX domain).
  const std::map<std::string, int64_t>& opsets() const;
  // Nodes in the main graph and in all subgraphs, after optimisation.
  int64_t node_count() const;
  // Patterns rewritten by fusion at load, per pass name ("ConvBatchNorm",
  // "Activation", ...); empty when fusion was off or nothing matched.
  const std::map<std::string, int64_t>& fusions() const;

  const ModelData& data() const { return *data_; }  // Internal use.

 private:
  std::shared_ptr<const ModelData> data_;
};

}  // namespace parallax

#endif  // PARALLAX_MODEL_H_
