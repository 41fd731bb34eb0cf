#include "backends/cpu/kernels/families.h"

namespace parallax {

void RegisterNnOps(OpRegistry& r) { (void)r; }

}  // namespace parallax
