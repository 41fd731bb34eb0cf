// Reduction-family kernels on cases the ONNX 1.12 conformance data does not
// cover: opset-18 axes inputs, empty reductions, non-contiguous axes, legacy
// Softmax coercion, TopK ties, loss ignore_index, and error reporting.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "backends/cpu/kernels/reduction_util.h"
#include "kernel_test_util.h"
#include "ops/kernel.h"
#include "ops/registry.h"

namespace parallax {
namespace {

using testing::FloatAttr;
using testing::FloatsAttr;
using testing::IntAttr;
using testing::IntsAttr;
using testing::StrAttr;

// Runs one node; inputs may hold undefined tensors for omitted inputs.
struct RunResult {
  Status status;
  std::vector<Tensor> outputs;
};

RunResult RunOp(const std::string& op, int opset, const std::vector<Tensor>& inputs,
                int num_outputs, std::map<std::string, Attribute> attrs = {}) {
  OpRegistry registry;
  RegisterReductionOps(registry);
  Node node;
  node.name = "n";
  node.op_type = op;
  node.opset = opset;
  node.attrs = std::move(attrs);
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < inputs.size(); ++i) {
    node.inputs.push_back(inputs[i].defined() ? static_cast<ValueId>(i) : kNoValue);
    ins.push_back(inputs[i].defined() ? &inputs[i] : nullptr);
  }
  for (int i = 0; i < num_outputs; ++i) node.outputs.push_back(100 + i);
  Graph graph;
  RunResult r;
  const OpRegistry::Entry* e = registry.Find("", op, opset);
  if (!e) {
    r.status = NotFound(op);
    return r;
  }
  KernelInit init{node, graph, nullptr};
  auto kernel = e->factory(init);
  if (!kernel.ok()) {
    r.status = kernel.status();
    return r;
  }
  testing::OwnedAllocator alloc;
  KernelContext ctx(node, ins, {}, num_outputs, &alloc);
  r.status = (*kernel)->Run(ctx);
  r.outputs = ctx.outputs();
  return r;
}

Tensor F32(Shape shape, std::vector<float> v) {
  return Tensor::FromVector(DType::kFloat32, std::move(shape), v);
}
Tensor I64(Shape shape, std::vector<int64_t> v) {
  return Tensor::FromVector(DType::kInt64, std::move(shape), v);
}
std::vector<float> Floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}
std::vector<int64_t> Ints(const Tensor& t) {
  return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel());
}

TEST(Reduction, Opset18AxesInputNonContiguous) {
  // [2,2,2]: reduce axes {0,2}, keepdims=0.
  Tensor x = F32({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  RunResult r = RunOp("ReduceMean", 18, {x, I64({2}, {0, -1})}, 1, {{"keepdims", IntAttr(0)}});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.outputs[0].shape(), (Shape{2}));
  EXPECT_EQ(Floats(r.outputs[0]), (std::vector<float>{3.5f, 5.5f}));
}

TEST(Reduction, NoopWithEmptyAxesAppliesElementwisePart) {
  Tensor x = F32({3}, {-1, 2, -3});
  RunResult r =
      RunOp("ReduceSumSquare", 18, {x, I64({0}, {})}, 1, {{"noop_with_empty_axes", IntAttr(1)}});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Floats(r.outputs[0]), (std::vector<float>{1, 4, 9}));
  r = RunOp("ReduceSum", 13, {x}, 1, {{"noop_with_empty_axes", IntAttr(1)}});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Floats(r.outputs[0]), (std::vector<float>{-1, 2, -3}));
}

TEST(Reduction, EmptySetIdentities) {
  Tensor x = F32({2, 0}, {});
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    const char* op;
    float want;
  } cases[] = {{"ReduceSum", 0},   {"ReduceProd", 1},      {"ReduceMax", -inf},
               {"ReduceMin", inf}, {"ReduceLogSum", -inf}, {"ReduceLogSumExp", -inf},
               {"ReduceL1", 0},    {"ReduceSumSquare", 0}, {"ReduceL2", 0}};
  for (const Case& c : cases) {
    RunResult r = RunOp(c.op, 18, {x, I64({1}, {1})}, 1);
    ASSERT_TRUE(r.status.ok()) << c.op << ": " << r.status.ToString();
    EXPECT_EQ(r.outputs[0].shape(), (Shape{2, 1})) << c.op;
    EXPECT_EQ(Floats(r.outputs[0]), (std::vector<float>{c.want, c.want})) << c.op;
  }
}

