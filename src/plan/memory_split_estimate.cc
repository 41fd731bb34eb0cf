// EstimateSequentialPeak and the byte count it uses (plan/memory_split.h).
#include <algorithm>
#include <vector>

#include "plan/memory_split.h"
#include "plan/split_map.h"

namespace parallax {

size_t ValueBytes(const Graph& g, const std::vector<ValueShape>& shapes, ValueId v) {
  const Shape* s = KnownShape(shapes, v);
  if (s == nullptr) return 0;
  const DType t = g.values[static_cast<size_t>(v)].dtype;
  if (t == DType::kSequence || t == DType::kOptional || t == DType::kString) return 0;
  const size_t element = t == DType::kUndefined ? 4 : DTypeSize(t);  // Unknown: assume float.
  return static_cast<size_t>(NumElements(*s)) * element;
}

bool ForwardsInput(const Node& n) {
  return n.domain.empty() && n.outputs.size() == 1 && !n.inputs.empty() &&
         n.inputs[0] != kNoValue &&
         (n.op_type == "Reshape" || n.op_type == "Flatten" || n.op_type == "Squeeze" ||
          n.op_type == "Unsqueeze");
}

PeakEstimate EstimateSequentialPeak(const Graph& g, const std::vector<ValueShape>& shapes,
                                    const ReusableInputsFn& reusable) {
  const size_t nv = g.values.size();
  const int32_t steps = static_cast<int32_t>(g.nodes.size());
  std::vector<bool> is_output(nv, false);
  for (ValueId o : g.outputs) is_output[static_cast<size_t>(o)] = true;
  std::vector<int32_t> last(nv, -1);
  std::vector<int32_t> readers(nv, 0);
  for (int32_t s = 0; s < steps; ++s) {
    const Node& n = g.nodes[static_cast<size_t>(s)];
    for (const auto* list : {&n.inputs, &n.implicit_inputs})
      for (ValueId u : *list)
        if (u != kNoValue && last[static_cast<size_t>(u)] != s) {
          last[static_cast<size_t>(u)] = s;
          ++readers[static_cast<size_t>(u)];
        }
  }
  std::vector<ValueId> root(nv);
  for (size_t v = 0; v < nv; ++v) root[v] = static_cast<ValueId>(v);
  auto activation = [&](ValueId u) {
    return u != kNoValue && g.values[static_cast<size_t>(u)].producer >= 0 &&
           !is_output[static_cast<size_t>(u)];
  };
  for (int32_t s = 0; s < steps; ++s) {
    const Node& n = g.nodes[static_cast<size_t>(s)];
    if (n.outputs.empty() || n.outputs[0] == kNoValue ||
        is_output[static_cast<size_t>(n.outputs[0])])
      continue;
    const ValueId y = n.outputs[0];
    if (ForwardsInput(n) && activation(n.inputs[0])) {
      root[static_cast<size_t>(y)] = root[static_cast<size_t>(n.inputs[0])];
    } else if (reusable) {
      for (int k : reusable(n)) {
        if (k < 0 || static_cast<size_t>(k) >= n.inputs.size()) continue;
        const ValueId u = n.inputs[static_cast<size_t>(k)];
        if (activation(u) && readers[static_cast<size_t>(u)] == 1 &&
            ValueBytes(g, shapes, u) == ValueBytes(g, shapes, y)) {
          root[static_cast<size_t>(y)] = root[static_cast<size_t>(u)];
          break;
        }
      }
    }
  }
  std::vector<int32_t> first(nv, -1), end(nv, -1);  // Per root.
  for (size_t v = 0; v < nv; ++v) {
    const NodeId p = g.values[v].producer;
    if (p < 0) continue;
    const size_t r = static_cast<size_t>(root[v]);
    const int32_t until = is_output[v] ? steps - 1 : std::max(last[v], p);
    if (first[r] < 0 || p < first[r]) first[r] = p;
    end[r] = std::max(end[r], until);
  }
  std::vector<int64_t> delta(static_cast<size_t>(steps) + 1, 0);
  for (size_t r = 0; r < nv; ++r) {
    if (first[r] < 0 || root[r] != static_cast<ValueId>(r)) continue;
    const int64_t b = static_cast<int64_t>(ValueBytes(g, shapes, static_cast<ValueId>(r)));
    delta[static_cast<size_t>(first[r])] += b;
    delta[static_cast<size_t>(end[r]) + 1] -= b;
  }
  PeakEstimate pe;
  int64_t live = 0;
  int32_t at = -1;
  pe.step_bytes.reserve(static_cast<size_t>(steps));
  for (int32_t s = 0; s < steps; ++s) {
    live += delta[static_cast<size_t>(s)];
    pe.step_bytes.push_back(static_cast<size_t>(live));
    if (live > static_cast<int64_t>(pe.bytes)) {
      pe.bytes = static_cast<size_t>(live);
      at = s;
    }
  }
  for (size_t r = 0; at >= 0 && r < nv; ++r)
    if (first[r] >= 0 && root[r] == static_cast<ValueId>(r) && first[r] <= at && at <= end[r] &&
        ValueBytes(g, shapes, static_cast<ValueId>(r)) > 0)
      pe.live_at_peak.push_back(static_cast<ValueId>(r));
  return pe;
}

}  // namespace parallax
