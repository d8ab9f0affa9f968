/**
 * IEEE binary16 (float16) bit patterns ⇄ numbers, as torch's `tensor.half()` rounds: the one
 * definition used by the safetensors reader/writer (`io/dtypes.ts`) and the float16 storage of frozen
 * matrices (`tensor/half.ts`).
 */
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/**
 * The float16 bit pattern nearest to `x` (round-to-nearest-even), as torch's `.half()`.
 * @example floatToF16Bits(1) === 0x3c00; floatToF16Bits(65520) === 0x7c00; // overflow rounds to inf
 */
export function floatToF16Bits(x: number): number {
  F32[0] = x;
  const b = U32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // inf / quiet NaN
  const e = exp - 112; // float16 biased exponent (127 − 15)
  if (e >= 0x1f) return sign | 0x7c00; // too large: inf
  if (e <= 0) {
    // float16 subnormal: value = m · 2⁻²⁴; below half the smallest one rounds to zero
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e; // 14 … 24
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (m & 1) === 1)) m += 1; // may carry into the smallest normal
    return sign | m;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h += 1; // a carry may round up to inf
  return sign | h;
}

/**
 * The value of an IEEE binary16 bit pattern (exact: subnormals, infinities and NaN included).
 * @example f16BitsToFloat(0x3c00) === 1; f16BitsToFloat(0x0001) === 2 ** -24;
 */
export function f16BitsToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}
