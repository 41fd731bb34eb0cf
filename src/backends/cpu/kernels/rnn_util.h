// Helpers shared by the recurrent kernels (rnn.cc, rnn_cells.cc): the
// activation functions of the ONNX RNN/GRU/LSTM ops, a small row-major GEMM
// that accumulates into its output, and the per-direction recurrence.
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_RNN_UTIL_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_RNN_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "parallax/status.h"

namespace parallax {
namespace rnn {

enum class Cell { kRnn, kGru, kLstm };

enum class ActKind {
  kSigmoid,
  kTanh,
  kRelu,
  kHardSigmoid,
  kLeakyRelu,
  kThresholdedRelu,
  kScaledTanh,
  kAffine,
  kElu,
  kSoftsign,
  kSoftplus,
};

struct Activation {
  ActKind kind = ActKind::kSigmoid;
  float alpha = 0.f;
  float beta = 0.f;
};

// Parses the `activations` list (case-insensitive names), consuming
// activation_alpha / activation_beta in order for the functions that take
// them (defaults otherwise). Returns `per_dir * num_dirs` entries; a list with
// only `per_dir` names for a bidirectional node is repeated for both.
Result<std::vector<Activation>> ParseActivations(const std::vector<std::string>& names,
                                                 const std::vector<float>& alphas,
                                                 const std::vector<float>& betas,
                                                 const std::vector<Activation>& defaults,
                                                 int num_dirs);

// x[i] = act(x[i]) for i in [0, n).
template <typename T>
void Apply(const Activation& act, T* x, int64_t n);

// x[i] = clamp(x[i], -clip, clip).
template <typename T>
void Clip(T clip, T* x, int64_t n);

// C[m, n] += sum_k A[m, k] * B[k, n] for m < M, n < N, k < K, with row
// strides lda / ldb / ldc. The inner loop runs over contiguous n.
template <typename T>
void GemmAcc(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
             T* C, int64_t ldc);

// Everything one direction of a recurrent op needs, in compute type T and
// layout 0 ([seq, batch, ...]).
template <typename T>
struct Direction {
  Cell cell = Cell::kRnn;
  int64_t seq = 0, batch = 0, input = 0, hidden = 0;
  int num_gates = 1;
  int num_dirs = 1;
  int dir = 0;  // Index of this direction in Y / Y_h.
  bool backward = false;
  const T* x = nullptr;              // [seq, batch, input]
  const T* wt = nullptr;             // [input, gates*hidden]  (W transposed)
  const T* rt = nullptr;             // [hidden, gates*hidden] (R transposed)
  const T* bias = nullptr;           // [2*gates*hidden] (Wb then Rb) or null
  const T* peep = nullptr;           // [3*hidden] (LSTM i, o, f) or null
  const int32_t* lens = nullptr;     // [batch] or null
  const Activation* acts = nullptr;  // 1 (RNN), 2 (GRU) or 3 (LSTM)
  bool has_clip = false;
  T clip = 0;
  bool input_forget = false;
  bool linear_before_reset = false;
  T* h = nullptr;  // [batch, hidden], initial state in, final state out
  T* c = nullptr;  // [batch, hidden] (LSTM only)
  T* y = nullptr;  // [seq, num_dirs, batch, hidden] or null
};

// Runs the recurrence of one direction over the whole sequence.
template <typename T>
void RunDirection(const Direction<T>& d);

}  // namespace rnn
}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_RNN_UTIL_H_
