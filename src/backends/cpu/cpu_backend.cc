#include "backends/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>

#include "backends/cpu/kernels/families.h"

namespace parallax {

CpuBackend::CpuBackend() {
  RegisterElementwiseOps(registry_);
  RegisterReductionOps(registry_);
  RegisterShapeOps(registry_);
  RegisterIndexingOps(registry_);
  RegisterNnOps(registry_);
  RegisterImageOps(registry_);
  RegisterSequenceModelOps(registry_);
  RegisterMiscOps(registry_);
  RegisterSignalOps(registry_);
  RegisterTextOps(registry_);
  RegisterTrainingOps(registry_);
  RegisterControlFlowOps(registry_);
  RegisterSequenceOps(registry_);  // Last: its Identity handles every value kind.
}

Support CpuBackend::Supports(const Graph&, const Node& node) const {
  if (registry_.Find(node.domain, node.op_type, node.opset) != nullptr) return {true, ""};
  if (registry_.Knows(node.domain, node.op_type))
    return {false, "opset " + std::to_string(node.opset) + " of this op is not implemented"};
  return {false, "no CPU kernel for this op"};
}

Result<std::unique_ptr<Kernel>> CpuBackend::CreateKernel(const KernelInit& init) const {
  const OpRegistry::Entry* e = registry_.Find(init.node.domain, init.node.op_type, init.opset());
  if (e == nullptr) return Unsupported(init.node.Describe() + ": no CPU kernel");
  return e->factory(init);
}

std::vector<int> CpuBackend::ReusableInputs(const Node& node) const {
  const OpRegistry::Entry* e = registry_.Find(node.domain, node.op_type, node.opset);
  return e == nullptr ? std::vector<int>{} : e->reusable_inputs;
}

Result<void*> CpuBackend::Allocate(size_t bytes, size_t alignment) {
  size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (p == nullptr) return ResourceExhausted("cannot allocate " + std::to_string(bytes) + " bytes");
  return p;
}

void CpuBackend::Free(void* buffer) { std::free(buffer); }

Status CpuBackend::CopyToDevice(const void* host, void* device, size_t bytes) {
  std::memcpy(device, host, bytes);
  return Status::Ok();
}

Status CpuBackend::CopyToHost(const void* device, void* host, size_t bytes) {
  std::memcpy(host, device, bytes);
  return Status::Ok();
}

CpuBackend& DefaultCpuBackend() {
  static CpuBackend* backend = new CpuBackend();  // Never destroyed: used at exit.
  return *backend;
}

}  // namespace parallax
