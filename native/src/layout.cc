// Data-movement kernels. One strided copy serves Transpose, Slice, StridedSlice, Tile, Pad,
// ConcatV2 and BroadcastTo (the TypeScript side expresses each as shapes and strides);
// plus GatherV2 and UnsortedSegmentSum.
#include "common.h"
#include <cstring>
#include <omp.h>
#include <algorithm>

namespace lowrank {

// Copies a `shape`-sized box from src (strides ss, offset so) to dst (strides ds, offset dof).
// The innermost dim is copied by a loop specialised for unit strides; 2-D transposes are tiled
// so both sides stay in cache.
template <typename T>
static void copyStrided(const T* src, T* dst, const int32_t* shape, const int64_t* ss, const int64_t* ds,
                        int rank) {
  int64_t total = 1;
  for (int d = 0; d < rank; d++) total *= shape[d];
  if (total == 0) return;
  if (rank == 2 && ss[0] == 1 && ds[1] == 1 && shape[0] >= 16 && shape[1] >= 16) {
    constexpr int64_t kTile = 32;
    const int64_t R = shape[0], C = shape[1];
#pragma omp parallel for collapse(2) if (total > kParallelGrain) schedule(static)
    for (int64_t r0 = 0; r0 < R; r0 += kTile)
      for (int64_t c0 = 0; c0 < C; c0 += kTile)
        for (int64_t r = r0; r < std::min(R, r0 + kTile); r++)
          for (int64_t c = c0; c < std::min(C, c0 + kTile); c++) dst[r * ds[0] + c] = src[r + c * ss[1]];
    return;
  }
  const int64_t inner = shape[rank - 1];
  const int64_t rows = total / inner;
  const int64_t si = ss[rank - 1], di = ds[rank - 1];
#pragma omp parallel for if (total > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rem = r, so = 0, dof = 0;
    for (int d = rank - 2; d >= 0; d--) {
      const int64_t idx = rem % shape[d];
      rem /= shape[d];
      so += idx * ss[d];
      dof += idx * ds[d];
    }
    const T* s = src + so;
    T* o = dst + dof;
    if (si == 1 && di == 1) std::memcpy(o, s, inner * sizeof(T));
    else if (si == 0 && di == 1) std::fill(o, o + inner, s[0]);
    else for (int64_t i = 0; i < inner; i++) o[i * di] = s[i * si];
  }
}

// copy(src, dst, shape, srcStrides, srcOffset, dstStrides, dstOffset, elemBytes)
static Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 8, "copy")) return env.Undefined();
  Raw sh = raw(info[2]);
  const int rank = static_cast<int>(sh.length);
  const int32_t* shape = static_cast<int32_t*>(sh.data);
  const int32_t* ss32 = i32(info[3]);
  const int32_t* ds32 = i32(info[5]);
  const int64_t so = num(info, 4), dof = num(info, 6), bytes = num(info, 7);
  int64_t ss[16], ds[16];
  if (rank < 1 || rank > 16) {
    Napi::TypeError::New(env, "internal: native copy supports rank 1..16").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (int d = 0; d < rank; d++) { ss[d] = ss32[d]; ds[d] = ds32[d]; }
  if (bytes == 4) {
    const int32_t* s = static_cast<int32_t*>(raw(info[0]).data) + so;
    int32_t* d = static_cast<int32_t*>(raw(info[1]).data) + dof;
    copyStrided<int32_t>(s, d, shape, ss, ds, rank);
  } else {
    const uint8_t* s = static_cast<uint8_t*>(raw(info[0]).data) + so;
    uint8_t* d = static_cast<uint8_t*>(raw(info[1]).data) + dof;
    copyStrided<uint8_t>(s, d, shape, ss, ds, rank);
  }
  return env.Undefined();
}

// gather(x, indices, out, outer, axisSize, inner, elemBytes) → out [outer, nIdx, inner].
// Returns the first out-of-range index, or -1 when all are valid (tfjs throws on bad indices).
static Napi::Value Gather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 7, "gather")) return env.Undefined();
  Raw ir = raw(info[1]);
  const int32_t* idx = static_cast<int32_t*>(ir.data);
  const int64_t nIdx = static_cast<int64_t>(ir.length);
  const int64_t outer = num(info, 3), axis = num(info, 4), inner = num(info, 5), bytes = num(info, 6);
  for (int64_t j = 0; j < nIdx; j++)
    if (idx[j] < 0 || idx[j] >= axis) return Napi::Number::New(env, idx[j]);
  const uint8_t* x = static_cast<uint8_t*>(raw(info[0]).data);
  uint8_t* o = static_cast<uint8_t*>(raw(info[2]).data);
  const int64_t rowBytes = inner * bytes;
#pragma omp parallel for collapse(2) if (outer * nIdx * inner > kParallelGrain) schedule(static)
  for (int64_t b = 0; b < outer; b++)
    for (int64_t j = 0; j < nIdx; j++)
      std::memcpy(o + (b * nIdx + j) * rowBytes, x + (b * axis + idx[j]) * rowBytes, rowBytes);
  return Napi::Number::New(env, -1);
}

// segmentSum(data, ids, out, numSegments, inner): out[ids[i]] += data[i] (rows of `inner`);
// out arrives zero-filled; ids outside [0, numSegments) are dropped as in TensorFlow.
static Napi::Value SegmentSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 5, "segmentSum")) return env.Undefined();
  const float* x = f32(info[0]);
  Raw ir = raw(info[1]);
  const int32_t* ids = static_cast<int32_t*>(ir.data);
  float* o = f32(info[2]);
  const int64_t nSeg = num(info, 3), inner = num(info, 4), n = static_cast<int64_t>(ir.length);
  // Parallel over columns: every thread owns a slice of each output row, so no two threads write
  // the same element and the summation order matches the sequential one.
#pragma omp parallel if (n * inner > kParallelGrain)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t c0 = inner * t / T, c1 = inner * (t + 1) / T;
    for (int64_t i = 0; i < n; i++) {
      if (ids[i] < 0 || ids[i] >= nSeg) continue;
      float* orow = o + ids[i] * inner;
      const float* xrow = x + i * inner;
      for (int64_t c = c0; c < c1; c++) orow[c] += xrow[c];
    }
  }
  return env.Undefined();
}

void registerLayout(Napi::Env env, Napi::Object exports) {
  exports.Set("copy", Napi::Function::New(env, Copy));
  exports.Set("gather", Napi::Function::New(env, Gather));
  exports.Set("segmentSum", Napi::Function::New(env, SegmentSum));
}

}  // namespace lowrank
