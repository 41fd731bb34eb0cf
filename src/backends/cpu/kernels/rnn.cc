// ONNX RNN, GRU and LSTM (opsets 1-22): attribute parsing, input checks,
// weight pre-packing, layouts and dtypes. The recurrences themselves live in
// rnn_cells.cc.
//
// W [dirs, G*H, I] and R [dirs, G*H, H] are transposed once (at kernel
// creation when they are constants) so each step's gate GEMM streams over
// contiguous weight rows. The input projection of all steps is one GEMM
// before the recurrence. float16 computes in float32; float64 in double.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cpu/kernels/families.h"
#include "backends/cpu/kernels/rnn_util.h"
#include "ops/dispatch.h"
#include "ops/shape_util.h"

namespace parallax {
namespace {

using rnn::Activation;
using rnn::ActKind;
using rnn::Cell;

struct Config {
  Cell cell = Cell::kRnn;
  int num_gates = 1;
  int64_t hidden_attr = -1;  // -1 when the attribute is absent.
  int num_dirs = 1;
  bool reverse = false;          // direction == "reverse"
  std::vector<Activation> acts;  // acts_per_dir * num_dirs
  int acts_per_dir = 1;
  bool has_clip = false;
  float clip = 0.f;
  bool input_forget = false;
  bool linear_before_reset = false;
  int layout = 0;
};

Result<Config> ParseConfig(Cell cell, const KernelInit& init) {
  const Node& node = init.node;
  Config c;
  c.cell = cell;
  std::vector<Activation> defaults;
  const Activation sig{ActKind::kSigmoid, 0.f, 0.f}, tanh_act{ActKind::kTanh, 0.f, 0.f};
  switch (cell) {
    case Cell::kRnn:
      c.num_gates = 1;
      defaults = {tanh_act};
      break;
    case Cell::kGru:
      c.num_gates = 3;
      defaults = {sig, tanh_act};
      break;
    case Cell::kLstm:
      c.num_gates = 4;
      defaults = {sig, tanh_act, tanh_act};
      break;
  }
  c.acts_per_dir = static_cast<int>(defaults.size());
  std::string dir = node.attr_string("direction", "forward");
  if (dir == "bidirectional")
    c.num_dirs = 2;
  else if (dir == "reverse")
    c.reverse = true;
  else if (dir != "forward")
    return init.Error("unknown direction '" + dir + "'");
  if (node.has_attr("hidden_size")) {
    c.hidden_attr = node.attr_int("hidden_size", 0);
    if (c.hidden_attr <= 0)
      return init.Error("hidden_size must be positive, got " + std::to_string(c.hidden_attr));
  }
  std::vector<std::string> names;
  if (const Attribute* a = node.attr("activations")) names = a->strings;
  auto acts = rnn::ParseActivations(names, node.attr_floats("activation_alpha"),
                                    node.attr_floats("activation_beta"), defaults, c.num_dirs);
  if (!acts.ok()) return acts.status().WithContext(node.Describe());
  c.acts = std::move(acts).value();
  if (node.has_attr("clip")) {
    c.has_clip = true;
    c.clip = node.attr_float("clip", 0.f);
    if (!(c.clip > 0.f)) return init.Error("clip must be positive, got " + std::to_string(c.clip));
  }
  c.input_forget = node.attr_int("input_forget", 0) != 0;
  c.linear_before_reset = node.attr_int("linear_before_reset", 0) != 0;
  c.layout = static_cast<int>(node.attr_int("layout", 0));
  if (c.layout != 0 && c.layout != 1)
    return init.Error("layout must be 0 or 1, got " + std::to_string(c.layout));
  return c;
}

struct Dims {
  int64_t seq = 0, batch = 0, input = 0, hidden = 0;
};

bool IsFloatType(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16;
}

// Returns the values of a float32/float64/float16 tensor as T: the tensor's
// own data when it already is T, otherwise a converted copy in *buf.
template <typename T>
const T* AsT(const Tensor& t, std::vector<T>* buf) {
  if (t.dtype() == DTypeOf<T>::value) return t.data<T>();
  const size_t n = static_cast<size_t>(t.numel());
  buf->resize(n);
  if (t.dtype() == DType::kFloat16) {
    for (size_t i = 0; i < n; ++i) (*buf)[i] = static_cast<T>(HalfToFloat(t.data<Half>()[i]));
  } else if (t.dtype() == DType::kFloat32) {
    for (size_t i = 0; i < n; ++i) (*buf)[i] = static_cast<T>(t.data<float>()[i]);
  } else {
    for (size_t i = 0; i < n; ++i) (*buf)[i] = static_cast<T>(t.data<double>()[i]);
  }
  return buf->data();
}

// in [A][B][inner] -> out [B][A][inner].
template <typename T>
void SwapFirstTwo(const T* in, int64_t A, int64_t B, int64_t inner, T* out) {
  for (int64_t a = 0; a < A; ++a)
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(out + (b * A + a) * inner, in + (a * B + b) * inner, inner * sizeof(T));
}

// w [dirs, rows, cols] -> out [dirs, cols, rows].
template <typename T>
void PackTransposed(const Tensor& w, std::vector<T>* out) {
  std::vector<T> buf;
  const T* src = AsT(w, &buf);
  const int64_t dirs = w.dim(0), rows = w.dim(1), cols = w.dim(2);
  out->resize(static_cast<size_t>(dirs * rows * cols));
  for (int64_t d = 0; d < dirs; ++d) {
    const T* s = src + d * rows * cols;
    T* o = out->data() + d * rows * cols;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) o[c * rows + r] = s[r * cols + c];
  }
}

template <typename T>
struct Packed {
  std::vector<T> wt, rt;
  bool ready = false;
};

// Copies T values into an output tensor of dtype T or float16.
template <typename T>
void Store(const std::vector<T>& src, Tensor* out) {
  if (out->dtype() == DType::kFloat16) {
    Half* o = out->data<Half>();
    for (size_t i = 0; i < src.size(); ++i) o[i] = FloatToHalf(static_cast<float>(src[i]));
  } else if (!src.empty()) {
    std::memcpy(out->raw_data(), src.data(), src.size() * sizeof(T));
  }
}

std::string Str(const Shape& s) { return ShapeToString(s); }

class RecurrentKernel : public Kernel {
 public:
  explicit RecurrentKernel(Config cfg) : cfg_(std::move(cfg)) {}

