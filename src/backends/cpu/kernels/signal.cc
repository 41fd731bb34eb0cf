// Signal-processing ops (opset 17): DFT, STFT, Hann/Hamming/Blackman
// windows and MelWeightMatrix. Transforms are direct DFTs accumulated in
// double (O(n^2) per transform; audio front ends use short frames).
#include <cmath>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "ops/dispatch.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

constexpr double kPi = 3.14159265358979323846;

void WriteAt(Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case DType::kFloat32:
      t.data<float>()[i] = static_cast<float>(v);
      break;
    case DType::kFloat64:
      t.data<double>()[i] = v;
      break;
    case DType::kFloat16:
      t.data<Half>()[i] = FloatToHalf(static_cast<float>(v));
      break;
    default:
      break;
  }
}

// One complex transform of `n_in` samples (strided, real or complex) into
// `n_out` bins of length-`len` DFT.
struct Transform {
  int64_t len;
  bool inverse;
  void Run(const Tensor& x, int64_t x_base, int64_t x_stride, int64_t n_in, bool complex_in,
           Tensor& y, int64_t y_base, int64_t y_stride, int64_t n_out,
           const std::vector<double>* window) const {
    const double sign = inverse ? 1.0 : -1.0;
    for (int64_t k = 0; k < n_out; ++k) {
      double re = 0, im = 0;
      for (int64_t n = 0; n < std::min(n_in, len); ++n) {
        int64_t off = x_base + n * x_stride;
        double w = window ? (*window)[static_cast<size_t>(n)] : 1.0;
        double xr = ElementAsDouble(x, complex_in ? off * 1 : off) * w;
        double xi = complex_in ? ElementAsDouble(x, off + 1) * w : 0.0;
        double ang =
            sign * 2.0 * kPi * static_cast<double>((k * n) % len) / static_cast<double>(len);
        double c = std::cos(ang), s = std::sin(ang);
        re += xr * c - xi * s;
        im += xr * s + xi * c;
      }
      if (inverse) {
        re /= static_cast<double>(len);
        im /= static_cast<double>(len);
      }
      WriteAt(y, y_base + k * y_stride, re);
      WriteAt(y, y_base + k * y_stride + 1, im);
    }
  }
};

Status Dft(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!IsFloatingDType(x.dtype())) return ctx.Error("DFT input must be a floating-point tensor");
  if (x.rank() < 3)
    return ctx.Error("DFT input must have rank >= 3, got " + ShapeToString(x.shape()));
  const int64_t last = x.shape().back();
  if (last != 1 && last != 2)
    return ctx.Error("DFT input's last dimension must be 1 (real) or 2 (complex)");
  PX_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx.node().attr_int("axis", 1), x.rank()));
  if (axis == 0 || axis == x.rank() - 1) return ctx.Error("DFT axis must be a signal dimension");
  const bool inverse = ctx.node().attr_int("inverse", 0) != 0;
  const bool onesided = ctx.node().attr_int("onesided", 0) != 0;
  int64_t n = x.shape()[static_cast<size_t>(axis)];
  if (ctx.has_input(1) && ctx.input(1).numel() > 0) {
    PX_ASSIGN_OR_RETURN(std::vector<int64_t> l, ReadInt64s(ctx.input(1)));
    n = l[0];
    if (n <= 0) return ctx.Error("dft_length must be positive");
  }
  Shape out_shape = x.shape();
  out_shape[static_cast<size_t>(axis)] = onesided ? n / 2 + 1 : n;
  out_shape.back() = 2;
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), out_shape));
  const std::vector<int64_t> xs = Strides(x.shape()), ys = Strides(out_shape);
  const int64_t n_in = x.shape()[static_cast<size_t>(axis)];
  Transform tf{n, inverse};
  // Iterate over every position except `axis` and the complex dimension.
  Shape outer = x.shape();
  outer[static_cast<size_t>(axis)] = 1;
  outer.back() = 1;
  const int64_t count = NumElements(outer);
  const std::vector<int64_t> os = Strides(outer);
  for (int64_t i = 0; i < count; ++i) {
    int64_t xb = 0, yb = 0, rem = i;
    for (size_t d = 0; d < outer.size(); ++d) {
      int64_t idx = rem / os[d];
      rem %= os[d];
      xb += idx * xs[d];
      yb += idx * ys[d];
    }
    tf.Run(x, xb, xs[static_cast<size_t>(axis)], n_in, last == 2, *y, yb,
           ys[static_cast<size_t>(axis)], out_shape[static_cast<size_t>(axis)], nullptr);
  }
  return Status::Ok();
}

