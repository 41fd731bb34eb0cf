// Misc ops: Det here; Einsum, quantization and random ops live in
// misc_einsum.cc, misc_quantize.cc and misc_random.cc.
#include <cmath>
#include <utility>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "backends/cpu/kernels/misc_util.h"

namespace parallax {
namespace {

// Determinant of an n x n row-major matrix by LU with partial pivoting.
double Determinant(std::vector<double>& a, int64_t n) {
  double det = 1.0;
  for (int64_t col = 0; col < n; ++col) {
    int64_t pivot = col;
    for (int64_t r = col + 1; r < n; ++r)
      if (std::abs(a[r * n + col]) > std::abs(a[pivot * n + col])) pivot = r;
    if (a[pivot * n + col] == 0.0) return 0.0;
    if (pivot != col) {
      for (int64_t c = 0; c < n; ++c) std::swap(a[col * n + c], a[pivot * n + c]);
      det = -det;
    }
    const double d = a[col * n + col];
    det *= d;
    for (int64_t r = col + 1; r < n; ++r) {
      const double f = a[r * n + col] / d;
      if (f == 0.0) continue;
      for (int64_t c = col + 1; c < n; ++c) a[r * n + c] -= f * a[col * n + c];
    }
  }
  return det;
}

double LoadAsDouble(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kFloat16:
      return HalfToFloat(t.data<Half>()[i]);
    case DType::kFloat32:
      return t.data<float>()[i];
    default:
      return t.data<double>()[i];
  }
}

void StoreDouble(Tensor* t, int64_t i, double v) {
  switch (t->dtype()) {
    case DType::kFloat16:
      t->data<Half>()[i] = FloatToHalf(static_cast<float>(v));
      break;
    case DType::kFloat32:
      t->data<float>()[i] = static_cast<float>(v);
      break;
    default:
      t->data<double>()[i] = v;
      break;
  }
}

Status Det(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const DType dt = x.dtype();
  if (dt != DType::kFloat32 && dt != DType::kFloat64 && dt != DType::kFloat16)
    return ctx.Error("Det needs a float16/float32/float64 input, got " +
                     std::string(DTypeName(dt)));
  if (x.rank() < 2 || x.dim(x.rank() - 1) != x.dim(x.rank() - 2))
    return ctx.Error("Det needs an input of shape [*, M, M], got " + ShapeToString(x.shape()));
  const int64_t n = x.dim(x.rank() - 1);
  Shape out_shape(x.shape().begin(), x.shape().end() - 2);
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dt, out_shape));
  const int64_t batch = NumElements(out_shape);
  std::vector<double> a(static_cast<size_t>(n * n));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t i = 0; i < n * n; ++i) a[i] = LoadAsDouble(x, b * n * n + i);
    StoreDouble(out, b, Determinant(a, n));
  }
  return Status::Ok();
}

}  // namespace

void RegisterMiscOps(OpRegistry& r) {
  r.Register("Det", Det);
  RegisterEinsumOp(r);
  RegisterQuantizeOps(r);
  RegisterRandomOps(r);
}

}  // namespace parallax
