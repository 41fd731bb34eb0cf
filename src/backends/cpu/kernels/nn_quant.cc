// Integer NN ops in plain C++: MatMulInteger, ConvInteger, QLinearMatMul,
// QLinearConv (uint8/int8 operands, int32 accumulation).
//
// Operands are widened to int32 with their zero points subtracted once, then
// a direct int32 matmul/convolution runs; QLinear* requantize with
// round-half-to-even and saturation, like the reference implementation.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "backends/cpu/kernels/nn_util.h"
#include "ops/kernel.h"

namespace parallax::nn {
namespace {

bool IsQuant8(DType t) { return t == DType::kUInt8 || t == DType::kInt8; }

int32_t ReadInt(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kUInt8:
      return t.data<uint8_t>()[i];
    case DType::kInt8:
      return t.data<int8_t>()[i];
    case DType::kInt32:
      return t.data<int32_t>()[i];
    default:
      return 0;
  }
}

// Optional zero point input `idx`: 1 value or `per` values (0 when absent).
Result<std::vector<int32_t>> ZeroPoint(const KernelContext& ctx, int idx, int64_t per,
                                       DType expect) {
  if (!ctx.has_input(idx)) return std::vector<int32_t>{0};
  const Tensor& z = ctx.input(idx);
  if (z.dtype() != expect)
    return ctx.Error("zero point input " + std::to_string(idx) + " has dtype " +
                     std::string(DTypeName(z.dtype())) + ", expected " +
                     std::string(DTypeName(expect)));
  if (z.numel() != 1 && z.numel() != per)
    return ctx.Error("zero point input " + std::to_string(idx) + " has " +
                     std::to_string(z.numel()) + " values, expected 1 or " + std::to_string(per));
  std::vector<int32_t> v(static_cast<size_t>(z.numel()));
  for (int64_t i = 0; i < z.numel(); ++i) v[static_cast<size_t>(i)] = ReadInt(z, i);
  return v;
}

Result<std::vector<float>> Scale(const KernelContext& ctx, int idx, int64_t per) {
  if (!ctx.has_input(idx)) return ctx.Error("scale input " + std::to_string(idx) + " is required");
  PX_ASSIGN_OR_RETURN(Tensor s, ToFloat32(ctx.input(idx)));
  if (s.numel() != 1 && s.numel() != per)
    return ctx.Error("scale input " + std::to_string(idx) + " has " + std::to_string(s.numel()) +
                     " values, expected 1 or " + std::to_string(per));
  return std::vector<float>(s.data<float>(), s.data<float>() + s.numel());
}

// int32 copy of t minus zp[(i / inner) % count] (per-index zero points).
std::vector<int32_t> Widen(const Tensor& t, const std::vector<int32_t>& zp, int64_t inner) {
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  int64_t count = static_cast<int64_t>(zp.size());
  for (int64_t i = 0; i < t.numel(); ++i)
    v[static_cast<size_t>(i)] =
        ReadInt(t, i) - zp[static_cast<size_t>(count == 1 ? 0 : (i / inner) % count)];
  return v;
}

inline int32_t Requantize(int32_t acc, float scale, int32_t zp, int32_t lo, int32_t hi) {
  float v = std::nearbyint(static_cast<float>(acc) * scale) + static_cast<float>(zp);
  return static_cast<int32_t>(std::min<float>(std::max<float>(v, lo), hi));
}

void StoreQuant(const std::vector<int32_t>& acc, const std::vector<float>& scale,
                int64_t scale_inner, int32_t zp, Tensor* out) {
  bool u8 = out->dtype() == DType::kUInt8;
  int32_t lo = u8 ? 0 : -128, hi = u8 ? 255 : 127;
  int64_t count = static_cast<int64_t>(scale.size());
  for (int64_t i = 0; i < out->numel(); ++i) {
    float s = scale[static_cast<size_t>(count == 1 ? 0 : (i / scale_inner) % count)];
    int32_t q = Requantize(acc[static_cast<size_t>(i)], s, zp, lo, hi);
    if (u8)
      out->data<uint8_t>()[i] = static_cast<uint8_t>(q);
    else
      out->data<int8_t>()[i] = static_cast<int8_t>(q);
  }
}

// --- MatMul ---------------------------------------------------------------

// Shared by MatMulInteger (inputs A=0, B=1, zps 2/3) and QLinearMatMul
// (A=0, B=3, zps 2/5): the int32 product of the zero-point-corrected operands.
Result<std::vector<int32_t>> IntProduct(const KernelContext& ctx, int ia, int ib, int iza, int izb,
                                        MatMulShapes* s) {
  const Tensor& a = ctx.input(ia);
  const Tensor& b = ctx.input(ib);
  if (!IsQuant8(a.dtype()) || !IsQuant8(b.dtype()))
    return ctx.Error("A and B must be uint8 or int8");
  Result<MatMulShapes> shapes = BroadcastMatMulShapes(a.shape(), b.shape());
  if (!shapes.ok()) return ctx.Error(shapes.status().message());
  *s = *shapes;
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> za, ZeroPoint(ctx, iza, s->m, a.dtype()));
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> zb, ZeroPoint(ctx, izb, s->n, b.dtype()));
  std::vector<int32_t> wa = Widen(a, za, s->k), wb = Widen(b, zb, 1);
  std::vector<int32_t> y(static_cast<size_t>(NumElements(s->y)));
  BatchedMatMul<int32_t>(*s, wa.data(), wb.data(), y.data());
  return y;
}

