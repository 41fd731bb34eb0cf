// The IR and its passes on tiny hand-built graphs.
#include "graph/graph.h"

#include <gtest/gtest.h>

#include "backends/cpu/cpu_backend.h"
#include "model_builder.h"
#include "onnx/onnx_import.h"
#include "plan/optimize.h"

namespace parallax {
namespace {

// Adds a value named `name` and returns its id.
ValueId V(Graph& g, const std::string& name, DType t = DType::kFloat32) {
  Value v;
  v.name = name;
  v.dtype = t;
  return g.AddValue(v);
}

Node N(const std::string& op, std::vector<ValueId> in, std::vector<ValueId> out) {
  Node n;
  n.op_type = op;
  n.name = op;
  n.opset = 13;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

TEST(Graph, TopologicalSortOrdersProducersFirst) {
  Graph g;
  ValueId x = V(g, "x"), a = V(g, "a"), b = V(g, "b"), c = V(g, "c");
  g.inputs = {x};
  g.outputs = {c};
  g.nodes.push_back(N("Add", {a, b}, {c}));
  g.nodes.push_back(N("Relu", {x}, {a}));
  g.nodes.push_back(N("Neg", {x}, {b}));
  ASSERT_TRUE(TopologicalSort(g).ok());
  EXPECT_EQ(g.nodes[0].op_type, "Relu");
  EXPECT_EQ(g.nodes[1].op_type, "Neg");
  EXPECT_EQ(g.nodes[2].op_type, "Add");
  EXPECT_EQ(g.values[c].producer, 2);
  EXPECT_EQ(g.values[x].consumers.size(), 2u);
}

TEST(Graph, CycleIsAnError) {
  Graph g;
  ValueId a = V(g, "a"), b = V(g, "b");
  g.nodes.push_back(N("Relu", {a}, {b}));
  g.nodes.push_back(N("Neg", {b}, {a}));
  Status s = TopologicalSort(g);
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_NE(s.message().find("cycle"), std::string::npos);
}

TEST(Graph, DeadNodesAreRemoved) {
  Graph g;
  ValueId x = V(g, "x"), a = V(g, "a"), b = V(g, "b"), c = V(g, "c");
  g.inputs = {x};
  g.outputs = {a};
  g.nodes.push_back(N("Relu", {x}, {a}));
  g.nodes.push_back(N("Neg", {x}, {b}));
  g.nodes.push_back(N("Neg", {b}, {c}));
  g.RebuildLinks();
  EXPECT_EQ(RemoveDeadNodes(g), 2);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op_type, "Relu");
}

TEST(Graph, ConstantsAreFolded) {
  Graph g;
  ValueId x = V(g, "x"), k = V(g, "k"), k2 = V(g, "k2"), y = V(g, "y");
  g.values[k].constant = Tensor::FromVector<float>(DType::kFloat32, {2}, {-1.f, 2.f});
  g.inputs = {x};
  g.outputs = {y};
  g.nodes.push_back(N("Relu", {k}, {k2}));    // Foldable: constant input.
  g.nodes.push_back(N("Add", {x, k2}, {y}));  // Not foldable: runtime input.
  g.RebuildLinks();
  Result<int64_t> folded = FoldConstants(g, DefaultCpuBackend());
  ASSERT_TRUE(folded.ok()) << folded.status().ToString();
  EXPECT_EQ(*folded, 1);
  ASSERT_EQ(g.nodes.size(), 1u);
  ASSERT_TRUE(g.values[k2].is_constant());
  EXPECT_EQ(g.values[k2].constant.data<float>()[0], 0.f);
  EXPECT_EQ(g.values[k2].constant.data<float>()[1], 2.f);
}

TEST(Import, SubgraphOuterValuesBecomeCaptures) {
  testing::ModelBuilder b(13);
  b.Input("cond", onnx::TensorProto::BOOL, {}).Input("x", onnx::TensorProto::FLOAT, {2});
  b.Output("y", onnx::TensorProto::FLOAT, {2});
  auto* node = b.Node("If", {"cond"}, {"y"});
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto* attr = node->add_attribute();
    attr->set_name(branch);
    attr->set_type(onnx::AttributeProto::GRAPH);
    auto* g = attr->mutable_g();
    g->set_name(branch);
    auto* n = g->add_node();
    n->set_op_type(std::string(branch) == "then_branch" ? "Relu" : "Neg");
    n->add_input("x");  // Outer-scope value.
    n->add_output("out");
    auto* o = g->add_output();
    o->set_name("out");
    o->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  Result<ImportedModel> m = ImportOnnxFile(b.Write("if_capture"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const Graph& g = *m->graph;
  ASSERT_EQ(g.nodes.size(), 1u);
  ValueId x = g.FindValue("x");
  ASSERT_EQ(g.nodes[0].implicit_inputs.size(), 1u);
  EXPECT_EQ(g.nodes[0].implicit_inputs[0], x);
  const Graph& then_g = *g.nodes[0].attr("then_branch")->g;
  ASSERT_EQ(then_g.captures.size(), 1u);
  EXPECT_EQ(then_g.captures[0].first, x);
  EXPECT_EQ(then_g.values[then_g.captures[0].second].name, "x");
}

TEST(Import, ConstantNodesBecomeConstantValues) {
  testing::ModelBuilder b(13);
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Output("y", onnx::TensorProto::FLOAT, {2});
  auto* c = b.Node("Constant", {}, {"k"});
  auto* a = c->add_attribute();
  a->set_name("value_floats");
  a->set_type(onnx::AttributeProto::FLOATS);
  a->add_floats(1.5f);
  a->add_floats(2.5f);
  b.Node("Add", {"x", "k"}, {"y"});
  Result<ImportedModel> m = ImportOnnxFile(b.Write("constant"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->graph->nodes.size(), 1u);
  ValueId k = m->graph->FindValue("k");
  ASSERT_TRUE(m->graph->values[k].is_constant());
  EXPECT_EQ(m->graph->values[k].constant.data<float>()[1], 2.5f);
}

TEST(Import, SymbolicDimsAreKept) {
  testing::ModelBuilder b(13);
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 3}, "batch")
      .Output("y", onnx::TensorProto::FLOAT, {-1, 3}, "batch");
  b.Node("Relu", {"x"}, {"y"});
  Result<ImportedModel> m = ImportOnnxFile(b.Write("symbolic"));
  ASSERT_TRUE(m.ok());
  const Value& x = m->graph->values[m->graph->inputs[0]];
  ASSERT_EQ(x.dims.size(), 2u);
  EXPECT_EQ(x.dims[0].symbol, "batch");
  EXPECT_EQ(x.dims[1].size, 3);
}

}  // namespace
}  // namespace parallax
