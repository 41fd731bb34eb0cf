#include "plan/critical_path.h"

#include <algorithm>
#include <string>

namespace parallax {

Result<CriticalPath> ComputeCriticalPath(const Graph& graph, const std::vector<double>& weights) {
  const size_t n = graph.nodes.size();
  if (weights.size() != n)
    return InvalidArgument("critical path: " + std::to_string(weights.size()) + " weights for " +
                           std::to_string(n) + " nodes");
  // finish[i]: earliest finish of node i; pred[i]: the input node that
  // decided it (-1 when none).
  std::vector<double> finish(n, 0);
  std::vector<NodeId> pred(n, -1);
  CriticalPath result;
  NodeId last = -1;
  for (size_t i = 0; i < n; ++i) {
    const Node& node = graph.nodes[i];
    if (weights[i] < 0)
      return InvalidArgument("critical path: negative weight for " + node.Describe());
    double start = 0;
    auto consider = [&](ValueId v) -> Status {
      if (v == kNoValue) return Status::Ok();
      if (v < 0 || static_cast<size_t>(v) >= graph.values.size())
        return InvalidArgument("critical path: " + node.Describe() + " reads an unknown value");
      NodeId p = graph.values[static_cast<size_t>(v)].producer;
      if (p < 0) return Status::Ok();
      if (static_cast<size_t>(p) >= i)
        return InvalidArgument("critical path: nodes are not in topological order at " +
                               node.Describe());
      if (pred[i] < 0 || finish[static_cast<size_t>(p)] > start) {
        start = finish[static_cast<size_t>(p)];
        pred[i] = p;
      }
      return Status::Ok();
    };
    for (ValueId v : node.inputs) PX_RETURN_IF_ERROR(consider(v));
    for (ValueId v : node.implicit_inputs) PX_RETURN_IF_ERROR(consider(v));
    finish[i] = start + weights[i];
    if (last < 0 || finish[i] > result.length) {
      result.length = finish[i];
      last = static_cast<NodeId>(i);
    }
  }
  for (NodeId cur = last; cur >= 0; cur = pred[static_cast<size_t>(cur)])
    result.nodes.push_back(cur);
  std::reverse(result.nodes.begin(), result.nodes.end());
  return result;
}

double LowerBound(double work, double critical_path, int workers) {
  return std::max(critical_path, work / static_cast<double>(std::max(workers, 1)));
}

}  // namespace parallax
