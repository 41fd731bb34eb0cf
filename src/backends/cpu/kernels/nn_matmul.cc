// MatMul and Gemm through the oneDNN matmul primitive (float32; float16 and
// float64 staged through float32; integer MatMul in plain C++).
//
// A constant right-hand operand (weights) is converted once at kernel creation
// and packed into the primitive's preferred layout once per input shape.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backends/cpu/kernels/dnnl_util.h"
#include "backends/cpu/kernels/nn_util.h"
#include "backends/cpu/kernels/shape_ops_util.h"
#include "backends/cpu/kernels/vec_math.h"
#include "ops/dispatch.h"
#include "ops/kernel.h"
#include "ops/shape_util.h"

namespace parallax::nn {
namespace {

using namespace dnnl_util;  // NOLINT: internal helpers.
using dnnl::memory;

struct MatMulPlan {
  dnnl::primitive prim;
  memory src, wei, dst, bias, scratch, wei_buf;
  bool packed = false;
  bool has_bias = false;
};

// Packed copies of a kernel's constant B, keyed by (element offset, columns)
// of the slice they hold; plans for other input shapes (a decoder's growing
// M) reuse them instead of packing B again. Read-only once made.
using PackedB = std::map<std::pair<int64_t, int64_t>, memory>;

// Creates a matmul primitive. With `const_w`, the weights are packed once into
// the preferred layout (or `shared`'s packed weights are reused when their
// layout matches); otherwise the primitive reads `wei_md` directly.
// `post` is a fused epilogue (FusedMatMul).
MatMulPlan MakeMatMulPlan(const memory::desc& src_md, const memory::desc& wei_md,
                          const memory::desc& dst_md, const memory::desc& bias_md, float alpha,
                          const float* const_w, const MatMulPlan* shared = nullptr,
                          const PostOps& post = {}) {
  const dnnl::engine& eng = Engine();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (alpha != 1.f) attr.set_output_scales(0, {alpha});
  post.AppendTo(&attr);
  memory::desc wei_want =
      const_w != nullptr ? memory::desc(wei_md.dims(), dt::f32, tag::any) : wei_md;
  dnnl::matmul::desc d(src_md, wei_want, bias_md, dst_md);
  dnnl::matmul::primitive_desc pd(d, attr, eng);
  MatMulPlan p;
  p.src = memory(src_md, eng, nullptr);
  p.wei = memory(wei_md, eng, nullptr);
  p.dst = memory(dst_md, eng, nullptr);
  p.has_bias = !bias_md.is_zero();
  if (p.has_bias) p.bias = memory(bias_md, eng, nullptr);
  p.scratch = memory(pd.scratchpad_desc(), eng);
  if (const_w != nullptr) {
    if (shared != nullptr && shared->packed && shared->wei_buf.get_desc() == pd.weights_desc()) {
      p.wei_buf = shared->wei_buf;  // Read-only from here on: safe to share.
    } else {
      p.wei_buf = memory(pd.weights_desc(), eng);
      p.wei.set_data_handle(const_cast<float*>(const_w));
      dnnl::stream& s = ThreadStream();
      dnnl::reorder(p.wei, p.wei_buf).execute(s, p.wei, p.wei_buf);
      s.wait();
    }
    p.packed = true;
  }
  p.prim = dnnl::matmul(pd);
  return p;
}

// One intra-op tile of a MatMul: a plan over a slice, and the slice's element
// offsets into A, B and Y.
struct MatMulTile {
  explicit MatMulTile(MatMulPlan p, int64_t a = 0, int64_t b = 0, int64_t y = 0)
      : plan(std::move(p)), a_off(a), b_off(b), y_off(y) {}
  MatMulPlan plan;
  int64_t a_off = 0, b_off = 0, y_off = 0;
  // A column tile computes into this dense [rows, cols] buffer, copied into
  // Y's columns (row stride ld) after the call: for a strided destination
  // oneDNN 2.6 picks its jit GEMM, which repacks B on every call and runs the
  // epilogue separately, instead of brgemm on the pre-packed slice (2-D
  // only; `sum`: the epilogue adds Y's prior contents, copied in first).
  std::shared_ptr<float[]> dense;
  int64_t rows = 0, cols = 0, ld = 0;
  bool sum = false;
};
using TiledMatMul = std::vector<MatMulTile>;

// Plans y[nb, m, n] = a[nb, m, k] x b[nb, k, n] (nb = 0: 2-D, no batch dim;
// b's batch must equal a's) as up to `tiles` independent slices: by batch
// when there are enough, else by rows of A, else (few rows, n > 4m and
// n >= k: short sequences, decoder steps) by column blocks of B, each tile
// packing only its columns. Where k > n (an MLP's down projection) row bands
// win even for few rows: oneDNN runs narrow, deep column blocks poorly, and
// both tiles stream the same B, so one thread's DRAM reads are the other's L3
// hits (32 x 3072 x 768 with weights from DRAM, 2 threads: by columns 6%
// slower than by rows even with dense column tiles). Small products stay one call.
// With `bias` (2-D only) each tile reads its columns of a [1, n] bias at
// b_off's column; `post` is the fused epilogue.
TiledMatMul MakeTiledMatMul(int64_t nb, int64_t m, int64_t k, int64_t n, const float* const_b,
                            int tiles, PackedB* packs, bool bias = false, const PostOps& post = {},
                            float alpha = 1.f) {
  const int64_t batch = std::max<int64_t>(nb, 1);
  const double flops = 2.0 * static_cast<double>(batch * m) * static_cast<double>(k * n);
  auto dims = [&](int64_t b, int64_t r, int64_t c) {
    return nb == 0 ? Shape{r, c} : Shape{b, r, c};
  };
  auto strided = [&](int64_t b, int64_t r, int64_t c, int64_t ld, int64_t plane) {
    return nb == 0 ? StridedDesc({r, c}, {ld, 1}) : StridedDesc({b, r, c}, {plane, ld, 1});
  };
  TiledMatMul out;
  auto add = [&](int64_t b, int64_t rows, int64_t cols, int64_t a_off, int64_t b_off,
                 int64_t y_off) {
    memory::desc bmd = cols == n ? PlainDesc(dims(b, k, n)) : strided(b, k, cols, n, k * n);
    // A 2-D column tile gets a dense destination (MatMulTile::dense).
    const bool dense = cols != n && nb == 0;
    memory::desc ymd = cols == n ? PlainDesc(dims(b, rows, n))
                       : dense   ? PlainDesc(dims(b, rows, cols))
                                 : strided(b, rows, cols, n, m * n);
    // Tiles and plans over the same slice of B share its packed copy.
    const bool keep = const_b != nullptr && nb == 0;
    MatMulPlan known;
    if (auto it = packs->find({b_off, cols}); keep && it != packs->end()) {
      known.wei_buf = it->second;
      known.packed = true;
    }
    memory::desc cmd = bias ? PlainDesc({1, cols}) : memory::desc();
    out.push_back(MatMulTile{MakeMatMulPlan(PlainDesc(dims(b, rows, k)), bmd, ymd, cmd, alpha,
                                            const_b != nullptr ? const_b + b_off : nullptr,
                                            known.packed ? &known : nullptr, post),
                             a_off, b_off, y_off});
    if (dense) {
      MatMulTile& t = out.back();
      t.dense = std::shared_ptr<float[]>(new float[static_cast<size_t>(rows * cols)]);
      t.rows = rows;
      t.cols = cols;
      t.ld = n;
      t.sum = post.has_sum();
    }
    if (keep) packs->emplace(std::make_pair(b_off, cols), out.back().plan.wei_buf);
  };
  int64_t parts = flops < 2e6 ? 1 : tiles;
  if (parts > 1 && nb >= parts) {  // Batch slices.
    for (int64_t t = 0; t < parts; ++t) {
      const int64_t b0 = nb * t / parts, b1 = nb * (t + 1) / parts;
      add(b1 - b0, m, n, b0 * m * k, b0 * k * n, b0 * m * n);
    }
  } else if (parts > 1 && nb == 0 && m >= 8 * parts &&
             !(n >= 64 * parts && n > 4 * m && n >= k)) {  // Row bands of A and Y.
    for (int64_t t = 0; t < parts; ++t) {
      const int64_t r0 = m * t / parts, r1 = m * (t + 1) / parts;
      add(0, r1 - r0, n, r0 * k, 0, r0 * n);
    }
  } else if (parts > 1 && nb == 0 && n >= 64 * parts) {
    // Column blocks of B and Y: for few rows (B larger than A) each tile then
    // streams only its part of B, where row bands would each stream all of it.
    const int64_t blocks = n / 16;
    for (int64_t t = 0; t < parts; ++t) {
      const int64_t c0 = blocks * t / parts * 16;
      const int64_t c1 = t + 1 == parts ? n : blocks * (t + 1) / parts * 16;
      add(0, m, c1 - c0, 0, c0, c0);
    }
  }
  if (out.empty()) add(nb, m, n, 0, 0, 0);
  return out;
}

void RunMatMulPlan(MatMulPlan& p, const float* a, const float* b, const float* bias, float* y) {
  dnnl::stream& s = ThreadStream();
  p.src.set_data_handle(const_cast<float*>(a));
  p.dst.set_data_handle(y);
  if (!p.packed) p.wei.set_data_handle(const_cast<float*>(b));
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, p.src},
                                          {DNNL_ARG_WEIGHTS, p.packed ? p.wei_buf : p.wei},
                                          {DNNL_ARG_DST, p.dst},
                                          {DNNL_ARG_SCRATCHPAD, p.scratch}};
  if (p.has_bias) {
    p.bias.set_data_handle(const_cast<float*>(bias));
    args[DNNL_ARG_BIAS] = p.bias;
  }
  p.prim.execute(s, args);
  s.wait();
}

