/**
 * safetensors header: parsing with the reference validator's rules (safetensors@24b0b28 tensor.rs
 * `read_metadata` / `Metadata::validate`) and writing with the reference writer's layout (`prepare`).
 * Every fault raises a {@link CheckpointError} that names the file and the rule.
 */
import { CheckpointError } from '../errors.js';
import { dtypeRank, dtypeSize, isKnownUnsupportedDtype, isSafeDtype, type SafeDtype } from './dtypes.js';

/** The reference reader refuses headers above 100 MB (tensor.rs `MAX_HEADER_SIZE`). */
export const MAX_HEADER_SIZE = 100_000_000;

/** One tensor's header entry; offsets are relative to the start of the data section. */
export interface SafeTensorInfo {
  dtype: SafeDtype;
  shape: number[];
  /** `[begin, end)` byte offsets into the data section. */
  dataOffsets: [number, number];
}

/** A parsed, validated header. `tensors` keeps the order of the data section (sorted by offset). */
export interface SafeHeader {
  tensors: Map<string, SafeTensorInfo>;
  metadata: Record<string, string>;
  /** Bytes from the start of the file to the data section: 8 + header length. */
  dataStart: number;
}

function fault(
  file: string,
  rule: string,
  got?: unknown,
  fix = 'the file is corrupt or not a safetensors file',
): CheckpointError {
  return new CheckpointError(file, rule, got, fix);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Reads the 8-byte little-endian header length and checks it against the file size.
 *
 * @example
 * const n = readHeaderLength(bytes.subarray(0, 8), bytes.length, 'model.safetensors');
 */
export function readHeaderLength(first8: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || first8.length < 8) {
    throw fault(
      file,
      'safetensors header too small: the file is shorter than the 8-byte length prefix',
      fileSize,
    );
  }
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const big = view.getBigUint64(0, true);
  const n = Number(big);
  if (n > MAX_HEADER_SIZE) {
    // the bigint itself, so a length like 2^64 − 1 is printed exactly (Number() would round it)
    throw fault(file, `safetensors header length exceeds the ${MAX_HEADER_SIZE}-byte limit`, big);
  }
  if (8 + n > fileSize) {
    throw fault(
      file,
      `safetensors header length runs past the end of the file (${fileSize} bytes)`,
      n,
      'the file is truncated',
    );
  }
  return n;
}

function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fault(file, 'safetensors header is not valid UTF-8');
  }
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw fault(file, '__metadata__ must be an object of string to string', value);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw fault(file, `__metadata__.${k} must be a string`, v);
    out[k] = v;
  }
  return out;
}

function parseEntry(name: string, value: unknown, file: string): SafeTensorInfo {
  const where = `tensor "${name}"`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw fault(file, `${where}: entry must be an object with dtype, shape and data_offsets`, value);
  }
  const e = value as Record<string, unknown>;
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!(field in e)) throw fault(file, `${where}: missing field "${field}"`);
  }
  if (!isSafeDtype(e.dtype)) {
    const known = typeof e.dtype === 'string' && isKnownUnsupportedDtype(e.dtype);
    throw fault(
      file,
      known ? `${where}: dtype is not supported by lowrank` : `${where}: unknown dtype`,
      e.dtype,
      known
        ? 'convert the tensor to F32, F16 or BF16 first'
        : 'expected one of F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL',
    );
  }
  if (!Array.isArray(e.shape) || !e.shape.every(isNonNegInt)) {
    throw fault(file, `${where}: shape must be an array of non-negative integers`, e.shape);
  }
  const off = e.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every(isNonNegInt)) {
    throw fault(file, `${where}: data_offsets must be two non-negative integers [begin, end]`, off);
  }
  if (off[1] < off[0]) throw fault(file, `${where}: data_offsets end is before begin`, off);
  return { dtype: e.dtype, shape: e.shape as number[], dataOffsets: [off[0], off[1]] };
}

