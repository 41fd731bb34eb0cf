// Conv and ConvTranspose through oneDNN (float32; float16/float64 staged
// through float32).
//
// Constant weights (and bias) are converted to float32 once at kernel
// creation and reordered into the primitive's preferred layout once per input
// shape; primitives are cached by input shape, so repeated runs do no
// primitive creation and no weight reorder. Activations are plain
// NCW/NCHW/NCDHW at the kernel boundary; when the primitive prefers a blocked
// layout, src/dst are reordered inside the kernel.
//
// ("com.parallax", "Conv") with channels_last=1 is the same 2-D convolution on
// NHWC activations (X [N,H,W,C], Y [N,OH,OW,OC], W and B as in ONNX), set by
// the layout pass (plan/layout.h). Geometry is computed on the logical NCHW
// shape and the primitive runs directly on NHWC strides, with no reorders.
//
// ("com.parallax", "FusedConv") adds a fused epilogue (bias, residual Z,
// activation, affine; see PostOps) run by oneDNN or, where oneDNN's
// implementation would run it in reference code, as one C++ pass after it.
// Every variant splits into intra-op tiles (SplitConv) on the session pool.
#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/kernels/dnnl_util.h"
#include "backends/cpu/kernels/nn_util.h"
#include "ops/kernel.h"
#include "ops/shape_util.h"

