#include "backends/cpu/kernels/families.h"

namespace parallax {

void RegisterControlFlowOps(OpRegistry& r) { (void)r; }

}  // namespace parallax