  Status Prepare(const KernelInit& init);
  Status Run(KernelContext& ctx) override;

 private:
  Result<Dims> CheckInputs(KernelContext& ctx) const;
  Status CheckOptional(KernelContext& ctx, const Dims& d) const;
  template <typename T>
  Status RunT(KernelContext& ctx);
  template <typename T>
  Status Emit(KernelContext& ctx, const Dims& d, const std::vector<T>& y, const std::vector<T>& h,
              const std::vector<T>& c) const;
  template <typename T>
  Packed<T>& packed() {
    if constexpr (std::is_same_v<T, double>)
      return packed_d_;
    else
      return packed_f_;
  }

  Config cfg_;
  Packed<float> packed_f_;
  Packed<double> packed_d_;
};

Status RecurrentKernel::Prepare(const KernelInit& init) {
  const Tensor* w = init.constant_input(1);
  const Tensor* r = init.constant_input(2);
  if (w == nullptr || r == nullptr || w->rank() != 3 || r->rank() != 3) return Status::Ok();
  if (!IsFloatType(w->dtype()) || w->dtype() != r->dtype()) return Status::Ok();
  if (w->dtype() == DType::kFloat64) {
    PackTransposed(*w, &packed_d_.wt);
    PackTransposed(*r, &packed_d_.rt);
    packed_d_.ready = true;
  } else {
    PackTransposed(*w, &packed_f_.wt);
    PackTransposed(*r, &packed_f_.rt);
    packed_f_.ready = true;
  }
  return Status::Ok();
}

Result<Dims> RecurrentKernel::CheckInputs(KernelContext& ctx) const {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    return ctx.Error("inputs X, W and R are required");
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor& r = ctx.input(2);
  if (!IsFloatType(x.dtype()))
    return ctx.Error("X must be float16/float32/float64, got " + std::string(DTypeName(x.dtype())));
  for (int i = 1; i < ctx.num_inputs(); ++i) {
    if (i == 4 || !ctx.has_input(i)) continue;
    if (ctx.input(i).dtype() != x.dtype())
      return ctx.Error("input " + std::to_string(i) + " has dtype " +
                       std::string(DTypeName(ctx.input(i).dtype())) + " but X has " +
                       std::string(DTypeName(x.dtype())));
  }
  if (x.rank() != 3) return ctx.Error("X must have rank 3, got " + Str(x.shape()));
  Dims d;
  d.seq = cfg_.layout == 0 ? x.dim(0) : x.dim(1);
  d.batch = cfg_.layout == 0 ? x.dim(1) : x.dim(0);
  d.input = x.dim(2);
  if (r.rank() != 3) return ctx.Error("R must have rank 3, got " + Str(r.shape()));
  d.hidden = cfg_.hidden_attr >= 0 ? cfg_.hidden_attr : r.dim(2);
  const int64_t gh = cfg_.num_gates * d.hidden;
  const int64_t nd = cfg_.num_dirs;
  if (w.shape() != Shape{nd, gh, d.input})
    return ctx.Error("W must have shape " + Str({nd, gh, d.input}) + ", got " + Str(w.shape()));
  if (r.shape() != Shape{nd, gh, d.hidden})
    return ctx.Error("R must have shape " + Str({nd, gh, d.hidden}) + ", got " + Str(r.shape()));
  PX_RETURN_IF_ERROR(CheckOptional(ctx, d));
  return d;
}

Status RecurrentKernel::CheckOptional(KernelContext& ctx, const Dims& d) const {
  const int64_t nd = cfg_.num_dirs, gh = cfg_.num_gates * d.hidden;
  if (ctx.has_input(3) && ctx.input(3).shape() != Shape{nd, 2 * gh})
    return ctx.Error("B must have shape " + Str({nd, 2 * gh}) + ", got " +
                     Str(ctx.input(3).shape()));
  if (ctx.has_input(4)) {
    const Tensor& lens = ctx.input(4);
    if (lens.shape() != Shape{d.batch})
      return ctx.Error("sequence_lens must have shape " + Str({d.batch}) + ", got " +
                       Str(lens.shape()));
    PX_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(lens));
    for (int64_t l : v)
      if (l < 0 || l > d.seq)
        return ctx.Error("sequence_lens value " + std::to_string(l) + " is outside [0, " +
                         std::to_string(d.seq) + "]");
  }
  const Shape state =
      cfg_.layout == 0 ? Shape{nd, d.batch, d.hidden} : Shape{d.batch, nd, d.hidden};
  const char* names[] = {"initial_h", "initial_c"};
  for (int i = 5; i <= 6; ++i) {
    if (i == 6 && cfg_.cell != Cell::kLstm) break;
    if (ctx.has_input(i) && ctx.input(i).shape() != state)
      return ctx.Error(std::string(names[i - 5]) + " must have shape " + Str(state) + ", got " +
                       Str(ctx.input(i).shape()));
  }
  if (cfg_.cell == Cell::kLstm && ctx.has_input(7) &&
      ctx.input(7).shape() != Shape{nd, 3 * d.hidden})
    return ctx.Error("P must have shape " + Str({nd, 3 * d.hidden}) + ", got " +
                     Str(ctx.input(7).shape()));
  return Status::Ok();
}

