// GraphExecutor: runs one graph (a model's main graph or a subgraph body).
//
// Modes (ExecOptions::mode):
//  - sequential: node by node in topological order, each kernel tiling its
//    work over the session's threads (intra-op): the reference executor;
//  - dataflow: the graph's branches (plan/branches.h) are tasks on the
//    session pool; a branch starts when its predecessor branches are done,
//    ready branches run highest critical path first, and a kernel still
//    tiles its work over workers that no branch keeps busy (hybrid); only
//    the branches of layers the branch policy marks parallel overlap (a
//    graph without such layers runs in the sequential order);
//  - layers: the paper's layer-synchronous schedule (a barrier between Kahn
//    layers; a layer's branches run concurrently only if the branch policy
//    marks it parallel), for comparison.
// Every mode runs the same kernels with the same tiling, so outputs are
// bit-identical across modes and thread counts.
//
// Created once per graph (kernels made and weights prepared then); Run may be
// called many times. Memory: intermediate values are placed in one arena by
// a liveness-based plan (plan/memory_planner.h): in concurrent modes two
// values share bytes only if one's last reader happens before the other's
// writer in every schedule (HappensBefore). Plans are cached per input
// shape signature; the first run of a new signature allocates dynamically,
// records every value's size and plans from that. A later run whose value
// outgrows its planned slot (data-dependent shapes) gets a dynamic buffer and
// triggers a re-plan. Graph outputs are always owned tensors.
//
// Thread safety: Run is not reentrant; callers serialise runs per executor.
#ifndef PARALLAX_RUNTIME_GRAPH_EXECUTOR_H_
#define PARALLAX_RUNTIME_GRAPH_EXECUTOR_H_

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "graph/graph.h"
#include "ops/kernel.h"
#include "parallax/session.h"
#include "parallax/status.h"
#include "plan/branches.h"
#include "plan/flops.h"
#include "plan/memory_planner.h"

namespace parallax {

using ExecMode = ExecutionMode;

class TraceRecorder;

struct ExecOptions {
  ExecMode mode = ExecMode::kSequential;
  BranchPolicy policy;             // Which layers the concurrent modes run in parallel.
  TraceRecorder* trace = nullptr;  // Records ops when set; outlives runs.
  // Dataflow memory cap: a plan may use at most this many times the best
  // sequential plan's bytes. When the schedule's plan is larger, the
  // executor narrows its parallel layers, then serialises every layer's
  // branches, until it fits, else runs the sequential order.
  double max_plan_ratio = 1.15;
  // Let kernels write an output over a dead input (Backend::ReusableInputs).
  bool in_place = true;
};

struct ExecStats {
  size_t planned_arena_bytes = 0;    // Arena size of the plan used (0 if none).
  size_t sequential_plan_bytes = 0;  // Arena of the best sequential plan, same sizes.
  size_t measured_peak_bytes = 0;    // Peak of live intermediate + output bytes.
  size_t dynamic_bytes = 0;          // Bytes allocated outside the plan.
  bool used_plan = false;
  ExecMode mode = ExecMode::kSequential;  // The schedule this run used.
  int layer_width = 1;                    // Its most branches of one layer at once (1: sequential).
  int split_regions = 0;  // Regions run in pieces to fit the budget (plan/memory_split.h).
  int split_pieces = 1;   // Most pieces of one such chain.
  // Arena bytes the graph's subgraph bodies (If/Loop/Scan, nested ones
  // included) hold after the run; they count against the budget.
  size_t subgraph_bytes = 0;
};

class GraphExecutor {
 public:
  // Fails listing every node `backend` cannot run.
  // Kernels (and subgraph executors) run intra-op work on `intra_op`; its
  // pool must outlive the executor.
  static Result<std::unique_ptr<GraphExecutor>> Create(std::shared_ptr<const Graph> graph,
                                                       Backend* backend,
                                                       const IntraOp& intra_op = {},
                                                       const ExecOptions& options = {});

  // `inputs` follow graph.inputs, `captures` graph.captures. On success
  // `outputs` holds one owned tensor per graph output.
  Status Run(const std::vector<Tensor>& inputs, const std::vector<Tensor>& captures,
             std::vector<Tensor>* outputs);

