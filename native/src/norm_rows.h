// One row of layer / RMS norm forward and backward, and per-column sums, shared by the norm
// kernels (fused.cc) and the fused dropout + residual add + layer norm (add_norm.cc), so both run
// the same float32 arithmetic in the same order and give the same bits.
#pragma once
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace lowrank {

// Normalises one row: o = (x − μ)·rstd·γ + β (RMS: μ = 0, no β); writes μ and rstd.
inline void normRowForward(const float* xr, const float* g, const float* b, float* orow, int64_t cols, float eps,
                           bool rms, float* meanOut, float* rstdOut) {
  double s = 0;
  if (!rms) for (int64_t c = 0; c < cols; c++) s += xr[c];
  const float mu = rms ? 0.f : static_cast<float>(s / cols);
  double v = 0;
  for (int64_t c = 0; c < cols; c++) { const float d = xr[c] - mu; v += d * d; }
  const float rs = 1.f / std::sqrt(static_cast<float>(v / cols) + eps);
  *meanOut = mu;
  *rstdOut = rs;
  for (int64_t c = 0; c < cols; c++) orow[c] = (xr[c] - mu) * rs * g[c] + (b ? b[c] : 0.f);
}

// dx of one row from dy, the normalised input's μ and rstd (γ and β gradients: columnSums).
inline void normRowBackward(const float* xr, const float* dyr, const float* g, float mu, float rs, float* dxr,
                            int64_t cols, bool rms) {
  double sg = 0, sgx = 0;  // Σ dy·γ and Σ dy·γ·x̂ over the row
  for (int64_t c = 0; c < cols; c++) {
    const float gc = dyr[c] * g[c];
    sg += gc;
    sgx += gc * (xr[c] - mu) * rs;
  }
  const float mg = rms ? 0.f : static_cast<float>(sg / cols), mgx = static_cast<float>(sgx / cols);
  for (int64_t c = 0; c < cols; c++) dxr[c] = rs * (dyr[c] * g[c] - mg - (xr[c] - mu) * rs * mgx);
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
