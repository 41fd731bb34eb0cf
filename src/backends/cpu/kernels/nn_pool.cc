// Pooling: MaxPool, AveragePool, LpPool and their Global* forms.
//
// float32 MaxPool/AveragePool go through oneDNN (pooling_v2, cached per input
// shape). The plain C++ path covers what oneDNN cannot express: MaxPool's
// Indices output, int8/uint8 MaxPool, AveragePool with count_include_pad in
// ceil mode, LpPool, float64, and any configuration oneDNN rejects.
//
// ("com.parallax", "MaxPool"/"AveragePool") with channels_last=1 pool 2-D NHWC
// activations (X [N,H,W,C], Y [N,OH,OW,C]) through oneDNN only, as one call;
// the layout pass converts only pools oneDNN runs (float32, no Indices).
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/kernels/dnnl_util.h"
#include "backends/cpu/kernels/nn_util.h"
#include "ops/dispatch.h"
#include "ops/kernel.h"

namespace parallax::nn {
namespace {

using namespace dnnl_util;  // NOLINT: internal helpers.
using dnnl::memory;

enum class PoolKind { kMax, kAvg, kLp };

// A window normalised to 3 spatial dims (missing leading dims are size 1).
struct Pool3 {
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3], out[3];
};

Pool3 ToPool3(const Window& w) {
  Pool3 p;
  int off = 3 - w.rank;
  for (int i = 0; i < 3; ++i) {
    bool real = i >= off;
    size_t j = static_cast<size_t>(i - off);
    p.in[i] = real ? w.in[j] : 1;
    p.k[i] = real ? w.kernel[j] : 1;
    p.s[i] = real ? w.stride[j] : 1;
    p.d[i] = real ? w.dilation[j] : 1;
    p.pb[i] = real ? w.pad_begin[j] : 0;
    p.pe[i] = real ? w.pad_end[j] : 0;
    p.out[i] = real ? w.out[j] : 1;
  }
  return p;
}

struct PoolParams {
  PoolKind kind = PoolKind::kMax;
  bool count_include_pad = false;
  double p = 2;               // LpPool exponent.
  bool column_major = false;  // MaxPool storage_order=1 (Indices only).
};

// Index of input element (z, y, x) for MaxPool's Indices output.
inline int64_t SpatialIndex(const Pool3& g, int64_t z, int64_t y, int64_t x, bool column_major) {
  if (!column_major) return (z * g.in[1] + y) * g.in[2] + x;
  return (x * g.in[1] + y) * g.in[0] + z;
}

// Pools one (n, c) plane of T values; Acc accumulates avg/lp sums.
template <typename T, typename Acc>
void PoolPlane(const Pool3& g, const PoolParams& pp, const T* in, T* out, int64_t* idx,
               int64_t idx_base) {
  for (int64_t oz = 0; oz < g.out[0]; ++oz)
    for (int64_t oy = 0; oy < g.out[1]; ++oy)
      for (int64_t ox = 0; ox < g.out[2]; ++ox) {
        int64_t o[3] = {oz, oy, ox}, start[3], padded[3] = {0, 0, 0}, inside[3] = {0, 0, 0};
        for (int i = 0; i < 3; ++i) start[i] = o[i] * g.s[i] - g.pb[i];
        for (int i = 0; i < 3; ++i)
          for (int64_t t = 0; t < g.k[i]; ++t) {
            int64_t pos = start[i] + t * g.d[i];
            if (pos >= -g.pb[i] && pos < g.in[i] + g.pe[i]) ++padded[i];
            if (pos >= 0 && pos < g.in[i]) ++inside[i];
          }
        Acc acc = 0;
        T best = std::numeric_limits<T>::lowest();
        int64_t best_at = -1;
        for (int64_t kz = 0; kz < g.k[0]; ++kz) {
          int64_t z = start[0] + kz * g.d[0];
          if (z < 0 || z >= g.in[0]) continue;
          for (int64_t ky = 0; ky < g.k[1]; ++ky) {
            int64_t y = start[1] + ky * g.d[1];
            if (y < 0 || y >= g.in[1]) continue;
            const T* row = in + (z * g.in[1] + y) * g.in[2];
            for (int64_t kx = 0; kx < g.k[2]; ++kx) {
              int64_t x = start[2] + kx * g.d[2];
              if (x < 0 || x >= g.in[2]) continue;
              T v = row[x];
              if (pp.kind == PoolKind::kMax) {
                if (best_at < 0 || v > best) {
                  best = v;
                  best_at = SpatialIndex(g, z, y, x, pp.column_major);
                }
              } else if (pp.kind == PoolKind::kAvg) {
                acc += static_cast<Acc>(v);
              } else {
                acc += static_cast<Acc>(std::pow(std::abs(static_cast<double>(v)), pp.p));
              }
            }
          }
        }
        int64_t oi = (oz * g.out[1] + oy) * g.out[2] + ox;
        if (pp.kind == PoolKind::kMax) {
          out[oi] = best;
          if (idx != nullptr) idx[oi] = idx_base + std::max<int64_t>(best_at, 0);
        } else if (pp.kind == PoolKind::kAvg) {
          int64_t* cnt = pp.count_include_pad ? padded : inside;
          int64_t n = cnt[0] * cnt[1] * cnt[2];
          out[oi] = static_cast<T>(n > 0 ? acc / static_cast<Acc>(n) : Acc(0));
        } else {
          out[oi] = static_cast<T>(std::pow(static_cast<double>(acc), 1.0 / pp.p));
        }
      }
}

template <typename T, typename Acc>
void PoolAll(const Pool3& g, const PoolParams& pp, int64_t planes, const T* in, T* out,
             int64_t* idx) {
  int64_t in_plane = g.in[0] * g.in[1] * g.in[2], out_plane = g.out[0] * g.out[1] * g.out[2];
  for (int64_t p = 0; p < planes; ++p)
    PoolPlane<T, Acc>(g, pp, in + p * in_plane, out + p * out_plane,
                      idx != nullptr ? idx + p * out_plane : nullptr, p * in_plane);
}

// C++ pooling of any supported dtype (float16 staged through float32).
Status ReferencePool(KernelContext& ctx, const Window& w, const PoolParams& pp, Tensor* out,
                     Tensor* indices) {
  const Tensor& x = ctx.input(0);
  Pool3 g = ToPool3(w);
  int64_t planes = x.dim(0) * x.dim(1);
  int64_t* idx = indices != nullptr ? indices->data<int64_t>() : nullptr;
  switch (x.dtype()) {
    case DType::kFloat32:
      PoolAll<float, float>(g, pp, planes, x.data<float>(), out->data<float>(), idx);
      return Status::Ok();
    case DType::kFloat64:
      PoolAll<double, double>(g, pp, planes, x.data<double>(), out->data<double>(), idx);
      return Status::Ok();
    case DType::kFloat16: {
      PX_ASSIGN_OR_RETURN(Tensor xf, ToFloat32(x));
      Tensor yf = Tensor::Uninitialized(DType::kFloat32, out->shape());
      PoolAll<float, float>(g, pp, planes, xf.data<float>(), yf.data<float>(), idx);
      StoreFromFloat32(yf.data<float>(), out);
      return Status::Ok();
    }
    case DType::kInt8:
      if (pp.kind != PoolKind::kMax) break;
      PoolAll<int8_t, int32_t>(g, pp, planes, x.data<int8_t>(), out->data<int8_t>(), idx);
      return Status::Ok();
    case DType::kUInt8:
      if (pp.kind != PoolKind::kMax) break;
      PoolAll<uint8_t, int32_t>(g, pp, planes, x.data<uint8_t>(), out->data<uint8_t>(), idx);
      return Status::Ok();
    default:
      break;
  }
  return Unsupported(ctx.node().Describe() + ": dtype " + std::string(DTypeName(x.dtype())) +
                     " is not supported");
}

// oneDNN pooling over plain NC[D]HW, split into intra-op tiles of whole
// (n, c) planes (planes pool independently, so a tile is a {1, planes, ...}
// slice at an offset).
struct PoolTile {
  dnnl::primitive prim;
  memory src, dst, scratch;
  int64_t in_off = 0, out_off = 0;  // Element offsets.
};
struct PoolPlan {
  bool use_dnnl = false;
  std::vector<PoolTile> tiles;
};

// `xs`/`ys` are logical NC... dims; `nhwc` means the tensors are channels-last.
PoolPlan MakeDnnlPlan(const Shape& xs, const Shape& ys, const Window& w, PoolKind kind,
                      bool include_pad, bool nhwc, int threads) {
  PoolPlan p;
  memory::dims dil(w.dilation.size()), pr(w.pad_end.size());
  for (size_t i = 0; i < dil.size(); ++i) {
    dil[i] = w.dilation[i] - 1;
    int64_t ext = (w.kernel[i] - 1) * w.dilation[i] + 1;
    pr[i] = std::max(w.pad_end[i], (w.out[i] - 1) * w.stride[i] + ext - w.in[i] - w.pad_begin[i]);
  }
  dnnl::algorithm alg = kind == PoolKind::kMax ? dnnl::algorithm::pooling_max
                        : include_pad          ? dnnl::algorithm::pooling_avg_include_padding
                                               : dnnl::algorithm::pooling_avg_exclude_padding;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const int64_t planes = xs[0] * xs[1];
  const int64_t in_plane = NumElements(xs) / planes, out_plane = NumElements(ys) / planes;
  const double work =
      static_cast<double>(NumElements(ys)) * static_cast<double>(NumElements(w.kernel));
  const int64_t parts = work < 2e5 || nhwc ? 1 : std::min<int64_t>(threads, planes);
  try {
    if (nhwc) {
      dnnl::pooling_v2_forward::desc d(dnnl::prop_kind::forward_inference, alg,
                                       StridedDesc(xs, NhwcStrides(xs)),
                                       StridedDesc(ys, NhwcStrides(ys)), Dims(w.stride),
                                       Dims(w.kernel), dil, Dims(w.pad_begin), pr);
      dnnl::pooling_v2_forward::primitive_desc pd(d, attr, Engine());
      PoolTile tile;
      tile.src = memory(pd.src_desc(), Engine(), nullptr);
      tile.dst = memory(pd.dst_desc(), Engine(), nullptr);
      tile.scratch = memory(pd.scratchpad_desc(), Engine());
      tile.prim = dnnl::pooling_v2_forward(pd);
      p.tiles.push_back(std::move(tile));
      p.use_dnnl = true;
      return p;
    }
    for (int64_t t = 0; t < parts; ++t) {
      const int64_t p0 = planes * t / parts, p1 = planes * (t + 1) / parts;
      Shape xt = xs, yt = ys;
      xt[0] = yt[0] = 1;
      xt[1] = yt[1] = p1 - p0;
      dnnl::pooling_v2_forward::desc d(dnnl::prop_kind::forward_inference, alg, PlainDesc(xt),
                                       PlainDesc(yt), Dims(w.stride), Dims(w.kernel), dil,
                                       Dims(w.pad_begin), pr);
      dnnl::pooling_v2_forward::primitive_desc pd(d, attr, Engine());
      PoolTile tile;
      tile.src = memory(pd.src_desc(), Engine(), nullptr);
      tile.dst = memory(pd.dst_desc(), Engine(), nullptr);
      tile.scratch = memory(pd.scratchpad_desc(), Engine());
      tile.prim = dnnl::pooling_v2_forward(pd);
      tile.in_off = p0 * in_plane;
      tile.out_off = p0 * out_plane;
      p.tiles.push_back(std::move(tile));
    }
    p.use_dnnl = true;
  } catch (const dnnl::error&) {
    p.use_dnnl = false;  // Not expressible in oneDNN: use the C++ path.
    p.tiles.clear();
  }
  return p;
}

class PoolKernel final : public Kernel {
 public:
  PoolKernel(PoolKind kind, bool nhwc) : kind_(kind), nhwc_(nhwc) {}
  Status Run(KernelContext& ctx) override {
    return Guard(ctx.node(), [&] { return RunImpl(ctx); });
  }

