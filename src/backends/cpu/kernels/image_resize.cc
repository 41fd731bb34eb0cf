// Resize (opset 10..19+) and Upsample (opset 1..10).
//
// The output is computed separably: each resized axis gets a plan that maps
// every output position to `taps` source indices and weights (following the
// ONNX reference: coordinate transformation, then nearest / linear / cubic
// coefficients, optional antialiasing and exclude_outside, edge clamping).
// Nearest mode gathers rows (repeated rows are copied, integer factors on the
// last axis are replicated); linear/cubic run one filter pass per resized
// axis, last axis first, with contiguous inner loops.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "backends/cpu/kernels/image_util.h"
#include "ops/dispatch.h"
#include "ops/kernel.h"
#include "ops/shape_util.h"

namespace parallax {
namespace image {
namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord {
  kHalfPixel,
  kHalfPixelSymmetric,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCropAndResize
};
// kLegacy: Upsample and Resize-10 (floor when upsampling, ceil when
// downsampling, as onnxruntime does for these versions).
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kLegacy };
enum class Policy { kStretch, kNotLarger, kNotSmaller };

struct Attrs {
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation = 0.0;
  Policy policy = Policy::kStretch;
  std::vector<int64_t> axes;  // Opset 18+; empty means every axis.
  bool upsample = false;
  std::vector<double> attr_scales;  // Upsample-1/7 scales given as attributes.
};

// How one axis is sampled: for output position x, source indices
// index[x*taps + t] (already clamped) with weights weight[x*taps + t].
struct AxisPlan {
  int64_t in = 0;
  int64_t out = 0;
  int taps = 1;
  std::vector<int64_t> index;    // Nearest: -1 marks an extrapolated position.
  std::vector<double> weight;    // Linear / cubic only.
  std::vector<uint8_t> outside;  // 1: output takes extrapolation_value.
  bool has_outside = false;
  bool identity = false;  // Output equals input along this axis.
};

struct Geometry {
  Shape out_shape;
  std::vector<double> scales;  // Per axis of X.
  std::vector<double> roi;     // 2 * rank (starts then ends), or empty.
};

// Looks `attr` (default `def`) up in `names`; an error names unknown values.
template <typename E>
Status ParseEnum(const KernelInit& init, const std::string& attr, const std::string& def,
                 std::initializer_list<std::pair<const char*, E>> names, E* out) {
  const std::string v = init.node.attr_string(attr, def);
  for (const auto& [name, value] : names) {
    if (v == name) {
      *out = value;
      return Status::Ok();
    }
  }
  return init.Error("unsupported " + attr + " '" + v + "'");
}

// Upsample-1/7/9 and Resize-10: asymmetric coordinates, legacy nearest.
Status ParseLegacyAttrs(const KernelInit& init, Attrs& a) {
  const Node& n = init.node;
  a.coord = Coord::kAsymmetric;
  a.nearest = Nearest::kLegacy;
  if (a.upsample && init.opset() < 7) {
    a.attr_scales = {1.0, 1.0, n.attr_float("height_scale", 1.0f),
                     n.attr_float("width_scale", 1.0f)};
  } else if (a.upsample && init.opset() < 9) {
    if (!n.has_attr("scales")) return init.Error("missing required attribute 'scales'");
    for (float s : n.attr_floats("scales")) a.attr_scales.push_back(s);
  }
  return Status::Ok();
}

Result<Attrs> ParseAttrs(const KernelInit& init, bool upsample) {
  const Node& n = init.node;
  Attrs a;
  a.upsample = upsample;
  PX_RETURN_IF_ERROR(ParseEnum<Mode>(init, "mode", "nearest",
                                     {{"nearest", Mode::kNearest},
                                      {"linear", Mode::kLinear},
                                      {"bilinear", Mode::kLinear},
                                      {"cubic", Mode::kCubic}},
                                     &a.mode));
  if (upsample && a.mode == Mode::kCubic) return init.Error("Upsample does not support cubic mode");
  if (upsample || init.opset() < 11) {
    PX_RETURN_IF_ERROR(ParseLegacyAttrs(init, a));
    return a;
  }
  PX_RETURN_IF_ERROR(ParseEnum<Coord>(init, "coordinate_transformation_mode", "half_pixel",
                                      {{"half_pixel", Coord::kHalfPixel},
                                       {"half_pixel_symmetric", Coord::kHalfPixelSymmetric},
                                       {"pytorch_half_pixel", Coord::kPytorchHalfPixel},
                                       {"align_corners", Coord::kAlignCorners},
                                       {"asymmetric", Coord::kAsymmetric},
                                       {"tf_half_pixel_for_nn", Coord::kTfHalfPixelForNn},
                                       {"tf_crop_and_resize", Coord::kTfCropAndResize}},
                                      &a.coord));
  PX_RETURN_IF_ERROR(ParseEnum<Nearest>(init, "nearest_mode", "round_prefer_floor",
                                        {{"round_prefer_floor", Nearest::kRoundPreferFloor},
                                         {"round_prefer_ceil", Nearest::kRoundPreferCeil},
                                         {"floor", Nearest::kFloor},
                                         {"ceil", Nearest::kCeil}},
                                        &a.nearest));
  PX_RETURN_IF_ERROR(ParseEnum<Policy>(init, "keep_aspect_ratio_policy", "stretch",
                                       {{"stretch", Policy::kStretch},
                                        {"not_larger", Policy::kNotLarger},
                                        {"not_smaller", Policy::kNotSmaller}},
                                       &a.policy));
  a.cubic_a = n.attr_float("cubic_coeff_a", -0.75f);
  a.exclude_outside = n.attr_int("exclude_outside", 0) != 0;
  a.extrapolation = n.attr_float("extrapolation_value", 0.0f);
  a.antialias = n.attr_int("antialias", 0) != 0;
  if (a.antialias && a.mode == Mode::kNearest) {
    return init.Error("antialias is only defined for linear and cubic modes");
  }
  if (n.has_attr("axes")) a.axes = n.attr_ints("axes");
  return a;
}

// Maps output coordinate x to a coordinate in the input (ONNX formulas).
double SourceCoord(Coord coord, double x, double scale, int64_t in, int64_t out, double roi_start,
                   double roi_end) {
  const double in_d = static_cast<double>(in);
  const double out_f = scale * in_d;  // The reference's (fractional) output length.
  switch (coord) {
    case Coord::kHalfPixel:
      return (x + 0.5) / scale - 0.5;
    case Coord::kHalfPixelSymmetric: {
      const double adjustment = static_cast<double>(out) / out_f;
      const double offset = in_d / 2 * (1 - adjustment);
      return offset + (x + 0.5) / scale - 0.5;
    }
    case Coord::kPytorchHalfPixel:
      return out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case Coord::kAlignCorners:
      return out > 1 ? x * (in_d - 1) / (out_f - 1) : 0.0;
    case Coord::kAsymmetric:
      return x / scale;
    case Coord::kTfHalfPixelForNn:
      return (x + 0.5) / scale;
    case Coord::kTfCropAndResize:
      if (out > 1)
        return roi_start * (in_d - 1) + x * (roi_end - roi_start) * (in_d - 1) / (out_f - 1);
      return 0.5 * (roi_start + roi_end) * (in_d - 1);
  }
  return 0.0;
}

int64_t NearestIndex(Nearest mode, double xo, double scale) {
  if (mode == Nearest::kLegacy) {
    return static_cast<int64_t>(scale < 1.0 ? std::ceil(xo) : std::trunc(xo));
  }
  const double f = std::floor(xo);
  const double r = xo - f;
  const int64_t i = static_cast<int64_t>(f);
  if (r == 0.0) return i;
  switch (mode) {
    case Nearest::kRoundPreferFloor:
      return r <= 0.5 ? i : i + 1;
    case Nearest::kRoundPreferCeil:
      return r < 0.5 ? i : i + 1;
    case Nearest::kFloor:
      return i;
    default:
      return i + 1;
  }
}

// Keeps a coordinate finite and within [lo, hi] so integer casts are safe;
// NaN maps to lo. Clamping this far out does not change clamped indices.
double SaneCoord(double x, double lo, double hi) {
  if (!(x >= lo)) return lo;
  if (!(x <= hi)) return hi;
  return x;
}

bool IsOutside(const Attrs& a, double xo, int64_t in) {
  return a.coord == Coord::kTfCropAndResize && (xo < 0 || xo > static_cast<double>(in - 1));
}

AxisPlan NearestPlan(const Attrs& a, int64_t in, int64_t out, double scale, double r0, double r1) {
  AxisPlan p;
  p.in = in;
  p.out = out;
  p.index.resize(static_cast<size_t>(out));
  p.outside.assign(static_cast<size_t>(out), 0);
  bool identity = in == out;
  for (int64_t x = 0; x < out; ++x) {
    double xo = SourceCoord(a.coord, static_cast<double>(x), scale, in, out, r0, r1);
    int64_t i = -1;
    if (IsOutside(a, xo, in)) {
      p.outside[static_cast<size_t>(x)] = 1;
      p.has_outside = true;
    } else {
      xo = SaneCoord(xo, -2.0, static_cast<double>(in) + 1);
      i = std::clamp<int64_t>(NearestIndex(a.nearest, xo, scale), 0, in - 1);
    }
    p.index[static_cast<size_t>(x)] = i;
    identity = identity && i == x;
  }
  p.identity = identity;
  return p;
}

// The interpolation kernel at distance d: triangle (linear) or Keys cubic.
double KernelWeight(Mode mode, double d, double a) {
  d = std::abs(d);
  if (mode == Mode::kLinear) return std::max(0.0, 1.0 - d);
  if (d <= 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
  if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
  return 0.0;
}

void FillFilterTaps(const Attrs& a, AxisPlan& p, int64_t x, double xo, double s, int64_t first) {
  const size_t base = static_cast<size_t>(x) * static_cast<size_t>(p.taps);
  xo = SaneCoord(xo, -static_cast<double>(p.taps) - 2, static_cast<double>(p.in + p.taps) + 2);
  double f = std::floor(xo);
  double ratio = xo - f;
  if (ratio == 0.0) {  // Prefer the left neighbour: ratio in (0, 1].
    ratio = 1.0;
    f -= 1.0;
  }
  const int64_t xi = static_cast<int64_t>(f);
  double sum = 0.0;
  for (int t = 0; t < p.taps; ++t) {
    const int64_t off = first + t;
    double w = KernelWeight(a.mode, s * (static_cast<double>(off) - ratio), a.cubic_a);
    const int64_t src = xi + off;
    if (a.exclude_outside && (src < 0 || src >= p.in)) w = 0.0;
    p.index[base + static_cast<size_t>(t)] = std::clamp<int64_t>(src, 0, p.in - 1);
    p.weight[base + static_cast<size_t>(t)] = w;
    sum += w;
  }
  if ((a.antialias || a.exclude_outside) && sum != 0.0) {
    for (int t = 0; t < p.taps; ++t) p.weight[base + static_cast<size_t>(t)] /= sum;
  }
}

AxisPlan FilterPlan(const Attrs& a, int64_t in, int64_t out, double scale, double r0, double r1) {
  AxisPlan p;
  p.in = in;
  p.out = out;
  // With antialias the kernel is stretched by 1/scale when downsampling.
  const double s = a.antialias ? std::min(scale, 1.0) : 1.0;
  const double support = a.mode == Mode::kLinear ? 1.0 : 2.0;
  const int64_t first = static_cast<int64_t>(std::floor(-support / s)) + 1;
  p.taps = static_cast<int>(2 - 2 * first);
  const size_t total = static_cast<size_t>(out) * static_cast<size_t>(p.taps);
  p.index.assign(total, 0);
  p.weight.assign(total, 0.0);
  p.outside.assign(static_cast<size_t>(out), 0);
  bool identity = in == out;
  for (int64_t x = 0; x < out; ++x) {
    const double xo = SourceCoord(a.coord, static_cast<double>(x), scale, in, out, r0, r1);
    if (IsOutside(a, xo, in)) {
      p.outside[static_cast<size_t>(x)] = 1;
      p.has_outside = true;
      identity = false;
      continue;
    }
    FillFilterTaps(a, p, x, xo, s, first);
    for (int t = 0; t < p.taps && identity; ++t) {
      const size_t k =
          static_cast<size_t>(x) * static_cast<size_t>(p.taps) + static_cast<size_t>(t);
      const double w = p.weight[k];
      identity = w == 0.0 || (w == 1.0 && p.index[k] == x);
    }
  }
  p.identity = identity;
  return p;
}

// ---------------------------------------------------------------------------
// Execution.

template <typename T>
void GatherRow(const T* s, T* d, const AxisPlan& pw, int64_t rep, T ev) {
  const int64_t in_w = pw.in;
  const int64_t out_w = pw.out;
  if (rep == 1) {
    std::copy_n(s, out_w, d);
  } else if (rep == 2) {
    for (int64_t x = 0; x < in_w; ++x) d[2 * x] = d[2 * x + 1] = s[x];
  } else if (rep > 2) {
    for (int64_t x = 0; x < in_w; ++x) std::fill_n(d + x * rep, rep, s[x]);
  } else {
    const int64_t* idx = pw.index.data();
    for (int64_t x = 0; x < out_w; ++x) d[x] = idx[x] < 0 ? ev : s[idx[x]];
  }
}

// Integer replication factor of the last axis (0 when it is not one).
int64_t ReplicationFactor(const AxisPlan& pw) {
  if (pw.has_outside || pw.in <= 0 || pw.out % pw.in != 0) return 0;
  const int64_t rep = pw.out / pw.in;
  for (int64_t x = 0; x < pw.out; ++x) {
    if (pw.index[static_cast<size_t>(x)] != x / rep) return 0;
  }
  return rep;
}

// Output rows (runs of the last axis) split over the intra-op threads; a
// task starts its row counter from its first row, so any split copies the
// same bytes.
template <typename T>
void NearestResize(const IntraOp& par, const T* in, T* out, const Shape& in_shape,
                   const Shape& out_shape, const std::vector<AxisPlan>& plans, T ev) {
  const int rank = static_cast<int>(in_shape.size());
  if (rank == 0) {
    out[0] = in[0];
    return;
  }
  const int last = rank - 1;
  const std::vector<int64_t> strides = Strides(in_shape);
  const AxisPlan& pw = plans[static_cast<size_t>(last)];
  const int64_t out_w = out_shape[static_cast<size_t>(last)];
  const int64_t rep = ReplicationFactor(pw);
  const int64_t rows = NumElements(out_shape) / out_w;
  constexpr int64_t kMinTaskBytes = 64 * 1024;
  const int64_t min_rows =
      std::max<int64_t>(1, kMinTaskBytes / std::max<int64_t>(1, out_w * int64_t{sizeof(T)}));
  par.ParallelRanges(rows, min_rows, [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> oi(static_cast<size_t>(last), 0);
    for (int64_t d = last - 1, rest = r0; d >= 0; --d) {
      oi[static_cast<size_t>(d)] = rest % out_shape[static_cast<size_t>(d)];
      rest /= out_shape[static_cast<size_t>(d)];
    }
    int64_t prev_src = -2;
    for (int64_t r = r0; r < r1; ++r) {
      int64_t src = 0;
      for (int d = 0; d < last; ++d) {
        const int64_t ix =
            plans[static_cast<size_t>(d)].index[static_cast<size_t>(oi[static_cast<size_t>(d)])];
        if (ix < 0) {
          src = -1;
          break;
        }
        src += ix * strides[static_cast<size_t>(d)];
      }
      T* dst = out + r * out_w;
      if (src == prev_src) {
        std::copy_n(dst - out_w, out_w, dst);
      } else if (src < 0) {
        std::fill_n(dst, out_w, ev);
      } else {
        GatherRow(in + src, dst, pw, rep, ev);
      }
      prev_src = src;
      for (int d = last - 1; d >= 0; --d) {
        if (++oi[static_cast<size_t>(d)] < out_shape[static_cast<size_t>(d)]) break;
        oi[static_cast<size_t>(d)] = 0;
      }
    }
  });
}

// One separable pass: [outer, in_n, inner] -> [outer, p.out, inner].
template <typename C>
void FilterAxis(const C* src, C* dst, int64_t outer, int64_t inner, const AxisPlan& p,
                const std::vector<C>& w) {
  const int taps = p.taps;
  const int64_t in_n = p.in;
  const int64_t out_n = p.out;
  const int64_t* idx = p.index.data();
  for (int64_t o = 0; o < outer; ++o) {
    const C* s = src + o * in_n * inner;
    C* d = dst + o * out_n * inner;
    if (inner == 1) {
      if (taps == 2) {
        for (int64_t x = 0; x < out_n; ++x)
          d[x] = w[2 * x] * s[idx[2 * x]] + w[2 * x + 1] * s[idx[2 * x + 1]];
      } else {
        for (int64_t x = 0; x < out_n; ++x) {
          C acc = 0;
          for (int t = 0; t < taps; ++t) acc += w[x * taps + t] * s[idx[x * taps + t]];
          d[x] = acc;
        }
      }
      continue;
    }
    for (int64_t x = 0; x < out_n; ++x) {
      C* dr = d + x * inner;
      const int64_t* ix = idx + x * taps;
      const C* wx = w.data() + x * taps;
      if (taps == 2) {
        const C* a = s + ix[0] * inner;
        const C* b = s + ix[1] * inner;
        const C w0 = wx[0], w1 = wx[1];
        for (int64_t i = 0; i < inner; ++i) dr[i] = w0 * a[i] + w1 * b[i];
        continue;
      }
      const C* a = s + ix[0] * inner;
      const C w0 = wx[0];
      for (int64_t i = 0; i < inner; ++i) dr[i] = w0 * a[i];
      for (int t = 1; t < taps; ++t) {
        const C wt = wx[t];
        if (wt == C(0)) continue;
        const C* b = s + ix[t] * inner;
        for (int64_t i = 0; i < inner; ++i) dr[i] += wt * b[i];
      }
    }
  }
}

// Writes the extrapolation value wherever any axis sampled outside the roi.
template <typename T>
void FillOutside(T* out, const Shape& out_shape, const std::vector<AxisPlan>& plans, T ev) {
  for (size_t d = 0; d < plans.size(); ++d) {
    if (!plans[d].has_outside) continue;
    int64_t outer = 1, inner = 1;
    for (size_t k = 0; k < d; ++k) outer *= out_shape[k];
    for (size_t k = d + 1; k < out_shape.size(); ++k) inner *= out_shape[k];
    const int64_t n = out_shape[d];
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t x = 0; x < n; ++x) {
        if (plans[d].outside[static_cast<size_t>(x)])
          std::fill_n(out + (o * n + x) * inner, inner, ev);
      }
    }
  }
}

