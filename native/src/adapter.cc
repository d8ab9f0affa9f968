// The adapted linear layer y = x·Wᵀ + b + (drop(x)·Lᵀ)·Sᵀ as one call each way (issue 17), for a
// frozen base weight W and the adapter's small factors L [r, in] (LoRA's A, AdaLoRA's A∘E) and
// S [out, r] (B times the scale, AdaLoRA's also divided by ranknum + 1e-5):
//  - forward: the dropout mask from tfjs's own Alea stream (alea.h; the mask of
//    tf.dropout(x, rate, undefined, seed), one byte per element), the base GEMM over OpenBLAS with
//    the bias written first and beta = 1 (as the _FusedMatMul kernel), h = drop(x)·Lᵀ and the delta
//    h·Sᵀ added into y in place (no [N, out] delta tensor, no Add pass).
//  - backward: dX = dy·W over OpenBLAS, then the adapter's dX (dh·L)∘mask added in the same row pass,
//    dh = dy·S, dL = dhᵀ·drop(x) (the dropped x recomputed from x and the mask), dS = dyᵀ·h. W gets
//    no gradient.
// The rank-r products (r ≤ a few dozen) run on our own vectorised kernels, not OpenBLAS: at these
// shapes (k or n = r) OpenBLAS packs whole panels for a handful of columns and reaches 10–35 GFLOP/s,
// and above 2²² multiply-adds it wakes its second thread for a product that takes ~0.3 ms.
// Rounding: each product of the adapter is a float32 sum in a fixed order (8 lanes, then a fixed
// tree; FMA where the compiler contracts), independent of the thread count, but not OpenBLAS's
// order, so values differ from the composed kernels in the last bits (tolerances in
// src/tensor/ops/adapter_linear.test.ts). Dropout products x·m, the mask multiply of the gradient
// and the adds into y and dX are single float32 operations, as the composed kernels do them.
#include "common.h"
#include "alea.h"
#include "adapter_kernels.h"
#include <cblas.h>
#include <cmath>
#include <cstring>
#include <vector>

namespace lowrank {

// One cblas_sgemm with gemm.cc's thread choice (the calling thread alone for products up to
// kSmallGemm), so the base product is computed exactly as the BatchMatMul / _FusedMatMul kernel does.
static void baseGemm(bool transB, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta,
                     float* c) {
  const SerialBlas serial(SerialBlas::kCaller, m * n * k <= kSmallGemm);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, 1.f, a, k, b,
              transB ? k : n, beta, c, n);
}

// Sᵀ [r, out] from B [out, r] and the scale: S = B·s, each element one float32 product as the Multiply
// kernel (s = 1 leaves B exact: AdaLoRA passes its already scaled B).
static std::vector<float> scaledTransposed(const float* b, float s, int64_t outF, int64_t r) {
  std::vector<float> t(outF * r);
  for (int64_t o = 0; o < outF; o++)
    for (int64_t j = 0; j < r; j++) t[j * outF + o] = b[o * r + j] * s;
  return t;
}

