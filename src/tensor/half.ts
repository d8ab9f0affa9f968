/**
 * Half-precision (IEEE binary16) storage for frozen f32 matrices (issue 18): a [rows, cols] matrix is
 * held as int32 [rows, ceil(cols / 2)], two float16 bit patterns per element (column 2j in the low
 * 16 bits, 2j + 1 in the high 16), so it takes half the bytes of f32. Reads widen back to f32
 * exactly (every float16 is a float32), a block of rows at a time: a row gather (an embedding
 * lookup) or a row block inside a matmul (a tied output head), never the whole f32 matrix at once.
 *
 * Rounding is round-to-nearest-even with subnormals, ±inf on overflow and NaN kept, as torch's
 * `tensor.half()`; so `widen(pack(w))` equals torch's `w.half().float()` bit for bit.
 *
 * On the CPU-memory backends (cpu, native, wasm) the pairs stay in a JS array and are widened by a
 * loop (a table lookup per value): half the bytes of f32. On GPU backends the storage is an int32
 * tensor holding one bit pattern per element (exact below 2²⁴ even where int32 is float32, as on
 * WebGL), widened by a gather from a 65,536-entry f32 table tensor: the same values, no saving. (A
 * packed-pair tensor split with integer floor-division and modulo was exact on cpu, wasm and WebGL
 * but not on tfjs-webgpu 4.22 in the conformance run, so GPU backends do not pack.)
 */
import { tf, type Tensor } from './tf.js';
import { ShapeError } from '../errors.js';
import { isGpuBackend, readDataSync } from './read.js';
import { f16BitsToFloat, floatToF16Bits } from '../util/float16.js';

let tableValues: Float32Array | undefined;
/** All 65,536 float16 values, indexed by bit pattern (256 KB, built once). */
function halfTable(): Float32Array {
  if (!tableValues) {
    tableValues = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) tableValues[i] = f16BitsToFloat(i);
  }
  return tableValues;
}

/**
 * Rounds rows of a row-major f32 (or float16-bits, `Uint16Array`) block to float16 and packs them
 * into `out` (int32, `ceil(cols / 2)` per row) starting at row `row0`. Used by loaders that read a
 * checkpoint tensor a block of rows at a time.
 *
 * @example
 * const out = new Int32Array(rows * Math.ceil(cols / 2));
 * packHalfRows(firstBlock, cols, out, 0); packHalfRows(nextBlock, cols, out, firstBlock.length / cols);
 */
export function packHalfRows(
  values: Float32Array | Uint16Array,
  cols: number,
  out: Int32Array,
  row0: number,
): void {
  const c2 = Math.ceil(cols / 2);
  const rows = values.length / cols;
  if (!Number.isInteger(rows) || (row0 + rows) * c2 > out.length) {
    throw new ShapeError('packHalfRows', `a whole number of ${cols}-wide rows inside the output`, {
      values: values.length,
      row0,
      outRows: out.length / c2,
    });
  }
  const bits =
    values instanceof Uint16Array ? (i: number) => values[i]! : (i: number) => floatToF16Bits(values[i]!);
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    const dst = (row0 + r) * c2;
    for (let j = 0; j < c2; j++) {
      const lo = bits(src + 2 * j);
      const hi = 2 * j + 1 < cols ? bits(src + 2 * j + 1) : 0;
      out[dst + j] = lo | (hi << 16);
    }
  }
}

/** Packed pairs → one bit pattern per int32 [rows, cols] (the tensor storage). */
function unpairs(packed: Int32Array, rows: number, cols: number): Int32Array {
  const c2 = Math.ceil(cols / 2);
  const out = new Int32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const v = packed[r * c2 + (c >> 1)]!;
      out[r * cols + c] = c & 1 ? (v >>> 16) & 0xffff : v & 0xffff;
    }
  return out;
}

/** Float32 elements in one widened row block by default: 2 Mi (8 MB). */
export const HALF_BLOCK_ELEMENTS = 2 ** 21;

/** Where a {@link HalfMatrix} keeps its pairs: a JS array (CPU-memory backends) or tensors. */
export type HalfStorage = 'host' | 'tensor';

