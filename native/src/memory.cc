// The C allocator's side of process memory (glibc). Typed-array memory of freed tensors goes back to
// malloc, which keeps most of it: chunks below the mmap threshold live in the heap and arenas, and
// glibc raises that threshold (up to 32 MB on 64-bit) each time a larger mmapped chunk is freed, so
// after a load or a training step tens to hundreds of MB of free heap stay resident. malloc_trim(0)
// returns every free page of every arena to the kernel (madvise), not only the top of the heap.
#include "common.h"
#include <v8.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#include <cstdint>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lowrank {

// mallocTrim() → true when glibc released memory, false when it had none to give back (or on a
// C library without malloc_trim, where it does nothing).
static Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

// mallocStats() → { heapBytes, freeBytes, mmapBytes }: bytes glibc holds from the kernel in its
// arenas (in use or free), of those the free ones, and bytes in directly mmapped chunks. Zeros
// without glibc.
static Napi::Value MallocStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  double heap = 0, free = 0, mmapped = 0;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 m = mallinfo2();
  heap = static_cast<double>(m.arena);
  free = static_cast<double>(m.fordblks);
  mmapped = static_cast<double>(m.hblkhd);
#endif
  o.Set("heapBytes", heap);
  o.Set("freeBytes", free);
  o.Set("mmapBytes", mmapped);
  return o;
}

// lowMemoryNotification(): tells V8 the system is low on memory (v8::Isolate::LowMemoryNotification).
// V8 then runs full collections in its memory-reducing mode, which, unlike the collection `gc()`
// starts, also shrinks the young generation back to its initial size and unmaps pooled pages. The
// young generation grows to 16 MB × 2 semi-spaces under allocation-heavy work (a model load) and stays
// that size, resident, until V8's memory reducer runs after seconds of idleness. This is the one V8 API
// call of the addon (Node-API has no equivalent); node-gyp builds it against the running Node's headers.
static Napi::Value LowMemoryNotification(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->LowMemoryNotification();
  return info.Env().Undefined();
}

// discardPages(buffer: ArrayBuffer) → bytes: gives the physical pages of a buffer nobody reads any
// more back to the kernel now (madvise MADV_DONTNEED on the whole pages inside it), instead of when
// V8 collects the ArrayBuffer and malloc frees and trims its memory — which can be hundreds of MB and
// seconds later in a training step. The buffer stays valid: its discarded pages read as zeros and are
// faulted in again on the next write (what a fresh allocation costs). Only the pages entirely inside
// [data, data + length) are touched, so malloc's chunk headers around the buffer are never zeroed.
// Returns 0 off Linux or when the buffer spans no whole page.
static Napi::Value DiscardPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 1, "discardPages")) return env.Undefined();
  if (!info[0].IsArrayBuffer()) {
    Napi::TypeError::New(env, "internal: native discardPages expects an ArrayBuffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  double discarded = 0;
#if defined(__linux__)
  Napi::ArrayBuffer buf = info[0].As<Napi::ArrayBuffer>();
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(buf.Data());
  const uintptr_t start = (begin + page - 1) & ~(page - 1);
  const uintptr_t end = (begin + buf.ByteLength()) & ~(page - 1);
  if (buf.Data() != nullptr && end > start &&
      madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED) == 0)
    discarded = static_cast<double>(end - start);
#endif
  return Napi::Number::New(env, discarded);
}

void registerMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("discardPages", Napi::Function::New(env, DiscardPages));
  exports.Set("lowMemoryNotification", Napi::Function::New(env, LowMemoryNotification));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim));
  exports.Set("mallocStats", Napi::Function::New(env, MallocStats));
}

}  // namespace lowrank
