// Multi-head attention forward and backward as one call each (issue 17), reading q, k, v and
// writing the output and gradients in the projections' own [B, T, heads·d] layout: each head is a
// strided view (leading dimension heads·d) that cblas_sgemm takes directly, so the head split and
// merge transposes of the composed path disappear. Scores, scale, additive mask and softmax per
// (batch, head) block; the softmax rows are the same arithmetic as maskedSoftmax / softmaxGrad in
// fused.cc. (batch, head) blocks run one per OpenMP thread with single-threaded GEMMs; each block
// writes its own output columns, so results do not depend on the thread count.
#include "common.h"
#include "vecmath.h"
#include <cblas.h>
#include <cmath>
#include <algorithm>
#include <vector>

namespace lowrank {

struct AttnDims {
  int64_t b, tq, tk, heads, d;
  int64_t width() const { return heads * d; }
};

static AttnDims dimsOf(const Napi::CallbackInfo& info, size_t at) {
  return AttnDims{num(info, at), num(info, at + 1), num(info, at + 2), num(info, at + 3), num(info, at + 4)};
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
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(1);
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
    for (int64_t i = 0; i < a.tq; i++) {
      float* row = p + i * a.tk;
      const float* mr = mask ? mask + bi * ms[0] + h * ms[1] + i * ms[2] : nullptr;
      float mx = -INFINITY;
      for (int64_t c = 0; c < a.tk; c++) {
        const float s = row[c] * scale + (mr ? mr[c * ms[3]] : 0.f);
        row[c] = s;
        mx = std::max(mx, s);
      }
      for (int64_t c = 0; c < a.tk; c++) row[c] = vexp(row[c] - mx);
      float sum = 0.f;
      for (int64_t c = 0; c < a.tk; c++) sum += row[c];
      const float inv = 1.f / sum;
      for (int64_t c = 0; c < a.tk; c++) row[c] *= inv;
    }
    float* ob = out + bi * a.tq * w + h * a.d;
    if (a.tk > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a.tq, a.d, a.tk, 1.f, p, a.tk, vb, w, 0.f, ob, w);
    else
      for (int64_t i = 0; i < a.tq; i++) std::fill(ob + i * w, ob + i * w + a.d, 0.f);
  }
  openblas_set_num_threads(saved);
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
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(1);
#pragma omp parallel for if (blocks * a.tq * a.tk * a.d > 16 * kParallelGrain) schedule(static)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t bi = blk / a.heads, h = blk % a.heads;
    const int64_t qo = bi * a.tq * w + h * a.d, ko = bi * a.tk * w + h * a.d;
    const float* p = probs + blk * a.tq * a.tk;
    std::vector<float> ds(a.tq * a.tk);
    if (a.tk > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a.tq, a.tk, a.d, 1.f, dy + qo, w, v + ko, w, 0.f,
                  ds.data(), a.tk);
    for (int64_t i = 0; i < a.tq; i++) {
      const float* pr = p + i * a.tk;
      float* dr = ds.data() + i * a.tk;
      float dot = 0.f;
      for (int64_t c = 0; c < a.tk; c++) dot += dr[c] * pr[c];
      for (int64_t c = 0; c < a.tk; c++) dr[c] = scale * pr[c] * (dr[c] - dot);
    }
    if (a.tk > 0) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a.tq, a.d, a.tk, 1.f, ds.data(), a.tk, k + ko, w,
                  0.f, dq + qo, w);
    } else {
      for (int64_t i = 0; i < a.tq; i++) std::fill(dq + qo + i * w, dq + qo + i * w + a.d, 0.f);
    }
    if (a.tq > 0) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a.tk, a.d, a.tq, 1.f, ds.data(), a.tk, q + qo, w, 0.f,
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
  openblas_set_num_threads(saved);
  return env.Undefined();
}

void registerAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
}

}  // namespace lowrank