// Resizes one slice below the leading identity axes: `cur` has shape
// `shape` (the slice's axes), passes run over `active` (last axis first).
template <typename T, typename C>
void FilterSlice(const C* cur, Shape shape, const std::vector<AxisPlan>& plans, size_t lead,
                 const std::vector<size_t>& active, const std::vector<std::vector<C>>& weights,
                 std::vector<C> (&bufs)[2], T* dst_out) {
  constexpr bool kDirect = std::is_same_v<T, C>;
  int which = 0;
  for (size_t k = 0; k < active.size(); ++k) {
    const size_t d = active[k];
    int64_t outer = 1, inner = 1;
    for (size_t j = 0; j < d - lead; ++j) outer *= shape[j];
    for (size_t j = d - lead + 1; j < shape.size(); ++j) inner *= shape[j];
    shape[d - lead] = plans[d].out;
    C* dst = nullptr;
    if constexpr (kDirect) {
      if (k + 1 == active.size()) dst = dst_out;
    }
    if (dst == nullptr) {
      bufs[which].resize(static_cast<size_t>(NumElements(shape)));
      dst = bufs[which].data();
      which ^= 1;
    }
    FilterAxis(cur, dst, outer, inner, plans[d], weights[k]);
    cur = dst;
  }
  if (!kDirect || active.empty()) {
    const int64_t n = NumElements(shape);
    for (int64_t i = 0; i < n; ++i) dst_out[i] = FromCompute<T>(cur[i]);
  }
}

