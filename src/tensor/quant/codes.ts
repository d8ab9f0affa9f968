/**
 * Code tables of bitsandbytes' 4-bit and 8-bit blockwise quantisation (QLoRA,
 * bitsandbytes@95f9af3 functional.py 169-1078, csrc/kernels.cu 110-365): NF4, FP4, the signed 8-bit
 * dynamic map used by double quantisation, and the nearest-code rules of the CUDA kernels.
 *
 * Every value here is an IEEE binary32 number held in a JS double (`Math.fround` exact).
 *
 * @example
 * nf4Index(0.5); // 12 (0.4407… is the nearest NF4 code)
 * createDynamicMap().length; // 256
 */
import { ConfigError } from '../../errors.js';

const f32 = Math.fround;

/** The 4-bit data types bitsandbytes offers (`bnb_4bit_quant_type`). */
export type QuantType = 'nf4' | 'fp4';

/**
 * NF4 (QLoRA paper §3, `get_4bit_type("nf4")`): quantiles of N(0, 1) normalised to [-1, 1] with an
 * exact zero, index 0..15, sorted ascending.
 */
export const NF4_CODE: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/**
 * FP4 (`get_4bit_type("fp4")`): bitsandbytes' E2M1 layout with bias 3 and no infinities, codes
 * `[0, 0.0625, 8, 12, 4, 6, 2, 3]` and their negatives (bit 3 is the sign), divided by the absmax 12.
 * Not sorted: index = sign·8 + (e1 e2 m) bits.
 */
export const FP4_CODE: Float32Array = Float32Array.from(
  [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3].map((v) => f32(v / 12)),
);

/** f32 midpoints `(c[i] + c[i+1]) / 2` of an ascending code (the bucket edges of nearest-code search). */
export function midpoints(code: Float32Array): Float32Array {
  const out = new Float32Array(code.length - 1);
  for (let i = 0; i + 1 < code.length; i++) out[i] = f32(f32(code[i]! + code[i + 1]!) / 2);
  return out;
}

const NF4_MIDPOINTS = midpoints(NF4_CODE);

/**
 * Index of the nearest code of an ascending table: the number of midpoints strictly below `x`,
 * so a value exactly on a midpoint goes to the lower index (CUDA: `x > pivot` → upper half). A NaN
 * (the 0·∞ of an all-zero block) compares false everywhere and gets index 0, as in the CUDA tree.
 */
export function nearestIndex(x: number, mids: Float32Array): number {
  let lo = 0;
  let hi = mids.length; // answer in [lo, hi]
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > mids[mid]!) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** NF4 index of a value already scaled into [-1, 1] (`dQuantizeNF4`). */
export function nf4Index(x: number): number {
  return nearestIndex(x, NF4_MIDPOINTS);
}

/**
 * Pivots of the CUDA `dQuantizeFP4` decision tree on |x| (f32 literals of kernels.cu; they are the
 * midpoints of the sorted magnitudes 0, 0.0625, 2, 3, 4, 6, 8, 12 divided by 12), and the 3-bit code
 * of each magnitude bucket.
 */
const FP4_PIVOTS = Float32Array.from([
  0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333,
]);
const FP4_BUCKET_CODE = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

/** FP4 index of a value already scaled into [-1, 1] (`dQuantizeFP4`: sign bit, then |x| against the pivots). */
export function fp4Index(x: number): number {
  const sign = x < 0 ? 0b1000 : 0;
  return FP4_BUCKET_CODE[nearestIndex(Math.abs(x), FP4_PIVOTS)]! + sign;
}

/** The 16-entry code table of a 4-bit type. */
export function code4bit(quantType: QuantType): Float32Array {
  if (quantType === 'nf4') return NF4_CODE;
  if (quantType === 'fp4') return FP4_CODE;
  throw new ConfigError(
    'quant.code4bit',
    'quantType must be "nf4" or "fp4"',
    quantType,
    'use quantize: "nf4"',
  );
}

/** The per-element index function of a 4-bit type. */
export function indexer4bit(quantType: QuantType): (x: number) => number {
  code4bit(quantType); // validates
  return quantType === 'nf4' ? nf4Index : fp4Index;
}

/**
 * `torch.linspace(start, end, steps, dtype=float32)` as PyTorch 1.13's CPU kernel computes it on an
 * AVX2 build (RangeFactoriesKernel.cpp): f32 step `(end − start)/(steps − 1)`; a scalar element is
 * `start + step·i` below `steps/2` and `end − step·(steps−1−i)` above, each one fused multiply-add
 * (the kernel file is compiled with FMA); the vectorised loop handles two 8-lane vectors at a time,
 * lane k = `base + f32(k·step)` from the scalar value at the vector's first index (which is why the
 * spec calls the dynamic map "CPU-vectorisation dependent"). Checked against python3-torch 1.13 in
 * `tests/fixtures/nf4_reference.py` (all 256 values of the dynamic map bit-equal).
 */
function torchLinspaceF32(start: number, end: number, steps: number): number[] {
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  // step·i is exact in a double (24-bit × small int) and the sum of values in [0.1, 1] stays within
  // 53 bits, so one fround is a correctly rounded fused multiply-add.
  const scalar = (i: number): number => (i < half ? f32(s + step * i) : f32(e - step * (steps - i - 1)));
  const LANES = 8;
  const out: number[] = [];
  let i = 0;
  while (i + 2 * LANES <= steps) {
    for (let v = 0; v < 2; v++, i += LANES) {
      const base = scalar(i);
      for (let k = 0; k < LANES; k++) out.push(k === 0 ? base : f32(base + f32(k * step)));
    }
  }
  for (; i < steps; i++) out.push(scalar(i));
  return out;
}

/**
 * bitsandbytes' `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)` (functional.py): for
 * i = 0..6 the midpoints of `linspace(0.1, 1, 2^i + 1)` (f32) times ±10^(i−6) (an f32 product), plus 0
 * and 1, sorted: 256 values from −0.99297 to 1. Used to quantise the absmax constants of double
 * quantisation. Checkpoints carry their own map (`nested_quant_map`): reuse it rather than this one.
 *
 * @example
 * const m = createDynamicMap(); m[0]; // -0.992968738079071
 */
export function createDynamicMap(maxExponentBits = 7, totalBits = 8): Float32Array {
  const nonSignBits = totalBits - 1;
  if (nonSignBits !== maxExponentBits) {
    throw new ConfigError(
      'quant.createDynamicMap',
      'only the signed map with maxExponentBits = totalBits − 1 (no extra items) is implemented',
      { maxExponentBits, totalBits },
      'use the defaults (7, 8) that double quantisation uses',
    );
  }
  const data: number[] = [];
  for (let i = 0; i < maxExponentBits; i++) {
    const b = torchLinspaceF32(0.1, 1, 2 ** i + 1);
    const scale = f32(10 ** (i - (maxExponentBits - 1)));
    for (const sign of [1, -1]) {
      for (let j = 0; j + 1 < b.length; j++) data.push(f32(sign * scale * f32(f32(b[j]! + b[j + 1]!) / 2)));
    }
  }
  data.push(0, 1);
  data.sort((a, b) => a - b);
  return Float32Array.from(data);
}

let dynamicMapCache: Float32Array | null = null;

/** The shared signed 8-bit dynamic map (built once; callers must not mutate it). */
export function dynamicMap(): Float32Array {
  dynamicMapCache ??= createDynamicMap();
  return dynamicMapCache;
}
