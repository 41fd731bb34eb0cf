#include "backends/cpu/kernels/nn_util.h"

namespace parallax::nn {

void RegisterPoolOps(OpRegistry& r) { (void)r; }

}  // namespace parallax::nn
