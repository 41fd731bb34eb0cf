// Image op family kernels (Resize, Upsample, NonMaxSuppression, RoiAlign,
// GridSample, MaxUnpool): cases the ONNX conformance data does not cover.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "graph/graph.h"
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

// Runs one node; an undefined tensor in `inputs` is an omitted input.
Result<std::vector<Tensor>> RunNode(const std::string& op, int opset,
                                    std::map<std::string, Attribute> attrs,
                                    const std::vector<Tensor>& inputs, int num_outputs = 1) {
  OpRegistry registry;
  RegisterImageOps(registry);
  Graph graph;
  Node node;
  node.op_type = op;
  node.name = "n";
  node.opset = opset;
  node.attrs = std::move(attrs);
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      node.inputs.push_back(kNoValue);
      ptrs.push_back(nullptr);
      continue;
    }
    Value v;
    v.dtype = t.dtype();
    node.inputs.push_back(graph.AddValue(v));
    ptrs.push_back(&t);
  }
  for (int i = 0; i < num_outputs; ++i) node.outputs.push_back(graph.AddValue(Value{}));
  const OpRegistry::Entry* entry = registry.Find("", op, opset);
  if (entry == nullptr) return NotFound("no kernel for " + op);
  KernelInit init{node, graph, nullptr};
  PX_ASSIGN_OR_RETURN(std::unique_ptr<Kernel> kernel, entry->factory(init));
  testing::OwnedAllocator alloc;
  KernelContext ctx(node, ptrs, {}, num_outputs, &alloc);
  PX_RETURN_IF_ERROR(kernel->Run(ctx));
  return ctx.outputs();
}

Tensor F32(Shape s, std::vector<float> v) {
  return Tensor::FromVector(DType::kFloat32, std::move(s), v);
}
Tensor I64(Shape s, std::vector<int64_t> v) {
  return Tensor::FromVector(DType::kInt64, std::move(s), v);
}

std::vector<float> Floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

TEST(Resize, ScalesAndSizesTogetherIsAnError) {
  Result<std::vector<Tensor>> r = RunNode(
      "Resize", 13, {},
      {F32({1, 1, 2, 2}, {1, 2, 3, 4}), Tensor(), F32({4}, {1, 1, 2, 2}), I64({4}, {1, 1, 4, 4})});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("only one of scales and sizes"), std::string::npos);
}

TEST(Resize, BadInputsAreErrors) {
  const Tensor x = F32({1, 1, 2, 2}, {1, 2, 3, 4});
  EXPECT_FALSE(RunNode("Resize", 13, {}, {x}).ok());                                     // neither
  EXPECT_FALSE(RunNode("Resize", 13, {}, {x, Tensor(), F32({3}, {1, 2, 2})}).ok());      // rank
  EXPECT_FALSE(RunNode("Resize", 13, {}, {x, Tensor(), F32({4}, {1, 1, -2, 2})}).ok());  // sign
  EXPECT_FALSE(
      RunNode("Resize", 13, {{"mode", StrAttr("quartic")}}, {x, Tensor(), F32({4}, {1, 1, 2, 2})})
          .ok());
  EXPECT_FALSE(
      RunNode("Resize", 18, {{"axes", IntsAttr({2, -2})}}, {x, Tensor(), F32({2}, {2, 2})}).ok());
  EXPECT_FALSE(RunNode("Resize", 18, {{"axes", IntsAttr({4})}}, {x, Tensor(), F32({1}, {2})}).ok());
}

