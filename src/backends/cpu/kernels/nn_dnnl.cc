// NN op family entry point (RegisterNnOps) and the shared helpers of
// dnnl_util.h / nn_util.h: the process-wide oneDNN engine, per-thread
// OpenMP setup and streams, float staging and window geometry.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>

#include "backends/cpu/kernels/dnnl_util.h"
#include "backends/cpu/kernels/families.h"
#include "backends/cpu/kernels/fast_math.h"
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

std::mutex& CreationMutex() {
  static std::mutex* mu = new std::mutex;  // Never destroyed.
  return *mu;
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

bool PostOps::has_sum() const {
  for (const Step& st : steps)
    if (st.sum) return true;
  return false;
}

void PostOps::AppendTo(dnnl::primitive_attr* attr) const {
  if (empty()) return;
  dnnl::post_ops ops;
  for (const Step& st : steps) {
    if (st.sum)
      ops.append_sum(1.f);
    else
      ops.append_eltwise(1.f, st.alg, st.alpha, st.beta);
  }
  attr->set_post_ops(ops);
}

float PostOps::Apply(float acc, float z) const {
  using dnnl::algorithm;
  double y = acc;
  for (const Step& st : steps) {
    const double a = st.alpha, b = st.beta;
    if (st.sum) {
      y += z;
      continue;
    }
    switch (st.alg) {
      case algorithm::eltwise_relu:
        y = y > 0 ? y : a * y;
        break;
      case algorithm::eltwise_clip_v2:
        y = std::min(b, std::max(a, y));
        break;
      case algorithm::eltwise_linear:
        y = a * y + b;
        break;
      case algorithm::eltwise_hardswish:
        y = y * std::min(1.0, std::max(0.0, y / 6 + 0.5));
        break;
      case algorithm::eltwise_logistic:
        y = 1 / (1 + std::exp(-y));
        break;
      case algorithm::eltwise_swish:
        y = y / (1 + std::exp(-a * y));
        break;
      case algorithm::eltwise_tanh:
        y = std::tanh(y);
        break;
      case algorithm::eltwise_gelu_erf:
        y = 0.5 * y * (1 + std::erf(y / std::sqrt(2.0)));
        break;
      case algorithm::eltwise_gelu_tanh:
        y = 0.5 * y * (1 + std::tanh(0.7978845608028654 * (y + 0.044715 * y * y * y)));
        break;
      default:
        break;  // ReadPostOps creates no other steps.
    }
  }
  return static_cast<float>(y);
}

namespace {

// The epilogue loops (PostOps::ApplyInPlace), inlined into one build per
// instruction set: ExpF / ErfF vectorise 4-7x better with AVX2 and FMA than
// with the baseline x86-64 the library is compiled for.
__attribute__((always_inline)) inline void ApplySteps(const PostOps& post, float* y, const float* z,
                                                      int64_t n) {
  using dnnl::algorithm;
  constexpr int64_t kBlock = 2048;  // Stays in L1 across the steps.
  for (int64_t s = 0; s < n; s += kBlock) {
    float* p = y + s;
    const int64_t m = std::min(kBlock, n - s);
    for (const PostOps::Step& st : post.steps) {
      const float a = st.alpha, b = st.beta;
      if (st.sum) {
        const float* q = z + s;
        for (int64_t i = 0; i < m; ++i) p[i] += q[i];
        continue;
      }
      switch (st.alg) {
        case algorithm::eltwise_relu:
          for (int64_t i = 0; i < m; ++i) p[i] = p[i] > 0.f ? p[i] : a * p[i];
          break;
        case algorithm::eltwise_clip_v2:
          for (int64_t i = 0; i < m; ++i) p[i] = std::min(b, std::max(a, p[i]));
          break;
        case algorithm::eltwise_linear:
          for (int64_t i = 0; i < m; ++i) p[i] = a * p[i] + b;
          break;
        case algorithm::eltwise_hardswish:
          for (int64_t i = 0; i < m; ++i)
            p[i] = p[i] * std::min(1.f, std::max(0.f, p[i] / 6.f + 0.5f));
          break;
        case algorithm::eltwise_logistic:
          for (int64_t i = 0; i < m; ++i) p[i] = 1.f / (1.f + ExpF(-p[i]));
          break;
        case algorithm::eltwise_swish:
          for (int64_t i = 0; i < m; ++i) p[i] = p[i] / (1.f + ExpF(-a * p[i]));
          break;
        case algorithm::eltwise_tanh:
          for (int64_t i = 0; i < m; ++i) p[i] = TanhF(p[i]);
          break;
        case algorithm::eltwise_gelu_erf:
          for (int64_t i = 0; i < m; ++i)
            p[i] = 0.5f * p[i] * (1.f + ErfF(p[i] * 0.70710678118654752f));
          break;
        default:
          for (int64_t i = 0; i < m; ++i) p[i] = post.Apply(p[i], 0.f);
          break;
      }
    }
  }
}

__attribute__((target("avx2,fma"))) void ApplyStepsAvx2(const PostOps& post, float* y,
                                                        const float* z, int64_t n) {
  ApplySteps(post, y, z, n);
}

void ApplyStepsBaseline(const PostOps& post, float* y, const float* z, int64_t n) {
  ApplySteps(post, y, z, n);
}

}  // namespace

void PostOps::ApplyInPlace(float* y, const float* z, int64_t n) const {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2)
    ApplyStepsAvx2(*this, y, z, n);
  else
    ApplyStepsBaseline(*this, y, z, n);
}

