#include "onnx/onnx_import.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "onnx/tensor_proto.h"

namespace parallax {
namespace {

// Name resolution for one graph, chained to its enclosing graph.
struct Scope {
  Graph* graph = nullptr;
  Scope* parent = nullptr;
  std::unordered_map<std::string, ValueId> names;

  // Local value for `name`, capturing it from an enclosing scope if needed.
  ValueId Resolve(const std::string& name) {
    auto it = names.find(name);
    if (it != names.end()) return it->second;
    if (parent == nullptr) return kNoValue;
    ValueId outer = parent->Resolve(name);
    if (outer == kNoValue) return kNoValue;
    Value v = parent->graph->values[outer];
    v.producer = -1;
    v.consumers.clear();
    v.constant = Tensor();  // Read through the capture at run time.
    ValueId local = graph->AddValue(std::move(v));
    graph->captures.push_back({outer, local});
    names[name] = local;
    return local;
  }
};

struct Importer {
  std::string path;
  std::string base_dir;
  std::map<std::string, int64_t> opsets;

  Status Err(const std::string& msg) const { return InvalidModel(path + ": " + msg); }

  void ApplyTypeInfo(const onnx::ValueInfoProto& vi, Value& v) {
    if (!vi.has_type()) return;
    if (vi.type().has_sequence_type()) {
      v.dtype = DType::kSequence;
      return;
    }
    if (vi.type().has_optional_type()) {
      v.dtype = DType::kOptional;
      return;
    }
    if (!vi.type().has_tensor_type()) return;
    const auto& tt = vi.type().tensor_type();
    if (tt.elem_type() != 0) v.dtype = static_cast<DType>(tt.elem_type());
    if (!tt.has_shape()) return;
    v.has_shape = true;
    v.dims.clear();
    for (const auto& d : tt.shape().dim()) {
      Dim dim;
      if (d.has_dim_value())
        dim.size = d.dim_value();
      else if (d.has_dim_param())
        dim.symbol = d.dim_param();
      v.dims.push_back(dim);
    }
  }

  Result<Attribute> ImportAttribute(onnx::AttributeProto& a, Scope& scope,
                                    const std::string& node_desc) {
    Attribute out;
    auto type = a.type();
    if (type == onnx::AttributeProto::UNDEFINED) {  // IR < 3 style: infer.
      if (a.has_f())
        type = onnx::AttributeProto::FLOAT;
      else if (a.has_i())
        type = onnx::AttributeProto::INT;
      else if (a.has_s())
        type = onnx::AttributeProto::STRING;
      else if (a.has_t())
        type = onnx::AttributeProto::TENSOR;
      else if (a.has_g())
        type = onnx::AttributeProto::GRAPH;
      else if (a.floats_size())
        type = onnx::AttributeProto::FLOATS;
      else if (a.ints_size())
        type = onnx::AttributeProto::INTS;
      else if (a.strings_size())
        type = onnx::AttributeProto::STRINGS;
      else
        type = onnx::AttributeProto::INTS;
    }
    switch (type) {
      case onnx::AttributeProto::FLOAT:
        out.kind = Attribute::Kind::kFloat;
        out.f = a.f();
        break;
      case onnx::AttributeProto::INT:
        out.kind = Attribute::Kind::kInt;
        out.i = a.i();
        break;
      case onnx::AttributeProto::STRING:
        out.kind = Attribute::Kind::kString;
        out.s = a.s();
        break;
      case onnx::AttributeProto::FLOATS:
        out.kind = Attribute::Kind::kFloats;
        out.floats.assign(a.floats().begin(), a.floats().end());
        break;
      case onnx::AttributeProto::INTS:
        out.kind = Attribute::Kind::kInts;
        out.ints.assign(a.ints().begin(), a.ints().end());
        break;
      case onnx::AttributeProto::STRINGS:
        out.kind = Attribute::Kind::kStrings;
        out.strings.assign(a.strings().begin(), a.strings().end());
        break;
      case onnx::AttributeProto::TENSOR: {
        out.kind = Attribute::Kind::kTensor;
        Result<Tensor> t = TensorFromProto(a.t(), base_dir);
        if (!t.ok())
          return t.status().WithContext(path + ": " + node_desc + " attribute '" + a.name() + "'");
        out.t = std::move(t).value();
        break;
      }
      case onnx::AttributeProto::GRAPH: {
        out.kind = Attribute::Kind::kGraph;
        auto g = std::make_shared<Graph>();
        PX_RETURN_IF_ERROR(ImportGraph(*a.mutable_g(), &scope, *g));
        out.g = std::move(g);
        break;
      }
      case onnx::AttributeProto::TYPE_PROTO:
      case onnx::AttributeProto::TYPE_PROTOS:
        out.kind = Attribute::Kind::kString;  // Type annotations: values carry their own types.
        break;
      default:
        return Unsupported(path + ": " + node_desc + " attribute '" + a.name() +
                           "' has an unsupported kind (" +
                           onnx::AttributeProto::AttributeType_Name(a.type()) + ")");
    }
    return out;
  }

