// Conv and MatMul cases: shapes of real nodes of the zoo and real models
// (`parallax inspect`, and the heaviest nodes of `parallax bench --profile`).
// Weights and biases are graph constants, as in the models.
#include <algorithm>
#include <string>
#include <utility>

#include "kernel_bench.h"
#include "kernel_test_util.h"

namespace parallax::micro {
namespace {

using testing::IntAttr;
using testing::IntsAttr;

struct ConvSpec {
  int64_t c_in = 0, h = 0, w = 0;  // Input [1, c_in, h, w].
  int64_t c_out = 0, k = 0;        // Weights [c_out, c_in / group, k, k].
  int64_t stride = 1, group = 1;
  int64_t pad = -1;  // Per side; -1: k / 2 (same-size output at stride 1).
  bool bias = true;
  int opset = 17;
};

// A 2-D Conv node with constant weights (and bias); flops counts
// multiply-adds as two operations.
KernelCase ConvCase(std::string name, const ConvSpec& s) {
  const int64_t pad = s.pad >= 0 ? s.pad : s.k / 2;
  const int64_t oh = (s.h + 2 * pad - s.k) / s.stride + 1;
  const int64_t ow = (s.w + 2 * pad - s.k) / s.stride + 1;
  KernelCase c;
  c.name = std::move(name);
  c.op_type = "Conv";
  c.opset = s.opset;
  c.inputs.push_back({{1, s.c_in, s.h, s.w}});
  c.inputs.push_back({{s.c_out, s.c_in / s.group, s.k, s.k}, true, -0.1f, 0.1f});
  if (s.bias) c.inputs.push_back({{s.c_out}, true, -0.1f, 0.1f});
  c.attrs["kernel_shape"] = IntsAttr({s.k, s.k});
  c.attrs["strides"] = IntsAttr({s.stride, s.stride});
  c.attrs["pads"] = IntsAttr({pad, pad, pad, pad});
  c.attrs["group"] = IntAttr(s.group);
  c.flops = 2.0 * static_cast<double>(s.c_out * oh * ow * (s.c_in / s.group) * s.k * s.k);
  return c;
}

// A MatMul node A [..., M, K] x B [..., K, N]; B is a graph constant when
// `b_constant` (a weight). Batch dims of A and B broadcast.
KernelCase MatMulCase(std::string name, const Shape& a, const Shape& b, bool b_constant) {
  KernelCase c;
  c.name = std::move(name);
  c.op_type = "MatMul";
  c.inputs.push_back({a});
  c.inputs.push_back({b, b_constant, -0.1f, 0.1f});
  const int64_t m = a[a.size() - 2], k = a.back(), n = b.back();
  // Broadcast batch: dims aligned from the right, excluding the matrix dims.
  const size_t ra = a.size() - 2, rb = b.size() - 2, r = std::max(ra, rb);
  double batch = 1;
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i < r - ra ? 1 : a[i - (r - ra)];
    const int64_t db = i < r - rb ? 1 : b[i - (r - rb)];
    batch *= static_cast<double>(std::max(da, db));
  }
  c.flops = 2.0 * batch * static_cast<double>(m * n * k);
  return c;
}

}  // namespace

