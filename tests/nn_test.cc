// NN kernels (Conv/ConvTranspose/MatMul/Gemm/pooling) on cases the ONNX
// backend data does not cover: oneDNN paths vs naive references, constant
// (pre-packed) vs runtime weights, repeated runs, and error reporting.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "kernel_test_util.h"
#include "ops/kernel.h"

namespace parallax {
namespace {

using testing::FloatAttr;
using testing::FloatsAttr;
using testing::IntAttr;
using testing::IntsAttr;
using testing::StrAttr;

class TestAllocator : public OutputAllocator {
 public:
  Result<Tensor> Allocate(int, DType dtype, const Shape& shape) override {
    return Tensor::Empty(dtype, shape);
  }
};

// One node with its graph; inputs flagged constant are visible at creation.
struct OneNode {
  Graph graph;
  Node node;
  std::unique_ptr<Kernel> kernel;

  OneNode(const std::string& op, int opset, const std::vector<Tensor>& inputs,
          const std::vector<bool>& constant, int outputs) {
    node.op_type = op;
    node.name = "n";
    node.opset = opset;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Value v;
      v.name = "in" + std::to_string(i);
      v.dtype = inputs[i].dtype();
      if (i < constant.size() && constant[i]) v.constant = inputs[i];
      node.inputs.push_back(graph.AddValue(v));
    }
    for (int i = 0; i < outputs; ++i) {
      Value v;
      v.name = "out" + std::to_string(i);
      node.outputs.push_back(graph.AddValue(v));
    }
  }
  Status Create() {
    KernelInit init{node, graph, {}};
    Result<std::unique_ptr<Kernel>> k = DefaultCpuBackend().CreateKernel(init);
    if (!k.ok()) return k.status();
    kernel = std::move(*k);
    return Status::Ok();
  }
  Result<std::vector<Tensor>> Run(const std::vector<Tensor>& inputs, const IntraOp& intra = {}) {
    std::vector<const Tensor*> ptrs;
    for (const Tensor& t : inputs) ptrs.push_back(&t);
    TestAllocator alloc;
    KernelContext ctx(node, ptrs, {}, static_cast<int>(node.outputs.size()), &alloc);
    ctx.set_intra_op(intra);
    PX_RETURN_IF_ERROR(kernel->Run(ctx));
    return ctx.outputs();
  }
};

Tensor Random(Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  Tensor t = Tensor::Empty(DType::kFloat32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

void ExpectNear(const Tensor& a, const std::vector<float>& b, float tol = 1e-4f) {
  ASSERT_EQ(a.numel(), static_cast<int64_t>(b.size()));
  for (size_t i = 0; i < b.size(); ++i)
    ASSERT_NEAR(a.data<float>()[i], b[i], tol * (1 + std::abs(b[i]))) << "element " << i;
}

// Naive 2-D ConvTranspose (group 1) writing into an output of size oh x ow.
std::vector<float> NaiveConvTranspose(const Tensor& x, const Tensor& w, const Tensor& b, int64_t s,
                                      int64_t pb, int64_t oh, int64_t ow) {
  int64_t c = x.dim(1), h = x.dim(2), wd = x.dim(3), m = w.dim(1), k = w.dim(2);
  std::vector<float> y(static_cast<size_t>(m * oh * ow));
  for (int64_t o = 0; o < m; ++o)
    for (int64_t i = 0; i < oh * ow; ++i)
      y[static_cast<size_t>(o * oh * ow + i)] = b.data<float>()[o];
  for (int64_t ci = 0; ci < c; ++ci)
    for (int64_t o = 0; o < m; ++o)
      for (int64_t iy = 0; iy < h; ++iy)
        for (int64_t ix = 0; ix < wd; ++ix)
          for (int64_t ky = 0; ky < k; ++ky)
            for (int64_t kx = 0; kx < k; ++kx) {
              int64_t yy = iy * s + ky - pb, xx = ix * s + kx - pb;
              if (yy < 0 || yy >= oh || xx < 0 || xx >= ow) continue;
              y[static_cast<size_t>((o * oh + yy) * ow + xx)] +=
                  x.data<float>()[(ci * h + iy) * wd + ix] *
                  w.data<float>()[((ci * m + o) * k + ky) * k + kx];
            }
  return y;
}

TEST(NnKernels, ConvTransposeOutputShapeLargerThanNatural) {
  Tensor x = Random({1, 2, 3, 3}, 1), w = Random({2, 3, 3, 3}, 2), b = Random({3}, 3);
  OneNode n("ConvTranspose", 13, {x, w, b}, {false, true, true}, 1);
  n.node.attrs["strides"] = IntsAttr({2, 2});
  n.node.attrs["output_shape"] = IntsAttr({9, 9});  // Natural size is 7: 2 bias-only rows/cols.
  ASSERT_TRUE(n.Create().ok());
  Result<std::vector<Tensor>> y = n.Run({x, w, b});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ((*y)[0].shape(), (Shape{1, 3, 9, 9}));
  ExpectNear((*y)[0], NaiveConvTranspose(x, w, b, 2, 0, 9, 9));
}

TEST(NnKernels, ConvTransposeOutputPaddingBeyondPads) {
  Tensor x = Random({1, 2, 3, 3}, 4), w = Random({2, 3, 3, 3}, 5), b = Random({3}, 6);
  OneNode n("ConvTranspose", 13, {x, w, b}, {false, false, false}, 1);
  n.node.attrs["strides"] = IntsAttr({2, 2});
  n.node.attrs["output_padding"] = IntsAttr({1, 1});
  ASSERT_TRUE(n.Create().ok());
  Result<std::vector<Tensor>> y = n.Run({x, w, b});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ((*y)[0].shape(), (Shape{1, 3, 8, 8}));
  ExpectNear((*y)[0], NaiveConvTranspose(x, w, b, 2, 0, 8, 8));
}

TEST(NnKernels, MatMulBroadcastConstantAndRuntimeWeights) {
  Tensor a = Random({2, 1, 3, 4}, 4), b = Random({5, 4, 2}, 5);
  std::vector<float> ref(2 * 5 * 3 * 2);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 5; ++j)
      for (int m = 0; m < 3; ++m)
        for (int n = 0; n < 2; ++n) {
          float acc = 0;
          for (int k = 0; k < 4; ++k)
            acc += a.data<float>()[(i * 3 + m) * 4 + k] * b.data<float>()[(j * 4 + k) * 2 + n];
          ref[static_cast<size_t>(((i * 5 + j) * 3 + m) * 2 + n)] = acc;
        }
  for (bool constant : {false, true}) {
    OneNode n("MatMul", 13, {a, b}, {false, constant}, 1);
    ASSERT_TRUE(n.Create().ok());
    for (int run = 0; run < 2; ++run) {  // Second run reuses the cached plan.
      Result<std::vector<Tensor>> y = n.Run({a, b});
      ASSERT_TRUE(y.ok()) << y.status().ToString();
      EXPECT_EQ((*y)[0].shape(), (Shape{2, 5, 3, 2}));
      ExpectNear((*y)[0], ref);
    }
  }
}

TEST(NnKernels, MaxPoolDnnlMatchesReferencePath) {
  // Requesting Indices forces the C++ path; compare Y with the oneDNN path.
  std::mt19937 rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    int64_t k = 1 + rng() % 3, s = 1 + rng() % 2, d = 1 + rng() % 2, p = rng() % k;
    int64_t ceil = rng() % 2;
    Tensor x = Random({1, 3, 5 + static_cast<int64_t>(rng() % 5), 7}, static_cast<uint32_t>(trial));
    std::vector<Tensor> ys;
    for (int outputs : {1, 2}) {
      OneNode n("MaxPool", 12, {x}, {false}, outputs);
      n.node.attrs["kernel_shape"] = IntsAttr({k, k});
      n.node.attrs["strides"] = IntsAttr({s, s});
      n.node.attrs["dilations"] = IntsAttr({d, d});
      n.node.attrs["pads"] = IntsAttr({p, p, p, p});
      Attribute c;
      c.i = ceil;
      n.node.attrs["ceil_mode"] = c;
      ASSERT_TRUE(n.Create().ok());
      Result<std::vector<Tensor>> y = n.Run({x});
      ASSERT_TRUE(y.ok()) << y.status().ToString();
      ys.push_back((*y)[0]);
    }
    std::vector<float> ref(ys[1].data<float>(), ys[1].data<float>() + ys[1].numel());
    EXPECT_EQ(ys[0].shape(), ys[1].shape());
    ExpectNear(ys[0], ref, 0);
  }
}

TEST(NnKernels, AveragePoolCeilIncludePadUsesPaddedCount) {
  Tensor x = Tensor::Empty(DType::kFloat32, {1, 1, 1, 5});
  for (int i = 0; i < 5; ++i) x.data<float>()[i] = static_cast<float>(i + 1);
  OneNode n("AveragePool", 11, {x}, {false}, 1);
  n.node.attrs["kernel_shape"] = IntsAttr({1, 3});
  n.node.attrs["strides"] = IntsAttr({1, 2});
  n.node.attrs["pads"] = IntsAttr({0, 1, 0, 0});
  Attribute one;
  one.i = 1;
  n.node.attrs["ceil_mode"] = one;
  n.node.attrs["count_include_pad"] = one;
  ASSERT_TRUE(n.Create().ok());
  Result<std::vector<Tensor>> y = n.Run({x});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  // Windows [-1,2) -> (0+1+2)/3, [1,4) -> (2+3+4)/3, [3,6) -> (4+5)/2: the cell
  // beyond the input and its padding is not counted.
  ExpectNear((*y)[0], {1.f, 3.f, 4.5f});
}

TEST(NnKernels, ConvChannelMismatchIsAnErrorNamingTheNode) {
  Tensor x = Random({1, 3, 5, 5}, 1), w = Random({4, 2, 3, 3}, 2);
  OneNode n("Conv", 11, {x, w}, {false, true}, 1);
  ASSERT_TRUE(n.Create().ok());
  Result<std::vector<Tensor>> y = n.Run({x, w});
  ASSERT_FALSE(y.ok());
  EXPECT_EQ(y.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(y.status().message().find("Conv"), std::string::npos) << y.status().message();
  EXPECT_NE(y.status().message().find("channels"), std::string::npos) << y.status().message();
}

TEST(NnKernels, GemmAlphaBetaWithPackedWeights) {
  Tensor a = Random({3, 4}, 1), b = Random({5, 4}, 2), c = Random({3, 1}, 3);
  OneNode n("Gemm", 13, {a, b, c}, {false, true, true}, 1);
  Attribute alpha, beta, tb;
  alpha.kind = beta.kind = Attribute::Kind::kFloat;
  alpha.f = 0.5f;
  beta.f = -2.f;
  tb.i = 1;
  n.node.attrs["alpha"] = alpha;
  n.node.attrs["beta"] = beta;
  n.node.attrs["transB"] = tb;
  ASSERT_TRUE(n.Create().ok());
  std::vector<float> ref(15);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) {
      float acc = 0;
      for (int k = 0; k < 4; ++k) acc += a.data<float>()[i * 4 + k] * b.data<float>()[j * 4 + k];
      ref[static_cast<size_t>(i * 5 + j)] = 0.5f * acc - 2.f * c.data<float>()[i];
    }
  for (int run = 0; run < 2; ++run) {
    Result<std::vector<Tensor>> y = n.Run({a, b, c});
    ASSERT_TRUE(y.ok()) << y.status().ToString();
    ExpectNear((*y)[0], ref);
  }
}

// Intra-op tiles (row bands, output-channel blocks, batch and column
// slices) must compute what one call computes, whatever the thread count.
void ExpectTilesMatch(OneNode& n, const std::vector<Tensor>& ins) {
  ASSERT_TRUE(n.Create().ok());
  Result<std::vector<Tensor>> ref = n.Run(ins);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  const Tensor& r = (*ref)[0];
  std::vector<float> want(r.data<float>(), r.data<float>() + r.numel());
  ThreadPool pool(4);
  for (int threads : {2, 3, 4}) {
    for (int run = 0; run < 2; ++run) {
      Result<std::vector<Tensor>> y = n.Run(ins, IntraOp{&pool, threads});
      ASSERT_TRUE(y.ok()) << y.status().ToString();
      EXPECT_EQ((*y)[0].shape(), r.shape());
      ExpectNear((*y)[0], want, 1e-5f);
    }
  }
}

TEST(NnKernels, ConvIntraOpTilesMatchOneCall) {
  struct Case {
    Shape x, w;
    std::vector<int64_t> strides, pads, dilations;
    int64_t group;
  };
  const std::vector<Case> cases = {
      {{1, 8, 37, 29}, {16, 8, 3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1},    // 3x3 same.
      {{1, 3, 65, 64}, {16, 3, 3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 1},    // Stem, stride 2.
      {{1, 16, 40, 40}, {16, 1, 5, 5}, {1, 1}, {2, 2, 2, 2}, {1, 1}, 16},  // Depthwise.
      {{1, 8, 33, 33}, {8, 8, 3, 3}, {2, 1}, {0, 1, 2, 0}, {2, 1}, 1},     // Asymmetric, dilated.
      {{1, 32, 30, 30}, {48, 32, 1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1},  // Pointwise.
      {{1, 24, 41, 23}, {48, 8, 3, 3}, {1, 2}, {1, 1, 1, 1}, {1, 1}, 3},   // Grouped.
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE("case " + std::to_string(c));
    const Case& k = cases[c];
    Tensor x = Random(k.x, 10 + static_cast<uint32_t>(c)), w = Random(k.w, 20);
    Tensor b = Random({k.w[0]}, 30);
    for (bool constant : {true, false}) {
      OneNode n("Conv", 13, {x, w, b}, {false, constant, constant}, 1);
      n.node.attrs["strides"] = IntsAttr(k.strides);
      n.node.attrs["pads"] = IntsAttr(k.pads);
      n.node.attrs["dilations"] = IntsAttr(k.dilations);
      n.node.attrs["group"] = IntAttr(k.group);
      ExpectTilesMatch(n, {x, w, b});
    }
  }
  // ConvTranspose 2x2 stride 2 (PP-OCR det's upsampling): row bands; 24 -> 1
  // channels runs plain, 24 -> 24 blocked. Overlapping 3x3 stride 2: one call.
  for (int64_t oc : {1, 24}) {
    for (int64_t k : {2, 3}) {
      SCOPED_TRACE("ConvTranspose oc " + std::to_string(oc) + " k " + std::to_string(k));
      Tensor xt = Random({1, 24, 96, 90}, 70), wt = Random({24, oc, k, k}, 71);
      Tensor bt = Random({oc}, 72);
      OneNode nt("ConvTranspose", 13, {xt, wt, bt}, {false, true, true}, 1);
      nt.node.attrs["strides"] = IntsAttr({2, 2});
      ExpectTilesMatch(nt, {xt, wt, bt});
    }
  }
  Tensor x1 = Random({1, 80, 3000}, 40), w1 = Random({64, 80, 3}, 41);  // 1-D (whisper).
  OneNode n1("Conv", 13, {x1, w1}, {false, true}, 1);
  n1.node.attrs["pads"] = IntsAttr({1, 1});
  ExpectTilesMatch(n1, {x1, w1});
}

TEST(NnKernels, MatMulIntraOpTilesMatchOneCall) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{1, 300, 96}, {96, 200}},           // Row bands (batch folded into M).
      {{1, 1, 384}, {384, 1536}},          // Column blocks (decoder step).
      {{1, 32, 96}, {96, 768}},            // Column blocks (few rows, n > 4m).
      {{2, 6, 100, 64}, {2, 6, 64, 100}},  // Batch slices (attention).
      {{1, 2, 3, 500}, {1, 2, 500, 700}},  // Few batches, few rows: one call.
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE("case " + std::to_string(c));
    Tensor a = Random(cases[c].first, 50 + static_cast<uint32_t>(c));
    Tensor b = Random(cases[c].second, 60 + static_cast<uint32_t>(c));
    for (bool constant : {true, false}) {
      OneNode n("MatMul", 13, {a, b}, {false, constant}, 1);
      ExpectTilesMatch(n, {a, b});
    }
  }
}

// FusedMatMul's epilogue (bias, GELU, residual added after it) on column
// tiles, which compute into a dense buffer and copy into Y's columns: the
// residual must be read from Y first. Few rows, n > 4m: column blocks.
TEST(NnKernels, FusedMatMulColumnTilesKeepBiasActivationAndResidual) {
  const int64_t m = 8, k = 256, n = 1024;  // Over the 2 MFLOP tiling floor.
  Tensor a = Random({1, m, k}, 80), w = Random({k, n}, 81), bias = Random({n}, 82);
  Tensor z = Random({1, m, n}, 83);
  OneNode f("FusedMatMul", 1, {a, w, bias, z}, {false, true, true, false}, 1);
  f.node.domain = "com.parallax";
  f.node.attrs["activation"] = StrAttr("Gelu");
  f.node.attrs["sum_after_activation"] = IntAttr(1);
  ExpectTilesMatch(f, {a, w, bias, z});
  ASSERT_TRUE(f.Create().ok());
  Result<std::vector<Tensor>> y = f.Run({a, w, bias, z});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  std::vector<float> want(static_cast<size_t>(m * n));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) {
      double acc = bias.data<float>()[c];
      for (int64_t i = 0; i < k; ++i)
        acc += static_cast<double>(a.data<float>()[r * k + i]) * w.data<float>()[i * n + c];
      const double gelu = 0.5 * acc * (1 + std::erf(acc / std::sqrt(2.0)));
      want[static_cast<size_t>(r * n + c)] = static_cast<float>(gelu + z.data<float>()[r * n + c]);
    }
  ExpectNear((*y)[0], want, 1e-4f);
}

