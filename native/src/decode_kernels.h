// The pieces of native token decoding (decode.cc) that are plain functions over arrays: the adapter
// terms and 4-bit weights of a projection, RMSNorm, the activations, the 4-bit GEMV and the projection
// with per-row adapter slots.
#pragma once
#include "common.h"
#include "nibble.h"
#include <cblas.h>
#include <cmath>
#include <vector>
#include <algorithm>

namespace lowrank {
namespace {

// One adapter term of a projection: y += scale · B (A x), A [r, in], B [out, r].
struct LowRank {
  const float* a;
  const float* b;
  int64_t r;
  float scale;
};

// One adapter configuration of a projection (a "slot"): terms and the optional DoRA row factor.
struct Slot {
  const float* rowScale = nullptr;
  std::vector<LowRank> terms;
};

// A 4-bit weight (QLoRA, NF4/FP4): packed codes (high nibble first), the 16-entry code book and
// one absmax per block of `blocksize` elements of the flattened [out, in] weight (double
// quantisation already decoded by the caller, with the same f32 operations as dequant.cc).
struct Quant4 {
  const uint8_t* packed = nullptr;
  const float* code = nullptr;
  const float* absmax = nullptr;
  int64_t blocksize = 0;
};

// One projection, per token i: y_i = f_s ⊙ (W x_i + Σ_{terms of s} s·B(A x_i)) + bias with s = slot[i]
// (a slot outside the list, e.g. −1, is the base layer alone). W [out, in] row-major.
struct Proj {
  const float* w = nullptr;  // f32 weight, or null when `q4` holds it
  Quant4 q4;
  const float* bias = nullptr;
  int64_t out = 0, in = 0;
  std::vector<Slot> slots;
};

// A block: x += postAttn(o(attn(ln1 x))); x += postFfn(down(act(gate h) · up h)), h = ln2 x. Fused
// layouts (Phi-3): `q` holds [q; k; v] rows and k, v are empty (out 0); `gate` holds [gate; up] and up
// is empty. postAttn / postFfn (Gemma 2's post norms) are null elsewhere; window 0 = full attention.
struct Layer {
  const float* ln1;
  const float* ln2;
  const float* postAttn = nullptr;
  const float* postFfn = nullptr;
  int64_t window = 0;
  Proj q, k, v, o, gate, up, down;
};

enum Act { kSilu = 0, kGeluTanh = 1 };

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float geluTanh(float x) {
  const float c = 0.7978845608028654f;  // √(2/π)
  return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}

// out = x · rsqrt(mean(x²) + eps) · (w or 1 + w); same order as ops/rmsNorm (sum of squares in f32).
void rmsNorm(const float* x, const float* w, float* out, int64_t n, float eps, bool offset) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
  const float r = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * r * (offset ? 1.0f + w[i] : w[i]);
}

// Y [n, out] = X [n, in] · Wᵀ with W 4-bit: each block is decoded once into a 16-entry table
// (code[k] · absmax, the same f32 products as dequant.cc) and a row buffer, then dotted with every
// token's input, so the weight is read at 4 bits per element and never held in f32.
void gemv4(const Quant4& q, int64_t out, int64_t in, const float* X, float* Y, int64_t n, float* row) {
  for (int64_t j = 0; j < out; j++) {
    const int64_t base = j * in;
    for (int64_t c = 0; c < in;) {
      const int64_t b = (base + c) / q.blocksize;
      const int64_t end = std::min(in, (b + 1) * q.blocksize - base);
      float lut[16];
      const float a = q.absmax[b];
      for (int k = 0; k < 16; k++) lut[k] = q.code[k] * a;
      int64_t e = c;
      if ((base + e) & 1) {  // a block starting on a low nibble (odd row width): one element first
        row[e] = lut[q.packed[(base + e) >> 1] & 0x0f];
        e++;
      }
      const uint8_t* bytes = q.packed + ((base + e) >> 1);
      const int64_t pairs = (end - e) / 2;  // whole bytes: high nibble, then low nibble (nibble.h)
      decodeNibbles(bytes, pairs, lut, row + e);
      e += 2 * pairs;
      if (e < end) row[e] = lut[bytes[pairs] >> 4];
      c = end;
    }
    for (int64_t i = 0; i < n; i++) {
      const float* x = X + i * in;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)  // lanes of partial sums (strict FP would keep one chain)
      for (int64_t e = 0; e < in; e++) acc += row[e] * x[e];
      Y[i * out + j] = acc;
    }
  }
}

// Y [n, out] = rows of X [n, in] through the projection, each with its own adapter slot; `tmp` holds
// at least max r floats. One token: sgemv; several: one sgemm for the shared base weight.
void project(const Proj& p, const float* X, float* Y, int64_t n, const int32_t* slots, float* tmp, float* row) {
  const int out = static_cast<int>(p.out), in = static_cast<int>(p.in);
  if (!p.w)
    gemv4(p.q4, p.out, p.in, X, Y, n, row);
  else if (n == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, p.w, in, X, 1, 0.0f, Y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), out, in, 1.0f, X, in, p.w, in, 0.0f,
                Y, out);
  for (int64_t i = 0; i < n; i++) {
    const int32_t s = slots[i];
    float* y = Y + i * p.out;
    if (s >= 0 && s < static_cast<int32_t>(p.slots.size())) {
      const Slot& slot = p.slots[size_t(s)];
      const float* x = X + i * p.in;
      for (const LowRank& t : slot.terms) {
        const int r = static_cast<int>(t.r);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, r, in, 1.0f, t.a, in, x, 1, 0.0f, tmp, 1);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, r, t.scale, t.b, r, tmp, 1, 1.0f, y, 1);
      }
      if (slot.rowScale)
        for (int64_t j = 0; j < p.out; j++) y[j] *= slot.rowScale[j];
    }
    if (p.bias)
      for (int64_t j = 0; j < p.out; j++) y[j] += p.bias[j];
  }
}

}  // namespace

}  // namespace lowrank