TEST(Resize, Uint8LinearRoundsAndSaturates) {
  Tensor x = Tensor::FromVector(DType::kUInt8, {1, 2}, std::vector<uint8_t>{0, 255});
  Result<std::vector<Tensor>> r = RunNode(
      "Resize", 13,
      {{"mode", StrAttr("linear")}, {"coordinate_transformation_mode", StrAttr("asymmetric")}},
      {x, Tensor(), F32({2}, {1, 2})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const uint8_t* y = (*r)[0].data<uint8_t>();
  EXPECT_EQ(std::vector<uint8_t>(y, y + 4), (std::vector<uint8_t>{0, 128, 255, 255}));
}

TEST(Resize, Float16MatchesFloat32) {
  std::vector<float> xs = {0.5f, -1.25f, 2.0f, 3.5f, 0.25f, -0.75f};
  std::vector<Half> hs;
  for (float v : xs) hs.push_back(FloatToHalf(v));
  const Tensor scales = F32({4}, {1, 1, 1.5f, 2.5f});
  std::map<std::string, Attribute> attrs = {{"mode", StrAttr("cubic")}};
  Result<std::vector<Tensor>> rf =
      RunNode("Resize", 13, attrs, {F32({1, 1, 2, 3}, xs), Tensor(), scales});
  Result<std::vector<Tensor>> rh =
      RunNode("Resize", 13, attrs,
              {Tensor::FromVector(DType::kFloat16, {1, 1, 2, 3}, hs), Tensor(), scales});
  ASSERT_TRUE(rf.ok() && rh.ok());
  ASSERT_EQ((*rh)[0].shape(), (Shape{1, 1, 3, 7}));
  for (int64_t i = 0; i < (*rf)[0].numel(); ++i) {
    EXPECT_NEAR(HalfToFloat((*rh)[0].data<Half>()[i]), (*rf)[0].data<float>()[i], 1e-2);
  }
}

TEST(Resize, NearestIntegerFactorOnBoolAndInt) {
  Tensor x =
      Tensor::FromVector(DType::kBool, {1, 1, 2, 2}, std::vector<bool>{true, false, false, true});
  Result<std::vector<Tensor>> r = RunNode("Resize", 13, {}, {x, Tensor(), F32({4}, {1, 1, 2, 2})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const bool* y = (*r)[0].data<bool>();
  EXPECT_EQ(std::vector<bool>(y, y + 16),
            (std::vector<bool>{1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1}));
  Tensor xi = Tensor::FromVector(DType::kInt32, {1, 3}, std::vector<int32_t>{7, 8, 9});
  r = RunNode("Upsample", 9, {}, {xi, F32({2}, {2, 3})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 9}));
  EXPECT_EQ((*r)[0].data<int32_t>()[9 + 4], 8);
}

TEST(NonMaxSuppression, ZeroMaxOutputGivesEmptyResult) {
  Result<std::vector<Tensor>> r =
      RunNode("NonMaxSuppression", 11, {}, {F32({1, 1, 4}, {0, 0, 1, 1}), F32({1, 1, 1}, {0.9f})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{0, 3}));
}

TEST(NonMaxSuppression, BadShapesAndThresholdsAreErrors) {
  EXPECT_FALSE(
      RunNode("NonMaxSuppression", 11, {}, {F32({1, 1, 3}, {0, 0, 1}), F32({1, 1, 1}, {1})}).ok());
  EXPECT_FALSE(RunNode("NonMaxSuppression", 11, {},
                       {F32({1, 2, 4}, {0, 0, 1, 1, 0, 0, 1, 1}), F32({1, 1, 1}, {1})})
                   .ok());
  EXPECT_FALSE(
      RunNode("NonMaxSuppression", 11, {},
              {F32({1, 1, 4}, {0, 0, 1, 1}), F32({1, 1, 1}, {1}), I64({1}, {3}), F32({1}, {1.5f})})
          .ok());
}

TEST(NonMaxSuppression, NoScoreThresholdKeepsNonOverlapping) {
  Result<std::vector<Tensor>> r =
      RunNode("NonMaxSuppression", 11, {},
              {F32({1, 3, 4}, {0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 5, 5, 6, 6}),
               F32({1, 1, 3}, {0.1f, 0.5f, 0.3f}), I64({1}, {5}), F32({1}, {0.5f})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)[0].shape(), (Shape{2, 3}));
  EXPECT_EQ((*r)[0].data<int64_t>()[2], 1);
  EXPECT_EQ((*r)[0].data<int64_t>()[5], 2);
}

TEST(RoiAlign, ConstantImageAveragesToConstant) {
  std::vector<float> xs(2 * 8 * 8, 3.0f);
  Result<std::vector<Tensor>> r =
      RunNode("RoiAlign", 16, {{"output_height", IntAttr(2)}, {"output_width", IntAttr(3)}},
              {F32({2, 1, 8, 8}, xs), F32({1, 4}, {1, 1, 5, 6}), I64({1}, {1})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 1, 2, 3}));
  for (float v : Floats((*r)[0])) EXPECT_NEAR(v, 3.0f, 1e-5);
  EXPECT_FALSE(
      RunNode("RoiAlign", 16, {}, {F32({2, 1, 8, 8}, xs), F32({1, 4}, {1, 1, 5, 6}), I64({1}, {2})})
          .ok());
  EXPECT_FALSE(RunNode("RoiAlign", 16, {{"mode", StrAttr("median")}},
                       {F32({2, 1, 8, 8}, xs), F32({1, 4}, {1, 1, 5, 6}), I64({1}, {0})})
                   .ok());
}

TEST(GridSample, IdentityGridWithAlignCorners) {
  const std::vector<float> xs = {1, 2, 3, 4, 5, 6};  // [1,1,2,3]
  std::vector<float> grid;
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 3; ++x) {
      grid.push_back(-1.0f + static_cast<float>(x));
      grid.push_back(-1.0f + 2.0f * static_cast<float>(y));
    }
  }
  for (const char* mode : {"bilinear", "nearest", "bicubic"}) {
    for (const char* pad : {"zeros", "border", "reflection"}) {
      Result<std::vector<Tensor>> r = RunNode(
          "GridSample", 16,
          {{"mode", StrAttr(mode)}, {"padding_mode", StrAttr(pad)}, {"align_corners", IntAttr(1)}},
          {F32({1, 1, 2, 3}, xs), F32({1, 2, 3, 2}, grid)});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      const std::vector<float> y = Floats((*r)[0]);
      for (size_t i = 0; i < xs.size(); ++i)
        EXPECT_NEAR(y[i], xs[i], 1e-5) << mode << " " << pad << " " << i;
    }
  }
  EXPECT_FALSE(
      RunNode("GridSample", 16, {}, {F32({1, 1, 2, 3}, xs), F32({1, 2, 3}, {0, 0, 0, 0, 0, 0})})
          .ok());
}

TEST(MaxUnpool, IndexOutOfRangeIsAnError) {
  std::map<std::string, Attribute> attrs = {{"kernel_shape", IntsAttr({2, 2})},
                                            {"strides", IntsAttr({2, 2})}};
  EXPECT_FALSE(
      RunNode("MaxUnpool", 11, attrs, {F32({1, 1, 1, 1}, {5}), I64({1, 1, 1, 1}, {4})}).ok());
  Result<std::vector<Tensor>> r =
      RunNode("MaxUnpool", 11, attrs, {F32({1, 1, 1, 1}, {5}), I64({1, 1, 1, 1}, {3})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Floats((*r)[0]), (std::vector<float>{0, 0, 0, 5}));
}

}  // namespace
}  // namespace parallax
