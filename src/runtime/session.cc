#include "parallax/session.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "backends/cpu/cpu_backend.h"
#include "plan/critical_path.h"
#include "runtime/graph_executor.h"
#include "runtime/model_data.h"
#include "runtime/trace.h"

namespace parallax {

struct Session::Impl {
  Model model;
  SessionOptions options;
  std::unique_ptr<ThreadPool> pool;  // Outlives executor (declared first).
  std::unique_ptr<GraphExecutor> executor;
  std::unique_ptr<TraceRecorder> trace;  // While StartTrace is in effect.
  std::mutex mu;                         // Serialises Run.
  RunStats stats;
  // The OS budget and when it was read (guarded by mu): runs closer together
  // than kOsBudgetTtl share one read.
  size_t os_budget = 0;
  std::chrono::steady_clock::time_point os_budget_read;
};

namespace {

// How long a MemAvailable reading serves later runs: reading /proc/meminfo
// costs 10-20 us (the kernel formats every field), 5-8% of a 0.2 ms model
// run, and free memory does not move meaningfully within a millisecond.
constexpr std::chrono::milliseconds kOsBudgetTtl{1};

// MemAvailable from /proc/meminfo minus a safety margin (10%, at least
// 256 MiB); 0 when it cannot be read (then no budget applies). Read with
// plain POSIX calls into a stack buffer.
size_t OsMemoryBudget() {
  const int fd = ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* line = std::strstr(buf, "MemAvailable:");
  if (line == nullptr) return 0;
  const int64_t bytes = std::strtoll(line + 13, nullptr, 10) * 1024;
  const int64_t margin = std::max<int64_t>(bytes / 10, int64_t{256} << 20);
  return bytes > margin ? static_cast<size_t>(bytes - margin) : 1;
}

}  // namespace

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

Result<Session> Session::Create(const Model& model, const SessionOptions& options) {
  if (options.threads < 1)
    return InvalidArgument("threads must be >= 1, got " + std::to_string(options.threads));
  if (options.memory_budget_bytes < -1)
    return InvalidArgument("memory budget must be > 0 bytes, 0 (from the OS) or -1 (unlimited)");
  if (options.backend != "cpu")
    return NotFound("backend '" + options.backend + "' is not available (built backends: cpu)");
  if (options.spin_us < 0)
    return InvalidArgument("spin_us must be >= 0, got " + std::to_string(options.spin_us));
  auto impl = std::make_unique<Impl>();
  impl->model = model;
  impl->options = options;
  impl->pool = std::make_unique<ThreadPool>(options.threads, options.spin_us);
  const IntraOp intra_op{impl->pool.get(), options.threads};
  if (!(options.max_plan_ratio >= 1.0))
    return InvalidArgument("max_plan_ratio must be >= 1, got " +
                           std::to_string(options.max_plan_ratio));
  ExecOptions exec_options;
  exec_options.mode = options.mode;
  exec_options.max_plan_ratio = options.max_plan_ratio;
  exec_options.in_place = options.in_place;
  PX_ASSIGN_OR_RETURN(
      impl->executor,
      GraphExecutor::Create(model.data().graph, &DefaultCpuBackend(), intra_op, exec_options));
  impl->executor->set_profiling(options.profile);
  return Session(std::move(impl));
}

namespace {

// Checks names, dtypes and shapes against the model's declared inputs and
// orders them; symbolic dims must bind consistently across inputs.
Result<std::vector<Tensor>> OrderInputs(const Model& model, const Session::NamedTensors& given) {
  const auto& infos = model.inputs();
  std::vector<Tensor> ordered(infos.size());
  std::vector<bool> seen(infos.size(), false);
  std::map<std::string, int64_t> symbols;
  for (const auto& [name, tensor] : given) {
    size_t i = 0;
    while (i < infos.size() && infos[i].name != name) ++i;
    if (i == infos.size()) {
      std::string names;
      for (const auto& info : infos) names += (names.empty() ? "" : ", ") + info.name;
      return InvalidArgument("unknown input '" + name + "'; the model's inputs are: " + names);
    }
    if (seen[i]) return InvalidArgument("input '" + name + "' given twice");
    seen[i] = true;
    const TensorInfo& info = infos[i];
    if (info.dtype == DType::kSequence && !tensor.is_sequence())
      return InvalidArgument("input '" + name + "' must be a sequence of tensors");
    if (info.dtype != DType::kUndefined && info.dtype != DType::kOptional &&
        tensor.dtype() != info.dtype)
      return InvalidArgument("input '" + name + "' has dtype " +
                             std::string(DTypeName(tensor.dtype())) + ", the model expects " +
                             std::string(DTypeName(info.dtype)));
    if (info.has_shape) {
      bool bad = tensor.rank() != static_cast<int>(info.dims.size());
      for (size_t d = 0; !bad && d < info.dims.size(); ++d) {
        int64_t got = tensor.shape()[d];
        if (info.dims[d] >= 0)
          bad = got != info.dims[d];
        else if (!info.symbols[d].empty()) {
          auto [it, inserted] = symbols.emplace(info.symbols[d], got);
          if (!inserted && it->second != got)
            return InvalidArgument("input '" + name + "' dimension " + std::to_string(d) + " ('" +
                                   info.symbols[d] + "') is " + std::to_string(got) +
                                   " but another input bound it to " + std::to_string(it->second));
        }
      }
      if (bad)
        return InvalidArgument("input '" + name + "' has shape " + ShapeToString(tensor.shape()) +
                               ", the model expects " + info.ShapeString());
    }
    ordered[i] = tensor;
  }
  for (size_t i = 0; i < infos.size(); ++i)
    if (!seen[i])
      return InvalidArgument("missing input '" + infos[i].name + "' (" +
                             std::string(DTypeName(infos[i].dtype)) + " " + infos[i].ShapeString() +
                             ")");
  return ordered;
}

}  // namespace

Result<std::vector<Tensor>> Session::Run(const NamedTensors& inputs) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  PX_ASSIGN_OR_RETURN(std::vector<Tensor> ordered, OrderInputs(impl_->model, inputs));
  std::vector<Tensor> outputs;
  const int64_t option = impl_->options.memory_budget_bytes;
  if (option == 0) {
    const auto now = std::chrono::steady_clock::now();
    if (impl_->os_budget_read == std::chrono::steady_clock::time_point() ||
        now - impl_->os_budget_read >= kOsBudgetTtl) {
      impl_->os_budget = OsMemoryBudget();
      impl_->os_budget_read = now;
    }
  }
  const size_t budget = option > 0    ? static_cast<size_t>(option)
                        : option == 0 ? impl_->os_budget
                                      : 0;
  impl_->executor->set_memory_budget(budget);
  impl_->executor->set_trace(impl_->trace.get());
  PX_RETURN_IF_ERROR(impl_->executor->Run(ordered, {}, &outputs));
  const ExecStats& es = impl_->executor->last_stats();
  impl_->stats = RunStats{es.planned_arena_bytes,
                          es.measured_peak_bytes,
                          es.dynamic_bytes,
                          es.sequential_plan_bytes,
                          budget,
                          es.mode,
                          es.layer_width,
                          es.split_regions,
                          es.split_pieces,
                          es.subgraph_bytes};
  return outputs;
}

