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
#include <cblas.h>
#include <cmath>
#include <cstring>
#include <vector>

namespace lowrank {

typedef float v8f __attribute__((vector_size(32)));

static inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
static inline void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
static inline float hsum8(v8f v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// Per-product work (m·n·k) up to which a GEMM runs on the calling thread, as gemm.cc's kSmallGemm,
// so the base product here is computed exactly as the BatchMatMul / _FusedMatMul kernel does.
constexpr int64_t kSmallBaseGemm = int64_t(1) << 22;
// Rows (or column tiles) per OpenMP task below which the adapter products stay on one thread.
constexpr int64_t kAdapterGrain = int64_t(1) << 15;

// The dropped value of x: x·m with m = 1/keep for a kept element, 0 otherwise (tf.dropout's
// multiplier floor(u + keep)/keep, one float32 product as the Multiply kernel).
static inline float dropped(float x, const uint8_t* mask, int64_t i, float kept) {
  return mask ? x * (mask[i] ? kept : 0.f) : x;
}

// H[n, j0 + t] = Σ_c X'[n, c]·M[j0 + t, c] for t < JT, X' = drop(X) (row n only; xd is the row).
template <int JT>
static inline void rowDotsBlock(const float* xd, const float* m, float* h, int64_t cols, int64_t j0) {
  v8f acc[JT];
  for (int t = 0; t < JT; t++) acc[t] = v8f{};
  int64_t c = 0;
  for (; c + 8 <= cols; c += 8) {
    const v8f xv = load8(xd + c);
    for (int t = 0; t < JT; t++) acc[t] += xv * load8(m + (j0 + t) * cols + c);
  }
  for (int t = 0; t < JT; t++) {
    float s = hsum8(acc[t]);
    for (int64_t cc = c; cc < cols; cc++) s += xd[cc] * m[(j0 + t) * cols + cc];
    h[j0 + t] = s;
  }
}

// H [rows, r] = drop(X) [rows, cols] · Mᵀ (M [r, cols]): one dot product per (row, j).
static void rowDots(const float* x, const uint8_t* mask, float kept, const float* m, float* h, int64_t rows,
                    int64_t cols, int64_t r) {
#pragma omp parallel if (rows * cols * r > kAdapterGrain * 64)
  {
    std::vector<float> buf(mask ? cols : 0);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < rows; n++) {
      const float* xr = x + n * cols;
      if (mask) {
        for (int64_t c = 0; c < cols; c++) buf[c] = dropped(xr[c], mask, n * cols + c, kept);
        xr = buf.data();
      }
      float* hr = h + n * r;
      int64_t j = 0;
      for (; j + 8 <= r; j += 8) rowDotsBlock<8>(xr, m, hr, cols, j);
      for (; j + 4 <= r; j += 4) rowDotsBlock<4>(xr, m, hr, cols, j);
      for (; j < r; j++) rowDotsBlock<1>(xr, m, hr, cols, j);
    }
  }
}

// Y[n, c] += mult(n, c)·Σ_j H[n, j]·MT[j, c] (MT [r, cols]); mult = the mask's multiplier or 1.
// The sum over j runs in j order; the product with the multiplier and the add are one rounding each.
static void rowCombine(const float* h, const float* mt, float* y, const uint8_t* mask, float kept, int64_t rows,
                       int64_t cols, int64_t r) {
#pragma omp parallel for if (rows * cols * r > kAdapterGrain * 64) schedule(static)
  for (int64_t n = 0; n < rows; n++) {
    const float* hr = h + n * r;
    float* yr = y + n * cols;
    const uint8_t* mr = mask ? mask + n * cols : nullptr;
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32) {
      v8f a0{}, a1{}, a2{}, a3{};
      for (int64_t j = 0; j < r; j++) {
        const float* mj = mt + j * cols + c;
        const float hj = hr[j];
        a0 += hj * load8(mj);
        a1 += hj * load8(mj + 8);
        a2 += hj * load8(mj + 16);
        a3 += hj * load8(mj + 24);
      }
      const v8f acc[4] = {a0, a1, a2, a3};
      for (int q = 0; q < 4; q++) {
        v8f t = acc[q];
        if (mr)
          for (int l = 0; l < 8; l++) t[l] = t[l] * (mr[c + 8 * q + l] ? kept : 0.f);
        store8(yr + c + 8 * q, load8(yr + c + 8 * q) + t);
      }
    }
    for (; c < cols; c++) {
      float s = 0.f;
      for (int64_t j = 0; j < r; j++) s += hr[j] * mt[j * cols + c];
      if (mr) s = s * (mr[c] ? kept : 0.f);
      yr[c] = yr[c] + s;
    }
  }
}

// G[j0 + t, c0 .. c0 + 8) = Σ_n H[n, j0 + t]·drop(X)[n, c0 .. c0 + 8), summed over n in order.
template <int JT>
static inline void colReduceTile(const float* x, const uint8_t* mask, float kept, const float* h, float* g,
                                 int64_t rows, int64_t cols, int64_t r, int64_t c0, int64_t j0) {
  v8f acc[JT];
  for (int t = 0; t < JT; t++) acc[t] = v8f{};
  const v8f zero{};
  const v8f keptV = zero + kept;
  for (int64_t n = 0; n < rows; n++) {
    v8f xv = load8(x + n * cols + c0);
    if (mask) {
      const uint8_t* mr = mask + n * cols + c0;
      v8f mv;
      for (int l = 0; l < 8; l++) mv[l] = mr[l] ? keptV[l] : 0.f;
      xv = xv * mv;
    }
    const float* hr = h + n * r + j0;
    for (int t = 0; t < JT; t++) acc[t] += hr[t] * xv;
  }
  for (int t = 0; t < JT; t++) store8(g + (j0 + t) * cols + c0, acc[t]);
}

