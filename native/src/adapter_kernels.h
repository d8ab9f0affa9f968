// The adapted linear layer's rank-r products (native/src/adapter.cc): vectorised float32 kernels for
// products with one dimension r ≤ a few dozen, where OpenBLAS packs whole panels for a handful of
// columns. Each output element is summed in a fixed order (8 lanes, then a fixed tree, then the
// tail in order; or a plain sequence), independent of blocking and of the thread count.
#pragma once
#include <omp.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lowrank {

typedef float v8f __attribute__((vector_size(32)));

inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
// The dropout multipliers of 8 mask bytes: 1/keep (kept) or 0, as float32 lanes (byte → 0.f or
// 1.f, times 1/keep: exact). GCC widens the bytes one by one from generic vector code, so AVX2
// builds use vpmovzxbd + vcvtdq2ps.
inline v8f maskMult8(const uint8_t* mask, float kept) {
#ifdef __AVX2__
  const __m256 ones = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mask))));
  v8f out;
  std::memcpy(&out, &ones, sizeof out);
  return out * kept;
#else
  v8f out;
  for (int l = 0; l < 8; l++) out[l] = mask[l] ? kept : 0.f;
  return out;
#endif
}
inline float hsum8(v8f v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// Rows (or column tiles) per OpenMP task below which the adapter products stay on one thread.
constexpr int64_t kAdapterGrain = int64_t(1) << 15;

// The dropped value of x: x·m with m = 1/keep for a kept element, 0 otherwise (tf.dropout's
// multiplier floor(u + keep)/keep, one float32 product as the Multiply kernel).
inline float dropped(float x, const uint8_t* mask, int64_t i, float kept) {
  return mask ? x * (mask[i] ? kept : 0.f) : x;
}

// H[n0 + b, j0 + t] = Σ_c X'[n0 + b, c]·M[j0 + t, c] for b < NB, t < JT (xs: the NB rows, dropped
// already). Each value is the same 8-lane sum, its fixed reduction and the tail in order, whatever
// the blocking, so results do not depend on which block a (row, j) falls in.
template <int NB, int JT>
inline void rowDotsBlock(const float* const* xs, const float* m, float* h, int64_t cols, int64_t r,
                                int64_t j0) {
  v8f acc[NB][JT];
  for (int b = 0; b < NB; b++)
    for (int t = 0; t < JT; t++) acc[b][t] = v8f{};
  int64_t c = 0;
  for (; c + 8 <= cols; c += 8) {
    v8f xv[NB];
    for (int b = 0; b < NB; b++) xv[b] = load8(xs[b] + c);
    for (int t = 0; t < JT; t++) {
      const v8f mv = load8(m + (j0 + t) * cols + c);
      for (int b = 0; b < NB; b++) acc[b][t] += xv[b] * mv;
    }
  }
  for (int b = 0; b < NB; b++)
    for (int t = 0; t < JT; t++) {
      float s = hsum8(acc[b][t]);
      for (int64_t cc = c; cc < cols; cc++) s += xs[b][cc] * m[(j0 + t) * cols + cc];
      h[b * r + j0 + t] = s;
    }
}

// The rows [n0, n0 + NB) of H against every row of M, in blocks of 4 rows of M.
template <int NB>
inline void rowDotsRows(const float* const* xs, const float* m, float* h, int64_t cols, int64_t r) {
  int64_t j = 0;
  for (; j + 4 <= r; j += 4) rowDotsBlock<NB, 4>(xs, m, h, cols, r, j);
  for (; j < r; j++) rowDotsBlock<NB, 1>(xs, m, h, cols, r, j);
}

// H [rows, r] = drop(X) [rows, cols] · Mᵀ (M [r, cols]): one dot product per (row, j), four rows
// at a time so each loaded piece of M serves four rows.
inline void rowDots(const float* x, const uint8_t* mask, float kept, const float* m, float* h, int64_t rows,
                    int64_t cols, int64_t r) {
  constexpr int64_t kRows = 4;
  const int64_t blocks = (rows + kRows - 1) / kRows;
#pragma omp parallel if (rows * cols * r > kAdapterGrain * 64)
  {
    std::vector<float> buf(mask ? kRows * cols : 0);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; blk++) {
      const int64_t n0 = blk * kRows;
      const int64_t nb = std::min(kRows, rows - n0);
      const float* xs[kRows];
      for (int64_t b = 0; b < nb; b++) {
        xs[b] = x + (n0 + b) * cols;
        if (mask) {
          float* d = buf.data() + b * cols;
          const uint8_t* mr = mask + (n0 + b) * cols;
          int64_t c = 0;
          for (; c + 8 <= cols; c += 8) store8(d + c, load8(xs[b] + c) * maskMult8(mr + c, kept));
          for (; c < cols; c++) d[c] = dropped(xs[b][c], mr, c, kept);
          xs[b] = d;
        }
      }
      if (nb == kRows) rowDotsRows<4>(xs, m, h + n0 * r, cols, r);
      else
        for (int64_t b = 0; b < nb; b++) rowDotsRows<1>(xs + b, m, h + (n0 + b) * r, cols, r);
    }
  }
}