namespace {

// Appends the eltwise steps of activation `act` (params `a`); false when unknown.
bool AppendActivation(const std::string& act, const std::vector<float>& a, PostOps* p) {
  using dnnl::algorithm;
  auto param = [&](size_t i, float def) { return i < a.size() ? a[i] : def; };
  auto step = [&](algorithm alg, float alpha, float beta) {
    p->steps.push_back({false, alg, alpha, beta});
  };
  const float inf = std::numeric_limits<float>::infinity();
  if (act == "Relu") {
    step(algorithm::eltwise_relu, 0.f, 0.f);
  } else if (act == "LeakyRelu") {
    step(algorithm::eltwise_relu, param(0, 0.01f), 0.f);
  } else if (act == "Clip") {
    step(algorithm::eltwise_clip_v2, param(0, -inf), param(1, inf));
  } else if (act == "HardSigmoid") {  // clip(alpha * x + beta, 0, 1).
    step(algorithm::eltwise_linear, param(0, 0.2f), param(1, 0.5f));
    step(algorithm::eltwise_clip_v2, 0.f, 1.f);
  } else if (act == "HardSwish") {  // x * clip(x / 6 + 1 / 2, 0, 1).
    step(algorithm::eltwise_hardswish, 0.f, 0.f);
  } else if (act == "Sigmoid") {
    step(algorithm::eltwise_logistic, 0.f, 0.f);
  } else if (act == "Swish") {  // x * sigmoid(alpha * x); alpha = 1 is SiLU.
    step(algorithm::eltwise_swish, param(0, 1.f), 0.f);
  } else if (act == "Tanh") {
    step(algorithm::eltwise_tanh, 0.f, 0.f);
  } else if (act == "Gelu") {
    step(algorithm::eltwise_gelu_erf, 0.f, 0.f);
  } else if (act == "GeluTanh") {
    step(algorithm::eltwise_gelu_tanh, 0.f, 0.f);
  } else {
    return false;
  }
  return true;
}

}  // namespace

Result<PostOps> ReadPostOps(const Node& node, bool residual) {
  PostOps p;
  const bool sum_late = node.attr_int("sum_after_activation", 0) != 0;
  if (residual && !sum_late) p.steps.push_back({true});
  const std::string act = node.attr_string("activation", "");
  if (!act.empty() && !AppendActivation(act, node.attr_floats("activation_params"), &p))
    return InvalidArgument(node.Describe() + ": unknown activation '" + act + "'");
  if (residual && sum_late) p.steps.push_back({true});
  if (node.has_attr("linear")) {
    const std::vector<float> l = node.attr_floats("linear");
    if (l.size() != 2) return InvalidArgument(node.Describe() + ": linear needs [alpha, beta]");
    p.steps.push_back({false, dnnl::algorithm::eltwise_linear, l[0], l[1]});
  }
  return p;
}

void ApplyBroadcast(const PostOps& post, const Tensor& acc, const Tensor& z, Tensor* out) {
  const Shape& os = out->shape();
  const std::vector<int64_t> sa = BroadcastStrides(acc.shape(), os);
  const std::vector<int64_t> sz = BroadcastStrides(z.shape(), os);
  std::vector<int64_t> idx(os.size(), 0);
  const float* pa = acc.data<float>();
  const float* pz = z.data<float>();
  float* po = out->data<float>();
  int64_t oa = 0, oz = 0;
  for (int64_t i = 0; i < out->numel(); ++i) {
    po[i] = post.Apply(pa[oa], pz[oz]);
    for (size_t d = os.size(); d-- > 0;) {  // Odometer step over the output index.
      oa += sa[d];
      oz += sz[d];
      if (++idx[d] < os[d]) break;
      oa -= sa[d] * os[d];
      oz -= sz[d] * os[d];
      idx[d] = 0;
    }
  }
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
