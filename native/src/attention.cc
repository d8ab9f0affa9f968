// Multi-head attention forward and backward as one call each (issue 17), reading q, k, v and
// writing the output and gradients in the projections' own [B, T, heads·d] layout: each head is a
// strided view (leading dimension heads·d) that cblas_sgemm takes directly, so the head split and
// merge transposes of the composed path disappear. Scores, scale, additive mask and softmax per
// (batch, head) block; the softmax rows are the same arithmetic as maskedSoftmax / softmaxGrad in
// fused.cc. (batch, head) blocks run one per OpenMP thread with single-threaded GEMMs; each block
// writes its own output columns, so results do not depend on the thread count.
// The softmax rows between the GEMMs (softmax_rows.h) are vectorised and keep their bits.
#include "common.h"
#include "softmax_rows.h"
#include <cblas.h>
#include <cmath>
#include <algorithm>
#include <vector>
#include <omp.h>

namespace lowrank {

struct AttnDims {
  int64_t b, tq, tk, heads, d;
  int64_t width() const { return heads * d; }
};

static AttnDims dimsOf(const Napi::CallbackInfo& info, size_t at) {
  return AttnDims{num(info, at), num(info, at + 1), num(info, at + 2), num(info, at + 3), num(info, at + 4)};
}

// softmax(row·scale + mask) in place for the rows of one [tq, tk] block of scores, kRowGroup at a
// time (softmax_rows.h); the mask row i starts at mask + i·rowStride and steps by colStride.
static void softmaxBlock(float* p, int64_t tq, int64_t tk, float scale, const float* mask, int64_t rowStride,
                         int64_t colStride) {
  float* rows[kRowGroup];
  const float* masks[kRowGroup];
  for (int64_t i0 = 0; i0 < tq; i0 += kRowGroup) {
    const int64_t n = std::min(kRowGroup, tq - i0);
    for (int64_t j = 0; j < n; j++) {
      rows[j] = p + (i0 + j) * tk;
      masks[j] = mask ? mask + (i0 + j) * rowStride : nullptr;
    }
    softmaxRows(n, rows, rows, masks, colStride, tk, scale);
  }
}

// ds ← scale·p⊙(ds − Σ ds⊙p) per row of one [tq, tk] block (ds holds dP on entry).
static void softmaxGradBlock(float* ds, const float* p, int64_t tq, int64_t tk, float scale) {
  float* d[kRowGroup];
  const float* y[kRowGroup];
  for (int64_t i0 = 0; i0 < tq; i0 += kRowGroup) {
    const int64_t n = std::min(kRowGroup, tq - i0);
    rowPointers(ds, i0, n, tk, d);
    rowPointers(p, i0, n, tk, y);
    softmaxGradRows(n, y, d, d, tk, scale);
  }
}

// attentionForward(q, k, v, mask|null, maskStrides Int32[4], out, probs, B, Tq, Tk, heads, d, scale)
// out [B, Tq, heads·d] = softmax(q·kᵀ·scale + mask)·v per head; probs [B, heads, Tq, Tk] kept for
// the backward. The mask broadcasts to [B, heads, Tq, Tk] through its strides (0 on broadcast dims).
static Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 13, "attentionForward")) return env.Undefined();
  const float* q = f32(info[0]);
  const float* k = f32(info[1]);
  const float* v = f32(info[2]);
  const float* mask = info[3].IsTypedArray() ? f32(info[3]) : nullptr;
  const int32_t* ms = i32(info[4]);
  float* out = f32(info[5]);
  float* probs = f32(info[6]);
  const AttnDims a = dimsOf(info, 7);
  const float scale = static_cast<float>(dbl(info, 12));
  const int64_t w = a.width(), blocks = a.b * a.heads;
  const SerialBlas serial(SerialBlas::kWorkers);