namespace parallax::nn {
namespace {

using namespace dnnl_util;  // NOLINT: internal helpers.
using dnnl::memory;

// Everything that determines one primitive: shapes and window.
struct ConvGeometry {
  Shape x, w;  // Input and (ONNX) weight shapes.
  int64_t group = 1;
  int64_t in_channels = 0, out_channels = 0;
  Window win;
  Shape dnnl_w;                         // oneDNN logical weight dims ([g,] O, I, k...).
  std::vector<int64_t> dnnl_w_strides;  // Strides of the ONNX bytes in those dims.
  std::vector<int64_t> pad_end;         // oneDNN padding_r (deconv: minus output_padding).
  Shape y;                              // Output shape.
  // What oneDNN computes: y less `deficit` trailing cells per spatial dim that
  // need a negative padding_r (ConvTranspose output beyond the natural size,
  // which gets the bias only).
  std::vector<int64_t> deficit;
  Shape y_dnnl;
};

struct ConvPlan {
  dnnl::primitive prim;
  memory user_src, user_dst, user_wei, bias;  // Handles set per call.
  std::optional<dnnl::reorder> src_reorder, dst_reorder, wei_reorder;
  std::optional<dnnl::reorder> res_reorder;  // Residual (user layout) into blocked dst_buf.
  memory src_buf, dst_buf, wei_buf, scratch;
  bool weights_packed = false;  // wei_buf holds the constant weights.
  PostOps manual_post;          // Epilogue run after the primitive (SlowPostOps).
  bool dense_dst = true;        // The call's Y slice is contiguous.
  bool has_bias = false;
};

// One oneDNN call: a slice of the convolution (intra-op tile) or all of it.
// Descriptors carry the full tensors' strides, so a tile reads and writes
// its slice of the kernel's plain X, W, B and Y in place.
struct ConvCall {
  Shape x, y, w;  // Slice dims (w in oneDNN order: [g,] O, I, k...).
  std::vector<int64_t> x_strides, y_strides, w_strides;
  std::vector<int64_t> pad_begin, pad_end;
  int64_t bias = 0;                                    // Bias values (0 = none).
  int64_t x_off = 0, y_off = 0, w_off = 0, b_off = 0;  // Element offsets.
};

struct ConvTile {
  ConvCall call;
  ConvPlan plan;
};
using TiledConv = std::vector<ConvTile>;

std::vector<int64_t> Spatial(const Shape& s) { return {s.begin() + 2, s.end()}; }

// Copies `part` (N, M, spatial...) into the leading corner of `full`, whose
// other cells get the bias (or 0).
void EmbedWithBias(const Tensor& part, const float* bias, Tensor* full) {
  int64_t ps[3] = {1, 1, 1}, fs[3] = {1, 1, 1};
  int off = 3 - (part.rank() - 2);
  for (int i = 2; i < part.rank(); ++i) {
    ps[off + i - 2] = part.dim(i);
    fs[off + i - 2] = full->dim(i);
  }
  int64_t m = part.dim(1), planes = part.dim(0) * m;
  int64_t pplane = ps[0] * ps[1] * ps[2], fplane = fs[0] * fs[1] * fs[2];
  for (int64_t p = 0; p < planes; ++p) {
    float* dst = full->data<float>() + p * fplane;
    std::fill_n(dst, fplane, bias != nullptr ? bias[p % m] : 0.f);
    const float* src = part.data<float>() + p * pplane;
    for (int64_t z = 0; z < ps[0]; ++z)
      for (int64_t y = 0; y < ps[1]; ++y)
        std::copy_n(src + (z * ps[1] + y) * ps[2], ps[2], dst + (z * fs[1] + y) * fs[2]);
  }
}

Status ConvTransposeWindow(const Node& node, const Shape& x, const Shape& k, ConvGeometry* g) {
  size_t r = k.size();
  Window& w = g->win;
  PX_ASSIGN_OR_RETURN(w, ComputeWindow(node, Spatial(x), k, false, true));
  std::vector<int64_t> adj = node.attr_ints("output_padding");
  if (adj.empty()) adj.assign(r, 0);
  std::vector<int64_t> os = node.attr_ints("output_shape");
  if (os.size() == r + 2) os.erase(os.begin(), os.begin() + 2);
  if (adj.size() != r || (!os.empty() && os.size() != r))
    return InvalidArgument(node.Describe() + ": output_padding/output_shape rank mismatch");
  std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  g->pad_end.assign(r, 0);
  g->deficit.assign(r, 0);
  w.out.assign(r, 0);
  for (size_t i = 0; i < r; ++i) {
    int64_t ext = (k[i] - 1) * w.dilation[i] + 1;
    int64_t natural = (w.in[i] - 1) * w.stride[i] + adj[i] + ext;
    if (!os.empty() || same) {
      int64_t target = !os.empty() ? os[i] : w.in[i] * w.stride[i];
      int64_t total = natural - target;  // May be negative: extra output gets bias only.
      int64_t half = total >= 0 ? total / 2 : -((-total) / 2);
      // SAME_LOWER puts the odd element at the start (ONNX spec).
      w.pad_begin[i] = auto_pad == "SAME_LOWER" ? total - half : half;
      w.pad_end[i] = total - w.pad_begin[i];
      if (w.pad_begin[i] < 0) {  // Keep the leading edge: push the surplus to the end.
        w.pad_end[i] += w.pad_begin[i];
        w.pad_begin[i] = 0;
      }
    } else if (auto_pad == "VALID") {
      w.pad_begin[i] = w.pad_end[i] = 0;
    }
    w.out[i] = natural - w.pad_begin[i] - w.pad_end[i];
    if (w.out[i] <= 0)
      return InvalidArgument(node.Describe() + ": output size " + std::to_string(w.out[i]) +
                             " in spatial dim " + std::to_string(i));
    g->pad_end[i] = std::max<int64_t>(0, w.pad_end[i] - adj[i]);
    g->deficit[i] = g->pad_end[i] - (w.pad_end[i] - adj[i]);
  }
  return Status::Ok();
}

// Validates shapes and computes the geometry for one (X, W) pair.
Result<ConvGeometry> MakeGeometry(const Node& node, bool transpose, const Shape& x,
                                  const Shape& w) {
  ConvGeometry g;
  g.x = x;
  g.w = w;
  int rank = static_cast<int>(x.size());
  if (rank < 3 || rank > 5)
    return Unsupported(node.Describe() + ": input rank " + std::to_string(rank) +
                       " (only 1-D, 2-D and 3-D convolutions are supported)");
  if (static_cast<int>(w.size()) != rank)
    return InvalidArgument(node.Describe() + ": weight shape " + ShapeToString(w) +
                           " does not match input shape " + ShapeToString(x));
  g.group = node.attr_int("group", 1);
  if (g.group <= 0) return InvalidArgument(node.Describe() + ": group must be > 0");
  g.in_channels = x[1];
  g.out_channels = transpose ? w[1] * g.group : w[0];
  int64_t w_in = transpose ? w[0] : w[1] * g.group;
  if (w_in != x[1] || g.out_channels % g.group != 0 || x[1] % g.group != 0)
    return InvalidArgument(node.Describe() + ": input " + ShapeToString(x) + ", weight " +
                           ShapeToString(w) + " and group " + std::to_string(g.group) +
                           " do not agree on channels");
  Shape k = Spatial(w);
  PX_ASSIGN_OR_RETURN(std::vector<int64_t> ks, KernelShapeAttr(node, rank - 2));
  if (!ks.empty() && ks != k)
    return InvalidArgument(node.Describe() + ": kernel_shape does not match weight " +
                           ShapeToString(w));
  if (transpose) {
    PX_RETURN_IF_ERROR(ConvTransposeWindow(node, x, k, &g));
  } else {
    PX_ASSIGN_OR_RETURN(g.win, ComputeWindow(node, Spatial(x), k, false, true));
    g.pad_end = g.win.pad_end;
    g.deficit.assign(k.size(), 0);
  }
  g.y = {x[0], g.out_channels};
  g.y.insert(g.y.end(), g.win.out.begin(), g.win.out.end());
  g.y_dnnl = g.y;
  for (size_t i = 0; i < k.size(); ++i) g.y_dnnl[i + 2] -= g.deficit[i];
  // oneDNN weights: [g,] OC/g, IC/g, k... over the ONNX bytes.
  int64_t oc = g.out_channels / g.group, ic = g.in_channels / g.group;
  int64_t ksize = NumElements(k);
  std::vector<int64_t> ks_strides = Strides(k);
  int64_t s_oc = transpose ? ksize : ic * ksize;
  int64_t s_ic = transpose ? oc * ksize : ksize;
  if (g.group > 1) {
    g.dnnl_w = {g.group, oc, ic};
    g.dnnl_w_strides = {oc * ic * ksize, s_oc, s_ic};
  } else {
    g.dnnl_w = {oc, ic};
    g.dnnl_w_strides = {s_oc, s_ic};
  }
  g.dnnl_w.insert(g.dnnl_w.end(), k.begin(), k.end());
  g.dnnl_w_strides.insert(g.dnnl_w_strides.end(), ks_strides.begin(), ks_strides.end());
  return g;
}

// Whether to let oneDNN choose blocked src/dst layouts (reordered inside the
// kernel) rather than run on plain NC[D]HW. Measured on PP-OCR-like layers
// (1 thread, AVX-512, reorders included): blocked wins 4-13x for 3x3 dense,
// depthwise and the 3-channel stem conv; plain wins ~2x for pointwise 1x1
// stride-1 convs, which oneDNN runs as a GEMM directly on NCHW.
//
// Fewer than 8 output channels stay plain: a blocked dst pads them to a full
// 16-channel block, 16x the compute and bytes for one channel. PP-OCRv4 det's
// last ConvTranspose (24 -> 1 channels, 2x2 stride 2, 320 -> 640): 7.7 ms
// blocked (jit:avx512_core plus reorders), 1.5 ms plain (gemm:jit), 1 thread.
bool PreferBlocked(const ConvGeometry& g) {
  if (g.out_channels < 8) return false;
  const Window& w = g.win;
  bool pointwise = g.group == 1;
  for (int i = 0; i < w.rank; ++i)
    pointwise = pointwise && w.kernel[i] == 1 && w.stride[i] == 1 && w.pad_begin[i] == 0 &&
                g.pad_end[i] == 0;
  return !pointwise;
}

// Completes `p` for primitive `pd` over `call`. Constant weights are packed
// once; `shared` (a tile's packed weights) is reused when its layout matches.
template <typename PD>
void FinishPlan(const PD& pd, const ConvCall& call, const float* const_w, const ConvPlan* shared,
                ConvPlan* p) {
  const dnnl::engine& eng = Engine();
  dnnl::stream& s = ThreadStream();
  memory::desc src_user = StridedDesc(call.x, call.x_strides);
  memory::desc dst_user = StridedDesc(call.y, call.y_strides);
  memory::desc wei_user = StridedDesc(call.w, call.w_strides);
  p->user_src = memory(src_user, eng, nullptr);
  p->user_dst = memory(dst_user, eng, nullptr);
  p->user_wei = memory(wei_user, eng, nullptr);
  if (pd.src_desc() != src_user) {
    p->src_buf = memory(pd.src_desc(), eng);
    p->src_reorder.emplace(dnnl::reorder::primitive_desc(eng, src_user, eng, pd.src_desc()));
  }
  if (pd.dst_desc() != dst_user) {
    p->dst_buf = memory(pd.dst_desc(), eng);
    p->dst_reorder.emplace(dnnl::reorder::primitive_desc(eng, pd.dst_desc(), eng, dst_user));
    p->res_reorder.emplace(dnnl::reorder::primitive_desc(eng, dst_user, eng, pd.dst_desc()));
  }
  if (pd.weights_desc() != wei_user) {
    if (const_w != nullptr && shared != nullptr && shared->weights_packed &&
        shared->wei_buf.get_desc() == pd.weights_desc()) {
      p->wei_buf = shared->wei_buf;  // Read-only from here on: safe to share.
      p->weights_packed = true;
    } else {
      p->wei_buf = memory(pd.weights_desc(), eng);
      p->wei_reorder.emplace(dnnl::reorder::primitive_desc(eng, wei_user, eng, pd.weights_desc()));
      if (const_w != nullptr) {  // Pack the constant weights once.
        p->user_wei.set_data_handle(const_cast<float*>(const_w + call.w_off));
        p->wei_reorder->execute(s, {{DNNL_ARG_FROM, p->user_wei}, {DNNL_ARG_TO, p->wei_buf}});
        s.wait();
        p->weights_packed = true;
      }
    }
  }
  p->scratch = memory(pd.scratchpad_desc(), eng);
  p->prim = dnnl::primitive(pd);
}

// True when `c`'s output slice is one contiguous run of memory.
bool DenseOutput(const ConvCall& c) {
  int64_t want = 1;
  std::vector<size_t> order(c.y.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return c.y_strides[a] < c.y_strides[b]; });
  for (size_t i : order) {
    if (c.y[i] == 1) continue;
    if (c.y_strides[i] != want) return false;
    want *= c.y[i];
  }
  return true;
}

// `post` is the fused epilogue (empty for plain Conv/ConvTranspose).
ConvPlan MakePlan(const ConvGeometry& g, const ConvCall& call, bool transpose, bool nhwc,
                  const float* const_w, const ConvPlan* shared, const PostOps& post) {
  using dnnl::algorithm;
  using dnnl::prop_kind;
  const Window& w = g.win;
  memory::dims strides = Dims(w.stride), pl = Dims(call.pad_begin), pr = Dims(call.pad_end);
  memory::dims dil(w.dilation.size());
  for (size_t i = 0; i < dil.size(); ++i) dil[i] = w.dilation[i] - 1;
  bool blocked = !nhwc && PreferBlocked(g);  // NHWC runs on the caller's exact strides.
  memory::desc src =
      blocked ? memory::desc(Dims(call.x), dt::f32, tag::any) : StridedDesc(call.x, call.x_strides);
  memory::desc dst =
      blocked ? memory::desc(Dims(call.y), dt::f32, tag::any) : StridedDesc(call.y, call.y_strides);
  memory::desc wei(Dims(call.w), dt::f32, tag::any);
  memory::desc bias = call.bias > 0 ? PlainDesc({call.bias}) : memory::desc();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  post.AppendTo(&attr);
  ConvPlan plan;
  plan.dense_dst = DenseOutput(call);
  plan.has_bias = call.bias > 0;
  if (plan.has_bias) plan.bias = memory(bias, Engine(), nullptr);
  if (transpose) {
    dnnl::deconvolution_forward::desc d(prop_kind::forward_inference,
                                        algorithm::deconvolution_direct, src, wei, bias, dst,
                                        strides, dil, pl, pr);
    FinishPlan(dnnl::deconvolution_forward::primitive_desc(d, attr, Engine()), call, const_w,
               shared, &plan);
  } else {
    dnnl::convolution_forward::desc d(prop_kind::forward_inference, algorithm::convolution_direct,
                                      src, wei, bias, dst, strides, dil, pl, pr);
    dnnl::convolution_forward::primitive_desc pd(d, attr, Engine());
    if (!post.empty() && SlowPostOps(pd.impl_info_str())) {
      dnnl::primitive_attr plain;
      plain.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      pd = dnnl::convolution_forward::primitive_desc(d, plain, Engine());
      plan.manual_post = post;
    }
    FinishPlan(pd, call, const_w, shared, &plan);
  }
  return plan;
}

// The whole convolution as one call; `nhwc` gives src/dst NHWC strides.
ConvCall WholeCall(const ConvGeometry& g, bool has_bias, bool nhwc) {
  ConvCall c;
  c.x = g.x;
  c.y = g.y_dnnl;
  c.w = g.dnnl_w;
  c.x_strides = nhwc ? NhwcStrides(c.x) : Strides(c.x);
  c.y_strides = nhwc ? NhwcStrides(c.y) : Strides(c.y);
  c.w_strides = g.dnnl_w_strides;
  c.pad_begin = g.win.pad_begin;
  c.pad_end = g.pad_end;
  c.bias = has_bias ? g.out_channels : 0;
  return c;
}

// Row bands of a blocked or NHWC ConvTranspose whose windows do not overlap
// along rows (kernel == stride, no dilation, padding or output padding):
// input rows [i0, i1) make exactly output rows [i0 * s, i1 * s). Others: the
// whole call.
std::vector<ConvCall> SplitUpsampling(const ConvGeometry& g, const ConvCall& whole, bool nhwc,
                                      int tiles) {
  const Window& w = g.win;
  const int64_t s = w.stride[0], rows = g.x[2];
  // Plain NCHW bands are strided views, which oneDNN's plain (gemm) deconv
  // runs on a reference path (~100x slower): split only blocked or NHWC ones.
  if (w.kernel[0] != s || w.dilation[0] != 1 || w.pad_begin[0] != 0 || g.pad_end[0] != 0 ||
      g.y_dnnl[2] != rows * s || !(nhwc || PreferBlocked(g)))
    return {whole};
  const int64_t n = std::min<int64_t>(tiles, rows / 2);
  if (n < 2) return {whole};
  std::vector<ConvCall> calls;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t i0 = rows * t / n, i1 = rows * (t + 1) / n;
    ConvCall c = whole;
    c.x[2] = i1 - i0;
    c.y[2] = (i1 - i0) * s;
    c.x_off = i0 * c.x_strides[2];
    c.y_off = i0 * s * c.y_strides[2];
    if (nhwc) {  // N = 1: dense NHWC bands, as oneDNN's fast kernels require.
      c.x_strides[0] = c.x[2] * c.x_strides[2];
      c.y_strides[0] = c.y[2] * c.y_strides[2];
    }
    calls.push_back(c);
  }
  return calls;
}