// G [r, cols] = Hᵀ [r, rows] · drop(X) [rows, cols]: column tiles of 8 split across threads, each
// element summed over the rows in order (no cross-thread reduction, so no dependence on threads).
static void colReduce(const float* x, const uint8_t* mask, float kept, const float* h, float* g, int64_t rows,
                      int64_t cols, int64_t r) {
  const int64_t tiles = cols / 8;
#pragma omp parallel for if (rows * cols * r > kAdapterGrain * 64) schedule(static)
  for (int64_t tile = 0; tile < tiles; tile++) {
    const int64_t c0 = tile * 8;
    int64_t j = 0;
    for (; j + 8 <= r; j += 8) colReduceTile<8>(x, mask, kept, h, g, rows, cols, r, c0, j);
    for (; j + 4 <= r; j += 4) colReduceTile<4>(x, mask, kept, h, g, rows, cols, r, c0, j);
    for (; j < r; j++) colReduceTile<1>(x, mask, kept, h, g, rows, cols, r, c0, j);
  }
  for (int64_t c = tiles * 8; c < cols; c++)  // the last cols % 8 columns
    for (int64_t j = 0; j < r; j++) {
      float s = 0.f;
      for (int64_t n = 0; n < rows; n++) s += h[n * r + j] * dropped(x[n * cols + c], mask, n * cols + c, kept);
      g[j * cols + c] = s;
    }
}

// [rows, cols] → [cols, rows].
static std::vector<float> transposed(const float* a, int64_t rows, int64_t cols) {
  std::vector<float> t(rows * cols);
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

// One cblas_sgemm with gemm.cc's thread choice (one thread for products up to kSmallBaseGemm).
static void baseGemm(bool transB, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta,
                     float* c) {
  const bool small = m * n * k <= kSmallBaseGemm;
  const int saved = openblas_get_num_threads();
  if (small) openblas_set_num_threads(1);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, 1.f, a, k, b,
              transB ? k : n, beta, c, n);
  if (small) openblas_set_num_threads(saved);
}

// adapterForward(x, w, bias|null, left, scaledB, y, h, mask|null, rows, in, out, r, wInOut, keep,
//                states|null, chunk): W is [out, in] ([in, out] with wInOut); mask null = no dropout.
static Napi::Value AdapterForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 16, "adapterForward")) return env.Undefined();
  const float* x = f32(info[0]);
  const float* w = f32(info[1]);
  const float* bias = info[2].IsTypedArray() ? f32(info[2]) : nullptr;
  const float* left = f32(info[3]);
  const float* scaledB = f32(info[4]);
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
  const std::vector<float> st = transposed(scaledB, outF, r);  // Sᵀ [r, out]
  rowCombine(h, st.data(), y, nullptr, 1.f, rows, outF, r);  // y += h·Sᵀ
  return env.Undefined();
}

// adapterBackward(dy, x, w, mask|null, h, left, scaledB, dx, dLeft, dScaledB, rows, in, out, r,
//                 wInOut, keep)
static Napi::Value AdapterBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 16, "adapterBackward")) return env.Undefined();
  const float* dy = f32(info[0]);
  const float* x = f32(info[1]);
  const float* w = f32(info[2]);
  const uint8_t* mask = info[3].IsTypedArray() ? u8(info[3]) : nullptr;
  const float* h = f32(info[4]);
  const float* left = f32(info[5]);
  const float* scaledB = f32(info[6]);
  float* dx = f32(info[7]);
  float* dLeft = f32(info[8]);
  float* dScaledB = f32(info[9]);
  const int64_t rows = num(info, 10), inF = num(info, 11), outF = num(info, 12), r = num(info, 13);
  const bool wInOut = num(info, 14) != 0;
  const float kept = 1.f / static_cast<float>(dbl(info, 15));
  // dX = dy·W ([rows, out]·[out, in]), or dy·Wᵀ for an [in, out] weight; 0 when out = 0
  if (outF > 0) baseGemm(wInOut, rows, inF, outF, dy, w, 0.f, dx);
  else std::fill(dx, dx + rows * inF, 0.f);
  if (r == 0) return env.Undefined();
  const std::vector<float> st = transposed(scaledB, outF, r);  // Sᵀ [r, out]
  std::vector<float> dh(rows * r);
  rowDots(dy, nullptr, 1.f, st.data(), dh.data(), rows, outF, r);  // dh = dy·S
  rowCombine(dh.data(), left, dx, mask, kept, rows, inF, r);       // dX += (dh·L)∘m
  colReduce(x, mask, kept, dh.data(), dLeft, rows, inF, r);        // dL = dhᵀ·drop(x)
  std::vector<float> dst(r * outF);
  colReduce(dy, nullptr, 1.f, h, dst.data(), rows, outF, r);       // dSᵀ = hᵀ·dy
  for (int64_t o = 0; o < outF; o++)
    for (int64_t j = 0; j < r; j++) dScaledB[o * r + j] = dst[j * outF + o];
  return env.Undefined();
}

void registerAdapter(Napi::Env env, Napi::Object exports) {
  exports.Set("adapterForward", Napi::Function::New(env, AdapterForward));
  exports.Set("adapterBackward", Napi::Function::New(env, AdapterBackward));
}

}  // namespace lowrank