Status MatMulInteger(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("A and B are required");
  MatMulShapes s;
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> y, IntProduct(ctx, 0, 1, 2, 3, &s));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt32, s.out));
  std::copy(y.begin(), y.end(), out->data<int32_t>());
  return Status::Ok();
}

Status QLinearMatMul(KernelContext& ctx) {
  for (int i = 0; i < 8; ++i)
    if (i != 2 && i != 5 && !ctx.has_input(i)) return ctx.Error("expects 8 inputs");
  MatMulShapes s;
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> acc, IntProduct(ctx, 0, 3, 2, 5, &s));
  PX_ASSIGN_OR_RETURN(std::vector<float> sa, Scale(ctx, 1, s.m));
  PX_ASSIGN_OR_RETURN(std::vector<float> sb, Scale(ctx, 4, s.n));
  PX_ASSIGN_OR_RETURN(std::vector<float> sy, Scale(ctx, 6, 1));
  DType out_type = ctx.has_input(7) ? ctx.input(7).dtype() : ctx.input(0).dtype();
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> zy, ZeroPoint(ctx, 7, 1, out_type));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, out_type, s.out));
  // Per-element scale a_s[i] * b_s[j] / y_s over the [.., M, N] output.
  std::vector<float> scale(static_cast<size_t>(s.m * s.n));
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j)
      scale[static_cast<size_t>(i * s.n + j)] = sa[sa.size() == 1 ? 0 : static_cast<size_t>(i)] *
                                                sb[sb.size() == 1 ? 0 : static_cast<size_t>(j)] /
                                                sy[0];
  StoreQuant(acc, scale, 1, zy[0], out);
  return Status::Ok();
}

// --- Conv -----------------------------------------------------------------

struct Conv3 {
  int64_t n = 0, c = 0, m = 0, group = 1;
  int64_t in[3], k[3], s[3], d[3], pb[3], out[3];
};

Result<Conv3> ConvGeometry3(const KernelContext& ctx, const Shape& x, const Shape& w) {
  int rank = static_cast<int>(x.size());
  if (rank < 3 || rank > 5 || static_cast<int>(w.size()) != rank)
    return ctx.Error("unsupported input/weight shapes " + ShapeToString(x) + ", " +
                     ShapeToString(w));
  Conv3 g;
  g.group = ctx.node().attr_int("group", 1);
  g.n = x[0];
  g.c = x[1];
  g.m = w[0];
  if (g.group <= 0 || g.c != w[1] * g.group || g.m % g.group != 0)
    return ctx.Error("input " + ShapeToString(x) + " and weight " + ShapeToString(w) +
                     " do not agree on channels for group " + std::to_string(g.group));
  Shape ks(w.begin() + 2, w.end());
  PX_ASSIGN_OR_RETURN(Window win,
                      ComputeWindow(ctx.node(), Shape(x.begin() + 2, x.end()), ks, false, true));
  int off = 3 - win.rank;
  for (int i = 0; i < 3; ++i) {
    bool real = i >= off;
    size_t j = static_cast<size_t>(i - off);
    g.in[i] = real ? win.in[j] : 1;
    g.k[i] = real ? win.kernel[j] : 1;
    g.s[i] = real ? win.stride[j] : 1;
    g.d[i] = real ? win.dilation[j] : 1;
    g.pb[i] = real ? win.pad_begin[j] : 0;
    g.out[i] = real ? win.out[j] : 1;
  }
  return g;
}