// Splits a convolution into `tiles` independent calls (Intra-op): pointwise
// convs (plain layout, a GEMM) by output-channel blocks, the others by rows of
// the first spatial dim, each row band reading its input rows plus halo with
// its own padding; ConvTranspose by SplitUpsampling. Returns the whole call
// when the conv is too small to split or has a shape the split does not cover
// (batch > 1, overlapping ConvTranspose windows). NHWC
// convs always split by row bands (a band is rows * W * C elements at an
// offset, strides unchanged).
std::vector<ConvCall> SplitConv(const ConvGeometry& g, bool transpose, bool has_bias, bool nhwc,
                                int tiles) {
  ConvCall whole = WholeCall(g, has_bias, nhwc);
  const Window& w = g.win;
  double flops = 2.0 * static_cast<double>(NumElements(g.y)) *
                 static_cast<double>(g.in_channels / g.group) *
                 static_cast<double>(NumElements(w.kernel));
  if (tiles <= 1 || g.x[0] != 1 || flops < 4e6) return {whole};
  if (transpose) return SplitUpsampling(g, whole, nhwc, tiles);
  std::vector<ConvCall> calls;
  if (!nhwc && !PreferBlocked(g)) {  // Pointwise: output-channel blocks of 16.
    const int64_t blocks = g.out_channels / 16;
    const int64_t n = std::min<int64_t>(tiles, blocks);
    if (n < 2 || g.out_channels % 16 != 0) return {whole};
    for (int64_t t = 0; t < n; ++t) {
      const int64_t o0 = blocks * t / n * 16, o1 = blocks * (t + 1) / n * 16;
      ConvCall c = whole;
      c.y[1] = c.w[0] = o1 - o0;
      c.y_off = o0 * c.y_strides[1];
      c.y_strides[0] = c.y[1] * c.y_strides[1];  // N = 1: keeps the slice dense.
      c.w_off = o0 * c.w_strides[0];
      c.b_off = o0;
      if (has_bias) c.bias = o1 - o0;
      calls.push_back(c);
    }
    return calls;
  }
  const int64_t out_rows = g.y[2], in_rows = g.x[2];
  const int64_t n = std::min<int64_t>(tiles, out_rows / 2);
  if (n < 2) return {whole};
  const int64_t s = w.stride[0], ext = (w.kernel[0] - 1) * w.dilation[0] + 1;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t o0 = out_rows * t / n, o1 = out_rows * (t + 1) / n;
    const int64_t first = o0 * s - w.pad_begin[0], last = (o1 - 1) * s - w.pad_begin[0] + ext;
    const int64_t i0 = std::max<int64_t>(0, first), i1 = std::min(in_rows, last);
    ConvCall c = whole;
    c.x[2] = i1 - i0;
    c.y[2] = o1 - o0;
    c.x_off = i0 * c.x_strides[2];
    c.y_off = o0 * c.y_strides[2];
    c.pad_begin[0] = i0 - first;
    c.pad_end[0] = last - i1;
    if (nhwc) {  // N = 1: a dense NHWC band, which oneDNN's fast kernels require.
      c.x_strides[0] = c.x[2] * c.x_strides[2];
      c.y_strides[0] = c.y[2] * c.y_strides[2];
    }
    if (c.x[2] <= 0 || (c.x[2] + c.pad_begin[0] + c.pad_end[0] - ext) / s + 1 != c.y[2])
      return {whole};  // Geometry the band split cannot express.
    calls.push_back(c);
  }
  return calls;
}