  // Turns a Constant node into a tensor.
  Result<Tensor> ConstantValue(const Node& node) {
    for (const auto& [key, a] : node.attrs) {
      if (key == "value") return a.t;
      if (key == "value_float") return Tensor::FromVector<float>(DType::kFloat32, {}, {a.f});
      if (key == "value_floats")
        return Tensor::FromVector<float>(DType::kFloat32, {static_cast<int64_t>(a.floats.size())},
                                         a.floats);
      if (key == "value_int") return Tensor::FromVector<int64_t>(DType::kInt64, {}, {a.i});
      if (key == "value_ints")
        return Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(a.ints.size())},
                                           a.ints);
    }
    return Unsupported(path + ": " + node.Describe() +
                       ": Constant needs value/value_float(s)/value_int(s) (string and sparse "
                       "constants are not supported)");
  }

  Status ImportNode(onnx::NodeProto& np, size_t index, Scope& scope, Graph& g) {
    Node node;
    node.name = np.name().empty() ? np.op_type() + "_" + std::to_string(index) : np.name();
    node.op_type = np.op_type();
    node.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    auto it = opsets.find(node.domain);
    node.opset = it == opsets.end() ? 0 : static_cast<int>(it->second);
    if (it == opsets.end())
      return Err(node.Describe() + " uses domain '" + node.domain + "' absent from opset_import");
    for (const auto& in : np.input()) {
      if (in.empty()) {
        node.inputs.push_back(kNoValue);
        continue;
      }
      ValueId v = scope.Resolve(in);
      if (v == kNoValue)
        return Err(node.Describe() + " reads '" + in +
                   "', which no node, input or initializer defines");
      node.inputs.push_back(v);
    }
    for (const auto& out : np.output())
      node.outputs.push_back(out.empty() ? kNoValue : scope.names.at(out));
    for (auto& a : *np.mutable_attribute()) {
      PX_ASSIGN_OR_RETURN(Attribute attr, ImportAttribute(a, scope, node.Describe()));
      if (attr.g) {
        for (const auto& [outer, local] : attr.g->captures) {
          (void)local;
          bool seen = false;
          for (ValueId x : node.implicit_inputs) seen |= x == outer;
          if (!seen) node.implicit_inputs.push_back(outer);
        }
      }
      node.attrs[a.name()] = std::move(attr);
    }
    if (node.op_type == "Constant" && node.domain.empty() && node.outputs.size() == 1 &&
        node.outputs[0] != kNoValue) {
      PX_ASSIGN_OR_RETURN(Tensor t, ConstantValue(node));
      Value& v = g.values[node.outputs[0]];
      v.constant = t;
      v.dtype = t.dtype();
      v.has_shape = true;
      v.dims.clear();
      for (int64_t d : t.shape()) v.dims.push_back(Dim{d, ""});
      return Status::Ok();
    }
    g.nodes.push_back(std::move(node));
    return Status::Ok();
  }

  // Consumes initializer bytes from `gp` as it converts them, so a large model
  // is never held three times (file, proto, tensors) at once.
  Status ImportGraph(onnx::GraphProto& gp, Scope* parent, Graph& g) {
    Scope scope{&g, parent, {}};
    g.name = gp.name();
    auto define = [&](const std::string& name) -> Result<ValueId> {
      if (scope.names.count(name))
        return Err("value '" + name + "' is defined twice in graph '" + gp.name() + "'");
      Value v;
      v.name = name;
      ValueId id = g.AddValue(std::move(v));
      scope.names[name] = id;
      return id;
    };
    for (auto& init : *gp.mutable_initializer()) {
      PX_ASSIGN_OR_RETURN(ValueId id, define(init.name()));
      Result<Tensor> t = TensorFromProto(init, base_dir);
      if (!t.ok()) return t.status().WithContext(path + ": initializer '" + init.name() + "'");
      // Drop the proto's copy now that the tensor owns the bytes.
      init.clear_raw_data();
      init.clear_float_data();
      init.clear_int64_data();
      init.clear_int32_data();
      init.clear_double_data();
      Value& v = g.values[id];
      v.constant = std::move(t).value();
      v.dtype = v.constant.dtype();
      v.has_shape = true;
      for (int64_t d : v.constant.shape()) v.dims.push_back(Dim{d, ""});
    }
    for (const auto& in : gp.input()) {
      auto it = scope.names.find(in.name());
      if (it != scope.names.end()) continue;  // Initializer listed as input (IR < 4).
      PX_ASSIGN_OR_RETURN(ValueId id, define(in.name()));
      ApplyTypeInfo(in, g.values[id]);
      g.inputs.push_back(id);
    }
    for (const auto& np : gp.node())
      for (const auto& out : np.output())
        if (!out.empty()) {
          Result<ValueId> r = define(out);
          if (!r.ok()) return r.status();
        }
    for (const auto& vi : gp.value_info()) {
      auto it = scope.names.find(vi.name());
      if (it != scope.names.end() && !g.values[it->second].is_constant())
        ApplyTypeInfo(vi, g.values[it->second]);
    }
    for (int i = 0; i < gp.node_size(); ++i)
      PX_RETURN_IF_ERROR(ImportNode(*gp.mutable_node(i), static_cast<size_t>(i), scope, g));
    for (const auto& out : gp.output()) {
      ValueId id = scope.Resolve(out.name());
      if (id == kNoValue) return Err("graph output '" + out.name() + "' is never defined");
      ApplyTypeInfo(out, g.values[id]);
      g.outputs.push_back(id);
    }
    g.RebuildLinks();
    Status s = TopologicalSort(g);
    if (!s.ok()) return s.WithContext(path);
    return Status::Ok();
  }
};