Status Stft(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!IsFloatingDType(x.dtype()) || x.rank() != 3 || (x.dim(2) != 1 && x.dim(2) != 2))
    return ctx.Error("STFT signal must be a float tensor [batch, length, 1|2], got " +
                     ShapeToString(x.shape()));
  PX_ASSIGN_OR_RETURN(std::vector<int64_t> step_v, ReadInt64s(ctx.input(1)));
  const int64_t step = step_v.at(0);
  std::vector<double> window;
  if (ctx.has_input(2))
    for (int64_t i = 0; i < ctx.input(2).numel(); ++i)
      window.push_back(ElementAsDouble(ctx.input(2), i));
  int64_t len = static_cast<int64_t>(window.size());
  if (ctx.has_input(3)) {
    PX_ASSIGN_OR_RETURN(std::vector<int64_t> l, ReadInt64s(ctx.input(3)));
    len = l.at(0);
  }
  if (len <= 0 || step <= 0)
    return ctx.Error("STFT needs a window or frame_length and a positive frame_step");
  if (!window.empty() && static_cast<int64_t>(window.size()) != len)
    return ctx.Error("STFT window length does not match frame_length");
  if (x.dim(1) < len) return ctx.Error("STFT signal is shorter than one frame");
  const bool onesided = ctx.node().attr_int("onesided", 1) != 0;
  const int64_t frames = (x.dim(1) - len) / step + 1, bins = onesided ? len / 2 + 1 : len;
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), {x.dim(0), frames, bins, 2}));
  Transform tf{len, false};
  const bool complex_in = x.dim(2) == 2;
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t f = 0; f < frames; ++f)
      tf.Run(x, (b * x.dim(1) + f * step) * x.dim(2), x.dim(2), len, complex_in, *y,
             ((b * frames + f) * bins) * 2, 2, bins, window.empty() ? nullptr : &window);
  return Status::Ok();
}

// Generalised cosine window: a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N).
Status CosineWindow(KernelContext& ctx, double a0, double a1, double a2) {
  PX_ASSIGN_OR_RETURN(std::vector<int64_t> size_v, ReadInt64s(ctx.input(0)));
  const int64_t size = size_v.at(0);
  if (size < 0) return ctx.Error("window size must be non-negative");
  const DType dt = static_cast<DType>(ctx.node().attr_int("output_datatype", 1));
  const bool periodic = ctx.node().attr_int("periodic", 1) != 0;
  const double n_den = static_cast<double>(periodic ? size : size - 1);
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, dt, {size}));
  return DispatchNumeric(dt, [&]<typename T>() -> Status {
    for (int64_t n = 0; n < size; ++n) {
      double x = n_den > 0 ? 2.0 * kPi * static_cast<double>(n) / n_den : 0.0;
      y->data<T>()[n] = static_cast<T>(a0 - a1 * std::cos(x) + a2 * std::cos(2 * x));
    }
    return Status::Ok();
  });
}

Status HannWindow(KernelContext& ctx) { return CosineWindow(ctx, 0.5, 0.5, 0); }
Status HammingWindow(KernelContext& ctx) { return CosineWindow(ctx, 25.0 / 46.0, 21.0 / 46.0, 0); }
Status BlackmanWindow(KernelContext& ctx) { return CosineWindow(ctx, 0.42, 0.5, 0.08); }

Status MelWeightMatrix(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(double mels_d, ReadScalarAsDouble(ctx.input(0)));
  PX_ASSIGN_OR_RETURN(double dft_d, ReadScalarAsDouble(ctx.input(1)));
  PX_ASSIGN_OR_RETURN(double rate, ReadScalarAsDouble(ctx.input(2)));
  PX_ASSIGN_OR_RETURN(double lo, ReadScalarAsDouble(ctx.input(3)));
  PX_ASSIGN_OR_RETURN(double hi, ReadScalarAsDouble(ctx.input(4)));
  const int64_t mels = static_cast<int64_t>(mels_d), dft = static_cast<int64_t>(dft_d);
  if (mels <= 0 || dft <= 0 || rate <= 0)
    return ctx.Error("num_mel_bins, dft_length and sample_rate must be positive");
  const int64_t bins = dft / 2 + 1;
  const DType dt = static_cast<DType>(ctx.node().attr_int("output_datatype", 1));
  std::vector<int64_t> points(static_cast<size_t>(mels + 2));
  const double lo_mel = 2595 * std::log10(1 + lo / 700), hi_mel = 2595 * std::log10(1 + hi / 700);
  const double step = (hi_mel - lo_mel) / static_cast<double>(mels + 2);
  for (int64_t i = 0; i < mels + 2; ++i) {
    double hz = 700 * (std::pow(10.0, (static_cast<double>(i) * step + lo_mel) / 2595) - 1);
    points[static_cast<size_t>(i)] =
        static_cast<int64_t>(std::floor(static_cast<double>(dft + 1) * hz / rate));
  }
  std::vector<double> w(static_cast<size_t>(bins * mels), 0.0);
  auto set = [&](int64_t j, int64_t i, double v) {
    if (j >= 0 && j < bins) w[static_cast<size_t>(j * mels + i)] = v;
  };
  for (int64_t i = 0; i < mels; ++i) {
    int64_t l = points[static_cast<size_t>(i)], c = points[static_cast<size_t>(i + 1)],
            r = points[static_cast<size_t>(i + 2)];
    if (c == l)
      set(c, i, 1);
    else
      for (int64_t j = l; j <= c; ++j)
        set(j, i, static_cast<double>(j - l) / static_cast<double>(c - l));
    if (r > c)
      for (int64_t j = c; j < r; ++j)
        set(j, i, static_cast<double>(r - j) / static_cast<double>(r - c));
  }
  PX_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, dt, {bins, mels}));
  return DispatchNumeric(dt, [&]<typename T>() -> Status {
    for (size_t i = 0; i < w.size(); ++i) y->data<T>()[i] = static_cast<T>(w[i]);
    return Status::Ok();
  });
}

}  // namespace

void RegisterSignalOps(OpRegistry& r) {
  r.Register("DFT", Dft);
  r.Register("STFT", Stft);
  r.Register("HannWindow", HannWindow);
  r.Register("HammingWindow", HammingWindow);
  r.Register("BlackmanWindow", BlackmanWindow);
  r.Register("MelWeightMatrix", MelWeightMatrix);
}

}  // namespace parallax
