// GELU (exact erf and tanh forms, forward and backward) as one branch-free pass (vecmath.h).
// This file is compiled on its own with -mprefer-vector-width=512 (binding.gyp, target
// lowrank_wide): the pass is compute-bound (erf, exp, a division per element), and on CPUs with
// AVX-512 twice the lanes per instruction ran it ~1.5× faster (forward 1.5 → 1.0 ms, backward
// 2.4 → 1.65 ms on [1024, 1536], one thread). Every lane computes the same float32 operations as
// before, so the bits do not depend on the vector width; elsewhere GCC's 256-bit default stays
// (wider vectors would reorder the lane-split sums of omp simd reductions, e.g. decode's).
#include "common.h"
#include "vecmath.h"

namespace lowrank {

static constexpr float kInvSqrt2 = 0.70710678118654752f;
static constexpr float kInvSqrt2Pi = 0.39894228040143268f;
static constexpr float kSqrt2OverPi = 0.79788456080286536f;
static constexpr float kGeluC = 0.044715f;

// One GELU pass, specialised so the loop has no branches and vectorises (see vecmath.h).
template <bool Tanh, bool Grad>
static void geluLoop(const float* __restrict x, const float* __restrict dy, float* __restrict o, int64_t n) {
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    if (Tanh) {
      const float t = vtanh(kSqrt2OverPi * (v + kGeluC * v * v * v));
      o[i] = Grad ? dy[i] * (0.5f * (1.f + t) + 0.5f * v * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluC * v * v))
                  : 0.5f * v * (1.f + t);
    } else {
      const float cdf = 0.5f * (1.f + verf(v * kInvSqrt2));
      o[i] = Grad ? dy[i] * (cdf + v * kInvSqrt2Pi * vexp(-0.5f * v * v)) : v * cdf;
    }
  }
}

// gelu(x, out, dy|null, tanhMode): forward when dy is null, else out = dy · gelu'(x).
static Napi::Value Gelu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 4, "gelu")) return env.Undefined();
  Raw xr = raw(info[0]);
  const float* x = static_cast<float*>(xr.data);
  float* o = f32(info[1]);
  const float* dy = info[2].IsTypedArray() ? f32(info[2]) : nullptr;
  const bool tanhMode = info[3].As<Napi::Boolean>().Value();
  const int64_t n = static_cast<int64_t>(xr.length);
  if (tanhMode) dy ? geluLoop<true, true>(x, dy, o, n) : geluLoop<true, false>(x, dy, o, n);
  else dy ? geluLoop<false, true>(x, dy, o, n) : geluLoop<false, false>(x, dy, o, n);
  return env.Undefined();
}

void registerGelu(Napi::Env env, Napi::Object exports) { exports.Set("gelu", Napi::Function::New(env, Gelu)); }

}  // namespace lowrank