// Runs tile `t` of a product of a, b (and bias, at the tile's B column) into y.
void RunMatMulTile(MatMulTile& t, const float* a, const float* b, const float* bias, float* y) {
  if (t.dense == nullptr) {
    RunMatMulPlan(t.plan, a + t.a_off, b + t.b_off, bias != nullptr ? bias + t.b_off : nullptr,
                  y + t.y_off);
    return;
  }
  float* d = t.dense.get();
  float* out = y + t.y_off;
  const size_t row_bytes = static_cast<size_t>(t.cols) * sizeof(float);
  if (t.sum)
    for (int64_t r = 0; r < t.rows; ++r) std::memcpy(d + r * t.cols, out + r * t.ld, row_bytes);
  RunMatMulPlan(t.plan, a + t.a_off, b + t.b_off, bias != nullptr ? bias + t.b_off : nullptr, d);
  for (int64_t r = 0; r < t.rows; ++r) std::memcpy(out + r * t.ld, d + r * t.cols, row_bytes);
}

// y[rows] = alpha * a[rows, k] x b[k] (a MatMul with one column: the tied
// vocabulary projection of a decoder), as row dots split by rows over the
// intra-op threads; bound by streaming A, which row_dots reads at close to
// the memory bandwidth (oneDNN's GEMM reaches about half of it at N = 1).
Status RunMatVec(KernelContext& ctx, const float* a, const float* b, int64_t rows, int64_t k,
                 float alpha, float* y) {
  const vec::Kernels& vk = vec::Best();
  const int64_t parts =
      rows * k < (int64_t{1} << 18) ? 1 : std::min<int64_t>(ctx.intra_op().threads, rows);
  return RunTiles(ctx.node(), ctx.intra_op(), parts, [&](int64_t t) {
    const int64_t r0 = rows * t / parts, r1 = rows * (t + 1) / parts;
    vk.row_dots(a + r0 * k, k, b, k, r1 - r0, alpha, y + r0);
    return Status::Ok();
  });
}

