// Dropout + residual add + layer norm in one call each way (issue 17), for post-LN blocks such as
// BERT's `LayerNorm(dropout(h) + residual)`:
//  - forward: the dropout mask from tfjs's own Alea stream (the same numbers as random.cc's
//    dropout, kept as one byte per element), s = h·m + residual with m = 0 or 1/keep, then layer
//    norm of s per row. s, μ and rstd are kept for the backward.
//  - backward: ds from the layer-norm row gradient, d(residual) = ds, dh = ds·m, dγ and dβ as
//    column sums.
// Each step is the float32 operation the separate kernels (dropout, Add, LowrankNorm and their
// gradients) perform, in the same order — the product and the add are separate roundings (no
// FMA, see addDropped) — so results are bit-identical to the unfused native path.
#include "common.h"
#include "norm_rows.h"
#include "alea.h"
#include <cmath>

namespace lowrank {

// Alea's mask bits: keep[i] = floor(u_i + keep) ≥ 1, u_i the float32 uniforms tfjs draws (the
// substreams of alea.h, as random.cc's dropout), one byte per element.
static void aleaMask(uint8_t* mask, int64_t n, float keep, const double* states, int64_t streams, int64_t chunk) {
  aleaUniforms(n, states, streams, chunk, [&](int64_t i, float u) { mask[i] = std::floor(u + keep) >= 1.f ? 1 : 0; });
}

// s = h·m + r as two roundings (dropout's product, then Add's sum): contraction into an FMA would
// round once and change the bits, so it is switched off for this function only.
__attribute__((noinline, optimize("fp-contract=off"))) static void addDropped(const float* h, const uint8_t* mask,
                                                                              float kept, const float* r,
                                                                              float* s, int64_t cols) {
  for (int64_t c = 0; c < cols; c++) {
    const float m = mask ? (mask[c] ? kept : 0.f) : 1.f;
    const float d = mask ? h[c] * m : h[c];
    s[c] = d + r[c];
  }
}

// addNormForward(h, residual, gamma, beta|null, y, sum, mean, rstd, mask|null, rows, cols, eps,
//                keep, states|null, chunk): mask null = no dropout (keep ignored); states and chunk
//                are the Alea substreams (alea.h).
static Napi::Value AddNormForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 15, "addNormForward")) return env.Undefined();
  const float* h = f32(info[0]);
  const float* res = f32(info[1]);
  const float* g = f32(info[2]);
  const float* b = info[3].IsTypedArray() ? f32(info[3]) : nullptr;
  float* y = f32(info[4]);
  float* sum = f32(info[5]);
  float* mean = f32(info[6]);
  float* rstd = f32(info[7]);
  uint8_t* mask = info[8].IsTypedArray() ? u8(info[8]) : nullptr;
  const int64_t rows = num(info, 9), cols = num(info, 10);
  const float eps = static_cast<float>(dbl(info, 11));
  const float keep = static_cast<float>(dbl(info, 12));
  if (mask) {
    Raw st = raw(info[13]);
    aleaMask(mask, rows * cols, keep, static_cast<const double*>(st.data), static_cast<int64_t>(st.length) / 4,
             num(info, 14));
  }
  const float kept = 1.f / keep;  // = floor(u + keep) / keep for a kept element (tf.dropout's multiplier)
  const int64_t groups = (rows + kNormGroup - 1) / kNormGroup;
#pragma omp parallel for if (rows * cols > kParallelGrain) schedule(static)
  for (int64_t gi = 0; gi < groups; gi++) {
    const int64_t r0 = gi * kNormGroup, n = std::min(kNormGroup, rows - r0), o = r0 * cols;
    addDropped(h + o, mask ? mask + o : nullptr, kept, res + o, sum + o, n * cols);
    const float* ss[kNormGroup];
    float* ys[kNormGroup];
    rowPointers<const float>(sum, r0, n, cols, ss);
    rowPointers(y, r0, n, cols, ys);
    normRowsForward(n, ss, g, b, ys, cols, eps, false, mean + r0, rstd + r0);
  }
  return env.Undefined();
}

// addNormBackward(dy, sum, gamma, mean, rstd, mask|null, dh, dres, dgamma, dbeta|null, rows, cols, keep)
static Napi::Value AddNormBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 13, "addNormBackward")) return env.Undefined();
  const float* dy = f32(info[0]);
  const float* s = f32(info[1]);
  const float* g = f32(info[2]);
  const float* mean = f32(info[3]);
  const float* rstd = f32(info[4]);
  const uint8_t* mask = info[5].IsTypedArray() ? u8(info[5]) : nullptr;
  float* dh = f32(info[6]);
  float* dres = f32(info[7]);
  float* dg = f32(info[8]);
  float* db = info[9].IsTypedArray() ? f32(info[9]) : nullptr;
  const int64_t rows = num(info, 10), cols = num(info, 11);
  const float kept = 1.f / static_cast<float>(dbl(info, 12));
  const int64_t groups = (rows + kNormGroup - 1) / kNormGroup;
#pragma omp parallel for if (rows * cols > kParallelGrain) schedule(static)
  for (int64_t gi = 0; gi < groups; gi++) {
    const int64_t r0 = gi * kNormGroup, n = std::min(kNormGroup, rows - r0), o = r0 * cols;
    const float *ss[kNormGroup], *dys[kNormGroup];
    float* ds[kNormGroup];
    rowPointers(s, r0, n, cols, ss);
    rowPointers(dy, r0, n, cols, dys);
    rowPointers(dres, r0, n, cols, ds);
    normRowsBackward(n, ss, dys, g, mean + r0, rstd + r0, ds, cols, false);
    if (mask)
      for (int64_t c = 0; c < n * cols; c++) dh[o + c] = dres[o + c] * (mask[o + c] ? kept : 0.f);
    else
      std::copy(dres + o, dres + o + n * cols, dh + o);
  }
  columnSums(rows, cols, dg, kParallelGrain,
             [&](int64_t r, int64_t c) { return dy[r * cols + c] * (s[r * cols + c] - mean[r]) * rstd[r]; });
  if (db) columnSums(rows, cols, db, kParallelGrain, [&](int64_t r, int64_t c) { return dy[r * cols + c]; });
  return env.Undefined();
}

void registerAddNorm(Napi::Env env, Napi::Object exports) {
  exports.Set("addNormForward", Napi::Function::New(env, AddNormForward));
  exports.Set("addNormBackward", Napi::Function::New(env, AddNormBackward));
}

}  // namespace lowrank