template <typename T>
void FilterResize(const Tensor& x, Tensor* out, const std::vector<AxisPlan>& plans, double ev) {
  using C = ComputeOf<T>;
  const size_t rank = static_cast<size_t>(x.rank());
  std::vector<size_t> active;  // Resized axes, last first.
  for (size_t d = rank; d-- > 0;) {
    if (!plans[d].identity) active.push_back(d);
  }
  // Leading identity axes are independent slices: resize slice by slice so
  // intermediates stay in cache.
  const size_t lead = active.empty() ? rank : active.back();
  int64_t slices = 1;
  for (size_t d = 0; d < lead; ++d) slices *= x.shape()[d];
  const Shape slice_shape(x.shape().begin() + static_cast<std::ptrdiff_t>(lead), x.shape().end());
  const int64_t in_size = NumElements(slice_shape);
  const int64_t out_size = slices > 0 ? out->numel() / slices : 0;
  std::vector<std::vector<C>> weights;
  for (size_t d : active) weights.emplace_back(plans[d].weight.begin(), plans[d].weight.end());
  std::vector<C> bufs[2];
  std::vector<C> converted;
  T* final_out = out->data<T>();
  for (int64_t s = 0; s < slices; ++s) {
    const T* src = x.data<T>() + s * in_size;
    const C* cur = nullptr;
    if constexpr (std::is_same_v<T, C>) {
      cur = src;
    } else {
      converted.resize(static_cast<size_t>(in_size));
      for (int64_t i = 0; i < in_size; ++i)
        converted[static_cast<size_t>(i)] = ToCompute<C>(src[i]);
      cur = converted.data();
    }
    FilterSlice<T, C>(cur, slice_shape, plans, lead, active, weights, bufs,
                      final_out + s * out_size);
  }
  FillOutside(final_out, out->shape(), plans, FromCompute<T>(ev));
}

