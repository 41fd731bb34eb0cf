// Internal helpers for the oneDNN-backed NN kernels (nn_*.cc only).
//
// This is the only header that includes dnnl.hpp: the oneDNN dependency stays
// behind the nn_* kernel files. oneDNN here uses the OpenMP runtime; every
// primitive must run single-threaded on the calling thread, so each thread
// calls PrepareThread() (omp_set_num_threads(1), once per thread) before it
// creates or executes a primitive.
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_DNNL_UTIL_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_DNNL_UTIL_H_

#include <exception>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "graph/graph.h"
#include "ops/kernel.h"
#include "parallax/status.h"
#include "parallax/tensor.h"

namespace parallax::dnnl_util {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// Limits the calling thread's OpenMP team to one thread (once per thread).
void PrepareThread();

// Held while a kernel creates oneDNN primitives (a plan-cache miss: first
// run of a shape). Branches may hit misses on several threads at once;
// oneDNN documents creation as thread-safe, but its global primitive cache
// is not visible to ThreadSanitizer, so creation is serialised to keep the
// runtime provably race-free. Execution never takes it.
std::mutex& CreationMutex();
// The process-wide CPU engine (created on first use, thread-safe).
const dnnl::engine& Engine();
// A stream for the calling thread (in-order, CPU: executes synchronously).
dnnl::stream& ThreadStream();

inline dnnl::memory::dims Dims(const Shape& s) { return dnnl::memory::dims(s.begin(), s.end()); }
// Dense row-major memory descriptor of `shape`.
dnnl::memory::desc PlainDesc(const Shape& shape, dt type = dt::f32);
// A descriptor with explicit element strides (transposed views etc.).
dnnl::memory::desc StridedDesc(const Shape& dims, const std::vector<int64_t>& strides,
                               dt type = dt::f32);
// Wraps external bytes (no copy). `data` must outlive the memory object.
dnnl::memory Wrap(const dnnl::memory::desc& md, const void* data);

// The epilogue of a fused op (com.parallax FusedConv / FusedMatMul), run by
// oneDNN on the accumulator (bias included) before it is stored, as an
// ordered chain of steps: an optional residual sum (the caller places the
// residual in dst before execution), the activation as one or two eltwise
// steps, and an optional final linear step alpha * y + beta.
struct PostOps {
  struct Step {
    bool sum = false;  // Else eltwise `alg`.
    dnnl::algorithm alg = dnnl::algorithm::eltwise_linear;
    float alpha = 0, beta = 0;
  };
  std::vector<Step> steps;

  bool empty() const { return steps.empty(); }
  bool has_sum() const;
  // Sets the chain as `attr`'s post-ops (nothing when empty()).
  void AppendTo(dnnl::primitive_attr* attr) const;
  // The chain on one element in plain C++ (the broadcast fallback): `acc` is
  // the op's output, `z` the residual (ignored without a sum step).
  float Apply(float acc, float z) const;
  // The chain over y[0, n) in place, z[i] being y[i]'s residual (nullptr when
  // there is no sum step), in cache-sized blocks: one pass over memory.
  void ApplyInPlace(float* y, const float* z, int64_t n) const;
};
// True when a oneDNN implementation (impl_info_str) applies post-ops element
// by element in reference code; oneDNN 2.6's gemm-based convolution does
// (measured 20-40x slower than the convolution itself), so kernels create
// such primitives without post-ops and run PostOps::ApplyInPlace after them.
inline bool SlowPostOps(const std::string& impl) {
  return impl.find("gemm") != std::string::npos || impl.find("ref") != std::string::npos;
}
// Reads a fused node's epilogue attributes: `activation` (Relu, LeakyRelu,
// Clip, HardSigmoid, HardSwish, Sigmoid, Swish, Tanh, Gelu, GeluTanh;
// absent = none) with `activation_params`, `sum_after_activation` (the
// residual is added after the activation instead of before) and `linear`
// ([alpha, beta], applied last). `residual` requests the sum step.
Result<PostOps> ReadPostOps(const Node& node, bool residual);
// out = post(acc, z) elementwise with acc and z broadcast to out's shape
// (all float32): the fallback when a residual does not have the op's shape.
void ApplyBroadcast(const PostOps& post, const Tensor& acc, const Tensor& z, Tensor* out);

// Runs `f` (returning Status), converting oneDNN / std exceptions into a
// Status naming `node`. Nothing escapes.
template <typename F>
Status Guard(const Node& node, F&& f) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    return Internal(node.Describe() + ": oneDNN error: " + e.what());
  } catch (const std::exception& e) {
    return Internal(node.Describe() + ": " + e.what());
  } catch (...) {
    return Internal(node.Describe() + ": unknown exception");
  }
}

// Runs fn(i) for every tile i in [0, n) on the session's intra-op threads,
// each thread prepared for oneDNN. An exception or error from any tile is
// returned (the first one seen); the others still finish.
template <typename F>
Status RunTiles(const Node& node, const IntraOp& intra_op, int64_t n, F&& fn) {
  if (n == 1) {
    PrepareThread();
    return Guard(node, [&] { return fn(int64_t{0}); });
  }
  std::mutex mu;
  Status first;
  intra_op.ParallelFor(n, [&](int64_t i) {
    PrepareThread();
    Status s = Guard(node, [&] { return fn(i); });
    if (s.ok()) return;
    std::lock_guard<std::mutex> lock(mu);
    if (first.ok()) first = std::move(s);
  });
  return first;
}

// A small shape-keyed cache of per-shape plans (primitives, packed weights).
// Kernels never run concurrently on one object, so no locking is needed.
template <typename Plan>
class PlanCache {
 public:
  Plan* Find(const std::vector<int64_t>& key) {
    auto it = map_.find(Key(key));
    return it == map_.end() ? nullptr : &it->second;
  }
  Plan* Insert(const std::vector<int64_t>& key, Plan plan) {
    if (map_.size() >= kMaxEntries) map_.clear();  // Pathological shape churn.
    return &map_.insert_or_assign(Key(key), std::move(plan)).first->second;
  }

 private:
  static constexpr size_t kMaxEntries = 64;
  static std::string Key(const std::vector<int64_t>& k) {
    return std::string(reinterpret_cast<const char*>(k.data()), k.size() * sizeof(int64_t));
  }
  std::unordered_map<std::string, Plan> map_;
};

}  // namespace parallax::dnnl_util

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_DNNL_UTIL_H_