RunStats Session::last_stats() const { return impl_->stats; }

BranchSummary Session::branch_summary() const {
  const BranchAnalysis& a = impl_->executor->branches();
  BranchSummary s;
  s.nodes = static_cast<int>(impl_->executor->graph().nodes.size());
  s.branches = static_cast<int>(a.branches.size());
  s.layers = static_cast<int>(a.layers.size());
  s.parallel_layers = a.parallel_layers;
  s.max_branch_width = a.max_branch_width;
  return s;
}

void Session::StartTrace() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->trace = std::make_unique<TraceRecorder>(impl_->options.threads);
}

Status Session::WriteTrace(const std::string& path) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->trace == nullptr) return InvalidArgument("no trace is being recorded (StartTrace)");
  Status s = impl_->trace->WriteJson(path);
  impl_->trace.reset();
  impl_->executor->set_trace(nullptr);
  return s;
}

Result<Profile> Session::profile() const {
  if (!impl_->options.profile)
    return InvalidArgument("profiling is off; set SessionOptions::profile");
  std::lock_guard<std::mutex> lock(impl_->mu);
  const GraphExecutor& exec = *impl_->executor;
  const Graph& g = exec.graph();
  Profile p;
  p.runs = exec.profiled_runs();
  std::vector<double> ms(g.nodes.size(), 0.0);
  if (p.runs > 0)
    for (size_t i = 0; i < ms.size() && i < exec.profile_ms().size(); ++i)
      ms[i] = exec.profile_ms()[i] / static_cast<double>(p.runs);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    p.nodes.push_back({g.nodes[i].name, g.nodes[i].op_type, ms[i]});
    p.work_ms += ms[i];
  }
  PX_ASSIGN_OR_RETURN(CriticalPath cp, ComputeCriticalPath(g, ms));
  p.critical_path_ms = cp.length;
  for (NodeId n : cp.nodes) p.critical_path.push_back(static_cast<size_t>(n));
  return p;
}

void Session::ResetProfile() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->executor->ResetProfile();
}

double Profile::LowerBoundMs(int threads) const {
  return LowerBound(work_ms, critical_path_ms, threads);
}
const Model& Session::model() const { return impl_->model; }

}  // namespace parallax
