// The kernel contract: how an op implementation sees its node and tensors.
//
// A backend turns each node into a Kernel once, when a session is prepared
// (KernelInit gives it the node, its static value info and any constant
// inputs, e.g. weights to pre-pack). Kernel::Run is then called once per
// execution with a KernelContext holding the concrete input tensors. A kernel
// computes its output shapes from the concrete inputs (run-time shape
// inference, including data-dependent ops) and asks the context for each
// output buffer with Output(); the executor decides where that buffer lives
// (planned arena slot or dynamic allocation).
//
// Thread safety: Run may be called from any thread, but never concurrently on
// the same Kernel object. Kernels must not keep pointers to tensors across
// calls. A kernel uses other threads only through its context's ParallelFor /
// ParallelRanges (the session's pool); it never starts threads of its own.
//
// Intra-op parallelism is deterministic: a kernel splits its work by
// IntraOp::threads, which is fixed per session, never by how many workers
// happen to be free, so a given session always computes the same bits.
#ifndef PARALLAX_OPS_KERNEL_H_
#define PARALLAX_OPS_KERNEL_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "graph/graph.h"
#include "parallax/status.h"
#include "parallax/tensor.h"

namespace parallax {

// The session's intra-op parallelism: its pool (nullptr = run inline) and the
// thread count kernels tile for.
struct IntraOp {
  ThreadPool* pool = nullptr;
  int threads = 1;

  // Calls fn(i) for every i in [0, n) on up to `threads` threads; blocks.
  template <typename F>
  void ParallelFor(int64_t n, F&& fn) const {
    if (pool == nullptr || threads <= 1 || n <= 1) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    pool->ParallelFor(n, threads, fn);
  }
  // Number of chunks ParallelRanges uses for `total` items.
  int64_t Chunks(int64_t total, int64_t min_chunk) const {
    if (min_chunk < 1) min_chunk = 1;
    int64_t c = std::min<int64_t>(threads, total / min_chunk);
    return c < 1 ? 1 : c;
  }
  // Splits [0, total) into Chunks(total, min_chunk) near-equal contiguous
  // ranges, boundaries rounded to multiples of `align`, and calls
  // fn(begin, end) for each in parallel; blocks.
  template <typename F>
  void ParallelRanges(int64_t total, int64_t min_chunk, F&& fn, int64_t align = 1) const {
    const int64_t chunks = Chunks(total, min_chunk);
    if (chunks == 1) {
      if (total > 0) fn(int64_t{0}, total);
      return;
    }
    ParallelFor(chunks, [&](int64_t c) {
      auto edge = [&](int64_t k) {
        int64_t e = total * k / chunks;
        e = k == chunks ? total : e - e % align;
        return e;
      };
      const int64_t b = edge(c), e = edge(c + 1);
      if (b < e) fn(b, e);
    });
  }
};

// Where kernel outputs get their bytes. Implemented by the executor (arena /
// dynamic) and by constant folding (owned tensors).
class OutputAllocator {
 public:
  virtual ~OutputAllocator() = default;
  // Returns a tensor of exactly this dtype/shape with writable storage,
  // contents unspecified. `output_index` is the node's output position.
  virtual Result<Tensor> Allocate(int output_index, DType dtype, const Shape& shape) = 0;
};

// Runs a subgraph (If branch, Loop/Scan body). Created at kernel init.
class SubgraphRunner {
 public:
  virtual ~SubgraphRunner() = default;
  // `inputs` in the body's input order; `captures` in its capture order
  // (values taken from the enclosing graph). Outputs are owned tensors.
  virtual Status Run(const std::vector<Tensor>& inputs, const std::vector<Tensor>& captures,
                     std::vector<Tensor>* outputs) = 0;
  // Activation bytes the next runs may use beyond what the body already
  // holds (KernelContext::subgraph_free_bytes; SIZE_MAX: unlimited).
  virtual void set_free_bytes(size_t bytes) = 0;
};

class KernelContext {
 public:
  KernelContext(const Node& node, std::vector<const Tensor*> inputs,
                std::vector<const Tensor*> implicit_inputs, int num_outputs,
                OutputAllocator* allocator)
      : node_(node),
        inputs_(std::move(inputs)),
        implicit_(std::move(implicit_inputs)),
        outputs_(static_cast<size_t>(num_outputs)),
        allocator_(allocator) {}

  const Node& node() const { return node_; }
  int opset() const { return node_.opset; }

  // The session's intra-op parallelism (inline when never set).
  const IntraOp& intra_op() const { return intra_op_; }
  void set_intra_op(const IntraOp& p) { intra_op_ = p; }
  // Memory budget left for the node's subgraph bodies (If/Loop/Scan) beyond
  // the bytes they already hold: the running graph's budget minus its own
  // bytes and every body's. SIZE_MAX: unlimited. Pass it to
  // SubgraphRunner::set_free_bytes before running a body.
  size_t subgraph_free_bytes() const { return subgraph_free_; }
  void set_subgraph_free_bytes(size_t bytes) { subgraph_free_ = bytes; }

