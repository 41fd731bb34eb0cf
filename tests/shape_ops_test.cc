// Shape/indexing kernels: old-opset attribute forms, opset-18 additions and
// error cases that the ONNX backend test data does not cover.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>

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

Tensor F32(Shape shape, std::vector<float> v) {
  return Tensor::FromVector(DType::kFloat32, shape, v);
}
Tensor I64(Shape shape, std::vector<int64_t> v) {
  return Tensor::FromVector(DType::kInt64, shape, v);
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

struct Op {
  std::string type;
  int opset = 13;
  std::map<std::string, Attribute> attrs;
  int outputs = 1;
};

// Runs one node; inputs that are undefined tensors are treated as omitted.
Result<std::vector<Tensor>> RunOp(const Op& op, const std::vector<Tensor>& inputs) {
  OpRegistry reg;
  RegisterShapeOps(reg);
  RegisterIndexingOps(reg);
  Node node;
  node.name = "n";
  node.op_type = op.type;
  node.opset = op.opset;
  node.attrs = op.attrs;
  for (size_t i = 0; i < inputs.size(); ++i)
    node.inputs.push_back(inputs[i].defined() ? static_cast<ValueId>(i) : kNoValue);
  for (int i = 0; i < op.outputs; ++i) node.outputs.push_back(100 + i);
  const OpRegistry::Entry* e = reg.Find("", op.type, op.opset);
  if (e == nullptr) return NotFound("no kernel for " + op.type);
  Graph g;
  KernelInit init{node, g, nullptr};
  PX_ASSIGN_OR_RETURN(std::unique_ptr<Kernel> k, e->factory(init));
  std::vector<const Tensor*> ins;
  for (const Tensor& t : inputs) ins.push_back(t.defined() ? &t : nullptr);
  testing::OwnedAllocator alloc;
  KernelContext ctx(node, ins, {}, op.outputs, &alloc);
  PX_RETURN_IF_ERROR(k->Run(ctx));
  return ctx.outputs();
}

TEST(ShapeOps, ReshapeOpset1AttributeAndAllowZero) {
  auto r = RunOp({"Reshape", 1, {{"shape", IntsAttr({3, -1})}}}, {F32({2, 3}, {1, 2, 3, 4, 5, 6})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{3, 2}));
  auto z = RunOp({"Reshape", 14, {{"allowzero", IntAttr(1)}}}, {F32({0, 3}, {}), I64({2}, {3, 0})});
  ASSERT_TRUE(z.ok()) << z.status().ToString();
  EXPECT_EQ((*z)[0].shape(), (Shape{3, 0}));
  auto bad = RunOp({"Reshape", 13, {}}, {F32({2, 3}, {}), I64({1}, {4})});
  EXPECT_FALSE(bad.ok());
  auto two = RunOp({"Reshape", 13, {}}, {F32({2, 3}, {}), I64({2}, {-1, -1})});
  EXPECT_FALSE(two.ok());
}

TEST(ShapeOps, SqueezeUnsqueezeAttributeForms) {
  auto s = RunOp({"Squeeze", 11, {{"axes", IntsAttr({-1})}}}, {F32({2, 1}, {1, 2})});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)[0].shape(), (Shape{2}));
  auto bad = RunOp({"Squeeze", 11, {{"axes", IntsAttr({0})}}}, {F32({2, 1}, {1, 2})});
  EXPECT_FALSE(bad.ok());
  auto u = RunOp({"Unsqueeze", 11, {{"axes", IntsAttr({0, 3})}}}, {F32({2, 1}, {1, 2})});
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ((*u)[0].shape(), (Shape{1, 2, 1, 1}));
  auto dup = RunOp({"Unsqueeze", 13, {}}, {F32({2}, {1, 2}), I64({2}, {0, 0})});
  EXPECT_FALSE(dup.ok());
}

