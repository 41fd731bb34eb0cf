// Kernel-level tests of the sequence-model (RNN/GRU/LSTM) and misc (Einsum,
// Det, quantization, random) op families: cases the ONNX backend data does
// not cover (constant vs run-time weights, layouts, errors, seeds).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "kernel_test_util.h"
#include "ops/kernel.h"

namespace parallax {
namespace {

using testing::FloatAttr;
using testing::FloatsAttr;
using testing::IntAttr;
using testing::IntsAttr;
using testing::StrAttr;

struct OpCall {
  std::string op;
  int opset = 14;
  std::map<std::string, Attribute> attrs;
  std::vector<Tensor> inputs;  // Undefined tensor = omitted optional input.
  std::vector<bool> constant;  // Per input: visible to the kernel at creation.
  int num_outputs = 1;
};

OpCall Call(const std::string& op, int opset) {
  OpCall c;
  c.op = op;
  c.opset = opset;
  return c;
}

Result<std::vector<Tensor>> RunOp(const OpCall& c) {
  OpRegistry reg;
  RegisterSequenceModelOps(reg);
  RegisterMiscOps(reg);
  Graph g;
  Node node;
  node.op_type = c.op;
  node.opset = c.opset;
  node.attrs = c.attrs;
  std::vector<const Tensor*> ptrs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].defined()) {
      node.inputs.push_back(kNoValue);
      ptrs.push_back(nullptr);
      continue;
    }
    Value v;
    v.name = "in" + std::to_string(i);
    v.dtype = c.inputs[i].dtype();
    if (i < c.constant.size() && c.constant[i]) v.constant = c.inputs[i];
    node.inputs.push_back(g.AddValue(v));
    ptrs.push_back(&c.inputs[i]);
  }
  for (int i = 0; i < c.num_outputs; ++i) node.outputs.push_back(g.AddValue(Value{}));
  g.nodes.push_back(node);
  const OpRegistry::Entry* e = reg.Find("", c.op, c.opset);
  if (e == nullptr) return NotFound("no kernel for " + c.op);
  KernelInit init{g.nodes[0], g, nullptr};
  PX_ASSIGN_OR_RETURN(std::unique_ptr<Kernel> k, e->factory(init));
  testing::OwnedAllocator alloc;
  KernelContext ctx(g.nodes[0], ptrs, {}, c.num_outputs, &alloc);
  PX_RETURN_IF_ERROR(k->Run(ctx));
  return ctx.outputs();
}

Tensor Floats(Shape shape, const std::vector<float>& v) {
  return Tensor::FromVector(DType::kFloat32, std::move(shape), v);
}

Tensor Ramp(Shape shape, float scale, float offset) {
  std::vector<float> v(static_cast<size_t>(NumElements(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<float>(i) * scale + offset);
  return Floats(std::move(shape), v);
}

std::vector<float> Values(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

TEST(Lstm, ZeroWeightsMatchHandComputation) {
  // All gates see 0: i = f = o = 0.5, g = tanh(0) = 0, so C = 0.5 * C0.
  OpCall c = Call("LSTM", 14);
  c.attrs["hidden_size"] = IntAttr(1);
  c.inputs = {Floats({1, 1, 1}, {3.f}),
              Floats({1, 4, 1}, {0, 0, 0, 0}),
              Floats({1, 4, 1}, {0, 0, 0, 0}),
              Tensor(),
              Tensor(),
              Floats({1, 1, 1}, {0.f}),
              Floats({1, 1, 1}, {1.f})};
  c.num_outputs = 3;
  auto out = RunOp(c);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_FLOAT_EQ((*out)[2].data<float>()[0], 0.5f);
  EXPECT_NEAR((*out)[1].data<float>()[0], 0.5f * std::tanh(0.5f), 1e-7);
  EXPECT_NEAR((*out)[0].data<float>()[0], 0.5f * std::tanh(0.5f), 1e-7);
}

OpCall BidirectionalLstm(int layout, bool constant_weights) {
  const int64_t seq = 4, batch = 3, in = 5, h = 6;
  OpCall c = Call("LSTM", 14);
  c.attrs["hidden_size"] = IntAttr(h);
  c.attrs["direction"] = StrAttr("bidirectional");
  c.attrs["layout"] = IntAttr(layout);
  Tensor x = Ramp({seq, batch, in}, 0.37f, 0.1f);
  Tensor h0 = Ramp({2, batch, h}, 0.11f, 0.5f);
  if (layout == 1) {  // Swap the first two axes of X and initial_h.
    Tensor xt = Tensor::Empty(DType::kFloat32, {batch, seq, in});
    for (int64_t t = 0; t < seq; ++t)
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t k = 0; k < in; ++k)
          xt.data<float>()[(b * seq + t) * in + k] = x.data<float>()[(t * batch + b) * in + k];
    Tensor ht = Tensor::Empty(DType::kFloat32, {batch, 2, h});
    for (int64_t d = 0; d < 2; ++d)
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t k = 0; k < h; ++k)
          ht.data<float>()[(b * 2 + d) * h + k] = h0.data<float>()[(d * batch + b) * h + k];
    x = xt;
    h0 = ht;
  }
  Tensor lens = Tensor::FromVector(DType::kInt32, {batch}, std::vector<int32_t>{4, 2, 0});
  c.inputs = {x,
              Ramp({2, 4 * h, in}, 0.71f, 0.f),
              Ramp({2, 4 * h, h}, 0.53f, 1.f),
              Ramp({2, 8 * h}, 0.29f, 2.f),
              lens,
              h0,
              Tensor(),
              Ramp({2, 3 * h}, 0.9f, 0.3f)};
  c.constant = {false, constant_weights, constant_weights, constant_weights};
  c.num_outputs = 3;
  return c;
}

TEST(Lstm, ConstantAndRuntimeWeightsAgree) {
  auto a = RunOp(BidirectionalLstm(0, true));
  auto b = RunOp(BidirectionalLstm(0, false));
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Values((*a)[i]), Values((*b)[i]));
}

