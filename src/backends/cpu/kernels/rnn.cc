#include "backends/cpu/kernels/families.h"

namespace parallax {

void RegisterSequenceModelOps(OpRegistry& r) { (void)r; }

}  // namespace parallax
