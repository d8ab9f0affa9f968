// Entry point of the lowrank native addon: thread control, build info, and kernel registration.
#include "common.h"
#include <cblas.h>
#include <omp.h>
#include <thread>
#include <cstdlib>

namespace lowrank {

// Sets the thread count of both OpenBLAS (GEMM) and OpenMP (every other kernel).
static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  if (badArgs(info, 1, "setThreads")) return info.Env().Undefined();
  int n = static_cast<int>(num(info, 0));
  if (n < 1) n = 1;
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
  return info.Env().Undefined();
}

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("blas", std::string(openblas_get_config()));
  o.Set("blasCore", std::string(openblas_get_corename()));
  o.Set("threads", openblas_get_num_threads());
  o.Set("ompThreads", omp_get_max_threads());
  o.Set("cores", static_cast<double>(std::thread::hardware_concurrency()));
  o.Set("parallelGrain", static_cast<double>(kParallelGrain));
  return o;
}

void registerDequant(Napi::Env env, Napi::Object exports);  // dequant.cc (QLoRA 4-bit weights)
void registerRandom(Napi::Env env, Napi::Object exports);   // random.cc (dropout)
void registerDecode(Napi::Env env, Napi::Object exports);   // decode.cc (native token decoding)
void registerMemory(Napi::Env env, Napi::Object exports);   // memory.cc (malloc_trim, allocator stats)
void registerAdalora(Napi::Env env, Napi::Object exports);  // adalora.cc (orthogonal regulariser)
void registerAttention(Napi::Env env, Napi::Object exports);  // attention.cc (fused multi-head attention)
void registerAddNorm(Napi::Env env, Napi::Object exports);    // add_norm.cc (dropout + residual + layer norm)
void registerAdapter(Napi::Env env, Napi::Object exports);    // adapter.cc (the adapted linear layer)

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (const char* grain = std::getenv("LOWRANK_PARALLEL_GRAIN")) {
    const long long g = std::atoll(grain);
    if (g > 0) kParallelGrain = g;
  }
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("info", Napi::Function::New(env, Info));
  registerGemm(env, exports);
  registerElementwise(env, exports);
  registerReduce(env, exports);
  registerLayout(env, exports);
  registerFused(env, exports);
  registerGelu(env, exports);
  registerDequant(env, exports);
  registerRandom(env, exports);
  registerDecode(env, exports);
  registerMemory(env, exports);
  registerAdalora(env, exports);
  registerAttention(env, exports);
  registerAddNorm(env, exports);
  registerAdapter(env, exports);
  return exports;
}

}  // namespace lowrank

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return lowrank::Init(env, exports); }

NODE_API_MODULE(lowrank_native, InitAddon)