TEST(ShapeOps, SplitForms) {
  Tensor x = F32({5}, {0, 1, 2, 3, 4});
  auto a = RunOp({"Split", 11, {{"split", IntsAttr({2, 3})}}, 2}, {x});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(Values<float>((*a)[1]), (std::vector<float>{2, 3, 4}));
  auto b = RunOp({"Split", 18, {{"num_outputs", IntAttr(3)}}, 3}, {x});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)[0].shape(), (Shape{2}));
  EXPECT_EQ(Values<float>((*b)[2]), (std::vector<float>{4}));
  auto c = RunOp({"Split", 13, {}, 2}, {x});
  EXPECT_FALSE(c.ok());  // 5 does not split into 2 equal parts before opset 18.
  auto d = RunOp({"Split", 13, {}, 2}, {x, I64({2}, {1, 3})});
  EXPECT_FALSE(d.ok());  // Sizes do not add up.
}

TEST(ShapeOps, SliceOpset1AndExtremes) {
  Tensor x = F32({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
  auto a = RunOp({"Slice",
                  1,
                  {{"starts", IntsAttr({1})}, {"ends", IntsAttr({1000})}, {"axes", IntsAttr({1})}}},
                 {x});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(Values<float>((*a)[0]), (std::vector<float>{1, 2, 3, 5, 6, 7}));
  const int64_t lo = std::numeric_limits<int64_t>::min();
  const int64_t hi = std::numeric_limits<int64_t>::max();
  auto b = RunOp({"Slice", 13, {}},
                 {x, I64({2}, {hi, -1}), I64({2}, {lo, lo}), I64({2}, {0, 1}), I64({2}, {-1, -2})});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(Values<float>((*b)[0]), (std::vector<float>{7, 5, 3, 1}));
  auto c =
      RunOp({"Slice", 13, {}}, {x, I64({1}, {0}), I64({1}, {2}), I64({1}, {0}), I64({1}, {0})});
  EXPECT_FALSE(c.ok());  // step 0
}

TEST(ShapeOps, PadForms) {
  Tensor x = F32({3}, {1, 2, 3});
  auto a = RunOp({"Pad", 2, {{"pads", IntsAttr({1, 2})}, {"value", FloatAttr(9)}}}, {x});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(Values<float>((*a)[0]), (std::vector<float>{9, 1, 2, 3, 9, 9}));
  auto b = RunOp({"Pad", 13, {{"mode", StrAttr("reflect")}}}, {x, I64({2}, {2, 2})});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(Values<float>((*b)[0]), (std::vector<float>{3, 2, 1, 2, 3, 2, 1}));
  auto c = RunOp({"Pad", 13, {{"mode", StrAttr("edge")}}}, {x, I64({2}, {-1, 2})});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(Values<float>((*c)[0]), (std::vector<float>{2, 3, 3, 3}));
  Tensor m = F32({2, 2}, {1, 2, 3, 4});
  auto d = RunOp({"Pad", 18, {}}, {m, I64({2}, {1, 0}), F32({}, {7}), I64({1}, {-1})});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>((*d)[0]), (std::vector<float>{7, 1, 2, 7, 3, 4}));
  auto e = RunOp({"Pad", 2, {{"pads", IntsAttr({1})}}}, {x});
  EXPECT_FALSE(e.ok());
}

TEST(ShapeOps, TransposeMatchesNaive) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 60; ++trial) {
    const int r = 2 + trial % 4;
    Shape shape;
    for (int d = 0; d < r; ++d)
      shape.push_back(1 + static_cast<int64_t>(rng() % (r == 2 ? 100 : 40 / r)));
    std::vector<int64_t> perm(static_cast<size_t>(r));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    Tensor x = Tensor::Uninitialized(trial % 2 ? DType::kFloat16 : DType::kInt32, shape);
    const size_t es = DTypeSize(x.dtype());
    for (size_t i = 0; i < x.nbytes(); ++i) static_cast<uint8_t*>(x.raw_data())[i] = rng() & 255;
    auto out = RunOp({"Transpose", 13, {{"perm", IntsAttr(perm)}}}, {x});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const Tensor& y = (*out)[0];
    const std::vector<int64_t> ist = Strides(shape);
    for (int64_t i = 0; i < y.numel(); ++i) {
      int64_t rem = i, src = 0;
      for (int d = r - 1; d >= 0; --d) {
        src += (rem % y.dim(d)) * ist[static_cast<size_t>(perm[static_cast<size_t>(d)])];
        rem /= y.dim(d);
      }
      ASSERT_EQ(std::memcmp(static_cast<const char*>(y.raw_data()) + i * es,
                            static_cast<const char*>(x.raw_data()) + src * es, es),
                0)
          << "trial " << trial << " element " << i;
    }
  }
}

