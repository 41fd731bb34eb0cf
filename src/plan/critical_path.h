// Critical path of a graph's dependency DAG, weighted by per-node times.
//
// A node can start once every node producing one of its inputs (explicit or
// implicit, i.e. values its subgraphs capture) has finished. With unlimited
// workers and zero scheduling cost a run therefore takes at least the
// heaviest chain of dependent nodes: the critical path C. Together with the
// total work W this bounds any schedule on T workers from below:
// max(C, W / T). Subgraph nodes are not separate vertices; their cost is
// part of the weight of the If/Loop/Scan node that owns them.
#ifndef PARALLAX_PLAN_CRITICAL_PATH_H_
#define PARALLAX_PLAN_CRITICAL_PATH_H_

#include <vector>

#include "graph/graph.h"
#include "parallax/status.h"

namespace parallax {

struct CriticalPath {
  double length = 0;          // Sum of the weights along the path.
  std::vector<NodeId> nodes;  // The path, first node first (empty graph: none).
};

// `weights[n]` is node n's cost (any unit, >= 0). Needs graph.nodes in
// topological order and one weight per node.
Result<CriticalPath> ComputeCriticalPath(const Graph& graph, const std::vector<double>& weights);

// max(critical_path, work / workers): the lower bound on a run's time with
// `workers` >= 1 workers.
double LowerBound(double work, double critical_path, int workers);

}  // namespace parallax

#endif  // PARALLAX_PLAN_CRITICAL_PATH_H_