  const ExecStats& last_stats() const { return stats_; }
  const Graph& graph() const { return *graph_; }
  ExecMode mode() const { return options_.mode; }
  // Activation bytes runs may use (0 = unlimited): a run uses the most
  // concurrent schedule whose plan fits, falls back to the sequential plan,
  // then to a copy of the graph with regions of ops split into pieces
  // (SplitForMemory; kernels shared with this executor, results equal to
  // rounding), or fails with ResourceExhausted; unplanned (first) runs go
  // sequentially and fail on the first allocation past it. Not during a run.
  // Subgraph bodies run within what is left: the budget minus this graph's
  // arena (or live bytes when unplanned) and every body's arena; a plan
  // whose schedule could run two bodies at once is not used under a budget.
  void set_memory_budget(size_t bytes) { budget_bytes_ = bytes; }
  // Arena bytes held between runs by this executor and its bodies'
  // (recursively). Thread-safe.
  size_t HeldBytes() const;
  // Records ops into `trace` (nullptr: stop), including those of subgraph
  // bodies (nested inside their If/Loop/Scan slice, on the worker that runs
  // them; only the main graph samples the memory counter). Not during a run.
  void set_trace(TraceRecorder* trace);
  // Branch structure of the graph (computed in every mode).
  const BranchAnalysis& branches() const { return branches_; }

  // Profiling (off by default; off costs one branch per node): each
  // successful Run adds every node's kernel wall time (steady_clock) to
  // profile_ms(), indexed by node. A subgraph's time is part of the time of
  // the If/Loop/Scan node that runs it.
  void set_profiling(bool on) { profiling_ = on; }
  void ResetProfile();
  const std::vector<double>& profile_ms() const { return profile_ms_; }
  int64_t profiled_runs() const { return profiled_runs_; }

 private:
  static constexpr size_t kArenaAlignment = 64;  // Of the arena and every planned offset.
  class RunAllocator;
  // A schedule for the concurrent modes: one task per branch, run on
  // ThreadPool::RunGraph with the branch DAG's edges (plus the schedule's
  // extra ordering, e.g. layer barriers, as edges).
  struct TaskPlan {
    std::vector<std::vector<NodeId>> task_nodes;
    std::unique_ptr<ThreadPool::TaskGraph> graph;
    int layer_width = 1;  // Most branches of one layer it lets run at once.
  };
  // One way to run a signature: its task DAG (nullptr: the sequential order)
  // and arena plan.
  struct Schedule {
    MemoryPlan plan;
    std::shared_ptr<TaskPlan> tasks;  // Priorities from this signature's FLOPs.
    // Two nodes with subgraph bodies may run at once: not under a budget,
    // where each body's share is computed when it starts.
    bool concurrent_bodies = false;
  };
  struct CachedPlan {
    // Most concurrent first, each with a smaller arena than the one before,
    // all within max_plan_ratio (layers: uncapped); the last is the
    // sequential order. A run takes the first; under a budget, the first
    // that fits (branches serialised just enough).
    std::vector<Schedule> schedules;
    std::vector<int32_t> request_of_value;  // -1 when not arena-planned.
    std::vector<size_t> planned_size;       // Per value.
    std::vector<ValueShape> shapes;         // Per value, from the run that planned it.
    uint64_t last_used = 0;                 // run_counter_ when last used (LRU eviction).
  };

  GraphExecutor(std::shared_ptr<const Graph> graph, Backend* backend, const IntraOp& intra_op,
                const ExecOptions& options);
  Status Prepare();
  void PlanAliases();
  bool CanWriteOver(size_t step, int k, const std::vector<int32_t>& readers) const;
  Status BindInputs(const std::vector<Tensor>& inputs, const std::vector<Tensor>& captures);
  std::string Signature() const;
  // Runs one node's kernel and records its outputs (thread-safe for
  // distinct nodes whose inputs are computed).
  Status ExecuteNode(size_t step);
  Status RunSequential();
  // Runs under `budget` on a memory-split copy of the graph (built per
  // signature, rebuilt with a lower target if its plan still does not fit);
  // `refusal` says why the graph itself did not fit, for the error.
  Status RunSplit(const std::string& signature, size_t budget, const std::string& refusal,
                  const std::vector<Tensor>& inputs, const std::vector<Tensor>& captures,
                  std::vector<Tensor>* outputs);
  void BuildPlan(const std::string& signature);

  // Concurrent modes (graph_executor_concurrent.cc).
  void PrepareConcurrent();
  std::shared_ptr<TaskPlan> BuildTasks(const BranchAnalysis& analysis,
                                       const std::vector<double>& node_flops) const;
  BranchConstraints ModeConstraints() const;
  Status RunConcurrent(TaskPlan& tasks);
  void Unref(ValueId v);
  // Appends this signature's concurrent schedules (see CachedPlan) to `out`.
  void PlanConcurrent(const std::vector<BufferRequest>& seq_reqs, const std::vector<ValueId>& ids,
                      size_t seq_bytes, std::vector<Schedule>* out) const;
  MemoryPlan PlanOrdered(const std::vector<BufferRequest>& seq_reqs,
                         const std::vector<ValueId>& ids, const HappensBefore& hb) const;
  void AddLive(size_t bytes);
  void RecordTrace(size_t step, std::chrono::steady_clock::time_point t0,
                   std::chrono::steady_clock::time_point t1);