TiledConv MakeTiledPlan(const ConvGeometry& g, bool transpose, bool has_bias, bool nhwc,
                        const float* const_w, int tiles, const PostOps& post) {
  TiledConv tiled;
  for (const ConvCall& call : SplitConv(g, transpose, has_bias, nhwc, tiles)) {
    const ConvPlan* shared = tiled.empty() ? nullptr : &tiled.front().plan;
    ConvPlan plan = MakePlan(g, call, transpose, nhwc, const_w, shared, post);
    if (!plan.manual_post.empty() && !DenseOutput(call)) {  // C++ epilogues need dense tiles.
      ConvCall whole = WholeCall(g, has_bias, nhwc);
      tiled.clear();
      tiled.push_back(ConvTile{whole, MakePlan(g, whole, transpose, nhwc, const_w, nullptr, post)});
      return tiled;
    }
    tiled.push_back(ConvTile{call, std::move(plan)});
  }
  return tiled;
}

// Places the residual `z` (laid out like y) where the sum post-op reads it.
void CopyResidual(ConvPlan& p, const float* z, float* y) {
  dnnl::stream& s = ThreadStream();
  const memory::desc& ud = p.user_dst.get_desc();
  if (p.res_reorder) {
    p.res_reorder->execute(s, {{DNNL_ARG_FROM, Wrap(ud, z)}, {DNNL_ARG_TO, p.dst_buf}});
  } else if (p.dense_dst) {  // The primitive writes the user layout.
    std::memcpy(y, z, ud.get_size());
  } else {  // A strided tile (NCHW row band): copy plane by plane.
    dnnl::memory from = Wrap(ud, z), to = Wrap(ud, y);
    dnnl::reorder(from, to).execute(s, from, to);
  }
}

