/**
 * Blockwise 4-bit quantisation (NF4 / FP4) with optional double quantisation of the absmax constants,
 * bit-compatible with bitsandbytes (bitsandbytes@95f9af3 functional.py 938-1078,
 * backends/default/ops.py 233-260, kernels.cu 349-365). Pure TypedArray code: no tensors, no disposal.
 *
 * Layout: the tensor is flattened row-major and cut into blocks of `blocksize` (the last block may be
 * short and uses its own absmax); each element becomes a 4-bit index, two per byte with the FIRST
 * element in the HIGH nibble; an odd count is padded with a zero nibble.
 *
 * @example
 * const q = quantize4bit(Float32Array.from(w), [out, inF], { quantType: 'nf4', doubleQuant: true });
 * const back = dequantize4bit(q); // Float32Array, same length as w
 */
import { ConfigError, ShapeError } from '../../errors.js';
import { code4bit, dynamicMap, indexer4bit, midpoints, nearestIndex, type QuantType } from './codes.js';

const f32 = Math.fround;

/** Block sizes bitsandbytes accepts for 4-bit quantisation. */
export const VALID_BLOCKSIZES: readonly number[] = [32, 64, 128, 256, 512, 1024, 2048, 4096];
/** bitsandbytes' default 4-bit block size. */
export const DEFAULT_BLOCKSIZE = 64;
/** Block size of the second (8-bit) quantisation of the absmax constants (`compress_statistics`). */
export const NESTED_BLOCKSIZE = 256;

/** 8-bit blockwise-quantised values (here: the absmax constants under double quantisation). */
export interface Quantized8bit {
  /** One code index per value. */
  q: Uint8Array;
  /** Per-block absmax of the quantised values, f32. */
  absmax: Float32Array;
  /** The 256-entry ascending code (the signed dynamic map). */
  code: Float32Array;
  blocksize: number;
}

/** Double-quantised absmax: `absmax = code[q]·absmax2[block] + offset` (bitsandbytes `dequantize_4bit`). */
export interface NestedAbsmax extends Quantized8bit {
  /** `mean(absmax)` subtracted before the 8-bit quantisation, f32. */
  offset: number;
}

/** A 4-bit quantised tensor, as bitsandbytes' `Params4bit` + `QuantState` hold it. */
export interface Quantized4bit {
  quantType: QuantType;
  blocksize: number;
  /** Logical shape of the original tensor (row-major). */
  shape: number[];
  numel: number;
  /** `ceil(numel / 2)` bytes, two indices per byte, first element in the high nibble. */
  packed: Uint8Array;
  /** The 16-entry code of `quantType` (shared constant; never mutate). */
  code: Float32Array;
  /** Per-block absmax (f32) when not double-quantised. */
  absmax: Float32Array | null;
  /** Double-quantised absmax, or null. */
  nested: NestedAbsmax | null;
}

export interface Quantize4bitOptions {
  /** Default 'nf4' (the QLoRA recipe; bitsandbytes' own default is 'fp4'). */
  quantType?: QuantType;
  /** Elements per absmax block, default 64. */
  blocksize?: number;
  /** Quantise the absmax constants again (8-bit, blocks of 256), default false. */
  doubleQuant?: boolean;
}

function checkBlocksize(where: string, blocksize: number): void {
  if (!VALID_BLOCKSIZES.includes(blocksize)) {
    throw new ConfigError(
      where,
      `blocksize must be one of ${VALID_BLOCKSIZES.join(', ')}`,
      blocksize,
      'use 64',
    );
  }
}

/** Per-block `max|x|` (f32), the last block over its own (possibly short) range. */
export function blockAbsmax(values: Float32Array, blocksize: number): Float32Array {
  const nBlocks = Math.ceil(values.length / blocksize);
  const out = new Float32Array(nBlocks);
  for (let b = 0; b < nBlocks; b++) {
    let m = 0;
    const end = Math.min(values.length, (b + 1) * blocksize);
    for (let i = b * blocksize; i < end; i++) {
      const a = Math.abs(values[i]!);
      if (a > m || a !== a) m = a; // NaN propagates like torch.max
    }
    out[b] = m;
  }
  return out;
}

