#include "runtime/graph_executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "plan/memory_split.h"

namespace parallax {
namespace {

// Enough for a decoder Loop body whose shapes grow every step (one signature
// per step) to keep every step's plan across runs.
constexpr size_t kMaxCachedPlans = 256;

class SubgraphRunnerImpl : public SubgraphRunner {
 public:
  explicit SubgraphRunnerImpl(std::unique_ptr<GraphExecutor> exec) : exec_(std::move(exec)) {}
  Status Run(const std::vector<Tensor>& inputs, const std::vector<Tensor>& captures,
             std::vector<Tensor>* outputs) override {
    return exec_->Run(inputs, captures, outputs);
  }
  // The body's own arenas are outside `bytes` (the parent subtracted every
  // body's), so they count toward its budget again.
  void set_free_bytes(size_t bytes) override {
    exec_->set_memory_budget(bytes == SIZE_MAX ? 0
                                               : std::max<size_t>(1, bytes + exec_->HeldBytes()));
  }

 private:
  std::unique_ptr<GraphExecutor> exec_;
};

}  // namespace

// Hands out output buffers for one node: planned arena slots when the plan
// has room, owned dynamic tensors otherwise.
class GraphExecutor::RunAllocator : public OutputAllocator {
 public:
  explicit RunAllocator(GraphExecutor* exec) : exec_(exec) {}
  void set_node(const Node* node) { node_ = node; }

  Result<Tensor> Allocate(int output_index, DType dtype, const Shape& shape) override {
    ValueId v = node_->outputs[static_cast<size_t>(output_index)];
    size_t bytes = static_cast<size_t>(NumElements(shape)) * DTypeSize(dtype);
    const CachedPlan* plan = exec_->active_plan_;
    if (v != kNoValue && plan != nullptr && plan->request_of_value[v] >= 0 &&
        bytes <= plan->planned_size[v]) {
      size_t offset = (*exec_->active_offsets_)[static_cast<size_t>(plan->request_of_value[v])];
      return Tensor::View(dtype, shape, exec_->arena_.get() + offset);
    }
    if (v != kNoValue && plan != nullptr && plan->request_of_value[v] >= 0) {
      exec_->needs_replan_.store(true, std::memory_order_relaxed);  // Data-dependent shape.
    }
    const size_t budget = exec_->budget_bytes_;
    // A planned run's intermediates count on top of its whole arena; graph
    // outputs (the caller's, never in a plan) on top of the live bytes.
    const bool caller_owned = plan != nullptr && v != kNoValue && exec_->is_output_[v];
    const size_t used =
        caller_owned ? exec_->live_bytes_.load(std::memory_order_relaxed) : exec_->UsedBytes();
    if (budget > 0 && used + exec_->BodiesHeld() + bytes > budget) {
      // Unplanned runs record shapes; this one tells a memory split its size.
      if (v != kNoValue && plan == nullptr) exec_->observed_shape_[v] = ValueShape{true, shape};
      return ResourceExhausted(node_->Describe() + ": output " + std::to_string(output_index) +
                               " needs " + std::to_string(bytes) + " more bytes, over the " +
                               std::to_string(budget) + "-byte memory budget");
    }
    Tensor t = Tensor::Uninitialized(dtype, shape);
    if (t.raw_data() == nullptr)
      return ResourceExhausted(node_->Describe() + ": cannot allocate " + std::to_string(bytes) +
                               " bytes for output " + std::to_string(output_index));
    if (v == kNoValue || !exec_->is_output_[v])
      exec_->dynamic_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return t;
  }