// Y[n0 + b, c .. c + 8·CV) += mult·Σ_j H[n0 + b, j]·MT[j, c ..] for b < NB: the sum over j in j order,
// then the product with the multiplier (the mask's 1/keep or 0, or none) and the add, one rounding each.
template <int NB, int CV, bool MK>
inline void rowCombineBlock(const float* h, const float* mt, float* y, const uint8_t* mask, float kept,
                                   int64_t cols, int64_t r, int64_t c) {
  v8f acc[NB][CV];
  for (int b = 0; b < NB; b++)
    for (int q = 0; q < CV; q++) acc[b][q] = v8f{};
  for (int64_t j = 0; j < r; j++) {
    v8f mv[CV];
    for (int q = 0; q < CV; q++) mv[q] = load8(mt + j * cols + c + 8 * q);
    for (int b = 0; b < NB; b++) {
      const float hj = h[b * r + j];
      for (int q = 0; q < CV; q++) acc[b][q] += hj * mv[q];
    }
  }
  for (int b = 0; b < NB; b++)
    for (int q = 0; q < CV; q++) {
      v8f t = acc[b][q];
      const int64_t o = b * cols + c + 8 * q;
      if constexpr (MK) t = t * maskMult8(mask + o, kept);
      store8(y + o, load8(y + o) + t);
    }
}

template <int NB>
inline void rowCombineRows(const float* h, const float* mt, float* y, const uint8_t* mask, float kept,
                                  int64_t cols, int64_t r) {
  int64_t c = 0;
  // the mask test hoisted out of the inner loops (a branch there kept the accumulators in memory)
  for (; c + 32 <= cols; c += 32)
    mask ? rowCombineBlock<NB, 4, true>(h, mt, y, mask, kept, cols, r, c)
         : rowCombineBlock<NB, 4, false>(h, mt, y, mask, kept, cols, r, c);
  for (; c + 8 <= cols; c += 8)
    mask ? rowCombineBlock<NB, 1, true>(h, mt, y, mask, kept, cols, r, c)
         : rowCombineBlock<NB, 1, false>(h, mt, y, mask, kept, cols, r, c);
  for (; c < cols; c++)
    for (int b = 0; b < NB; b++) {
      float s = 0.f;
      for (int64_t j = 0; j < r; j++) s += h[b * r + j] * mt[j * cols + c];
      if (mask) s = s * (mask[b * cols + c] ? kept : 0.f);
      y[b * cols + c] = y[b * cols + c] + s;
    }
}

// Y [rows, cols] += mult ∘ (H [rows, r] · MT [r, cols]); mult = the mask's multiplier or 1. Four
// rows at a time, so each loaded piece of MT serves four rows.
inline void rowCombine(const float* h, const float* mt, float* y, const uint8_t* mask, float kept, int64_t rows,
                       int64_t cols, int64_t r) {
  constexpr int64_t kRows = 4;
  const int64_t blocks = (rows + kRows - 1) / kRows;
#pragma omp parallel for if (rows * cols * r > kAdapterGrain * 64) schedule(static)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t n0 = blk * kRows;
    const int64_t nb = std::min(kRows, rows - n0);
    const uint8_t* mk = mask ? mask + n0 * cols : nullptr;
    if (nb == kRows) rowCombineRows<4>(h + n0 * r, mt, y + n0 * cols, mk, kept, cols, r);
    else
      for (int64_t b = 0; b < nb; b++)
        rowCombineRows<1>(h + (n0 + b) * r, mt, y + (n0 + b) * cols, mk ? mk + b * cols : nullptr, kept, cols, r);
  }
}