/**
 * Index of every element: `clamp(x · f32(1/absmax), −1, 1)` (the reciprocal is multiplied, as the
 * CUDA kernel does), then the nearest code by `index`.
 */
function blockIndices(
  values: Float32Array,
  absmax: Float32Array,
  blocksize: number,
  index: (x: number) => number,
  out: Uint8Array,
): void {
  for (let b = 0; b < absmax.length; b++) {
    const recip = f32(1 / absmax[b]!);
    const end = Math.min(values.length, (b + 1) * blocksize);
    for (let i = b * blocksize; i < end; i++) {
      const s = Math.min(1, Math.max(-1, f32(values[i]! * recip)));
      out[i] = index(s);
    }
  }
}

/**
 * {@link blockIndices} + packing for an ascending code (NF4), fused: the nearest-code search is inlined
 * and two indices go straight into each byte (first element in the high nibble), with no per-element
 * index array. The same arithmetic as `blockIndices` with `nearestIndex`, so the same bits (checked
 * against bitsandbytes' fixtures by the quant tests).
 */
function packNearest(
  values: Float32Array,
  absmax: Float32Array,
  blocksize: number,
  mids: Float32Array,
  packed: Uint8Array,
): void {
  const top = mids.length;
  for (let b = 0; b < absmax.length; b++) {
    const recip = f32(1 / absmax[b]!);
    const end = Math.min(values.length, (b + 1) * blocksize);
    for (let i = b * blocksize; i < end; i++) {
      const s = Math.min(1, Math.max(-1, f32(values[i]! * recip)));
      let lo = 0;
      let hi = top;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (s > mids[mid]!) lo = mid + 1;
        else hi = mid;
      }
      packed[i >> 1] |= (i & 1) === 0 ? lo << 4 : lo;
    }
  }
}

/**
 * 8-bit blockwise quantisation with an ascending 256-entry code (`quantize_blockwise`): per block
 * `absmax = max|x|`, index = nearest code of `x·f32(1/absmax)` (ties to the lower index).
 *
 * @example quantizeBlockwise8(absmaxMinusMean, dynamicMap(), 256)
 */
export function quantizeBlockwise8(
  values: Float32Array,
  code: Float32Array,
  blocksize = NESTED_BLOCKSIZE,
): Quantized8bit {
  if (code.length !== 256)
    throw new ShapeError('quantizeBlockwise8', 'the code must have 256 entries', code.length);
  const absmax = blockAbsmax(values, blocksize);
  const q = new Uint8Array(values.length);
  const mids = midpoints(code);
  blockIndices(values, absmax, blocksize, (x) => nearestIndex(x, mids), q);
  return { q, absmax, code, blocksize };
}

/** `code[q] · absmax[block]` (+ `offset`), f32 per step. */
export function dequantizeBlockwise8(v: Quantized8bit, offset = 0): Float32Array {
  const out = new Float32Array(v.q.length);
  for (let i = 0; i < v.q.length; i++) {
    out[i] = f32(f32(v.code[v.q[i]!]! * v.absmax[Math.floor(i / v.blocksize)]!) + offset);
  }
  return out;
}

/**
 * Double quantisation of absmax constants (`compress_statistics=True`, functional.py 938-950):
 * `offset = mean(absmax)` (summed in f64, rounded to f32 once: PyTorch's f32 `mean` may differ in the
 * last bit depending on its summation order), then 8-bit blockwise quantisation of `absmax − offset`.
 */
export function compressAbsmax(absmax: Float32Array, code: Float32Array = dynamicMap()): NestedAbsmax {
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = f32(sum / absmax.length);
  const centred = absmax.map((a) => f32(a - offset));
  return { ...quantizeBlockwise8(centred, code, NESTED_BLOCKSIZE), offset };
}

/**
 * Quantises `values` (row-major, `shape`) to 4 bits per element.
 *
 * @example
 * quantize4bit(Float32Array.from([2, 1, -1, 0.5]), [4]).packed; // Uint8Array [0xfc, 0x2a]
 */
