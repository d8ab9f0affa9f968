/**
 * safetensors dtypes: element sizes, the writer's ordering (safetensors `Dtype` enum, tensor.rs), and
 * conversions of raw little-endian bytes to the tensors tfjs holds (float32 / int32 / bool).
 */
import { CheckpointError, NotSupportedError } from '../errors.js';
import { f16BitsToFloat } from '../util/float16.js';

export { f16BitsToFloat, floatToF16Bits } from '../util/float16.js';

/** The dtypes lowrank reads and writes (every dtype of the format except the 4/6/8-bit floats and C64). */
export type SafeDtype =
  'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

/**
 * Rank of every dtype in the safetensors `Dtype` enum declaration order (safetensors@24b0b28
 * tensor.rs). The writer sorts tensors by this rank descending. Formats lowrank cannot hold in
 * memory (F4, F6_*, F8_*, C64) are listed so that the header validator can name them precisely.
 */
const DTYPE_ENUM_ORDER = [
  'BOOL',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'C64',
  'F64',
  'I64',
  'U64',
] as const;

const DTYPE_SIZE: Record<SafeDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** True when `s` is a dtype lowrank can read and write. */
export function isSafeDtype(s: unknown): s is SafeDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

/** True when `s` names a dtype of the format that lowrank does not support (F8, F4, C64, …). */
export function isKnownUnsupportedDtype(s: string): boolean {
  return (DTYPE_ENUM_ORDER as readonly string[]).includes(s) && !isSafeDtype(s);
}

/** Bytes per element of a dtype. */
export function dtypeSize(d: SafeDtype): number {
  return DTYPE_SIZE[d];
}

/** Position of `d` in the safetensors `Dtype` enum (higher is written first). */
export function dtypeRank(d: SafeDtype): number {
  return (DTYPE_ENUM_ORDER as readonly string[]).indexOf(d);
}

/** The tfjs dtype a safetensors dtype becomes on load. */
export function tfDtypeFor(d: SafeDtype): 'float32' | 'int32' | 'bool' {
  if (d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16') return 'float32';
  if (d === 'BOOL') return 'bool';
  return 'int32';
}

const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/**
 * bfloat16 bits → number (the top half of a float32).
 *
 * @example
 * bf16BitsToFloat(0x3f80); // 1
 */
export function bf16BitsToFloat(b: number): number {
  U32_SCRATCH[0] = (b & 0xffff) << 16;
  return F32_SCRATCH[0]!;
}

/**
 * number → bfloat16 bits, rounding to nearest even like PyTorch's `.bfloat16()`.
 *
 * @example
 * floatToBF16Bits(1); // 0x3f80
 */
export function floatToBF16Bits(x: number): number {
  F32_SCRATCH[0] = x;
  const f = U32_SCRATCH[0]!;
  if ((f & 0x7f800000) === 0x7f800000 && f & 0x7fffff) return ((f >>> 16) | 0x40) & 0xffff;
  const lsb = (f >>> 16) & 1;
  return ((f + 0x7fff + lsb) >>> 16) & 0xffff;
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

function wideIntsToInt32(values: BigInt64Array | BigUint64Array, where: string): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < BigInt(INT32_MIN) || v > BigInt(INT32_MAX)) {
      throw new CheckpointError(
        where,
        `element ${i} does not fit in int32, the widest integer tfjs holds`,
        v.toString(),
        'store this tensor as I32 or as a float dtype',
      );
    }
    out[i] = Number(v);
  }
  return out;
}

function u32ToInt32(values: Uint32Array, where: string): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > INT32_MAX) {
      throw new CheckpointError(where, `element ${i} does not fit in int32`, v, 'store this tensor as I32');
    }
    out[i] = v;
  }
  return out;
}

/**
 * Converts little-endian raw bytes of dtype `d` into the typed array tfjs holds: Float32Array for
 * float dtypes, Int32Array for integers (an error names the first element that does not fit), Uint8Array
 * for BOOL. `where` names the file and tensor in error messages. With `owned` (the caller hands the bytes
 * over and will not reuse them) F32/I32/BOOL data are viewed in place instead of copied.
 *
 * @example
 * bytesToTypedArray('F16', new Uint8Array([0x00, 0x3c]), 'a.safetensors: x'); // Float32Array [1]
 */
export function bytesToTypedArray(
  d: SafeDtype,
  bytes: Uint8Array,
  where: string,
  owned = false,
): Float32Array | Int32Array | Uint8Array {
  const size = DTYPE_SIZE[d];
  const inPlace = d === 'F32' || d === 'I32' || d === 'BOOL';
  // A typed array view needs an offset that is a multiple of its element size; otherwise copy.
  const src = (inPlace && !owned) || bytes.byteOffset % size !== 0 ? bytes.slice() : bytes;
  const n = src.byteLength / size;
  const view = <T>(C: new (b: ArrayBuffer, o: number, n: number) => T): T =>
    new C(src.buffer as ArrayBuffer, src.byteOffset, n);
  switch (d) {
    case 'F32':
      return view(Float32Array);
    case 'F64':
      return Float32Array.from(view(Float64Array));
    case 'F16':
      return Float32Array.from(view(Uint16Array), f16BitsToFloat);
    case 'BF16':
      return Float32Array.from(view(Uint16Array), bf16BitsToFloat);
    case 'I32':
      return view(Int32Array);
    case 'I16':
      return Int32Array.from(view(Int16Array));
    case 'I8':
      return Int32Array.from(view(Int8Array));
    case 'U16':
      return Int32Array.from(view(Uint16Array));
    case 'U8':
      return Int32Array.from(src);
    case 'U32':
      return u32ToInt32(view(Uint32Array), where);
    case 'I64':
      return wideIntsToInt32(view(BigInt64Array), where);
    case 'U64':
      return wideIntsToInt32(view(BigUint64Array), where);
    case 'BOOL':
      return src;
  }
}

/** Throws unless the host stores numbers little-endian (safetensors data is little-endian). */
export function assertLittleEndianHost(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new NotSupportedError('io/safetensors', 'a big-endian host', 'run on a little-endian machine');
  }
}
