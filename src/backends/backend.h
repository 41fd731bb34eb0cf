// Backend: the seam between the runtime and a device that executes kernels.
//
// The runtime asks each backend, per node, whether it can run it
// (Supports), turns supported nodes into Kernels (CreateKernel), and gets
// device buffers from it (Allocate/Free) plus host<->device copies. The CPU
// backend is the reference implementation: its buffers are host memory and
// its copies are memcpy. An accelerator backend (Vulkan) implements the same
// interface; the partitioner (later) groups supported nodes into regions and
// the runtime inserts copies at region boundaries.
//
// Thread safety: Supports/CreateKernel are called during session preparation
// only. Allocate/Free/Copy* must be thread-safe.
#ifndef PARALLAX_BACKENDS_BACKEND_H_
#define PARALLAX_BACKENDS_BACKEND_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.h"
#include "ops/kernel.h"
#include "parallax/status.h"

namespace parallax {

struct Support {
  bool supported = false;
  std::string reason;  // Why not, when !supported.
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // Whether this backend can run `node` of `graph`.
  virtual Support Supports(const Graph& graph, const Node& node) const = 0;
  // REQUIRES: Supports(...).supported.
  virtual Result<std::unique_ptr<Kernel>> CreateKernel(const KernelInit& init) const = 0;
  // Inputs of `node` whose bytes its kernel may write output 0 over
  // (KernelContext::OutputOver): the executor plans that output into the
  // input's memory when nothing else reads the input.
  virtual std::vector<int> ReusableInputs(const Node&) const { return {}; }
  // True when buffers from Allocate are directly readable by the host.
  virtual bool host_visible() const = 0;
  // Device buffer of `bytes` bytes aligned to `alignment`; never null on OK.
  virtual Result<void*> Allocate(size_t bytes, size_t alignment) = 0;
  virtual void Free(void* buffer) = 0;
  virtual Status CopyToDevice(const void* host, void* device, size_t bytes) = 0;
  virtual Status CopyToHost(const void* device, void* host, size_t bytes) = 0;
};

}  // namespace parallax

#endif  // PARALLAX_BACKENDS_BACKEND_H_