  // Byte-moving ops (Reshape, Squeeze, ...) may make output 0 share input
  // 0's bytes instead of copying them when the executor allows it (it then
  // keeps the input's buffer alive for as long as the output is used).
  void set_may_forward(bool v) { may_forward_ = v; }
  // Sets output 0 to input 0's bytes viewed as `shape` and returns true, or
  // returns false when not allowed or the element counts differ (the kernel
  // then copies).
  bool ForwardInput(const Shape& shape);

  // Elementwise-style kernels may write output 0 over input `reusable` (the
  // executor sets it, -1 = none, when nothing reads that input after this
  // node and its bytes are the executor's own).
  void set_reusable_input(int input) { reusable_input_ = input; }
  int reusable_input() const { return reusable_input_; }
  // Like Output(0, dtype, shape), but returns input `input`'s own bytes
  // (viewed as `shape`) when the executor allows reusing that input and its
  // dtype and element count match; fresh storage otherwise. The kernel must
  // compute correctly when output and input are the same memory: each
  // element read (at the same index) before it is overwritten.
  Result<Tensor*> OutputOver(int input, DType dtype, const Shape& shape);
  // False when output i is the kernel's SetOutput of an owned tensor (it may
  // share bytes with an input, a constant or a subgraph's state), and for
  // outputs past the 64th (not tracked).
  bool output_fresh(int i) const { return i < 64 && ((shared_ >> i) & 1) == 0; }

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  // False when input i is beyond the list or was omitted (optional input).
  bool has_input(int i) const {
    return i >= 0 && i < num_inputs() && inputs_[static_cast<size_t>(i)] != nullptr;
  }
  // REQUIRES: has_input(i).
  const Tensor& input(int i) const { return *inputs_[static_cast<size_t>(i)]; }
  const std::vector<const Tensor*>& implicit_inputs() const { return implicit_; }

  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  // True when the graph consumes output i (optional outputs may be omitted).
  bool output_used(int i) const {
    size_t k = static_cast<size_t>(i);
    return k < node_.outputs.size() && node_.outputs[k] != kNoValue;
  }
  // Allocates output i with the given dtype/shape and returns it. Calling it
  // twice for the same index replaces the first allocation.
  Result<Tensor*> Output(int i, DType dtype, const Shape& shape);
  // Publishes an existing tensor as output i (e.g. a subgraph result). An
  // owned tensor is shared as is; a view is copied into a fresh Output().
  Status SetOutput(int i, Tensor t);

  // Outputs produced so far (used by the executor after Run).
  std::vector<Tensor>& outputs() { return outputs_; }

  // "Conv node 'x' (opset 11): <message>" as InvalidArgument.
  Status Error(const std::string& message) const;

 private:
  const Node& node_;
  std::vector<const Tensor*> inputs_;
  std::vector<const Tensor*> implicit_;
  std::vector<Tensor> outputs_;
  uint64_t shared_ = 0;  // Bit i: output i set by SetOutput of an owned tensor.
  OutputAllocator* allocator_;
  IntraOp intra_op_;
  size_t subgraph_free_ = SIZE_MAX;
  bool may_forward_ = false;
  int reusable_input_ = -1;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual Status Run(KernelContext& ctx) = 0;
};

// What a kernel factory sees when a session is prepared.
struct KernelInit {
  const Node& node;
  const Graph& graph;
  // Compiles a subgraph attribute of this node for repeated execution.
  std::function<Result<std::unique_ptr<SubgraphRunner>>(const Graph&)> compile_subgraph;
  // The session's thread count (kernels may pre-pack per tile).
  IntraOp intra_op = {};

  int opset() const { return node.opset; }
  int num_inputs() const { return static_cast<int>(node.inputs.size()); }
  bool has_input(int i) const {
    return i >= 0 && i < num_inputs() && node.inputs[static_cast<size_t>(i)] != kNoValue;
  }
  // Input i's value info; REQUIRES has_input(i).
  const Value& input_value(int i) const {
    return graph.values[static_cast<size_t>(node.inputs[static_cast<size_t>(i)])];
  }
  // The constant tensor for input i (initializer/folded), or nullptr.
  const Tensor* constant_input(int i) const {
    if (!has_input(i)) return nullptr;
    const Value& v = input_value(i);
    return v.is_constant() ? &v.constant : nullptr;
  }
  Status Error(const std::string& message) const;
};

using KernelFactory = std::function<Result<std::unique_ptr<Kernel>>(const KernelInit&)>;
// A stateless kernel: one function, nothing prepared.
using KernelFn = Status (*)(KernelContext&);

// Wraps a KernelFn as a factory.
KernelFactory FnKernel(KernelFn fn);

}  // namespace parallax

#endif  // PARALLAX_OPS_KERNEL_H_
