// AdaLoRA's per-step extras over all adapted matrices in one call each (issue 17): the orthogonal
// regulariser R = (1/N)·Σ ‖P Pᵀ − I‖_F (A, [r, n]) / ‖Pᵀ P − I‖_F (B, [n, r]) with its gradient, and
// the scaling of many gradients by one upstream scalar. The composed tfjs path runs ~12 kernels
// per matrix forward and backward; this is one pass over the matrices.
#include "common.h"
#include <cblas.h>
#include <omp.h>
#include <cmath>
#include <vector>

namespace lowrank {

// orthReg(ps[], rows Int32Array, cols Int32Array, isA Uint8Array, grads[]) → R.
// grads[i] (same shape as ps[i]) receives ∂R/∂P_i = 2·C·P/(N·‖C‖) (A) or 2·P·C/(N·‖C‖) (B), with
// C = P Pᵀ − I or Pᵀ P − I (symmetric) and 0 where ‖C‖ = 0 (torch.norm's backward there).
static Napi::Value OrthReg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 5, "orthReg")) return env.Undefined();
  Napi::Array ps = info[0].As<Napi::Array>();
  Napi::Array gs = info[4].As<Napi::Array>();
  const int32_t* rows = i32(info[1]);
  const int32_t* cols = i32(info[2]);
  const uint8_t* isA = u8(info[3]);
  const int64_t count = ps.Length();
  if (count == 0) return Napi::Number::New(env, 0.0);
  std::vector<const float*> p(count);
  std::vector<float*> g(count);
  for (int64_t i = 0; i < count; i++) {
    p[i] = f32(ps.Get(static_cast<uint32_t>(i)));
    g[i] = f32(gs.Get(static_cast<uint32_t>(i)));
  }
  std::vector<float> norms(count);
  const float invN = 1.f / static_cast<float>(count);
  // Matrices are small (r ≤ a few dozen): one single-threaded GEMM pair per matrix, matrices split
  // across OpenMP threads; each norm is one sequential f32 sum, so results do not depend on threads.
  {
  const SerialBlas serial(SerialBlas::kWorkers);
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < count; i++) {
    const int64_t pr = rows[i], pc = cols[i];
    const int64_t r = isA[i] ? pr : pc, n = isA[i] ? pc : pr;  // C is [r, r], P has n on the other side
    if (r == 0 || n == 0) {  // C = −I_r (nothing to multiply); the gradient, if any, is empty
      norms[i] = std::sqrt(static_cast<float>(r));
      continue;
    }
    std::vector<float> c(r * r);
    if (isA[i])  // C = P Pᵀ, P [r, n]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, n, 1.f, p[i], n, p[i], n, 0.f, c.data(), r);
    else  // C = Pᵀ P, P [n, r]
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, r, n, 1.f, p[i], r, p[i], r, 0.f, c.data(), r);
    float ss = 0.f;
    for (int64_t d = 0; d < r; d++) c[d * r + d] -= 1.f;
    for (int64_t e = 0; e < r * r; e++) ss += c[e] * c[e];
    const float norm = std::sqrt(ss);
    norms[i] = norm;
    const float s = norm > 0.f ? 2.f * invN / norm : 0.f;
    if (isA[i])  // ∂/∂P = s·C·P, [r, r]·[r, n]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, n, r, s, c.data(), r, p[i], n, 0.f, g[i], n);
    else  // ∂/∂P = s·P·C, [n, r]·[r, r]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, r, r, s, p[i], r, c.data(), r, 0.f, g[i], r);
  }
  }
  float sum = 0.f;  // in matrix order, as addN over the terms
  for (int64_t i = 0; i < count; i++) sum += norms[i];
  return Napi::Number::New(env, static_cast<double>(sum / static_cast<float>(count)));
}

