// GraphExecutor's concurrent modes (layers, dataflow): branch tasks on the
// session pool, reference-counted frees, happens-before memory plans.
//
// Freeing: every planned value holds one reference per distinct node that
// reads it plus one per value forwarded from it (a Reshape output sharing
// its bytes); a node drops its references after it ran, and the last drop
// frees the slot and releases the parent's reference. A value nobody reads
// is freed right after its producer. The atomic decrement (acq_rel) orders
// every reader before the free.
#include <algorithm>

#include "runtime/graph_executor.h"
#include "runtime/trace.h"

namespace parallax {
namespace {

// FLOP-equivalents charged per node on top of its estimate, so long chains
// of tiny ops still count on the critical path (~ a few microseconds).
constexpr double kNodeCost = 2e4;
// Below this much estimated work a graph runs in the sequential order: task
// hand-offs (a lock and a wake-up, microseconds) would cost more than
// branches could overlap (e.g. the small If/Loop bodies of speech models).
constexpr double kMinConcurrentFlops = 2e7;
// Concurrency must promise at least this speed-up (total / critical-path
// cost of the branch DAG, kNodeCost per node included).
constexpr double kMinPotentialSpeedup = 1.1;

// Per branch: its cost (node FLOPs + kNodeCost each) plus the costliest
// path of successors to a sink. Used as task priorities; the maximum is the
// branch DAG's critical path.
std::vector<double> CostToSink(const BranchAnalysis& a, const std::vector<double>& flops,
                               double* work) {
  const size_t nb = a.branches.size();
  std::vector<double> tail(nb, 0.0);
  *work = 0;
  for (size_t b = nb; b-- > 0;) {
    double cost = 0;
    for (NodeId n : a.branches[b].nodes) cost += flops[static_cast<size_t>(n)] + kNodeCost;
    double t = 0;
    for (int32_t s : a.branches[b].succs) t = std::max(t, tail[static_cast<size_t>(s)]);
    tail[b] = cost + t;
    *work += cost;
  }
  return tail;
}

// Whether two of `nodes` are unordered by `hb` (may run at once).
bool BodiesMayOverlap(const std::vector<NodeId>& nodes, const HappensBefore& hb) {
  for (size_t i = 0; i < nodes.size(); ++i)
    for (size_t j = i + 1; j < nodes.size(); ++j)
      if (!hb.Before(nodes[i], nodes[j]) && !hb.Before(nodes[j], nodes[i])) return true;
  return false;
}

}  // namespace

void GraphExecutor::PrepareConcurrent() {
  const Graph& g = *graph_;
  const std::vector<double> flops = EstimateGraphFlops(g, StaticValueShapes(g));
  Result<BranchAnalysis> analysis = AnalyzeBranches(g, flops, options_.policy);
  // Nodes are topologically sorted and flops sized to match (checked by
  // Prepare's callers), so analysis cannot fail here.
  if (analysis.ok()) branches_ = std::move(analysis).value();
  if (options_.mode == ExecMode::kSequential || !analysis.ok()) {
    options_.mode = ExecMode::kSequential;
    return;
  }
  // One thread cannot overlap branches, and dataflow overlaps only the
  // branches of layers the policy marks parallel: keep the sequential order.
  default_sequential_ = IsTotalOrder(branches_) || intra_op_.threads <= 1 ||
                        (options_.mode == ExecMode::kDataflow && branches_.parallel_layers == 0);
  const size_t nv = g.values.size();
  auto freeable = [&](ValueId v) { return g.values[v].producer >= 0 && !is_output_[v]; };
  readers_.assign(nv, {});
  initial_refs_.assign(nv, 0);
  releases_.assign(g.nodes.size(), {});
  for (size_t s = 0; s < g.nodes.size(); ++s) {
    const Node& node = g.nodes[s];
    std::vector<ValueId>& rel = releases_[s];
    auto read = [&](ValueId v) {
      if (v == kNoValue || std::find(rel.begin(), rel.end(), v) != rel.end()) return;
      rel.push_back(v);
      readers_[v].push_back(static_cast<NodeId>(s));
    };
    for (ValueId v : node.inputs) read(v);
    for (ValueId v : node.implicit_inputs) read(v);
  }
  // An alias's readers keep its parent's bytes: fold them in, latest alias
  // first so chains (Reshape of a Reshape) reach their root.
  for (size_t s = g.nodes.size(); s-- > 0;) {
    if (alias_input_[s] < 0) continue;
    const ValueId out = g.nodes[s].outputs[0];
    std::vector<NodeId>& into = readers_[alias_parent_[out]];
    for (NodeId n : readers_[out])
      if (std::find(into.begin(), into.end(), n) == into.end()) into.push_back(n);
  }
  for (size_t s = 0; s < g.nodes.size(); ++s) {
    std::vector<ValueId>& rel = releases_[s];
    for (ValueId v : rel) ++initial_refs_[v];
    rel.erase(std::remove_if(rel.begin(), rel.end(), [&](ValueId v) { return !freeable(v); }),
              rel.end());
  }
  for (size_t v = 0; v < nv; ++v)
    if (alias_parent_[v] != kNoValue) ++initial_refs_[alias_parent_[v]];
  for (size_t v = 0; v < nv; ++v) {
    const ValueId id = static_cast<ValueId>(v);
    if (freeable(id) && initial_refs_[v] == 0) {  // Nobody reads it.
      initial_refs_[v] = 1;
      releases_[static_cast<size_t>(g.values[v].producer)].push_back(id);
    }
  }
  refs_ = std::make_unique<std::atomic<int32_t>[]>(nv);
  default_tasks_ = BuildTasks(ConstrainBranches(branches_, ModeConstraints()), flops);
}

// Both concurrent modes run the branches of a layer the policy does not mark
// parallel one after another (the paper's refinement: short or unbalanced
// branches gain less from overlapping than their kernels gain from the
// threads); layers adds a barrier between layers, dataflow does not.
BranchConstraints GraphExecutor::ModeConstraints() const {
  BranchConstraints c;
  c.chain_serial = true;
  c.layer_barriers = options_.mode == ExecMode::kLayers;
  return c;
}

std::shared_ptr<GraphExecutor::TaskPlan> GraphExecutor::BuildTasks(
    const BranchAnalysis& analysis, const std::vector<double>& node_flops) const {
  const std::vector<Branch>& br = analysis.branches;
  const size_t nb = br.size();
  double work = 0;
  std::vector<double> prio = CostToSink(analysis, node_flops, &work);
  auto plan = std::make_shared<TaskPlan>();
  std::vector<std::vector<int32_t>> succs(nb);
  for (size_t b = 0; b < nb; ++b) {
    plan->task_nodes.push_back(br[b].nodes);
    succs[b] = br[b].succs;
  }
  plan->graph = std::make_unique<ThreadPool::TaskGraph>(succs, std::move(prio));
  // A layer's branches with no predecessor in the layer head its chains.
  for (const std::vector<int32_t>& layer : analysis.layers) {
    int heads = 0;
    for (int32_t b : layer) {
      const std::vector<int32_t>& preds = br[static_cast<size_t>(b)].preds;
      heads += std::none_of(preds.begin(), preds.end(), [&](int32_t p) {
        return analysis.branches[static_cast<size_t>(p)].layer ==
               analysis.branches[static_cast<size_t>(b)].layer;
      });
    }
    plan->layer_width = std::max(plan->layer_width, heads);
  }
  return plan;
}

void GraphExecutor::Unref(ValueId v) {
  const Value& val = graph_->values[v];
  if (val.producer < 0 || is_output_[v]) return;
  if (refs_[v].fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  live_bytes_.fetch_sub(observed_size_[v], std::memory_order_relaxed);
  slots_[v] = Tensor();
  if (alias_parent_[v] != kNoValue) Unref(alias_parent_[v]);
}

Status GraphExecutor::RunConcurrent(TaskPlan& tasks) {
  const size_t nv = graph_->values.size();
  for (size_t v = 0; v < nv; ++v) refs_[v].store(initial_refs_[v], std::memory_order_relaxed);
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status first_error;
  auto run_task = [&](int32_t t) {
    for (NodeId n : tasks.task_nodes[static_cast<size_t>(t)]) {
      if (!failed.load(std::memory_order_relaxed)) {
        Status s = ExecuteNode(static_cast<size_t>(n));
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (first_error.ok()) first_error = std::move(s);
          failed.store(true, std::memory_order_relaxed);
        }
      }
      for (ValueId v : releases_[static_cast<size_t>(n)]) Unref(v);
    }
  };
  if (intra_op_.pool == nullptr) {
    for (int32_t t = 0; t < tasks.graph->size(); ++t) run_task(t);  // Ids are topological.
  } else {
    intra_op_.pool->RunGraph(*tasks.graph, intra_op_.threads, run_task);
  }
  return first_error;
}

MemoryPlan GraphExecutor::PlanOrdered(const std::vector<BufferRequest>& seq_reqs,
                                      const std::vector<ValueId>& ids,
                                      const HappensBefore& hb) const {
  std::vector<OrderedRequest> reqs(seq_reqs.size());
  for (size_t i = 0; i < seq_reqs.size(); ++i) {
    reqs[i].size = seq_reqs[i].size;
    reqs[i].writer = graph_->values[ids[i]].producer;
    reqs[i].readers = readers_[ids[i]];
  }
  return PlanMemoryOrdered(
      reqs, [&hb](int32_t a, int32_t b) { return hb.Before(a, b); }, kArenaAlignment);
}

// The mode's schedule (branches of layers the policy does not mark parallel
// serialised; none at all for a dataflow graph without parallel layers),
// then (dataflow) every parallel layer narrowed to W - 1, W / 2, W / 4, ...
// 2 branches at once (W: the widest layer), then one branch at a time;
// keeping those within max_plan_ratio x the sequential plan that save memory
// over the one before.
void GraphExecutor::PlanConcurrent(const std::vector<BufferRequest>& seq_reqs,
                                   const std::vector<ValueId>& ids, size_t seq_bytes,
                                   std::vector<Schedule>* out) const {
  const std::vector<double> flops = EstimateGraphFlops(*graph_, observed_shape_);
  Result<BranchAnalysis> measured = AnalyzeBranches(*graph_, flops, options_.policy);
  const BranchAnalysis& base = measured.ok() ? *measured : branches_;
  if (IsTotalOrder(base) || intra_op_.threads <= 1 ||
      (options_.mode == ExecMode::kDataflow && base.parallel_layers == 0))
    return;
  double total_flops = 0;
  for (double f : flops) total_flops += f;
  double work = 0;
  const std::vector<double> tails = CostToSink(base, flops, &work);
  const double span = tails.empty() ? 0.0 : *std::max_element(tails.begin(), tails.end());
  if (total_flops < kMinConcurrentFlops || work < kMinPotentialSpeedup * span) return;
  std::vector<BranchConstraints> tries = {ModeConstraints()};
  if (options_.mode == ExecMode::kDataflow) {
    BranchConstraints c;
    c.chain_serial = true;
    // Widths W - 1, W / 2, W / 4, ... down to 2 (W: the widest layer).
    const int widest = base.max_branch_width;
    std::vector<int> widths;
    for (int w = widest / 2; w >= 2; w /= 2) widths.push_back(w);
    if (widest - 1 >= 2 && (widths.empty() || widths.front() != widest - 1))
      widths.insert(widths.begin(), widest - 1);
    for (int w : widths) {
      c.max_width = w;
      tries.push_back(c);
    }
    c = BranchConstraints();
    c.chain_all = true;
    tries.push_back(c);
  }
  const double cap = options_.max_plan_ratio * static_cast<double>(seq_bytes);
  std::vector<NodeId> body_nodes;
  for (size_t s = 0; s < has_body_.size(); ++s)
    if (has_body_[s]) body_nodes.push_back(static_cast<NodeId>(s));
  for (const BranchConstraints& c : tries) {
    BranchAnalysis constrained = ConstrainBranches(base, c);
    const HappensBefore hb(constrained);
    MemoryPlan plan = PlanOrdered(seq_reqs, ids, hb);
    const bool within =
        options_.mode == ExecMode::kLayers || static_cast<double>(plan.arena_bytes) <= cap;
    if (!within || (!out->empty() && plan.arena_bytes >= out->back().plan.arena_bytes)) continue;
    out->push_back(Schedule{std::move(plan), BuildTasks(constrained, flops),
                            BodiesMayOverlap(body_nodes, hb)});
  }
}

void GraphExecutor::RecordTrace(size_t step, std::chrono::steady_clock::time_point t0,
                                std::chrono::steady_clock::time_point t1) {
  const Node& node = graph_->nodes[step];
  TraceRecorder& trace = *options_.trace;
  const int32_t branch =
      !is_body_ && step < branches_.branch_of.size() ? branches_.branch_of[step] : -1;
  // The recorder's clock is steady_clock too: shift by its NowNs origin.
  const auto now = std::chrono::steady_clock::now();
  const int64_t now_ns = trace.NowNs();
  auto ns = [&](std::chrono::steady_clock::time_point t) {
    return now_ns - std::chrono::duration_cast<std::chrono::nanoseconds>(now - t).count();
  };
  trace.Slice(ThreadPool::CurrentWorker(), node.name, node.op_type, branch, ns(t0), ns(t1));
  if (!is_body_)
    trace.Counter(ns(t1), static_cast<int64_t>(live_bytes_.load(std::memory_order_relaxed)));
}

}  // namespace parallax
