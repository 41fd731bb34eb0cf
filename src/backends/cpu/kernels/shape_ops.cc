#include "backends/cpu/kernels/families.h"

namespace parallax {

void RegisterShapeOps(OpRegistry& r) { (void)r; }

}  // namespace parallax
