// Elementwise kernels: cases the ONNX conformance data does not cover
// (general broadcasting, integer edge cases, legacy opsets, error messages).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/kernels/elementwise_util.h"
#include "backends/cpu/kernels/families.h"
#include "kernel_test_util.h"
#include "ops/kernel.h"
#include "ops/registry.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

using testing::FloatAttr;
using testing::FloatsAttr;
using testing::IntAttr;
using testing::IntsAttr;
using testing::StrAttr;

struct OpCall {
  std::string op;
  int opset = 17;
  std::map<std::string, Attribute> attrs;
  std::vector<Tensor> inputs;  // Undefined tensor = omitted input.
  int num_outputs = 1;
};

Result<std::vector<Tensor>> RunOp(const OpCall& call) {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterElementwiseOps(*r);
    return r;
  }();
  Graph graph;
  Node node;
  node.op_type = call.op;
  node.name = "n";
  node.opset = call.opset;
  node.attrs = call.attrs;
  std::vector<const Tensor*> ins;
  for (const Tensor& t : call.inputs) {
    node.inputs.push_back(t.defined() ? 0 : kNoValue);
    ins.push_back(t.defined() ? &t : nullptr);
  }
  for (int i = 0; i < call.num_outputs; ++i) node.outputs.push_back(i);
  const OpRegistry::Entry* e = registry->Find("", call.op, call.opset);
  if (e == nullptr) return NotFound("no kernel for " + call.op);
  KernelInit init{node, graph, nullptr};
  PX_ASSIGN_OR_RETURN(std::unique_ptr<Kernel> k, e->factory(init));
  testing::OwnedAllocator alloc;
  KernelContext ctx(node, ins, {}, call.num_outputs, &alloc);
  PX_RETURN_IF_ERROR(k->Run(ctx));
  return ctx.outputs();
}

template <typename T>
Tensor Make(DType dt, Shape shape, std::vector<T> v) {
  return Tensor::FromVector(dt, std::move(shape), v);
}
Tensor F32(Shape shape, std::vector<float> v) { return Make(DType::kFloat32, shape, v); }
Tensor I32(Shape shape, std::vector<int32_t> v) { return Make(DType::kInt32, shape, v); }

template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

std::vector<float> Iota(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return v;
}

// Reference broadcast add via StridedIndex.
std::vector<float> NaiveAdd(const Tensor& a, const Tensor& b) {
  Shape so = *BroadcastShapes(a.shape(), b.shape());
  std::vector<float> out;
  StridedIndex it(so, {BroadcastStrides(a.shape(), so), BroadcastStrides(b.shape(), so)});
  do {
    out.push_back(a.data<float>()[it.offset(0)] + b.data<float>()[it.offset(1)]);
  } while (it.Next());
  return out;
}

TEST(Elementwise, BroadcastShapesMatchReference) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {3, 1}},    {{2, 3, 2, 2}, {3, 1, 1}},
      {{4, 1}, {1, 5}},       {{1, 3, 1, 5}, {2, 1, 4, 1}},
      {{2, 1, 3}, {2, 4, 3}}, {{5}, {3, 1}},
      {{1}, {2, 3}},          {{2, 3}, {}},
      {{3, 1, 4}, {1, 1, 1}}};
  for (const auto& [sa, sb] : cases) {
    Tensor a = F32(sa, Iota(NumElements(sa)));
    std::vector<float> vb = Iota(NumElements(sb));
    for (float& x : vb) x *= 100;
    Tensor b = F32(sb, vb);
    for (int swap = 0; swap < 2; ++swap) {
      const Tensor& x = swap ? b : a;
      const Tensor& y = swap ? a : b;
      auto r = RunOp({"Add", 17, {}, {x, y}});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ((*r)[0].shape(), *BroadcastShapes(x.shape(), y.shape()));
      EXPECT_EQ(Values<float>((*r)[0]), NaiveAdd(x, y))
          << ShapeToString(x.shape()) << " + " << ShapeToString(y.shape());
    }
  }
}