// A matmul-like kernel (MatMul, Gemm) whose B operand, when constant, is
// kept as float32 once at creation. Derived supplies RunImpl.
template <typename Derived, typename Plan>
class ConstBKernel : public Kernel {
 public:
  static Result<std::unique_ptr<Kernel>> Create(const KernelInit& init) {
    auto k = std::make_unique<Derived>();
    if (const Tensor* b = init.constant_input(1); b != nullptr && IsFloatLike(b->dtype())) {
      PX_ASSIGN_OR_RETURN(k->const_b_, ToFloat32(*b));
      k->const_b_ = k->const_b_.Detached();  // Shares owned constants.
    }
    if constexpr (requires { k->Init(init); }) {
      PX_RETURN_IF_ERROR(k->Init(init));
    }
    return std::unique_ptr<Kernel>(std::move(k));
  }
  Status Run(KernelContext& ctx) override {
    return Guard(ctx.node(), [&] { return static_cast<Derived*>(this)->RunImpl(ctx); });
  }

 protected:
  Tensor const_b_;
  PlanCache<Plan> cache_;
  PackedB packed_b_;  // Constant B's packed slices, shared by all plans.
};

// An operand read as Transpose(x, perm): its logical dims and the element
// strides of x along them.
struct PermutedOperand {
  Shape dims;
  std::vector<int64_t> strides;
};
PermutedOperand Permuted(const Shape& x, const std::vector<int64_t>& perm) {
  const std::vector<int64_t> st = Strides(x);
  if (perm.empty()) return {x, st};
  PermutedOperand p;
  for (int64_t d : perm) {
    p.dims.push_back(x[static_cast<size_t>(d)]);
    p.strides.push_back(st[static_cast<size_t>(d)]);
  }
  return p;
}

