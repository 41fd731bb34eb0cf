#include "plan/fusion.h"

#include <utility>

namespace parallax {
namespace {

// Gives subgraph values captured from an outer constant that constant, so
// the passes (and kernels) see weights an If / Loop body reads from outside.
// The executor binds captures over them with the same tensor.
void ShareCapturedConstants(Graph& g) {
  for (Node& node : g.nodes)
    for (auto& [k, a] : node.attrs) {
      if (!a.g) continue;
      for (const auto& [outer, local] : a.g->captures) {
        const Value& o = g.values[static_cast<size_t>(outer)];
        Value& l = a.g->values[static_cast<size_t>(local)];
        if (!o.is_constant() || l.is_constant()) continue;
        l.constant = o.constant;
        l.dtype = o.dtype;
        l.has_shape = o.has_shape;
        l.dims = o.dims;
      }
      ShareCapturedConstants(*a.g);
    }
}

}  // namespace

std::map<std::string, int64_t> FuseAll(Graph& g) {
  ShareCapturedConstants(g);
  // Folds first (they need plain Convs), then pattern rewrites (they produce
  // the HardSwish / Gelu the activation pass takes), then the epilogue steps
  // in the order they apply: bias, residual, activation, late residual,
  // final affine.
  const std::pair<const char*, int64_t (*)(Graph&)> kPasses[] = {
      {"ConvBatchNorm", FuseConvBatchNorm}, {"ConvAffine", FuseConvAffine},
      {"HardSwish", FuseHardSwishPattern},  {"Gelu", FuseGeluPattern},
      {"LayerNorm", FuseLayerNormPattern},  {"Softmax", FuseSoftmaxPattern},
      {"MatMulAdd", FuseMatMulAdd},         {"MatMulScale", FuseMatMulScale},
      {"QkvUnpack", FuseQkvUnpack},         {"MatMulTranspose", FuseMatMulTranspose},
      {"ResidualAdd", FuseResidualAdd},     {"Activation", FuseActivation},
      {"ActivationAdd", FuseActivationAdd}, {"OutputAffine", FuseOutputAffine},
  };
  std::map<std::string, int64_t> counts;
  for (const auto& [name, pass] : kPasses)
    if (int64_t n = pass(g); n > 0) counts[name] = n;
  return counts;
}

}  // namespace parallax
