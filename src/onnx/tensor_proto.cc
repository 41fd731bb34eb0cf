#include "onnx/tensor_proto.h"

#include <onnx/onnx-data_pb.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace parallax {
namespace {

template <typename Dst, typename Src>
void CopyField(const Src& field, Tensor& t) {
  Dst* out = t.data<Dst>();
  for (int i = 0; i < field.size() && i < t.numel(); ++i) out[i] = static_cast<Dst>(field.Get(i));
}

Result<std::string> ReadExternal(const onnx::TensorProto& p, const std::string& base_dir,
                                 size_t nbytes) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset")
      offset = std::stoll(kv.value());
    else if (kv.key() == "length")
      length = std::stoll(kv.value());
  }
  if (location.empty())
    return InvalidModel("tensor '" + p.name() + "' has external data without a location");
  if (location.find("..") != std::string::npos || (!location.empty() && location[0] == '/'))
    return InvalidModel("tensor '" + p.name() + "' external data location '" + location +
                        "' must be a relative path inside the model folder");
  std::string path = base_dir.empty() ? location : base_dir + "/" + location;
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return IoError("cannot open external data file '" + path + "' of tensor '" + p.name() + "'");
  if (length < 0) length = static_cast<int64_t>(nbytes);
  if (static_cast<size_t>(length) != nbytes)
    return InvalidModel("tensor '" + p.name() + "' external data length " + std::to_string(length) +
                        " does not match its shape (" + std::to_string(nbytes) + " bytes)");
  std::string buf(nbytes, '\0');
  f.seekg(offset);
  f.read(buf.data(), static_cast<std::streamsize>(nbytes));
  if (!f)
    return IoError("external data file '" + path + "' is too short for tensor '" + p.name() + "'");
  return buf;
}

}  // namespace

Result<Tensor> TensorFromProto(const onnx::TensorProto& p, const std::string& base_dir) {
  DType dtype = static_cast<DType>(p.data_type());
  if (!IsSupportedDType(dtype))
    return Unsupported("tensor '" + p.name() + "' has unsupported data type " +
                       std::to_string(p.data_type()));
  Shape shape(p.dims().begin(), p.dims().end());
  for (int64_t d : shape)
    if (d < 0) return InvalidModel("tensor '" + p.name() + "' has a negative dimension");
  Tensor t = Tensor::Empty(dtype, shape);
  const size_t nbytes = t.nbytes();
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    PX_ASSIGN_OR_RETURN(std::string raw, ReadExternal(p, base_dir, nbytes));
    std::memcpy(t.raw_data(), raw.data(), nbytes);
    return t;
  }
  if (p.has_raw_data()) {
    if (p.raw_data().size() != nbytes)
      return InvalidModel("tensor '" + p.name() + "' raw_data has " +
                          std::to_string(p.raw_data().size()) + " bytes, shape " +
                          ShapeToString(shape) + " needs " + std::to_string(nbytes));
    if (nbytes) std::memcpy(t.raw_data(), p.raw_data().data(), nbytes);
    return t;
  }
  int64_t n = t.numel();
  auto check = [&](int count) -> Status {
    if (count != n)
      return InvalidModel("tensor '" + p.name() + "' has " + std::to_string(count) +
                          " values for shape " + ShapeToString(shape));
    return Status::Ok();
  };
  switch (dtype) {
    case DType::kFloat32:
      PX_RETURN_IF_ERROR(check(p.float_data_size()));
      CopyField<float>(p.float_data(), t);
      break;
    case DType::kFloat64:
      PX_RETURN_IF_ERROR(check(p.double_data_size()));
      CopyField<double>(p.double_data(), t);
      break;
    case DType::kInt64:
      PX_RETURN_IF_ERROR(check(p.int64_data_size()));
      CopyField<int64_t>(p.int64_data(), t);
      break;
    case DType::kUInt64:
      PX_RETURN_IF_ERROR(check(p.uint64_data_size()));
      CopyField<uint64_t>(p.uint64_data(), t);
      break;
    case DType::kUInt32:
      PX_RETURN_IF_ERROR(check(p.uint64_data_size()));
      CopyField<uint32_t>(p.uint64_data(), t);
      break;
    case DType::kInt32:
      PX_RETURN_IF_ERROR(check(p.int32_data_size()));
      CopyField<int32_t>(p.int32_data(), t);
      break;
    case DType::kInt16:
      PX_RETURN_IF_ERROR(check(p.int32_data_size()));
      CopyField<int16_t>(p.int32_data(), t);
      break;
    case DType::kUInt16:
      PX_RETURN_IF_ERROR(check(p.int32_data_size()));
      CopyField<uint16_t>(p.int32_data(), t);
      break;
    case DType::kInt8:
      PX_RETURN_IF_ERROR(check(p.int32_data_size()));
      CopyField<int8_t>(p.int32_data(), t);
      break;
    case DType::kUInt8:
      PX_RETURN_IF_ERROR(check(p.int32_data_size()));
      CopyField<uint8_t>(p.int32_data(), t);
      break;
    case DType::kBool:
      PX_RETURN_IF_ERROR(check(p.int32_data_size()));
      CopyField<bool>(p.int32_data(), t);
      break;
    case DType::kFloat16:
    case DType::kBFloat16: {
      PX_RETURN_IF_ERROR(check(p.int32_data_size()));
      for (int i = 0; i < p.int32_data_size(); ++i)
        t.data<Half>()[i].bits = static_cast<uint16_t>(p.int32_data(i));
      break;
    }
    default:
      return Unsupported("tensor '" + p.name() + "' dtype");
  }
  return t;
}

