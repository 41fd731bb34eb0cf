// Graph-level optimisation passes run at load: constant folding and
// dead-node removal. Each mutates the graph in place and returns how many
// nodes it removed. Operator fusions are in plan/fusion.h.
#ifndef PARALLAX_PLAN_OPTIMIZE_H_
#define PARALLAX_PLAN_OPTIMIZE_H_

#include <cstdint>

#include "backends/backend.h"
#include "graph/graph.h"
#include "parallax/status.h"

namespace parallax {

// Evaluates nodes whose inputs are all constant with `backend`'s kernels and
// turns their outputs into constants. Skips random ops, control flow and
// results over 16 Mi elements. Recurses into subgraphs.
Result<int64_t> FoldConstants(Graph& graph, Backend& backend);

// Removes nodes none of whose outputs reach a graph output. Recurses into
// subgraphs.
int64_t RemoveDeadNodes(Graph& graph);

}  // namespace parallax

#endif  // PARALLAX_PLAN_OPTIMIZE_H_
