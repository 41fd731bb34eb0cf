#include "backends/cpu/kernels/nn_util.h"

namespace parallax::nn {

void RegisterQuantOps(OpRegistry& r) { (void)r; }

}  // namespace parallax::nn