std::string RunOnnxShapeInference(onnx::ModelProto& model) {
  try {
    onnx::ShapeInferenceOptions options;
    options.check_type = false;
    options.error_mode = 0;
    options.enable_data_propagation = true;
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown error";
  }
  return "";
}

}  // namespace

namespace {

Status FixFreeDims(onnx::ModelProto& proto, const FreeDims& free_dims, const std::string& path) {
  std::set<std::string> used;
  for (auto& in : *proto.mutable_graph()->mutable_input()) {
    if (!in.type().has_tensor_type() || !in.type().tensor_type().has_shape()) continue;
    for (auto& d : *in.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim()) {
      auto it = d.has_dim_param() ? free_dims.find(d.dim_param()) : free_dims.end();
      if (it == free_dims.end()) continue;
      used.insert(it->first);
      d.set_dim_value(it->second);  // Replaces the symbol (one of the two).
    }
  }
  for (const auto& [symbol, size] : free_dims) {
    if (size < 1)
      return InvalidArgument(path + ": free dimension '" + symbol + "' must be at least 1, got " +
                             std::to_string(size));
    if (used.count(symbol) == 0)
      return InvalidArgument(path + ": no input dimension is named '" + symbol +
                             "' (free dimension override)");
  }
  return Status::Ok();
}

// Checks the header fields and imports a parsed model (consuming its weights).
Result<ImportedModel> ImportModelProto(onnx::ModelProto& proto, const std::string& path,
                                       const FreeDims& free_dims) {
  if (!proto.has_graph())
    return InvalidModel(path + ": the model has no graph (truncated or not an ONNX model)");
  if (proto.ir_version() < kMinIrVersion)
    return Unsupported(path + ": IR version " + std::to_string(proto.ir_version()) +
                       " is older than the oldest supported (" + std::to_string(kMinIrVersion) +
                       ")");
  ImportedModel m;
  m.path = path;
  m.ir_version = proto.ir_version();
  m.producer = proto.producer_name();
  for (const auto& o : proto.opset_import()) {
    std::string d = o.domain() == "ai.onnx" ? "" : o.domain();
    m.opsets[d] = o.version();
  }
  if (m.opsets.count("") == 0) m.opsets[""] = 1;
  if (m.opsets[""] > kMaxDefaultOpset)
    return Unsupported(path + ": default-domain opset " + std::to_string(m.opsets[""]) +
                       " is newer than the newest supported (" + std::to_string(kMaxDefaultOpset) +
                       ")");
  PX_RETURN_IF_ERROR(FixFreeDims(proto, free_dims, path));
  m.shape_inference_warning = RunOnnxShapeInference(proto);
  Importer importer;
  importer.path = path;
  size_t slash = path.find_last_of('/');
  importer.base_dir = slash == std::string::npos ? "." : path.substr(0, slash);
  importer.opsets = m.opsets;
  m.graph = std::make_shared<Graph>();
  PX_RETURN_IF_ERROR(importer.ImportGraph(*proto.mutable_graph(), nullptr, *m.graph));
  return m;
}

constexpr char kParseError[] =
    ": not a valid ONNX model (protobuf parse failed; the file is truncated or not ONNX)";

}  // namespace

Result<ImportedModel> ImportOnnxBytes(const std::string& bytes, const std::string& path,
                                      const FreeDims& free_dims) {
  if (bytes.empty()) return InvalidModel(path + ": file is empty");
  onnx::ModelProto proto;
  if (!proto.ParseFromString(bytes)) return InvalidModel(path + kParseError);
  return ImportModelProto(proto, path, free_dims);
}

Result<ImportedModel> ImportOnnxFile(const std::string& path, const FreeDims& free_dims) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return NotFound("cannot open model file '" + path + "'");
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size == 0) {
    close(fd);
    return InvalidModel(path + ": file is empty");
  }
  // Parse straight from the file: no intermediate copy of the whole model.
  onnx::ModelProto proto;
  bool parsed;
  {
    google::protobuf::io::FileInputStream raw(fd);
    google::protobuf::io::CodedInputStream coded(&raw);
    coded.SetTotalBytesLimit(INT32_MAX);
    parsed = proto.ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
  }
  close(fd);
  if (!parsed) return InvalidModel(path + kParseError);
  return ImportModelProto(proto, path, free_dims);
}

}  // namespace parallax