void TensorToProto(const Tensor& t, const std::string& name, onnx::TensorProto* p) {
  p->Clear();
  p->set_name(name);
  p->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) p->add_dims(d);
  p->set_raw_data(t.raw_data(), t.nbytes());
}

Result<Tensor> ReadTensorProtoFile(const std::string& path, std::string* name) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot open tensor file '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  onnx::TensorProto proto;
  if (!proto.ParseFromString(ss.str()))
    return InvalidArgument("'" + path + "' is not a valid serialized onnx TensorProto");
  if (name) *name = proto.name();
  size_t slash = path.find_last_of('/');
  Result<Tensor> t =
      TensorFromProto(proto, slash == std::string::npos ? "" : path.substr(0, slash));
  if (!t.ok()) return t.status().WithContext(path);
  return t;
}

namespace {

Result<Tensor> SequenceFromProto(const onnx::SequenceProto& p, const std::string& base) {
  if (p.elem_type() != onnx::SequenceProto::TENSOR &&
      p.elem_type() != onnx::SequenceProto::UNDEFINED)
    return Unsupported("sequence '" + p.name() + "': only sequences of tensors are supported");
  std::vector<Tensor> elems;
  DType elem = DType::kUndefined;
  for (const auto& t : p.tensor_values()) {
    PX_ASSIGN_OR_RETURN(Tensor e, TensorFromProto(t, base));
    elem = e.dtype();
    elems.push_back(std::move(e));
  }
  return Tensor::Sequence(elem, std::move(elems));
}

}  // namespace

Result<Tensor> ReadValueProtoFile(const std::string& path, DType kind) {
  if (kind != DType::kSequence && kind != DType::kOptional)
    return ReadTensorProtoFile(path, nullptr);
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot open '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? "" : path.substr(0, slash);
  if (kind == DType::kSequence) {
    onnx::SequenceProto seq;
    if (!seq.ParseFromString(ss.str()))
      return InvalidArgument("'" + path + "' is not a SequenceProto");
    return SequenceFromProto(seq, base);
  }
  onnx::OptionalProto opt;
  if (!opt.ParseFromString(ss.str()))
    return InvalidArgument("'" + path + "' is not an OptionalProto");
  switch (opt.elem_type()) {
    case onnx::OptionalProto::TENSOR:
      return TensorFromProto(opt.tensor_value(), base);
    case onnx::OptionalProto::SEQUENCE:
      return SequenceFromProto(opt.sequence_value(), base);
    case onnx::OptionalProto::UNDEFINED:
      return Tensor::None();
    default:
      return Unsupported("'" + path + "': unsupported optional element kind");
  }
}

Status WriteTensorProtoFile(const Tensor& t, const std::string& name, const std::string& path) {
  onnx::TensorProto proto;
  TensorToProto(t, name, &proto);
  std::ofstream f(path, std::ios::binary);
  if (!f || !proto.SerializeToOstream(&f)) return IoError("cannot write '" + path + "'");
  return Status::Ok();
}

}  // namespace parallax
