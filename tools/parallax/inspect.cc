// `parallax inspect`: graph summary (ops by type, unsupported ops, shapes).
#include <cstdio>
#include <iostream>
#include <map>

#include "backends/cpu/cpu_backend.h"
#include "onnx/onnx_import.h"
#include "parallax/commands.h"
#include "parallax/parallax.h"
#include "runtime/model_data.h"

namespace parallax::cli {
namespace {

void CountOps(const Graph& g, std::map<std::string, int>* ops,
              std::map<std::string, std::string>* unsupported) {
  for (const Node& n : g.nodes) {
    std::string key = (n.domain.empty() ? "" : n.domain + "::") + n.op_type;
    ++(*ops)[key];
    Support s = DefaultCpuBackend().Supports(g, n);
    if (!s.supported) (*unsupported)[key] = s.reason;
    for (const auto& [k, a] : n.attrs)
      if (a.g) CountOps(*a.g, ops, unsupported);
  }
}

void PrintValues(const char* title, const Graph& g, const std::vector<ValueId>& ids) {
  std::printf("%s\n", title);
  for (ValueId v : ids) {
    const Value& val = g.values[v];
    std::printf("  %-32s %-8s %s\n", val.name.c_str(), std::string(DTypeName(val.dtype)).c_str(),
                val.has_shape ? DimsToString(val.dims).c_str() : "?");
  }
}

}  // namespace

int RunInspect(const std::string& path) {
  // Import without the support check so unsupported ops can be listed.
  Result<ImportedModel> imported = ImportOnnxFile(path);
  if (!imported.ok()) {
    std::cerr << "error: " << imported.status().ToString() << "\n";
    return 1;
  }
  const Graph& g = *imported->graph;
  std::printf("model        %s\n", path.c_str());
  std::printf("ir_version   %lld, producer '%s'\n", static_cast<long long>(imported->ir_version),
              imported->producer.c_str());
  for (const auto& [d, v] : imported->opsets)
    std::printf("opset        %s %lld\n", d.empty() ? "ai.onnx" : d.c_str(),
                static_cast<long long>(v));
  std::map<std::string, int> ops;
  std::map<std::string, std::string> unsupported;
  CountOps(g, &ops, &unsupported);
  int64_t initializers = 0, init_bytes = 0;
  for (const Value& v : g.values)
    if (v.is_constant()) {
      ++initializers;
      init_bytes += static_cast<int64_t>(v.constant.nbytes());
    }
  std::printf("nodes        %lld (incl. subgraphs), %lld constants (%lld bytes)\n",
              static_cast<long long>(g.TotalNodeCount()), static_cast<long long>(initializers),
              static_cast<long long>(init_bytes));
  PrintValues("inputs", g, g.inputs);
  PrintValues("outputs", g, g.outputs);
  std::printf("ops by type\n");
  for (const auto& [op, n] : ops) std::printf("  %-28s %d\n", op.c_str(), n);
  if (unsupported.empty()) {
    std::printf("unsupported  none\n");
  } else {
    std::printf("unsupported  %zu op type(s)\n", unsupported.size());
    for (const auto& [op, why] : unsupported) std::printf("  %-28s %s\n", op.c_str(), why.c_str());
  }
  Result<Model> model = Model::Load(path);
  if (model.ok()) {
    const ModelData& d = model->data();
    std::printf("optimised    %lld nodes after folding %lld and removing %lld dead\n",
                static_cast<long long>(model->node_count()), static_cast<long long>(d.folded_nodes),
                static_cast<long long>(d.dead_nodes));
    std::printf("layout       %lld channels-last region(s), %lld nodes, %lld reorders inserted\n",
                static_cast<long long>(d.layout.regions), static_cast<long long>(d.layout.nodes),
                static_cast<long long>(d.layout.reorders));
    for (const Node& n : d.graph->nodes)
      if (n.name.rfind("reorder_to_", 0) == 0 || n.name.rfind("shape_to_nchw/", 0) == 0)
        std::printf("  %-20s %s\n", n.op_type.c_str(), n.name.c_str());
    std::printf("fusions     ");
    if (d.fusions.empty()) std::printf(" none");
    for (const auto& [pass, n] : d.fusions)
      std::printf(" %s %lld", pass.c_str(), static_cast<long long>(n));
    std::printf("\n");
    std::map<std::string, int> fused_ops;
    std::map<std::string, std::string> ignored;
    CountOps(*d.graph, &fused_ops, &ignored);
    std::printf("optimised ops by type\n");
    for (const auto& [op, n] : fused_ops) std::printf("  %-28s %d\n", op.c_str(), n);
    std::printf("shapes\n");
    const Graph& og = *d.graph;
    for (const Node& n : og.nodes)
      for (ValueId o : n.outputs)
        if (o != kNoValue)
          std::printf("  %-20s %-32s %-8s %s\n",
                      ((n.domain.empty() ? "" : n.domain + "::") + n.op_type).c_str(),
                      og.values[o].name.c_str(), std::string(DTypeName(og.values[o].dtype)).c_str(),
                      og.values[o].has_shape ? DimsToString(og.values[o].dims).c_str() : "?");
  }
  if (!imported->shape_inference_warning.empty())
    std::printf("note         ONNX shape inference stopped: %s\n",
                imported->shape_inference_warning.c_str());
  return 0;
}

}  // namespace parallax::cli
