// RoiAlign (opset 10, 16) and GridSample (opset 16; opset 20 mode names).
//
// Both precompute, per output point, the source pixels and weights it reads
// (shared by every channel), then apply them channel by channel. Semantics
// follow the ONNX reference / onnxruntime, including RoiAlign's max mode,
// which takes the max of the weighted bilinear corners.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backends/cpu/kernels/image_util.h"
#include "ops/dispatch.h"
#include "ops/kernel.h"
#include "ops/shape_util.h"

namespace parallax {
namespace image {
namespace {

template <typename F>
Status DispatchImageFloat(DType t, F&& f) {
  if (t == DType::kFloat16) return f.template operator()<Half>();
  return DispatchFloat(t, f);
}

// ---------------------------------------------------------------------------
// RoiAlign.

struct RoiParams {
  bool max_mode = false;
  bool half_pixel = true;
  int64_t out_h = 1, out_w = 1;
  int64_t sampling_ratio = 0;
  double spatial_scale = 1.0;
};

struct Sample {  // Four bilinear corners of one sampling point.
  int64_t pos[4];
  double w[4];
};

void BilinearSample(double y, double x, int64_t h, int64_t w, Sample& s) {
  if (y < -1.0 || y > static_cast<double>(h) || x < -1.0 || x > static_cast<double>(w)) {
    s = Sample{{0, 0, 0, 0}, {0, 0, 0, 0}};
    return;
  }
  y = std::max(y, 0.0);
  x = std::max(x, 0.0);
  int64_t y_lo = static_cast<int64_t>(y), x_lo = static_cast<int64_t>(x), y_hi, x_hi;
  if (y_lo >= h - 1) {
    y_hi = y_lo = h - 1;
    y = static_cast<double>(y_lo);
  } else {
    y_hi = y_lo + 1;
  }
  if (x_lo >= w - 1) {
    x_hi = x_lo = w - 1;
    x = static_cast<double>(x_lo);
  } else {
    x_hi = x_lo + 1;
  }
  const double ly = y - static_cast<double>(y_lo), lx = x - static_cast<double>(x_lo);
  const double hy = 1 - ly, hx = 1 - lx;
  s = Sample{{y_lo * w + x_lo, y_lo * w + x_hi, y_hi * w + x_lo, y_hi * w + x_hi},
             {hy * hx, hy * lx, ly * hx, ly * lx}};
}

// Samples of one roi, bin by bin: out_h * out_w * grid_h * grid_w entries.
void RoiSamples(const RoiParams& p, const double* roi, int64_t h, int64_t w,
                std::vector<Sample>& samples, int64_t& grid_h, int64_t& grid_w) {
  const double offset = p.half_pixel ? 0.5 : 0.0;
  const double start_w = roi[0] * p.spatial_scale - offset,
               start_h = roi[1] * p.spatial_scale - offset;
  double roi_w = roi[2] * p.spatial_scale - offset - start_w;
  double roi_h = roi[3] * p.spatial_scale - offset - start_h;
  if (!p.half_pixel) {
    roi_w = std::max(roi_w, 1.0);
    roi_h = std::max(roi_h, 1.0);
  }
  const double bin_h = roi_h / static_cast<double>(p.out_h),
               bin_w = roi_w / static_cast<double>(p.out_w);
  grid_h = p.sampling_ratio > 0 ? p.sampling_ratio
                                : static_cast<int64_t>(std::ceil(std::max(0.0, bin_h)));
  grid_w = p.sampling_ratio > 0 ? p.sampling_ratio
                                : static_cast<int64_t>(std::ceil(std::max(0.0, bin_w)));
  samples.resize(static_cast<size_t>(p.out_h * p.out_w * grid_h * grid_w));
  size_t k = 0;
  for (int64_t ph = 0; ph < p.out_h; ++ph) {
    for (int64_t pw = 0; pw < p.out_w; ++pw) {
      for (int64_t iy = 0; iy < grid_h; ++iy) {
        const double y = start_h + static_cast<double>(ph) * bin_h +
                         (static_cast<double>(iy) + 0.5) * bin_h / static_cast<double>(grid_h);
        for (int64_t ix = 0; ix < grid_w; ++ix) {
          const double x = start_w + static_cast<double>(pw) * bin_w +
                           (static_cast<double>(ix) + 0.5) * bin_w / static_cast<double>(grid_w);
          BilinearSample(y, x, h, w, samples[k++]);
        }
      }
    }
  }
}

template <typename T>
void RoiPool(const RoiParams& p, const T* plane, const std::vector<Sample>& samples,
             int64_t per_bin, T* out) {
  using C = ComputeOf<T>;
  const int64_t bins = p.out_h * p.out_w;
  const C count = static_cast<C>(std::max<int64_t>(per_bin, 1));
  for (int64_t bin = 0; bin < bins; ++bin) {
    const Sample* s = samples.data() + bin * per_bin;
    C acc = 0;
    for (int64_t i = 0; i < per_bin; ++i) {
      C v[4];
      for (int j = 0; j < 4; ++j)
        v[j] = static_cast<C>(s[i].w[j]) * ToCompute<C>(plane[s[i].pos[j]]);
      if (p.max_mode) {
        const C m = std::max(std::max(v[0], v[1]), std::max(v[2], v[3]));
        acc = i == 0 ? m : std::max(acc, m);
      } else {
        acc += v[0] + v[1] + v[2] + v[3];
      }
    }
    out[bin] = FromCompute<T>(p.max_mode ? acc : acc / count);
  }
}

Result<RoiParams> ReadRoiParams(const KernelContext& ctx) {
  const Node& n = ctx.node();
  RoiParams p;
  const std::string mode = n.attr_string("mode", "avg");
  if (mode != "avg" && mode != "max") return ctx.Error("unsupported mode '" + mode + "'");
  p.max_mode = mode == "max";
  const std::string ctm = n.attr_string("coordinate_transformation_mode",
                                        ctx.opset() >= 16 ? "half_pixel" : "output_half_pixel");
  if (ctm != "half_pixel" && ctm != "output_half_pixel") {
    return ctx.Error("unsupported coordinate_transformation_mode '" + ctm + "'");
  }
  p.half_pixel = ctm == "half_pixel";
  p.out_h = n.attr_int("output_height", 1);
  p.out_w = n.attr_int("output_width", 1);
  p.sampling_ratio = n.attr_int("sampling_ratio", 0);
  p.spatial_scale = n.attr_float("spatial_scale", 1.0f);
  if (p.out_h <= 0 || p.out_w <= 0) return ctx.Error("output_height/output_width must be positive");
  if (p.sampling_ratio < 0) return ctx.Error("sampling_ratio must be >= 0");
  return p;
}

Status RoiAlign(KernelContext& ctx) {
  if (!ctx.has_input(1) || !ctx.has_input(2))
    return ctx.Error("needs inputs X, rois and batch_indices");
  const Tensor& x = ctx.input(0);
  if (x.rank() != 4) return ctx.Error("X must be [N, C, H, W], got " + ShapeToString(x.shape()));
  const Tensor& rois_t = ctx.input(1);
  if (rois_t.rank() != 2 || rois_t.dim(1) != 4) {
    return ctx.Error("rois must be [num_rois, 4], got " + ShapeToString(rois_t.shape()));
  }
  const int64_t num_rois = rois_t.dim(0);
  PX_ASSIGN_OR_RETURN(RoiParams p, ReadRoiParams(ctx));
  Result<std::vector<int64_t>> batch = ReadInt64s(ctx.input(2));
  if (!batch.ok()) return ctx.Error("batch_indices: " + batch.status().message());
  if (static_cast<int64_t>(batch->size()) != num_rois) {
    return ctx.Error("batch_indices has " + std::to_string(batch->size()) + " values for " +
                     std::to_string(num_rois) + " rois");
  }
  Result<std::vector<double>> rois = ReadDoubles(rois_t);
  if (!rois.ok()) return ctx.Error("rois: " + rois.status().message());
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  for (int64_t b : *batch) {
    if (b < 0 || b >= n)
      return ctx.Error("batch index " + std::to_string(b) + " out of range [0, " +
                       std::to_string(n) + ")");
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), Shape{num_rois, c, p.out_h, p.out_w}));
  if (out->numel() == 0) return Status::Ok();
  if (h == 0 || w == 0)
    return ctx.Error("X has an empty spatial shape " + ShapeToString(x.shape()));
  return DispatchImageFloat(x.dtype(), [&]<typename T>() -> Status {
    std::vector<Sample> samples;
    for (int64_t r = 0; r < num_rois; ++r) {
      int64_t gh = 0, gw = 0;
      RoiSamples(p, rois->data() + 4 * r, h, w, samples, gh, gw);
      const int64_t b = (*batch)[static_cast<size_t>(r)];
      for (int64_t ch = 0; ch < c; ++ch) {
        RoiPool(p, x.data<T>() + (b * c + ch) * h * w, samples, gh * gw,
                out->data<T>() + (r * c + ch) * p.out_h * p.out_w);
      }
    }
    return Status::Ok();
  });
}

// ---------------------------------------------------------------------------
// GridSample.

enum class GsMode { kBilinear, kNearest, kBicubic };
enum class GsPad { kZeros, kBorder, kReflection };

struct GsParams {
  GsMode mode = GsMode::kBilinear;
  GsPad pad = GsPad::kZeros;
  bool align_corners = false;
};

double GsReflect(double x, double lo, double hi) {
  const double range = hi - lo;
  if (range <= 0) return lo;
  if (x < lo) {
    const double dx = lo - x;
    const int64_t n = static_cast<int64_t>(dx / range);
    const double r = dx - static_cast<double>(n) * range;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const double dx = x - hi;
    const int64_t n = static_cast<int64_t>(dx / range);
    const double r = dx - static_cast<double>(n) * range;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

struct GsGeom {
  int64_t h, w;
  double x_min, y_min, x_max, y_max;
};

// Flat pixel index of (r, c) under the padding mode; -1 reads zero.
int64_t PixelIndex(const GsParams& p, const GsGeom& g, int64_t r, int64_t c) {
  if (p.pad == GsPad::kZeros) return (r >= 0 && r < g.h && c >= 0 && c < g.w) ? r * g.w + c : -1;
  if (p.pad == GsPad::kBorder) {
    r = std::clamp<int64_t>(r, 0, g.h - 1);
    c = std::clamp<int64_t>(c, 0, g.w - 1);
  } else {
    c = static_cast<int64_t>(GsReflect(static_cast<double>(c), g.x_min, g.x_max));
    r = static_cast<int64_t>(GsReflect(static_cast<double>(r), g.y_min, g.y_max));
    r = std::clamp<int64_t>(r, 0, g.h - 1);
    c = std::clamp<int64_t>(c, 0, g.w - 1);
  }
  return r * g.w + c;
}

void CubicCoeffs(double t, double out[4]) {
  const double a = -0.75;
  t = std::abs(t);
  out[0] = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a;
  out[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
  out[2] = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1;
  out[3] = ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a;
}

double Denormalize(double v, int64_t len, bool align_corners) {
  const double l = static_cast<double>(len);
  return align_corners ? (v + 1) / 2 * (l - 1) : ((v + 1) * l - 1) / 2;
}

// Fills `taps` (index, weight) pairs for the grid point (gx, gy).
void GridTaps(const GsParams& p, const GsGeom& g, double gx, double gy, int64_t* idx, double* wt) {
  double x = Denormalize(gx, g.w, p.align_corners);
  double y = Denormalize(gy, g.h, p.align_corners);
  if (p.mode == GsMode::kNearest) {
    x = std::nearbyint(x);
    y = std::nearbyint(y);
  }
  if (x < g.x_min || x > g.x_max || y < g.y_min || y > g.y_max) {
    if (p.pad == GsPad::kBorder) {
      x = std::clamp(x, 0.0, static_cast<double>(g.w - 1));
      y = std::clamp(y, 0.0, static_cast<double>(g.h - 1));
    } else if (p.pad == GsPad::kReflection) {
      x = GsReflect(x, g.x_min, g.x_max);
      y = GsReflect(y, g.y_min, g.y_max);
    }
  }
  // Far-away points read padding anyway; keep the integer casts defined.
  x = std::isnan(x) ? -1e9 : std::clamp(x, -1e9, 1e9);
  y = std::isnan(y) ? -1e9 : std::clamp(y, -1e9, 1e9);
  if (p.mode == GsMode::kNearest) {
    idx[0] = PixelIndex(p, g, static_cast<int64_t>(y), static_cast<int64_t>(x));
    wt[0] = 1.0;
    return;
  }
  const double fx = std::floor(x), fy = std::floor(y);
  const int64_t x1 = static_cast<int64_t>(fx), y1 = static_cast<int64_t>(fy);
  if (p.mode == GsMode::kBilinear) {
    const double dx1 = x - fx, dx2 = fx + 1 - x, dy1 = y - fy, dy2 = fy + 1 - y;
    idx[0] = PixelIndex(p, g, y1, x1);
    idx[1] = PixelIndex(p, g, y1, x1 + 1);
    idx[2] = PixelIndex(p, g, y1 + 1, x1);
    idx[3] = PixelIndex(p, g, y1 + 1, x1 + 1);
    wt[0] = dy2 * dx2;
    wt[1] = dy2 * dx1;
    wt[2] = dy1 * dx2;
    wt[3] = dy1 * dx1;
    return;
  }
  double cx[4], cy[4];
  CubicCoeffs(x - fx, cx);
  CubicCoeffs(y - fy, cy);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      idx[i * 4 + j] = PixelIndex(p, g, y1 - 1 + i, x1 - 1 + j);
      wt[i * 4 + j] = cy[i] * cx[j];
    }
  }
}

Result<GsParams> ReadGsParams(const KernelContext& ctx) {
  const Node& n = ctx.node();
  GsParams p;
  const std::string mode = n.attr_string("mode", ctx.opset() >= 20 ? "linear" : "bilinear");
  if (mode == "bilinear" || mode == "linear") {
    p.mode = GsMode::kBilinear;
  } else if (mode == "nearest") {
    p.mode = GsMode::kNearest;
  } else if (mode == "bicubic" || mode == "cubic") {
    p.mode = GsMode::kBicubic;
  } else {
    return ctx.Error("unsupported mode '" + mode + "'");
  }
  const std::string pad = n.attr_string("padding_mode", "zeros");
  if (pad == "zeros") {
    p.pad = GsPad::kZeros;
  } else if (pad == "border") {
    p.pad = GsPad::kBorder;
  } else if (pad == "reflection") {
    p.pad = GsPad::kReflection;
  } else {
    return ctx.Error("unsupported padding_mode '" + pad + "'");
  }
  p.align_corners = n.attr_int("align_corners", 0) != 0;
  return p;
}

template <typename T>
void GridApply(const T* plane, const int64_t* idx, const double* wt, int taps, int64_t points,
               T* out) {
  using C = ComputeOf<T>;
  for (int64_t i = 0; i < points; ++i) {
    C acc = 0;
    for (int t = 0; t < taps; ++t) {
      const int64_t k = idx[i * taps + t];
      if (k >= 0) acc += static_cast<C>(wt[i * taps + t]) * ToCompute<C>(plane[k]);
    }
    out[i] = FromCompute<T>(acc);
  }
}

Status GridSample(KernelContext& ctx) {
  if (!ctx.has_input(1)) return ctx.Error("missing grid input");
  const Tensor& x = ctx.input(0);
  const Tensor& grid_t = ctx.input(1);
  if (x.rank() != 4)
    return ctx.Error("only 4-D X [N, C, H, W] is supported, got " + ShapeToString(x.shape()));
  if (grid_t.rank() != 4 || grid_t.dim(0) != x.dim(0) || grid_t.dim(3) != 2) {
    return ctx.Error("grid must be [N, H_out, W_out, 2] for X " + ShapeToString(x.shape()) +
                     ", got " + ShapeToString(grid_t.shape()));
  }
  PX_ASSIGN_OR_RETURN(GsParams p, ReadGsParams(ctx));
  Result<std::vector<double>> grid = ReadDoubles(grid_t);
  if (!grid.ok()) return ctx.Error("grid: " + grid.status().message());
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t ho = grid_t.dim(1), wo = grid_t.dim(2), points = ho * wo;
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), Shape{n, c, ho, wo}));
  if (out->numel() == 0) return Status::Ok();
  if (h == 0 || w == 0)
    return ctx.Error("X has an empty spatial shape " + ShapeToString(x.shape()));
  GsGeom g{h, w, -0.5, -0.5, static_cast<double>(w) - 0.5, static_cast<double>(h) - 0.5};
  if (p.align_corners)
    g = GsGeom{h, w, 0.0, 0.0, static_cast<double>(w - 1), static_cast<double>(h - 1)};
  const int taps = p.mode == GsMode::kNearest ? 1 : p.mode == GsMode::kBilinear ? 4 : 16;
  std::vector<int64_t> idx(static_cast<size_t>(points * taps));
  std::vector<double> wt(idx.size());
  return DispatchImageFloat(x.dtype(), [&]<typename T>() -> Status {
    for (int64_t b = 0; b < n; ++b) {
      const double* gp = grid->data() + b * points * 2;
      for (int64_t i = 0; i < points; ++i)
        GridTaps(p, g, gp[2 * i], gp[2 * i + 1], &idx[i * taps], &wt[i * taps]);
      for (int64_t ch = 0; ch < c; ++ch) {
        GridApply(x.data<T>() + (b * c + ch) * h * w, idx.data(), wt.data(), taps, points,
                  out->data<T>() + (b * c + ch) * points);
      }
    }
    return Status::Ok();
  });
}

}  // namespace

void RegisterSamplingOps(OpRegistry& r) {
  r.Register("RoiAlign", RoiAlign);
  r.Register("GridSample", GridSample);
}

}  // namespace image
}  // namespace parallax
