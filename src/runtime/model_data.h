// ModelData: what a loaded Model holds (internal).
#ifndef PARALLAX_RUNTIME_MODEL_DATA_H_
#define PARALLAX_RUNTIME_MODEL_DATA_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "onnx/onnx_import.h"
#include "parallax/model.h"
#include "plan/layout.h"

namespace parallax {

struct ModelData {
  ImportedModel imported;  // Graph after optimisation.
  std::shared_ptr<const Graph> graph;
  std::vector<TensorInfo> inputs, outputs;
  int64_t folded_nodes = 0;                // Removed by constant folding.
  int64_t dead_nodes = 0;                  // Removed as unused.
  std::map<std::string, int64_t> fusions;  // Rewrites per fusion pass.
  LayoutStats layout;                      // What AssignChannelsLast converted.
};

}  // namespace parallax

#endif  // PARALLAX_RUNTIME_MODEL_DATA_H_
