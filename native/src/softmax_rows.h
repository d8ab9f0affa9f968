// Softmax rows forward and backward, shared by the fused attention kernels (attention.cc) and the
// masked softmax / softmax gradient kernels (fused.cc), so both give the same bits.
//  - forward: s = x·scale + mask (one rounding: the multiply-add contracts to an FMA), m = max s,
//    e = exp(s − m) (vecmath.h), Σ e left to right from 0, then e · (1/Σ).
//  - backward: dot = Σ dy·y left to right, each product rounded before it is added; then
//    dx = scale·y·(dy − dot).
// Vectorised without changing those bits: the maximum is exact in any order, so it runs in 16
// lanes; each sequential sum keeps its order but up to kRowGroup rows run side by side, so the
// adds of different rows overlap instead of each waiting ~4 cycles on the one before.
#pragma once
#include "vecmath.h"
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace lowrank {

constexpr int64_t kRowGroup = 8;  // rows whose sequential sums run interleaved
constexpr int kMaxLanes = 16;     // lanes of the order-free row maximum

// max over x[0..n) (−inf when n = 0); NaNs are skipped, as a running std::max skips them.
inline float rowMax(const float* x, int64_t n) {
  float lane[kMaxLanes];
  std::fill(lane, lane + kMaxLanes, -INFINITY);
  int64_t c = 0;
  for (; c + kMaxLanes <= n; c += kMaxLanes)
    for (int j = 0; j < kMaxLanes; j++) lane[j] = std::max(lane[j], x[c + j]);
  float mx = -INFINITY;
  for (; c < n; c++) mx = std::max(mx, x[c]);
  for (int j = 0; j < kMaxLanes; j++) mx = std::max(mx, lane[j]);
  return mx;
}

// o ← x·scale + mask, the mask read with stride ms (0: one value for the row; null: no mask);
// returns max o. x and o may be the same row.
inline float scaleMask(const float* x, float* o, int64_t n, float scale, const float* mr, int64_t ms) {
  if (!mr) {
    for (int64_t c = 0; c < n; c++) o[c] = x[c] * scale + 0.f;
  } else if (ms == 1) {
    for (int64_t c = 0; c < n; c++) o[c] = x[c] * scale + mr[c];
  } else if (ms == 0) {
    const float m = mr[0];
    for (int64_t c = 0; c < n; c++) o[c] = x[c] * scale + m;
  } else {
    for (int64_t c = 0; c < n; c++) o[c] = x[c] * scale + mr[c * ms];
  }
  return rowMax(o, n);
}

// out[j] = Σ_c x_j[c] left to right from 0.f, for R rows side by side.
template <int R>
inline void rowSums(const float* const* x, int64_t n, float* out) {
  float acc[R];
  std::fill(acc, acc + R, 0.f);
  for (int64_t c = 0; c < n; c++)
    for (int j = 0; j < R; j++) acc[j] += x[j][c];
  std::copy(acc, acc + R, out);
}

// out[j] = Σ_c x_j[c]·y_j[c] left to right, each product rounded before it is added (contraction
// is off here, so the rounding does not depend on how the compiler vectorises the loop).
template <int R>
__attribute__((noinline, optimize("fp-contract=off"))) void rowDots(const float* const* x, const float* const* y,
                                                                   int64_t n, float* out) {
  float acc[R];
  std::fill(acc, acc + R, 0.f);
  for (int64_t c = 0; c < n; c++)
    for (int j = 0; j < R; j++) acc[j] += x[j][c] * y[j][c];
  std::copy(acc, acc + R, out);
}

// o_j = softmax(x_j·scale + mask_j) for rows j < rows ≤ kRowGroup (x_j may be o_j; mask_j null
// for no mask, read with stride ms).
inline void softmaxRows(int64_t rows, const float* const* x, float* const* o, const float* const* mask, int64_t ms,
                        int64_t n, float scale) {
  float sums[kRowGroup];
  for (int64_t j = 0; j < rows; j++) {
    const float mx = scaleMask(x[j], o[j], n, scale, mask[j], ms);
    float* oj = o[j];
    for (int64_t c = 0; c < n; c++) oj[c] = vexp(oj[c] - mx);
  }
  if (rows == kRowGroup) rowSums<kRowGroup>(o, n, sums);
  else
    for (int64_t j = 0; j < rows; j++) rowSums<1>(o + j, n, sums + j);
  for (int64_t j = 0; j < rows; j++) {
    float* oj = o[j];
    const float inv = 1.f / sums[j];
    for (int64_t c = 0; c < n; c++) oj[c] *= inv;
  }
}

// dx_j = scale·y_j⊙(dy_j − Σ dy_j⊙y_j) for rows j < rows ≤ kRowGroup (dx_j may be dy_j).
inline void softmaxGradRows(int64_t rows, const float* const* y, const float* const* dy, float* const* dx,
                            int64_t n, float scale) {
  float dots[kRowGroup];
  if (rows == kRowGroup) rowDots<kRowGroup>(dy, y, n, dots);
  else
    for (int64_t j = 0; j < rows; j++) rowDots<1>(dy + j, y + j, n, dots + j);
  for (int64_t j = 0; j < rows; j++) {
    const float *yj = y[j], *dyj = dy[j];
    float* dxj = dx[j];
    const float dot = dots[j];
    for (int64_t c = 0; c < n; c++) dxj[c] = scale * yj[c] * (dyj[c] - dot);
  }
}

}  // namespace lowrank