Status RecurrentKernel::Run(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Error("input X is required");
  if (ctx.input(0).dtype() == DType::kFloat64) return RunT<double>(ctx);
  return RunT<float>(ctx);
}

// Reads an optional [dirs, batch, H] state (layout 1: [batch, dirs, H]) into
// layout-0 values, zeros when absent.
template <typename T>
std::vector<T> ReadState(KernelContext& ctx, int i, int layout, int64_t dirs, const Dims& d) {
  std::vector<T> out(static_cast<size_t>(dirs * d.batch * d.hidden), T(0));
  if (!ctx.has_input(i)) return out;
  std::vector<T> buf;
  const T* src = AsT(ctx.input(i), &buf);
  if (layout == 0)
    std::copy(src, src + out.size(), out.begin());
  else
    SwapFirstTwo(src, d.batch, dirs, d.hidden, out.data());
  return out;
}

template <typename T>
Status RecurrentKernel::RunT(KernelContext& ctx) {
  PX_ASSIGN_OR_RETURN(Dims d, CheckInputs(ctx));
  const int64_t nd = cfg_.num_dirs, gh = cfg_.num_gates * d.hidden;
  std::vector<T> xbuf, xt, bbuf, pbuf;
  const T* x = AsT(ctx.input(0), &xbuf);
  if (cfg_.layout == 1) {
    xt.resize(static_cast<size_t>(d.seq * d.batch * d.input));
    SwapFirstTwo(x, d.batch, d.seq, d.input, xt.data());
    x = xt.data();
  }
  Packed<T> local;
  const Packed<T>* pk = &packed<T>();
  if (!pk->ready) {
    PackTransposed(ctx.input(1), &local.wt);
    PackTransposed(ctx.input(2), &local.rt);
    pk = &local;
  }
  const T* bias = ctx.has_input(3) ? AsT(ctx.input(3), &bbuf) : nullptr;
  const bool lstm = cfg_.cell == Cell::kLstm;
  const T* peep = lstm && ctx.has_input(7) ? AsT(ctx.input(7), &pbuf) : nullptr;
  std::vector<int32_t> lens;
  if (ctx.has_input(4)) {
    PX_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(ctx.input(4)));
    lens.assign(v.begin(), v.end());
  }
  std::vector<T> h = ReadState<T>(ctx, 5, cfg_.layout, nd, d);
  std::vector<T> c = lstm ? ReadState<T>(ctx, 6, cfg_.layout, nd, d) : std::vector<T>();
  std::vector<T> y;
  if (ctx.output_used(0)) y.resize(static_cast<size_t>(d.seq * nd * d.batch * d.hidden));
  for (int dir = 0; dir < nd; ++dir) {
    rnn::Direction<T> r;
    r.cell = cfg_.cell;
    r.seq = d.seq, r.batch = d.batch, r.input = d.input, r.hidden = d.hidden;
    r.num_gates = cfg_.num_gates, r.num_dirs = cfg_.num_dirs, r.dir = dir;
    r.backward = dir == 1 || cfg_.reverse;
    r.x = x;
    r.wt = pk->wt.data() + dir * gh * d.input;
    r.rt = pk->rt.data() + dir * gh * d.hidden;
    r.bias = bias ? bias + dir * 2 * gh : nullptr;
    r.peep = peep ? peep + dir * 3 * d.hidden : nullptr;
    r.lens = lens.empty() ? nullptr : lens.data();
    r.acts = &cfg_.acts[static_cast<size_t>(dir * cfg_.acts_per_dir)];
    r.has_clip = cfg_.has_clip, r.clip = static_cast<T>(cfg_.clip);
    r.input_forget = cfg_.input_forget, r.linear_before_reset = cfg_.linear_before_reset;
    r.h = h.data() + dir * d.batch * d.hidden;
    r.c = lstm ? c.data() + dir * d.batch * d.hidden : nullptr;
    r.y = y.empty() ? nullptr : y.data();
    rnn::RunDirection(r);
  }
  return Emit(ctx, d, y, h, c);
}