// Plans y = alpha * a x b for strided a and b of equal rank and batch dims
// (batch dims of extent 1 dropped), as up to `tiles` slices along the
// outermost batch dim (or rows of A without one). Y is dense.
TiledMatMul MakeStridedMatMul(PermutedOperand a, PermutedOperand b, int tiles, float alpha) {
  PermutedOperand ka, kb;
  for (size_t d = 0; d < a.dims.size(); ++d) {
    if (d + 2 < a.dims.size() && a.dims[d] == 1) continue;
    ka.dims.push_back(a.dims[d]);
    ka.strides.push_back(a.strides[d]);
    kb.dims.push_back(b.dims[d]);
    kb.strides.push_back(b.strides[d]);
  }
  const size_t r = ka.dims.size();
  Shape ydims(ka.dims.begin(), ka.dims.end() - 1);
  ydims.push_back(kb.dims.back());
  const std::vector<int64_t> ys = Strides(ydims);
  const double flops =
      2.0 * static_cast<double>(NumElements(ydims)) * static_cast<double>(ka.dims.back());
  const size_t axis = r > 2 ? 0 : r - 2;  // Batch, else rows of A.
  const int64_t parts = flops < 2e6 ? 1 : std::min<int64_t>(tiles, ka.dims[axis]);
  TiledMatMul out;
  for (int64_t t = 0; t < parts; ++t) {
    const int64_t i0 = ka.dims[axis] * t / parts, i1 = ka.dims[axis] * (t + 1) / parts;
    Shape da = ka.dims, db = kb.dims, dy = ydims;
    da[axis] = dy[axis] = i1 - i0;
    if (axis == 0 && r > 2) db[0] = i1 - i0;
    const int64_t b_off = axis == 0 && r > 2 ? i0 * kb.strides[0] : 0;
    out.push_back(
        MatMulTile{MakeMatMulPlan(StridedDesc(da, ka.strides), StridedDesc(db, kb.strides),
                                  StridedDesc(dy, ys), memory::desc(), alpha, nullptr),
                   i0 * ka.strides[axis], b_off, i0 * ys[axis]});
  }
  return out;
}

// MatMul, and com.parallax ScaledMatMul: alpha * MatMul (oneDNN output
// scale; alpha 1 for MatMul), reading A as Transpose(A, perm_a) and B as
// Transpose(B, perm_b) when those are set (float32 only).
class MatMulKernel final : public ConstBKernel<MatMulKernel, TiledMatMul> {
 public:
  Status Init(const KernelInit& init) {
    alpha_ = init.node.attr_float("alpha", 1.f);
    perm_a_ = init.node.attr_ints("perm_a");
    perm_b_ = init.node.attr_ints("perm_b");
    if (!perm_b_.empty()) const_b_ = Tensor();  // Read through perm_b instead.
    return Status::Ok();
  }
  Status RunImpl(KernelContext& ctx);

 private:
  Status RunPermuted(KernelContext& ctx);
  Status RunOn(KernelContext& ctx, const Tensor& ain, const Tensor& bin);
  float alpha_ = 1.f;
  std::vector<int64_t> perm_a_, perm_b_;
};

Status MatMulKernel::RunImpl(KernelContext& ctx) {
  PrepareThread();
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("A and B are required");
  if (!perm_a_.empty() || !perm_b_.empty()) return RunPermuted(ctx);
  return RunOn(ctx, ctx.input(0), ctx.input(1));
}

