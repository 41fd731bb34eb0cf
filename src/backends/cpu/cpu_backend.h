// The CPU backend: host memory, and kernels from the CPU op families.
//
// Heavy ops (convolution, matmul, pooling, normalisation) go through oneDNN
// behind src/backends/cpu/dnnl_*; everything else is portable C++. Every
// kernel runs on the calling thread only.
#ifndef PARALLAX_BACKENDS_CPU_CPU_BACKEND_H_
#define PARALLAX_BACKENDS_CPU_CPU_BACKEND_H_

#include "backends/backend.h"
#include "ops/registry.h"

namespace parallax {

class CpuBackend final : public Backend {
 public:
  CpuBackend();
  std::string_view name() const override { return "cpu"; }
  Support Supports(const Graph& graph, const Node& node) const override;
  Result<std::unique_ptr<Kernel>> CreateKernel(const KernelInit& init) const override;
  std::vector<int> ReusableInputs(const Node& node) const override;
  bool host_visible() const override { return true; }
  Result<void*> Allocate(size_t bytes, size_t alignment) override;
  void Free(void* buffer) override;
  Status CopyToDevice(const void* host, void* device, size_t bytes) override;
  Status CopyToHost(const void* device, void* host, size_t bytes) override;

  const OpRegistry& registry() const { return registry_; }

 private:
  OpRegistry registry_;
};

// The process-wide CPU backend (immutable after construction; thread-safe).
CpuBackend& DefaultCpuBackend();

}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_CPU_BACKEND_H_