/**
 * A frozen [rows, cols] matrix stored as float16 (see the file comment). On the CPU-memory backends
 * (cpu, native, wasm) the packed pairs stay in a JS array and blocks are widened by a loop over it
 * (an embedding lookup reads its ids synchronously, a copy on those backends); elsewhere one bit
 * pattern per int32 tensor element, widened by a table gather. `dispose()` frees either.
 *
 * @example
 * const w = HalfMatrix.fromFloat32(values, 49152, 576); // 57 MB instead of 113 MB
 * const rows = w.gatherRows(ids);                      // [n, 576] f32, exactly values.half().float()
 */
export class HalfMatrix {
  /** Rows per widened block in matmuls (default: {@link HALF_BLOCK_ELEMENTS} f32 elements). */
  blockRows: number;
  private disposed = false;

  private constructor(
    /** Packed pairs, row-major [rows, ceil(cols / 2)] ('host' storage). */
    private host: Int32Array | null,
    /** int32 [rows, cols], one bit pattern each ('tensor' storage). */
    private readonly packed: Tensor | null,
    private readonly table: Tensor | null,
    readonly rows: number,
    readonly cols: number,
  ) {
    this.blockRows = Math.max(1, Math.floor(HALF_BLOCK_ELEMENTS / Math.max(cols, 1)));
  }

  /**
   * Wraps packed pairs (from {@link packHalfRows}), which it keeps (host storage) or uploads. The
   * storage defaults to 'host' on CPU-memory backends, else 'tensor' (one pattern per int32).
   */
  static fromPacked(
    packed: Int32Array,
    rows: number,
    cols: number,
    storage: HalfStorage = isGpuBackend() ? 'tensor' : 'host',
  ): HalfMatrix {
    const c2 = Math.ceil(cols / 2);
    if (packed.length !== rows * c2) {
      throw new ShapeError('HalfMatrix', `${rows}·${c2} packed int32 values`, packed.length);
    }
    if (storage === 'host') return new HalfMatrix(packed, null, null, rows, cols);
    const split = tf.tensor2d(unpairs(packed, rows, cols), [rows, cols], 'int32');
    return new HalfMatrix(null, split, tf.tensor1d(halfTable()), rows, cols);
  }

  /**
   * Rounds a row-major f32 [rows, cols] matrix to float16.
   * @example const w = HalfMatrix.fromFloat32(new Float32Array([1, 2, 3, 4]), 2, 2);
   */
  static fromFloat32(values: Float32Array, rows: number, cols: number, storage?: HalfStorage): HalfMatrix {
    if (values.length !== rows * cols)
      throw new ShapeError('HalfMatrix', `${rows}·${cols} values`, values.length);
    const out = new Int32Array(rows * Math.ceil(cols / 2));
    packHalfRows(values, cols, out, 0);
    return HalfMatrix.fromPacked(out, rows, cols, storage);
  }

  /** Where the pairs live. */
  get storage(): HalfStorage {
    return this.packed ? 'tensor' : 'host';
  }