// Strided through oneDNN when A and B have equal batch dims; otherwise (batch
// broadcasting) on transposed copies.
Status MatMulKernel::RunPermuted(KernelContext& ctx) {
  const Tensor& ain = ctx.input(0);
  const Tensor& bin = ctx.input(1);
  if (ain.dtype() != DType::kFloat32 || bin.dtype() != DType::kFloat32)
    return ctx.Error("perm_a / perm_b need float32 A and B");
  for (const auto& [perm, x] : {std::pair{&perm_a_, &ain}, std::pair{&perm_b_, &bin}}) {
    if (perm->empty()) continue;
    std::vector<int64_t> sorted = *perm;
    std::sort(sorted.begin(), sorted.end());
    for (size_t d = 0; d < sorted.size(); ++d)
      if (sorted[d] != static_cast<int64_t>(d) || sorted.size() != x->shape().size())
        return ctx.Error("perm " + ShapeToString(*perm) + " is not a permutation of the axes of " +
                         ShapeToString(x->shape()));
  }
  const PermutedOperand a = Permuted(ain.shape(), perm_a_), b = Permuted(bin.shape(), perm_b_);
  const size_t r = a.dims.size();
  const bool strided = r >= 2 && b.dims.size() == r &&
                       std::equal(a.dims.begin(), a.dims.end() - 2, b.dims.begin()) &&
                       a.dims[r - 1] == b.dims[r - 2];
  if (!strided) {  // Broadcast batch dims or a shape error: plain MatMul on copies.
    Tensor ta = ain, tb = bin;
    for (auto [x, perm, t] : {std::tuple{&ain, &perm_a_, &ta}, std::tuple{&bin, &perm_b_, &tb}}) {
      if (perm->empty()) continue;
      *t = Tensor::Uninitialized(DType::kFloat32, Permuted(x->shape(), *perm).dims);
      TransposeCopy(x->data<float>(), t->data<float>(), sizeof(float), x->shape(),
                    std::vector<int>(perm->begin(), perm->end()), ctx.intra_op());
    }
    return RunOn(ctx, ta, tb);
  }
  Shape ydims(a.dims.begin(), a.dims.end() - 1);
  ydims.push_back(b.dims.back());
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, DType::kFloat32, ydims));
  if (out->numel() == 0) return Status::Ok();
  if (a.dims.back() == 0) {
    std::fill_n(out->data<float>(), out->numel(), 0.f);
    return Status::Ok();
  }
  std::vector<int64_t> key = ain.shape();
  key.push_back(-2);
  key.insert(key.end(), bin.shape().begin(), bin.shape().end());
  key.push_back(ctx.intra_op().threads);
  TiledMatMul* plan = cache_.Find(key);
  if (plan == nullptr) {
    std::lock_guard<std::mutex> lock(CreationMutex());
    plan = cache_.Insert(key, MakeStridedMatMul(a, b, ctx.intra_op().threads, alpha_));
  }
  const float* pa = ain.data<float>();
  const float* pb = bin.data<float>();
  float* py = out->data<float>();
  return RunTiles(ctx.node(), ctx.intra_op(), static_cast<int64_t>(plan->size()), [&](int64_t i) {
    MatMulTile& t = (*plan)[static_cast<size_t>(i)];
    RunMatMulTile(t, pa, pb, nullptr, py);
    return Status::Ok();
  });
}

