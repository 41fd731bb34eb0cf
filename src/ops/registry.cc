#include "ops/registry.h"

namespace parallax {

std::string NormalizeDomain(const std::string& domain) {
  return domain == "ai.onnx" ? std::string() : domain;
}

void OpRegistry::Register(const std::string& domain, const std::string& op_type,
                          KernelFactory factory, int min_opset, int max_opset) {
  entries_[{NormalizeDomain(domain), op_type}] =
      Entry{std::move(factory), min_opset, max_opset, {}};
}

void OpRegistry::SetReusableInputs(const std::string& domain, const std::string& op_type,
                                   std::vector<int> inputs) {
  auto it = entries_.find({NormalizeDomain(domain), op_type});
  if (it != entries_.end()) it->second.reusable_inputs = std::move(inputs);
}

const OpRegistry::Entry* OpRegistry::Find(const std::string& domain, const std::string& op_type,
                                          int opset) const {
  auto it = entries_.find({NormalizeDomain(domain), op_type});
  if (it == entries_.end()) return nullptr;
  if (opset < it->second.min_opset || opset > it->second.max_opset) return nullptr;
  return &it->second;
}

bool OpRegistry::Knows(const std::string& domain, const std::string& op_type) const {
  return entries_.count({NormalizeDomain(domain), op_type}) != 0;
}

}  // namespace parallax
