// Rows of layer / RMS norm forward and backward, and per-column sums, shared by the norm kernels
// (fused.cc) and the fused dropout + residual add + layer norm (add_norm.cc), so both run the same
// float32 arithmetic in the same order and give the same bits.
#pragma once
#include "vecmath.h"
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace lowrank {

// Up to kNormGroup rows are handled side by side: each row's float/double sums keep their own
// left-to-right order (so the bits are those of one row at a time), but the adds of different
// rows overlap instead of each waiting on the one before (a sequential add chain is
// latency-bound at ~4 cycles per element; eight interleaved chains run ~5× faster).
constexpr int64_t kNormGroup = 8;

// μ and rstd of R rows x_j: μ = Σx/n (0 for RMS), rstd = 1/√(Σ(x − μ)²/n + eps), sums in double.
template <int R>
inline void normStats(const float* const* x, int64_t cols, float eps, bool rms, float* meanOut, float* rstdOut) {
  double s[R], v[R];
  float mu[R];
  std::fill(s, s + R, 0.0);
  std::fill(v, v + R, 0.0);
  if (!rms)
    for (int64_t c = 0; c < cols; c++)
      for (int j = 0; j < R; j++) s[j] += x[j][c];
  for (int j = 0; j < R; j++) mu[j] = rms ? 0.f : static_cast<float>(s[j] / cols);
  for (int64_t c = 0; c < cols; c++)
    for (int j = 0; j < R; j++) {
      const float d = x[j][c] - mu[j];
      v[j] += d * d;
    }
  for (int j = 0; j < R; j++) {
    meanOut[j] = mu[j];
    rstdOut[j] = 1.f / std::sqrt(static_cast<float>(v[j] / cols) + eps);
  }
}

// o = (x − μ)·rstd·γ + β for one row (RMS: μ = 0, no β).
inline void normRowApply(const float* xr, const float* g, const float* b, float* orow, int64_t cols, float mu,
                         float rs) {
  for (int64_t c = 0; c < cols; c++) orow[c] = (xr[c] - mu) * rs * g[c] + (b ? b[c] : 0.f);
}

// Normalises rows x_j → o_j for j < n ≤ kNormGroup; writes μ_j and rstd_j.
inline void normRowsForward(int64_t n, const float* const* x, const float* g, const float* b, float* const* o,
                            int64_t cols, float eps, bool rms, float* meanOut, float* rstdOut) {
  if (n == kNormGroup) normStats<kNormGroup>(x, cols, eps, rms, meanOut, rstdOut);
  else
    for (int64_t j = 0; j < n; j++) normStats<1>(x + j, cols, eps, rms, meanOut + j, rstdOut + j);
  for (int64_t j = 0; j < n; j++) normRowApply(x[j], g, b, o[j], cols, meanOut[j], rstdOut[j]);
}

// Σ dy·γ and Σ dy·γ·x̂ (double) of R rows, x̂ = (x − μ)·rstd.
template <int R>
inline void normGradSums(const float* const* x, const float* const* dy, const float* g, const float* mu,
                         const float* rs, int64_t cols, double* sg, double* sgx) {
  std::fill(sg, sg + R, 0.0);
  std::fill(sgx, sgx + R, 0.0);
  for (int64_t c = 0; c < cols; c++)
    for (int j = 0; j < R; j++) {
      const float gc = dy[j][c] * g[c];
      sg[j] += gc;
      sgx[j] += gc * (x[j][c] - mu[j]) * rs[j];
    }
}

// dx_j of rows j < n ≤ kNormGroup from dy_j, the normalised inputs' μ and rstd (γ and β
// gradients: columnSums).
inline void normRowsBackward(int64_t n, const float* const* x, const float* const* dy, const float* g,
                             const float* mu, const float* rs, float* const* dx, int64_t cols, bool rms) {
  double sg[kNormGroup], sgx[kNormGroup];
  if (n == kNormGroup) normGradSums<kNormGroup>(x, dy, g, mu, rs, cols, sg, sgx);
  else
    for (int64_t j = 0; j < n; j++) normGradSums<1>(x + j, dy + j, g, mu + j, rs + j, cols, sg + j, sgx + j);
  for (int64_t j = 0; j < n; j++) {
    const float mg = rms ? 0.f : static_cast<float>(sg[j] / cols), mgx = static_cast<float>(sgx[j] / cols);
    const float *xr = x[j], *dyr = dy[j];
    float* dxr = dx[j];
    const float m = mu[j], r = rs[j];
    for (int64_t c = 0; c < cols; c++) dxr[c] = r * (dyr[c] * g[c] - mg - (xr[c] - m) * r * mgx);
  }
}

// Column sums of a [rows, cols] product, split by column range so threads never share outputs.
template <typename F>
inline void columnSums(int64_t rows, int64_t cols, float* out, int64_t grain, F term) {
#pragma omp parallel if (rows * cols > grain)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t c0 = cols * t / T, c1 = cols * (t + 1) / T;
    std::fill(out + c0, out + c1, 0.f);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = c0; c < c1; c++) out[c] += term(r, c);
  }
}

}  // namespace lowrank
