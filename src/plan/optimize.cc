#include "plan/optimize.h"

#include <set>
#include <string>

namespace parallax {
namespace {

constexpr int64_t kMaxFoldElements = int64_t{1} << 24;

bool Foldable(const Node& node) {
  static const std::set<std::string> kNever = {"RandomUniform",
                                               "RandomNormal",
                                               "RandomUniformLike",
                                               "RandomNormalLike",
                                               "Bernoulli",
                                               "Multinomial",
                                               "If",
                                               "Loop",
                                               "Scan",
                                               "Dropout"};
  if (!node.domain.empty() || kNever.count(node.op_type)) return false;
  if (!node.implicit_inputs.empty()) return false;
  for (const auto& [k, a] : node.attrs)
    if (a.g) return false;
  return true;
}

class OwnedAllocator : public OutputAllocator {
 public:
  Result<Tensor> Allocate(int, DType dtype, const Shape& shape) override {
    if (NumElements(shape) > kMaxFoldElements) return Unsupported("too large to fold");
    return Tensor::Uninitialized(dtype, shape);
  }
};

// Tries to fold one node; returns true when folded.
bool TryFold(Graph& graph, const Node& node, Backend& backend) {
  std::vector<const Tensor*> ins;
  for (ValueId v : node.inputs) {
    if (v == kNoValue) {
      ins.push_back(nullptr);
      continue;
    }
    if (!graph.values[v].is_constant()) return false;
    ins.push_back(&graph.values[v].constant);
  }
  if (!backend.Supports(graph, node).supported) return false;
  KernelInit init{node, graph, nullptr};
  Result<std::unique_ptr<Kernel>> kernel = backend.CreateKernel(init);
  if (!kernel.ok()) return false;
  OwnedAllocator alloc;
  KernelContext ctx(node, ins, {}, static_cast<int>(node.outputs.size()), &alloc);
  if (!(*kernel)->Run(ctx).ok()) return false;  // Left for run time to report.
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    ValueId v = node.outputs[i];
    if (v == kNoValue) continue;
    Tensor& t = ctx.outputs()[i];
    if (!t.defined()) return false;
    Value& val = graph.values[v];
    val.constant = t.is_view() ? Tensor::Copy(t) : t;
    val.dtype = t.dtype();
    val.has_shape = true;
    val.dims.clear();
    for (int64_t d : t.shape()) val.dims.push_back(Dim{d, ""});
  }
  return true;
}

}  // namespace

Result<int64_t> FoldConstants(Graph& graph, Backend& backend) {
  int64_t folded = 0;
  std::vector<Node> kept;
  kept.reserve(graph.nodes.size());
  for (Node& node : graph.nodes) {
    for (auto& [k, a] : node.attrs)
      if (a.g) {
        PX_ASSIGN_OR_RETURN(int64_t n, FoldConstants(*a.g, backend));
        folded += n;
      }
    bool all_const = true;
    for (ValueId v : node.inputs)
      if (v != kNoValue && !graph.values[v].is_constant()) all_const = false;
    bool is_graph_output = false;
    for (ValueId o : node.outputs)
      for (ValueId go : graph.outputs) is_graph_output |= o == go;
    if (all_const && !is_graph_output && Foldable(node) && TryFold(graph, node, backend)) {
      ++folded;
      continue;
    }
    kept.push_back(std::move(node));
  }
  graph.nodes = std::move(kept);
  graph.RebuildLinks();
  return folded;
}

int64_t RemoveDeadNodes(Graph& graph) {
  int64_t removed = 0;
  std::vector<bool> needed(graph.values.size(), false);
  for (ValueId o : graph.outputs) needed[o] = true;
  std::vector<bool> keep(graph.nodes.size(), false);
  for (size_t i = graph.nodes.size(); i-- > 0;) {
    const Node& node = graph.nodes[i];
    bool used = false;
    for (ValueId o : node.outputs) used |= o != kNoValue && needed[o];
    if (!used) {
      ++removed;
      continue;
    }
    keep[i] = true;
    for (ValueId v : node.inputs)
      if (v != kNoValue) needed[v] = true;
    for (ValueId v : node.implicit_inputs) needed[v] = true;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (keep[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  for (Node& node : graph.nodes)
    for (auto& [k, a] : node.attrs)
      if (a.g) removed += RemoveDeadNodes(*a.g);
  graph.RebuildLinks();
  return removed;
}

}  // namespace parallax
