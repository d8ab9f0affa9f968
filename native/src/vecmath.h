// Branch-free float32 exp, erf and tanh that GCC vectorises (the libm calls it cannot: a scalar
// std::erf / std::tanh cost ~20 ns per element, which made GELU and its gradient ~10% of a LoRA
// training step of the reference encoder). Accuracy is what float32 training needs:
//  - vexp: Cody-Waite range reduction x = n·ln2 + r, |r| ≤ ln2/2 (n rounded to nearest), and Cephes's degree-6 expf
//    polynomial (about 1 ulp); inputs above 88 are clamped (2ⁿ stays a normal float), below −87.3
//    give 0, and NaN stays NaN.
//  - verf: Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7 (the same formula tfjs's Erf kernel uses).
//  - vtanh: 1 − 2/(e^{2|x|} + 1) with the sign restored, |error| ≲ 2e-7 (absolute).
#pragma once
#include <cmath>
#include <cstdint>
#include <algorithm>

namespace lowrank {

// Pointers to rows r0 … r0 + n − 1 of a [rows, cols] array.
template <typename T>
inline void rowPointers(T* base, int64_t r0, int64_t n, int64_t cols, T** out) {
  for (int64_t j = 0; j < n; j++) out[j] = base + (r0 + j) * cols;
}

inline float vexp(float x) {
  constexpr float kMin = -87.3f;  // below it expf is subnormal or 0: return 0 (masks of -inf or -1e9)
  const float in = x;
  x = std::min(std::max(x, kMin), 88.f);
  // n = round(x / ln2) by the 1.5·2²³ trick (std::floor/nearbyint do not vectorise without
  // -fno-trapping-math); exact for |x / ln2| < 2²², far beyond the clamp.
  constexpr float kRound = 12582912.f;
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  float r = x - n * 0.693359375f;  // ln2 split in two parts so n·ln2 is exact enough
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2ⁿ
  const float r2n = p * __builtin_bit_cast(float, bits);
  return in < kMin ? 0.f : r2n;
}

inline float verf(float x) {
  const float a = std::fabs(x);
  const float t = 1.f / (1.f + 0.3275911f * a);
  const float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
                      0.254829592f) * t;
  return std::copysign(1.f - poly * vexp(-a * a), x);
}

inline float vtanh(float x) {
  const float e = vexp(2.f * std::fabs(x));
  return std::copysign(1.f - 2.f / (e + 1.f), x);
}

}  // namespace lowrank
