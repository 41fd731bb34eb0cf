// OpRegistry: maps (domain, op type) to a kernel factory for one backend.
//
// Each backend owns a registry. Op families register themselves through
// explicit Register*Ops(OpRegistry&) functions (no static initialisers, so
// nothing is dropped by the linker). Kernels handle every opset version they
// accept internally (e.g. attribute-vs-input forms); `min_opset`/`max_opset`
// bound what they accept.
#ifndef PARALLAX_OPS_REGISTRY_H_
#define PARALLAX_OPS_REGISTRY_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ops/kernel.h"

namespace parallax {

class OpRegistry {
 public:
  struct Entry {
    KernelFactory factory;
    int min_opset = 1;
    int max_opset = 1 << 30;
    // Inputs the kernel may write output 0 over (KernelContext::OutputOver).
    std::vector<int> reusable_inputs;
  };

  void Register(const std::string& domain, const std::string& op_type, KernelFactory factory,
                int min_opset = 1, int max_opset = 1 << 30);
  void Register(const std::string& op_type, KernelFn fn) { Register("", op_type, FnKernel(fn)); }
  // Declares that the registered kernel for (domain, op_type) computes
  // correctly with output 0 written over any of `inputs` (it asks for it with
  // KernelContext::OutputOver). REQUIRES: registered.
  void SetReusableInputs(const std::string& domain, const std::string& op_type,
                         std::vector<int> inputs);
  // Nullptr when (domain, op_type) is unknown or `opset` is out of range.
  const Entry* Find(const std::string& domain, const std::string& op_type, int opset) const;
  bool Knows(const std::string& domain, const std::string& op_type) const;
  size_t size() const { return entries_.size(); }

 private:
  std::map<std::pair<std::string, std::string>, Entry> entries_;
};

// "" and "ai.onnx" are the same default domain.
std::string NormalizeDomain(const std::string& domain);

}  // namespace parallax

#endif  // PARALLAX_OPS_REGISTRY_H_