 private:
  Status RunImpl(KernelContext& ctx);
  Result<PoolParams> Params(const KernelContext& ctx) const;

  PoolKind kind_;
  bool nhwc_;  // X and Y are NHWC (com.parallax channels_last).
  PlanCache<PoolPlan> cache_;
};

Result<PoolParams> PoolKernel::Params(const KernelContext& ctx) const {
  const Node& n = ctx.node();
  PoolParams pp;
  pp.kind = kind_;
  pp.count_include_pad = n.attr_int("count_include_pad", 0) != 0;
  pp.column_major = n.attr_int("storage_order", 0) != 0;
  if (kind_ == PoolKind::kLp) {
    const Attribute* a = n.attr("p");
    pp.p = a == nullptr                         ? 2.0
           : a->kind == Attribute::Kind::kFloat ? a->f
                                                : static_cast<double>(a->i);
    if (!(pp.p > 0)) return ctx.Error("p must be > 0");
  }
  return pp;
}

Status PoolKernel::RunImpl(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("input X is required");
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3 || x.rank() > 5 || (nhwc_ && x.rank() != 4))
    return Unsupported(ctx.node().Describe() + ": input rank " + std::to_string(x.rank()) +
                       " (1-D to 3-D pooling is supported; 2-D only channels-last)");
  int r = x.rank() - 2;
  PX_ASSIGN_OR_RETURN(std::vector<int64_t> k, KernelShapeAttr(ctx.node(), r));
  if (k.empty()) return ctx.Error("kernel_shape attribute is required");
  bool ceil_mode = ctx.node().attr_int("ceil_mode", 0) != 0;
  const Shape xs = nhwc_ ? NhwcToNchw(x.shape()) : x.shape();  // Logical NC... dims.
  PX_ASSIGN_OR_RETURN(
      Window w, ComputeWindow(ctx.node(), Shape(xs.begin() + 2, xs.end()), k, ceil_mode, true));
  PX_ASSIGN_OR_RETURN(PoolParams pp, Params(ctx));
  Shape ys = {xs[0], xs[1]};
  ys.insert(ys.end(), w.out.begin(), w.out.end());
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), nhwc_ ? NchwToNhwc(ys) : ys));
  Tensor* indices = nullptr;
  if (kind_ == PoolKind::kMax && ctx.num_outputs() > 1 && ctx.output_used(1)) {
    PX_ASSIGN_OR_RETURN(indices, ctx.Output(1, DType::kInt64, ys));
  }
  if (out->numel() == 0) return Status::Ok();
  bool dnnl_ok = x.dtype() == DType::kFloat32 && indices == nullptr && kind_ != PoolKind::kLp &&
                 !(kind_ == PoolKind::kAvg && ceil_mode && pp.count_include_pad);
  if (!dnnl_ok && nhwc_) return ctx.Error("channels-last pooling needs the oneDNN path");
  if (!dnnl_ok) return ReferencePool(ctx, w, pp, out, indices);
  PrepareThread();
  std::vector<int64_t> key = x.shape();
  key.push_back(ctx.intra_op().threads);
  // Pads too: a memory split's pieces share this kernel with their own pads.
  key.insert(key.end(), w.pad_begin.begin(), w.pad_begin.end());
  key.insert(key.end(), w.pad_end.begin(), w.pad_end.end());
  PoolPlan* plan = cache_.Find(key);
  if (plan == nullptr) {
    std::lock_guard<std::mutex> lock(CreationMutex());
    plan = cache_.Insert(
        key, MakeDnnlPlan(xs, ys, w, kind_, pp.count_include_pad, nhwc_, ctx.intra_op().threads));
  }
  if (!plan->use_dnnl && nhwc_) return ctx.Error("oneDNN rejects this channels-last pooling");
  if (!plan->use_dnnl) return ReferencePool(ctx, w, pp, out, indices);
  const float* px = x.data<float>();
  float* py = out->data<float>();
  return RunTiles(
      ctx.node(), ctx.intra_op(), static_cast<int64_t>(plan->tiles.size()), [&](int64_t i) {
        PoolTile& t = plan->tiles[static_cast<size_t>(i)];
        dnnl::stream& s = ThreadStream();
        t.src.set_data_handle(const_cast<float*>(px + t.in_off));
        t.dst.set_data_handle(py + t.out_off);
        t.prim.execute(
            s, {{DNNL_ARG_SRC, t.src}, {DNNL_ARG_DST, t.dst}, {DNNL_ARG_SCRATCHPAD, t.scratch}});
        s.wait();
        return Status::Ok();
      });
}