// scaleAll(xs[], ys[], s): ys[i] = xs[i]·s (f32) for every pair.
static Napi::Value ScaleAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 3, "scaleAll")) return env.Undefined();
  Napi::Array xs = info[0].As<Napi::Array>();
  Napi::Array ys = info[1].As<Napi::Array>();
  const float s = static_cast<float>(dbl(info, 2));
  for (uint32_t i = 0; i < xs.Length(); i++) {
    Raw xr = raw(xs.Get(i));
    const float* x = static_cast<const float*>(xr.data);
    float* y = f32(ys.Get(i));
    for (size_t e = 0; e < xr.length; e++) y[e] = x[e] * s;
  }
  return env.Undefined();
}

// The SVD adapter's small factors (PEFT SVDLinear.forward: x·(A∘E)ᵀ·Bᵀ·s/(ranknum + 1e-5), the
// scale folded into B as in ops/lora.ts): left = A∘E [r, in], scaledB = (B·s)/(ranknum + 1e-5)
// [out, r], each element rounded exactly as the composed Multiply / Add / RealDiv kernels do, so the
// fused op is bit-identical to them. No FMA contraction (two roundings, as the separate kernels).
__attribute__((noinline, optimize("fp-contract=off"))) static void svdPrepCore(
    const float* a, const float* e, const float* b, float rnEps, float s, float* left, float* scaledB,
    int64_t r, int64_t inF, int64_t outF) {
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < inF; j++) left[i * inF + j] = a[i * inF + j] * e[i];
  for (int64_t k = 0; k < outF * r; k++) scaledB[k] = (b[k] * s) / rnEps;
}

// Sum of a contiguous run in the order of reduce.cc's sumRun (8 partial sums), so dE equals the
// composed Multiply + Sum bit for bit.
static inline float sumRun8(const float* x, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += x[i + j];
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) sum += x[i];
  return sum;
}

// The gradients of svdPrepCore, as tfjs's Multiply / RealDiv gradients compute them:
// dA = dLeft·E, dE_i = Σ_j dLeft_ij·A_ij, dB = (dScaledB / (ranknum + 1e-5))·s.
__attribute__((noinline, optimize("fp-contract=off"))) static void svdPrepGradCore(
    const float* dLeft, const float* dScaledB, const float* a, const float* e, float rnEps, float s,
    float* dA, float* dE, float* dB, int64_t r, int64_t inF, int64_t outF) {
  std::vector<float> prod(inF);
  for (int64_t i = 0; i < r; i++) {
    const float* dl = dLeft + i * inF;
    const float* ai = a + i * inF;
    for (int64_t j = 0; j < inF; j++) {
      dA[i * inF + j] = dl[j] * e[i];
      prod[j] = dl[j] * ai[j];
    }
    dE[i] = sumRun8(prod.data(), inF);
  }
  for (int64_t k = 0; k < outF * r; k++) dB[k] = (dScaledB[k] / rnEps) * s;
}

// svdPrep(a, e, b, ranknum, left, scaledB, r, in, out, scale)
static Napi::Value SvdPrep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 10, "svdPrep")) return env.Undefined();
  const float rnEps = f32(info[3])[0] + 1e-5f;  // f32(ranknum + 1e-5), as the Add kernel
  svdPrepCore(f32(info[0]), f32(info[1]), f32(info[2]), rnEps, static_cast<float>(dbl(info, 9)),
              f32(info[4]), f32(info[5]), num(info, 6), num(info, 7), num(info, 8));
  return env.Undefined();
}

// svdPrepGrad(dLeft, dScaledB, a, e, ranknum, dA, dE, dB, r, in, out, scale)
static Napi::Value SvdPrepGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 12, "svdPrepGrad")) return env.Undefined();
  const float rnEps = f32(info[4])[0] + 1e-5f;
  svdPrepGradCore(f32(info[0]), f32(info[1]), f32(info[2]), f32(info[3]), rnEps,
                  static_cast<float>(dbl(info, 11)), f32(info[5]), f32(info[6]), f32(info[7]),
                  num(info, 8), num(info, 9), num(info, 10));
  return env.Undefined();
}