 private:
  GraphExecutor* exec_;
  const Node* node_ = nullptr;
};

const char* ExecutionModeName(ExecutionMode mode) {
  switch (mode) {
    case ExecMode::kSequential:
      return "sequential";
    case ExecMode::kLayers:
      return "layers";
    case ExecMode::kDataflow:
      return "dataflow";
  }
  return "?";
}

Result<ExecutionMode> ParseExecutionMode(const std::string& name) {
  for (ExecMode m : {ExecMode::kSequential, ExecMode::kLayers, ExecMode::kDataflow})
    if (name == ExecutionModeName(m)) return m;
  return InvalidArgument("unknown execution mode '" + name +
                         "' (expected sequential, layers or dataflow)");
}

GraphExecutor::GraphExecutor(std::shared_ptr<const Graph> graph, Backend* backend,
                             const IntraOp& intra_op, const ExecOptions& options)
    : graph_(std::move(graph)), backend_(backend), intra_op_(intra_op), options_(options) {}

Result<std::unique_ptr<GraphExecutor>> GraphExecutor::Create(std::shared_ptr<const Graph> graph,
                                                             Backend* backend,
                                                             const IntraOp& intra_op,
                                                             const ExecOptions& options) {
  std::unique_ptr<GraphExecutor> exec(
      new GraphExecutor(std::move(graph), backend, intra_op, options));
  PX_RETURN_IF_ERROR(exec->Prepare());
  return exec;
}

void GraphExecutor::set_trace(TraceRecorder* trace) {
  options_.trace = trace;
  for (GraphExecutor* body : bodies_) body->set_trace(trace);
}

Status GraphExecutor::Prepare() {
  const Graph& g = *graph_;
  std::string unsupported;
  for (const Node& node : g.nodes) {
    Support s = backend_->Supports(g, node);
    if (!s.supported) unsupported += "\n  " + node.Describe() + ": " + s.reason;
  }
  if (!unsupported.empty())
    return Unsupported("graph '" + g.name + "' has nodes backend '" +
                       std::string(backend_->name()) + "' cannot run:" + unsupported);
  Backend* backend = backend_;
  const IntraOp intra_op = intra_op_;
  const ExecOptions body_options = options_;
  std::vector<GraphExecutor*>* bodies = &bodies_;
  for (const Node& node : g.nodes) {
    KernelInit init{
        node, g,
        [backend, intra_op, body_options,
         bodies](const Graph& body) -> Result<std::unique_ptr<SubgraphRunner>> {
          auto shared = std::shared_ptr<const Graph>(std::shared_ptr<const Graph>{}, &body);
          std::unique_ptr<GraphExecutor> exec(
              new GraphExecutor(std::move(shared), backend, intra_op, body_options));
          exec->is_body_ = true;
          exec->allow_split_ = false;
          PX_RETURN_IF_ERROR(exec->Prepare());
          bodies->push_back(exec.get());
          return std::unique_ptr<SubgraphRunner>(new SubgraphRunnerImpl(std::move(exec)));
        },
        intra_op};
    const size_t i = kernels_.size();
    if (i < donors_.size() && donors_[i] != nullptr) {
      kernels_.push_back(donors_[i]);
      continue;
    }
    Result<std::unique_ptr<Kernel>> k = backend_->CreateKernel(init);
    if (!k.ok()) return k.status();
    kernels_.push_back(std::move(k).value());
  }
  has_body_.assign(g.nodes.size(), false);
  for (size_t s = 0; s < g.nodes.size(); ++s)
    for (const auto& [key, attr] : g.nodes[s].attrs)
      if (attr.g) has_body_[s] = true;
  const size_t nv = g.values.size();
  last_use_.assign(nv, -1);
  is_output_.assign(nv, false);
  for (ValueId o : g.outputs) is_output_[o] = true;
  for (size_t s = 0; s < g.nodes.size(); ++s) {
    const Node& node = g.nodes[s];
    for (ValueId v : node.inputs)
      if (v != kNoValue) last_use_[v] = static_cast<int32_t>(s);
    for (ValueId v : node.implicit_inputs) last_use_[v] = static_cast<int32_t>(s);
    for (ValueId v : node.outputs)
      if (v != kNoValue && last_use_[v] < static_cast<int32_t>(s))
        last_use_[v] = static_cast<int32_t>(s);
  }
  PlanAliases();
  frees_after_.assign(g.nodes.size(), {});
  for (size_t v = 0; v < nv; ++v) {
    const Value& val = g.values[v];
    if (val.producer < 0 || is_output_[v]) continue;  // Not ours to free.
    frees_after_[static_cast<size_t>(last_use_[v])].push_back(static_cast<ValueId>(v));
  }
  PrepareConcurrent();
  return Status::Ok();
}

// Output 0 of two kinds of nodes is an alias of one input (shares its
// bytes): reshape-like nodes may hand out input 0's bytes
// (KernelContext::ForwardInput), and nodes whose kernel may write over an
// input (Backend::ReusableInputs, KernelContext::OutputOver) get to when
// nothing else ever reads those bytes (CanWriteOver). Each alias has a root
// value that owns the bytes; the root's last use is extended over its
// aliases' so the planner keeps the bytes until the last alias reader.
// Graph outputs never alias.
//
// Stage: Prepare, after last_use_ holds each value's own last reader.
void GraphExecutor::PlanAliases() {
  const Graph& g = *graph_;
  const size_t nv = g.values.size();
  forwards_.assign(g.nodes.size(), false);
  alias_input_.assign(g.nodes.size(), -1);
  is_alias_.assign(nv, false);
  alias_parent_.assign(nv, kNoValue);
  std::vector<int32_t> readers(nv, 0);  // Distinct nodes reading each value.
  std::vector<int32_t> last_reader(nv, -1);
  for (size_t s = 0; s < g.nodes.size(); ++s) {
    auto read = [&](ValueId v) {
      if (v == kNoValue || last_reader[v] == static_cast<int32_t>(s)) return;
      last_reader[v] = static_cast<int32_t>(s);
      ++readers[v];
    };
    for (ValueId v : g.nodes[s].inputs) read(v);
    for (ValueId v : g.nodes[s].implicit_inputs) read(v);
  }
  for (size_t s = 0; s < g.nodes.size(); ++s) {
    const Node& node = g.nodes[s];
    if (node.outputs.empty() || node.outputs[0] == kNoValue || is_output_[node.outputs[0]])
      continue;
    const bool forwarding = ForwardsInput(node);
    int input = forwarding ? 0 : -1;
    if (!forwarding && options_.in_place) {
      for (int k : backend_->ReusableInputs(node)) {
        if (CanWriteOver(s, k, readers)) {
          input = k;
          break;
        }
      }
    }
    if (input < 0) continue;
    const ValueId out = node.outputs[0], in = node.inputs[static_cast<size_t>(input)];
    forwards_[s] = forwarding;
    alias_input_[s] = static_cast<int8_t>(input);
    is_alias_[out] = true;
    alias_parent_[out] = in;
  }
  // Every value an alias may share bytes with lives as long as the alias: not
  // only the root, since an alias whose node did not share at run time (a
  // broadcasting Add) owns bytes its own aliases share. Later nodes first, so
  // an alias's last use is final before it extends its parent's.
  for (size_t s = g.nodes.size(); s-- > 0;) {
    if (alias_input_[s] < 0) continue;
    const ValueId out = g.nodes[s].outputs[0];
    last_use_[alias_parent_[out]] = std::max(last_use_[alias_parent_[out]], last_use_[out]);
  }
}

// Node `step` may write its output 0 over input `k` when that input (and,
// up its alias chain, every value whose bytes it shares) is read by no other
// node, the bytes come from a node of this graph (not an input, constant or
// graph output), the input appears once among the node's inputs, and its
// static dtype and element count do not rule it out. At run time the
// executor still requires the input's bytes to be its own (fresh_).
bool GraphExecutor::CanWriteOver(size_t step, int k, const std::vector<int32_t>& readers) const {
  const Graph& g = *graph_;
  const Node& node = g.nodes[step];
  if (k < 0 || static_cast<size_t>(k) >= node.inputs.size()) return false;
  const ValueId v = node.inputs[static_cast<size_t>(k)];
  if (v == kNoValue || readers[v] != 1) return false;
  if (std::count(node.inputs.begin(), node.inputs.end(), v) != 1) return false;
  const Value& in = g.values[v];
  const Value& out = g.values[node.outputs[0]];
  if (in.dtype != DType::kUndefined && out.dtype != DType::kUndefined && in.dtype != out.dtype)
    return false;
  auto numel = [](const Value& x) -> int64_t {
    if (!x.has_shape) return -1;
    int64_t n = 1;
    for (const Dim& d : x.dims) {
      if (!d.known()) return -1;
      n *= d.size;
    }
    return n;
  };
  if (numel(in) >= 0 && numel(out) >= 0 && numel(in) != numel(out)) return false;
  // A likely broadcast input (lower rank, or a 1 where the output's dim is
  // not known to be 1) would not be written over, only kept alive longer.
  if (in.has_shape && out.has_shape) {
    if (in.dims.size() < out.dims.size()) return false;
    for (size_t i = 0; i < out.dims.size(); ++i) {
      const Dim& di = in.dims[in.dims.size() - 1 - i];
      const Dim& d_out = out.dims[out.dims.size() - 1 - i];
      if (di.known() && di.size == 1 && !(d_out.known() && d_out.size == 1)) return false;
    }
  }
  for (ValueId c = v;;) {
    const Value& val = g.values[c];
    if (val.producer < 0 || val.is_constant() || is_output_[c]) return false;
    const ValueId parent = alias_parent_[c];
    if (parent == kNoValue) return true;
    if (readers[parent] != 1) return false;  // Only c's producer reads it.
    c = parent;
  }
}

void GraphExecutor::ResetProfile() {
  profile_ms_.assign(graph_->nodes.size(), 0.0);
  profiled_runs_ = 0;
}

Status GraphExecutor::BindInputs(const std::vector<Tensor>& inputs,
                                 const std::vector<Tensor>& captures) {
  const Graph& g = *graph_;
  if (inputs.size() != g.inputs.size())
    return InvalidArgument("graph '" + g.name + "' expects " + std::to_string(g.inputs.size()) +
                           " inputs, got " + std::to_string(inputs.size()));
  if (captures.size() != g.captures.size())
    return Internal("graph '" + g.name + "' capture count mismatch");
  slots_.assign(g.values.size(), Tensor());
  fresh_.assign(g.values.size(), 0);
  for (size_t v = 0; v < g.values.size(); ++v)
    if (g.values[v].is_constant()) slots_[v] = g.values[v].constant;
  for (size_t i = 0; i < inputs.size(); ++i) slots_[g.inputs[i]] = inputs[i];
  for (size_t i = 0; i < captures.size(); ++i) slots_[g.captures[i].second] = captures[i];
  return Status::Ok();
}

size_t GraphExecutor::HeldBytes() const {
  return held_bytes_.load(std::memory_order_relaxed) + BodiesHeld();
}

size_t GraphExecutor::BodiesHeld() const {
  size_t held = 0;
  for (const GraphExecutor* b : bodies_) held += b->HeldBytes();
  return held;
}

size_t GraphExecutor::UsedBytes() const {
  return active_plan_ != nullptr ? arena_capacity_ + dynamic_bytes_.load(std::memory_order_relaxed)
                                 : live_bytes_.load(std::memory_order_relaxed);
}

void GraphExecutor::FreeArena() {
  arena_.reset();
  arena_capacity_ = 0;
  held_bytes_.store(0, std::memory_order_relaxed);
}

void GraphExecutor::FreeArenas() {
  FreeArena();
  for (GraphExecutor* b : bodies_) b->FreeArenas();
}

std::string GraphExecutor::Signature() const {
  std::string sig;
  auto add = [&](const Tensor& t) {
    sig += std::to_string(static_cast<int>(t.dtype()));
    sig += ShapeToString(t.shape());
  };
  for (ValueId v : graph_->inputs) add(slots_[v]);
  for (const auto& c : graph_->captures) add(slots_[c.second]);
  return sig;
}

void GraphExecutor::AddLive(size_t bytes) {
  const size_t now = live_bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  size_t peak = peak_bytes_.load(std::memory_order_relaxed);
  while (now > peak && !peak_bytes_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

Status GraphExecutor::ExecuteNode(size_t step) {
  const Node& node = graph_->nodes[step];
  std::vector<const Tensor*> ins;
  ins.reserve(node.inputs.size());
  for (ValueId v : node.inputs) {
    if (v != kNoValue && !slots_[v].defined())
      return Internal(node.Describe() + ": input '" + graph_->values[v].name +
                      "' was not computed");
    ins.push_back(v == kNoValue ? nullptr : &slots_[v]);
  }
  std::vector<const Tensor*> implicit;
  for (ValueId v : node.implicit_inputs) implicit.push_back(&slots_[v]);
  RunAllocator alloc(this);
  alloc.set_node(&node);
  KernelContext ctx(node, std::move(ins), std::move(implicit),
                    static_cast<int>(node.outputs.size()), &alloc);
  ctx.set_intra_op(intra_op_);
  if (has_body_[step] && budget_bytes_ > 0) {
    const size_t used = UsedBytes() + BodiesHeld();
    ctx.set_subgraph_free_bytes(budget_bytes_ > used ? budget_bytes_ - used : 0);
  }
  ctx.set_may_forward(forwards_[step]);
  const int alias_input = alias_input_[step];
  if (alias_input >= 0 && !forwards_[step] && fresh_[node.inputs[static_cast<size_t>(alias_input)]])
    ctx.set_reusable_input(alias_input);
  const bool timed = profiling_ || options_.trace != nullptr;
  std::chrono::steady_clock::time_point t0, t1;
  if (timed) {
    t0 = std::chrono::steady_clock::now();
    Status s = kernels_[step]->Run(ctx);
    t1 = std::chrono::steady_clock::now();
    if (profiling_) run_ms_[step] = std::chrono::duration<double, std::milli>(t1 - t0).count();
    PX_RETURN_IF_ERROR(s);
  } else {
    PX_RETURN_IF_ERROR(kernels_[step]->Run(ctx));
  }
  size_t produced = 0;
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    ValueId v = node.outputs[i];
    if (v == kNoValue) continue;
    Tensor& out = ctx.outputs()[i];
    if (!out.defined())
      return Internal(node.Describe() + ": kernel did not produce output " + std::to_string(i));
    // An alias sharing its input's bytes: already counted for its root, and
    // ours to overwrite only if the input's were.
    const bool shares =
        is_alias_[v] && i == 0 && out.raw_data() == ctx.input(alias_input).raw_data();
    observed_size_[v] = shares ? 0 : out.nbytes();
    fresh_[v] = ctx.output_fresh(static_cast<int>(i)) &&
                (!shares || fresh_[node.inputs[static_cast<size_t>(alias_input)]]);
    if (active_plan_ == nullptr) observed_shape_[v] = ValueShape{true, out.shape()};
    produced += observed_size_[v];
    slots_[v] = std::move(out);
  }
  AddLive(produced);
  if (options_.trace != nullptr) RecordTrace(step, t0, t1);
  return Status::Ok();
}

Status GraphExecutor::RunSequential() {
  for (size_t step = 0; step < graph_->nodes.size(); ++step) {
    PX_RETURN_IF_ERROR(ExecuteNode(step));
    size_t freed = 0;
    for (ValueId v : frees_after_[step]) {
      freed += observed_size_[v];
      slots_[v] = Tensor();
    }
    live_bytes_.fetch_sub(freed, std::memory_order_relaxed);
  }
  return Status::Ok();
}

// Re-planning a signature (a data-dependent value outgrew its slot) keeps
// every slot at least as large as before, so values that peak on different
// runs stop triggering re-plans once each has reached its maximum.
void GraphExecutor::BuildPlan(const std::string& signature) {
  const Graph& g = *graph_;
  const auto prev_it = plans_.find(signature);
  const CachedPlan* prev = prev_it != plans_.end() ? &prev_it->second : nullptr;
  CachedPlan cp;
  cp.request_of_value.assign(g.values.size(), -1);
  cp.planned_size.assign(g.values.size(), 0);
  // Shapes come from this run when it was unplanned, else from the plan it re-plans.
  if (active_plan_ == nullptr)
    cp.shapes = observed_shape_;
  else if (prev != nullptr)
    cp.shapes = prev->shapes;
  std::vector<BufferRequest> reqs;
  std::vector<ValueId> ids;  // Value of each request.
  for (size_t v = 0; v < g.values.size(); ++v) {
    const Value& val = g.values[v];
    if (val.producer < 0 || is_output_[v] || (is_alias_[v] && observed_size_[v] == 0)) continue;
    const size_t size = prev != nullptr && prev->request_of_value[v] >= 0
                            ? std::max(observed_size_[v], prev->planned_size[v])
                            : observed_size_[v];
    cp.request_of_value[v] = static_cast<int32_t>(reqs.size());
    cp.planned_size[v] = size;
    reqs.push_back({size, val.producer, last_use_[v]});
    ids.push_back(static_cast<ValueId>(v));
  }
  MemoryPlan seq_plan = PlanMemory(reqs, kArenaAlignment);
  if (options_.mode != ExecMode::kSequential)
    PlanConcurrent(reqs, ids, seq_plan.arena_bytes, &cp.schedules);
  cp.schedules.push_back(Schedule{std::move(seq_plan), nullptr});
  if (prev == nullptr && plans_.size() >= kMaxCachedPlans) {  // Evict the least recently used.
    auto lru = plans_.begin();
    for (auto it = plans_.begin(); it != plans_.end(); ++it)
      if (it->second.last_used < lru->second.last_used) lru = it;
    plans_.erase(lru);
  }
  cp.last_used = ++run_counter_;
  plans_[signature] = std::move(cp);
}

Status GraphExecutor::Run(const std::vector<Tensor>& inputs, const std::vector<Tensor>& captures,
                          std::vector<Tensor>* outputs) {
  PX_RETURN_IF_ERROR(BindInputs(inputs, captures));
  const std::string sig = Signature();
  auto it = plans_.find(sig);
  active_plan_ = nullptr;
  if (it != plans_.end()) {
    it->second.last_used = ++run_counter_;
    active_plan_ = &it->second;
  }
  stats_ = ExecStats();
  ExecMode mode = options_.mode;
  const size_t budget = budget_bytes_;
  active_offsets_ = nullptr;
  TaskPlan* tasks = default_tasks_.get();  // Concurrent modes; null when sequential-only.
  const MemoryPlan* chosen_plan = nullptr;
  const Schedule* chosen = nullptr;
  bool planned_over_budget = false;  // A plan exists, but none fits: run unplanned.
  size_t bodies_held = budget > 0 ? BodiesHeld() : 0;  // Subgraph arenas, in the budget.
  if (active_plan_ != nullptr) {
    // Admission: the most concurrent schedule whose plan fits the budget
    // beside the bodies' arenas, none that could run two bodies at once.
    const std::vector<Schedule>& schedules = active_plan_->schedules;
    chosen = &schedules.front();
    if (budget > 0) {
      auto admit = [&]() -> const Schedule* {
        for (const Schedule& s : schedules)
          if (!s.concurrent_bodies && s.plan.arena_bytes + bodies_held <= budget) return &s;
        return nullptr;
      };
      chosen = admit();
      if (chosen == nullptr && bodies_held > 0) {  // Arenas from earlier runs may shrink.
        for (GraphExecutor* b : bodies_) b->FreeArenas();
        bodies_held = 0;
        chosen = admit();
      }
      const Schedule* leanest = &schedules.back();
      for (const Schedule& s : schedules)
        if (s.plan.arena_bytes < leanest->plan.arena_bytes) leanest = &s;
      if (chosen == nullptr) {
        const std::string refusal =
            "graph '" + graph_->name + "' needs " + std::to_string(leanest->plan.arena_bytes) +
            " activation bytes even in its leanest schedule, over the memory budget of " +
            std::to_string(budget) + " bytes" +
            (bodies_held > 0
                 ? " beside the " + std::to_string(bodies_held) + " bytes its subgraph bodies hold"
                 : std::string());
        active_plan_ = nullptr;
        planned_over_budget = true;
        if (!unplanned_fallback_) {
          if (!allow_split_) return ResourceExhausted(refusal);
          slots_.clear();
          return RunSplit(sig, budget, refusal, inputs, captures, outputs);
        }
      }
    }
  }
  if (chosen != nullptr) {
    const std::vector<Schedule>& schedules = active_plan_->schedules;
    if (chosen->tasks == nullptr) mode = ExecMode::kSequential;
    tasks = chosen->tasks.get();
    chosen_plan = &chosen->plan;
    active_offsets_ = &chosen_plan->offsets;
    size_t need = std::max<size_t>(chosen_plan->arena_bytes, kArenaAlignment);
    // Under a budget the arena shrinks to the plan when it would not fit beside the bodies'.
    const bool shrink =
        budget > 0 && arena_capacity_ > need && arena_capacity_ + bodies_held > budget;
    if (need > arena_capacity_ || shrink) {
      FreeArena();
      void* p = std::aligned_alloc(
          kArenaAlignment, (need + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment);
      if (p == nullptr)
        return ResourceExhausted("cannot allocate a " + std::to_string(need) + "-byte arena");
      arena_ = std::unique_ptr<uint8_t, void (*)(void*)>(static_cast<uint8_t*>(p), std::free);
      arena_capacity_ = need;
      held_bytes_.store(need, std::memory_order_relaxed);
    }
    stats_.used_plan = true;
    stats_.planned_arena_bytes = chosen_plan->arena_bytes;
    stats_.sequential_plan_bytes = schedules.back().plan.arena_bytes;
  } else if (budget > 0 || default_sequential_) {
    mode = ExecMode::kSequential;  // Unplanned: the lowest-peak order, each allocation checked.
    if (budget > 0) FreeArena();   // Unused this run; the checks count live bytes.
  }
  stats_.mode = mode;
  if (mode != ExecMode::kSequential) stats_.layer_width = tasks->layer_width;
  observed_size_.assign(graph_->values.size(), 0);
  if (active_plan_ == nullptr) {  // Record shapes for FLOP estimates: inputs, constants, outputs.
    observed_shape_.assign(graph_->values.size(), ValueShape{});
    for (size_t v = 0; v < slots_.size(); ++v)
      if (slots_[v].defined() && !slots_[v].is_sequence())
        observed_shape_[v] = ValueShape{true, slots_[v].shape()};
  }
  needs_replan_ = false;
  live_bytes_ = 0;
  peak_bytes_ = 0;
  dynamic_bytes_ = 0;
  if (profiling_) run_ms_.assign(graph_->nodes.size(), 0.0);
  Status status;
  if (mode == ExecMode::kSequential) {
    status = RunSequential();
  } else {
    status = RunConcurrent(*tasks);
  }
  stats_.measured_peak_bytes = peak_bytes_.load();
  stats_.dynamic_bytes = dynamic_bytes_.load();
  stats_.subgraph_bytes = BodiesHeld();
  if (!status.ok()) {
    slots_.clear();
    const bool planned = active_plan_ != nullptr;
    active_plan_ = nullptr;
    // A first run over the budget: the split copy, planned from static shapes.
    if (!planned && budget > 0 && allow_split_ && status.code() == StatusCode::kResourceExhausted)
      return RunSplit(sig, budget, status.message(), inputs, captures, outputs);
    return status;
  }
  outputs->clear();
  for (ValueId v : graph_->outputs) {
    const Tensor& t = slots_[v];
    if (!t.defined())
      return Internal("graph output '" + graph_->values[v].name + "' was not computed");
    // Outputs that alias arena memory or inputs are copied so callers own them.
    outputs->push_back(t.is_view() || graph_->values[v].producer < 0 ? Tensor::Copy(t) : t);
  }
  slots_.clear();
  if (profiling_) {
    if (profile_ms_.size() != run_ms_.size()) profile_ms_.assign(run_ms_.size(), 0.0);
    for (size_t i = 0; i < run_ms_.size(); ++i) profile_ms_[i] += run_ms_[i];
    ++profiled_runs_;
  }
  if ((active_plan_ == nullptr && !planned_over_budget) || needs_replan_) BuildPlan(sig);
  active_plan_ = nullptr;
  return Status::Ok();
}

}  // namespace parallax