// `z` is the residual of a fused sum post-op (laid out like y), else nullptr;
// it never aliases y (the executor gives every output fresh storage).
void Execute(ConvPlan& p, const float* x, const float* w, const float* b, const float* z,
             float* y) {
  dnnl::stream& s = ThreadStream();
  p.user_src.set_data_handle(const_cast<float*>(x));
  p.user_dst.set_data_handle(y);
  memory src = p.user_src, dst = p.user_dst, wei = p.user_wei;
  if (p.src_reorder) {
    p.src_reorder->execute(s, {{DNNL_ARG_FROM, p.user_src}, {DNNL_ARG_TO, p.src_buf}});
    src = p.src_buf;
  }
  if (p.weights_packed) {
    wei = p.wei_buf;
  } else {
    p.user_wei.set_data_handle(const_cast<float*>(w));
    if (p.wei_reorder) {
      p.wei_reorder->execute(s, {{DNNL_ARG_FROM, p.user_wei}, {DNNL_ARG_TO, p.wei_buf}});
      wei = p.wei_buf;
    }
  }
  if (p.dst_reorder) dst = p.dst_buf;
  const bool manual = !p.manual_post.empty();
  if (z != nullptr && !manual) CopyResidual(p, z, y);  // The sum post-op adds what dst holds.
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src},
                                          {DNNL_ARG_WEIGHTS, wei},
                                          {DNNL_ARG_DST, dst},
                                          {DNNL_ARG_SCRATCHPAD, p.scratch}};
  if (p.has_bias) {
    p.bias.set_data_handle(const_cast<float*>(b));
    args[DNNL_ARG_BIAS] = p.bias;
  }
  p.prim.execute(s, args);
  if (p.dst_reorder)
    p.dst_reorder->execute(s, {{DNNL_ARG_FROM, p.dst_buf}, {DNNL_ARG_TO, p.user_dst}});
  s.wait();
  if (manual) {  // MakeTiledPlan keeps such tiles dense.
    const memory::dims d = p.user_dst.get_desc().dims();
    int64_t n = 1;
    for (int64_t v : d) n *= v;
    p.manual_post.ApplyInPlace(y, z, n);
  }
}

