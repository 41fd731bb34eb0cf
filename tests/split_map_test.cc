// Split maps (plan/split_map.h): how single nodes divide along an axis, on
// tiny hand-built graphs.
#include "plan/split_map.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace parallax {
namespace {

// One node over float32 values of known shapes (plus int64 constants).
class OneNode {
 public:
  ValueId Value(Shape dims) {
    parallax::Value v;
    v.name = "v" + std::to_string(g_.values.size());
    v.dtype = DType::kFloat32;
    v.has_shape = true;
    shapes_.push_back(ValueShape{true, dims});
    return g_.AddValue(std::move(v));
  }
  ValueId Ints(const std::vector<int64_t>& v) {
    const int64_t n = static_cast<int64_t>(v.size());
    shapes_.push_back(ValueShape{true, {n}});
    return g_.AddConstant("c" + std::to_string(g_.values.size()),
                          Tensor::FromVector(DType::kInt64, {n}, v));
  }
  Node& Set(const std::string& op, std::vector<ValueId> ins, std::vector<ValueId> outs,
            const std::string& domain = "") {
    node_.op_type = op;
    node_.domain = domain;
    node_.opset = 13;
    node_.inputs = std::move(ins);
    node_.outputs = std::move(outs);
    return node_;
  }
  void Int(const std::string& key, int64_t v) {
    node_.attrs[key].kind = Attribute::Kind::kInt;
    node_.attrs[key].i = v;
  }
  void Ints(const std::string& key, std::vector<int64_t> v) {
    node_.attrs[key].kind = Attribute::Kind::kInts;
    node_.attrs[key].ints = std::move(v);
  }
  // (out_axis, in_axes) when input `in` is sliced along `axis`; out_axis -2
  // when the node does not split that way.
  std::pair<int, std::vector<int>> Map(int in, int axis) const {
    auto m = MapSplit(g_, shapes_, node_, in, axis);
    if (!m) return {-2, {}};
    return {m->out_axis, m->in_axes};
  }

 private:
  Graph g_;
  std::vector<ValueShape> shapes_;
  Node node_;
};

using Map = std::pair<int, std::vector<int>>;
const Map kNone = {-2, {}};

TEST(SplitMap, GatherKeepsOtherAxesAndShiftsThoseAfterIt) {
  OneNode t;
  const ValueId data = t.Value({4, 5, 6}), idx = t.Value({2, 3}), y = t.Value({4, 2, 3, 6});
  t.Set("Gather", {data, idx}, {y});
  t.Int("axis", 1);
  EXPECT_EQ(t.Map(0, 0), (Map{0, {0, -1}}));
  EXPECT_EQ(t.Map(0, 2), (Map{3, {2, -1}}));  // After the two index dims.
  EXPECT_EQ(t.Map(0, 1), kNone);              // The gathered axis.
  EXPECT_EQ(t.Map(1, 0), kNone);              // Indices are read whole.
}

TEST(SplitMap, ReductionsWithoutKeepdimsShiftLaterAxes) {
  OneNode t;
  const ValueId x = t.Value({4, 5, 6}), y = t.Value({4, 6});
  t.Set("ReduceMean", {x}, {y});
  t.Ints("axes", {1});
  t.Int("keepdims", 0);
  EXPECT_EQ(t.Map(0, 0), (Map{0, {0}}));
  EXPECT_EQ(t.Map(0, 2), (Map{1, {2}}));
  EXPECT_EQ(t.Map(0, 1), kNone);
}

TEST(SplitMap, GemmSplitsRowsOfATransposedOrNot) {
  OneNode t;
  const ValueId a = t.Value({5, 4}), b = t.Value({5, 3}), c = t.Value({4, 3}), y = t.Value({4, 3});
  t.Set("Gemm", {a, b, c}, {y});
  t.Int("transA", 1);                            // A is [K, M]: M is axis 1.
  EXPECT_EQ(t.Map(0, 1), (Map{0, {1, -1, 0}}));  // C [M, N] follows the rows.
  EXPECT_EQ(t.Map(0, 0), kNone);                 // K.
  EXPECT_EQ(t.Map(1, 1), kNone);                 // Columns of B: not covered.
}

TEST(SplitMap, ReshapesKeepAnAxisOnlyWhenItStaysWhole) {
  OneNode t;
  const ValueId x = t.Value({4, 6, 5}), y = t.Value({4, 30});
  t.Set("Reshape", {x, t.Ints({4, 30})}, {y});
  EXPECT_EQ(t.Map(0, 0), (Map{0, {0, -1}}));
  EXPECT_EQ(t.Map(0, 1), kNone);  // Merged into 30.
  Node reshape;
  reshape.op_type = "Reshape";
  EXPECT_TRUE(NeedsPieceShape(reshape));  // Each piece gets its own target dims.
  OneNode s;
  const ValueId u = s.Value({1, 4, 5}), v = s.Value({4, 5});
  s.Set("Squeeze", {u, s.Ints({0})}, {v});
  EXPECT_EQ(s.Map(0, 1), (Map{0, {1, -1}}));
}

TEST(SplitMap, SplitOpSlicesEveryOutputAwayFromItsAxis) {
  OneNode t;
  const ValueId x = t.Value({4, 6, 8}), a = t.Value({4, 6, 4}), b = t.Value({4, 6, 4});
  t.Set("Split", {x, t.Ints({4, 4})}, {a, b});
  t.Int("axis", 2);
  EXPECT_EQ(t.Map(0, 0), (Map{0, {0, -1}}));
  EXPECT_EQ(t.Map(0, 1), (Map{1, {1, -1}}));
  EXPECT_EQ(t.Map(0, 2), kNone);
}

TEST(SplitMap, ConcatSlicesEveryInputAwayFromItsAxis) {
  OneNode t;
  const ValueId a = t.Value({4, 2, 5}), b = t.Value({4, 3, 5}), y = t.Value({4, 5, 5});
  t.Set("Concat", {a, b}, {y});
  t.Int("axis", 1);
  EXPECT_EQ(t.Map(1, 0), (Map{0, {0, 0}}));
  EXPECT_EQ(t.Map(0, 1), kNone);
}

TEST(SplitMap, ConvolutionsSplitOnlyAlongTheBatch) {
  OneNode t;
  const ValueId x = t.Value({3, 8, 8, 4}), w = t.Value({6, 4, 3, 3}), b = t.Value({6});
  const ValueId z = t.Value({3, 8, 8, 6}), y = t.Value({3, 8, 8, 6});
  t.Set("FusedConv", {x, w, b, z}, {y}, "com.parallax");  // Channels-last, residual z.
  EXPECT_EQ(t.Map(0, 0), (Map{0, {0, -1, -1, 0}}));
  EXPECT_EQ(t.Map(0, 1), kNone);  // Rows would need halos.
  EXPECT_EQ(t.Map(3, 0), kNone);  // Only through X.
}

TEST(SplitMap, BroadcastInputsFollowOnlyWhereTheyHaveTheAxis) {
  OneNode t;
  const ValueId x = t.Value({4, 5}), bias = t.Value({5}), col = t.Value({4, 1});
  const ValueId y = t.Value({4, 5});
  t.Set("Add", {x, bias}, {y});
  EXPECT_EQ(t.Map(0, 0), (Map{0, {0, -1}}));
  EXPECT_EQ(t.Map(0, 1), (Map{1, {1, 0}}));
  t.Set("Mul", {x, col}, {y});
  EXPECT_EQ(t.Map(0, 0), (Map{0, {0, 0}}));
  EXPECT_EQ(t.Map(0, 1), (Map{1, {1, -1}}));
}

}  // namespace
}  // namespace parallax
