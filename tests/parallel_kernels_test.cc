// The vectorised, intra-op parallel long-tail kernels (activations,
// broadcast arithmetic, Softmax, LayerNormalization, BatchNormalization,
// Transpose, Concat, nearest Resize, Where, Clip, Expand) against straightforward scalar
// references, and bit-identical results whether they run on 1, 2 or 3 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/kernels/elementwise_util.h"
#include "backends/cpu/kernels/families.h"
#include "backends/cpu/kernels/vec_math.h"
#include "core/thread_pool.h"
#include "kernel_test_util.h"
#include "ops/kernel.h"
#include "ops/registry.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

using testing::FloatAttr;
using testing::IntAttr;
using testing::IntsAttr;
using testing::StrAttr;

struct Call {
  std::string op;
  std::vector<Tensor> inputs;
  std::map<std::string, Attribute> attrs = {};
  int opset = 17;
};

// Runs `call` with an intra-op tiling for `threads` threads; returns output 0.
Tensor Run(const Call& call, int threads) {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterElementwiseOps(*r);
    RegisterReductionOps(*r);
    RegisterShapeOps(*r);
    RegisterImageOps(*r);
    RegisterNnOps(*r);
    return r;
  }();
  static ThreadPool pool(3);
  Graph graph;
  Node node;
  node.op_type = call.op;
  node.name = "n";
  node.opset = call.opset;
  node.attrs = call.attrs;
  std::vector<const Tensor*> ins;
  for (const Tensor& t : call.inputs) {
    node.inputs.push_back(0);
    ins.push_back(&t);
  }
  node.outputs.push_back(0);
  const OpRegistry::Entry* e = registry->Find("", call.op, call.opset);
  EXPECT_NE(e, nullptr) << call.op;
  if (e == nullptr) return Tensor();
  KernelInit init{node, graph, nullptr};
  auto kernel = e->factory(init);
  EXPECT_TRUE(kernel.ok()) << kernel.status().ToString();
  if (!kernel.ok()) return Tensor();
  testing::OwnedAllocator alloc;
  KernelContext ctx(node, ins, {}, 1, &alloc);
  ctx.set_intra_op(IntraOp{&pool, threads});
  const Status s = (*kernel)->Run(ctx);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return s.ok() ? ctx.outputs()[0] : Tensor();
}

// Runs on 1 thread, checks 2 and 3 threads give the same bytes, returns the
// 1-thread output.
Tensor RunDeterministic(const Call& call) {
  Tensor one = Run(call, 1);
  for (int threads : {2, 3}) {
    Tensor many = Run(call, threads);
    EXPECT_EQ(many.shape(), one.shape());
    EXPECT_TRUE(many.nbytes() == one.nbytes() &&
                std::memcmp(many.raw_data(), one.raw_data(), one.nbytes()) == 0)
        << call.op << " differs between 1 and " << threads << " threads";
  }
  return one;
}