  /** Bytes held: the packed pairs (and the widening table with tensor storage). */
  get bytes(): number {
    if (this.packed) return this.packed.size * 4 + this.table!.size * 4;
    return this.host?.byteLength ?? 0;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * Rows `ids` (int32, any shape) widened to f32: [...ids.shape, cols]. Caller owns the result.
   * @example const x = w.gatherRows(tf.tensor1d([3, 1], 'int32')); // [2, cols]
   */
  gatherRows(ids: Tensor): Tensor {
    if (this.packed) {
      const packed = this.packed;
      return tf.tidy(() => {
        const flat = ids.reshape([-1]).toInt();
        return this.widen(tf.gather(packed, flat)).reshape([...ids.shape, this.cols]);
      });
    }
    const idx = readDataSync(ids, 'HalfMatrix.gatherRows', 'tensor storage');
    const out = new Float32Array(idx.length * this.cols);
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i]!;
      if (!(Number.isInteger(r) && r >= 0 && r < this.rows)) {
        throw new ShapeError('embedding lookup', `token ids must be in [0, ${this.rows})`, r);
      }
      this.widenRow(r, out, i * this.cols);
    }
    return tf.tensor(out, [...ids.shape, this.cols]);
  }

  /** Rows [r0, r0 + n) widened to f32 [n, cols]. Caller owns the result. */
  rowBlock(r0: number, n: number): Tensor {
    if (this.packed) {
      const packed = this.packed;
      return tf.tidy(() => this.widen(packed.slice([r0, 0], [n, this.cols])));
    }
    const out = new Float32Array(n * this.cols);
    for (let r = 0; r < n; r++) this.widenRow(r0 + r, out, r * this.cols);
    return tf.tensor2d(out, [n, this.cols]);
  }

  /** Host storage: row `r` into `out` at `at`. */
  private widenRow(r: number, out: Float32Array, at: number): void {
    const host = this.host!;
    const table = halfTable();
    const c2 = Math.ceil(this.cols / 2);
    const even = this.cols >> 1;
    const src = r * c2;
    for (let j = 0; j < even; j++) {
      const v = host[src + j]!;
      out[at + 2 * j] = table[v & 0xffff]!;
      out[at + 2 * j + 1] = table[(v >>> 16) & 0xffff]!;
    }
    if (this.cols & 1) out[at + this.cols - 1] = table[host[src + even]! & 0xffff]!;
  }

  /** Tensor storage: bit patterns int32 [n, cols] → f32 [n, cols]. */
  private widen(bits: Tensor): Tensor {
    return tf.gather(this.table!, bits);
  }

  /** Frees the packed data (and the table). */
  dispose(): void {
    this.disposed = true;
    this.host = null;
    if (this.packed && !this.packed.isDisposed) this.packed.dispose();
    if (this.table && !this.table.isDisposed) this.table.dispose();
  }
}

/**
 * `x · Wᵀ` for `x` [N, cols] and a half matrix W [rows, cols] → [N, rows], W widened one row block at
 * a time (each block's f32 copy freed before the next). Differentiable in `x` (W is frozen):
 * dx = dy · W, again block by block.
 *
 * @example const logits = matMulHalfT(hidden2d, tiedEmbedding); // [N, vocab]
 */
export function matMulHalfT(x: Tensor, w: HalfMatrix, blockRows = w.blockRows): Tensor {
  const f = tf.customGrad(((xs: Tensor) => ({
    value: projectT(xs, w, blockRows),
    gradFunc: (dy: Tensor) => matMulHalf(dy, w, blockRows),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as Tensor;
}

/** Forward of {@link matMulHalfT}. */
function projectT(x: Tensor, w: HalfMatrix, blockRows: number): Tensor {
  const parts: Tensor[] = [];
  for (let r0 = 0; r0 < w.rows; r0 += blockRows) {
    const n = Math.min(blockRows, w.rows - r0);
    parts.push(
      tf.tidy(() => {
        const block = w.rowBlock(r0, n); // [n, cols]
        return tf.matMul(x, block, false, true); // [N, n]
      }),
    );
  }
  if (parts.length === 1) return parts[0]!;
  const out = tf.concat(parts, 1);
  tf.dispose(parts);
  return out;
}

/**
 * `d · W` for `d` [N, rows] and a half matrix W [rows, cols] → [N, cols], block by block.
 * @example const dHidden = matMulHalf(dLogits, tiedEmbedding); // [N, hidden]
 */
export function matMulHalf(d: Tensor, w: HalfMatrix, blockRows = w.blockRows): Tensor {
  const n = d.shape[0]!;
  let acc: Tensor | null = null;
  for (let r0 = 0; r0 < w.rows; r0 += blockRows) {
    const m = Math.min(blockRows, w.rows - r0);
    const part = tf.tidy(() => tf.matMul(d.slice([0, r0], [n, m]), w.rowBlock(r0, m))); // [N, cols]
    if (acc === null) acc = part;
    else {
      const next: Tensor = tf.add(acc, part);
      tf.dispose([acc, part]);
      acc = next;
    }
  }
  return acc ?? tf.zeros([n, w.cols]);
}
