#include "backends/cpu/kernels/families.h"

namespace parallax {

void RegisterIndexingOps(OpRegistry& r) { (void)r; }

}  // namespace parallax
