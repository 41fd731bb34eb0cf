// Registration entry points of the CPU op families, one per source file.
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_FAMILIES_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_FAMILIES_H_

#include "ops/registry.h"

namespace parallax {

void RegisterElementwiseOps(OpRegistry& r);    // elementwise.cc
void RegisterReductionOps(OpRegistry& r);      // reduction.cc
void RegisterShapeOps(OpRegistry& r);          // shape_ops.cc
void RegisterIndexingOps(OpRegistry& r);       // indexing.cc
void RegisterNnOps(OpRegistry& r);             // nn_dnnl.cc (oneDNN)
void RegisterImageOps(OpRegistry& r);          // image.cc (Resize, NMS, RoiAlign, ...)
void RegisterSequenceModelOps(OpRegistry& r);  // rnn.cc (LSTM, GRU, RNN)
void RegisterMiscOps(OpRegistry& r);           // misc.cc (Einsum, quantization, ...)
void RegisterSignalOps(OpRegistry& r);         // signal.cc (DFT, STFT, windows)
void RegisterTextOps(OpRegistry& r);           // text.cc (TfIdfVectorizer)
void RegisterTrainingOps(OpRegistry& r);       // training.cc (preview.training optimizers)
void RegisterControlFlowOps(OpRegistry& r);    // runtime/control_flow.cc
void RegisterSequenceOps(OpRegistry& r);       // runtime/sequence_ops.cc (also Identity)

}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_FAMILIES_H_