class ResizeKernel : public Kernel {
 public:
  explicit ResizeKernel(Attrs attrs) : a_(std::move(attrs)) {}

  Status Run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    PX_ASSIGN_OR_RETURN(Geometry g, ComputeGeometry(ctx));
    PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), g.out_shape));
    if (out->numel() == 0) return Status::Ok();
    if (x.numel() == 0) {
      return ctx.Error("cannot resize empty input " + ShapeToString(x.shape()) + " to " +
                       ShapeToString(g.out_shape));
    }
    const int rank = x.rank();
    std::vector<AxisPlan> plans(static_cast<size_t>(rank));
    for (int d = 0; d < rank; ++d) {
      const size_t k = static_cast<size_t>(d);
      const double r0 = g.roi.empty() ? 0.0 : g.roi[k];
      const double r1 = g.roi.empty() ? 1.0 : g.roi[k + static_cast<size_t>(rank)];
      plans[k] = a_.mode == Mode::kNearest
                     ? NearestPlan(a_, x.dim(d), g.out_shape[k], g.scales[k], r0, r1)
                     : FilterPlan(a_, x.dim(d), g.out_shape[k], g.scales[k], r0, r1);
    }
    const double ev = a_.extrapolation;
    return DispatchAll(x.dtype(), [&]<typename T>() -> Status {
      if (a_.mode == Mode::kNearest) {
        NearestResize(ctx.intra_op(), x.data<T>(), out->data<T>(), x.shape(), g.out_shape, plans,
                      FromCompute<T>(ev));
      } else {
        FilterResize<T>(x, out, plans, ev);
      }
      return Status::Ok();
    });
  }

 private:
  // The tensor at input i when present and non-empty (empty means absent).
  static const Tensor* Present(const KernelContext& ctx, int i) {
    return ctx.has_input(i) && ctx.input(i).numel() > 0 ? &ctx.input(i) : nullptr;
  }

  Result<std::vector<int>> Axes(const KernelContext& ctx, int rank) const {
    std::vector<int> axes;
    if (a_.axes.empty()) {
      for (int d = 0; d < rank; ++d) axes.push_back(d);
      return axes;
    }
    std::vector<bool> seen(static_cast<size_t>(rank), false);
    for (int64_t v : a_.axes) {
      Result<int> ax = NormalizeAxis(v, rank);
      if (!ax.ok()) return ctx.Error("axes: " + ax.status().message());
      if (seen[static_cast<size_t>(*ax)])
        return ctx.Error("axes contains " + std::to_string(v) + " twice");
      seen[static_cast<size_t>(*ax)] = true;
      axes.push_back(*ax);
    }
    return axes;
  }

  Result<Geometry> ComputeGeometry(const KernelContext& ctx) const;
  Status ApplySizes(const KernelContext& ctx, const Tensor& sizes_t, const std::vector<int>& axes,
                    const Shape& in_shape, Geometry& g) const;

  Attrs a_;
};

