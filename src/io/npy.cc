#include "io/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "onnx/tensor_proto.h"

namespace parallax {
namespace {

struct DescrEntry {
  const char* descr;
  DType dtype;
};
constexpr DescrEntry kDescrs[] = {
    {"<f4", DType::kFloat32}, {"<f8", DType::kFloat64}, {"<f2", DType::kFloat16},
    {"<i8", DType::kInt64},   {"<i4", DType::kInt32},   {"<i2", DType::kInt16},
    {"|i1", DType::kInt8},    {"<u8", DType::kUInt64},  {"<u4", DType::kUInt32},
    {"<u2", DType::kUInt16},  {"|u1", DType::kUInt8},   {"|b1", DType::kBool},
};

// Extracts the quoted value after 'key': in the header dict.
std::string DictValue(const std::string& header, const std::string& key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return "";
  size_t colon = header.find(':', k);
  size_t start = header.find_first_not_of(" ", colon + 1);
  if (start == std::string::npos) return "";
  if (header[start] == '(') return header.substr(start, header.find(')', start) - start + 1);
  if (header[start] == '\'')
    return header.substr(start + 1, header.find('\'', start + 1) - start - 1);
  size_t end = header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

}  // namespace

Result<Tensor> ReadNpy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot open '" + path + "'");
  char magic[8];
  f.read(magic, 8);
  if (!f || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    return InvalidArgument("'" + path + "' is not a .npy file (bad magic)");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint16_t l = 0;
    f.read(reinterpret_cast<char*>(&l), 2);
    header_len = l;
  } else {
    f.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, '\0');
  f.read(header.data(), header_len);
  if (!f) return InvalidArgument("'" + path + "': truncated .npy header");
  std::string descr = DictValue(header, "descr");
  DType dtype = DType::kUndefined;
  for (const auto& e : kDescrs)
    if (descr == e.descr) dtype = e.dtype;
  if (descr == "|u1" || descr == "<u1") dtype = DType::kUInt8;
  if (dtype == DType::kUndefined)
    return Unsupported("'" + path + "': unsupported .npy dtype '" + descr + "'");
  if (DictValue(header, "fortran_order") == "True")
    return Unsupported("'" + path + "': Fortran-ordered .npy arrays are not supported");
  std::string shape_str = DictValue(header, "shape");
  Shape shape;
  std::stringstream ss(shape_str.size() >= 2 ? shape_str.substr(1, shape_str.size() - 2) : "");
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t a = item.find_first_not_of(" ");
    if (a == std::string::npos) continue;
    shape.push_back(std::stoll(item.substr(a)));
  }
  Tensor t = Tensor::Empty(dtype, shape);
  f.read(static_cast<char*>(t.raw_data()), static_cast<std::streamsize>(t.nbytes()));
  if (!f)
    return InvalidArgument("'" + path + "': file too short for shape " + ShapeToString(shape));
  return t;
}

Status WriteNpy(const Tensor& t, const std::string& path) {
  const char* descr = nullptr;
  for (const auto& e : kDescrs)
    if (e.dtype == t.dtype()) descr = e.descr;
  if (descr == nullptr)
    return Unsupported("cannot write dtype " + std::string(DTypeName(t.dtype())) + " as .npy");
  std::string shape = "(";
  for (int i = 0; i < t.rank(); ++i)
    shape += (i ? ", " : "") + std::to_string(t.shape()[static_cast<size_t>(i)]);
  shape += t.rank() == 1 ? ",)" : ")";
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) return IoError("cannot write '" + path + "'");
  f.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = static_cast<uint16_t>(header.size());
  f.write(reinterpret_cast<const char*>(&len), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(static_cast<const char*>(t.raw_data()), static_cast<std::streamsize>(t.nbytes()));
  if (!f) return IoError("failed writing '" + path + "'");
  return Status::Ok();
}

Result<Tensor> ReadTensorFile(const std::string& path) {
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, ".pb") == 0)
    return ReadTensorProtoFile(path, nullptr);
  return ReadNpy(path);
}

}  // namespace parallax