// y[n, m, o] = sum over window of x * w (int32, zero points already removed).
void ConvInt32(const Conv3& g, const int32_t* x, const int32_t* w, int32_t* y) {
  int64_t icg = g.c / g.group, ocg = g.m / g.group;
  int64_t in_plane = g.in[0] * g.in[1] * g.in[2], out_plane = g.out[0] * g.out[1] * g.out[2];
  int64_t kvol = g.k[0] * g.k[1] * g.k[2];
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t m = 0; m < g.m; ++m) {
      int64_t grp = m / ocg;
      int32_t* yp = y + (n * g.m + m) * out_plane;
      for (int64_t o = 0; o < out_plane; ++o) {
        int64_t oz = o / (g.out[1] * g.out[2]), oy = (o / g.out[2]) % g.out[1], ox = o % g.out[2];
        int32_t acc = 0;
        for (int64_t c = 0; c < icg; ++c) {
          const int32_t* xp = x + (n * g.c + grp * icg + c) * in_plane;
          const int32_t* wp = w + (m * icg + c) * kvol;
          for (int64_t kz = 0; kz < g.k[0]; ++kz) {
            int64_t z = oz * g.s[0] - g.pb[0] + kz * g.d[0];
            if (z < 0 || z >= g.in[0]) continue;
            for (int64_t ky = 0; ky < g.k[1]; ++ky) {
              int64_t yy = oy * g.s[1] - g.pb[1] + ky * g.d[1];
              if (yy < 0 || yy >= g.in[1]) continue;
              for (int64_t kx = 0; kx < g.k[2]; ++kx) {
                int64_t xx = ox * g.s[2] - g.pb[2] + kx * g.d[2];
                if (xx < 0 || xx >= g.in[2]) continue;
                acc += xp[(z * g.in[1] + yy) * g.in[2] + xx] * wp[(kz * g.k[1] + ky) * g.k[2] + kx];
              }
            }
          }
        }
        yp[o] = acc;
      }
    }
}

// Shared by ConvInteger (x=0, w=1, zps 2/3) and QLinearConv (x=0, w=3, zps
// 2/5).
Result<std::vector<int32_t>> IntConv(const KernelContext& ctx, int iw, int izx, int izw, Conv3* g,
                                     Shape* y_shape) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(iw);
  if (!IsQuant8(x.dtype()) || !IsQuant8(w.dtype()))
    return ctx.Error("x and w must be uint8 or int8");
  PX_ASSIGN_OR_RETURN(*g, ConvGeometry3(ctx, x.shape(), w.shape()));
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> zx, ZeroPoint(ctx, izx, 1, x.dtype()));
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> zw, ZeroPoint(ctx, izw, g->m, w.dtype()));
  std::vector<int32_t> wx = Widen(x, zx, 1),
                       ww = Widen(w, zw, w.numel() / std::max<int64_t>(g->m, 1));
  *y_shape = {g->n, g->m};
  int off = 3 - (x.rank() - 2);
  for (int i = off; i < 3; ++i) y_shape->push_back(g->out[i]);
  std::vector<int32_t> y(static_cast<size_t>(NumElements(*y_shape)));
  ConvInt32(*g, wx.data(), ww.data(), y.data());
  return y;
}

Status ConvInteger(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("x and w are required");
  Conv3 g;
  Shape ys;
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> y, IntConv(ctx, 1, 2, 3, &g, &ys));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kInt32, ys));
  std::copy(y.begin(), y.end(), out->data<int32_t>());
  return Status::Ok();
}

Status QLinearConv(KernelContext& ctx) {
  for (int i = 0; i < 8; ++i)
    if (!ctx.has_input(i)) return ctx.Error("expects at least 8 inputs");
  Conv3 g;
  Shape ys;
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> acc, IntConv(ctx, 3, 2, 5, &g, &ys));
  int64_t plane = g.m == 0 || g.n == 0 ? 1 : NumElements(ys) / (g.n * g.m);
  if (ctx.has_input(8)) {
    const Tensor& b = ctx.input(8);
    if (b.dtype() != DType::kInt32 || b.numel() != g.m)
      return ctx.Error("B must be int32 with " + std::to_string(g.m) + " values");
    for (size_t i = 0; i < acc.size(); ++i)
      acc[i] += b.data<int32_t>()[(static_cast<int64_t>(i) / plane) % g.m];
  }
  PX_ASSIGN_OR_RETURN(std::vector<float> sx, Scale(ctx, 1, 1));
  PX_ASSIGN_OR_RETURN(std::vector<float> sw, Scale(ctx, 4, g.m));
  PX_ASSIGN_OR_RETURN(std::vector<float> sy, Scale(ctx, 6, 1));
  DType out_type = ctx.input(7).dtype();
  PX_ASSIGN_OR_RETURN(std::vector<int32_t> zy, ZeroPoint(ctx, 7, 1, out_type));
  std::vector<float> scale(sw.size());
  for (size_t i = 0; i < sw.size(); ++i) scale[i] = sx[0] * sw[i] / sy[0];
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, out_type, ys));
  StoreQuant(acc, scale, plane, zy[0], out);
  return Status::Ok();
}

}  // namespace

void RegisterQuantOps(OpRegistry& r) {
  r.Register("MatMulInteger", MatMulInteger);
  r.Register("QLinearMatMul", QLinearMatMul);
  r.Register("ConvInteger", ConvInteger);
  r.Register("QLinearConv", QLinearConv);
}

}  // namespace parallax::nn