#pragma omp parallel for if (blocks * a.tq * a.tk * a.d > 16 * kParallelGrain) schedule(static)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t bi = blk / a.heads, h = blk % a.heads;
    const float* qb = q + bi * a.tq * w + h * a.d;
    const float* kb = k + bi * a.tk * w + h * a.d;
    const float* vb = v + bi * a.tk * w + h * a.d;
    float* p = probs + blk * a.tq * a.tk;
    if (a.d > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a.tq, a.tk, a.d, 1.f, qb, w, kb, w, 0.f, p, a.tk);
    else
      std::fill(p, p + a.tq * a.tk, 0.f);
    const float* mb = mask ? mask + bi * ms[0] + h * ms[1] : nullptr;
    softmaxBlock(p, a.tq, a.tk, scale, mb, ms[2], ms[3]);
    float* ob = out + bi * a.tq * w + h * a.d;
    if (a.tk > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a.tq, a.d, a.tk, 1.f, p, a.tk, vb, w, 0.f, ob, w);
    else
      for (int64_t i = 0; i < a.tq; i++) std::fill(ob + i * w, ob + i * w + a.d, 0.f);
  }
  return env.Undefined();
}

// attentionBackward(dy, q, k, v, probs, dq, dk, dv, B, Tq, Tk, heads, d, scale): with P the saved
// probabilities, dP = dy·vᵀ, dS = scale·P⊙(dP − Σ dP⊙P), dq = dS·k, dk = dSᵀ·q, dv = Pᵀ·dy.
static Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 14, "attentionBackward")) return env.Undefined();
  const float* dy = f32(info[0]);
  const float* q = f32(info[1]);
  const float* k = f32(info[2]);
  const float* v = f32(info[3]);
  const float* probs = f32(info[4]);
  float* dq = f32(info[5]);
  float* dk = f32(info[6]);
  float* dv = f32(info[7]);
  const AttnDims a = dimsOf(info, 8);
  const float scale = static_cast<float>(dbl(info, 13));
  const int64_t w = a.width(), blocks = a.b * a.heads;
  if (a.d == 0) return env.Undefined();
  const SerialBlas serial(SerialBlas::kWorkers);
  const bool parallel = blocks * a.tq * a.tk * a.d > 16 * kParallelGrain;
  // one dS block per thread, allocated once per call
  std::vector<float> scratch(static_cast<size_t>(parallel ? omp_get_max_threads() : 1) * a.tq * a.tk);
#pragma omp parallel for if (parallel) schedule(static)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t bi = blk / a.heads, h = blk % a.heads;
    const int64_t qo = bi * a.tq * w + h * a.d, ko = bi * a.tk * w + h * a.d;
    const float* p = probs + blk * a.tq * a.tk;
    float* ds = scratch.data() + static_cast<int64_t>(omp_get_thread_num()) * a.tq * a.tk;
    if (a.tk > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a.tq, a.tk, a.d, 1.f, dy + qo, w, v + ko, w, 0.f, ds,
                  a.tk);
    softmaxGradBlock(ds, p, a.tq, a.tk, scale);
    if (a.tk > 0) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a.tq, a.d, a.tk, 1.f, ds, a.tk, k + ko, w, 0.f,
                  dq + qo, w);
    } else {
      for (int64_t i = 0; i < a.tq; i++) std::fill(dq + qo + i * w, dq + qo + i * w + a.d, 0.f);
    }
    if (a.tq > 0) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a.tk, a.d, a.tq, 1.f, ds, a.tk, q + qo, w, 0.f,
                  dk + ko, w);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a.tk, a.d, a.tq, 1.f, p, a.tk, dy + qo, w, 0.f,
                  dv + ko, w);
    } else {
      for (int64_t j = 0; j < a.tk; j++) {
        std::fill(dk + ko + j * w, dk + ko + j * w + a.d, 0.f);
        std::fill(dv + ko + j * w, dv + ko + j * w + a.d, 0.f);
      }
    }
  }
  return env.Undefined();
}

void registerAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
}

}  // namespace lowrank