export function quantize4bit(
  values: Float32Array,
  shape: number[],
  opts: Quantize4bitOptions = {},
): Quantized4bit {
  const quantType = opts.quantType ?? 'nf4';
  const blocksize = opts.blocksize ?? DEFAULT_BLOCKSIZE;
  checkBlocksize('quantize4bit', blocksize);
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel !== values.length) {
    throw new ShapeError(
      'quantize4bit',
      `shape [${shape}] holds ${numel} elements`,
      values.length,
      'pass the tensor shape',
    );
  }
  const code = code4bit(quantType);
  const absmax = blockAbsmax(values, blocksize);
  const packed = new Uint8Array(Math.ceil(numel / 2));
  if (quantType === 'nf4') packNearest(values, absmax, blocksize, midpoints(code), packed);
  else {
    const idx = new Uint8Array(numel);
    blockIndices(values, absmax, blocksize, indexer4bit(quantType), idx);
    for (let i = 0; i < numel; i += 2) packed[i >> 1] = (idx[i]! << 4) | (i + 1 < numel ? idx[i + 1]! : 0);
  }
  const doubleQuant = opts.doubleQuant ?? false;
  return {
    quantType,
    blocksize,
    shape: [...shape],
    numel,
    packed,
    code,
    absmax: doubleQuant ? null : absmax,
    nested: doubleQuant ? compressAbsmax(absmax) : null,
  };
}

/** The f32 absmax per block (decompressed when double-quantised). */
export function absmaxOf(q: Quantized4bit): Float32Array {
  if (q.absmax) return q.absmax;
  if (q.nested) return dequantizeBlockwise8(q.nested, q.nested.offset);
  throw new ShapeError(
    'absmaxOf',
    'a quantised tensor needs absmax or nested absmax',
    'neither',
    'rebuild it with quantize4bit',
  );
}

/** Unpacks the 4-bit indices (one per byte) of `q`. */
export function unpackIndices(q: Quantized4bit): Uint8Array {
  const idx = new Uint8Array(q.numel);
  for (let i = 0; i < q.numel; i++) {
    const byte = q.packed[i >> 1]!;
    idx[i] = i & 1 ? byte & 0x0f : byte >> 4;
  }
  return idx;
}

/**
 * `out[i] = code[idx[i]] · absmax[block(i)]` in f32 (bitsandbytes `dequantize_blockwise`). Writes into `out`
 * when given (length `numel`), so a caller can reuse one buffer.
 *
 * @example dequantize4bit(quantize4bit(w, [n])) // ≈ w, |error| ≤ absmax·(largest code gap)/2
 */
export function dequantize4bit(
  q: Quantized4bit,
  out: Float32Array = new Float32Array(q.numel),
): Float32Array {
  if (out.length !== q.numel)
    throw new ShapeError('dequantize4bit', `out must hold ${q.numel} elements`, out.length);
  const absmax = absmaxOf(q);
  const code = q.code;
  const bs = q.blocksize;
  for (let b = 0; b < absmax.length; b++) {
    const a = absmax[b]!;
    const end = Math.min(q.numel, (b + 1) * bs);
    for (let i = b * bs; i < end; i++) {
      const byte = q.packed[i >> 1]!;
      out[i] = f32(code[i & 1 ? byte & 0x0f : byte >> 4]! * a);
    }
  }
  return out;
}

/**
 * Bytes this tensor's own storage holds: packed codes + absmax (f32) or, when double-quantised,
 * 8-bit absmax codes + f32 second-level absmax + the f32 offset. The code tables are process-wide
 * constants and are not counted. Spec §8: ≈ 4 + 8/64 + 32/(64·256) bits per element.
 */
export function quantizedBytes(q: Quantized4bit): number {
  if (q.nested) return q.packed.byteLength + q.nested.q.byteLength + q.nested.absmax.byteLength + 4;
  return q.packed.byteLength + (q.absmax?.byteLength ?? 0);
}