TEST(Elementwise, IntegerDivisionTruncatesAndNeverTraps) {
  int32_t mn = std::numeric_limits<int32_t>::min();
  auto r = RunOp({"Div", 14, {}, {I32({5}, {7, -7, 7, 3, mn}), I32({5}, {2, 2, 0, -1, -1})}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int32_t>((*r)[0]), (std::vector<int32_t>{3, -3, 0, -3, mn}));
}

TEST(Elementwise, IntegerModFollowsDivisorSign) {
  Tensor a = I32({4}, {-4, 4, -4, 5});
  Tensor b = I32({4}, {3, -3, -3, 0});
  auto r = RunOp({"Mod", 13, {}, {a, b}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int32_t>((*r)[0]), (std::vector<int32_t>{2, -2, -1, 0}));
  auto f = RunOp({"Mod", 13, {{"fmod", IntAttr(1)}}, {a, b}});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(Values<int32_t>((*f)[0]), (std::vector<int32_t>{-1, 1, -1, 0}));
}

TEST(Elementwise, BitShiftOutOfRangeIsZero) {
  Tensor a = Make<uint8_t>(DType::kUInt8, {3}, {1, 128, 255});
  Tensor b = Make<uint8_t>(DType::kUInt8, {3}, {3, 1, 8});
  auto l = RunOp({"BitShift", 11, {{"direction", StrAttr("LEFT")}}, {a, b}});
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(Values<uint8_t>((*l)[0]), (std::vector<uint8_t>{8, 0, 0}));
  auto bad = RunOp({"BitShift", 11, {{"direction", StrAttr("UP")}}, {a, b}});
  EXPECT_FALSE(bad.ok());
}

TEST(Elementwise, PowMixedDtypes) {
  auto r = RunOp({"Pow", 15, {}, {F32({3}, {2, 3, 4}), I32({3}, {3, 2, -1})}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<float>((*r)[0]), (std::vector<float>{8, 9, 0.25f}));
  auto i = RunOp({"Pow", 15, {}, {I32({2}, {3, -2}), F32({1}, {2})}});
  ASSERT_TRUE(i.ok()) << i.status().ToString();
  EXPECT_EQ((*i)[0].dtype(), DType::kInt32);
  EXPECT_EQ(Values<int32_t>((*i)[0]), (std::vector<int32_t>{9, 4}));
}

TEST(Elementwise, LegacyAxisBroadcast) {
  // Opset 6: B of shape [3] aligned at axis 1 of A [2,3,2].
  Tensor a = F32({2, 3, 2}, Iota(12));
  Tensor b = F32({3}, {100, 200, 300});
  auto r = RunOp({"Add", 6, {{"broadcast", IntAttr(1)}, {"axis", IntAttr(1)}}, {a, b}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<float>((*r)[0]),
            (std::vector<float>{100, 101, 202, 203, 304, 305, 106, 107, 208, 209, 310, 311}));
}

TEST(Elementwise, ErrorsNameTheProblem) {
  auto shapes = RunOp({"Add", 14, {}, {F32({2, 3}, Iota(6)), F32({4}, Iota(4))}});
  ASSERT_FALSE(shapes.ok());
  EXPECT_NE(shapes.status().message().find("[2,3]"), std::string::npos);
  auto dtypes = RunOp({"Mul", 14, {}, {F32({1}, {1}), I32({1}, {1})}});
  ASSERT_FALSE(dtypes.ok());
  EXPECT_NE(dtypes.status().message().find("int32"), std::string::npos);
  auto missing = RunOp({"Sub", 14, {}, {F32({1}, {1})}});
  EXPECT_FALSE(missing.ok());
  auto cond = RunOp({"Where", 16, {}, {F32({1}, {1}), F32({1}, {1}), F32({1}, {1})}});
  EXPECT_FALSE(cond.ok());
  auto unary = RunOp({"Exp", 13, {}, {I32({1}, {1})}});
  ASSERT_FALSE(unary.ok());
  EXPECT_EQ(unary.status().code(), StatusCode::kInvalidArgument);
  Tensor ratio = F32({}, {0.5f});
  Tensor train = Make<bool>(DType::kBool, {}, {true});
  auto drop = RunOp({"Dropout", 13, {}, {F32({2}, {1, 2}), ratio, train}});
  ASSERT_FALSE(drop.ok());
  EXPECT_EQ(drop.status().code(), StatusCode::kUnsupported);
}

TEST(Elementwise, WhereBroadcastsThreeWays) {
  Tensor c = Make<bool>(DType::kBool, {2, 1}, {true, false});
  Tensor x = F32({1, 3}, {1, 2, 3});
  Tensor y = F32({}, {-1});
  auto r = RunOp({"Where", 16, {}, {c, x, y}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>((*r)[0]), (std::vector<float>{1, 2, 3, -1, -1, -1}));
}

TEST(Elementwise, ClipIntegersAndLegacyAttributes) {
  Tensor x = I32({4}, {-5, 0, 5, 10});
  auto r = RunOp({"Clip", 13, {}, {x, I32({}, {-1})}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int32_t>((*r)[0]), (std::vector<int32_t>{-1, 0, 5, 10}));
  auto o =
      RunOp({"Clip", 6, {{"min", FloatAttr(0)}, {"max", FloatAttr(6)}}, {F32({3}, {-1, 3, 9})}});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(Values<float>((*o)[0]), (std::vector<float>{0, 3, 6}));
}

TEST(Elementwise, CastTruncatesAndHandlesHalfAndBool) {
  auto r = RunOp({"Cast", 13, {{"to", IntAttr(6)}}, {F32({3}, {-1.7f, 2.9f, 0.0f})}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int32_t>((*r)[0]), (std::vector<int32_t>{-1, 2, 0}));
  auto h = RunOp({"Cast", 13, {{"to", IntAttr(10)}}, {F32({2}, {1.5f, -2.25f})}});
  ASSERT_TRUE(h.ok());
  auto back = RunOp({"Cast", 13, {{"to", IntAttr(9)}}, {(*h)[0]}});
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(Values<bool>((*back)[0]), (std::vector<bool>{true, true}));
  auto old = RunOp({"Cast", 1, {{"to", StrAttr("DOUBLE")}}, {F32({1}, {0.5f})}});
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ((*old)[0].dtype(), DType::kFloat64);
}

TEST(Elementwise, HalfArithmetic) {
  auto h = RunOp({"Cast", 13, {{"to", IntAttr(10)}}, {F32({2, 2}, {1, 2, 3, 4})}});
  ASSERT_TRUE(h.ok());
  auto s = RunOp({"Mul", 14, {}, {(*h)[0], (*h)[0]}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ((*s)[0].dtype(), DType::kFloat16);
  auto f = RunOp({"Cast", 13, {{"to", IntAttr(1)}}, {(*s)[0]}});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(Values<float>((*f)[0]), (std::vector<float>{1, 4, 9, 16}));
}

TEST(Elementwise, VariadicBroadcast) {
  auto r = RunOp({"Max", 13, {}, {F32({3}, {1, 5, 2}), F32({2, 1}, {3, 0}), F32({}, {1})}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<float>((*r)[0]), (std::vector<float>{3, 5, 3, 1, 5, 2}));
  auto m = RunOp({"Mean", 13, {}, {F32({2}, {1, 2}), F32({2}, {3, 6})}});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Values<float>((*m)[0]), (std::vector<float>{2, 4}));
}

TEST(Elementwise, FastFloatMathMatchesLibm) {
  double max_exp = 0, max_tanh = 0, max_erf = 0;
  for (float x = -95.0f; x < 95.0f; x += 0.000731f) {
    const double e = std::exp(static_cast<double>(x));
    if (e > 1.2e-38 && e < 3.4e38) max_exp = std::max(max_exp, std::fabs(ExpF(x) - e) / e);
    const double t = std::tanh(static_cast<double>(x));
    if (t != 0) max_tanh = std::max(max_tanh, std::fabs(TanhF(x) - t) / std::fabs(t));
    const double r = std::erf(static_cast<double>(x));
    if (r != 0) max_erf = std::max(max_erf, std::fabs(ErfF(x) - r) / std::fabs(r));
  }
  EXPECT_LT(max_exp, 1e-6);
  EXPECT_LT(max_tanh, 1e-6);
  EXPECT_LT(max_erf, 1e-6);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ExpF(inf), inf);
  EXPECT_EQ(ExpF(-inf), 0.0f);
  EXPECT_EQ(ExpF(100.0f), inf);
  EXPECT_TRUE(std::isnan(ExpF(std::nanf(""))));
  EXPECT_EQ(TanhF(inf), 1.0f);
  EXPECT_EQ(TanhF(-inf), -1.0f);
  EXPECT_TRUE(std::isnan(TanhF(std::nanf(""))));
  EXPECT_EQ(ErfF(-inf), -1.0f);
  EXPECT_TRUE(std::isnan(ErfF(std::nanf(""))));
}

TEST(Elementwise, SigmoidSaturates) {
  auto r = RunOp({"Sigmoid", 13, {}, {F32({4}, {-200, -20, 0, 200})}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<float> v = Values<float>((*r)[0]);
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_NEAR(v[1], 2.0611537e-9f, 1e-15f);
  EXPECT_EQ(v[2], 0.5f);
  EXPECT_EQ(v[3], 1.0f);
}

TEST(Elementwise, OpsWithoutConformanceData) {
  // Mish, Gelu and the Bitwise ops have no tests in the installed ONNX data.
  const std::vector<float> xs = {-30, -3, -0.5f, 0, 0.25f, 2, 40};
  auto mish = RunOp({"Mish", 18, {}, {F32({7}, xs)}});
  auto gelu = RunOp({"Gelu", 20, {}, {F32({7}, xs)}});
  auto gelu_t = RunOp({"Gelu", 20, {{"approximate", StrAttr("tanh")}}, {F32({7}, xs)}});
  ASSERT_TRUE(mish.ok() && gelu.ok() && gelu_t.ok());
  for (size_t i = 0; i < xs.size(); ++i) {
    const double x = xs[i];
    const double m = x * std::tanh(std::log1p(std::exp(x)));
    const double g = 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    const double gt = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    EXPECT_NEAR((*mish)[0].data<float>()[i], m, 1e-6 + 1e-6 * std::fabs(m));
    EXPECT_NEAR((*gelu)[0].data<float>()[i], g, 1e-6 + 1e-6 * std::fabs(g));
    EXPECT_NEAR((*gelu_t)[0].data<float>()[i], gt, 1e-6 + 1e-6 * std::fabs(gt));
  }
  Tensor a = I32({3}, {0b1100, -1, 7});
  Tensor b = I32({1}, {0b1010});
  auto band = RunOp({"BitwiseAnd", 18, {}, {a, b}});
  auto bor = RunOp({"BitwiseOr", 18, {}, {a, b}});
  auto bxor = RunOp({"BitwiseXor", 18, {}, {a, b}});
  auto bnot = RunOp({"BitwiseNot", 18, {}, {a}});
  ASSERT_TRUE(band.ok() && bor.ok() && bxor.ok() && bnot.ok());
  EXPECT_EQ(Values<int32_t>((*band)[0]), (std::vector<int32_t>{8, 10, 2}));
  EXPECT_EQ(Values<int32_t>((*bor)[0]), (std::vector<int32_t>{14, -1, 15}));
  EXPECT_EQ(Values<int32_t>((*bxor)[0]), (std::vector<int32_t>{6, -11, 13}));
  EXPECT_EQ(Values<int32_t>((*bnot)[0]), (std::vector<int32_t>{~12, 0, ~7}));
  auto bad = RunOp({"BitwiseAnd", 18, {}, {F32({1}, {1}), F32({1}, {1})}});
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace parallax
