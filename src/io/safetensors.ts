/**
 * safetensors read and write (https://github.com/huggingface/safetensors, format of safetensors@24b0b28).
 * Floats load as float32 tensors, integers as int32 (an error if a value does not fit), BOOL as bool.
 * Files are written byte-identically to the reference writer (safetensors@24b0b28 tensor.rs `serialize`).
 * Large files are read by range: the header is parsed alone and each tensor's bytes are read separately.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { CheckpointError } from '../errors.js';
import { readAll, readDataSync } from '../tensor/read.js';
import {
  assertLittleEndianHost,
  bytesToTypedArray,
  dtypeSize,
  tfDtypeFor,
  type SafeDtype,
} from './dtypes.js';
import {
  parseHeader,
  readHeaderLength,
  serializeHeader,
  writerOrder,
  type PreparedTensor,
  type SafeHeader,
  type SafeTensorInfo,
} from './safetensors_header.js';
import { openRandomAccess, writeFileAtomic, type RandomAccessFile } from './source.js';

export type { SafeDtype } from './dtypes.js';
export type { SafeTensorInfo, SafeHeader } from './safetensors_header.js';

/** Typed arrays accepted as exact-dtype data (little-endian bytes are taken from the array as is). */
export type SafeTypedArray =
  | Float64Array
  | Float32Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array
  | BigInt64Array
  | BigUint64Array;

/**
 * A tensor to write: a tf.Tensor (float32 → F32, int32 → I32, bool → BOOL) or raw data of an exact
 * dtype, e.g. `{dtype: 'U8', shape: [64, 16], data: packedNf4}` or `{dtype: 'F16', shape, data: Uint16Array}`
 * (F16/BF16 data are the 16-bit patterns; see `floatToF16Bits` / `floatToBF16Bits`).
 */
export type SafeTensorInput = Tensor | { dtype: SafeDtype; shape: number[]; data: SafeTypedArray };

/** One tensor's raw content as stored in the file. */
export interface RawTensor {
  dtype: SafeDtype;
  shape: number[];
  /** Little-endian bytes (a view; do not mutate). */
  bytes: Uint8Array;
}