TEST(ShapeOps, TileOpset1AndExpand) {
  auto t = RunOp({"Tile", 1, {}}, {F32({2}, {1, 2}), I64({}, {3}), I64({}, {0})});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(Values<float>((*t)[0]), (std::vector<float>{1, 2, 1, 2, 1, 2}));
  auto e = RunOp({"Expand", 13, {}}, {F32({2, 1}, {1, 2}), I64({3}, {2, 1, 3})});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ((*e)[0].shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(Values<float>((*e)[0]), (std::vector<float>{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2}));
  auto bad = RunOp({"Expand", 13, {}}, {F32({2}, {1, 2}), I64({1}, {3})});
  EXPECT_FALSE(bad.ok());
  const int64_t big = int64_t{1} << 33;
  auto huge = RunOp({"Tile", 13, {}}, {F32({1, 1, 1}, {1}), I64({3}, {big, big, 3})});
  EXPECT_FALSE(huge.ok());  // Element count would wrap around int64.
  auto range = RunOp({"Range", 11, {}}, {I64({}, {0}), I64({}, {int64_t{1} << 62}), I64({}, {1})});
  EXPECT_FALSE(range.ok());
  auto pad = RunOp({"Pad", 13, {}}, {F32({1}, {1}), I64({2}, {int64_t{1} << 60, 0})});
  EXPECT_FALSE(pad.ok());
}

TEST(ShapeOps, GeneratorsAndTrilu) {
  auto c = RunOp({"ConstantOfShape", 13, {}}, {I64({2}, {2, 2})});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)[0].dtype(), DType::kFloat32);
  EXPECT_EQ(Values<float>((*c)[0]), (std::vector<float>{0, 0, 0, 0}));
  auto r = RunOp({"Range", 11, {}}, {I64({}, {10}), I64({}, {3}), I64({}, {-3})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int64_t>((*r)[0]), (std::vector<int64_t>{10, 7, 4}));
  auto e = RunOp({"EyeLike", 11, {{"k", IntAttr(-1)}, {"dtype", IntAttr(9)}}}, {F32({3, 2}, {})});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(Values<bool>((*e)[0]), (std::vector<bool>{0, 0, 1, 0, 0, 1}));
  auto t = RunOp({"Trilu", 14, {{"upper", IntAttr(0)}}},
                 {F32({2, 2}, {1, 2, 3, 4}), I64({}, {std::numeric_limits<int64_t>::min()})});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(Values<float>((*t)[0]), (std::vector<float>{0, 0, 0, 0}));
}

TEST(IndexingOps, OutOfRangeIndicesAreClearErrors) {
  Tensor x = F32({3}, {1, 2, 3});
  auto g = RunOp({"Gather", 13, {}}, {x, I64({1}, {5})});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("index 5"), std::string::npos) << g.status().message();
  EXPECT_NE(g.status().message().find("size 3"), std::string::npos) << g.status().message();
  auto ge = RunOp({"GatherElements", 13, {}}, {x, I64({1}, {-4})});
  EXPECT_FALSE(ge.ok());
  auto se = RunOp({"ScatterElements", 16, {}}, {x, I64({1}, {3}), F32({1}, {0})});
  EXPECT_FALSE(se.ok());
  auto sn = RunOp({"ScatterND", 16, {}}, {x, I64({1, 1}, {3}), F32({1}, {0})});
  EXPECT_FALSE(sn.ok());
  auto gn = RunOp({"GatherND", 13, {}}, {x, I64({1, 2}, {0, 0})});
  EXPECT_FALSE(gn.ok());
}

