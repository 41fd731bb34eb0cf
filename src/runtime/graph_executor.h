// GraphExecutor: runs one graph (a model's main graph or a subgraph body)
// node by node in topological order: the sequential reference executor.
//
// Created once per graph (kernels made and weights prepared then); Run may be
// called many times. Memory: intermediate values are placed in one arena by
// a liveness-based plan (plan/memory_planner.h). Plans are cached per input
// shape signature; the first run of a new signature allocates dynamically,
// records every value's size and plans from that. A later run whose value
// outgrows its planned slot (data-dependent shapes) gets a dynamic buffer and
// triggers a re-plan. Graph outputs are always owned tensors.
//
// Thread safety: Run is not reentrant; callers serialise runs per executor.
#ifndef PARALLAX_RUNTIME_GRAPH_EXECUTOR_H_
#define PARALLAX_RUNTIME_GRAPH_EXECUTOR_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "graph/graph.h"
#include "ops/kernel.h"
#include "parallax/status.h"
#include "plan/memory_planner.h"

namespace parallax {

struct ExecStats {
  size_t planned_arena_bytes = 0;  // Arena size of the plan used (0 if none).
  size_t measured_peak_bytes = 0;  // Peak of live intermediate + output bytes.
  size_t dynamic_bytes = 0;        // Bytes allocated outside the plan.
  bool used_plan = false;
};

class GraphExecutor {
 public:
  // Fails listing every node `backend` cannot run.
  // Kernels (and subgraph executors) run intra-op work on `intra_op`; its
  // pool must outlive the executor.
  static Result<std::unique_ptr<GraphExecutor>> Create(std::shared_ptr<const Graph> graph,
                                                       Backend* backend,
                                                       const IntraOp& intra_op = {});

  // `inputs` follow graph.inputs, `captures` graph.captures. On success
  // `outputs` holds one owned tensor per graph output.
  Status Run(const std::vector<Tensor>& inputs, const std::vector<Tensor>& captures,
             std::vector<Tensor>* outputs);

  const ExecStats& last_stats() const { return stats_; }
  const Graph& graph() const { return *graph_; }

  // Profiling (off by default; off costs one branch per node): each
  // successful Run adds every node's kernel wall time (steady_clock) to
  // profile_ms(), indexed by node. A subgraph's time is part of the time of
  // the If/Loop/Scan node that runs it.
  void set_profiling(bool on) { profiling_ = on; }
  void ResetProfile();
  const std::vector<double>& profile_ms() const { return profile_ms_; }
  int64_t profiled_runs() const { return profiled_runs_; }

 private:
  class RunAllocator;
  struct CachedPlan {
    MemoryPlan plan;
    std::vector<int32_t> request_of_value;  // -1 when not arena-planned.
    std::vector<size_t> planned_size;       // Per value.
  };

  GraphExecutor(std::shared_ptr<const Graph> graph, Backend* backend, const IntraOp& intra_op);
  Status Prepare();
  void PlanForwarding();
  Status BindInputs(const std::vector<Tensor>& inputs, const std::vector<Tensor>& captures);
  std::string Signature() const;
  Status RunNode(size_t step, RunAllocator& alloc);
  void BuildPlan(const std::string& signature);

  std::shared_ptr<const Graph> graph_;
  Backend* backend_;
  IntraOp intra_op_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
  std::vector<int32_t> last_use_;                  // Per value: last step reading it
                                                   // (or any value sharing its bytes).
  std::vector<bool> forwards_;                     // Per step: output 0 may share input 0.
  std::vector<bool> is_alias_;                     // Per value: may share another's bytes.
  std::vector<bool> is_output_;                    // Per value.
  std::vector<std::vector<ValueId>> frees_after_;  // Per step.
  std::map<std::string, CachedPlan> plans_;

  // Per-run state.
  std::vector<Tensor> slots_;
  std::vector<size_t> observed_size_;
  const CachedPlan* active_plan_ = nullptr;
  std::unique_ptr<uint8_t, void (*)(void*)> arena_{nullptr, nullptr};
  size_t arena_capacity_ = 0;
  bool needs_replan_ = false;
  size_t live_bytes_ = 0;
  ExecStats stats_;

  bool profiling_ = false;
  std::vector<double> profile_ms_;  // Per node, summed over profiled runs.
  std::vector<double> run_ms_;      // Per node, this run.
  int64_t profiled_runs_ = 0;
};

}  // namespace parallax

#endif  // PARALLAX_RUNTIME_GRAPH_EXECUTOR_H_
