#include "backends/cpu/kernels/families.h"

namespace parallax {

void RegisterMiscOps(OpRegistry& r) { (void)r; }

}  // namespace parallax
