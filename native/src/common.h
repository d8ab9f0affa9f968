// Shared helpers for the lowrank native kernels: typed-array access and argument checks.
// Every kernel reads and writes the TypedArrays that tfjs-backend-cpu keeps for each tensor, so
// nothing is copied across the JS/C++ boundary.
#pragma once
#include <napi.h>
#include <cblas.h>
#include <cstdint>
#include <cstddef>

namespace lowrank {

// Element count above which a loop is split across OpenMP threads; below it the fork/join cost
// (waking passive, sleeping workers: see OMP_WAIT_POLICY in addon.ts) outweighs the work. Set once
// when the addon loads, from LOWRANK_PARALLEL_GRAIN when given (for tuning; see addon.cc).
inline int64_t kParallelGrain = int64_t(1) << 16;

// OpenBLAS comes in a pthreads build (its own worker threads) and an OpenMP build (our OpenMP
// pool); openblas_get_parallel() says which (1 and 2). In the OpenMP build
// openblas_set_num_threads(n) also calls omp_set_num_threads(n), and a GEMM called from inside an
// OpenMP parallel region already runs on the calling thread alone.
inline bool blasUsesOpenMP() {
  static const bool openmp = openblas_get_parallel() == 2;
  return openmp;
}

// Per-product work (m·n·k) up to which a GEMM runs on one thread: batched products one per OpenMP
// thread, single products on the calling thread (BatchMatMul in gemm.cc, the adapter's base GEMM).
constexpr int64_t kSmallGemm = int64_t(1) << 22;

// Runs OpenBLAS on one thread for the guard's lifetime and restores the count after.
//  - SerialBlas::kCaller: GEMMs called on this thread (small products not worth waking workers).
//  - SerialBlas::kWorkers: GEMMs called from our OpenMP workers, one per thread; only the pthreads
//    build needs the cap (the OpenMP build serialises nested calls itself, and capping it would
//    shrink the OpenMP region that follows to one thread).
class SerialBlas {
 public:
  enum Scope { kCaller, kWorkers };
  explicit SerialBlas(Scope scope, bool when = true)
      : active_(when && (scope == kCaller || !blasUsesOpenMP())), saved_(openblas_get_num_threads()) {
    if (active_) openblas_set_num_threads(1);
  }
  ~SerialBlas() {
    if (active_) openblas_set_num_threads(saved_);
  }
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  bool active_;
  int saved_;
};

struct Raw {
  void* data;
  size_t length;  // elements
};

// Raw pointer and element count of any TypedArray argument (float32, int32, uint8 views alike).
inline Raw raw(const Napi::Value& v) {
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  Napi::ArrayBuffer buf = t.ArrayBuffer();
  uint8_t* base = static_cast<uint8_t*>(buf.Data()) + t.ByteOffset();
  return Raw{static_cast<void*>(base), t.ElementLength()};
}

inline float* f32(const Napi::Value& v) { return static_cast<float*>(raw(v).data); }
inline int32_t* i32(const Napi::Value& v) { return static_cast<int32_t*>(raw(v).data); }
inline uint8_t* u8(const Napi::Value& v) { return static_cast<uint8_t*>(raw(v).data); }
inline int64_t num(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int64_t>(info[i].As<Napi::Number>().DoubleValue());
}
inline double dbl(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }

// Throws a JS TypeError and returns true when fewer than `n` arguments arrived (JS side bug).
inline bool badArgs(const Napi::CallbackInfo& info, size_t n, const char* name) {
  if (info.Length() >= n) return false;
  Napi::TypeError::New(info.Env(), std::string("internal: native ") + name + " expects " +
                                       std::to_string(n) + " arguments").ThrowAsJavaScriptException();
  return true;
}

void registerGemm(Napi::Env env, Napi::Object exports);
void registerElementwise(Napi::Env env, Napi::Object exports);
void registerReduce(Napi::Env env, Napi::Object exports);
void registerLayout(Napi::Env env, Napi::Object exports);
void registerFused(Napi::Env env, Napi::Object exports);
void registerGelu(Napi::Env env, Napi::Object exports);  // gelu.cc (compiled with 512-bit vectors)

}  // namespace lowrank