/** The content of a safetensors file. The caller owns (and disposes) `tensors`. */
export interface SafetensorsContent {
  tensors: Map<string, Tensor>;
  raw: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

function tfDtypeToSafe(t: Tensor, name: string): SafeDtype {
  if (t.dtype === 'float32') return 'F32';
  if (t.dtype === 'int32') return 'I32';
  if (t.dtype === 'bool') return 'BOOL';
  throw new CheckpointError(
    `safetensors tensor "${name}"`,
    'tfjs dtype cannot be written',
    t.dtype,
    'cast to float32 or int32',
  );
}

function prepare(name: string, input: SafeTensorInput): PreparedTensor {
  if (input instanceof tf.Tensor) {
    const dtype = tfDtypeToSafe(input, name);
    const values = readDataSync(input, 'encodeSafetensors', 'encodeSafetensorsAsync or saveSafetensors');
    const bytes =
      dtype === 'BOOL'
        ? Uint8Array.from(values as ArrayLike<number>)
        : new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    return { name, dtype, shape: [...input.shape], bytes };
  }
  const { dtype, shape, data } = input;
  const numel = shape.reduce((a, b) => a * b, 1);
  if (
    !shape.every((d) => Number.isSafeInteger(d) && d >= 0) ||
    data.byteLength !== numel * dtypeSize(dtype)
  ) {
    throw new CheckpointError(
      `safetensors tensor "${name}"`,
      `data must hold shape × ${dtype} size = ${numel * dtypeSize(dtype)} bytes`,
      data.byteLength,
      'pass data whose length matches the shape',
    );
  }
  return {
    name,
    dtype,
    shape: [...shape],
    bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/**
 * Serialises tensors to safetensors bytes, laid out exactly as the reference writer does.
 *
 * @example
 * const bytes = encodeSafetensors(new Map([['w', tf.ones([2, 2])]]), { format: 'pt' });
 */
export function encodeSafetensors(
  tensors: Map<string, SafeTensorInput>,
  metadata?: Record<string, string>,
): Uint8Array {
  assertLittleEndianHost();
  const ordered = writerOrder([...tensors].map(([name, t]) => prepare(name, t)));
  const head = serializeHeader(ordered, metadata);
  const total = head.length + ordered.reduce((a, t) => a + t.bytes.length, 0);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let pos = head.length;
  for (const t of ordered) {
    out.set(t.bytes, pos);
    pos += t.bytes.length;
  }
  return out;
}

/**
 * {@link encodeSafetensors} reading tfjs tensors asynchronously first (every backend, GPU included:
 * see src/tensor/read.ts). Same bytes.
 *
 * @example
 * const bytes = await encodeSafetensorsAsync(weights, { format: 'pt' });
 */
export async function encodeSafetensorsAsync(
  tensors: Map<string, SafeTensorInput>,
  metadata?: Record<string, string>,
): Promise<Uint8Array> {
  const entries = [...tensors];
  const read = await readAll(entries.flatMap(([, t]) => (t instanceof tf.Tensor ? [t] : [])));
  let i = 0;
  const raw = new Map<string, SafeTensorInput>();
  for (const [name, t] of entries) {
    if (!(t instanceof tf.Tensor)) {
      raw.set(name, t);
      continue;
    }
    const dtype = tfDtypeToSafe(t, name);
    const values = read[i++]!;
    const data = dtype === 'BOOL' ? Uint8Array.from(values as ArrayLike<number>) : values;
    raw.set(name, { dtype, shape: [...t.shape], data: data as SafeTypedArray });
  }
  return encodeSafetensors(raw, metadata);
}

/**
 * Builds the tfjs tensor for one raw tensor (float32/int32/bool). The caller owns the result. With
 * `owned`, F32/I32/BOOL bytes back the tensor without a copy (pass it only for bytes nobody else uses).
 *
 * @example
 * const t = rawToTensor(raw.get('w')!, 'model.safetensors: w');
 */
export function rawToTensor(raw: RawTensor, where: string, owned = false): Tensor {
  return tf.tensor(bytesToTypedArray(raw.dtype, raw.bytes, where, owned), raw.shape, tfDtypeFor(raw.dtype));
}

function tensorsFromRaw(raw: Map<string, RawTensor>, file: string, owned: boolean): Map<string, Tensor> {
  const tensors = new Map<string, Tensor>();
  try {
    for (const [name, r] of raw) tensors.set(name, rawToTensor(r, `${file}: tensor "${name}"`, owned));
  } catch (err) {
    tensors.forEach((t) => t.dispose());
    throw err;
  }
  return tensors;
}

/**
 * Parses (and fully validates) safetensors bytes held in memory. `fileName` is used in error messages.
 * The caller owns the returned tensors.
 *
 * @example
 * const { tensors, metadata } = decodeSafetensors(bytes, 'adapter_model.safetensors');
 */
export function decodeSafetensors(bytes: Uint8Array, fileName: string): SafetensorsContent {
  assertLittleEndianHost();
  const n = readHeaderLength(bytes.subarray(0, 8), bytes.length, fileName);
  const header = parseHeader(bytes.subarray(8, 8 + n), bytes.length - 8 - n, fileName);
  const raw = new Map<string, RawTensor>();
  for (const [name, info] of header.tensors) {
    const [b, e] = info.dataOffsets;
    raw.set(name, {
      dtype: info.dtype,
      shape: info.shape,
      bytes: bytes.subarray(header.dataStart + b, header.dataStart + e),
    });
  }
  return { tensors: tensorsFromRaw(raw, fileName, false), raw, metadata: header.metadata };
}

/**
 * A safetensors file opened for lazy, per-tensor reads (the file is never loaded whole).
 *
 * @example
 * const r = await SafetensorsReader.open('model.safetensors');
 * try { const w = await r.readTensor('lm_head.weight'); } finally { await r.close(); }
 */
export class SafetensorsReader {
  private constructor(
    private readonly file: RandomAccessFile,
    readonly header: SafeHeader,
  ) {}

  /** Opens `path`, reads and validates its header against the file size. */
  static async open(path: string): Promise<SafetensorsReader> {
    assertLittleEndianHost();
    const file = await openRandomAccess(path);
    try {
      const n = readHeaderLength(await file.read(0, Math.min(8, file.size)), file.size, path);
      const header = parseHeader(await file.read(8, n), file.size - 8 - n, path);
      return new SafetensorsReader(file, header);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  /** Tensor names in data-section order. */
  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  /** `__metadata__` (empty object when the file has none). */
  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  /** Header entry of `name`; a CheckpointError when the file has no such tensor. */
  info(name: string): SafeTensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) {
      throw new CheckpointError(
        this.file.path,
        `has no tensor named "${name}"`,
        undefined,
        `available: ${this.names().slice(0, 8).join(', ')}`,
      );
    }
    return info;
  }

  /** Reads one tensor's raw bytes by range. */
  async readRaw(name: string): Promise<RawTensor> {
    const info = this.info(name);
    const [b, e] = info.dataOffsets;
    return {
      dtype: info.dtype,
      shape: info.shape,
      bytes: await this.file.read(this.header.dataStart + b, e - b),
    };
  }

  /**
   * Reads one tensor's raw bytes into the front of `buffer` (reused across tensors by a streaming
   * loader); the returned bytes are a view on `buffer`, valid until its next use.
   */
  async readRawInto(name: string, buffer: Uint8Array): Promise<RawTensor> {
    const info = this.info(name);
    const [b, e] = info.dataOffsets;
    return {
      dtype: info.dtype,
      shape: info.shape,
      bytes: await this.file.readInto(this.header.dataStart + b, e - b, buffer),
    };
  }

  /**
   * Reads `length` bytes of one tensor's data starting `start` bytes into it, into the front of
   * `buffer` (a loader converting a large tensor a block of rows at a time); a view on `buffer`.
   */
  async readRangeInto(name: string, start: number, length: number, buffer: Uint8Array): Promise<Uint8Array> {
    const [b, e] = this.info(name).dataOffsets;
    if (start < 0 || length < 0 || start + length > e - b) {
      throw new CheckpointError(
        this.file.path,
        `range [${start}, ${start + length}) is outside tensor "${name}" (${e - b} bytes)`,
        undefined,
        'read within the tensor',
      );
    }
    return this.file.readInto(this.header.dataStart + b + start, length, buffer);
  }

  /** The file this reader reads (for error messages). */
  get path(): string {
    return this.file.path;
  }

  /** Reads one tensor as a tfjs tensor (caller owns it). */
  async readTensor(name: string): Promise<Tensor> {
    return rawToTensor(await this.readRaw(name), `${this.file.path}: tensor "${name}"`, true);
  }

  /** Releases the file handle. */
  async close(): Promise<void> {
    await this.file.close();
  }
}

/**
 * Loads a safetensors file tensor by tensor (never as one string or one giant read).
 * The caller owns the returned tensors.
 *
 * @example
 * const { tensors } = await loadSafetensors('my-bert/model.safetensors');
 */
export async function loadSafetensors(path: string): Promise<SafetensorsContent> {
  const reader = await SafetensorsReader.open(path);
  try {
    const raw = new Map<string, RawTensor>();
    for (const name of reader.names()) raw.set(name, await reader.readRaw(name));
    // The bytes were just read for us: F32/I32 tensors view them in place (raw and tensor share memory).
    return { tensors: tensorsFromRaw(raw, path, true), raw, metadata: reader.metadata };
  } finally {
    await reader.close();
  }
}

/**
 * Writes tensors to `path` atomically (temp file + fsync + rename), byte-identical to the reference.
 *
 * @example
 * await saveSafetensors('out/adapter_model.safetensors', weights, { format: 'pt' });
 */
export async function saveSafetensors(
  path: string,
  tensors: Map<string, SafeTensorInput>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, await encodeSafetensorsAsync(tensors, metadata));
}