Result<Geometry> ResizeKernel::ComputeGeometry(const KernelContext& ctx) const {
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  PX_ASSIGN_OR_RETURN(std::vector<int> axes, Axes(ctx, rank));
  const size_t na = axes.size();
  const Tensor* scales_t = nullptr;
  const Tensor* sizes_t = nullptr;
  const Tensor* roi_t = nullptr;
  if (a_.upsample || ctx.opset() < 11) {
    if (a_.attr_scales.empty()) scales_t = Present(ctx, 1);
  } else {
    roi_t = Present(ctx, 1);
    scales_t = Present(ctx, 2);
    sizes_t = Present(ctx, 3);
  }
  std::vector<double> scales = a_.attr_scales;
  if (scales_t != nullptr) {
    Result<std::vector<double>> s = ReadDoubles(*scales_t);
    if (!s.ok()) return ctx.Error("scales: " + s.status().message());
    scales = std::move(*s);
  }
  if (!scales.empty() && sizes_t != nullptr)
    return ctx.Error("only one of scales and sizes may be given");
  if (scales.empty() && sizes_t == nullptr)
    return ctx.Error("needs a non-empty scales or sizes input");
  Geometry g;
  g.scales.assign(static_cast<size_t>(rank), 1.0);
  g.out_shape = x.shape();
  if (roi_t != nullptr && a_.coord == Coord::kTfCropAndResize) {
    Result<std::vector<double>> roi = ReadDoubles(*roi_t);
    if (!roi.ok()) return ctx.Error("roi: " + roi.status().message());
    if (roi->size() != 2 * na) {
      return ctx.Error("roi has " + std::to_string(roi->size()) + " values, expected " +
                       std::to_string(2 * na));
    }
    g.roi.assign(2 * static_cast<size_t>(rank), 0.0);
    std::fill(g.roi.begin() + rank, g.roi.end(), 1.0);
    for (size_t i = 0; i < na; ++i) {
      g.roi[static_cast<size_t>(axes[i])] = (*roi)[i];
      g.roi[static_cast<size_t>(axes[i] + rank)] = (*roi)[i + na];
    }
  }
  if (sizes_t != nullptr) {
    PX_RETURN_IF_ERROR(ApplySizes(ctx, *sizes_t, axes, x.shape(), g));
    return g;
  }
  if (scales.size() != na) {
    return ctx.Error("scales has " + std::to_string(scales.size()) + " values for " +
                     std::to_string(na) + " axes of input " + ShapeToString(x.shape()));
  }
  for (size_t i = 0; i < na; ++i) {
    const size_t d = static_cast<size_t>(axes[i]);
    const double s = scales[i];
    if (!(s > 0) || !std::isfinite(s))
      return ctx.Error("scales must be positive, got " + std::to_string(s));
    const double len = std::floor(s * static_cast<double>(x.shape()[d]));
    if (len > 9.2e18)
      return ctx.Error("scale " + std::to_string(s) + " gives an output that is too large");
    g.scales[d] = s;
    g.out_shape[d] = static_cast<int64_t>(len);
  }
  return g;
}

