// Builds vec_math_impl.inc three times: for baseline x86-64 (SSE2), AVX2 and
// AVX-512F, each under `#pragma GCC target`, and picks one at run time.
// Everything the loops call (fast_math.h, <cmath>, <algorithm>) is included
// before the pragmas, so those inline functions keep the default target and
// no out-of-line copy of them can carry AVX instructions into code that runs
// on older CPUs; they are inlined into the per-ISA loops.
#include "backends/cpu/kernels/vec_math.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace parallax {
namespace vec {
namespace {

#define PX_VEC_NS base
#include "backends/cpu/kernels/vec_math_impl.inc"  // NOLINT(build/include)
#undef PX_VEC_NS

// GCC only: other compilers (clang spells per-function targets differently)
// get the baseline loops.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PX_VEC_X86 1
#pragma GCC push_options
#pragma GCC target("avx2")
#define PX_VEC_NS avx2
#include "backends/cpu/kernels/vec_math_impl.inc"  // NOLINT(build/include)
#undef PX_VEC_NS
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
#define PX_VEC_NS avx512
#include "backends/cpu/kernels/vec_math_impl.inc"  // NOLINT(build/include)
#undef PX_VEC_NS
#pragma GCC pop_options
#endif

#define PX_VEC_KERNELS(ISA, NS)                                                           \
  Kernels {                                                                               \
    ISA, NS::Unary, NS::Binary, NS::Max, NS::ExpShiftSum, NS::MeanInvStd, NS::NormAffine, \
        NS::RowDots                                                                       \
  }

const Kernels kBase = PX_VEC_KERNELS(Isa::kBaseline, base);
#ifdef PX_VEC_X86
const Kernels kAvx2 = PX_VEC_KERNELS(Isa::kAvx2, avx2);
const Kernels kAvx512 = PX_VEC_KERNELS(Isa::kAvx512, avx512);
#endif

bool Supported(Isa isa) {
#ifdef PX_VEC_X86
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kBaseline:
      return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f");
  }
  return false;
#else
  return isa == Isa::kBaseline;
#endif
}

// The highest supported level, capped by PARALLAX_VEC_ISA (baseline, avx2 or
// avx512) when set, for benchmarking the variants.
Isa Pick() {
  Isa best = Isa::kBaseline;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512})
    if (Supported(isa)) best = isa;
  if (const char* cap = std::getenv("PARALLAX_VEC_ISA")) {
    for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512})
      if (std::strcmp(cap, IsaName(isa)) == 0 && isa < best) best = isa;
  }
  return best;
}

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kBaseline:
      return "baseline";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

const Kernels* ForIsa(Isa isa) {
  if (!Supported(isa)) return nullptr;
#ifdef PX_VEC_X86
  if (isa == Isa::kAvx2) return &kAvx2;
  if (isa == Isa::kAvx512) return &kAvx512;
#endif
  return &kBase;
}

const Kernels& Best() {
  static const Kernels* const kBest = ForIsa(Pick());
  return *kBest;
}

}  // namespace vec
}  // namespace parallax