std::vector<float> Random(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

Tensor F32(const Shape& shape, uint32_t seed, float lo = -8.0f, float hi = 8.0f) {
  return Tensor::FromVector(DType::kFloat32, shape, Random(NumElements(shape), lo, hi, seed));
}

std::vector<float> Floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// The largest sizes split into several tasks even for the cheapest ops.
const std::vector<int64_t> kSizes = {1, 7, 17, 1000, 100003, 400003};

TEST(ParallelKernels, LargestCasesSplitOverThreeThreads) {
  const IntraOp three{nullptr, 3};
  EXPECT_EQ(three.Chunks(400003, elementwise::kParallelMinChunk), 3);
  EXPECT_EQ(three.Chunks(100003, elementwise::kParallelMinChunkHeavy), 3);
}

struct UnaryCase {
  const char* op;
  vec::UnaryOp vop;
  std::map<std::string, Attribute> attrs;
  float alpha, beta;
};

TEST(ParallelKernels, UnaryFloat32MatchesScalarFormula) {
  const UnaryCase cases[] = {
      {"Sigmoid", vec::UnaryOp::kSigmoid, {}, 0, 0},
      {"Tanh", vec::UnaryOp::kTanh, {}, 0, 0},
      {"Erf", vec::UnaryOp::kErf, {}, 0, 0},
      {"Exp", vec::UnaryOp::kExp, {}, 0, 0},
      {"Relu", vec::UnaryOp::kRelu, {}, 0, 0},
      {"Sqrt", vec::UnaryOp::kSqrt, {}, 0, 0},
      {"Abs", vec::UnaryOp::kAbs, {}, 0, 0},
      {"Neg", vec::UnaryOp::kNeg, {}, 0, 0},
      {"HardSwish", vec::UnaryOp::kHardSwish, {}, 0, 0},
      {"LeakyRelu", vec::UnaryOp::kLeakyRelu, {{"alpha", FloatAttr(0.3f)}}, 0.3f, 0},
      {"HardSigmoid",
       vec::UnaryOp::kHardSigmoid,
       {{"alpha", FloatAttr(0.25f)}, {"beta", FloatAttr(0.4f)}},
       0.25f,
       0.4f},
      {"Gelu", vec::UnaryOp::kGelu, {}, 0, 0},
      {"Gelu", vec::UnaryOp::kGeluTanh, {{"approximate", StrAttr("tanh")}}, 0, 0},
  };
  for (const UnaryCase& c : cases) {
    for (int64_t n : kSizes) {
      Tensor x = F32({n}, static_cast<uint32_t>(n));
      Tensor y = RunDeterministic({c.op, {x}, c.attrs, 20});
      ASSERT_EQ(y.numel(), n);
      for (int64_t i = 0; i < n; ++i) {
        const float want = vec::ScalarUnary(c.vop, x.data<float>()[i], c.alpha, c.beta);
        ASSERT_EQ(Bits(y.data<float>()[i]), Bits(want)) << c.op << " n=" << n << " i=" << i;
      }
    }
  }
}

TEST(ParallelKernels, SigmoidFloat16AndFloat64) {
  const int64_t n = 100003;
  const std::vector<float> v = Random(n, -10, 10, 5);
  Tensor h = Tensor::Uninitialized(DType::kFloat16, {n});
  std::vector<double> dv(v.begin(), v.end());
  for (int64_t i = 0; i < n; ++i) h.data<Half>()[i] = FloatToHalf(v[static_cast<size_t>(i)]);
  Tensor yh = RunDeterministic({"Sigmoid", {h}});
  Tensor yd = RunDeterministic({"Sigmoid", {Tensor::FromVector(DType::kFloat64, {n}, dv)}});
  for (int64_t i = 0; i < n; ++i) {
    const float xh = HalfToFloat(h.data<Half>()[i]);
    const Half want = FloatToHalf(vec::ScalarUnary(vec::UnaryOp::kSigmoid, xh, 0, 0));
    ASSERT_EQ(yh.data<Half>()[i].bits, want.bits) << i;
    ASSERT_EQ(yd.data<double>()[i], 1.0 / (1.0 + std::exp(-dv[static_cast<size_t>(i)]))) << i;
  }
}

TEST(ParallelKernels, ClipFloat32) {
  Tensor x = F32({400003}, 3);
  Tensor lo = Tensor::FromVector(DType::kFloat32, {}, std::vector<float>{-1.25f});
  Tensor hi = Tensor::FromVector(DType::kFloat32, {}, std::vector<float>{3.5f});
  Tensor y = RunDeterministic({"Clip", {x, lo, hi}, {}, 13});
  for (int64_t i = 0; i < x.numel(); ++i)
    ASSERT_EQ(y.data<float>()[i], std::min(3.5f, std::max(-1.25f, x.data<float>()[i])));
}

// a op b by index arithmetic over the broadcast output.
std::vector<float> NaiveBinary(vec::BinaryOp op, const Tensor& a, const Tensor& b) {
  const Shape so = *BroadcastShapes(a.shape(), b.shape());
  std::vector<float> out;
  if (NumElements(so) == 0) return out;
  StridedIndex it(so, {BroadcastStrides(a.shape(), so), BroadcastStrides(b.shape(), so)});
  do {
    out.push_back(
        vec::ScalarBinary(op, a.data<float>()[it.offset(0)], b.data<float>()[it.offset(1)]));
  } while (it.Next());
  return out;
}

TEST(ParallelKernels, BinaryBroadcastIsExact) {
  // Output sizes from 1 to ~540K elements (several tasks on 2 and 3 threads).
  const std::vector<std::pair<Shape, Shape>> shapes = {{{400003}, {400003}},
                                                       {{400003}, {}},
                                                       {{}, {400003}},
                                                       {{17}, {1}},
                                                       {{7}, {7}},
                                                       {{4, 16, 80, 80}, {1, 16, 1, 1}},
                                                       {{12, 77, 384}, {384}},
                                                       {{12, 77, 384}, {12, 77, 1}},
                                                       {{20, 1, 300}, {1, 70, 1}},
                                                       {{40, 3000, 3}, {1, 1, 3}},
                                                       {{1, 6, 300, 300}, {1, 1, 1, 300}}};
  const std::pair<const char*, vec::BinaryOp> ops[] = {{"Add", vec::BinaryOp::kAdd},
                                                       {"Sub", vec::BinaryOp::kSub},
                                                       {"Mul", vec::BinaryOp::kMul},
                                                       {"Div", vec::BinaryOp::kDiv}};
  uint32_t seed = 11;
  for (const auto& [sa, sb] : shapes) {
    Tensor a = F32(sa, ++seed), b = F32(sb, ++seed, 0.5f, 4.0f);
    for (const auto& [name, op] : ops) {
      for (int swap = 0; swap < 2; ++swap) {
        const Tensor& x = swap ? b : a;
        const Tensor& y = swap ? a : b;
        Tensor r = RunDeterministic({name, {x, y}});
        EXPECT_EQ(r.shape(), *BroadcastShapes(x.shape(), y.shape()));
        const std::vector<float> want = NaiveBinary(op, x, y), got = Floats(r);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(Bits(got[i]), Bits(want[i])) << name << " " << ShapeToString(x.shape()) << " "
                                                 << ShapeToString(y.shape()) << " i=" << i;
      }
    }
  }
}

TEST(ParallelKernels, BinaryFloat16AndInt32Broadcast) {
  const Shape sa = {1500, 300}, sb = {300};
  Tensor a = F32(sa, 1), b = F32(sb, 2);
  Tensor ha = Tensor::Uninitialized(DType::kFloat16, sa);
  Tensor hb = Tensor::Uninitialized(DType::kFloat16, sb);
  for (int64_t i = 0; i < a.numel(); ++i) ha.data<Half>()[i] = FloatToHalf(a.data<float>()[i]);
  for (int64_t i = 0; i < b.numel(); ++i) hb.data<Half>()[i] = FloatToHalf(b.data<float>()[i]);
  Tensor r = RunDeterministic({"Mul", {ha, hb}});
  for (int64_t i = 0; i < r.numel(); ++i) {
    const float want = HalfToFloat(ha.data<Half>()[i]) * HalfToFloat(hb.data<Half>()[i % sb[0]]);
    ASSERT_EQ(r.data<Half>()[i].bits, FloatToHalf(want).bits) << i;
  }
  std::vector<int32_t> ia(static_cast<size_t>(NumElements(sa))), ib(300);
  for (size_t i = 0; i < ia.size(); ++i) ia[i] = static_cast<int32_t>(i * 7919 % 1000) - 500;
  for (size_t i = 0; i < ib.size(); ++i) ib[i] = static_cast<int32_t>(i) - 150;
  Tensor ri = RunDeterministic(
      {"Sub",
       {Tensor::FromVector(DType::kInt32, sa, ia), Tensor::FromVector(DType::kInt32, sb, ib)}});
  for (size_t i = 0; i < ia.size(); ++i) ASSERT_EQ(ri.data<int32_t>()[i], ia[i] - ib[i % 300]);
}

// Softmax / LogSoftmax along `axis` in double, from the float differences
// x - max that the kernel exponentiates.
std::vector<double> NaiveSoftmax(const Tensor& x, int axis, bool log) {
  int64_t outer = 1, n = x.dim(axis), inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  std::vector<double> y(static_cast<size_t>(x.numel()));
  const float* p = x.data<float>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t r) { return static_cast<size_t>((o * n + r) * inner + i); };
      float m = p[at(0)];
      for (int64_t r = 0; r < n; ++r) m = std::max(m, p[at(r)]);
      double s = 0;
      for (int64_t r = 0; r < n; ++r) s += std::exp(static_cast<double>(p[at(r)] - m));
      for (int64_t r = 0; r < n; ++r) {
        const double d = p[at(r)] - m;
        y[at(r)] = log ? d - std::log(s) : std::exp(d) / s;
      }
    }
  }
  return y;
}

