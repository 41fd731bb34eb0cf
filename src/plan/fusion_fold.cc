// Folds of per-channel affine ops into a preceding Conv / ConvTranspose's
// constant weights and bias: BatchNormalization, and Mul / Add by
// per-channel or scalar constants (contracts in plan/fusion.h).
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "plan/fusion.h"
#include "plan/fusion_util.h"

namespace parallax {
namespace {

using namespace fusion;  // NOLINT: the pass helpers.

// y * scale[o] + shift[o] per output channel o.
struct ChannelAffine {
  std::vector<double> scale, shift;
};

// Output channels of a Conv / ConvTranspose with constant weights `w`.
int64_t OutChannels(const Node& conv, const Tensor& w) {
  return Is(conv, "Conv") ? w.dim(0) : w.dim(1) * conv.attr_int("group", 1);
}

// The BN as a channel affine: scale / sqrt(var + eps), bias - mean * that.
std::optional<ChannelAffine> BatchNormAffine(const Graph& g, const Node& bn, ValueId y,
                                             int64_t oc) {
  if (bn.inputs.size() != 5 || bn.inputs[0] != y) return std::nullopt;
  for (size_t i = 1; i < bn.outputs.size(); ++i)
    if (bn.outputs[i] != kNoValue) return std::nullopt;  // Training statistics.
  if (bn.opset >= 14 && bn.attr_int("training_mode", 0) != 0) return std::nullopt;
  if (bn.opset < 9 && bn.attr_int("spatial", 1) == 0) return std::nullopt;
  const Tensor* p[4];
  for (size_t i = 0; i < 4; ++i) {
    p[i] = FloatConstant(g, bn.inputs[i + 1]);
    if (p[i] == nullptr || p[i]->numel() != oc) return std::nullopt;
  }
  const double eps = bn.attr_float("epsilon", 1e-5f);
  ChannelAffine a;
  for (int64_t o = 0; o < oc; ++o) {
    const double s = p[0]->data<float>()[o] / std::sqrt(double{p[3]->data<float>()[o]} + eps);
    a.scale.push_back(s);
    a.shift.push_back(p[1]->data<float>()[o] - p[2]->data<float>()[o] * s);
  }
  return a;
}

// Mul / Add of `y` (rank `rank`, `oc` channels on axis 1) by a float32
// constant that is scalar or varies along the channel axis only.
std::optional<ChannelAffine> ConstantAffine(const Graph& g, const Node& n, ValueId y, size_t rank,
                                            int64_t oc) {
  const Tensor* c = FloatConstant(g, OtherInput(n, y));
  if (c == nullptr || static_cast<size_t>(c->rank()) > rank) return std::nullopt;
  const size_t off = rank - static_cast<size_t>(c->rank());
  for (int i = 0; i < c->rank(); ++i) {
    const int64_t d = c->dim(i);
    if (d != 1 && !(off + static_cast<size_t>(i) == 1 && d == oc)) return std::nullopt;
  }
  ChannelAffine a;
  const bool mul = Is(n, "Mul");
  for (int64_t o = 0; o < oc; ++o) {
    const double v = c->data<float>()[c->numel() == 1 ? 0 : o];
    a.scale.push_back(mul ? v : 1.0);
    a.shift.push_back(mul ? 0.0 : v);
  }
  return a;
}

// New W, B for conv(x) * scale + shift; B is new even when the conv had none.
void FoldInto(Graph& g, const ChannelAffine& a, const std::string& name, Node* conv) {
  const Tensor& w = *FloatConstant(g, conv->inputs[1]);
  const Tensor* b = conv->inputs.size() > 2 ? FloatConstant(g, conv->inputs[2]) : nullptr;
  const int64_t oc = static_cast<int64_t>(a.scale.size());
  Tensor nw = Tensor::Uninitialized(DType::kFloat32, w.shape());
  Tensor nb = Tensor::Uninitialized(DType::kFloat32, {oc});
  // Conv W is [OC, IC/g, k...]; ConvTranspose W is [IC, OC/g, k...] with
  // input channel i in group i / (IC/g).
  const bool transpose = Is(*conv, "ConvTranspose");
  const int64_t rows = w.dim(0), cols = w.dim(1), k = w.numel() / (rows * cols);
  const int64_t per_group_in = transpose ? rows / conv->attr_int("group", 1) : 1;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t o = transpose ? (r / per_group_in) * cols + c : r;
      const float* src = w.data<float>() + (r * cols + c) * k;
      float* dst = nw.data<float>() + (r * cols + c) * k;
      for (int64_t j = 0; j < k; ++j) dst[j] = static_cast<float>(src[j] * a.scale[o]);
    }
  for (int64_t o = 0; o < oc; ++o)
    nb.data<float>()[o] =
        static_cast<float>((b != nullptr ? b->data<float>()[o] : 0.0) * a.scale[o] + a.shift[o]);
  conv->inputs.resize(3, kNoValue);
  conv->inputs[1] = g.AddConstant(name + "/folded_W", std::move(nw));
  conv->inputs[2] = g.AddConstant(name + "/folded_B", std::move(nb));
}

// A Conv / ConvTranspose whose weights (and bias, if any) are float32
// constants that can absorb a channel affine; returns its output channels.
std::optional<int64_t> FoldableConv(const Graph& g, const Node& conv) {
  if (!(Is(conv, "Conv") || Is(conv, "ConvTranspose")) || conv.outputs.size() != 1 ||
      conv.inputs.size() < 2 || !IsFloat32(g, conv.outputs[0]))
    return std::nullopt;
  const Tensor* w = FloatConstant(g, conv.inputs[1]);
  if (w == nullptr || w->rank() < 3 || w->numel() == 0) return std::nullopt;
  const int64_t oc = OutChannels(conv, *w);
  if (conv.inputs.size() > 2 && conv.inputs[2] != kNoValue) {
    const Tensor* b = FloatConstant(g, conv.inputs[2]);
    if (b == nullptr || b->numel() != oc) return std::nullopt;
  }
  // oneDNN 2.6 adds a deconvolution's bias in a slow separate pass (7x the
  // deconvolution on PP-OCRv4's head), so a ConvTranspose must have one already.
  if (Is(conv, "ConvTranspose") && (w->dim(0) % conv.attr_int("group", 1) != 0 ||
                                    conv.inputs.size() < 3 || conv.inputs[2] == kNoValue))
    return std::nullopt;
  return oc;
}

// One round: each foldable conv absorbs the BN (`bn` true) or the one
// Mul / Add right after it.
int64_t FoldOnce(Graph& g, bool bn) {
  GraphEditor ed(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const NodeId id = static_cast<NodeId>(i);
    std::optional<int64_t> oc = FoldableConv(g, g.nodes[i]);
    if (ed.removed(id) || !oc) continue;
    const ValueId y = g.nodes[i].outputs[0];
    const size_t rank = static_cast<size_t>(FloatConstant(g, g.nodes[i].inputs[1])->rank());
    Pattern p(ed, id);
    std::optional<ChannelAffine> a;
    NodeId next = -1;
    if (bn) {
      next = p.SoleConsumer(y, "BatchNormalization");
      if (next >= 0) a = BatchNormAffine(g, g.nodes[static_cast<size_t>(next)], y, *oc);
    } else {
      for (const char* op : {"Mul", "Add"}) {
        Pattern q = p;
        if ((next = q.SoleConsumer(y, op)) < 0) continue;
        a = ConstantAffine(g, g.nodes[static_cast<size_t>(next)], y, rank, *oc);
        p = q;
        break;
      }
    }
    if (!a) continue;
    Node fused = g.nodes[i];
    fused.outputs = {g.nodes[static_cast<size_t>(next)].outputs[0]};
    FoldInto(g, *a, g.nodes[static_cast<size_t>(next)].name, &fused);
    ed.Replace(p.nodes(), std::move(fused));
  }
  return ed.Commit();
}

int64_t FoldBatchNormOnce(Graph& g) { return FoldOnce(g, true); }
int64_t FoldAffineOnce(Graph& g) { return FoldOnce(g, false); }

}  // namespace

int64_t FuseConvBatchNorm(Graph& g) { return fusion::ForEachGraph(g, FoldBatchNormOnce); }

int64_t FuseConvAffine(Graph& g) {
  int64_t total = 0;
  while (int64_t n = fusion::ForEachGraph(g, FoldAffineOnce)) total += n;
  return total;
}

}  // namespace parallax