TEST(Reduction, IntMaxOfEmptySetIsLowest) {
  Tensor x = Tensor::Empty(DType::kInt32, {0});
  RunResult r = RunOp("ReduceMax", 13, {x}, 1, {{"keepdims", IntAttr(0)}});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.outputs[0].data<int32_t>()[0], std::numeric_limits<int32_t>::lowest());
}

TEST(Reduction, LegacySoftmaxCoercesTo2D) {
  // [1,2,2] at axis 1 (opset 11): softmax over all 4 values.
  Tensor x = F32({1, 2, 2}, {0, 0, 0, 0});
  RunResult r = RunOp("Softmax", 11, {x}, 1);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Floats(r.outputs[0]), (std::vector<float>{0.25f, 0.25f, 0.25f, 0.25f}));
  r = RunOp("Softmax", 13, {x}, 1);  // Opset 13: axis -1 only.
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Floats(r.outputs[0]), (std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f}));
}

TEST(Reduction, TopKTiesPreferLowerIndex) {
  Tensor x = F32({5}, {1, 3, 3, 2, 3});
  RunResult r = RunOp("TopK", 11, {x, I64({1}, {2})}, 2);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Floats(r.outputs[0]), (std::vector<float>{3, 3}));
  EXPECT_EQ(Ints(r.outputs[1]), (std::vector<int64_t>{1, 2}));
  r = RunOp("TopK", 1, {x}, 2, {{"k", IntAttr(1)}});  // k attribute in opset 1.
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Ints(r.outputs[1]), (std::vector<int64_t>{1}));
}

TEST(Reduction, NllLossMeanIgnoresIndex) {
  // Log-probs [2,2]; second target ignored: mean = -(-1) / 1.
  Tensor x = F32({2, 2}, {-1, -2, -3, -4});
  RunResult r = RunOp("NegativeLogLikelihoodLoss", 13, {x, I64({2}, {0, 1})}, 1,
                      {{"ignore_index", IntAttr(1)}});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.outputs[0].rank(), 0);
  EXPECT_FLOAT_EQ(r.outputs[0].data<float>()[0], 1.0f);
}

TEST(Reduction, ErrorsNameTheNodeAndValues) {
  Tensor x = F32({2, 3}, {0, 1, 2, 3, 4, 5});
  RunResult r = RunOp("ReduceSum", 13, {x, I64({1}, {2})}, 1);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("axis 2 is out of range"), std::string::npos);
  EXPECT_NE(r.status.message().find("ReduceSum"), std::string::npos);
  r = RunOp("NegativeLogLikelihoodLoss", 13, {x, I64({2}, {0, 7})}, 1);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("target value 7"), std::string::npos);
  r = RunOp("SoftmaxCrossEntropyLoss", 13, {x, I64({2}, {0, 1})}, 1,
            {{"reduction", StrAttr("avg")}});
  ASSERT_FALSE(r.status.ok());
  r = RunOp("TopK", 11, {x, I64({1}, {4})}, 2);
  ASSERT_FALSE(r.status.ok());
  r = RunOp("Softmax", 13, {Tensor::Empty(DType::kInt32, {2})}, 1);
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("Softmax"), std::string::npos);
  r = RunOp("ReduceMax", 11, {F32({}, {1})}, 1, {{"axes", IntsAttr({0})}});
  ASSERT_FALSE(r.status.ok());
}

TEST(Reduction, ExpFAccuracyAndSpecialValues) {
  double worst = 0;
  for (float x = -87.0f; x < 88.5f; x += 0.01f) {
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(ExpF(x) - want) / want);
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_EQ(ExpF(0.0f), 1.0f);
  EXPECT_EQ(ExpF(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(ExpF(-1000.0f), 0.0f);
  EXPECT_TRUE(std::isinf(ExpF(1000.0f)));
  EXPECT_TRUE(std::isnan(ExpF(std::nanf(""))));
}

}  // namespace
}  // namespace parallax