// One column (a decoder's tied vocabulary projection W [V, K] x h [K, 1]):
// row dots, not oneDNN; bit-identical for every thread count.
TEST(NnKernels, MatMulWithOneColumnIsRowDots) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3001, 40}, {40, 1}},     // Split over threads.
      {{2, 3, 5, 17}, {17, 1}},  // Batch folded into the rows.
      {{1, 1, 384}, {384, 1}},   // One row.
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE("case " + std::to_string(c));
    const Shape& as = cases[c].first;
    Tensor a = Random(as, 80 + static_cast<uint32_t>(c)), b = Random(cases[c].second, 90);
    const int64_t k = as.back(), rows = a.numel() / k;
    std::vector<float> ref(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j)
        acc += double{a.data<float>()[r * k + j]} * b.data<float>()[j];
      ref[static_cast<size_t>(r)] = static_cast<float>(acc);
    }
    Shape ys = as;
    ys.back() = 1;
    for (bool a_constant : {true, false}) {
      OneNode n("MatMul", 13, {a, b}, {a_constant, false}, 1);
      ASSERT_TRUE(n.Create().ok());
      Result<std::vector<Tensor>> y1 = n.Run({a, b});
      ASSERT_TRUE(y1.ok()) << y1.status().ToString();
      EXPECT_EQ((*y1)[0].shape(), ys);
      ExpectNear((*y1)[0], ref, 1e-5f);
      ThreadPool pool(4);
      for (int threads : {2, 3, 4}) {
        Result<std::vector<Tensor>> y = n.Run({a, b}, IntraOp{&pool, threads});
        ASSERT_TRUE(y.ok()) << y.status().ToString();
        ASSERT_EQ(0, std::memcmp((*y)[0].data<float>(), (*y1)[0].data<float>(),
                                 static_cast<size_t>(rows) * sizeof(float)));
      }
    }
  }
}

TEST(NnKernels, PoolIntraOpTilesMatchOneCall) {
  Tensor x = Random({2, 13, 41, 40}, 70);
  for (const char* op : {"MaxPool", "AveragePool"}) {
    SCOPED_TRACE(op);
    OneNode n(op, 13, {x}, {false}, 1);
    n.node.attrs["kernel_shape"] = IntsAttr({5, 5});
    n.node.attrs["pads"] = IntsAttr({2, 2, 2, 2});
    ExpectTilesMatch(n, {x});
  }
}

}  // namespace
}  // namespace parallax
