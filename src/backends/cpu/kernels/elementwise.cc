#include "backends/cpu/kernels/families.h"

namespace parallax {

void RegisterElementwiseOps(OpRegistry& r) { (void)r; }

}  // namespace parallax
