#include "plan/shape_infer.h"

#include <algorithm>
#include <optional>
#include <string>

#include "ops/shape_util.h"
#include "plan/fusion_util.h"
#include "plan/split_map.h"

namespace parallax {
namespace {

using Dims = std::optional<Shape>;

// Constant int64/int32 input `i` of `n`, or nullopt.
std::optional<std::vector<int64_t>> ConstInts(const Graph& g, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return std::nullopt;
  const Value& v = g.values[static_cast<size_t>(n.inputs[i])];
  if (!v.is_constant()) return std::nullopt;
  Result<std::vector<int64_t>> r = ReadInt64s(v.constant);
  if (!r.ok()) return std::nullopt;
  return *r;
}

// Conv and pooling: [N, C, spatial...] (or [N, spatial..., C] when
// channels_last) windows over the spatial axes.
Dims Windowed(const Node& n, const Shape& x, const std::vector<ValueShape>& shapes) {
  const bool nhwc = !n.domain.empty() && n.attr_int("channels_last", 0) != 0;
  const int sr = static_cast<int>(x.size()) - 2;
  if (sr < 1) return std::nullopt;
  int64_t channels = x[nhwc ? x.size() - 1 : 1];
  if (n.op_type == "Conv" || n.op_type == "FusedConv") {
    const Shape* w = n.inputs.size() > 1 ? KnownShape(shapes, n.inputs[1]) : nullptr;
    if (w == nullptr || w->empty()) return std::nullopt;
    channels = (*w)[0];
  }
  Shape y = {x[0]};
  if (!nhwc) y.push_back(channels);
  for (int d = 0; d < sr; ++d) {
    int64_t pad_end = 0;
    const std::optional<AxisWindow> w = SpatialWindow(shapes, n, d, sr, &pad_end);
    const int64_t in = x[static_cast<size_t>(nhwc ? 1 + d : 2 + d)];
    if (!w || in + w->pad + pad_end < w->span) return std::nullopt;
    y.push_back((in + w->pad + pad_end - w->span) / w->stride + 1);
  }
  if (nhwc) y.push_back(channels);
  return y;
}

Dims SliceShape(const Graph& g, const Node& n, Shape x) {
  const auto starts = ConstInts(g, n, 1), ends = ConstInts(g, n, 2);
  if (!starts || !ends || starts->size() != ends->size()) return std::nullopt;
  std::vector<int64_t> axes, steps(starts->size(), 1);
  for (size_t i = 0; i < starts->size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (n.inputs.size() > 3 && n.inputs[3] != kNoValue) {
    auto a = ConstInts(g, n, 3);
    if (!a || a->size() != starts->size()) return std::nullopt;
    axes = *a;
  }
  if (n.inputs.size() > 4 && n.inputs[4] != kNoValue) {
    auto s = ConstInts(g, n, 4);
    if (!s || s->size() != starts->size()) return std::nullopt;
    steps = *s;
  }
  const int64_t rank = static_cast<int64_t>(x.size());
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (a < 0 || a >= rank || steps[i] == 0) return std::nullopt;
    const int64_t dim = x[static_cast<size_t>(a)];
    int64_t s = (*starts)[i], e = (*ends)[i];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (steps[i] > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      x[static_cast<size_t>(a)] = std::max<int64_t>(0, (e - s + steps[i] - 1) / steps[i]);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      x[static_cast<size_t>(a)] = std::max<int64_t>(0, (s - e - steps[i] - 1) / -steps[i]);
    }
  }
  return x;
}

Dims ReshapeShape(const Graph& g, const Node& n, const Shape& x) {
  const auto target = ConstInts(g, n, 1);
  if (!target) return std::nullopt;
  Shape y = *target;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] == 0 && n.attr_int("allowzero", 0) == 0) {
      if (i >= x.size()) return std::nullopt;
      y[i] = x[i];
    }
    if (y[i] == -1) {
      if (infer >= 0) return std::nullopt;
      infer = static_cast<int64_t>(i);
    } else {
      known *= y[i];
    }
  }
  const int64_t total = NumElements(x);
  if (infer >= 0) {
    if (known == 0 || total % known != 0) return std::nullopt;
    y[static_cast<size_t>(infer)] = total / known;
  }
  return NumElements(y) == total ? Dims(y) : std::nullopt;
}

Dims ResizeShape(const Graph& g, const Node& n, const Shape& x) {
  if (!n.attr_ints("axes").empty()) return std::nullopt;
  const size_t scales_at = n.opset >= 11 ? 2 : 1;
  if (auto sizes = ConstInts(g, n, 3); sizes && sizes->size() == x.size()) return *sizes;
  if (scales_at >= n.inputs.size() || n.inputs[scales_at] == kNoValue) return std::nullopt;
  const Value& s = g.values[static_cast<size_t>(n.inputs[scales_at])];
  if (!s.is_constant() || s.constant.numel() != static_cast<int64_t>(x.size())) return std::nullopt;
  Shape y = x;
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = static_cast<int64_t>(static_cast<double>(x[i]) *
                                ElementAsDouble(s.constant, static_cast<int64_t>(i)));
  return y;
}