/** Checks that the entries tile the data section exactly: contiguous from 0, no overlap, no gap, no tail. */
function validateLayout(entries: [string, SafeTensorInfo][], dataSize: number, file: string): void {
  entries.sort(
    (a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1],
  );
  let expected = 0;
  for (const [name, info] of entries) {
    const [begin, end] = info.dataOffsets;
    if (begin < expected) {
      throw fault(
        file,
        `tensor "${name}": data_offsets overlap the previous tensor (begin ${begin} < ${expected})`,
        info.dataOffsets,
      );
    }
    if (begin > expected) {
      throw fault(
        file,
        `tensor "${name}": data_offsets leave a gap before it (begin ${begin}, expected ${expected})`,
        info.dataOffsets,
      );
    }
    if (end > dataSize) {
      throw fault(
        file,
        `tensor "${name}": data_offsets run past the data section (${dataSize} bytes)`,
        info.dataOffsets,
        'the file is truncated',
      );
    }
    const numel = info.shape.reduce((a, b) => a * b, 1);
    const want = numel * dtypeSize(info.dtype);
    if (end - begin !== want) {
      throw fault(
        file,
        `tensor "${name}": shape ${JSON.stringify(info.shape)} × ${info.dtype} needs ${want} bytes but data_offsets span ${end - begin}`,
        info.dataOffsets,
      );
    }
    expected = end;
  }
  if (expected !== dataSize) {
    throw fault(
      file,
      `tensors do not cover the data section: they end at ${expected} but it has ${dataSize} bytes`,
      dataSize,
    );
  }
}

/**
 * Parses and validates the JSON header (the bytes after the 8-byte length prefix).
 * `dataSize` is the size of the data section (file size − 8 − header length).
 *
 * @example
 * const header = parseHeader(bytes.subarray(8, 8 + n), bytes.length - 8 - n, 'model.safetensors');
 */
export function parseHeader(headerBytes: Uint8Array, dataSize: number, file: string): SafeHeader {
  const text = decodeUtf8(headerBytes, file);
  if (!text.startsWith('{')) throw fault(file, 'safetensors header must start with "{"', text.slice(0, 16));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw fault(
      file,
      'safetensors header is not valid JSON',
      err instanceof Error ? err.message : String(err),
    );
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw fault(file, 'safetensors header must be a JSON object');
  }
  let metadata: Record<string, string> = {};
  const entries: [string, SafeTensorInfo][] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') metadata = parseMetadata(value, file);
    else entries.push([name, parseEntry(name, value, file)]);
  }
  validateLayout(entries, dataSize, file);
  return { tensors: new Map(entries), metadata, dataStart: 8 + headerBytes.length };
}

const utf8 = new TextEncoder();

/** Compares two strings by their UTF-8 bytes (Rust `String` order), not by UTF-16 code units. */
export function compareUtf8(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** A tensor about to be written: its dtype, shape and little-endian bytes. */
export interface PreparedTensor {
  name: string;
  dtype: SafeDtype;
  shape: number[];
  bytes: Uint8Array;
}

/**
 * Orders tensors as the reference writer does: dtype descending in enum order, then name ascending
 * bytewise (safetensors tensor.rs `prepare`).
 */
export function writerOrder(tensors: PreparedTensor[]): PreparedTensor[] {
  return [...tensors].sort((a, b) => dtypeRank(b.dtype) - dtypeRank(a.dtype) || compareUtf8(a.name, b.name));
}

/**
 * Serialises the header for already-ordered tensors: compact JSON, `__metadata__` first (its keys
 * sorted bytewise, since the reference's HashMap order is unspecified), then one
 * `{"dtype","shape","data_offsets"}` entry per tensor, padded with spaces to a multiple of 8.
 * Returns the 8-byte length prefix followed by the padded header.
 *
 * @example
 * const head = serializeHeader(writerOrder(prepared), { format: 'pt' });
 */
export function serializeHeader(
  ordered: PreparedTensor[],
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    const inner = keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',');
    parts.push(`"__metadata__":{${inner}}`);
  }
  let offset = 0;
  for (const t of ordered) {
    const end = offset + t.bytes.length;
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = utf8.encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}