// G[j0 + t, c0 .. c0 + 8·CV) += Σ_{n in [n0, n1)} H[n, j0 + t]·drop(X)[n, c0 ..], in row order.
template <int JT, int CV, bool MK>
inline void colReduceTile(const float* x, const uint8_t* mask, float kept, const float* h, float* g,
                                 int64_t n0, int64_t n1, int64_t cols, int64_t r, int64_t c0, int64_t j0) {
  v8f acc[JT][CV];
  for (int t = 0; t < JT; t++)
    for (int q = 0; q < CV; q++) acc[t][q] = load8(g + (j0 + t) * cols + c0 + 8 * q);
  for (int64_t n = n0; n < n1; n++) {
    v8f xv[CV];
    for (int q = 0; q < CV; q++) {
      xv[q] = load8(x + n * cols + c0 + 8 * q);
      if constexpr (MK) xv[q] = xv[q] * maskMult8(mask + n * cols + c0 + 8 * q, kept);
    }
    const float* hr = h + n * r + j0;
    for (int t = 0; t < JT; t++)
      for (int q = 0; q < CV; q++) acc[t][q] += hr[t] * xv[q];
  }
  for (int t = 0; t < JT; t++)
    for (int q = 0; q < CV; q++) store8(g + (j0 + t) * cols + c0 + 8 * q, acc[t][q]);
}

template <int CV, bool MK>
inline void colReduceCols(const float* x, const uint8_t* mask, float kept, const float* h, float* g,
                                 int64_t n0, int64_t n1, int64_t cols, int64_t r, int64_t c0) {
  int64_t j = 0;
  for (; j + 8 <= r; j += 8) colReduceTile<8, CV, MK>(x, mask, kept, h, g, n0, n1, cols, r, c0, j);
  for (; j + 4 <= r; j += 4) colReduceTile<4, CV, MK>(x, mask, kept, h, g, n0, n1, cols, r, c0, j);
  for (; j < r; j++) colReduceTile<1, CV, MK>(x, mask, kept, h, g, n0, n1, cols, r, c0, j);
}

// G [r, cols] = Hᵀ [r, rows] · drop(X) [rows, cols]. Threads own column ranges (16-wide tiles) and
// walk the rows in blocks, so a block of X is read from cache by every tile of the range; each
// element is summed over the rows in order (no cross-thread reduction: no dependence on threads).
inline void colReduce(const float* x, const uint8_t* mask, float kept, const float* h, float* g, int64_t rows,
                      int64_t cols, int64_t r) {
  constexpr int64_t kRowBlock = 64;
  std::fill(g, g + r * cols, 0.f);
  const int64_t tiles = cols / 16;
#pragma omp parallel if (rows * cols * r > kAdapterGrain * 64)
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t t0 = tiles * id / nt, t1 = tiles * (id + 1) / nt;
    for (int64_t n0 = 0; n0 < rows; n0 += kRowBlock) {
      const int64_t n1 = std::min(rows, n0 + kRowBlock);
      for (int64_t tile = t0; tile < t1; tile++)
        mask ? colReduceCols<2, true>(x, mask, kept, h, g, n0, n1, cols, r, tile * 16)
             : colReduceCols<2, false>(x, mask, kept, h, g, n0, n1, cols, r, tile * 16);
    }
  }
  int64_t c = tiles * 16;
  for (; c + 8 <= cols; c += 8)
    for (int64_t n0 = 0; n0 < rows; n0 += kRowBlock)
      mask ? colReduceCols<1, true>(x, mask, kept, h, g, n0, std::min(rows, n0 + kRowBlock), cols, r, c)
           : colReduceCols<1, false>(x, mask, kept, h, g, n0, std::min(rows, n0 + kRowBlock), cols, r, c);
  for (; c < cols; c++)  // the last cols % 8 columns
    for (int64_t j = 0; j < r; j++) {
      float s = 0.f;
      for (int64_t n = 0; n < rows; n++) s += h[n * r + j] * dropped(x[n * cols + c], mask, n * cols + c, kept);
      g[j * cols + c] = s;
    }
}

}  // namespace lowrank