// Output shapes of `n` given its first input's shape `x`; empty when unknown.
std::vector<Dims> Infer(const Graph& g, const Node& n, const std::vector<ValueShape>& shapes,
                        const Shape& x) {
  const std::string& op = n.op_type;
  const bool onnx = n.domain.empty(), ours = n.domain == fusion::kDomain;
  if (IsElementwise(n) ||
      (n.domain.empty() && (n.op_type == "Softmax" || n.op_type == "LogSoftmax"))) {
    Shape y = x;
    for (size_t i = 1; i < n.inputs.size(); ++i) {
      if (n.inputs[i] == kNoValue || op == "Clip") continue;
      const ValueShape& s = shapes[static_cast<size_t>(n.inputs[i])];
      if (!s.known) return {};
      Result<Shape> b = BroadcastShapes(y, s.dims);
      if (!b.ok()) return {};
      y = *b;
    }
    return {y};
  }
  if ((onnx && (op == "Conv" || op == "MaxPool" || op == "AveragePool")) ||
      (ours && (op == "Conv" || op == "FusedConv" || op == "MaxPool" || op == "AveragePool")))
    return {Windowed(n, x, shapes)};
  if (!onnx) return {};
  const int64_t rank = static_cast<int64_t>(x.size());
  int64_t axis = n.attr_int("axis", 0);
  if (axis < 0) axis += rank;
  if (op == "Concat") {
    if (axis < 0 || axis >= rank) return {};
    Shape y = x;
    y[static_cast<size_t>(axis)] = 0;
    for (ValueId u : n.inputs) {
      const ValueShape& s = shapes[static_cast<size_t>(u)];
      if (!s.known || s.dims.size() != x.size()) return {};
      y[static_cast<size_t>(axis)] += s.dims[static_cast<size_t>(axis)];
    }
    return {y};
  }
  if (op == "Transpose") {
    std::vector<int64_t> perm = n.attr_ints("perm");
    if (perm.empty())
      for (int64_t d = rank - 1; d >= 0; --d) perm.push_back(d);
    if (static_cast<int64_t>(perm.size()) != rank) return {};
    Shape y;
    for (int64_t p : perm) {
      if (p < 0 || p >= rank) return {};
      y.push_back(x[static_cast<size_t>(p)]);
    }
    return {y};
  }
  if (op == "Split") {
    if (axis < 0 || axis >= rank) return {};
    std::vector<int64_t> sizes = n.attr_ints("split");
    if (auto s = ConstInts(g, n, 1)) sizes = *s;
    const int64_t parts = static_cast<int64_t>(n.outputs.size());
    if (sizes.empty() && x[static_cast<size_t>(axis)] % parts == 0)
      sizes.assign(static_cast<size_t>(parts), x[static_cast<size_t>(axis)] / parts);
    if (static_cast<int64_t>(sizes.size()) != parts) return {};
    std::vector<Dims> out;
    for (int64_t s : sizes) {
      Shape y = x;
      y[static_cast<size_t>(axis)] = s;
      out.push_back(y);
    }
    return out;
  }
  if (op == "Slice" && n.opset >= 10) return {SliceShape(g, n, x)};
  if (op == "Reshape") return {ReshapeShape(g, n, x)};
  if (op == "Resize") return {ResizeShape(g, n, x)};
  return {};
}

}  // namespace

std::vector<ValueShape> InferShapes(const Graph& g, std::vector<ValueShape> shapes) {
  shapes.resize(g.values.size());
  for (const Node& n : g.nodes) {
    if (n.inputs.empty() || n.inputs[0] == kNoValue || !n.implicit_inputs.empty()) continue;
    bool open = false;
    for (ValueId o : n.outputs) open = open || (o != kNoValue && !shapes[o].known);
    const ValueShape& x = shapes[static_cast<size_t>(n.inputs[0])];
    if (!open || !x.known) continue;
    const std::vector<Dims> out = Infer(g, n, shapes, x.dims);
    for (size_t i = 0; i < out.size() && i < n.outputs.size(); ++i) {
      const ValueId o = n.outputs[i];
      if (o != kNoValue && !shapes[static_cast<size_t>(o)].known && out[i])
        shapes[static_cast<size_t>(o)] = ValueShape{true, *out[i]};
    }
  }
  return shapes;
}

}  // namespace parallax