// Global pooling over all spatial dims of each (n, c) plane.
template <typename T>
void GlobalPool(PoolKind kind, double p, int64_t planes, int64_t size, const T* in, T* out) {
  for (int64_t i = 0; i < planes; ++i) {
    const T* v = in + i * size;
    if (kind == PoolKind::kMax) {
      T m = v[0];
      for (int64_t j = 1; j < size; ++j) m = v[j] > m ? v[j] : m;
      out[i] = m;
    } else if (kind == PoolKind::kAvg) {
      double acc = 0;
      for (int64_t j = 0; j < size; ++j) acc += static_cast<double>(v[j]);
      out[i] = static_cast<T>(acc / static_cast<double>(size));
    } else {
      double acc = 0;
      for (int64_t j = 0; j < size; ++j) acc += std::pow(std::abs(static_cast<double>(v[j])), p);
      out[i] = static_cast<T>(std::pow(acc, 1.0 / p));
    }
  }
}

template <PoolKind kKind>
Status GlobalPoolKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("input X is required");
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.Error("input must have rank >= 2, got " + ShapeToString(x.shape()));
  double p = 2;
  if (kKind == PoolKind::kLp) {
    const Attribute* a = ctx.node().attr("p");
    if (a != nullptr) p = a->kind == Attribute::Kind::kFloat ? a->f : static_cast<double>(a->i);
    if (!(p > 0)) return ctx.Error("p must be > 0");
  }
  Shape ys(x.shape().size(), 1);
  ys[0] = x.dim(0);
  ys[1] = x.dim(1);
  int64_t planes = x.dim(0) * x.dim(1);
  int64_t size = planes == 0 ? 0 : x.numel() / planes;
  if (size == 0 && planes > 0)
    return ctx.Error("empty spatial dims in " + ShapeToString(x.shape()));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, x.dtype(), ys));
  if (planes == 0) return Status::Ok();
  switch (x.dtype()) {
    case DType::kFloat32:
      GlobalPool<float>(kKind, p, planes, size, x.data<float>(), out->data<float>());
      return Status::Ok();
    case DType::kFloat64:
      GlobalPool<double>(kKind, p, planes, size, x.data<double>(), out->data<double>());
      return Status::Ok();
    case DType::kFloat16: {
      PX_ASSIGN_OR_RETURN(Tensor xf, ToFloat32(x));
      std::vector<float> y(static_cast<size_t>(planes));
      GlobalPool<float>(kKind, p, planes, size, xf.data<float>(), y.data());
      StoreFromFloat32(y.data(), out);
      return Status::Ok();
    }
    default:
      return Unsupported(ctx.node().Describe() + ": dtype " + std::string(DTypeName(x.dtype())) +
                         " is not supported");
  }
}

