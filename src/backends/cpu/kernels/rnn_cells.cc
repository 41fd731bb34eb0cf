// The recurrences of ONNX RNN, GRU and LSTM (formulas as in the ONNX spec),
// their activation functions and the GEMM they run on.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include "backends/cpu/kernels/rnn_util.h"

namespace parallax {
namespace rnn {

namespace {

struct ActSpec {
  const char* name;
  ActKind kind;
  int num_alpha;
  int num_beta;
  float alpha;
  float beta;
};

// Names with the number of activation_alpha / activation_beta values each
// consumes, and the defaults used when the lists run out.
constexpr ActSpec kActSpecs[] = {
    {"sigmoid", ActKind::kSigmoid, 0, 0, 0.f, 0.f},
    {"tanh", ActKind::kTanh, 0, 0, 0.f, 0.f},
    {"relu", ActKind::kRelu, 0, 0, 0.f, 0.f},
    {"hardsigmoid", ActKind::kHardSigmoid, 1, 1, 0.2f, 0.5f},
    {"leakyrelu", ActKind::kLeakyRelu, 1, 0, 0.01f, 0.f},
    {"thresholdedrelu", ActKind::kThresholdedRelu, 1, 0, 1.f, 0.f},
    {"scaledtanh", ActKind::kScaledTanh, 1, 1, 1.f, 1.f},
    {"affine", ActKind::kAffine, 1, 1, 1.f, 0.f},
    {"elu", ActKind::kElu, 1, 0, 1.f, 0.f},
    {"softsign", ActKind::kSoftsign, 0, 0, 0.f, 0.f},
    {"softplus", ActKind::kSoftplus, 0, 0, 0.f, 0.f},
};

std::string Lower(const std::string& s) {
  std::string out = s;
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

}  // namespace

Result<std::vector<Activation>> ParseActivations(const std::vector<std::string>& names,
                                                 const std::vector<float>& alphas,
                                                 const std::vector<float>& betas,
                                                 const std::vector<Activation>& defaults,
                                                 int num_dirs) {
  size_t per_dir = defaults.size();
  std::vector<Activation> out;
  if (names.empty()) {
    for (int d = 0; d < num_dirs; ++d) out.insert(out.end(), defaults.begin(), defaults.end());
    return out;
  }
  size_t ai = 0, bi = 0;
  for (const std::string& name : names) {
    std::string lower = Lower(name);
    const ActSpec* spec = nullptr;
    for (const ActSpec& s : kActSpecs)
      if (lower == s.name) spec = &s;
    if (spec == nullptr) return Unsupported("unknown activation function '" + name + "'");
    Activation a{spec->kind, spec->alpha, spec->beta};
    if (spec->num_alpha > 0 && ai < alphas.size()) a.alpha = alphas[ai++];
    if (spec->num_beta > 0 && bi < betas.size()) a.beta = betas[bi++];
    out.push_back(a);
  }
  if (out.size() == per_dir && num_dirs == 2) {
    out.insert(out.end(), out.begin(), out.end());
  }
  if (out.size() != per_dir * static_cast<size_t>(num_dirs))
    return InvalidArgument("expected " + std::to_string(per_dir * num_dirs) + " activations, got " +
                           std::to_string(names.size()));
  return out;
}

template <typename T>
void Apply(const Activation& act, T* x, int64_t n) {
  const T alpha = static_cast<T>(act.alpha), beta = static_cast<T>(act.beta);
  switch (act.kind) {
    case ActKind::kSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = T(1) / (T(1) + std::exp(-x[i]));
      break;
    case ActKind::kTanh:
      for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
      break;
    case ActKind::kRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], T(0));
      break;
    case ActKind::kHardSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = std::clamp(alpha * x[i] + beta, T(0), T(1));
      break;
    case ActKind::kLeakyRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : alpha * x[i];
      break;
    case ActKind::kThresholdedRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > alpha ? x[i] : T(0);
      break;
    case ActKind::kScaledTanh:
      for (int64_t i = 0; i < n; ++i) x[i] = alpha * std::tanh(beta * x[i]);
      break;
    case ActKind::kAffine:
      for (int64_t i = 0; i < n; ++i) x[i] = alpha * x[i] + beta;
      break;
    case ActKind::kElu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : alpha * (std::exp(x[i]) - T(1));
      break;
    case ActKind::kSoftsign:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (T(1) + std::abs(x[i]));
      break;
    case ActKind::kSoftplus:
      for (int64_t i = 0; i < n; ++i) x[i] = std::log1p(std::exp(x[i]));
      break;
  }
}

template <typename T>
void Clip(T clip, T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::clamp(x[i], -clip, clip);
}

template <typename T>
void GemmAcc(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
             T* C, int64_t ldc) {
  for (int64_t m = 0; m < M; ++m) {
    const T* a = A + m * lda;
    T* __restrict c = C + m * ldc;
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {
      const T a0 = a[k], a1 = a[k + 1], a2 = a[k + 2], a3 = a[k + 3];
      const T* __restrict b0 = B + k * ldb;
      const T* __restrict b1 = b0 + ldb;
      const T* __restrict b2 = b1 + ldb;
      const T* __restrict b3 = b2 + ldb;
      for (int64_t n = 0; n < N; ++n) c[n] += a0 * b0[n] + a1 * b1[n] + a2 * b2[n] + a3 * b3[n];
    }
    for (; k < K; ++k) {
      const T ak = a[k];
      const T* __restrict b = B + k * ldb;
      for (int64_t n = 0; n < N; ++n) c[n] += ak * b[n];
    }
  }
}

namespace {

// Per-run scratch buffers of one direction.
template <typename T>
struct Work {
  std::vector<T> xw;         // [seq, batch, G*H]: x @ W^T + input-side bias.
  std::vector<T> gates;      // [batch, G*H]
  std::vector<T> tmp;        // [batch, H]
  std::vector<T> rec;        // [batch, H]
  std::vector<char> active;  // [batch]
};

template <typename T>
void ClipIf(const Direction<T>& d, T* x, int64_t n) {
  if (d.has_clip) Clip(d.clip, x, n);
}

// Precomputes the input projection of every step, with the biases that can
// be folded in (all but GRU's recurrent h-gate bias Rbh).
template <typename T>
void InputProjection(const Direction<T>& d, Work<T>& w) {
  const int64_t gh = d.num_gates * d.hidden, rows = d.seq * d.batch;
  w.xw.assign(static_cast<size_t>(rows * gh), T(0));
  if (d.bias != nullptr) {
    std::vector<T> b(static_cast<size_t>(gh));
    for (int64_t j = 0; j < gh; ++j) b[j] = d.bias[j] + d.bias[gh + j];
    if (d.cell == Cell::kGru)  // Rbh is applied with the recurrent term.
      for (int64_t j = 2 * d.hidden; j < gh; ++j) b[j] = d.bias[j];
    for (int64_t r = 0; r < rows; ++r) std::memcpy(&w.xw[r * gh], b.data(), gh * sizeof(T));
  }
  GemmAcc(rows, gh, d.input, d.x, d.input, d.wt, gh, w.xw.data(), gh);
}

template <typename T>
void RnnStep(const Direction<T>& d, Work<T>& w) {
  const int64_t H = d.hidden;
  GemmAcc(d.batch, H, H, d.h, H, d.rt, H, w.gates.data(), H);
  for (int64_t b = 0; b < d.batch; ++b) {
    if (!w.active[b]) continue;
    T* g = &w.gates[b * H];
    ClipIf(d, g, H);
    Apply(d.acts[0], g, H);
    std::memcpy(d.h + b * H, g, H * sizeof(T));
  }
}

template <typename T>
void GruStep(const Direction<T>& d, Work<T>& w) {
  const int64_t H = d.hidden, gh = 3 * H;
  T* gates = w.gates.data();
  GemmAcc(d.batch, 2 * H, H, d.h, H, d.rt, gh, gates, gh);  // z, r
  for (int64_t b = 0; b < d.batch; ++b) {
    ClipIf(d, gates + b * gh, 2 * H);
    Apply(d.acts[0], gates + b * gh, 2 * H);
  }
  const T* rbh = d.bias != nullptr ? d.bias + gh + 2 * H : nullptr;
  if (d.linear_before_reset) {
    for (int64_t b = 0; b < d.batch; ++b)
      for (int64_t j = 0; j < H; ++j) w.rec[b * H + j] = rbh ? rbh[j] : T(0);
    GemmAcc(d.batch, H, H, d.h, H, d.rt + 2 * H, gh, w.rec.data(), H);
    for (int64_t b = 0; b < d.batch; ++b) {
      const T* r = gates + b * gh + H;
      T* hc = gates + b * gh + 2 * H;
      for (int64_t j = 0; j < H; ++j) hc[j] += r[j] * w.rec[b * H + j];
    }
  } else {
    for (int64_t b = 0; b < d.batch; ++b) {
      const T* r = gates + b * gh + H;
      for (int64_t j = 0; j < H; ++j) w.tmp[b * H + j] = r[j] * d.h[b * H + j];
    }
    std::fill(w.rec.begin(), w.rec.end(), T(0));
    GemmAcc(d.batch, H, H, w.tmp.data(), H, d.rt + 2 * H, gh, w.rec.data(), H);
    for (int64_t b = 0; b < d.batch; ++b) {
      T* hc = gates + b * gh + 2 * H;
      for (int64_t j = 0; j < H; ++j) hc[j] += w.rec[b * H + j] + (rbh ? rbh[j] : T(0));
    }
  }
  for (int64_t b = 0; b < d.batch; ++b) {
    if (!w.active[b]) continue;
    const T* z = gates + b * gh;
    T* hc = gates + b * gh + 2 * H;
    ClipIf(d, hc, H);
    Apply(d.acts[1], hc, H);
    T* h = d.h + b * H;
    for (int64_t j = 0; j < H; ++j) h[j] = (T(1) - z[j]) * hc[j] + z[j] * h[j];
  }
}

// One LSTM cell update for one batch row; g holds the i, o, f, c
// pre-activations (input and recurrent terms and biases already summed).
template <typename T>
void LstmCell(const Direction<T>& d, T* g, T* h, T* c) {
  const int64_t H = d.hidden;
  T* gi = g;
  T* go = g + H;
  T* gf = g + 2 * H;
  T* gc = g + 3 * H;
  const T* p = d.peep;
  if (p != nullptr)
    for (int64_t j = 0; j < H; ++j) gi[j] += p[j] * c[j];
  ClipIf(d, gi, H);
  Apply(d.acts[0], gi, H);
  if (d.input_forget) {
    for (int64_t j = 0; j < H; ++j) gf[j] = T(1) - gi[j];
  } else {
    if (p != nullptr)
      for (int64_t j = 0; j < H; ++j) gf[j] += p[2 * H + j] * c[j];
    ClipIf(d, gf, H);
    Apply(d.acts[0], gf, H);
  }
  ClipIf(d, gc, H);
  Apply(d.acts[1], gc, H);
  for (int64_t j = 0; j < H; ++j) c[j] = gf[j] * c[j] + gi[j] * gc[j];
  if (p != nullptr)
    for (int64_t j = 0; j < H; ++j) go[j] += p[H + j] * c[j];
  ClipIf(d, go, H);
  Apply(d.acts[0], go, H);
  std::memcpy(h, c, H * sizeof(T));
  Apply(d.acts[2], h, H);
  for (int64_t j = 0; j < H; ++j) h[j] *= go[j];
}

template <typename T>
void LstmStep(const Direction<T>& d, Work<T>& w) {
  const int64_t H = d.hidden, gh = 4 * H;
  GemmAcc(d.batch, gh, H, d.h, H, d.rt, gh, w.gates.data(), gh);
  for (int64_t b = 0; b < d.batch; ++b)
    if (w.active[b]) LstmCell(d, &w.gates[b * gh], d.h + b * H, d.c + b * H);
}

}  // namespace

template <typename T>
void RunDirection(const Direction<T>& d) {
  const int64_t H = d.hidden, gh = d.num_gates * H;
  Work<T> w;
  InputProjection(d, w);
  w.gates.resize(static_cast<size_t>(d.batch * gh));
  w.tmp.resize(static_cast<size_t>(d.batch * H));
  w.rec.resize(static_cast<size_t>(d.batch * H));
  w.active.resize(static_cast<size_t>(d.batch));
  for (int64_t s = 0; s < d.seq; ++s) {
    const int64_t t = d.backward ? d.seq - 1 - s : s;
    for (int64_t b = 0; b < d.batch; ++b) w.active[b] = d.lens == nullptr || t < d.lens[b];
    std::memcpy(w.gates.data(), &w.xw[t * d.batch * gh], d.batch * gh * sizeof(T));
    switch (d.cell) {
      case Cell::kRnn:
        RnnStep(d, w);
        break;
      case Cell::kGru:
        GruStep(d, w);
        break;
      case Cell::kLstm:
        LstmStep(d, w);
        break;
    }
    if (d.y == nullptr) continue;
    for (int64_t b = 0; b < d.batch; ++b) {
      T* y = d.y + ((t * d.num_dirs + d.dir) * d.batch + b) * H;
      if (w.active[b])
        std::memcpy(y, d.h + b * H, H * sizeof(T));
      else
        std::fill(y, y + H, T(0));
    }
  }
}

template void Apply<float>(const Activation&, float*, int64_t);
template void Apply<double>(const Activation&, double*, int64_t);
template void GemmAcc<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*,
                             int64_t, float*, int64_t);
template void GemmAcc<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*,
                              int64_t, double*, int64_t);
template void RunDirection<float>(const Direction<float>&);
template void RunDirection<double>(const Direction<double>&);

}  // namespace rnn
}  // namespace parallax
