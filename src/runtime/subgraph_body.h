// A node's compiled subgraph (If branch, Loop/Scan/SequenceMap body) and the
// mapping from its captures to the node's implicit inputs. Internal to the
// control-flow and sequence kernels.
#ifndef PARALLAX_RUNTIME_SUBGRAPH_BODY_H_
#define PARALLAX_RUNTIME_SUBGRAPH_BODY_H_

#include <memory>
#include <string>
#include <vector>

#include "ops/kernel.h"

namespace parallax {

struct Body {
  const Graph* graph = nullptr;
  std::unique_ptr<SubgraphRunner> runner;
  std::vector<size_t> capture_pos;  // Index into the node's implicit inputs.
};

// Compiles graph attribute `attr` of init.node.
Result<Body> CompileBody(const KernelInit& init, const char* attr);
// The body's capture values, taken from the running node's implicit inputs.
std::vector<Tensor> Captures(const Body& b, const KernelContext& ctx);
// Runs body `b` for the node `ctx` runs, within the memory the node's graph
// leaves its bodies (KernelContext::subgraph_free_bytes).
Status RunBody(const Body& b, const KernelContext& ctx, const std::vector<Tensor>& inputs,
               const std::vector<Tensor>& captures, std::vector<Tensor>* outputs);

}  // namespace parallax

#endif  // PARALLAX_RUNTIME_SUBGRAPH_BODY_H_