// Softmax is a few ulp from the reference plus the float rounding of its sum
// over a row of n (16 lanes, so each lane adds n / 16 terms); LogSoftmax's
// error is a few float roundings of values up to |y| + 2 |max + log(sum)|
// (|x| <= 20 here) plus the sum's.
TEST(ParallelKernels, SoftmaxAndLogSoftmaxRows) {
  const std::vector<std::pair<Shape, int>> cases = {
      {{1, 1}, -1},       {{3, 7}, 1},       {{2, 17}, -1},   {{100, 1000}, -1},
      {{1, 100003}, 1},   {{50, 40, 33}, 1}, {{3, 5, 17}, 1}, {{2, 6, 150, 150}, 3},
      {{1, 16, 4100}, 1}, {{2, 7, 1100}, 1}};
  uint32_t seed = 40;
  for (const auto& [shape, axis] : cases) {
    Tensor x = F32(shape, ++seed, -20.0f, 20.0f);
    const int a = axis < 0 ? axis + static_cast<int>(shape.size()) : axis;
    const double sum_err = 6e-8 * std::sqrt(static_cast<double>(x.dim(a)) / 16.0);
    for (bool log : {false, true}) {
      Tensor y = RunDeterministic({log ? "LogSoftmax" : "Softmax", {x}, {{"axis", IntAttr(axis)}}});
      const std::vector<double> want = NaiveSoftmax(x, a, log);
      for (size_t i = 0; i < want.size(); ++i) {
        const double err = std::fabs(y.data<float>()[i] - want[i]);
        const double tol =
            log ? 1.2e-7 * (std::fabs(want[i]) + 2 * 20.0) + sum_err : (5e-7 + sum_err) * want[i];
        ASSERT_LE(err, tol) << (log ? "LogSoftmax " : "Softmax ") << ShapeToString(shape)
                            << " i=" << i << " got " << y.data<float>()[i] << " want " << want[i];
      }
    }
  }
}

