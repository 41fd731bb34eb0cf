// Tensor storage, float16 conversion and tensor file formats.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/npy.h"
#include "onnx/tensor_proto.h"
#include "parallax/tensor.h"

namespace parallax {
namespace {

TEST(Half, RoundTripsExactValues) {
  for (float f : {0.f, -0.f, 1.f, -2.5f, 65504.f, 6.103515625e-05f, 5.960464477539063e-08f,
                  0.333251953125f}) {
    EXPECT_EQ(HalfToFloat(FloatToHalf(f)), f) << f;
  }
  EXPECT_TRUE(std::isinf(HalfToFloat(FloatToHalf(1e6f))));
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(NAN))));
  EXPECT_EQ(FloatToHalf(1.0f + 1.0f / 4096).bits, FloatToHalf(1.0f).bits);  // Ties to even.
}

TEST(Npy, RoundTripsEveryDType) {
  auto dir = std::filesystem::temp_directory_path();
  for (DType t : {DType::kFloat32, DType::kFloat64, DType::kInt64, DType::kInt32, DType::kUInt8,
                  DType::kBool, DType::kFloat16, DType::kInt8}) {
    Tensor a = Tensor::Empty(t, {2, 3});
    for (size_t i = 0; i < a.nbytes(); ++i)
      static_cast<uint8_t*>(a.raw_data())[i] = static_cast<uint8_t>(i % 2);
    std::string path = (dir / "parallax_io_test.npy").string();
    ASSERT_TRUE(WriteNpy(a, path).ok());
    Result<Tensor> b = ReadNpy(path);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ(b->dtype(), t);
    EXPECT_EQ(b->shape(), a.shape());
    EXPECT_EQ(0, std::memcmp(a.raw_data(), b->raw_data(), a.nbytes()));
  }
  for (Shape s : {Shape{}, Shape{5}}) {
    std::string path = (dir / "parallax_io_rank.npy").string();
    ASSERT_TRUE(WriteNpy(Tensor::Empty(DType::kFloat32, s), path).ok());
    EXPECT_EQ(ReadNpy(path)->shape(), s);
  }
}

TEST(Npy, BadFileIsAnError) {
  std::string path = (std::filesystem::temp_directory_path() / "parallax_bad.npy").string();
  std::ofstream(path) << "nope";
  Result<Tensor> t = ReadNpy(path);
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find(path), std::string::npos);
}

TEST(TensorProtoFile, RoundTrips) {
  Tensor a = Tensor::FromVector<int64_t>(DType::kInt64, {3}, {1, -2, 3});
  std::string path = (std::filesystem::temp_directory_path() / "parallax_t.pb").string();
  ASSERT_TRUE(WriteTensorProtoFile(a, "t", path).ok());
  std::string name;
  Result<Tensor> b = ReadTensorProtoFile(path, &name);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(name, "t");
  EXPECT_EQ(b->data<int64_t>()[1], -2);
}

}  // namespace
}  // namespace parallax