Status MatMulKernel::RunOn(KernelContext& ctx, const Tensor& ain, const Tensor& bin) {
  DType dtype = ain.dtype();
  if (bin.dtype() != dtype)
    return ctx.Error("A and B types differ: " + std::string(DTypeName(dtype)) + " vs " +
                     std::string(DTypeName(bin.dtype())));
  Result<MatMulShapes> shapes = BroadcastMatMulShapes(ain.shape(), bin.shape());
  if (!shapes.ok()) return ctx.Error(shapes.status().message());
  const MatMulShapes& s = *shapes;
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dtype, s.out));
  if (!IsFloatLike(dtype)) {
    return DispatchInt(dtype, [&]<typename T>() -> Status {
      BatchedMatMul<T>(s, ain.data<T>(), bin.data<T>(), out->data<T>());
      return Status::Ok();
    });
  }
  if (out->numel() == 0) return Status::Ok();
  Tensor y = dtype == DType::kFloat32 ? *out : Tensor::Uninitialized(DType::kFloat32, s.out);
  if (s.k == 0) {
    std::fill_n(y.data<float>(), y.numel(), 0.f);
  } else {
    PX_ASSIGN_OR_RETURN(Tensor a, ToFloat32(ain));
    Tensor b = const_b_;
    if (!b.defined()) {
      PX_ASSIGN_OR_RETURN(b, ToFloat32(bin));
    }
    const Shape a_batch(s.a.begin(), s.a.end() - 2), b_batch(s.b.begin(), s.b.end() - 2);
    const bool weights_2d = NumElements(b_batch) == 1;
    if (weights_2d && s.n == 1) {
      PX_RETURN_IF_ERROR(RunMatVec(ctx, a.data<float>(), b.data<float>(), a.numel() / s.k, s.k,
                                   alpha_, y.data<float>()));
      if (dtype != DType::kFloat32) StoreFromFloat32(y.data<float>(), out);
      return Status::Ok();
    }
    std::vector<int64_t> key = s.a;
    key.push_back(-1);
    key.insert(key.end(), s.b.begin(), s.b.end());
    key.push_back(ctx.intra_op().threads);
    TiledMatMul* plan = cache_.Find(key);
    if (plan == nullptr) {
      std::lock_guard<std::mutex> lock(CreationMutex());
      const float* cb = const_b_.defined() ? b.data<float>() : nullptr;
      const int tiles = ctx.intra_op().threads;
      TiledMatMul tiled;
      if (weights_2d) {  // Fold A's batch into M: one 2-D GEMM.
        tiled =
            MakeTiledMatMul(0, a.numel() / s.k, s.k, s.n, cb, tiles, &packed_b_, false, {}, alpha_);
      } else if (a_batch == b_batch) {
        const int64_t nb = NumElements(a_batch);
        tiled = MakeTiledMatMul(nb == 1 ? 0 : nb, s.m, s.k, s.n, cb, tiles, &packed_b_, false, {},
                                alpha_);
      } else {  // Broadcast batch dims: one call over the full-rank shapes.
        tiled.push_back(MatMulTile{MakeMatMulPlan(PlainDesc(s.a), PlainDesc(s.b), PlainDesc(s.y),
                                                  memory::desc(), alpha_, cb)});
      }
      plan = cache_.Insert(key, std::move(tiled));
    }
    const float* pa = a.data<float>();
    const float* pb = b.data<float>();
    float* py = y.data<float>();
    PX_RETURN_IF_ERROR(
        RunTiles(ctx.node(), ctx.intra_op(), static_cast<int64_t>(plan->size()), [&](int64_t i) {
          MatMulTile& t = (*plan)[static_cast<size_t>(i)];
          RunMatMulTile(t, pa, pb, nullptr, py);
          return Status::Ok();
        }));
  }
  if (dtype != DType::kFloat32) StoreFromFloat32(y.data<float>(), out);
  return Status::Ok();
}

// beta * C as a [cm, cn] float32 bias broadcastable to [m, n].
Result<Tensor> GemmBias(KernelContext& ctx, int64_t m, int64_t n, float beta) {
  const Tensor& c = ctx.input(2);
  if (c.rank() > 2) return ctx.Error("C must have rank <= 2, got " + ShapeToString(c.shape()));
  int64_t cm = c.rank() == 2 ? c.dim(0) : 1, cn = c.rank() >= 1 ? c.dim(c.rank() - 1) : 1;
  if ((cm != 1 && cm != m) || (cn != 1 && cn != n))
    return ctx.Error("C shape " + ShapeToString(c.shape()) + " cannot broadcast to [" +
                     std::to_string(m) + "," + std::to_string(n) + "]");
  PX_ASSIGN_OR_RETURN(Tensor cf, ToFloat32(c));
  Tensor bias = Tensor::Uninitialized(DType::kFloat32, {cm, cn});
  for (int64_t i = 0; i < cm * cn; ++i) bias.data<float>()[i] = beta * cf.data<float>()[i];
  return bias;
}

class GemmKernel final : public ConstBKernel<GemmKernel, MatMulPlan> {
 public:
  Status RunImpl(KernelContext& ctx);
};