// adapterForward(x, w, bias|null, left, b, y, h, mask|null, rows, in, out, r, wInOut, keep,
//                states|null, chunk, bScale): W is [out, in] ([in, out] with wInOut); mask null = no
//                dropout; S = b·bScale.
static Napi::Value AdapterForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 17, "adapterForward")) return env.Undefined();
  const float* x = f32(info[0]);
  const float* w = f32(info[1]);
  const float* bias = info[2].IsTypedArray() ? f32(info[2]) : nullptr;
  const float* left = f32(info[3]);
  const float* b = f32(info[4]);
  float* y = f32(info[5]);
  float* h = f32(info[6]);
  uint8_t* mask = info[7].IsTypedArray() ? u8(info[7]) : nullptr;
  const int64_t rows = num(info, 8), inF = num(info, 9), outF = num(info, 10), r = num(info, 11);
  const bool wInOut = num(info, 12) != 0;
  const float keep = static_cast<float>(dbl(info, 13));
  if (mask) {
    Raw st = raw(info[14]);
    aleaUniforms(rows * inF, static_cast<const double*>(st.data), static_cast<int64_t>(st.length) / 4,
                 num(info, 15), [&](int64_t i, float u) { mask[i] = std::floor(u + keep) >= 1.f ? 1 : 0; });
  }
  const float kept = 1.f / keep;  // floor(u + keep)/keep for a kept element
  if (rows == 0 || outF == 0) return env.Undefined();
  // base: y = bias (or 0), then y += x·Wᵀ
  for (int64_t n = 0; n < rows; n++) {
    if (bias) std::memcpy(y + n * outF, bias, sizeof(float) * outF);
    else std::memset(y + n * outF, 0, sizeof(float) * outF);
  }
  if (inF > 0) baseGemm(!wInOut, rows, outF, inF, x, w, bias ? 1.f : 0.f, y);
  if (r == 0) return env.Undefined();
  rowDots(x, mask, kept, left, h, rows, inF, r);  // h = drop(x)·Lᵀ
  const std::vector<float> st = scaledTransposed(b, static_cast<float>(dbl(info, 16)), outF, r);  // Sᵀ [r, out]
  rowCombine(h, st.data(), y, nullptr, 1.f, rows, outF, r);  // y += h·Sᵀ
  return env.Undefined();
}

// adapterBackward(dy, x, w, mask|null, h, left, b, dx, dLeft, dB, rows, in, out, r, wInOut, keep,
//                 bScale): dB = dS·bScale (the Multiply gradient), S = b·bScale.
static Napi::Value AdapterBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 17, "adapterBackward")) return env.Undefined();
  const float* dy = f32(info[0]);
  const float* x = f32(info[1]);
  const float* w = f32(info[2]);
  const uint8_t* mask = info[3].IsTypedArray() ? u8(info[3]) : nullptr;
  const float* h = f32(info[4]);
  const float* left = f32(info[5]);
  const float* b = f32(info[6]);
  float* dx = f32(info[7]);
  float* dLeft = f32(info[8]);
  float* dB = f32(info[9]);
  const int64_t rows = num(info, 10), inF = num(info, 11), outF = num(info, 12), r = num(info, 13);
  const bool wInOut = num(info, 14) != 0;
  const float kept = 1.f / static_cast<float>(dbl(info, 15));
  // dX = dy·W ([rows, out]·[out, in]), or dy·Wᵀ for an [in, out] weight; 0 when out = 0
  if (outF > 0) baseGemm(wInOut, rows, inF, outF, dy, w, 0.f, dx);
  else std::fill(dx, dx + rows * inF, 0.f);
  if (r == 0) return env.Undefined();
  const float bScale = static_cast<float>(dbl(info, 16));
  const std::vector<float> st = scaledTransposed(b, bScale, outF, r);  // Sᵀ [r, out]
  std::vector<float> dh(rows * r);
  rowDots(dy, nullptr, 1.f, st.data(), dh.data(), rows, outF, r);  // dh = dy·S
  rowCombine(dh.data(), left, dx, mask, kept, rows, inF, r);       // dX += (dh·L)∘m
  colReduce(x, mask, kept, dh.data(), dLeft, rows, inF, r);        // dL = dhᵀ·drop(x)
  std::vector<float> dst(r * outF);
  colReduce(dy, nullptr, 1.f, h, dst.data(), rows, outF, r);       // dSᵀ = hᵀ·dy
  for (int64_t o = 0; o < outF; o++)
    for (int64_t j = 0; j < r; j++) dB[o * r + j] = dst[j * outF + o] * bScale;  // the Multiply gradient
  return env.Undefined();
}

void registerAdapter(Napi::Env env, Napi::Object exports) {
  exports.Set("adapterForward", Napi::Function::New(env, AdapterForward));
  exports.Set("adapterBackward", Napi::Function::New(env, AdapterBackward));
}

}  // namespace lowrank
