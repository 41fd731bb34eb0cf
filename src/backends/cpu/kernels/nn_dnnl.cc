// NN op family entry point (RegisterNnOps) and the shared helpers of
// dnnl_util.h / nn_util.h: the process-wide oneDNN engine, per-thread
// OpenMP setup and streams, float staging and window geometry.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "backends/cpu/kernels/dnnl_util.h"
#include "backends/cpu/kernels/families.h"
#include "backends/cpu/kernels/nn_util.h"
#include "ops/shape_util.h"

namespace parallax {

namespace dnnl_util {

void PrepareThread() {
  thread_local bool prepared = false;
  if (!prepared) {
    omp_set_num_threads(1);  // The ICV is per thread: oneDNN stays on this thread.
    prepared = true;
  }
}

const dnnl::engine& Engine() {
  static const dnnl::engine* engine = [] {
    PrepareThread();
    return new dnnl::engine(dnnl::engine::kind::cpu, 0);  // Never destroyed.
  }();
  return *engine;
}

dnnl::stream& ThreadStream() {
  PrepareThread();
  thread_local dnnl::stream stream(Engine());
  return stream;
}

dnnl::memory::desc PlainDesc(const Shape& shape, dt type) {
  Shape dims = shape.empty() ? Shape{1} : shape;
  std::vector<int64_t> strides(dims.size());
  int64_t acc = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = acc;
    acc *= std::max<int64_t>(dims[i], 1);
  }
  return StridedDesc(dims, strides, type);
}

dnnl::memory::desc StridedDesc(const Shape& dims, const std::vector<int64_t>& strides, dt type) {
  return dnnl::memory::desc(Dims(dims), type, dnnl::memory::dims(strides.begin(), strides.end()));
}

dnnl::memory Wrap(const dnnl::memory::desc& md, const void* data) {
  return dnnl::memory(md, Engine(), const_cast<void*>(data));
}

}  // namespace dnnl_util