Status GemmKernel::RunImpl(KernelContext& ctx) {
  PrepareThread();
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("A and B are required");
  const Tensor& ain = ctx.input(0);
  DType dtype = ain.dtype();
  if (!IsFloatLike(dtype) || ctx.input(1).dtype() != dtype)
    return Unsupported(ctx.node().Describe() + ": Gemm supports float types of equal dtype only");
  if (ain.rank() != 2 || ctx.input(1).rank() != 2)
    return ctx.Error("A and B must be 2-D, got " + ShapeToString(ain.shape()) + " and " +
                     ShapeToString(ctx.input(1).shape()));
  bool ta = ctx.node().attr_int("transA", 0) != 0, tb = ctx.node().attr_int("transB", 0) != 0;
  float alpha = ctx.node().attr_float("alpha", 1.f), beta = ctx.node().attr_float("beta", 1.f);
  const Shape& as = ain.shape();
  const Shape& bs = ctx.input(1).shape();
  int64_t m = ta ? as[1] : as[0], k = ta ? as[0] : as[1];
  int64_t kb = tb ? bs[1] : bs[0], n = tb ? bs[0] : bs[1];
  if (k != kb)
    return ctx.Error("inner dimensions differ: A " + ShapeToString(as) + ", B " +
                     ShapeToString(bs) + ", transA=" + std::to_string(ta) +
                     ", transB=" + std::to_string(tb));
  Tensor bias;
  // oneDNN scales the bias too (dst = alpha * (AB + bias)): pre-divide by
  // alpha.
  float bias_scale = alpha != 0.f && k != 0 ? beta / alpha : beta;
  if (ctx.has_input(2) && beta != 0.f) {
    PX_ASSIGN_OR_RETURN(bias, GemmBias(ctx, m, n, bias_scale));
  }
  PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dtype, {m, n}));
  if (out->numel() == 0) return Status::Ok();
  Tensor y = dtype == DType::kFloat32 ? *out : Tensor::Uninitialized(DType::kFloat32, {m, n});
  float* py = y.data<float>();
  if (k == 0 || alpha == 0.f) {  // No product term: Y = beta * C.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        py[i * n + j] = bias.defined()
                            ? bias.data<float>()[(bias.dim(0) == 1 ? 0 : i) * bias.dim(1) +
                                                 (bias.dim(1) == 1 ? 0 : j)]
                            : 0.f;
  } else {
    PX_ASSIGN_OR_RETURN(Tensor a, ToFloat32(ain));
    Tensor b = const_b_;
    if (!b.defined()) {
      PX_ASSIGN_OR_RETURN(b, ToFloat32(ctx.input(1)));
    }
    std::vector<int64_t> key = {m, k, n, ta, tb};
    if (bias.defined()) key.insert(key.end(), {bias.dim(0), bias.dim(1)});
    MatMulPlan* plan = cache_.Find(key);
    if (plan == nullptr) {
      std::lock_guard<std::mutex> lock(CreationMutex());
      memory::desc amd = ta ? StridedDesc({m, k}, {1, m}) : PlainDesc({m, k});
      memory::desc bmd = tb ? StridedDesc({k, n}, {1, k}) : PlainDesc({k, n});
      memory::desc cmd = bias.defined() ? PlainDesc(bias.shape()) : memory::desc();
      plan = cache_.Insert(key, MakeMatMulPlan(amd, bmd, PlainDesc({m, n}), cmd, alpha,
                                               const_b_.defined() ? b.data<float>() : nullptr));
    }
    RunMatMulPlan(*plan, a.data<float>(), b.data<float>(),
                  bias.defined() ? bias.data<float>() : nullptr, py);
  }
  if (dtype != DType::kFloat32) StoreFromFloat32(py, out);
  return Status::Ok();
}

// com.parallax FusedMatMul(A, B, [bias], [Z]): A [..., K] (rank >= 1),
// B [K, N], an optional bias of N elements and an optional residual Z of the
// output's shape; the epilogue (ReadPostOps) adds Z and applies the
// activation and linear step. float32 only. The rows of A fold into one
// [M, K] x [K, N] GEMM with oneDNN post-ops, split into intra-op tiles like
// MatMul; a Z of another shape is broadcast in C++ after a plain GEMM.
class FusedMatMulKernel final : public ConstBKernel<FusedMatMulKernel, TiledMatMul> {
 public:
  Status Init(const KernelInit& init) {
    PX_ASSIGN_OR_RETURN(post_, ReadPostOps(init.node, init.has_input(3)));
    return Status::Ok();
  }
  Status RunImpl(KernelContext& ctx);