// The output shape of a fused op whose own result has shape `y`, given its
// residual `z` (nullptr when none): y, or the broadcast of y and z's shapes.
Result<Shape> FusedOutputShape(const KernelContext& ctx, const Shape& y, const Tensor* z) {
  if (z == nullptr) return y;
  if (z->dtype() != DType::kFloat32) return ctx.Error("residual Z must be float32");
  if (z->shape() == y) return y;
  Result<Shape> s = BroadcastShapes(y, z->shape());
  if (!s.ok()) return ctx.Error("residual Z: " + s.status().message());
  return *s;
}

class ConvKernel final : public Kernel {
 public:
  ConvKernel(bool transpose, bool nhwc, bool fused)
      : transpose_(transpose), nhwc_(nhwc), fused_(fused) {}

  // `channels_last` (com.parallax ops only): X and Y (and Z) are NHWC when
  // the node says so. `fused`: com.parallax FusedConv, Conv's inputs and
  // attributes plus an optional residual Z (index 3, Y's shape) and an
  // epilogue (ReadPostOps); Y = epilogue(conv(X, W) + B, Z), float32 only.
  static Result<std::unique_ptr<Kernel>> Create(const KernelInit& init, bool transpose,
                                                bool channels_last = false, bool fused = false) {
    bool nhwc = channels_last && init.node.attr_int("channels_last", 0) != 0;
    auto k = std::make_unique<ConvKernel>(transpose, nhwc, fused);
    if (init.num_inputs() < 2) return init.Error("expects at least 2 inputs (X, W)");
    if (fused) {
      PX_ASSIGN_OR_RETURN(k->post_, ReadPostOps(init.node, init.has_input(3)));
    }
    if (const Tensor* w = init.constant_input(1); w != nullptr && IsFloatLike(w->dtype())) {
      PX_ASSIGN_OR_RETURN(k->const_w_, ToFloat32(*w));
      k->const_w_ = k->const_w_.Detached();  // Shares owned constants.
    }
    if (const Tensor* b = init.constant_input(2); b != nullptr && IsFloatLike(b->dtype())) {
      PX_ASSIGN_OR_RETURN(k->const_b_, ToFloat32(*b));
      k->const_b_ = k->const_b_.Detached();  // Shares owned constants.
    }
    return std::unique_ptr<Kernel>(std::move(k));
  }

