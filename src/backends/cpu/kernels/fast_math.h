// Vectorisable float32 math shared by the CPU kernels: branch-free
// polynomial expf/tanhf/erff (a few ulp; NaN and +-inf behave like libm).
// Loops calling them vectorise when the translation unit is built with
// -fno-trapping-math (see CMakeLists.txt).
#ifndef PARALLAX_BACKENDS_CPU_KERNELS_FAST_MATH_H_
#define PARALLAX_BACKENDS_CPU_KERNELS_FAST_MATH_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace parallax {

// exp(c) = p * 2^n for c already clamped to ExpF's range: sets *n to
// round(c / ln2) (an integer-valued float) and returns p, exp of the
// remainder (Cephes polynomial).
inline float ExpReduced(float c, float* n_out) {
  // n = round(c / ln2) with the 1.5 * 2^23 trick (no SSE4.1 round needed).
  const float n = (c * 1.44269504f + 12582912.0f) - 12582912.0f;
  const float r = (c - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  *n_out = n;
  return p;
}

// exp(x) for float in plain, branch-free arithmetic so loops calling it
// vectorise (std::exp does not without -ffast-math). Cephes polynomial,
// about 2 ulp; returns 0 below -87.33 (denormal results flush to zero),
// inf above 88.72, NaN for NaN.
inline float ExpF(float x) {
  const float hi = 88.72283f, lo = -87.33654f;
  // Branch-free selects: with -fno-trapping-math (set for the reduction
  // files) loops that call this vectorise.
  float c = std::isless(x, lo) ? lo : x;
  c = std::isgreater(c, hi) ? hi : c;
  float n;
  const float p = ExpReduced(c, &n);
  // 2^n as two normal factors, so n = 128 (x near hi) and n = -126 work.
  const int32_t ni = static_cast<int32_t>(n);
  const int32_t n1 = ni / 2, n2 = ni - n1;
  const int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, sizeof(s1));
  std::memcpy(&s2, &b2, sizeof(s2));
  float y = p * s1 * s2;
  y = std::isless(x, lo) ? 0.0f : y;
  y = std::isgreater(x, hi) ? std::numeric_limits<float>::infinity() : y;
  return std::isunordered(x, x) ? x : y;
}

// ExpF(x) for x <= 0 (and NaN), bit for bit, in fewer operations: no upper
// clamp, and 2^n as one factor (n >= -126 once x is clamped at -87.34; ExpF
// splits it in two only so that n = 128 works, and both products round
// once). For Softmax's exp(x - max). REQUIRES: x <= 0 or NaN.
inline float ExpNonPositive(float x) {
  const float lo = -87.33654f;
  const float c = std::isless(x, lo) ? lo : x;
  float n;
  const float p = ExpReduced(c, &n);
  const int32_t b = (static_cast<int32_t>(n) + 127) << 23;
  float s;
  std::memcpy(&s, &b, sizeof(s));
  const float y = std::isless(x, lo) ? 0.0f : p * s;
  return std::isunordered(x, x) ? x : y;
}

inline float TanhF(float a) {
  // Rational minimax approximation on [-7.9, 7.9] (tanh is +-1 in float
  // beyond).
  const float x = std::min(std::max(a, -7.90531110763549805f), 7.90531110763549805f);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p * x / q;
}

inline float ErfF(float a) {
  // Rational approximation on [-4, 4] (erf is +-1 in float beyond).
  const float x = std::min(std::max(a, -4.0f), 4.0f);
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return p * x / q;
}

}  // namespace parallax

#endif  // PARALLAX_BACKENDS_CPU_KERNELS_FAST_MATH_H_
