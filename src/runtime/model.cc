#include "parallax/model.h"

#include "backends/cpu/cpu_backend.h"
#include "plan/fusion.h"
#include "plan/layout.h"
#include "plan/optimize.h"
#include "runtime/model_data.h"

namespace parallax {
namespace {

TensorInfo InfoOf(const Value& v) {
  TensorInfo info;
  info.name = v.name;
  info.dtype = v.dtype;
  info.has_shape = v.has_shape;
  for (const Dim& d : v.dims) {
    info.dims.push_back(d.known() ? d.size : -1);
    info.symbols.push_back(d.known() ? "" : d.symbol);
  }
  return info;
}

// Every node (subgraphs included) the CPU backend cannot run, one per line.
void CollectUnsupported(const Graph& g, Backend& backend, std::string* out, int* count) {
  for (const Node& node : g.nodes) {
    Support s = backend.Supports(g, node);
    if (!s.supported) {
      *out += "\n  " + node.Describe() + ": " + s.reason;
      ++*count;
    }
    for (const auto& [k, a] : node.attrs)
      if (a.g) CollectUnsupported(*a.g, backend, out, count);
  }
}

}  // namespace

std::string TensorInfo::ShapeString() const {
  if (!has_shape) return "?";
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += dims[i] >= 0 ? std::to_string(dims[i]) : (symbols[i].empty() ? "?" : symbols[i]);
  }
  return s + "]";
}

Result<Model> Model::Load(const std::string& path, const LoadOptions& options) {
  PX_ASSIGN_OR_RETURN(ImportedModel imported, ImportOnnxFile(path, options.free_dims));
  auto data = std::make_shared<ModelData>();
  Graph& g = *imported.graph;
  CpuBackend& cpu = DefaultCpuBackend();
  std::string unsupported;
  int count = 0;
  CollectUnsupported(g, cpu, &unsupported, &count);
  if (count > 0)
    return Unsupported(path + ": " + std::to_string(count) +
                       " node(s) use operators Parallax does not support:" + unsupported);
  if (options.optimize) {
    Result<int64_t> folded = FoldConstants(g, cpu);
    if (!folded.ok()) return folded.status().WithContext(path);
    data->folded_nodes = *folded;
    data->dead_nodes = RemoveDeadNodes(g);
  }
  // Fusions see the model's own NCHW patterns; the layout pass then moves
  // the (fused) convolutions and what surrounds them to channels-last.
  if (options.fusion) data->fusions = FuseAll(g);
  if (options.optimize && options.layout) data->layout = AssignChannelsLast(g);
  for (ValueId v : g.inputs) data->inputs.push_back(InfoOf(g.values[v]));
  for (ValueId v : g.outputs) data->outputs.push_back(InfoOf(g.values[v]));
  data->graph = imported.graph;
  data->imported = std::move(imported);
  Model m;
  m.data_ = std::move(data);
  return m;
}

const std::vector<TensorInfo>& Model::inputs() const { return data_->inputs; }
const std::vector<TensorInfo>& Model::outputs() const { return data_->outputs; }
const std::string& Model::path() const { return data_->imported.path; }
int64_t Model::ir_version() const { return data_->imported.ir_version; }
const std::map<std::string, int64_t>& Model::opsets() const { return data_->imported.opsets; }
int64_t Model::node_count() const { return data_->graph->TotalNodeCount(); }
const std::map<std::string, int64_t>& Model::fusions() const { return data_->fusions; }

}  // namespace parallax