 private:
  PostOps post_;
};

Status FusedMatMulKernel::RunImpl(KernelContext& ctx) {
  PrepareThread();
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Error("A and B are required");
  const Tensor& a = ctx.input(0);
  const Tensor& bin = ctx.input(1);
  if (a.dtype() != DType::kFloat32 || bin.dtype() != DType::kFloat32)
    return ctx.Error("A and B must be float32");
  if (a.rank() < 1 || bin.rank() != 2 || a.shape().back() != bin.dim(0) || bin.dim(0) == 0)
    return ctx.Error("expects A [..., K] and B [K, N] with K > 0, got " + ShapeToString(a.shape()) +
                     " and " + ShapeToString(bin.shape()));
  const int64_t k = bin.dim(0), n = bin.dim(1), m = a.numel() / k;
  const float* bias = nullptr;
  if (ctx.has_input(2)) {
    const Tensor& c = ctx.input(2);
    if (c.dtype() != DType::kFloat32 || c.numel() != n)
      return ctx.Error("bias must be float32 with " + std::to_string(n) + " elements, got " +
                       ShapeToString(c.shape()));
    bias = c.data<float>();
  }
  Shape y_shape = a.shape();
  y_shape.back() = n;
  const Tensor* z = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  if (z != nullptr && z->dtype() != DType::kFloat32) return ctx.Error("Z must be float32");
  const bool broadcast_z = z != nullptr && z->shape() != y_shape;
  Shape out_shape = y_shape;
  if (broadcast_z) {
    Result<Shape> bs = BroadcastShapes(y_shape, z->shape());
    if (!bs.ok()) return ctx.Error("residual Z: " + bs.status().message());
    out_shape = *bs;
  }
  // The sum post-op adds what y holds: a same-shape Z may already be there.
  PX_ASSIGN_OR_RETURN(Tensor * out, broadcast_z ? ctx.Output(0, DType::kFloat32, out_shape)
                                                : ctx.OutputOver(3, DType::kFloat32, out_shape));
  if (out->numel() == 0) return Status::Ok();
  const Tensor& b = const_b_.defined() ? const_b_ : bin;
  std::vector<int64_t> key = {m, k, n, bias != nullptr, broadcast_z, ctx.intra_op().threads};
  TiledMatMul* plan = cache_.Find(key);
  if (plan == nullptr) {
    std::lock_guard<std::mutex> lock(CreationMutex());
    plan = cache_.Insert(key,
                         MakeTiledMatMul(0, m, k, n, const_b_.defined() ? b.data<float>() : nullptr,
                                         ctx.intra_op().threads, &packed_b_, bias != nullptr,
                                         broadcast_z ? PostOps{} : post_));
  }
  Tensor y = broadcast_z ? Tensor::Uninitialized(DType::kFloat32, y_shape) : *out;
  if (z != nullptr && !broadcast_z && z->data<float>() != y.data<float>())
    std::memcpy(y.data<float>(), z->data<float>(), z->nbytes());  // Read by the sum step.
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.data<float>();
  PX_RETURN_IF_ERROR(
      RunTiles(ctx.node(), ctx.intra_op(), static_cast<int64_t>(plan->size()), [&](int64_t i) {
        MatMulTile& t = (*plan)[static_cast<size_t>(i)];
        RunMatMulTile(t, pa, pb, bias, py);  // Its bias columns start at its B column.
        return Status::Ok();
      }));
  if (broadcast_z) ApplyBroadcast(post_, y, *z, out);
  return Status::Ok();
}

}  // namespace

void RegisterMatMulOps(OpRegistry& r) {
  r.Register("", "MatMul", MatMulKernel::Create);
  r.Register("", "Gemm", GemmKernel::Create);
  r.Register("com.parallax", "FusedMatMul", FusedMatMulKernel::Create);
  r.SetReusableInputs("com.parallax", "FusedMatMul", {3});
  r.Register("com.parallax", "ScaledMatMul", MatMulKernel::Create);
}

}  // namespace parallax::nn