Status ResizeKernel::ApplySizes(const KernelContext& ctx, const Tensor& sizes_t,
                                const std::vector<int>& axes, const Shape& in_shape,
                                Geometry& g) const {
  Result<std::vector<int64_t>> sizes = ReadInt64s(sizes_t);
  if (!sizes.ok()) return ctx.Error("sizes: " + sizes.status().message());
  if (sizes->size() != axes.size()) {
    return ctx.Error("sizes has " + std::to_string(sizes->size()) + " values for " +
                     std::to_string(axes.size()) + " axes of input " + ShapeToString(in_shape));
  }
  std::vector<double> ratios(axes.size());
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t in = in_shape[static_cast<size_t>(axes[i])];
    if ((*sizes)[i] < 0) return ctx.Error("sizes must be >= 0, got " + std::to_string((*sizes)[i]));
    ratios[i] = in > 0 ? static_cast<double>((*sizes)[i]) / static_cast<double>(in) : 1.0;
  }
  if (a_.policy == Policy::kStretch) {
    for (size_t i = 0; i < axes.size(); ++i) {
      g.scales[static_cast<size_t>(axes[i])] = ratios[i];
      g.out_shape[static_cast<size_t>(axes[i])] = (*sizes)[i];
    }
    return Status::Ok();
  }
  const double s = a_.policy == Policy::kNotLarger
                       ? *std::min_element(ratios.begin(), ratios.end())
                       : *std::max_element(ratios.begin(), ratios.end());
  for (int axis : axes) {
    const size_t d = static_cast<size_t>(axis);
    g.scales[d] = s;
    g.out_shape[d] = static_cast<int64_t>(s * static_cast<double>(in_shape[d]) + 0.5);
  }
  return Status::Ok();
}

KernelFactory ResizeFactory(bool upsample) {
  return [upsample](const KernelInit& init) -> Result<std::unique_ptr<Kernel>> {
    PX_ASSIGN_OR_RETURN(Attrs a, ParseAttrs(init, upsample));
    return std::unique_ptr<Kernel>(std::make_unique<ResizeKernel>(std::move(a)));
  };
}

}  // namespace

void RegisterResizeOps(OpRegistry& r) {
  r.Register("", "Resize", ResizeFactory(false), 10);
  r.Register("", "Upsample", ResizeFactory(true), 1);
}

}  // namespace image
}  // namespace parallax