TEST(IndexingOps, ScatterReductionsAndGatherND) {
  Tensor x = F32({3}, {1, 5, 3});
  auto mx = RunOp({"ScatterElements", 18, {{"reduction", StrAttr("max")}}},
                  {x, I64({3}, {0, 1, 1}), F32({3}, {4, 2, 6})});
  ASSERT_TRUE(mx.ok()) << mx.status().ToString();
  EXPECT_EQ(Values<float>((*mx)[0]), (std::vector<float>{4, 6, 3}));
  auto mn = RunOp({"ScatterND", 18, {{"reduction", StrAttr("min")}}},
                  {x, I64({2, 1}, {1, -1}), F32({2}, {2, 0})});
  ASSERT_TRUE(mn.ok()) << mn.status().ToString();
  EXPECT_EQ(Values<float>((*mn)[0]), (std::vector<float>{1, 2, 0}));
  auto old = RunOp({"ScatterElements", 13, {{"reduction", StrAttr("add")}}},
                   {x, I64({1}, {0}), F32({1}, {9})});
  ASSERT_TRUE(old.ok());  // No reduction before opset 16: plain assignment.
  EXPECT_EQ(Values<float>((*old)[0]), (std::vector<float>{9, 5, 3}));
  Tensor d = F32({2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  auto gn = RunOp({"GatherND", 13, {{"batch_dims", IntAttr(1)}}}, {d, I64({2, 1}, {1, 0})});
  ASSERT_TRUE(gn.ok()) << gn.status().ToString();
  EXPECT_EQ((*gn)[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(Values<float>((*gn)[0]), (std::vector<float>{2, 3, 4, 5}));
}

TEST(IndexingOps, SelectionOps) {
  auto u = RunOp({"Unique", 11, {{"sorted", IntAttr(0)}}, 4}, {F32({6}, {2, 1, 1, 3, 4, 3})});
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(Values<float>((*u)[0]), (std::vector<float>{2, 1, 3, 4}));
  EXPECT_EQ(Values<int64_t>((*u)[1]), (std::vector<int64_t>{0, 1, 3, 4}));
  EXPECT_EQ(Values<int64_t>((*u)[2]), (std::vector<int64_t>{0, 1, 1, 2, 3, 2}));
  EXPECT_EQ(Values<int64_t>((*u)[3]), (std::vector<int64_t>{1, 2, 2, 1}));
  auto nz = RunOp({"NonZero", 13, {}}, {F32({2, 2}, {0, 1, 1, 0})});
  ASSERT_TRUE(nz.ok()) << nz.status().ToString();
  EXPECT_EQ(Values<int64_t>((*nz)[0]), (std::vector<int64_t>{0, 1, 1, 0}));
  auto oh = RunOp({"OneHot", 11, {{"axis", IntAttr(0)}}},
                  {I64({3}, {0, -1, 7}), F32({}, {3}), F32({2}, {0, 1})});
  ASSERT_TRUE(oh.ok()) << oh.status().ToString();
  EXPECT_EQ(Values<float>((*oh)[0]), (std::vector<float>{1, 0, 0, 0, 0, 0, 0, 1, 0}));
  Tensor cond = Tensor::FromVector(DType::kBool, {4}, std::vector<bool>{false, false, false, true});
  auto cp = RunOp({"Compress", 11, {{"axis", IntAttr(0)}}}, {F32({3}, {1, 2, 3}), cond});
  EXPECT_FALSE(cp.ok());  // Selects index 3 of a size-3 axis.
  auto rs = RunOp({"ReverseSequence", 10, {}}, {F32({3, 1}, {1, 2, 3}), I64({1}, {4})});
  EXPECT_FALSE(rs.ok());
}

}  // namespace
}  // namespace parallax
