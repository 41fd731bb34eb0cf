// Registration helpers of the misc op family (misc.cc registers them all).
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_MISC_UTIL_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_MISC_UTIL_H_

#include "ops/registry.h"

namespace parallax {

void RegisterEinsumOp(OpRegistry& r);     // misc_einsum.cc
void RegisterRandomOps(OpRegistry& r);    // misc_random.cc
void RegisterQuantizeOps(OpRegistry& r);  // misc_quantize.cc

}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_MISC_UTIL_H_
