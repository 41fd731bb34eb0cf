#include "plan/split_map.h"

#include <algorithm>
#include <set>
#include <string>

#include "ops/shape_util.h"
#include "plan/fusion_util.h"

namespace parallax {
namespace {

// Ops that compute each sample of the batch (axis 0) from the same sample of
// input 0 (and of a FusedConv's residual, input 3) and whole parameters.
bool IsPerSample(const Node& n) {
  static const std::set<std::string> kOnnx = {"Conv",
                                              "ConvTranspose",
                                              "MaxPool",
                                              "AveragePool",
                                              "LpPool",
                                              "GlobalAveragePool",
                                              "GlobalMaxPool",
                                              "GlobalLpPool",
                                              "BatchNormalization",
                                              "InstanceNormalization",
                                              "LRN"};
  static const std::set<std::string> kParallax = {"Conv", "FusedConv", "MaxPool", "AveragePool"};
  return n.domain.empty() ? kOnnx.count(n.op_type) != 0
                          : n.domain == fusion::kDomain && kParallax.count(n.op_type) != 0;
}

int64_t Product(const Shape& s, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; ++i) p *= s[static_cast<size_t>(i)];
  return p;
}

// Normalised constant axes of input `k` (or the attribute before `opset_from`).
std::optional<std::vector<int64_t>> ConstAxes(const Graph& g, const Node& n, size_t k, int rank) {
  if (k >= n.inputs.size() || n.inputs[k] == kNoValue) return std::nullopt;
  const Value& v = g.values[static_cast<size_t>(n.inputs[k])];
  if (!v.is_constant()) return std::nullopt;
  Result<std::vector<int64_t>> axes = ReadInt64s(v.constant);
  if (!axes.ok()) return std::nullopt;
  for (int64_t& a : *axes) a = a < 0 ? a + rank : a;
  return *axes;
}

// Numpy broadcasting: inputs [from, end) of `n` vary along output axis
// `o` (of rank `r`, size `extent`) where they have that axis with size > 1.
bool MapBroadcast(const Node& n, const std::vector<ValueShape>& shapes, int o, int r,
                  int64_t extent, size_t from, SplitMap* m) {
  for (size_t i = from; i < n.inputs.size(); ++i) {
    if (n.inputs[i] == kNoValue) continue;
    const Shape* s = KnownShape(shapes, n.inputs[i]);
    if (s == nullptr) return false;
    const int ai = o - (r - static_cast<int>(s->size()));
    if (ai < 0 || (*s)[static_cast<size_t>(ai)] == 1) continue;
    if ((*s)[static_cast<size_t>(ai)] != extent) return false;
    m->in_axes[i] = ai;
  }
  return true;
}

// MatMul-family (A [..., M, K] x B [..., K, N]) with input `in` sliced along
// `axis`: a batch axis (B or A follows where it has that axis), M of A or N
// of B. The reduced K axis does not split. A ScaledMatMul reading an operand
// through perm_a / perm_b splits along the operand's axes as permuted.
bool MapMatMul(const Node& n, const std::vector<ValueShape>& shapes, int in, int axis, int r,
               SplitMap* m) {
  const Shape* sa = KnownShape(shapes, n.inputs[0]);
  const Shape* sb = n.inputs.size() > 1 ? KnownShape(shapes, n.inputs[1]) : nullptr;
  if (sa == nullptr || sb == nullptr || in > 1) return false;
  const std::vector<int64_t> perms[2] = {n.attr_ints("perm_a"), n.attr_ints("perm_b")};
  Shape logical[2] = {*sa, *sb};
  for (int i = 0; i < 2; ++i) {
    if (perms[i].empty()) continue;
    if (perms[i].size() != logical[i].size()) return false;
    Shape p;
    for (int64_t d : perms[i]) p.push_back(logical[i][static_cast<size_t>(d)]);
    logical[i] = p;
  }
  if (!perms[in].empty())  // The source axis's place among the operand's logical axes.
    axis =
        static_cast<int>(std::find(perms[in].begin(), perms[in].end(), axis) - perms[in].begin());
  const Shape* a = &logical[0];
  const Shape* b = &logical[1];
  if (a->size() < 2 || b->size() < 2) return false;
  const int ra = static_cast<int>(a->size()), rb = static_cast<int>(b->size());
  const int rx = in == 0 ? ra : rb;
  const Shape* other = in == 0 ? b : a;
  const int ro = in == 0 ? rb : ra;
  if (axis == rx - 1 - in) return false;  // K.
  m->in_axes[static_cast<size_t>(in)] = axis;
  if (axis != rx - 2 + in) {  // Batch (M of A or N of B: the other operand is read whole).
    m->out_axis = axis + (r - rx);
    const int oi = m->out_axis - (r - ro);
    if (oi >= 0 && oi < ro - 2 && (*other)[static_cast<size_t>(oi)] != 1)
      m->in_axes[static_cast<size_t>(1 - in)] = oi;
  } else {
    m->out_axis = r - 2 + in;
  }
  for (int i = 0; i < 2; ++i)  // Back to the operands' own axes.
    if (!perms[i].empty() && m->in_axes[static_cast<size_t>(i)] >= 0)
      m->in_axes[static_cast<size_t>(i)] =
          static_cast<int>(perms[i][static_cast<size_t>(m->in_axes[static_cast<size_t>(i)])]);
  return true;
}

// The output axis of a reshape-like node that keeps input axis `axis` whole:
// the same extent after the same number of elements.
int ReshapeAxis(const Shape& x, const Shape& out, int axis) {
  const int64_t before = Product(x, 0, axis);
  for (int b = 0; b < static_cast<int>(out.size()); ++b)
    if (Product(out, 0, b) == before && out[static_cast<size_t>(b)] == x[static_cast<size_t>(axis)])
      return b;
  return -1;
}

// The output axis of a reshape-like node that merges input axis `axis`
// with the axes after it (outermost first, e.g. [N,C,H,W] -> [N,C,H*W]
// along H), or -1.
int MergedAxis(const Shape& x, const Shape& out, int axis) {
  const int64_t before = Product(x, 0, axis);
  for (int b = 0; b < static_cast<int>(out.size()); ++b) {
    if (Product(out, 0, b) != before) continue;
    int64_t run = x[static_cast<size_t>(axis)];
    for (int j = axis + 1; j < static_cast<int>(x.size()) && run < out[static_cast<size_t>(b)]; ++j)
      run *= x[static_cast<size_t>(j)];
    return run == out[static_cast<size_t>(b)] && run > x[static_cast<size_t>(axis)] ? b : -1;
  }
  return -1;
}

// The output axis of a Reshape that splits input axis `axis` into it and
// the axes after it (outermost first, e.g. [T, H*D] -> [T, H, D] along
// H*D gives H), or -1.
int SplitAxis(const Shape& x, const Shape& out, int axis) {
  const int64_t before = Product(x, 0, axis);
  for (int b = 0; b + 1 < static_cast<int>(out.size()); ++b) {
    if (Product(out, 0, b) != before) continue;
    int64_t run = out[static_cast<size_t>(b)];
    for (int j = b + 1; j < static_cast<int>(out.size()) && run < x[static_cast<size_t>(axis)]; ++j)
      run *= out[static_cast<size_t>(j)];
    return run == x[static_cast<size_t>(axis)] && out[static_cast<size_t>(b)] > 1 &&
                   out[static_cast<size_t>(b)] < x[static_cast<size_t>(axis)]
               ? b
               : -1;
  }
  return -1;
}

// Reductions and ArgMax / ArgMin away from their reduced axes.
bool MapReduction(const Graph& g, const Node& n, int axis, int rx, SplitMap* m) {
  std::vector<int64_t> axes;
  bool keep = n.attr_int("keepdims", 1) != 0;
  if (n.op_type == "ArgMax" || n.op_type == "ArgMin") {
    int64_t a = n.attr_int("axis", 0);
    axes = {a < 0 ? a + rx : a};
  } else {
    auto r = fusion::ReduceAxes(g, n);
    if (!r) return false;
    axes = *r;
    if (axes.empty()) return false;  // Every axis.
    for (int64_t& a : axes) a = a < 0 ? a + rx : a;
  }
  int below = 0;
  for (int64_t a : axes) {
    if (a == axis) return false;
    below += a < axis ? 1 : 0;
  }
  m->in_axes[0] = axis;
  m->out_axis = keep ? axis : axis - below;
  return true;
}

// Conv / MaxPool / AveragePool (ONNX NCHW, or com.parallax NHWC where
// channels_last is set) sliced along spatial `axis` of X: a window.
bool MapSpatial(const std::vector<ValueShape>& shapes, const Node& n, int in, int axis, int rx,
                SplitMap* m) {
  const bool nhwc = !n.domain.empty() && n.attr_int("channels_last", 0) != 0;
  const int d = axis - (nhwc ? 1 : 2);
  if (in != 0 || rx < 3 || d < 0 || d >= rx - 2) return false;
  if (n.op_type == "MaxPool" && n.outputs.size() > 1 && n.outputs[1] != kNoValue)
    return false;  // Indices.
  int64_t pad_end = 0;
  const std::optional<AxisWindow> w = SpatialWindow(shapes, n, d, rx - 2, &pad_end);
  const int64_t extent = (*KnownShape(shapes, n.inputs[0]))[static_cast<size_t>(axis)];
  const Shape* y = KnownShape(shapes, n.outputs[0]);
  if (!w || y == nullptr || static_cast<int>(y->size()) != rx ||
      (*y)[static_cast<size_t>(axis)] != (extent + w->pad + pad_end - w->span) / w->stride + 1)
    return false;
  m->in_axes[0] = axis;
  m->out_axis = axis;
  m->window = w;
  if (n.op_type == "FusedConv" && n.inputs.size() > 3 &&
      n.inputs[3] != kNoValue) {  // Residual: Y's cells.
    const Shape* z = KnownShape(shapes, n.inputs[3]);
    if (z == nullptr || *z != *y) return false;
    m->in_axes[3] = axis;
  }
  return true;
}

// Nearest Resize by constant scales, an integer factor along `axis`, in a
// mode that maps output cell o to input cell floor(o / factor).
bool MapResize(const Graph& g, const std::vector<ValueShape>& shapes, const Node& n, int in,
               int axis, SplitMap* m) {
  if (in != 0 || n.opset < 11 || n.inputs.size() < 3 || n.inputs[2] == kNoValue ||
      (n.inputs.size() > 3 && n.inputs[3] != kNoValue) || !n.attr_ints("axes").empty() ||
      n.attr_int("antialias", 0) != 0 || n.attr_string("mode", "nearest") != "nearest")
    return false;
  const std::string coord = n.attr_string("coordinate_transformation_mode", "half_pixel");
  const std::string nearest = n.attr_string("nearest_mode", "round_prefer_floor");
  const bool floor = coord == "asymmetric" && nearest == "floor";
  const bool centre = (coord == "half_pixel" || coord == "pytorch_half_pixel") &&
                      (nearest == "round_prefer_floor" || nearest == "round_prefer_ceil");
  const Value& scales = g.values[static_cast<size_t>(n.inputs[2])];
  const Shape* x = KnownShape(shapes, n.inputs[0]);
  const Shape* y = KnownShape(shapes, n.outputs[0]);
  if (!(floor || centre) || !scales.is_constant() || x == nullptr || y == nullptr ||
      scales.constant.numel() != static_cast<int64_t>(x->size()) || y->size() != x->size())
    return false;
  const double s = ElementAsDouble(scales.constant, axis);
  const int64_t factor = static_cast<int64_t>(s);
  if (factor < 1 || static_cast<double>(factor) != s ||
      (*y)[static_cast<size_t>(axis)] != (*x)[static_cast<size_t>(axis)] * factor)
    return false;
  AxisWindow w;
  w.upsample = factor;
  m->in_axes[0] = axis;
  m->out_axis = axis;
  m->window = w;
  return true;
}

// Ops other than elementwise and MatMul; false when `n` does not split.
bool MapOther(const Graph& g, const std::vector<ValueShape>& shapes, const Node& n, int in,
              int axis, int rx, SplitMap* m) {
  const std::string& op = n.op_type;
  const bool onnx = n.domain.empty();
  const int64_t extent =
      (*KnownShape(shapes, n.inputs[static_cast<size_t>(in)]))[static_cast<size_t>(axis)];
  if (onnx && (op == "Softmax" || op == "LogSoftmax" || op == "LayerNormalization")) {
    if (in != 0) return false;
    const bool single = op != "LayerNormalization" && n.opset >= 13;
    int64_t norm = n.attr_int("axis", op == "LayerNormalization" || single ? -1 : 1);
    if (norm < 0) norm += rx;
    if (single ? axis == norm : axis >= norm) return false;  // Normalised axes stay whole.
    m->out_axis = axis;
    m->in_axes[0] = axis;
  } else if (onnx && op == "Transpose") {
    std::vector<int64_t> perm = n.attr_ints("perm");
    if (perm.empty())
      for (int d = rx - 1; d >= 0; --d) perm.push_back(d);
    for (size_t j = 0; j < perm.size(); ++j)
      if (perm[j] == axis) m->out_axis = static_cast<int>(j);
    m->in_axes[0] = axis;
  } else if (onnx && (op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze")) {
    if (in != 0) return false;
    const Shape& x = *KnownShape(shapes, n.inputs[0]);
    const Shape& y = *KnownShape(shapes, n.outputs[0]);
    m->out_axis = ReshapeAxis(x, y, axis);
    m->in_axes[0] = axis;
    if (m->out_axis < 0 && (op == "Reshape" || op == "Flatten")) {
      const int merged = MergedAxis(x, y, axis);
      const int split = op == "Reshape" ? SplitAxis(x, y, axis) : -1;
      if (merged < 0 && split < 0) return false;
      AxisWindow w;
      if (merged >= 0) {  // Each input cell along `axis` becomes a run of output cells.
        w.upsample = y[static_cast<size_t>(merged)] / x[static_cast<size_t>(axis)];
      } else {  // Each output cell (e.g. a head) reads a run of input cells.
        w.stride = w.span = x[static_cast<size_t>(axis)] / y[static_cast<size_t>(split)];
      }
      m->out_axis = merged >= 0 ? merged : split;
      m->window = w;
    }
  } else if (onnx && op == "Expand") {  // Broadcasts to input 1's dims; pieces get their own.
    if (in != 0) return false;
    m->out_axis = axis + (static_cast<int>(KnownShape(shapes, n.outputs[0])->size()) - rx);
    m->in_axes[0] = axis;
  } else if (onnx && op == "Gather") {
    const Shape* idx = n.inputs.size() > 1 ? KnownShape(shapes, n.inputs[1]) : nullptr;
    int64_t ga = n.attr_int("axis", 0);
    if (ga < 0) ga += rx;
    if (in != 0 || idx == nullptr || ga == axis) return false;
    m->out_axis = axis < ga ? axis : axis + static_cast<int>(idx->size()) - 1;
    m->in_axes[0] = axis;
  } else if (onnx && op == "Concat") {
    int64_t ca = n.attr_int("axis", 0);
    if (ca < 0) ca += rx;
    int64_t offset = 0;  // Along its own axis: each input covers its run of the output.
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const Shape* s = KnownShape(shapes, n.inputs[i]);
      if (s == nullptr || static_cast<int>(s->size()) != rx ||
          (ca != axis && (*s)[static_cast<size_t>(axis)] != extent))
        return false;
      m->in_axes[i] = axis;
      if (ca == axis) {
        m->offsets.push_back(offset);
        offset += (*s)[static_cast<size_t>(axis)];
      }
    }
    m->out_axis = axis;
  } else if (onnx && op == "Split") {
    int64_t sa = n.attr_int("axis", 0);
    if (sa < 0) sa += rx;
    if (in != 0 || sa == axis) return false;
    m->out_axis = axis;
    m->in_axes[0] = axis;
  } else if (onnx && op == "Slice" && n.opset >= 10) {
    auto axes = ConstAxes(g, n, 3, rx);
    if (in != 0 || !axes || std::count(axes->begin(), axes->end(), axis) != 0) return false;
    m->out_axis = axis;
    m->in_axes[0] = axis;
  } else if (onnx && (IsReduction(n) || op == "ArgMax" || op == "ArgMin")) {
    if (in != 0 || !MapReduction(g, n, axis, rx, m)) return false;
  } else if (onnx && op == "Gemm") {
    if (in != 0 || rx != 2 || axis != (n.attr_int("transA", 0) != 0 ? 1 : 0)) return false;
    m->in_axes[0] = axis;
    m->out_axis = 0;
    const Shape* c = n.inputs.size() > 2 ? KnownShape(shapes, n.inputs[2]) : nullptr;
    if (c != nullptr && c->size() == 2 && (*c)[0] == extent) m->in_axes[2] = 0;
  } else if (onnx && op == "Resize") {
    if (!MapResize(g, shapes, n, in, axis, m)) return false;
  } else if (IsPerSample(n) && axis != 0) {
    return MapSpatial(shapes, n, in, axis, rx, m);
  } else if (IsPerSample(n)) {
    if (in != 0) return false;
    m->in_axes[0] = 0;
    m->out_axis = 0;
    if (n.op_type == "FusedConv" && n.inputs.size() > 3 && n.inputs[3] != kNoValue) {
      const Shape* z = KnownShape(shapes, n.inputs[3]);
      if (z == nullptr || z->empty() || (*z)[0] != extent) return false;
      m->in_axes[3] = 0;
    }
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::optional<SplitMap> MapSplit(const Graph& g, const std::vector<ValueShape>& shapes,
                                 const Node& n, int in, int axis) {
  if (n.outputs.empty() || n.outputs[0] == kNoValue || !n.implicit_inputs.empty() || in < 0 ||
      static_cast<size_t>(in) >= n.inputs.size())
    return std::nullopt;
  const bool split_op = n.domain.empty() && n.op_type == "Split";
  for (size_t i = 1; i < n.outputs.size() && !split_op; ++i)
    if (n.outputs[i] != kNoValue) return std::nullopt;
  const Shape* out = KnownShape(shapes, n.outputs[0]);
  const Shape* x = KnownShape(shapes, n.inputs[static_cast<size_t>(in)]);
  if (out == nullptr || x == nullptr) return std::nullopt;
  const int r = static_cast<int>(out->size()), rx = static_cast<int>(x->size());
  if (axis < 0 || axis >= rx) return std::nullopt;
  const int64_t extent = (*x)[static_cast<size_t>(axis)];
  SplitMap m;
  m.in_axes.assign(n.inputs.size(), -1);
  const std::string& op = n.op_type;
  if (IsElementwise(n)) {
    m.out_axis = axis + (r - rx);
    if (m.out_axis < 0 || !MapBroadcast(n, shapes, m.out_axis, r, extent, 0, &m))
      return std::nullopt;
  } else if (IsMatMulFamily(n)) {
    if (!MapMatMul(n, shapes, in, axis, r, &m)) return std::nullopt;
    if (op == "FusedMatMul" && m.out_axis == r - 1) {  // Along N: the bias's and a
      if (in != 1) return std::nullopt;                // residual's last axis too.
      for (size_t i = 2; i < n.inputs.size(); ++i) {
        const Shape* s = KnownShape(shapes, n.inputs[i]);
        if (n.inputs[i] == kNoValue) continue;
        if (s == nullptr || s->empty() || s->back() != extent) return std::nullopt;
        m.in_axes[i] = static_cast<int>(s->size()) - 1;
      }
    } else if (op == "FusedMatMul") {  // Bias along N stays whole; a residual broadcasts.
      if (in != 0) return std::nullopt;
      if (!MapBroadcast(n, shapes, m.out_axis, r, extent, 2, &m)) return std::nullopt;
    }
  } else if (!MapOther(g, shapes, n, in, axis, rx, &m)) {
    return std::nullopt;
  }
  if (m.in_axes[static_cast<size_t>(in)] != axis) return std::nullopt;
  if (m.window || !m.offsets.empty()) return m;  // Output extents differ from the input's.
  for (ValueId o : n.outputs) {                  // Every output is sliced along out_axis.
    const Shape* s = KnownShape(shapes, o);
    if (o == kNoValue) continue;
    if (s == nullptr || static_cast<int>(s->size()) != r || m.out_axis < 0 || m.out_axis >= r ||
        (*s)[static_cast<size_t>(m.out_axis)] != extent)
      return std::nullopt;
  }
  return m;
}

bool IsMatMulFamily(const Node& n) {
  return (n.domain.empty() && n.op_type == "MatMul") ||
         (n.domain == fusion::kDomain &&
          (n.op_type == "FusedMatMul" || n.op_type == "ScaledMatMul"));
}

bool IsReduction(const Node& n) {
  static const std::set<std::string> kOps = {
      "ReduceMean", "ReduceMax", "ReduceMin",    "ReduceSum",       "ReduceProd",
      "ReduceL1",   "ReduceL2",  "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"};
  return n.domain.empty() && kOps.count(n.op_type) != 0;
}

bool IsElementwise(const Node& n) {
  static const std::set<std::string> kOps = {
      "Add",       "Sub",  "Mul",   "Div",     "Pow",         "Max",       "Min",  "Where", "Relu",
      "LeakyRelu", "Elu",  "Selu",  "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf",   "Exp",
      "Log",       "Neg",  "Abs",   "Sqrt",    "Reciprocal",  "Softplus",  "Gelu", "Cast",  "Clip",
      "Floor",     "Ceil", "Round", "Sin",     "Cos",         "Mish",      "Not",  "Equal", "Less",
      "Greater",   "And",  "Or",    "PRelu",   "Identity",    "Sign"};
  return n.domain.empty() && kOps.count(n.op_type) != 0;
}

std::optional<AxisWindow> SpatialWindow(const std::vector<ValueShape>& shapes, const Node& n, int d,
                                        int sr, int64_t* pad_end) {
  const bool onnx = n.domain.empty();
  const std::string& op = n.op_type;
  const bool conv = op == "Conv" || (!onnx && op == "FusedConv");
  if ((!onnx && n.domain != fusion::kDomain) || !(conv || op == "MaxPool" || op == "AveragePool") ||
      d < 0 || d >= sr)
    return std::nullopt;
  const std::string auto_pad = n.attr_string("auto_pad", "NOTSET");
  if ((auto_pad != "NOTSET" && auto_pad != "VALID") || n.attr_int("ceil_mode", 0) != 0)
    return std::nullopt;
  int64_t k = 0;
  if (conv) {
    const Shape* w = n.inputs.size() > 1 ? KnownShape(shapes, n.inputs[1]) : nullptr;
    if (w == nullptr || static_cast<int>(w->size()) != sr + 2) return std::nullopt;
    k = (*w)[static_cast<size_t>(2 + d)];
  } else {
    const std::vector<int64_t> ks = n.attr_ints("kernel_shape");
    if (static_cast<int>(ks.size()) != sr) return std::nullopt;
    k = ks[static_cast<size_t>(d)];
  }
  auto at = [&](const char* name, int i, int64_t fallback) {
    const std::vector<int64_t> v = n.attr_ints(name);
    return static_cast<size_t>(i) < v.size() ? v[static_cast<size_t>(i)] : fallback;
  };
  AxisWindow w;
  w.stride = at("strides", d, 1);
  w.span = (k - 1) * at("dilations", d, 1) + 1;
  w.pad = auto_pad == "VALID" ? 0 : at("pads", d, 0);
  w.spatial_dim = d;
  w.spatial_rank = sr;
  *pad_end = auto_pad == "VALID" ? 0 : at("pads", d + sr, 0);
  if (w.stride < 1 || w.span < 1) return std::nullopt;
  return w;
}

const Shape* KnownShape(const std::vector<ValueShape>& shapes, ValueId v) {
  if (v == kNoValue || static_cast<size_t>(v) >= shapes.size() || !shapes[v].known) return nullptr;
  return &shapes[v].dims;
}

bool NeedsPieceShape(const Node& n) {
  return n.domain.empty() && (n.op_type == "Reshape" || n.op_type == "Expand");
}

}  // namespace parallax