TEST(ParallelKernels, LayerNormalizationRows) {
  const std::vector<std::pair<Shape, int>> cases = {
      {{1, 1}, -1}, {{7, 17}, -1}, {{400, 384}, -1}, {{2, 100, 768}, -1}, {{40, 30, 120}, 1}};
  uint32_t seed = 70;
  for (const auto& [shape, axis] : cases) {
    const int a = axis < 0 ? axis + static_cast<int>(shape.size()) : axis;
    const Shape norm(shape.begin() + a, shape.end());
    Tensor x = F32(shape, ++seed, -3.0f, 5.0f), scale = F32(norm, ++seed), bias = F32(norm, ++seed);
    Tensor y =
        RunDeterministic({"LayerNormalization", {x, scale, bias}, {{"axis", IntAttr(axis)}}});
    const int64_t n = NumElements(norm), rows = x.numel() / n;
    for (int64_t r = 0; r < rows; ++r) {
      const float* xs = x.data<float>() + r * n;
      double mean = 0, var = 0;
      for (int64_t j = 0; j < n; ++j) mean += xs[j];
      mean /= static_cast<double>(n);
      for (int64_t j = 0; j < n; ++j) var += (xs[j] - mean) * (xs[j] - mean);
      const double inv = 1.0 / std::sqrt(var / static_cast<double>(n) + 1e-5);
      for (int64_t j = 0; j < n; ++j) {
        const double want = (xs[j] - mean) * inv * scale.data<float>()[j] + bias.data<float>()[j];
        ASSERT_NEAR(y.data<float>()[r * n + j], want, 1e-5 * (1 + std::fabs(want)))
            << ShapeToString(shape) << " row " << r << " j=" << j;
      }
    }
  }
}

// transpose(x, perm) by index arithmetic, for any element type.
template <typename T>
std::vector<T> NaiveTranspose(const Tensor& x, const std::vector<int64_t>& perm) {
  const std::vector<int64_t> st = Strides(x.shape());
  Shape so(perm.size());
  std::vector<int64_t> ps(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) {
    so[k] = x.dim(static_cast<int>(perm[k]));
    ps[k] = st[static_cast<size_t>(perm[k])];
  }
  std::vector<T> out;
  StridedIndex it(so, {ps});
  do {
    out.push_back(x.data<T>()[it.offset(0)]);
  } while (it.Next());
  return out;
}

