#include "plan/flops.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <string>

namespace parallax {
namespace {

using Shapes = std::vector<ValueShape>;

const Shape* ShapeOf(ValueId v, const Shapes& shapes) {
  if (v < 0 || static_cast<size_t>(v) >= shapes.size()) return nullptr;
  const ValueShape& s = shapes[static_cast<size_t>(v)];
  return s.known ? &s.dims : nullptr;
}

// Shape of input / output k of `n`, or nullptr when absent or unknown.
const Shape* In(const Node& n, size_t k, const Shapes& shapes) {
  return k < n.inputs.size() ? ShapeOf(n.inputs[k], shapes) : nullptr;
}
const Shape* Out(const Node& n, size_t k, const Shapes& shapes) {
  return k < n.outputs.size() ? ShapeOf(n.outputs[k], shapes) : nullptr;
}

double Elems(const Shape& s, size_t from = 0) {
  double e = 1;
  for (size_t i = from; i < s.size(); ++i) e *= static_cast<double>(std::max<int64_t>(s[i], 0));
  return e;
}

bool Is(const Node& n, std::initializer_list<const char*> ops) {
  for (const char* op : ops)
    if (n.op_type == op) return true;
  return false;
}

// Conv, FusedConv, ConvInteger, QLinearConv: 2 * output elements * (IC /
// group) * kernel size. W is OIHW in every layout, so W[1:] is the per-output
// reduction. Without W's shape, IC comes from X's channel axis (last when
// channels_last=1) and the kernel from kernel_shape.
double ConvFlops(const Node& n, size_t w_index, const Shapes& shapes) {
  const Shape* out = Out(n, 0, shapes);
  if (out == nullptr) return 1;
  const Shape* w = In(n, w_index, shapes);
  if (w != nullptr && w->size() >= 2) return 2 * Elems(*out) * Elems(*w, 1);
  const Shape* x = In(n, 0, shapes);
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
  if (x == nullptr || x->size() < 2 || kernel.empty()) return Elems(*out);
  const bool last = n.attr_int("channels_last", 0) != 0;
  const double ic = static_cast<double>(last ? x->back() : (*x)[1]);
  const double group = static_cast<double>(std::max<int64_t>(n.attr_int("group", 1), 1));
  return 2 * Elems(*out) * (ic / group) * Elems(kernel);
}

// ConvTranspose: every input element meets (OC / group) * kernel weights:
// 2 * X elements * W[1:] (W is [IC, OC / group, k...]).
double ConvTransposeFlops(const Node& n, const Shapes& shapes) {
  const Shape* x = In(n, 0, shapes);
  const Shape* w = In(n, 1, shapes);
  if (x != nullptr && w != nullptr && w->size() >= 2) return 2 * Elems(*x) * Elems(*w, 1);
  const Shape* out = Out(n, 0, shapes);
  return out != nullptr ? Elems(*out) : 1;
}

// MatMul-like: 2 * output elements * K, K = A's last dim (of A read
// through perm_a when set).
double MatMulFlops(const Node& n, size_t a_index, const Shapes& shapes) {
  const Shape* out = Out(n, 0, shapes);
  if (out == nullptr) return 1;
  const Shape* a = In(n, a_index, shapes);
  if (a == nullptr || a->empty()) return Elems(*out);
  const std::vector<int64_t> perm = n.attr_ints("perm_a");
  const int64_t last = perm.size() == a->size() ? perm.back() : static_cast<int64_t>(a->size()) - 1;
  if (last < 0 || last >= static_cast<int64_t>(a->size())) return Elems(*out);
  return 2 * Elems(*out) * static_cast<double>((*a)[static_cast<size_t>(last)]);
}

double GemmFlops(const Node& n, const Shapes& shapes) {
  const Shape* out = Out(n, 0, shapes);
  if (out == nullptr) return 1;
  const Shape* a = In(n, 0, shapes);
  if (a == nullptr || a->size() != 2) return Elems(*out);
  const int64_t k = n.attr_int("transA", 0) != 0 ? (*a)[0] : (*a)[1];
  return 2 * Elems(*out) * static_cast<double>(k);
}

// Sizes the letters of one Einsum input term from its shape: letters before
// "..." take the leading dims, letters after it the trailing ones. False when
// the shape has too few dims.
bool SizeLetters(const std::string& term, const Shape& s, std::array<int64_t, 128>* size,
                 std::array<int, 128>* uses) {
  const size_t dots = term.find("...");
  const std::string head = term.substr(0, dots);
  const std::string tail = dots == std::string::npos ? "" : term.substr(dots + 3);
  if (head.size() + tail.size() > s.size()) return false;
  auto add = [&](char c, int64_t d) {
    const auto k = static_cast<unsigned char>(c) & 127;
    (*size)[k] = std::max((*size)[k], d);
    ++(*uses)[k];
  };
  for (size_t i = 0; i < head.size(); ++i) add(head[i], s[i]);
  for (size_t i = 0; i < tail.size(); ++i) add(tail[i], s[s.size() - tail.size() + i]);
  return true;
}

// Einsum: output elements * the sizes of the contracted letters (2x when
// something is contracted); "..." dims count as output dims. Output elements
// when the equation or an input shape does not fit.
double EinsumFlops(const Node& n, const Shapes& shapes) {
  const Shape* out = Out(n, 0, shapes);
  if (out == nullptr) return 1;
  std::string eq = n.attr_string("equation", "");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::array<int64_t, 128> size{};
  std::array<int, 128> uses{};
  size.fill(-1);
  size_t term = 0, start = 0;
  for (size_t i = 0; i <= lhs.size(); ++i) {
    if (i < lhs.size() && lhs[i] != ',') continue;
    const Shape* s = In(n, term++, shapes);
    if (s == nullptr || !SizeLetters(lhs.substr(start, i - start), *s, &size, &uses))
      return Elems(*out);
    start = i + 1;
  }
  const std::string rhs = arrow == std::string::npos ? "" : eq.substr(arrow + 2);
  double contracted = 1;
  bool any = false;
  for (size_t c = 0; c < size.size(); ++c) {
    if (size[c] < 0 || c == '.') continue;
    const bool kept = arrow == std::string::npos
                          ? uses[c] == 1
                          : rhs.find(static_cast<char>(c)) != std::string::npos;
    if (kept) continue;
    contracted *= static_cast<double>(size[c]);
    any = true;
  }
  return (any ? 2 : 1) * Elems(*out) * contracted;
}

// RNN/GRU/LSTM: per time step and batch row, every weight of W and R is one
// multiply-add: 2 * X[0] * X[1] * (|W| + |R|) (either layout).
double RnnFlops(const Node& n, const Shapes& shapes) {
  const Shape* x = In(n, 0, shapes);
  const Shape* w = In(n, 1, shapes);
  const Shape* r = In(n, 2, shapes);
  if (x == nullptr || w == nullptr || r == nullptr || x->size() < 2) return 1;
  return 2 * static_cast<double>((*x)[0]) * static_cast<double>((*x)[1]) * (Elems(*w) + Elems(*r));
}

// Sum of the known output elements (elementwise ops, data movement), or 1.
double OutputElems(const Node& n, const Shapes& shapes) {
  double e = 0;
  bool known = false;
  for (size_t k = 0; k < n.outputs.size(); ++k)
    if (const Shape* s = Out(n, k, shapes)) {
      e += Elems(*s);
      known = true;
    }
  return known ? e : 1;
}

// `factor` * X's elements (reductions, softmax, norms); output elements when
// X is unknown.
double InputElems(const Node& n, double factor, const Shapes& shapes) {
  const Shape* x = In(n, 0, shapes);
  return x != nullptr ? factor * Elems(*x) : OutputElems(n, shapes);
}

double PoolFlops(const Node& n, const Shapes& shapes) {
  const Shape* out = Out(n, 0, shapes);
  if (out == nullptr) return 1;
  return Elems(*out) * Elems(n.attr_ints("kernel_shape"));
}

double Estimate(const Node& n, const Shapes& shapes) {
  const bool std_or_px = n.domain.empty() || n.domain == "ai.onnx" || n.domain == "com.parallax";
  if (!std_or_px) return OutputElems(n, shapes);
  if (Is(n, {"Conv", "FusedConv", "ConvInteger"})) return ConvFlops(n, 1, shapes);
  if (Is(n, {"QLinearConv"})) return ConvFlops(n, 3, shapes);
  if (Is(n, {"ConvTranspose"})) return ConvTransposeFlops(n, shapes);
  if (Is(n, {"MatMul", "FusedMatMul", "ScaledMatMul", "MatMulInteger", "QLinearMatMul"}))
    return MatMulFlops(n, 0, shapes);
  if (Is(n, {"Gemm"})) return GemmFlops(n, shapes);
  if (Is(n, {"Einsum"})) return EinsumFlops(n, shapes);
  if (Is(n, {"RNN", "GRU", "LSTM"})) return RnnFlops(n, shapes);
  if (Is(n, {"MaxPool", "AveragePool", "LpPool"})) return PoolFlops(n, shapes);
  if (Is(n, {"If", "Loop", "Scan", "Shape", "Size", "Constant"})) return 1;
  if (Is(n, {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMax", "ReduceMin",
             "ReduceMean", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
             "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "TopK", "CumSum"}))
    return InputElems(n, 1, shapes);
  if (Is(n, {"BatchNormalization"})) return InputElems(n, 2, shapes);
  if (Is(n, {"Softmax", "LogSoftmax", "Hardmax"})) return InputElems(n, 3, shapes);
  if (Is(n, {"LayerNormalization", "InstanceNormalization", "GroupNormalization",
             "MeanVarianceNormalization", "LpNormalization", "RMSNormalization", "LRN"}))
    return InputElems(n, 5, shapes);
  return OutputElems(n, shapes);
}

}  // namespace

double EstimateNodeFlops(const Graph& graph, const Node& node,
                         const std::vector<ValueShape>& shapes) {
  return std::max(1.0, Estimate(node, shapes));
}

std::vector<double> EstimateGraphFlops(const Graph& graph, const std::vector<ValueShape>& shapes) {
  std::vector<double> flops;
  flops.reserve(graph.nodes.size());
  for (const Node& n : graph.nodes) flops.push_back(EstimateNodeFlops(graph, n, shapes));
  return flops;
}

std::vector<ValueShape> StaticValueShapes(const Graph& graph) {
  std::vector<ValueShape> shapes(graph.values.size());
  for (size_t v = 0; v < graph.values.size(); ++v) {
    const Value& val = graph.values[v];
    ValueShape& s = shapes[v];
    if (val.is_constant()) {
      s.known = true;
      s.dims = val.constant.shape();
      continue;
    }
    if (!val.has_shape) continue;
    s.known = std::all_of(val.dims.begin(), val.dims.end(), [](const Dim& d) { return d.known(); });
    if (!s.known) continue;
    for (const Dim& d : val.dims) s.dims.push_back(d.size);
  }
  return shapes;
}

}  // namespace parallax