// `channels_last`: honour the node's channels_last attribute (com.parallax).
KernelFactory PoolFactory(PoolKind kind, bool channels_last = false) {
  return [kind, channels_last](const KernelInit& init) -> Result<std::unique_ptr<Kernel>> {
    bool nhwc = channels_last && init.node.attr_int("channels_last", 0) != 0;
    return std::unique_ptr<Kernel>(new PoolKernel(kind, nhwc));
  };
}

}  // namespace

void RegisterPoolOps(OpRegistry& r) {
  r.Register("", "MaxPool", PoolFactory(PoolKind::kMax));
  r.Register("", "AveragePool", PoolFactory(PoolKind::kAvg));
  r.Register("", "LpPool", PoolFactory(PoolKind::kLp));
  r.Register("com.parallax", "MaxPool", PoolFactory(PoolKind::kMax, true));
  r.Register("com.parallax", "AveragePool", PoolFactory(PoolKind::kAvg, true));
  r.Register("GlobalMaxPool", GlobalPoolKernel<PoolKind::kMax>);
  r.Register("GlobalAveragePool", GlobalPoolKernel<PoolKind::kAvg>);
  r.Register("GlobalLpPool", GlobalPoolKernel<PoolKind::kLp>);
}

}  // namespace parallax::nn