  Status Run(KernelContext& ctx) override {
    return Guard(ctx.node(), [&] { return RunImpl(ctx); });
  }

 private:
  Status RunImpl(KernelContext& ctx);

  bool transpose_;
  bool nhwc_;
  bool fused_;
  PostOps post_;  // Fused epilogue (FusedConv only).
  Tensor const_w_, const_b_;
  PlanCache<TiledConv> cache_;
};

Status ConvKernel::RunImpl(KernelContext& ctx) {
  PrepareThread();
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("X and W are required");
  const Tensor& xin = ctx.input(0);
  DType dtype = xin.dtype();
  if (!IsFloatLike(dtype) || ctx.input(1).dtype() != dtype)
    return ctx.Error("X and W must be the same float type, got " + std::string(DTypeName(dtype)) +
                     " and " + std::string(DTypeName(ctx.input(1).dtype())));
  if (fused_ && dtype != DType::kFloat32) return ctx.Error("FusedConv supports float32 only");
  PX_ASSIGN_OR_RETURN(Tensor x, ToFloat32(xin));
  Tensor w = const_w_;
  if (!w.defined()) {
    PX_ASSIGN_OR_RETURN(w, ToFloat32(ctx.input(1)));
  }
  if (nhwc_ && (x.rank() != 4 || w.rank() != 4))
    return ctx.Error("channels_last needs 4-D X and W, got " + ShapeToString(x.shape()));
  const Shape xs = nhwc_ ? NhwcToNchw(x.shape()) : x.shape();
  PX_ASSIGN_OR_RETURN(ConvGeometry g, MakeGeometry(ctx.node(), transpose_, xs, w.shape()));
  bool has_bias = ctx.has_input(2);
  Tensor b = const_b_;
  if (has_bias && !b.defined()) {
    if (ctx.input(2).dtype() != dtype) return ctx.Error("B must have the type of X");
    PX_ASSIGN_OR_RETURN(b, ToFloat32(ctx.input(2)));
  }
  if (has_bias && b.numel() != g.out_channels)
    return ctx.Error("bias has " + std::to_string(b.numel()) + " values, expected " +
                     std::to_string(g.out_channels));
  const Shape ys = nhwc_ ? NchwToNhwc(g.y) : g.y;  // Physical output shape.
  const Tensor* z = fused_ && ctx.has_input(3) ? &ctx.input(3) : nullptr;
  // A residual of another shape broadcasts (fusion could not prove the shapes
  // equal): run the plain conv and apply the epilogue in C++.
  const bool broadcast_z = z != nullptr && z->shape() != ys;
  PX_ASSIGN_OR_RETURN(Shape out_shape, FusedOutputShape(ctx, ys, z));
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dtype, out_shape));
  if (out->numel() == 0) return Status::Ok();
  if (fused_ && (x.numel() == 0 || w.numel() == 0))
    return Unsupported(ctx.node().Describe() + ": empty reduction in a fused conv");
  if (x.numel() == 0 || w.numel() == 0) {  // No reduction: output is the bias.
    float* o = out->data<float>();
    std::vector<float> tmp;
    if (dtype != DType::kFloat32) tmp.resize(static_cast<size_t>(out->numel()));
    if (!tmp.empty()) o = tmp.data();
    int64_t sp = out->numel() / (g.y[0] * g.y[1]);
    for (int64_t i = 0; i < out->numel(); ++i) {
      int64_t c = nhwc_ ? i % g.y[1] : i / sp % g.y[1];
      o[i] = has_bias ? b.data<float>()[c] : 0.f;
    }
    StoreFromFloat32(o, out);
    return Status::Ok();
  }
  std::vector<int64_t> key = g.x;
  if (!const_w_.defined()) key.insert(key.end(), g.w.begin(), g.w.end());
  key.push_back(has_bias ? 1 : 0);
  key.push_back(ctx.intra_op().threads);
  key.push_back(broadcast_z ? 1 : 0);
  // Pads too: a memory split's pieces share this kernel with their own pads.
  key.insert(key.end(), g.win.pad_begin.begin(), g.win.pad_begin.end());
  key.insert(key.end(), g.pad_end.begin(), g.pad_end.end());
  TiledConv* plan = cache_.Find(key);
  if (plan == nullptr) {
    std::lock_guard<std::mutex> lock(CreationMutex());
    plan =
        cache_.Insert(key, MakeTiledPlan(g, transpose_, has_bias, nhwc_,
                                         const_w_.defined() ? const_w_.data<float>() : nullptr,
                                         ctx.intra_op().threads, broadcast_z ? PostOps{} : post_));
  }
  bool embed = g.y_dnnl != g.y;  // Never for NHWC (ConvTranspose only).
  Tensor y = dtype == DType::kFloat32 && !embed && !broadcast_z
                 ? *out
                 : Tensor::Uninitialized(DType::kFloat32, embed ? g.y_dnnl : ys);
  const float* pz = z != nullptr && !broadcast_z ? z->data<float>() : nullptr;
  const float* px = x.data<float>();
  const float* pw = w.data<float>();
  const float* pb = has_bias ? b.data<float>() : nullptr;
  float* py = y.data<float>();
  PX_RETURN_IF_ERROR(
      RunTiles(ctx.node(), ctx.intra_op(), static_cast<int64_t>(plan->size()), [&](int64_t i) {
        ConvTile& t = (*plan)[static_cast<size_t>(i)];
        const ConvCall& c = t.call;
        Execute(t.plan, px + c.x_off, pw + c.w_off, pb != nullptr ? pb + c.b_off : nullptr,
                pz != nullptr ? pz + c.y_off : nullptr, py + c.y_off);
        return Status::Ok();
      }));
  if (broadcast_z) {
    ApplyBroadcast(post_, y, *z, out);
    return Status::Ok();
  }
  if (embed) {
    Tensor full = dtype == DType::kFloat32 ? *out : Tensor::Uninitialized(DType::kFloat32, g.y);
    EmbedWithBias(y, has_bias ? b.data<float>() : nullptr, &full);
    y = full;
  }
  if (dtype != DType::kFloat32) StoreFromFloat32(y.data<float>(), out);
  return Status::Ok();
}

}  // namespace

void RegisterConvOps(OpRegistry& r) {
  r.Register("", "Conv", [](const KernelInit& init) { return ConvKernel::Create(init, false); });
  r.Register("", "ConvTranspose",
             [](const KernelInit& init) { return ConvKernel::Create(init, true); });
  r.Register("com.parallax", "Conv",
             [](const KernelInit& init) { return ConvKernel::Create(init, false, true); });
  r.Register("com.parallax", "FusedConv",
             [](const KernelInit& init) { return ConvKernel::Create(init, false, true, true); });
}

}  // namespace parallax::nn
