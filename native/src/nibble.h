// Decoding packed 4-bit codes through a 16-entry table (NF4 / FP4, QLoRA): byte i holds element 2i in
// its high nibble and 2i + 1 in its low one. The AVX2 path looks 16 elements up at once (two 8-entry
// permutes and a blend on the index's bit 3); every output is a copy of a table entry, so it is
// bit-identical to the scalar loop (src/tensor/quant/native.test.ts checks it against the JS loop).
#pragma once
#include <cstdint>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace lowrank {

// out[0 .. 2·nBytes) = lut[nibbles of bytes[0 .. nBytes)], high nibble first.
inline void decodeNibbles(const uint8_t* bytes, int64_t nBytes, const float* lut, float* out) {
  int64_t i = 0;
#if defined(__AVX2__)
  const __m256 lo = _mm256_loadu_ps(lut), hi = _mm256_loadu_ps(lut + 8);
  const __m128i mask = _mm_set1_epi8(0x0f);
  for (; i + 8 <= nBytes; i += 8) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes + i));
    const __m128i h = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
    const __m128i l = _mm_and_si128(b, mask);
    const __m128i idx = _mm_unpacklo_epi8(h, l);  // 16 indices in output order
    for (int half = 0; half < 2; half++) {
      const __m256i k = _mm256_cvtepu8_epi32(half ? _mm_srli_si128(idx, 8) : idx);
      const __m256 pick = _mm256_castsi256_ps(_mm256_slli_epi32(k, 28));  // bit 3 → sign: upper table
      const __m256 v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, k), _mm256_permutevar8x32_ps(hi, k), pick);
      _mm256_storeu_ps(out + 2 * i + 8 * half, v);
    }
  }
#endif
  for (; i < nBytes; i++) {
    out[2 * i] = lut[bytes[i] >> 4];
    out[2 * i + 1] = lut[bytes[i] & 0x0f];
  }
}

}  // namespace lowrank
