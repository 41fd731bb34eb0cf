// GraphExecutor under a memory budget below its leanest schedule: runs a
// memory-split copy of the graph (plan/memory_split.h).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "plan/memory_split.h"
#include "runtime/graph_executor.h"

namespace parallax {

namespace {

// Split copies tried per run: each learns shapes or lowers the target by a
// sixteenth (the estimate ignores alignment and the schedule's order, so a
// plan may need a little more than it).
constexpr int kSplitAttempts = 32;
// Split copies kept (one per input-shape signature run under a tight budget).
constexpr size_t kMaxSplitCopies = 16;

// Value shapes known before running: constants, the given inputs, and
// values whose declared dims are all known or named symbols bound by the
// inputs.
std::vector<ValueShape> StaticShapes(const Graph& g, const std::vector<Tensor>& inputs) {
  std::map<std::string, int64_t> symbols;
  for (size_t i = 0; i < g.inputs.size() && i < inputs.size(); ++i) {
    const Value& v = g.values[static_cast<size_t>(g.inputs[i])];
    if (!inputs[i].defined() || inputs[i].is_sequence() ||
        v.dims.size() != static_cast<size_t>(inputs[i].rank()))
      continue;
    for (size_t d = 0; d < v.dims.size(); ++d)
      if (!v.dims[d].symbol.empty()) symbols.emplace(v.dims[d].symbol, inputs[i].shape()[d]);
  }
  std::vector<ValueShape> shapes(g.values.size());
  for (size_t v = 0; v < g.values.size(); ++v) {
    const Value& val = g.values[v];
    if (val.is_constant()) {
      shapes[v] = ValueShape{true, val.constant.shape()};
      continue;
    }
    if (!val.has_shape) continue;
    ValueShape s{true, {}};
    for (const Dim& d : val.dims) {
      auto it = d.known() ? symbols.end() : symbols.find(d.symbol);
      if (!d.known() && (d.symbol.empty() || it == symbols.end())) {
        s.known = false;
        break;
      }
      s.dims.push_back(d.known() ? d.size : it->second);
    }
    if (s.known) shapes[v] = std::move(s);
  }
  for (size_t i = 0; i < g.inputs.size() && i < inputs.size(); ++i)
    if (inputs[i].defined() && !inputs[i].is_sequence())
      shapes[static_cast<size_t>(g.inputs[i])] = ValueShape{true, inputs[i].shape()};
  return shapes;
}

// Merges `observed` (a run's shapes, possibly of a larger graph whose first
// values are `known`'s) into `known`; true when it learned a shape.
bool LearnShapes(const std::vector<ValueShape>& observed, std::vector<ValueShape>* known) {
  bool learned = false;
  for (size_t v = 0; v < known->size() && v < observed.size(); ++v)
    if (observed[v].known && !(*known)[v].known) {
      (*known)[v] = observed[v];
      learned = true;
    }
  return learned;
}

}  // namespace

Status GraphExecutor::BuildSplit(size_t target, SplitExecutor* split) const {
  ReusableInputsFn reusable;
  if (options_.in_place)
    reusable = [backend = backend_](const Node& n) { return backend->ReusableInputs(n); };
  PX_ASSIGN_OR_RETURN(MemorySplit ms, SplitForMemory(*graph_, split->shapes, target, reusable));
  std::unique_ptr<GraphExecutor> exec(new GraphExecutor(
      std::make_shared<const Graph>(std::move(ms.graph)), backend_, intra_op_, options_));
  exec->allow_split_ = false;
  exec->unplanned_fallback_ = true;
  exec->donors_.resize(ms.origin.size());
  for (size_t i = 0; i < ms.origin.size(); ++i)
    if (ms.origin[i] >= 0) exec->donors_[i] = kernels_[static_cast<size_t>(ms.origin[i])];
  PX_RETURN_IF_ERROR(exec->Prepare());
  exec->donors_.clear();
  exec->bodies_ = bodies_;  // Shared kernels run the same bodies: their arenas count.
  split->exec = std::move(exec);
  split->target = target;
  split->regions = ms.regions;
  split->max_pieces = ms.max_pieces;
  split->estimated_peak = ms.estimated_peak_bytes;
  split->shapes_missing = ms.shapes_missing;
  return Status::Ok();
}

// The split copy shares this executor's kernels (its node copies run the
// same kernel objects, so prepared weights are not duplicated); it has its
// own plans and arena. Its first run per signature is unplanned (sequential,
// every allocation checked against the budget). Splits are chosen from the
// shapes known so far: the plan's, else the static ones plus what the
// failed first run computed; a split copy that fails over the budget teaches
// the shapes it computed and is rebuilt, or, when it taught nothing (its
// estimate was too low), rebuilt for a lower estimated peak. A split made
// without some shapes (over its target) that teaches none ends the search.
// Profiling does not cover split runs (their nodes differ from the graph's).
Status GraphExecutor::RunSplit(const std::string& signature, size_t budget,
                               const std::string& refusal, const std::vector<Tensor>& inputs,
                               const std::vector<Tensor>& captures, std::vector<Tensor>* outputs) {
  if (split_.size() >= kMaxSplitCopies && split_.count(signature) == 0)
    split_.erase(split_.begin());  // Bounded like the plan cache; any copy can be rebuilt.
  FreeArena();                     // No plan of this graph fits: the copy runs in its own.
  SplitExecutor& split = split_[signature];
  if (split.exec != nullptr && split.target > budget) split.exec.reset();  // Split for more.
  if (split.shapes.empty()) {
    const auto plan_it = plans_.find(signature);
    if (plan_it != plans_.end() && !plan_it->second.shapes.empty()) {
      split.shapes = plan_it->second.shapes;
    } else {
      split.shapes = StaticShapes(*graph_, inputs);
      LearnShapes(observed_shape_, &split.shapes);  // This run's computed prefix.
    }
  }
  size_t target = split.exec != nullptr ? split.target : budget;
  Status last;
  for (int attempt = 0; attempt < kSplitAttempts; ++attempt) {
    if (split.exec == nullptr) {
      const Status built = BuildSplit(target, &split);
      if (!built.ok()) return ResourceExhausted(refusal + "; " + built.message());
    }
    split.exec->set_memory_budget(budget);
    split.exec->set_trace(options_.trace);
    last = split.exec->Run(inputs, captures, outputs);
    stats_ = split.exec->last_stats();
    stats_.split_regions = split.regions;
    stats_.split_pieces = split.max_pieces;
    if (last.code() != StatusCode::kResourceExhausted) return last;
    const bool learned =
        !split.exec->stats_.used_plan && LearnShapes(split.exec->observed_shape_, &split.shapes);
    split.exec.reset();
    // Without new shapes a split already over its target cannot improve.
    if (!learned && split.shapes_missing) break;
    if (!learned) target = target / 16 * 15;
  }
  return ResourceExhausted(refusal + "; run in pieces (" + std::to_string(split.regions) +
                           " region(s), up to " + std::to_string(split.max_pieces) +
                           " pieces, estimated peak " + std::to_string(split.estimated_peak) +
                           " bytes) it did not fit either: " + last.message());
}

}  // namespace parallax
