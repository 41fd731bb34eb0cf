// Elementwise and normalisation cases: the heaviest non-GEMM nodes of the zoo
// (`parallax bench --profile`). Memory-bound, so they report items/s and
// bytes/s (non-constant inputs and outputs once each).
#include <string>
#include <utility>

#include "kernel_bench.h"
#include "kernel_test_util.h"

namespace parallax::micro {
namespace {

using testing::FloatAttr;
using testing::IntAttr;

KernelCase Elementwise(std::string name, std::string op, std::vector<InputSpec> inputs) {
  KernelCase c;
  c.name = std::move(name);
  c.op_type = std::move(op);
  c.inputs = std::move(inputs);
  c.items = static_cast<double>(NumElements(c.inputs[0].shape));
  return c;
}

}  // namespace

std::vector<KernelCase> ElementwiseCases() {
  std::vector<KernelCase> cases;
  // yolov8n /b0/act: SiLU = Sigmoid then Mul, on the stem output (the
  // model's heaviest node is this Sigmoid).
  const Shape stem = {1, 16, 320, 320};
  cases.push_back(Elementwise("Sigmoid/yolov8n_b0_act_16x320x320", "Sigmoid", {{stem}}));
  cases.push_back(Elementwise("Mul/yolov8n_b0_act_16x320x320", "Mul", {{stem}, {stem}}));
  // whisper_tiny_encoder /blocks.0/mlp/mlp.0/Add: bias broadcast over rows.
  cases.push_back(Elementwise("Add/whisper_enc_mlp0_bias_1500x1536+1536", "Add",
                              {{{1, 1500, 1536}}, {{1536}, true}}));
  // whisper_tiny_encoder /blocks.0/attn/Softmax: 6 x 1500 rows of 1500.
  KernelCase softmax =
      Elementwise("Softmax/whisper_enc_attn_6x1500x1500", "Softmax", {{{1, 6, 1500, 1500}}});
  softmax.attrs["axis"] = IntAttr(-1);
  cases.push_back(std::move(softmax));
  // whisper_tiny_encoder /blocks.0/attn_ln: over d = 384, constant scale/bias.
  KernelCase ln =
      Elementwise("LayerNormalization/whisper_enc_attn_ln_1500x384", "LayerNormalization",
                  {{{1, 1500, 384}}, {{384}, true, 0.5f, 1.5f}, {{384}, true}});
  ln.attrs["axis"] = IntAttr(-1);
  ln.attrs["epsilon"] = FloatAttr(1e-5f);
  cases.push_back(std::move(ln));
  // ppocr_v4_det p2o.GlobalAveragePool.10 (an SE block's squeeze), channels
  // last after the layout pass: the mean over H and W of [1, 160, 160, 96].
  KernelCase pool = Elementwise("ReduceMean/ppocr_v4_det_se_pool_nhwc_160x160x96", "ReduceMean",
                                {{{1, 160, 160, 96}}});
  pool.attrs["axes"] = testing::IntsAttr({1, 2});
  pool.attrs["keepdims"] = IntAttr(1);
  cases.push_back(std::move(pool));
  // ppocr_v4_det p2o.BatchNormalization.2 (after a residual Add, so no conv
  // to fold it into): 24 channels of 160 x 160.
  cases.push_back(Elementwise("BatchNormalization/ppocr_v4_det_bn2_24x160x160",
                              "BatchNormalization",
                              {{{1, 24, 160, 160}},
                               {{24}, true, 0.5f, 1.5f},
                               {{24}, true},
                               {{24}, true},
                               {{24}, true, 0.5f, 1.5f}}));
  return cases;
}

}  // namespace parallax::micro
