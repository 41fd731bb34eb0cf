// `parallax inspect`: graph summary (ops by type, unsupported ops, shapes)
// and the branch/layer analysis of the optimised graph.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include "backends/cpu/cpu_backend.h"
#include "onnx/onnx_import.h"
#include "parallax/commands.h"
#include "parallax/parallax.h"
#include "plan/branches.h"
#include "plan/flops.h"
#include "plan/shape_infer.h"
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

// Prints the branch analysis (paper Table 7 columns) of `g` with FLOPs from
// static shapes (plan/shape_infer.h), and writes its BranchDot to `dot_path` when not empty.
// Returns 1 on failure.
int PrintBranches(const Graph& g, const char* which, const std::string& dot_path) {
  const std::vector<ValueShape> shapes = InferShapes(g, StaticValueShapes(g));
  const std::vector<double> flops = EstimateGraphFlops(g, shapes);
  int64_t unknown = 0;
  double total = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    total += flops[i];
    for (ValueId o : g.nodes[i].outputs)
      if (o != kNoValue && !shapes[static_cast<size_t>(o)].known) {
        ++unknown;
        break;
      }
  }
  const BranchPolicy policy;
  BranchPolicy off;
  off.refine = false;
  Result<BranchAnalysis> a = AnalyzeBranches(g, flops, policy);
  Result<BranchAnalysis> a_off = AnalyzeBranches(g, flops, off);
  if (!a.ok() || !a_off.ok()) {
    std::cerr << "error: " << (a.ok() ? a_off : a).status().ToString() << "\n";
    return 1;
  }
  std::printf(
      "branches     %s graph, FLOPs from static shapes (%.3f GFLOP; %lld of %zu nodes "
      "with unknown output shapes)\n",
      which, total / 1e9, static_cast<long long>(unknown), g.nodes.size());
  std::printf("  nodes                         %zu\n", g.nodes.size());
  std::printf("  branches                      %zu\n", a->branches.size());
  std::printf("  layers                        %zu\n", a->layers.size());
  std::printf("  parallel layers               %d (>= %d nodes per branch, FLOP ratio <= %g)\n",
              a->parallel_layers, policy.min_nodes, policy.max_flop_ratio);
  std::printf("  parallel layers, refine off   %d\n", a_off->parallel_layers);
  std::printf("  max branch width              %d\n", a->max_branch_width);
  if (dot_path.empty()) return 0;
  std::ofstream f(dot_path);
  f << BranchDot(g, *a);
  if (!f.good()) {
    std::cerr << "error: cannot write '" << dot_path << "'\n";
    return 1;
  }
  std::printf("  dot                           %s\n", dot_path.c_str());
  return 0;
}

}  // namespace

int RunInspect(const std::string& path, const std::string& dot_path,
               const std::vector<std::string>& free_dims) {
  InputFlags flags;
  flags.free_dims = free_dims;
  LoadOptions lo;
  if (Status s = ParseFreeDims(flags, &lo); !s.ok()) {
    std::cerr << "error: " << s.ToString() << "\n";
    return 1;
  }
  // Import without the support check so unsupported ops can be listed.
  Result<ImportedModel> imported = ImportOnnxFile(path, lo.free_dims);
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
  Result<Model> model = Model::Load(path, lo);
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
  // Branches of the graph that runs: the optimised one when it loads.
  if (model.ok()) return PrintBranches(*model->data().graph, "optimised", dot_path);
  return PrintBranches(g, "imported (load failed)", dot_path);
}

}  // namespace parallax::cli
