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
using Ints = std::optional<std::vector<int64_t>>;

// Int tensors of at most this many elements have their values tracked
// (shape arithmetic: Shape -> Gather -> Concat -> Reshape).
constexpr int64_t kMaxTracked = 64;

// What is known so far: value shapes, and the values of small int tensors
// (constants, and shape arithmetic evaluated from known shapes).
struct Known {
  const Graph& g;
  std::vector<ValueShape> shapes;
  std::vector<Ints> ints;  // Per value.
};

// The int values of input `i` of `n`, or nullopt.
Ints ConstInts(const Known& k, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return std::nullopt;
  return k.ints[static_cast<size_t>(n.inputs[i])];
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

Dims SliceShape(const Known& k, const Node& n, Shape x) {
  const auto starts = ConstInts(k, n, 1), ends = ConstInts(k, n, 2);
  if (!starts || !ends || starts->size() != ends->size()) return std::nullopt;
  std::vector<int64_t> axes, steps(starts->size(), 1);
  for (size_t i = 0; i < starts->size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (n.inputs.size() > 3 && n.inputs[3] != kNoValue) {
    auto a = ConstInts(k, n, 3);
    if (!a || a->size() != starts->size()) return std::nullopt;
    axes = *a;
  }
  if (n.inputs.size() > 4 && n.inputs[4] != kNoValue) {
    auto s = ConstInts(k, n, 4);
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

Dims ReshapeShape(const Known& k, const Node& n, const Shape& x) {
  const auto target = ConstInts(k, n, 1);
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

Dims ResizeShape(const Known& k, const Node& n, const Shape& x) {
  if (!n.attr_ints("axes").empty()) return std::nullopt;
  const size_t scales_at = n.opset >= 11 ? 2 : 1;
  if (auto sizes = ConstInts(k, n, 3); sizes && sizes->size() == x.size()) return *sizes;
  if (scales_at >= n.inputs.size() || n.inputs[scales_at] == kNoValue) return std::nullopt;
  const Value& s = k.g.values[static_cast<size_t>(n.inputs[scales_at])];
  if (!s.is_constant() || s.constant.numel() != static_cast<int64_t>(x.size())) return std::nullopt;
  Shape y = x;
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = static_cast<int64_t>(static_cast<double>(x[i]) *
                                ElementAsDouble(s.constant, static_cast<int64_t>(i)));
  return y;
}

// `x` transposed by `perm` (ScaledMatMul's perm_a / perm_b; empty: as is).
Dims Permute(const Shape& x, const std::vector<int64_t>& perm) {
  if (perm.empty()) return x;
  if (perm.size() != x.size()) return std::nullopt;
  Shape y;
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(x.size())) return std::nullopt;
    y.push_back(x[static_cast<size_t>(p)]);
  }
  return y;
}

// MatMul (numpy semantics: 1-D operands promoted, batch dims broadcast).
Dims MatMulShape(const Shape& a, const Shape* b) {
  if (b == nullptr || a.empty() || b->empty()) return std::nullopt;
  Shape x = a, y = *b;
  if (x.size() == 1) x.insert(x.begin(), 1);
  if (y.size() == 1) y.push_back(1);
  if (x.back() != y[y.size() - 2]) return std::nullopt;
  Result<Shape> batch =
      BroadcastShapes(Shape(x.begin(), x.end() - 2), Shape(y.begin(), y.end() - 2));
  if (!batch.ok()) return std::nullopt;
  Shape out = *batch;
  if (a.size() > 1) out.push_back(x[x.size() - 2]);
  if (b->size() > 1) out.push_back(y.back());
  return out;
}

// Axes from attribute "axes" (before `from_opset`) or input 1, normalised to
// [0, rank); nullopt when unknown or out of range, empty when absent.
std::optional<std::vector<int64_t>> AxesOf(const Known& k, const Node& n, int from_opset,
                                           int64_t rank) {
  std::vector<int64_t> axes = n.attr_ints("axes");
  if (n.opset >= from_opset) {
    if (n.inputs.size() < 2 || n.inputs[1] == kNoValue) return std::vector<int64_t>{};
    Ints a = ConstInts(k, n, 1);
    if (!a) return std::nullopt;
    axes = *a;
  }
  for (int64_t& a : axes) {
    if (a < 0) a += rank;
    if (a < 0 || a >= rank) return std::nullopt;
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

// Shapes of reshaping and indexing ops; nullopt when not covered or unknown.
Dims ShapeOpShape(const Known& k, const Node& n, const Shape& x) {
  const std::string& op = n.op_type;
  const int64_t rank = static_cast<int64_t>(x.size());
  if (op == "Unsqueeze") {
    Ints raw = n.opset >= 13 ? ConstInts(k, n, 1) : Ints(n.attr_ints("axes"));
    if (!raw || raw->empty()) return std::nullopt;
    auto axes = AxesOf(k, n, 13, rank + static_cast<int64_t>(raw->size()));
    if (!axes) return std::nullopt;
    Shape y = x;
    for (int64_t a : *axes) {
      if (a > static_cast<int64_t>(y.size())) return std::nullopt;
      y.insert(y.begin() + a, 1);
    }
    return y;
  }
  if (op == "Squeeze") {
    auto axes = AxesOf(k, n, 13, rank);
    if (!axes) return std::nullopt;
    Shape y;
    for (int64_t d = 0; d < rank; ++d) {
      const bool listed = std::count(axes->begin(), axes->end(), d) != 0;
      if (axes->empty() ? x[static_cast<size_t>(d)] != 1 : !listed)
        y.push_back(x[static_cast<size_t>(d)]);
    }
    return y;
  }
  if (op == "Flatten") {
    int64_t axis = n.attr_int("axis", 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank) return std::nullopt;
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < rank; ++d) (d < axis ? outer : inner) *= x[static_cast<size_t>(d)];
    return Shape{outer, inner};
  }
  if (op == "Gather") {
    int64_t axis = n.attr_int("axis", 0);
    if (axis < 0) axis += rank;
    const Shape* idx = n.inputs.size() > 1 ? KnownShape(k.shapes, n.inputs[1]) : nullptr;
    if (idx == nullptr || axis < 0 || axis >= rank) return std::nullopt;
    Shape y(x.begin(), x.begin() + axis);
    y.insert(y.end(), idx->begin(), idx->end());
    y.insert(y.end(), x.begin() + axis + 1, x.end());
    return y;
  }
  if (op == "Expand") {
    Ints to = ConstInts(k, n, 1);
    if (!to) return std::nullopt;
    Result<Shape> y = BroadcastShapes(x, *to);
    return y.ok() ? Dims(*y) : std::nullopt;
  }
  if (IsReduction(n)) {
    auto axes = AxesOf(k, n, n.op_type == "ReduceSum" ? 13 : 18, rank);
    if (!axes || (axes->empty() && n.attr_int("noop_with_empty_axes", 0) != 0)) return std::nullopt;
    const bool keep = n.attr_int("keepdims", 1) != 0;
    Shape y;
    for (int64_t d = 0; d < rank; ++d) {
      const bool reduced = axes->empty() || std::count(axes->begin(), axes->end(), d) != 0;
      if (!reduced)
        y.push_back(x[static_cast<size_t>(d)]);
      else if (keep)
        y.push_back(1);
    }
    return y;
  }
  if (op == "Shape") {
    int64_t start = n.attr_int("start", 0), end = n.attr_int("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    return Shape{std::max<int64_t>(
        0, std::clamp<int64_t>(end, 0, rank) - std::clamp<int64_t>(start, 0, rank))};
  }
  if (op == "ConstantOfShape") {
    Ints dims = ConstInts(k, n, 0);
    return dims ? Dims(*dims) : std::nullopt;
  }
  if (op == "Range") {
    Ints a = ConstInts(k, n, 0), b = ConstInts(k, n, 1), d = ConstInts(k, n, 2);
    if (!a || !b || !d || a->size() != 1 || b->size() != 1 || d->size() != 1 || (*d)[0] == 0)
      return std::nullopt;
    const int64_t count = ((*b)[0] - (*a)[0] + (*d)[0] + ((*d)[0] > 0 ? -1 : 1)) / (*d)[0];
    return Shape{std::max<int64_t>(0, count)};
  }
  return std::nullopt;
}

// Output shapes of `n` given its first input's shape `x`; empty when unknown.
std::vector<Dims> Infer(const Known& k, const Node& n, const Shape& x) {
  const std::string& op = n.op_type;
  const std::vector<ValueShape>& shapes = k.shapes;
  const bool onnx = n.domain.empty(), ours = n.domain == fusion::kDomain;
  if (IsElementwise(n) ||
      (n.domain.empty() && (op == "Softmax" || op == "LogSoftmax" || op == "LayerNormalization"))) {
    Shape y = x;
    const size_t broadcast = op == "LayerNormalization" ? 1 : n.inputs.size();
    for (size_t i = 1; i < broadcast; ++i) {
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
  if (IsMatMulFamily(n)) {
    const Shape* b = n.inputs.size() > 1 ? KnownShape(shapes, n.inputs[1]) : nullptr;
    Dims pa = Permute(x, n.attr_ints("perm_a")),
         pb = b ? Permute(*b, n.attr_ints("perm_b")) : std::nullopt;
    return {pa && pb ? MatMulShape(*pa, &*pb) : std::nullopt};
  }
  if (!onnx) return {};
  const int64_t rank = static_cast<int64_t>(x.size());
  int64_t axis = n.attr_int("axis", 0);
  if (axis < 0) axis += rank;
  if (op == "Gemm") {
    const Shape* b = n.inputs.size() > 1 ? KnownShape(shapes, n.inputs[1]) : nullptr;
    if (rank != 2 || b == nullptr || b->size() != 2) return {};
    return {
        Shape{x[n.attr_int("transA", 0) != 0 ? 1 : 0], (*b)[n.attr_int("transB", 0) != 0 ? 0 : 1]}};
  }
  if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
    if (rank < 3) return {};
    Shape y = x;
    std::fill(y.begin() + 2, y.end(), 1);
    return {y};
  }
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
    if (auto s = ConstInts(k, n, 1)) sizes = *s;
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
  if (op == "Slice" && n.opset >= 10) return {SliceShape(k, n, x)};
  if (op == "Reshape") return {ReshapeShape(k, n, x)};
  if (op == "Resize") return {ResizeShape(k, n, x)};
  return {ShapeOpShape(k, n, x)};
}

// Elementwise int arithmetic with numpy broadcasting of 0/1-D operands.
Ints IntArithmetic(const Node& n, const std::vector<Ints>& in) {
  const std::string& op = n.op_type;
  size_t len = 1;
  for (const Ints& v : in) {
    if (!v) return std::nullopt;
    if (v->size() != 1 && len != 1 && v->size() != len) return std::nullopt;
    if (v->size() != 1) len = v->size();
  }
  std::vector<int64_t> out(len);
  for (size_t i = 0; i < len; ++i) {
    auto at = [&](size_t j) { return (*in[j])[in[j]->size() == 1 ? 0 : i]; };
    if (op == "Where") {
      out[i] = at(0) != 0 ? at(1) : at(2);
      continue;
    }
    const int64_t a = at(0), b = at(1);
    if (op == "Add")
      out[i] = a + b;
    else if (op == "Sub")
      out[i] = a - b;
    else if (op == "Mul")
      out[i] = a * b;
    else if (op == "Div" && b != 0)
      out[i] = a / b;  // Both signs agree for shape sizes.
    else if (op == "Equal")
      out[i] = a == b;
    else if (op == "Max")
      out[i] = std::max(a, b);
    else if (op == "Min")
      out[i] = std::min(a, b);
    else
      return std::nullopt;
  }
  return out;
}

// The values of output 0 of `n` when it is shape arithmetic on known ints
// (or Shape of a known shape); nullopt otherwise.
Ints EvaluateInts(const Known& k, const Node& n) {
  if (!n.domain.empty() || n.outputs.empty() || n.outputs[0] == kNoValue) return std::nullopt;
  const std::string& op = n.op_type;
  const ValueShape& x = k.shapes[static_cast<size_t>(n.inputs[0])];
  if (op == "Shape") {
    if (!x.known) return std::nullopt;
    const int64_t rank = static_cast<int64_t>(x.dims.size());
    int64_t start = n.attr_int("start", 0), end = n.attr_int("end", rank);
    start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
    end = std::clamp<int64_t>(end < 0 ? end + rank : end, 0, rank);
    return std::vector<int64_t>(x.dims.begin() + start, x.dims.begin() + std::max(start, end));
  }
  std::vector<Ints> in;
  for (size_t i = 0; i < n.inputs.size(); ++i) in.push_back(ConstInts(k, n, i));
  if (in.empty() || !in[0]) return std::nullopt;
  const std::vector<int64_t>& a = *in[0];
  if (op == "Identity" || op == "Unsqueeze" || op == "Squeeze" || op == "Reshape" ||
      op == "Flatten")
    return a;
  if (op == "Cast") {
    const int64_t to = n.attr_int("to", 0);  // int32, int64, bool (TensorProto ids).
    if (to != 6 && to != 7 && to != 9) return std::nullopt;
    if (to == 9) {
      std::vector<int64_t> b;
      for (int64_t v : a) b.push_back(v != 0);
      return b;
    }
    return a;
  }
  if (op == "Gather") {
    const ValueShape& idx = k.shapes[static_cast<size_t>(n.inputs[1])];
    if (in.size() < 2 || !in[1] || !x.known || x.dims.size() != 1 || !idx.known)
      return std::nullopt;
    std::vector<int64_t> out;
    for (int64_t i : *in[1]) {
      if (i < 0) i += static_cast<int64_t>(a.size());
      if (i < 0 || i >= static_cast<int64_t>(a.size())) return std::nullopt;
      out.push_back(a[static_cast<size_t>(i)]);
    }
    return out;
  }
  if (op == "Concat") {
    std::vector<int64_t> out;
    for (const Ints& v : in) {
      if (!v) return std::nullopt;
      out.insert(out.end(), v->begin(), v->end());
    }
    return out;
  }
  if (op == "Slice" && n.opset >= 10) {
    if (!x.known || x.dims.size() != 1) return std::nullopt;
    Dims len = SliceShape(k, n, x.dims);
    Ints starts = ConstInts(k, n, 1), steps = ConstInts(k, n, 4);
    if (!len || !starts || starts->size() != 1) return std::nullopt;
    const int64_t step = steps && steps->size() == 1 ? (*steps)[0] : 1;
    const int64_t dim = static_cast<int64_t>(a.size());
    int64_t s = (*starts)[0] < 0 ? (*starts)[0] + dim : (*starts)[0];
    s = step > 0 ? std::clamp<int64_t>(s, 0, dim) : std::clamp<int64_t>(s, 0, dim - 1);
    std::vector<int64_t> out;
    for (int64_t i = 0; i < (*len)[0]; ++i) out.push_back(a[static_cast<size_t>(s + i * step)]);
    return out;
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Equal" || op == "Max" ||
      op == "Min" || op == "Where")
    return IntArithmetic(n, in);
  return std::nullopt;
}

}  // namespace

std::vector<ValueShape> InferShapes(const Graph& g, std::vector<ValueShape> shapes) {
  shapes.resize(g.values.size());
  Known k{g, std::move(shapes), std::vector<Ints>(g.values.size())};
  for (size_t v = 0; v < g.values.size(); ++v) {
    const Value& val = g.values[v];
    if (!val.is_constant()) continue;
    if (!k.shapes[v].known) k.shapes[v] = ValueShape{true, val.constant.shape()};
    if (val.constant.numel() <= kMaxTracked) {
      Result<std::vector<int64_t>> r = ReadInt64s(val.constant);
      if (r.ok()) k.ints[v] = std::move(*r);
    }
  }
  for (const Node& n : g.nodes) {
    if (n.inputs.empty() || n.inputs[0] == kNoValue || !n.implicit_inputs.empty()) continue;
    const ValueShape& x = k.shapes[static_cast<size_t>(n.inputs[0])];
    if (!x.known) continue;
    bool open = false;
    for (ValueId o : n.outputs) open = open || (o != kNoValue && !k.shapes[o].known);
    if (open) {
      const std::vector<Dims> out = Infer(k, n, x.dims);
      for (size_t i = 0; i < out.size() && i < n.outputs.size(); ++i) {
        const ValueId o = n.outputs[i];
        if (o != kNoValue && !k.shapes[static_cast<size_t>(o)].known && out[i])
          k.shapes[static_cast<size_t>(o)] = ValueShape{true, *out[i]};
      }
    }
    const ValueId y = n.outputs.empty() ? kNoValue : n.outputs[0];
    if (y != kNoValue && !k.ints[static_cast<size_t>(y)]) {
      Ints v = EvaluateInts(k, n);
      const ValueShape& ys = k.shapes[static_cast<size_t>(y)];
      // Kept only when its count matches the output's known shape.
      if (v && v->size() <= static_cast<size_t>(kMaxTracked) && ys.known &&
          static_cast<int64_t>(v->size()) == NumElements(ys.dims))
        k.ints[static_cast<size_t>(y)] = std::move(v);
    }
  }
  return std::move(k.shapes);
}

}  // namespace parallax
