// Batched matrix multiply over OpenBLAS cblas_sgemm, with optional bias and activation fused in
// (tfjs BatchMatMul and _FusedMatMul).
#include "common.h"
#include <cblas.h>
#include <cmath>
#include <algorithm>

namespace lowrank {

constexpr int64_t kGemmGrainFactor = 32;

enum Activation { kLinear = 0, kRelu = 1, kRelu6 = 2, kElu = 3, kLeakyRelu = 4, kSigmoid = 5 };

static void applyActivation(float* c, int64_t n, int act, float alpha) {
  if (act == kLinear) return;
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float v = c[i];
    switch (act) {
      case kRelu: v = v > 0.f ? v : 0.f; break;
      case kRelu6: v = std::min(std::max(v, 0.f), 6.f); break;
      case kElu: v = v > 0.f ? v : std::expm1(v); break;
      case kLeakyRelu: v = v > 0.f ? v : alpha * v; break;
      case kSigmoid: v = 1.f / (1.f + std::exp(-v)); break;
      default: break;
    }
    c[i] = v;
  }
}

// Fills each [m, n] output block with the bias (a row vector of length n, or a scalar) so that
// sgemm can accumulate into it with beta = 1.
static void fillBias(float* c, int64_t rows, int64_t n, const float* bias, int64_t biasLen) {
#pragma omp parallel for if (rows * n > kParallelGrain) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    float* row = c + r * n;
    if (biasLen == 1) std::fill(row, row + n, bias[0]);
    else std::copy(bias, bias + n, row);
  }
}

// batchMatMul(a, b, out, m, n, k, transA, transB, aOffsets, bOffsets, bias|null, act, alpha)
// out[i] = act(op(a[aOffsets[i]]) · op(b[bOffsets[i]]) + bias) for every output batch i.
static Napi::Value BatchMatMul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 13, "batchMatMul")) return env.Undefined();
  const float* a = f32(info[0]);
  const float* b = f32(info[1]);
  float* c = f32(info[2]);
  const int64_t m = num(info, 3), n = num(info, 4), k = num(info, 5);
  const bool ta = info[6].As<Napi::Boolean>().Value(), tb = info[7].As<Napi::Boolean>().Value();
  Raw ao = raw(info[8]), bo = raw(info[9]);
  const int32_t* aOff = static_cast<int32_t*>(ao.data);
  const int32_t* bOff = static_cast<int32_t*>(bo.data);
  const int64_t batch = static_cast<int64_t>(ao.length);
  const bool hasBias = info[10].IsTypedArray();
  const int act = static_cast<int>(num(info, 11));
  const float alpha = static_cast<float>(dbl(info, 12));
  if (m == 0 || n == 0 || batch == 0) return env.Undefined();
  float beta = 0.f;
  if (hasBias) {
    Raw br = raw(info[10]);
    fillBias(c, batch * m, n, static_cast<float*>(br.data), static_cast<int64_t>(br.length));
    beta = 1.f;
  } else if (k == 0) {
    std::fill(c, c + batch * m * n, 0.f);
  }
  const CBLAS_TRANSPOSE opA = ta ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE opB = tb ? CblasTrans : CblasNoTrans;
  const int lda = ta ? m : k, ldb = tb ? k : n;
  // One shared, un-transposed right operand with contiguous left blocks is a single tall GEMM:
  // [batch·m, k]·[k, n] runs far faster than `batch` small calls.
  bool contiguousA = !ta && batch > 1;
  for (int64_t i = 0; contiguousA && i < batch; i++)
    contiguousA = aOff[i] == i * m * k && bOff[i] == bOff[0];
  const bool perThread = !contiguousA && batch > 1 && m * n * k <= kSmallGemm;
  if (k > 0 && perThread) {
    // Many small products (attention's [B·H] blocks): one single-threaded sgemm per OpenMP thread
    // beats letting OpenBLAS fork and join its own threads for every small call. Below
    // kGemmGrainFactor·kParallelGrain multiply-adds in all (a GEMM does ~30 of them in the time an
    // elementwise loop handles one element) the whole batch is cheaper than waking a thread.
    const SerialBlas serial(SerialBlas::kWorkers);
#pragma omp parallel for if (batch * m * n * k > kGemmGrainFactor * kParallelGrain) schedule(static)
    for (int64_t i = 0; i < batch; i++)
      cblas_sgemm(CblasRowMajor, opA, opB, m, n, k, 1.f, a + aOff[i], lda, b + bOff[i], ldb, beta,
                  c + i * m * n, n);
  } else if (k > 0) {
    // Small products in all run on the calling thread: OpenBLAS wakes its worker threads for any
    // product above ~2^18 multiply-adds, and (pthreads build) they then spin for a while after.
    const SerialBlas serial(SerialBlas::kCaller, batch * m * n * k <= kSmallGemm);
    if (contiguousA) {
      cblas_sgemm(CblasRowMajor, opA, opB, batch * m, n, k, 1.f, a, lda, b + bOff[0], ldb, beta, c, n);
    } else {
      for (int64_t i = 0; i < batch; i++)
        cblas_sgemm(CblasRowMajor, opA, opB, m, n, k, 1.f, a + aOff[i], lda, b + bOff[i], ldb, beta,
                    c + i * m * n, n);
    }
  }
  applyActivation(c, batch * m * n, act, alpha);
  return env.Undefined();
}

// sgemm(a, b, out, m, n, k, transA, transB): one plain cblas_sgemm call, for the benchmark's
// "BLAS called directly" baseline.
static Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 8, "sgemm")) return env.Undefined();
  const int64_t m = num(info, 3), n = num(info, 4), k = num(info, 5);
  const bool ta = info[6].As<Napi::Boolean>().Value(), tb = info[7].As<Napi::Boolean>().Value();
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.f,
              f32(info[0]), ta ? m : k, f32(info[1]), tb ? k : n, 0.f, f32(info[2]), n);
  return env.Undefined();
}

void registerGemm(Napi::Env env, Napi::Object exports) {
  exports.Set("batchMatMul", Napi::Function::New(env, BatchMatMul));
  exports.Set("sgemm", Napi::Function::New(env, Sgemm));
}

}  // namespace lowrank