  std::shared_ptr<const Graph> graph_;
  Backend* backend_;
  IntraOp intra_op_;
  ExecOptions options_;
  BranchAnalysis branches_;
  std::shared_ptr<TaskPlan> default_tasks_;     // From static shapes.
  bool default_sequential_ = false;             // Branches form one chain.
  std::vector<ValueId> alias_parent_;           // Per value: kNoValue or its input.
  std::vector<int32_t> initial_refs_;           // Per value: readers + direct aliases.
  std::vector<std::vector<ValueId>> releases_;  // Per node: values to unref after it.
  std::vector<std::vector<NodeId>> readers_;    // Per value: nodes reading it or an alias.
  std::unique_ptr<std::atomic<int32_t>[]> refs_;
  std::vector<std::shared_ptr<Kernel>> kernels_;  // Shared with split_ executors.
  std::vector<std::shared_ptr<Kernel>> donors_;   // Prepare: per node, a kernel to reuse.
  std::vector<GraphExecutor*> bodies_;            // Subgraph executors, owned by kernels_.
  std::vector<bool> has_body_;                    // Per step: the node runs subgraphs.
  size_t BodiesHeld() const;                      // Sum of bodies_' HeldBytes().
  void FreeArena();                               // Frees the arena (not while running).
  void FreeArenas();                              // Ours and the bodies', recursively.
  // Bytes this run uses now: the arena and dynamic bytes when planned, the
  // live bytes when not.
  size_t UsedBytes() const;
  bool is_body_ = false;
  // A memory-split copy of the graph for one signature (RunSplit).
  struct SplitExecutor {
    std::unique_ptr<GraphExecutor> exec;
    std::vector<ValueShape> shapes;  // Per value of graph_: those known so far.
    size_t target = 0;               // Peak bytes it was split for.
    int regions = 0;
    int max_pieces = 1;
    size_t estimated_peak = 0;    // Of the split (SplitForMemory).
    bool shapes_missing = false;  // Split without some shapes: over the target.
  };
  bool allow_split_ = true;  // False in split copies and subgraph bodies.
  // Split copies: when no plan of a signature fits the budget, run unplanned
  // (each allocation checked) rather than refuse; a plan's arena may need a
  // little more than the lowest live bytes its order reaches.
  bool unplanned_fallback_ = false;
  std::map<std::string, SplitExecutor> split_;
  // Replaces split->exec with a copy split for `target` estimated peak bytes.
  Status BuildSplit(size_t target, SplitExecutor* split) const;
  std::vector<int32_t> last_use_;                  // Per value: last step reading it
                                                   // (or any value sharing its bytes).
  std::vector<bool> forwards_;                     // Per step: output 0 may share input 0.
  std::vector<int8_t> alias_input_;                // Per step: input output 0 may share, or -1.
  std::vector<bool> is_alias_;                     // Per value: may share another's bytes.
  std::vector<bool> is_output_;                    // Per value.
  std::vector<std::vector<ValueId>> frees_after_;  // Per step.
  std::map<std::string, CachedPlan> plans_;
  uint64_t run_counter_ = 0;

  // Per-run state.
  std::vector<Tensor> slots_;
  std::vector<size_t> observed_size_;
  std::vector<uint8_t> fresh_;  // Per value: its bytes are this run's own, not an input's
                                // or a constant's (written by its producer only).
  const CachedPlan* active_plan_ = nullptr;
  const std::vector<size_t>* active_offsets_ = nullptr;  // Of the plan this run uses.
  size_t budget_bytes_ = 0;
  std::unique_ptr<uint8_t, void (*)(void*)> arena_{nullptr, nullptr};
  size_t arena_capacity_ = 0;
  std::atomic<size_t> held_bytes_{0};       // arena_capacity_, for other threads' HeldBytes().
  std::vector<ValueShape> observed_shape_;  // Filled on unplanned runs.
  std::atomic<bool> needs_replan_{false};
  std::atomic<size_t> live_bytes_{0};
  std::atomic<size_t> peak_bytes_{0};
  std::atomic<size_t> dynamic_bytes_{0};
  ExecStats stats_;

  bool profiling_ = false;
  std::vector<double> profile_ms_;  // Per node, summed over profiled runs.
  std::vector<double> run_ms_;      // Per node, this run.
  int64_t profiled_runs_ = 0;
};

}  // namespace parallax

#endif  // PARALLAX_RUNTIME_GRAPH_EXECUTOR_H_