namespace nn {

Result<Tensor> ToFloat32(const Tensor& t) {
  if (t.dtype() == DType::kFloat32) return t;
  Tensor out = Tensor::Uninitialized(DType::kFloat32, t.shape());
  float* o = out.data<float>();
  int64_t n = t.numel();
  if (t.dtype() == DType::kFloat64) {
    const double* s = t.data<double>();
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(s[i]);
  } else if (t.dtype() == DType::kFloat16) {
    const Half* s = t.data<Half>();
    for (int64_t i = 0; i < n; ++i) o[i] = HalfToFloat(s[i]);
  } else {
    return Unsupported("expected a float32/float64/float16 tensor, got " +
                       std::string(DTypeName(t.dtype())));
  }
  return out;
}

void StoreFromFloat32(const float* src, Tensor* out) {
  int64_t n = out->numel();
  if (out->dtype() == DType::kFloat32) {
    if (out->data<float>() != src && n > 0)
      std::memcpy(out->data<float>(), src, static_cast<size_t>(n) * sizeof(float));
  } else if (out->dtype() == DType::kFloat64) {
    double* o = out->data<double>();
    for (int64_t i = 0; i < n; ++i) o[i] = src[i];
  } else if (out->dtype() == DType::kFloat16) {
    Half* o = out->data<Half>();
    for (int64_t i = 0; i < n; ++i) o[i] = FloatToHalf(src[i]);
  }
}

Result<std::vector<int64_t>> KernelShapeAttr(const Node& node, int spatial_rank) {
  std::vector<int64_t> k = node.attr_ints("kernel_shape");
  if (!k.empty() && static_cast<int>(k.size()) != spatial_rank)
    return InvalidArgument(node.Describe() + ": kernel_shape has " + std::to_string(k.size()) +
                           " values but the input has " + std::to_string(spatial_rank) +
                           " spatial dims");
  for (int64_t v : k)
    if (v <= 0) return InvalidArgument(node.Describe() + ": kernel_shape values must be > 0");
  return k;
}

namespace {

Result<std::vector<int64_t>> IntsAttr(const Node& node, const char* name, size_t n, int64_t def,
                                      int64_t min_value) {
  std::vector<int64_t> v = node.attr_ints(name);
  if (v.empty()) return std::vector<int64_t>(n, def);
  if (v.size() != n)
    return InvalidArgument(node.Describe() + ": attribute '" + name + "' has " +
                           std::to_string(v.size()) + " values, expected " + std::to_string(n));
  for (int64_t x : v)
    if (x < min_value)
      return InvalidArgument(node.Describe() + ": attribute '" + name + "' has invalid value " +
                             std::to_string(x));
  return v;
}

}  // namespace

Result<Window> ComputeWindow(const Node& node, const std::vector<int64_t>& in,
                             const std::vector<int64_t>& kernel, bool ceil_mode,
                             bool use_dilations) {
  Window w;
  w.rank = static_cast<int>(in.size());
  size_t r = in.size();
  w.in = in;
  w.kernel = kernel;
  PX_ASSIGN_OR_RETURN(w.stride, IntsAttr(node, "strides", r, 1, 1));
  if (use_dilations) {
    PX_ASSIGN_OR_RETURN(w.dilation, IntsAttr(node, "dilations", r, 1, 1));
  } else {
    w.dilation.assign(r, 1);
  }
  PX_ASSIGN_OR_RETURN(std::vector<int64_t> pads, IntsAttr(node, "pads", 2 * r, 0, 0));
  std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  w.pad_begin.assign(r, 0);
  w.pad_end.assign(r, 0);
  w.out.assign(r, 0);
  for (size_t i = 0; i < r; ++i) {
    int64_t ext = (kernel[i] - 1) * w.dilation[i] + 1;
    int64_t s = w.stride[i];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w.out[i] = (in[i] + s - 1) / s;
      int64_t total = std::max<int64_t>(0, (w.out[i] - 1) * s + ext - in[i]);
      w.pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pad_end[i] = total - w.pad_begin[i];
      continue;
    }
    if (auto_pad == "NOTSET" || auto_pad.empty()) {
      w.pad_begin[i] = pads[i];
      w.pad_end[i] = pads[i + r];
    } else if (auto_pad != "VALID") {
      return InvalidArgument(node.Describe() + ": unknown auto_pad '" + auto_pad + "'");
    }
    int64_t span = in[i] + w.pad_begin[i] + w.pad_end[i] - ext;
    if (span < 0)
      return InvalidArgument(node.Describe() + ": window extent " + std::to_string(ext) +
                             " exceeds padded input size " +
                             std::to_string(in[i] + w.pad_begin[i] + w.pad_end[i]) +
                             " in spatial dim " + std::to_string(i));
    w.out[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    // A window may not start in the right padding (PyTorch/ONNX ceil rule).
    if (ceil_mode && (w.out[i] - 1) * s >= in[i] + w.pad_begin[i]) --w.out[i];
  }
  return w;
}

Result<MatMulShapes> BroadcastMatMulShapes(Shape a, Shape b) {
  if (a.empty() || b.empty()) return InvalidArgument("MatMul operands must have rank >= 1");
  std::string what = "A " + ShapeToString(a) + ", B " + ShapeToString(b);
  bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), 1);
  if (b_vec) b.push_back(1);
  MatMulShapes s;
  s.m = a[a.size() - 2];
  s.k = a.back();
  s.n = b.back();
  if (b[b.size() - 2] != s.k) return InvalidArgument("inner dimensions differ: " + what);
  Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  Result<Shape> batch = BroadcastShapes(ba, bb);
  if (!batch.ok()) return InvalidArgument("batch dimensions do not broadcast: " + what);
  size_t r = batch->size() + 2;
  s.a = a;
  s.b = b;
  s.a.insert(s.a.begin(), r - a.size(), 1);
  s.b.insert(s.b.begin(), r - b.size(), 1);
  s.y = *batch;
  s.y.push_back(s.m);
  s.y.push_back(s.n);
  s.out = *batch;
  if (!a_vec) s.out.push_back(s.m);
  if (!b_vec) s.out.push_back(s.n);
  return s;
}

}  // namespace nn

void RegisterNnOps(OpRegistry& r) {
  nn::RegisterConvOps(r);
  nn::RegisterMatMulOps(r);
  nn::RegisterPoolOps(r);
  nn::RegisterNormOps(r);
  nn::RegisterQuantOps(r);
}

}  // namespace parallax
