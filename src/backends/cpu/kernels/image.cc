#include "backends/cpu/kernels/families.h"

namespace parallax {

void RegisterImageOps(OpRegistry& r) { (void)r; }

}  // namespace parallax
