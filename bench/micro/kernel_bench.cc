#include "kernel_bench.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <utility>

#include "backends/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "ops/kernel.h"

namespace parallax::micro {
namespace {

std::atomic<bool> g_failed{false};

// Output buffers reused across runs, like the executor's planned arena slots:
// each run gets a view of its output's slot, which grows only when a shape
// needs more bytes than any earlier run.
class ReusedOutputs : public OutputAllocator {
 public:
  Result<Tensor> Allocate(int output_index, DType dtype, const Shape& shape) override {
    const size_t k = static_cast<size_t>(output_index);
    if (slots_.size() <= k) slots_.resize(k + 1);
    const int64_t bytes = NumElements(shape) * static_cast<int64_t>(DTypeSize(dtype));
    if (!slots_[k].defined() || slots_[k].numel() < bytes) {
      slots_[k] = Tensor::Uninitialized(DType::kUInt8, {std::max<int64_t>(bytes, 1)});
      if (slots_[k].raw_data() == nullptr)
        return ResourceExhausted("cannot allocate " + std::to_string(bytes) + " bytes");
    }
    return Tensor::View(dtype, shape, slots_[k].raw_data());
  }

 private:
  std::vector<Tensor> slots_;
};

Tensor RandomTensor(const InputSpec& spec, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(spec.low, spec.high);
  Tensor t = Tensor::Uninitialized(DType::kFloat32, spec.shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

// One case's node, ready to run at one thread count. Heap-allocated and never
// moved: the kernel may keep references to the node and graph.
struct Prepared {
  std::string key;                   // Case name and thread count.
  std::unique_ptr<ThreadPool> pool;  // Outlives the kernel (declared first).
  IntraOp intra_op;
  Graph graph;  // graph.nodes[0] is the benchmarked node.
  std::vector<Tensor> inputs;
  std::unique_ptr<Kernel> kernel;
  ReusedOutputs outputs;
  int64_t bytes_per_run = 0;  // Non-constant inputs plus outputs.

  // One execution, as GraphExecutor::RunNode does it (without profiling).
  // `produced`, when given, receives the outputs (views of the reused slots).
  Status Run(std::vector<Tensor>* produced = nullptr) {
    const Node& node = graph.nodes[0];
    std::vector<const Tensor*> ins;
    ins.reserve(inputs.size());
    for (const Tensor& t : inputs) ins.push_back(&t);
    KernelContext ctx(node, std::move(ins), {}, static_cast<int>(node.outputs.size()), &outputs);
    ctx.set_intra_op(intra_op);
    PX_RETURN_IF_ERROR(kernel->Run(ctx));
    for (size_t i = 0; i < node.outputs.size(); ++i)
      if (!ctx.outputs()[i].defined())
        return Internal(node.Describe() + ": kernel did not produce output " + std::to_string(i));
    if (produced != nullptr) *produced = std::move(ctx.outputs());
    return Status::Ok();
  }
};

// Builds the one-node graph of `c`, creates its kernel for `threads` threads
// and runs it once (untimed warm-up).
Result<std::unique_ptr<Prepared>> Prepare(const KernelCase& c, int threads) {
  auto p = std::make_unique<Prepared>();
  p->key = c.name + "@" + std::to_string(threads);
  p->pool = std::make_unique<ThreadPool>(threads);
  p->intra_op = IntraOp{p->pool.get(), threads};
  Node node;
  node.name = c.name;
  node.op_type = c.op_type;
  node.opset = c.opset;
  node.attrs = c.attrs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const InputSpec& spec = c.inputs[i];
    Value v;
    v.name = "in" + std::to_string(i);
    v.dtype = DType::kFloat32;
    v.has_shape = true;
    for (int64_t d : spec.shape) v.dims.push_back(Dim{d, ""});
    Tensor t = RandomTensor(spec, static_cast<uint32_t>(i + 1));
    if (spec.constant) {
      v.constant = t;
    } else {
      p->bytes_per_run += static_cast<int64_t>(t.nbytes());
    }
    p->inputs.push_back(t);
    node.inputs.push_back(p->graph.AddValue(std::move(v)));
  }
  for (int i = 0; i < c.num_outputs; ++i) {
    Value v;
    v.name = "out" + std::to_string(i);
    node.outputs.push_back(p->graph.AddValue(std::move(v)));
  }
  p->graph.nodes.push_back(std::move(node));
  p->graph.RebuildLinks();
  KernelInit init{p->graph.nodes[0], p->graph, {}, p->intra_op};
  PX_ASSIGN_OR_RETURN(p->kernel, DefaultCpuBackend().CreateKernel(init));
  // Warm-up: primitive creation, weight reorder, first touch of the outputs.
  std::vector<Tensor> produced;
  PX_RETURN_IF_ERROR(p->Run(&produced));
  for (const Tensor& out : produced) p->bytes_per_run += static_cast<int64_t>(out.nbytes());
  return p;
}

// Google Benchmark calls a benchmark function several times while it sizes
// the iteration count; the prepared node of the latest (case, threads) is
// kept so inputs and kernel are built once. One at a time bounds memory.
Result<Prepared*> PreparedFor(const KernelCase& c, int threads) {
  static std::unique_ptr<Prepared> latest;
  const std::string key = c.name + "@" + std::to_string(threads);
  if (latest == nullptr || latest->key != key) {
    latest.reset();  // Free the previous case before building this one.
    PX_ASSIGN_OR_RETURN(latest, Prepare(c, threads));
  }
  return latest.get();
}

void Fail(benchmark::State& state, const Status& s) {
  g_failed = true;
  state.SkipWithError(s.ToString().c_str());
}

void RunCase(benchmark::State& state, const KernelCase& c) {
  const int threads = static_cast<int>(state.range(0));
  Result<Prepared*> p = PreparedFor(c, threads);
  if (!p.ok()) {
    Fail(state, p.status());
    return;
  }
  Prepared* prepared = *p;
  for (auto _ : state) {
    Status s = prepared->Run();
    if (!s.ok()) {
      Fail(state, s);
      break;
    }
  }
  if (c.flops > 0)
    state.counters["flops"] =
        benchmark::Counter(c.flops, benchmark::Counter::kIsIterationInvariantRate);
  if (c.items > 0) {
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(c.items));
    state.SetBytesProcessed(state.iterations() * prepared->bytes_per_run);
  }
}

}  // namespace

void Register(const KernelCase& c, const std::vector<int>& threads) {
  benchmark::internal::Benchmark* b =
      benchmark::RegisterBenchmark(c.name.c_str(), [c](benchmark::State& s) { RunCase(s, c); });
  b->ArgName("threads")->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
  for (int t : threads) b->Arg(t);
}

bool AnyCaseFailed() { return g_failed; }

}  // namespace parallax::micro
