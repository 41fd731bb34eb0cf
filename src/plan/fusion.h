// Load-time fusions: each pass rewrites a small pattern of nodes into one
// node that computes the same function without writing and re-reading the
// intermediate tensors.
//
// Contract of every pass: it fires only when each intermediate value of the
// pattern is read by pattern nodes alone and is not a graph output, the data
// is float32, and the constants and static shapes make the rewrite exact up
// to float rounding. The fused node writes the pattern's final output value
// (same id, name and value info) and takes the last pattern node's place in
// the topological order. Passes recurse into subgraphs (If/Loop/Scan
// bodies) and return how many patterns they rewrote. Replaced constants are
// new values; constants shared with other nodes are never modified.
//
// Fused ops live in the internal domain "com.parallax":
//   FusedConv(X, W, [B], [Z])      Conv attributes plus the epilogue below.
//   FusedMatMul(A, B, [bias], [Z]) A [..., K] x B [K, N] + bias (N values).
//   ScaledMatMul(A, B)             alpha (float attribute) * MatMul(A, B),
//                                  any float32 A and B (batched, broadcast).
// Epilogue attributes: `activation` (string) with `activation_params`
// (floats), `sum_after_activation` (int) and `linear` ([alpha, beta]):
//   Y = alpha * act(op + Z) + beta, or alpha * (act(op) + Z) + beta when
//   sum_after_activation is 1 (absent parts are identities).
// Z is a residual added by oneDNN's sum post-op; when the fusion could not
// prove Z has the op's shape (symbolic dims) the kernel broadcasts it.
// Activations: Relu, LeakyRelu(alpha), Clip(min, max), HardSigmoid(alpha,
// beta), HardSwish, Sigmoid, Swish(alpha) = x * sigmoid(alpha x), Tanh, Gelu
// (erf), GeluTanh. Patterns that map to standard ops produce them:
// HardSwish (opset 14), Gelu (opset 20), LayerNormalization (opset 17),
// Softmax (opset 13).
#ifndef PARALLAX_PLAN_FUSION_H_
#define PARALLAX_PLAN_FUSION_H_

#include <cstdint>
#include <map>
#include <string>

#include "graph/graph.h"

namespace parallax {

// Conv / ConvTranspose (constant float32 W, optional constant B) followed by
// an inference BatchNormalization with constant parameters: folds the BN
// into new W, B.
int64_t FuseConvBatchNorm(Graph& g);
// Conv / ConvTranspose as above followed by Mul or Add of a float32 constant
// that is scalar or per output channel: folds it into new W, B (repeatedly).
int64_t FuseConvAffine(Graph& g);
// x * Clip(x + 3, 0, 6) / 6 (also * (1/6), and x * HardSigmoid(x) with
// alpha 1/6, beta 0.5, operands in either order) -> HardSwish(x).
int64_t FuseHardSwishPattern(Graph& g);
// x * 0.5 * (1 + Erf(x / sqrt(2))) in its common operand orders (Div by
// sqrt(2) or Mul by 1/sqrt(2); the 0.5 applied to x or to the sum) -> Gelu(x).
int64_t FuseGeluPattern(Graph& g);
// ReduceMean, Sub, Pow 2 (or Mul by itself), ReduceMean, Add eps, Sqrt, Div,
// Mul gamma, [Add beta] over the trailing axes -> LayerNormalization.
int64_t FuseLayerNormPattern(Graph& g);
// [ReduceMax, Sub,] Exp, ReduceSum (keepdims) and Div over one axis -> Softmax.
int64_t FuseSoftmaxPattern(Graph& g);
// Conv, or a fused op without epilogue, whose output is added to a tensor of
// possibly the same shape (no known dim differs) -> the fused op with Z.
int64_t FuseResidualAdd(Graph& g);
// MatMul (constant 2-D float32 B) followed by Add of a constant bias over the
// last axis -> FusedMatMul.
int64_t FuseMatMulAdd(Graph& g);
// A packed query/key/value projection, FusedMatMul (constant W [K, 3C],
// bias, nothing else fused) -> Reshape [..., 3, H, D] -> Transpose putting
// the 3 first -> Split into 3 -> Squeeze (timm / open_clip's
// `qkv.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)`) -> three
// FusedMatMuls on W's column thirds, each reshaped to [..., H, D] and
// transposed: Q, K and V without the packed [..., 3C] tensor and its
// transposed copy (MatMulTranspose then folds the transposes into the
// attention MatMuls).
int64_t FuseQkvUnpack(Graph& g);
// MatMul of float32 tensors (B need not be constant) whose sole reader is a
// Mul by a one-element float32 constant (or a Div by one) -> ScaledMatMul.
int64_t FuseMatMulScale(Graph& g);
// MatMul / ScaledMatMul of float32 tensors whose A or B is a Transpose
// (optionally followed by a Mul by a one-element constant) read by nothing
// else -> ScaledMatMul reading the Transpose's input through perm_a /
// perm_b (the Mul folded into alpha): attention's Q and K^T stay in the
// projections' token-major layout, no copies.
int64_t FuseMatMulTranspose(Graph& g);
// Conv / FusedConv / FusedMatMul without an activation, followed by Relu,
// LeakyRelu, Clip (constant bounds), HardSigmoid, HardSwish, Sigmoid,
// x * Sigmoid(x) (or x * Sigmoid(a * x)), Tanh or Gelu -> the fused op with
// that activation (a Conv becomes FusedConv).
int64_t FuseActivation(Graph& g);
// A fused op with an activation and no residual, followed by Add of a tensor
// of possibly the same shape -> Z with sum_after_activation.
int64_t FuseActivationAdd(Graph& g);
// A fused op followed by Mul / Add / Sub / Div (tensor first) of a
// one-element float32 constant -> composed into `linear` (repeatedly).
int64_t FuseOutputAffine(Graph& g);

// Runs every pass above in dependency order, after giving subgraph values
// captured from outer constants those constants (so weights a Loop / If body
// reads from outside fuse and pre-pack too); returns the count per pass
// name ("ConvBatchNorm", "ConvAffine", "HardSwish", ...; zero counts are
// omitted).
std::map<std::string, int64_t> FuseAll(Graph& g);

}  // namespace parallax

#endif  // PARALLAX_PLAN_FUSION_H_