TEST(Lstm, LayoutOneIsTransposedLayoutZero) {
  auto a = RunOp(BidirectionalLstm(0, true));
  auto b = RunOp(BidirectionalLstm(1, true));
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().ToString();
  const Tensor& y0 = (*a)[0];  // [seq, 2, batch, h]
  const Tensor& y1 = (*b)[0];  // [batch, seq, 2, h]
  ASSERT_EQ(y1.shape(), (Shape{3, 4, 2, 6}));
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t d = 0; d < 2; ++d)
      for (int64_t bb = 0; bb < 3; ++bb)
        for (int64_t k = 0; k < 6; ++k)
          EXPECT_EQ(y0.data<float>()[((t * 2 + d) * 3 + bb) * 6 + k],
                    y1.data<float>()[((bb * 4 + t) * 2 + d) * 6 + k]);
  // Batch 2 has length 0: its Y is zero and Y_h is initial_h.
  EXPECT_EQ(y0.data<float>()[((0 * 2 + 0) * 3 + 2) * 6], 0.f);
}

TEST(Rnn, RejectsBadShapesAndAttributes) {
  OpCall c = Call("RNN", 14);
  c.attrs["hidden_size"] = IntAttr(3);
  c.inputs = {Ramp({2, 1, 4}, 1, 0), Ramp({1, 3, 5}, 1, 0), Ramp({1, 3, 3}, 1, 0)};
  auto r = RunOp(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("W must have shape [1,3,4]"), std::string::npos);
  c.inputs[1] = Ramp({1, 3, 4}, 1, 0);
  c.inputs.push_back(Tensor());
  c.inputs.push_back(Tensor::FromVector(DType::kInt32, {1}, std::vector<int32_t>{7}));
  r = RunOp(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sequence_lens"), std::string::npos);
  c.inputs.resize(3);
  c.attrs["direction"] = StrAttr("sideways");
  EXPECT_FALSE(RunOp(c).ok());
}

TEST(Einsum, DiagonalTransposeAndErrors) {
  OpCall c = Call("Einsum", 12);
  c.attrs["equation"] = StrAttr("ii->i");
  c.inputs = {Floats({2, 2}, {1, 2, 3, 4})};
  auto r = RunOp(c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Values((*r)[0]), (std::vector<float>{1, 4}));
  c.attrs["equation"] = StrAttr("ba");  // Implicit output "ab": a transpose.
  r = RunOp(c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Values((*r)[0]), (std::vector<float>{1, 3, 2, 4}));
  c.attrs["equation"] = StrAttr("ij,jk->ik");
  EXPECT_FALSE(RunOp(c).ok());  // One input for two terms.
  c.attrs["equation"] = StrAttr("i.j");
  EXPECT_FALSE(RunOp(c).ok());
}

TEST(Det, BatchedAndNonSquare) {
  OpCall c = Call("Det", 11);
  c.inputs = {Floats({2, 2, 2}, {1, 2, 3, 4, 2, 0, 0, 3})};
  auto r = RunOp(c);
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR((*r)[0].data<float>()[0], -2.f, 1e-6);
  EXPECT_NEAR((*r)[0].data<float>()[1], 6.f, 1e-6);
  c.inputs = {Floats({2, 3}, {1, 2, 3, 4, 5, 6})};
  EXPECT_FALSE(RunOp(c).ok());
}

TEST(Quantize, RoundsHalfToEvenAndSaturates) {
  OpCall c = Call("QuantizeLinear", 13);
  c.inputs = {Floats({5}, {0.5f, 1.5f, 2.5f, -100.f, 1000.f}), Floats({}, {1.f}),
              Tensor::FromVector(DType::kInt8, {}, std::vector<int8_t>{1})};
  auto r = RunOp(c);
  ASSERT_TRUE(r.ok());
  const int8_t* q = (*r)[0].data<int8_t>();
  EXPECT_EQ(std::vector<int>(q, q + 5), (std::vector<int>{1, 3, 3, -99, 127}));
}

TEST(Quantize, DynamicOfZerosUsesUnitScale) {
  OpCall c = Call("DynamicQuantizeLinear", 11);
  c.inputs = {Floats({3}, {0, 0, 0})};
  c.num_outputs = 3;
  auto r = RunOp(c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[1].data<float>()[0], 1.f);
  EXPECT_EQ((*r)[2].data<uint8_t>()[0], 0);
}

TEST(Random, SeededKernelsRepeat) {
  OpCall c = Call("RandomUniform", 14);
  c.attrs["shape"] = IntsAttr({64});
  c.attrs["seed"] = FloatAttr(5.f);
  c.attrs["low"] = FloatAttr(-2.f);
  c.attrs["high"] = FloatAttr(-1.f);
  auto a = RunOp(c);
  auto b = RunOp(c);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Values((*a)[0]), Values((*b)[0]));
  for (float v : Values((*a)[0])) {
    EXPECT_GE(v, -2.f);
    EXPECT_LE(v, -1.f);
  }
}

}  // namespace
}  // namespace parallax
