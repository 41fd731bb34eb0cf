// Session: runs a Model many times.
//
//   parallax::SessionOptions opts;            // threads, backend, budget
//   auto session = parallax::Session::Create(model, opts);
//   auto out = session->Run({{"x", parallax::Tensor::Empty(DType::kFloat32, {1, 3})}});
//   // out->at(i) follows model.outputs() order.
//
// Create prepares kernels (pre-packing weights); Run validates inputs by
// name, dtype and shape (errors name the input), executes, and returns owned
// output tensors. Run calls on one Session are serialised (thread-safe, not
// concurrent); use several Sessions for concurrent requests.
#ifndef PARALLAX_SESSION_H_
#define PARALLAX_SESSION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "parallax/model.h"
#include "parallax/status.h"
#include "parallax/tensor.h"

namespace parallax {

// How a run schedules the graph's nodes on the session's threads.
enum class ExecutionMode {
  kSequential,  // One node at a time; large kernels tile over all threads.
  kLayers,      // The paper's layer-synchronous branch schedule.
  kDataflow,    // Branches start when their inputs are ready, critical path
                // first; idle threads help large kernels (hybrid).
};
const char* ExecutionModeName(ExecutionMode mode);
Result<ExecutionMode> ParseExecutionMode(const std::string& name);

struct SessionOptions {
  // Threads the session computes on, the caller's included (threads - 1
  // pool workers start with the session); never more run at once.
  int threads = 1;
  // How long (microseconds, >= 0) a thread that ran out of work polls for
  // more before it sleeps; saves a wake-up between back-to-back small ops.
  // 0: sleep at once. Idle sessions always end up asleep.
  int spin_us = 50;
  // Let kernels write an output over an input that nothing reads afterwards
  // (elementwise ops, Softmax, LayerNorm, a fused residual): smaller
  // activation plans, same bits. False: every output gets its own bytes.
  bool in_place = true;
  ExecutionMode mode = ExecutionMode::kDataflow;
  // Dataflow only: the activation plan may use at most this many times the
  // bytes of the best sequential plan; beyond it branches are serialised
  // (the runs stay correct, with less concurrency), down to the sequential
  // order. Must be >= 1.
  double max_plan_ratio = 1.15;
  // Execution backend; "cpu" is the only one built today.
  std::string backend = "cpu";
  // Upper bound on activation memory in bytes. > 0: this many; 0: from the
  // OS, re-read every run, or for runs less than 1 ms apart every 1 ms
  // (MemAvailable minus a 10% / 256 MiB safety margin); -1: unlimited. A run takes the most
  // concurrent schedule whose plan fits (else the sequential plan); one that cannot fit even
  // sequentially fails with ResourceExhausted before running. If/Loop/Scan bodies run within
  // what their graph leaves (RunStats::subgraph_arena_bytes).
  int64_t memory_budget_bytes = 0;
  // Time every node of the main graph (steady_clock around each kernel;
  // nodes inside If/Loop/Scan bodies count in their owner). Off: no timing.
  bool profile = false;
};

struct RunStats {
  size_t planned_activation_bytes = 0;   // Arena of the plan used (0 on a first run).
  size_t measured_activation_bytes = 0;  // Peak of live intermediate + output bytes.
  size_t dynamic_bytes = 0;              // Bytes allocated outside the plan.
  size_t sequential_plan_bytes = 0;      // Arena of the best sequential plan, same sizes.
  size_t memory_budget_bytes = 0;        // The budget this run had (0 = unlimited).
  ExecutionMode mode = ExecutionMode::kSequential;  // The schedule this run used.
  // Most branches of one Kahn layer that schedule lets run at once (1:
  // sequential); below max_branch_width when a budget or max_plan_ratio
  // narrowed it.
  int layer_width = 1;
  // Chains of ops run in pieces because even the sequential plan exceeded
  // the budget (0: none), and the most pieces of one chain.
  int split_regions = 0;
  int split_pieces = 1;
  // Arenas of subgraph bodies (If/Loop/Scan, nested ones included) held
  // after the run, besides the main plan's; the budget covers both.
  size_t subgraph_arena_bytes = 0;
};

// The main graph's branch structure (paper Table 7).
struct BranchSummary {
  int nodes = 0;
  int branches = 0;
  int layers = 0;
  int parallel_layers = 0;  // After the refinement policy.
  int max_branch_width = 0;
};

struct NodeProfile {
  std::string name;
  std::string op_type;
  double ms = 0;  // Average single-thread time per run.
};

// Per-node times averaged over the runs since profiling started (or the last
// ResetProfile), and what they imply for any schedule of the main graph.
struct Profile {
  int64_t runs = 0;
  std::vector<NodeProfile> nodes;     // Main-graph nodes in execution order.
  double work_ms = 0;                 // W: sum of node times.
  double critical_path_ms = 0;        // C: heaviest dependency chain.
  std::vector<size_t> critical_path;  // Indices into `nodes`, in order.
  // max(C, W / threads): no schedule on `threads` cores runs faster.
  double LowerBoundMs(int threads) const;
};

class Session {
 public:
  static Result<Session> Create(const Model& model, const SessionOptions& options = {});
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  ~Session();

  using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
  Result<std::vector<Tensor>> Run(const NamedTensors& inputs);
  RunStats last_stats() const;
  BranchSummary branch_summary() const;
  // Records every following run as a Chrome/Perfetto trace (one track per
  // worker, a slice per op, an activation-bytes counter) until WriteTrace,
  // which writes the JSON file and stops recording.
  void StartTrace();
  Status WriteTrace(const std::string& path);
  // Needs SessionOptions::profile; ResetProfile drops earlier runs (e.g.
  // warm-up) from the averages.
  Result<Profile> profile() const;
  void ResetProfile();
  const Model& model() const;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace parallax

#endif  // PARALLAX_SESSION_H_
