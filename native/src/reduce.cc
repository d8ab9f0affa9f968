// Reductions over a contiguous block of axes, viewed as [outer, R, inner] (the TypeScript side
// transposes first when the reduced axes are not contiguous), plus argmax / argmin.
#include "common.h"
#include <cmath>
#include <limits>
#include <algorithm>

namespace lowrank {

enum ReduceOp { kSum = 0, kMean, kMax, kMin, kProd, kArgMax, kArgMin };

// Sum of a contiguous run with 8 independent partial sums, so it vectorises without -ffast-math.
static inline float sumRun(const float* x, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += x[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) s += x[i];
  return s;
}

static inline float combine(int op, float acc, float v) {
  switch (op) {
    case kMax: return (v > acc || v != v) ? v : acc;
    case kMin: return (v < acc || v != v) ? v : acc;
    case kProd: return acc * v;
    default: return acc + v;
  }
}

static float initial(int op) {
  switch (op) {
    case kMax: return -std::numeric_limits<float>::infinity();
    case kMin: return std::numeric_limits<float>::infinity();
    case kProd: return 1.f;
    default: return 0.f;
  }
}

// Reduces one [R, inner] block into `o` (length inner).
static void reduceBlock(int op, const float* x, float* o, int64_t R, int64_t inner) {
  if (inner == 1) {
    if (op == kSum || op == kMean) { o[0] = sumRun(x, R); return; }
    float acc = initial(op);
    for (int64_t r = 0; r < R; r++) acc = combine(op, acc, x[r]);
    o[0] = acc;
    return;
  }
  const float init = initial(op);
  std::fill(o, o + inner, init);
  for (int64_t r = 0; r < R; r++) {
    const float* xr = x + r * inner;
    if (op == kSum || op == kMean) for (int64_t i = 0; i < inner; i++) o[i] += xr[i];
    else for (int64_t i = 0; i < inner; i++) o[i] = combine(op, o[i], xr[i]);
  }
}

// reduce(op, x, out, outer, R, inner)
static Napi::Value Reduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 6, "reduce")) return env.Undefined();
  const int op = static_cast<int>(num(info, 0));
  const float* x = f32(info[1]);
  const int64_t outer = num(info, 3), R = num(info, 4), inner = num(info, 5);
  if (op == kArgMax || op == kArgMin) {
    int32_t* o = i32(info[2]);
#pragma omp parallel for if (outer * R * inner > kParallelGrain) schedule(static)
    for (int64_t b = 0; b < outer * inner; b++) {
      const float* base = x + (b / inner) * R * inner + (b % inner);
      int32_t best = 0;
      float bv = base[0];
      for (int64_t r = 1; r < R; r++) {
        const float v = base[r * inner];
        if (op == kArgMax ? v > bv : v < bv) { bv = v; best = static_cast<int32_t>(r); }
      }
      o[b] = best;
    }
    return env.Undefined();
  }
  float* o = f32(info[2]);
#pragma omp parallel for if (outer * R * inner > kParallelGrain) schedule(static)
  for (int64_t b = 0; b < outer; b++) {
    reduceBlock(op, x + b * R * inner, o + b * inner, R, inner);
    if (op == kMean)
      for (int64_t i = 0; i < inner; i++) o[b * inner + i] /= static_cast<float>(R);
  }
  return env.Undefined();
}

void registerReduce(Napi::Env env, Napi::Object exports) {
  exports.Set("reduce", Napi::Function::New(env, Reduce));
}

}  // namespace lowrank