// AdaLoRA's triplet scores over every layer in one call (paper Eq. 11; PEFT RankAllocator
// mask_to_budget): per group g (one SVD layer), s_g = s(E) + Σ_parts mean(s(part)) in the parts'
// order, where s(x) = avgIpt·avgUnc (f32 product) or avgIpt alone (no unc), 'A' parts [r, in] are
// averaged over their columns (reduce.cc's sumRun order, then / in) and 'B' parts [out, r] over
// their rows (a running sum down the rows, then / out): the rounding of the composed Multiply /
// Mean / Add kernels, so the scores (and the pruning threshold) are bit-identical.
// tripletScores(ipt[], unc[] | null, kinds Uint8Array (0 E, 1 A, 2 B), rows, cols, groupStart, outs[])
__attribute__((optimize("fp-contract=off"))) static Napi::Value TripletScores(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 7, "tripletScores")) return env.Undefined();
  Napi::Array ipt = info[0].As<Napi::Array>();
  const bool hasUnc = info[1].IsArray();
  Napi::Array unc = hasUnc ? info[1].As<Napi::Array>() : Napi::Array::New(env);
  const uint8_t* kinds = u8(info[2]);
  const int32_t* rows = i32(info[3]);
  const int32_t* cols = i32(info[4]);
  Raw gs = raw(info[5]);
  const int32_t* groupStart = static_cast<const int32_t*>(gs.data);
  Napi::Array outs = info[6].As<Napi::Array>();
  const uint32_t groups = outs.Length();
  const uint32_t items = ipt.Length();
  std::vector<float> prod, part;
  for (uint32_t g = 0; g < groups; g++) {
    float* s = f32(outs.Get(g));
    const uint32_t end = g + 1 < groups ? static_cast<uint32_t>(groupStart[g + 1]) : items;
    for (uint32_t k = static_cast<uint32_t>(groupStart[g]); k < end; k++) {
      const int64_t R = rows[k], C = cols[k], n = R * C;
      const float* iv = f32(ipt.Get(k));
      prod.resize(n);
      if (hasUnc) {
        const float* uv = f32(unc.Get(k));
        for (int64_t e = 0; e < n; e++) prod[e] = iv[e] * uv[e];
      } else {
        for (int64_t e = 0; e < n; e++) prod[e] = iv[e];
      }
      if (kinds[k] == 0) {  // E [r, 1]: the start of the sum
        for (int64_t e = 0; e < n; e++) s[e] = prod[e];
        continue;
      }
      const int64_t r = kinds[k] == 1 ? R : C;
      part.assign(r, 0.f);
      if (kinds[k] == 1) {  // A [r, in]: mean over axis 1
        for (int64_t i = 0; i < r; i++) part[i] = sumRun8(prod.data() + i * C, C) / static_cast<float>(C);
      } else {  // B [out, r]: mean over axis 0
        for (int64_t o = 0; o < R; o++)
          for (int64_t i = 0; i < r; i++) part[i] += prod[o * C + i];
        for (int64_t i = 0; i < r; i++) part[i] /= static_cast<float>(R);
      }
      for (int64_t i = 0; i < r; i++) s[i] = s[i] + part[i];
    }
  }
  return env.Undefined();
}

void registerAdalora(Napi::Env env, Napi::Object exports) {
  exports.Set("orthReg", Napi::Function::New(env, OrthReg));
  exports.Set("scaleAll", Napi::Function::New(env, ScaleAll));
  exports.Set("svdPrep", Napi::Function::New(env, SvdPrep));
  exports.Set("svdPrepGrad", Napi::Function::New(env, SvdPrepGrad));
  exports.Set("tripletScores", Napi::Function::New(env, TripletScores));
}

}  // namespace lowrank