std::vector<KernelCase> NnCases() {
  std::vector<KernelCase> cases;
  // yolov8n (opset 17) at 640x640; Conv+BatchNorm exported as Conv with bias.
  // /b0/conv: the stem.
  cases.push_back(ConvCase("Conv/yolov8n_b0_stem_3to16_k3s2_640x640",
                           {.c_in = 3, .h = 640, .w = 640, .c_out = 16, .k = 3, .stride = 2}));
  // /detect/cv3.0/cv3.0.1/conv: the heaviest Conv of the model (P3 class branch).
  cases.push_back(ConvCase("Conv/yolov8n_detect_cv3.0.1_80to80_k3_80x80",
                           {.c_in = 80, .h = 80, .w = 80, .c_out = 80, .k = 3}));
  // /b4/m.1/cv2/conv: a backbone C2f bottleneck 3x3.
  cases.push_back(ConvCase("Conv/yolov8n_b4_m.1_cv2_32to32_k3_80x80",
                           {.c_in = 32, .h = 80, .w = 80, .c_out = 32, .k = 3}));
  // /b4/cv2/conv: the C2f output 1x1 (concat of 4 x 32 channels).
  cases.push_back(ConvCase("Conv/yolov8n_b4_cv2_128to64_k1_80x80",
                           {.c_in = 128, .h = 80, .w = 80, .c_out = 64, .k = 1}));
  // ppocr_v4_det (opset 11) at 1x3x640x640.
  // p2o.Conv.1: depthwise 3x3 after the stem.
  cases.push_back(
      ConvCase("Conv/ppocr_v4_det_conv1_depthwise16_k3_320x320",
               {.c_in = 16, .h = 320, .w = 320, .c_out = 16, .k = 3, .group = 16, .opset = 11}));
  // p2o.Conv.13: depthwise 5x5 at 1/16.
  cases.push_back(
      ConvCase("Conv/ppocr_v4_det_conv13_depthwise192_k5_40x40",
               {.c_in = 192, .h = 40, .w = 40, .c_out = 192, .k = 5, .group = 192, .opset = 11}));
  // p2o.Conv.58: the heaviest Conv of the model (neck, no bias).
  cases.push_back(
      ConvCase("Conv/ppocr_v4_det_conv58_96to24_k3_160x160",
               {.c_in = 96, .h = 160, .w = 160, .c_out = 24, .k = 3, .bias = false, .opset = 11}));

  // whisper_tiny_encoder (opset 17): d 384, 6 heads, 1500 frames.
  cases.push_back(
      MatMulCase("MatMul/whisper_enc_mlp0_1500x384x1536", {1, 1500, 384}, {384, 1536}, true));
  cases.push_back(MatMulCase("MatMul/whisper_enc_qk_6x1500x64x1500", {1, 6, 1500, 64},
                             {1, 6, 64, 1500}, false));
  cases.push_back(MatMulCase("MatMul/whisper_enc_pv_6x1500x1500x64", {1, 6, 1500, 1500},
                             {1, 6, 1500, 64}, false));
  // distilbert_sst2 (opset 17) at sequence length 32: q/k/v/out projections.
  cases.push_back(MatMulCase("MatMul/distilbert_qkv_32x768x768", {1, 32, 768}, {768, 768}, true));
  // Its MLP at 32 tokens: expansion and projection (K > N: intra-op tiles split
  // rows, not columns).
  cases.push_back(
      MatMulCase("MatMul/distilbert_ffn_up_32x768x3072", {1, 32, 768}, {768, 3072}, true));
  cases.push_back(
      MatMulCase("MatMul/distilbert_ffn_down_32x3072x768", {1, 32, 3072}, {3072, 768}, true));
  // clip_text (32 tokens): the MLP expansion, its hottest node.
  cases.push_back(MatMulCase("MatMul/clip_fc_32x512x2048", {1, 32, 512}, {512, 2048}, true));
  // whisper_tiny_decoder: one token through the MLP (M = 1).
  cases.push_back(MatMulCase("MatMul/whisper_dec_mlp0_1x384x1536", {1, 1, 384}, {384, 1536}, true));
  // A greedy step without a KV cache: the prefix of 12 tokens through the MLP.
  cases.push_back(
      MatMulCase("MatMul/whisper_dec_mlp0_12x384x1536", {1, 12, 384}, {384, 1536}, true));
  // The tied vocabulary projection W [51865, 384] x h [384, 1]: the constant is
  // the left operand (an 80 MB GEMV, memory-bound; most of a decoder step).
  {
    KernelCase c =
        MatMulCase("MatMul/whisper_dec_logits_51865x384x1", {51865, 384}, {384, 1}, false);
    c.inputs[0].constant = true;
    cases.push_back(std::move(c));
  }
  return cases;
}

}  // namespace parallax::micro