template <typename T>
void CheckTranspose(DType dt, const Shape& shape, const std::vector<int64_t>& perm) {
  std::vector<T> v(static_cast<size_t>(NumElements(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(i * 2654435761u);
  Tensor x = Tensor::FromVector(dt, shape, v);
  Tensor y = RunDeterministic({"Transpose", {x}, {{"perm", IntsAttr(perm)}}});
  EXPECT_EQ(std::vector<T>(y.data<T>(), y.data<T>() + y.numel()), NaiveTranspose<T>(x, perm))
      << ShapeToString(shape) << " perm " << ShapeToString(perm);
}

TEST(ParallelKernels, TransposeCommonPerms) {
  // Up to ~2.6 MB (float) / 5 MB (int64): several tasks on 2 and 3 threads.
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {{333, 777}, {1, 0}},
      {{1, 1}, {1, 0}},
      {{7, 17}, {1, 0}},
      {{12, 67, 45, 9}, {0, 2, 1, 3}},
      {{12, 67, 45, 9}, {0, 2, 3, 1}},
      {{2, 3, 160, 161}, {0, 2, 3, 1}},  // RGB images to NHWC: planes interleaved.
      {{3, 1, 50, 70}, {0, 2, 3, 1}},
      {{1, 2, 130, 130}, {0, 2, 3, 1}},
      {{2, 4, 99, 101}, {0, 2, 3, 1}},
      {{12, 67, 45, 9}, {2, 1, 0, 3}},
      {{4, 6, 300, 64}, {0, 2, 1, 3}},
      {{4, 300, 6, 64}, {0, 2, 3, 1}},
      {{4, 6, 300, 64}, {0, 1, 3, 2}},
      {{2, 33, 35, 24}, {0, 3, 1, 2}},  // NHWC back to NCHW: 4 x 4 blocks and edges.
      {{1, 80, 80, 144}, {0, 3, 1, 2}},
      {{1, 7, 9, 5}, {0, 3, 1, 2}},
      {{3, 5, 7, 11, 13}, {4, 2, 0, 3, 1}}};
  for (const auto& [shape, perm] : cases) {
    CheckTranspose<float>(DType::kFloat32, shape, perm);
    CheckTranspose<int64_t>(DType::kInt64, shape, perm);
    CheckTranspose<uint8_t>(DType::kUInt8, shape, perm);
  }
}

TEST(ParallelKernels, ConcatRowsFromEveryInput) {
  // A channels-last concat (last axis, short segments, many rows: several
  // tasks), a middle axis, and an empty input.
  struct Case {
    std::vector<Shape> shapes;
    int64_t axis;
  };
  const std::vector<Case> cases = {{{{1, 80, 160, 16}, {1, 80, 160, 16}, {1, 80, 160, 32}}, 3},
                                   {{{6, 5, 300}, {6, 1, 300}, {6, 0, 300}}, 1},
                                   {{{3, 7}, {2, 7}}, 0}};
  uint32_t seed = 1;
  for (const Case& c : cases) {
    std::vector<Tensor> ins;
    for (const Shape& s : c.shapes) ins.push_back(F32(s, seed++));
    Tensor out = RunDeterministic({"Concat", ins, {{"axis", IntAttr(c.axis)}}, 13});
    const size_t a = static_cast<size_t>(c.axis);
    int64_t outer = 1, inner = 1, total = 0;
    for (size_t d = 0; d < a; ++d) outer *= c.shapes[0][d];
    for (size_t d = a + 1; d < c.shapes[0].size(); ++d) inner *= c.shapes[0][d];
    for (const Shape& s : c.shapes) total += s[a];
    ASSERT_EQ(out.numel(), outer * total * inner);
    int64_t col = 0;
    for (size_t i = 0; i < ins.size(); ++i) {
      const int64_t span = c.shapes[i][a] * inner;
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t k = 0; k < span; ++k)
          ASSERT_EQ(out.data<float>()[o * total * inner + col + k],
                    ins[i].data<float>()[o * span + k])
              << "input " << i << " row " << o;
      col += span;
    }
  }
}

TEST(ParallelKernels, NearestResizeChannelsLast) {
  // A channels-last FPN upsample (x2 and x4 over H and W, rows of C values)
  // and a channels-first one (last axis resized).
  struct Case {
    Shape in;
    std::vector<float> scales;
  };
  const std::vector<Case> cases = {{{1, 40, 40, 96}, {1, 2, 2, 1}},
                                   {{1, 20, 20, 24}, {1, 4, 4, 1}},
                                   {{1, 24, 40, 40}, {1, 1, 2, 2}}};
  uint32_t seed = 1;
  for (const Case& c : cases) {
    Tensor x = F32(c.in, seed++);
    Tensor roi = Tensor::FromVector(DType::kFloat32, {0}, std::vector<float>{});
    Tensor scales = Tensor::FromVector(DType::kFloat32, {4}, c.scales);
    Tensor y = RunDeterministic({"Resize",
                                 {x, roi, scales},
                                 {{"mode", StrAttr("nearest")},
                                  {"coordinate_transformation_mode", StrAttr("asymmetric")},
                                  {"nearest_mode", StrAttr("floor")}},
                                 13});
    Shape out(4);
    for (size_t d = 0; d < 4; ++d) out[d] = c.in[d] * static_cast<int64_t>(c.scales[d]);
    ASSERT_EQ(y.shape(), out);
    const std::vector<int64_t> is = Strides(c.in), os = Strides(out);
    for (int64_t i = 0; i < y.numel(); ++i) {
      int64_t src = 0;
      for (size_t d = 0; d < 4; ++d)
        src += (i / os[d] % out[d]) / static_cast<int64_t>(c.scales[d]) * is[d];
      ASSERT_EQ(y.data<float>()[i], x.data<float>()[src]) << "element " << i;
    }
  }
}

TEST(ParallelKernels, BatchNormalizationInference) {
  const Shape s = {2, 24, 80, 80};
  Tensor x = F32(s, 1);
  Tensor scale = F32({24}, 2), bias = F32({24}, 3), mean = F32({24}, 4);
  Tensor var = F32({24}, 5, 0.5f, 2.0f);
  Tensor y = RunDeterministic(
      {"BatchNormalization", {x, scale, bias, mean, var}, {{"epsilon", FloatAttr(1e-5f)}}, 15});
  ASSERT_EQ(y.shape(), s);
  for (int64_t i = 0; i < y.numel(); ++i) {
    const int64_t c = i / (80 * 80) % 24;
    const double inv = 1.0 / std::sqrt(static_cast<double>(var.data<float>()[c]) + 1e-5);
    const float a = static_cast<float>(scale.data<float>()[c] * inv);
    const float b =
        static_cast<float>(bias.data<float>()[c] - static_cast<double>(mean.data<float>()[c]) *
                                                       scale.data<float>()[c] * inv);
    ASSERT_EQ(y.data<float>()[i], a * x.data<float>()[i] + b) << "element " << i;
  }
}

TEST(ParallelKernels, WhereAndExpandBroadcast) {
  const Shape sc = {160, 1, 90}, sx = {1, 30, 90};
  std::vector<uint8_t> cv(static_cast<size_t>(NumElements(sc)));
  for (size_t i = 0; i < cv.size(); ++i) cv[i] = (i * 37 % 5) < 2;
  Tensor cond = Tensor::Uninitialized(DType::kBool, sc);
  for (size_t i = 0; i < cv.size(); ++i) cond.data<bool>()[i] = cv[i] != 0;
  Tensor x = F32(sx, 1);
  Tensor y = Tensor::FromVector(DType::kFloat32, {}, std::vector<float>{-7.0f});
  Tensor w = RunDeterministic({"Where", {cond, x, y}, {}, 16});
  ASSERT_EQ(w.shape(), (Shape{160, 30, 90}));
  for (int64_t i = 0; i < 160; ++i)
    for (int64_t j = 0; j < 30; ++j)
      for (int64_t k = 0; k < 90; ++k)
        ASSERT_EQ(w.data<float>()[(i * 30 + j) * 90 + k],
                  cv[static_cast<size_t>(i * 90 + k)] ? x.data<float>()[j * 90 + k] : -7.0f);
  Tensor shape = Tensor::FromVector(DType::kInt64, {3}, std::vector<int64_t>{256, 30, 90});
  Tensor e = RunDeterministic({"Expand", {x, shape}, {}, 13});
  for (int64_t i = 0; i < e.numel(); ++i)
    ASSERT_EQ(e.data<float>()[i], x.data<float>()[i % x.numel()]);
}

}  // namespace
}  // namespace parallax
