#include "parallax/inputs.h"

#include <iostream>
#include <map>
#include <random>
#include <sstream>

#include "io/npy.h"

namespace parallax::cli {
namespace {

Result<std::pair<std::string, std::string>> SplitAssign(const std::string& s, const char* flag) {
  size_t eq = s.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
    return InvalidArgument(std::string(flag) + " expects NAME=VALUE, got '" + s + "'");
  return std::make_pair(s.substr(0, eq), s.substr(eq + 1));
}

void FillRandom(Tensor& t, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> real(0.0, 1.0);
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::kFloat32:
      for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = static_cast<float>(real(rng));
      break;
    case DType::kFloat64:
      for (int64_t i = 0; i < n; ++i) t.data<double>()[i] = real(rng);
      break;
    case DType::kFloat16:
      for (int64_t i = 0; i < n; ++i)
        t.data<Half>()[i] = FloatToHalf(static_cast<float>(real(rng)));
      break;
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) t.data<bool>()[i] = rng() & 1;
      break;
    case DType::kInt64:
      for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = static_cast<int64_t>(rng() % 10);
      break;
    case DType::kInt32:
      for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = static_cast<int32_t>(rng() % 10);
      break;
    default:
      for (size_t i = 0; i < t.nbytes(); ++i)
        static_cast<uint8_t*>(t.raw_data())[i] = static_cast<uint8_t>(rng() % 10);
  }
}

// Shape of a random input from its declared dims and --dim bindings.
Result<Shape> ShapeFromDims(const TensorInfo& info, const std::map<std::string, int64_t>& dims) {
  Shape shape;
  for (size_t d = 0; d < info.dims.size(); ++d) {
    if (info.dims[d] >= 0) {
      shape.push_back(info.dims[d]);
      continue;
    }
    auto dit = dims.find(info.symbols[d]);
    if (dit != dims.end()) {
      shape.push_back(dit->second);
      continue;
    }
    std::cerr << "note: input '" << info.name << "' dimension " << d << " ("
              << (info.symbols[d].empty() ? "?" : info.symbols[d]) << ") set to 1; use --dim "
              << (info.symbols[d].empty() ? "SYMBOL" : info.symbols[d]) << "=N or --shape\n";
    shape.push_back(1);
  }
  return shape;
}

}  // namespace

std::string SanitizeFileName(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return out;
}

Status ParseFreeDims(const InputFlags& flags, LoadOptions* load) {
  for (const std::string& s : flags.free_dims) {
    PX_ASSIGN_OR_RETURN(auto kv, SplitAssign(s, "--free-dim"));
    char* end = nullptr;
    long long v = std::strtoll(kv.second.c_str(), &end, 10);
    if (kv.second.empty() || *end != '\0' || v < 1)
      return InvalidArgument("--free-dim " + s + ": the size must be a positive integer");
    load->free_dims[kv.first] = v;
  }
  return Status::Ok();
}

Result<Session::NamedTensors> BuildInputs(const Model& model, const InputFlags& flags) {
  std::map<std::string, std::string> files;
  for (const std::string& s : flags.inputs) {
    PX_ASSIGN_OR_RETURN(auto kv, SplitAssign(s, "--input"));
    files[kv.first] = kv.second;
  }
  std::map<std::string, int64_t> dims;
  for (const std::string& s : flags.dims) {
    PX_ASSIGN_OR_RETURN(auto kv, SplitAssign(s, "--dim"));
    char* end = nullptr;
    long long v = std::strtoll(kv.second.c_str(), &end, 10);
    if (*end != '\0' || v < 0)
      return InvalidArgument("--dim " + s + ": the size must be a non-negative integer");
    dims[kv.first] = v;
  }
  std::map<std::string, Shape> shapes;
  for (const std::string& s : flags.shapes) {
    PX_ASSIGN_OR_RETURN(auto kv, SplitAssign(s, "--shape"));
    Shape shape;
    std::stringstream ss(kv.second);
    std::string item;
    while (std::getline(ss, item, ',')) {
      char* end = nullptr;
      long long v = std::strtoll(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0' || v < 0)
        return InvalidArgument("--shape " + s +
                               ": expected NAME=D0,D1,... with non-negative integers");
      shape.push_back(v);
    }
    shapes[kv.first] = shape;
  }
  for (const auto& [name, ignored] : shapes) files.emplace(name, "");
  for (const auto& [name, file] : files) {
    bool known = false;
    for (const auto& info : model.inputs()) known |= info.name == name;
    if (!known) {
      std::string names;
      for (const auto& info : model.inputs()) names += (names.empty() ? "" : ", ") + info.name;
      return InvalidArgument("--input " + name + ": the model has no input '" + name +
                             "' (inputs: " + names + ")");
    }
  }
  std::mt19937_64 rng(flags.seed);
  Session::NamedTensors out;
  for (const TensorInfo& info : model.inputs()) {
    auto it = files.find(info.name);
    if (it != files.end() && !it->second.empty()) {
      Result<Tensor> t = ReadTensorFile(it->second);
      if (!t.ok()) return t.status().WithContext("input '" + info.name + "'");
      out.emplace_back(info.name, std::move(t).value());
      continue;
    }
    if (!flags.random)
      return InvalidArgument("no value for input '" + info.name + "' " + info.ShapeString() +
                             ": pass --input " + info.name + "=FILE or --random-inputs");
    Shape shape;
    auto sit = shapes.find(info.name);
    if (sit != shapes.end()) {
      shape = sit->second;
    } else {
      PX_ASSIGN_OR_RETURN(shape, ShapeFromDims(info, dims));
    }
    if (!IsSupportedDType(info.dtype))
      return Unsupported("input '" + info.name + "' has dtype " +
                         std::string(DTypeName(info.dtype)) +
                         ", which --random-inputs cannot generate");
    Tensor t = Tensor::Empty(info.dtype, shape);
    FillRandom(t, rng);
    out.emplace_back(info.name, std::move(t));
  }
  return out;
}

}  // namespace parallax::cli