template <typename T>
Status RecurrentKernel::Emit(KernelContext& ctx, const Dims& d, const std::vector<T>& y,
                             const std::vector<T>& h, const std::vector<T>& c) const {
  const DType dt = ctx.input(0).dtype();
  const int64_t nd = cfg_.num_dirs, H = d.hidden;
  const bool l1 = cfg_.layout == 1;
  if (ctx.output_used(0)) {
    Shape s = l1 ? Shape{d.batch, d.seq, nd, H} : Shape{d.seq, nd, d.batch, H};
    PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, dt, s));
    if (!l1) {
      Store(y, out);
    } else {
      std::vector<T> t(y.size());
      SwapFirstTwo(y.data(), d.seq * nd, d.batch, H, t.data());
      Store(t, out);
    }
  }
  const std::vector<T>* states[] = {&h, &c};
  for (int i = 1; i <= 2; ++i) {
    if (!ctx.output_used(i) || (i == 2 && cfg_.cell != Cell::kLstm)) continue;
    Shape s = l1 ? Shape{d.batch, nd, H} : Shape{nd, d.batch, H};
    PX_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(i, dt, s));
    const std::vector<T>& st = *states[i - 1];
    if (!l1) {
      Store(st, out);
    } else {
      std::vector<T> t(st.size());
      SwapFirstTwo(st.data(), nd, d.batch, H, t.data());
      Store(t, out);
    }
  }
  return Status::Ok();
}

KernelFactory RecurrentFactory(Cell cell) {
  return [cell](const KernelInit& init) -> Result<std::unique_ptr<Kernel>> {
    PX_ASSIGN_OR_RETURN(Config cfg, ParseConfig(cell, init));
    auto k = std::make_unique<RecurrentKernel>(std::move(cfg));
    PX_RETURN_IF_ERROR(k->Prepare(init));
    return std::unique_ptr<Kernel>(std::move(k));
  };
}

}  // namespace

void RegisterSequenceModelOps(OpRegistry& r) {
  r.Register("", "RNN", RecurrentFactory(Cell::kRnn));
  r.Register("", "GRU", RecurrentFactory(Cell::kGru));
  r.Register("", "LSTM", RecurrentFactory(Cell::kLstm));
}

}  // namespace parallax
