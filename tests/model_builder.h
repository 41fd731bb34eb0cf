// Test helper: builds small ONNX models in memory (onnx::ModelProto) and
// writes them to a temporary file, so tests exercise the real importer.
#ifndef PARALLAX_TESTS_MODEL_BUILDER_H_
#define PARALLAX_TESTS_MODEL_BUILDER_H_

#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace parallax::testing {

class ModelBuilder {
 public:
  explicit ModelBuilder(int opset = 13, int ir_version = 8) {
    model_.set_ir_version(ir_version);
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    model_.mutable_graph()->set_name("test");
  }
  // dims: >= 0 fixed, -1 symbolic with `symbol`.
  ModelBuilder& Input(const std::string& name, int elem_type, std::vector<int64_t> dims,
                      const std::string& symbol = "N") {
    AddValueInfo(model_.mutable_graph()->add_input(), name, elem_type, dims, symbol);
    return *this;
  }
  ModelBuilder& Output(const std::string& name, int elem_type, std::vector<int64_t> dims,
                       const std::string& symbol = "N") {
    AddValueInfo(model_.mutable_graph()->add_output(), name, elem_type, dims, symbol);
    return *this;
  }
  onnx::NodeProto* Node(const std::string& op, std::vector<std::string> ins,
                        std::vector<std::string> outs, const std::string& domain = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + std::to_string(model_.graph().node_size()));
    if (!domain.empty()) n->set_domain(domain);
    for (auto& i : ins) n->add_input(i);
    for (auto& o : outs) n->add_output(o);
    return n;
  }
  ModelBuilder& FloatInit(const std::string& name, std::vector<int64_t> dims,
                          std::vector<float> values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return *this;
  }
  onnx::ModelProto& proto() { return model_; }
  // Writes the model to a temporary path unique to this process (ctest runs
  // tests in parallel processes that may build models of the same stem) and
  // returns it.
  std::string Write(const std::string& stem) const {
    auto path = std::filesystem::temp_directory_path() /
                ("parallax_test_" + stem + "_" + std::to_string(::getpid()) + ".onnx");
    std::ofstream f(path, std::ios::binary);
    model_.SerializeToOstream(&f);
    return path.string();
  }

 private:
  static void AddValueInfo(onnx::ValueInfoProto* vi, const std::string& name, int elem_type,
                           const std::vector<int64_t>& dims, const std::string& symbol) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    auto* shape = tt->mutable_shape();
    for (auto d : dims) {
      auto* dim = shape->add_dim();
      if (d >= 0)
        dim->set_dim_value(d);
      else
        dim->set_dim_param(symbol);
    }
  }
  onnx::ModelProto model_;
};

}  // namespace parallax::testing

#endif  // PARALLAX_TESTS_MODEL_BUILDER_H_
