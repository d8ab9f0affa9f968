// Blockwise 4-bit dequantisation (NF4 / FP4, QLoRA): the frozen weight of a 4-bit linear layer is
// decoded from its packed codes in every forward (src/tensor/quant/op.ts; bitsandbytes'
// kDequantizeBlockwise does the same on CUDA). Bit-exact with the TypedArray loop of
// src/tensor/quant/blockwise.ts: every value is one f32 multiply `code[idx] * absmax[block]`, and
// under double quantisation `absmax[block] = code8[q[block]] * absmax2[block / 256] + offset` is one
// f32 multiply then one f32 add, never fused (see the pragma below).
#include "common.h"
#include "nibble.h"
#include <omp.h>

// -O3 -march=native may contract `a * b + c` into an FMA (GCC's default -ffp-contract=fast), which
// rounds once instead of twice and would differ from the JS path in the last bit.
#pragma GCC optimize("fp-contract=off")

namespace lowrank {

// Absmax of 4-bit block `b`: plain f32, or decoded from its 8-bit double-quantisation code.
struct Absmax {
  const float* plain;    // [nBlocks] or null
  const uint8_t* q;      // [nBlocks] 8-bit codes (double quantisation) or null
  const float* absmax2;  // [ceil(nBlocks / nestedBlocksize)]
  const float* code8;    // [256] signed dynamic map
  float offset;
  int64_t nestedBlocksize;

  float operator()(int64_t b) const {
    if (plain) return plain[b];
    const float scaled = code8[q[b]] * absmax2[b / nestedBlocksize];
    return scaled + offset;
  }
};

// Decodes elements [start, end) of one block (start even) with scale `a`. The 16 products
// code[k] * a are the same f32 multiplies the JS loop does, computed once per block; the codes are
// then looked up 16 at a time (nibble.h).
static void decodeBlock(const uint8_t* packed, const float* code, float a, int64_t start, int64_t end,
                        float* out) {
  float lut[16];
  for (int k = 0; k < 16; k++) lut[k] = code[k] * a;
  const int64_t pairs = (end - start) / 2;
  decodeNibbles(packed + (start >> 1), pairs, lut, out + start);
  const int64_t i = start + 2 * pairs;
  if (i < end) out[i] = lut[packed[i >> 1] >> 4];  // odd total length: the last low nibble is padding
}

// dequantize4bit(packed u8, code f32[16], absmax f32|null, nestedQ u8|null, absmax2 f32|null,
//                code8 f32|null, offset, blocksize, nestedBlocksize, out f32[numel])
static Napi::Value Dequantize4bit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (badArgs(info, 10, "dequantize4bit")) return env.Undefined();
  const Raw packed = raw(info[0]);
  const Raw code = raw(info[1]);
  const bool nested = info[2].IsNull();
  const int64_t blocksize = num(info, 7);
  const Raw out = raw(info[9]);
  const int64_t numel = static_cast<int64_t>(out.length);
  const int64_t nBlocks = blocksize > 0 ? (numel + blocksize - 1) / blocksize : 0;
  Absmax absmax{nullptr, nullptr, nullptr, nullptr, static_cast<float>(dbl(info, 6)), num(info, 8)};
  bool ok = blocksize > 0 && blocksize % 2 == 0 && code.length == 16 &&
            static_cast<int64_t>(packed.length) * 2 >= numel;
  if (nested) {
    const Raw q = raw(info[3]), a2 = raw(info[4]), c8 = raw(info[5]);
    ok = ok && absmax.nestedBlocksize > 0 && static_cast<int64_t>(q.length) >= nBlocks &&
         static_cast<int64_t>(a2.length) * absmax.nestedBlocksize >= nBlocks && c8.length == 256;
    absmax.q = static_cast<const uint8_t*>(q.data);
    absmax.absmax2 = static_cast<const float*>(a2.data);
    absmax.code8 = static_cast<const float*>(c8.data);
  } else {
    const Raw a = raw(info[2]);
    ok = ok && static_cast<int64_t>(a.length) >= nBlocks;
    absmax.plain = static_cast<const float*>(a.data);
  }
  if (!ok) {
    Napi::TypeError::New(env, "internal: native dequantize4bit got inconsistent array lengths")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const uint8_t* p = static_cast<const uint8_t*>(packed.data);
  const float* c = static_cast<const float*>(code.data);
  float* o = static_cast<float*>(out.data);
#pragma omp parallel for if (numel > kParallelGrain) schedule(static)
  for (int64_t b = 0; b < nBlocks; b++) {
    const int64_t start = b * blocksize;
    const int64_t end = start + blocksize < numel ? start + blocksize : numel;
    decodeBlock(p, c, absmax(b), start, end, o);
  }
  return env.Undefined();
}

void registerDequant(Napi::Env env, Napi::Object exports) {
  exports.Set("dequantize4bit", Napi::Function::New(env, Dequantize4bit));
}

}  // namespace lowrank
