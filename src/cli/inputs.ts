/**
 * Checks on the files a command reads, before it reads them at length: the path exists (a typed
 * FileError naming the flag and path, exit 1), text is text (UTF-8 unless `--encoding` says otherwise; binary data and
 * other encodings are refused with the line and byte where they show, exit 1), and a training length
 * fits the model's positions.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataError } from '../errors.js';
import type { ParsedValue } from './args.js';
import { FileError } from './fs_errors.js';

/** Text encodings `--encoding` accepts (Node's Buffer decoders). */
export const ENCODINGS = ['utf-8', 'latin1', 'utf-16le'] as const;

/**
 * Throws a FileError (exit 1) naming `flag` and `file` when it does not exist or cannot be read.
 * @example checkInputPath('data/train.tsv', '--data');
 */
export function checkInputPath(file: string, flag: string): void {
  try {
    fs.statSync(file);
  } catch (e) {
    throw FileError.from(e, file, flag);
  }
}

/**
 * Where UTF-8 decoding of `bytes` first fails (byte offset), or -1 when it is valid UTF-8.
 * @example firstInvalidUtf8(new Uint8Array([0x61, 0xe9, 0x62])); // 1
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const n =
      b < 0x80 ? 0 : b >= 0xc2 && b < 0xe0 ? 1 : b >= 0xe0 && b < 0xf0 ? 2 : b >= 0xf0 && b < 0xf5 ? 3 : -1;
    if (n < 0 || i + n >= bytes.length + (n === 0 ? 1 : 0)) return i;
    for (let k = 1; k <= n; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return i;
    // overlong 3/4-byte forms and surrogates
    if (n === 2 && ((b === 0xe0 && bytes[i + 1]! < 0xa0) || (b === 0xed && bytes[i + 1]! >= 0xa0))) return i;
    if (n === 3 && ((b === 0xf0 && bytes[i + 1]! < 0x90) || (b === 0xf4 && bytes[i + 1]! >= 0x90))) return i;
    i += n + 1;
  }
  return -1;
}

function lineOf(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

/**
 * Refuses data that is not text in the declared encoding: a NUL byte (binary data) or, for UTF-8,
 * the first byte that is not valid UTF-8 (Latin-1 text, random bytes). DataError (exit 1) naming the
 * flag, file, line and byte offset, and the fix.
 * @example checkTextEncoding('train.txt', '--data', 'utf-8');
 */
export function checkTextEncoding(file: string, flag: string, encoding = 'utf-8'): void {
  if (fs.statSync(file).isDirectory()) return;
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw FileError.from(e, file, flag);
  }
  if (encoding === 'utf-16le') return; // NUL bytes are part of UTF-16 text
  const nul = bytes.indexOf(0);
  if (nul >= 0)
    throw new DataError(
      `${flag} ${file}`,
      `looks like binary data, not text (a NUL byte at line ${lineOf(bytes, nul)}, byte offset ${nul})`,
      undefined,
      'pass a text file (.txt for causal LM, .tsv/.csv/.jsonl for tables)',
    );
  if (encoding !== 'utf-8') return;
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0)
    throw new DataError(
      `${flag} ${file}`,
      `is not UTF-8 text (byte 0x${bytes[bad]!.toString(16).padStart(2, '0')} at line ${lineOf(bytes, bad)}, byte offset ${bad})`,
      undefined,
      'convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8), or pass --encoding latin1 if it is Latin-1 text',
    );
}

/**
 * Runs `fn` on option values whose `--data`/`--eval-data` are UTF-8: with another `--encoding`, the
 * files are transcoded into a private temp folder first (removed afterwards, whatever happens).
 * @example const d = await withEncoding(v, (w) => loadDataSets(w, tok, cache));
 */
export async function withEncoding<T>(
  v: Record<string, ParsedValue | undefined>,
  fn: (v: Record<string, ParsedValue | undefined>) => Promise<T>,
): Promise<T> {
  const enc = (v.encoding as string | undefined) ?? 'utf-8';
  if (enc === 'utf-8') return fn(v);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-encoding-'));
  try {
    const w = { ...v };
    for (const k of ['data', 'eval-data'] as const) {
      const f = v[k];
      if (typeof f !== 'string') continue;
      const out = path.join(dir, `${k}-${path.basename(f)}`);
      fs.writeFileSync(out, fs.readFileSync(f).toString(enc as BufferEncoding), 'utf8');
      w[k] = out;
    }
    return await fn(w);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The number of positions a model has (`max_position_embeddings` / `n_positions` of a Hugging Face
 * config, `seq_len` of a llama2.c header), or undefined when it cannot tell.
 * @example maxPositions('stories260K.bin'); // 512
 */
export function maxPositions(model: string): number | undefined {
  try {
    if (fs.statSync(model).isDirectory()) {
      const cfgPath = path.join(model, 'config.json');
      if (!fs.existsSync(cfgPath)) return undefined;
      const c = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
      const n = c.max_position_embeddings ?? c.n_positions ?? c.n_ctx;
      // BERT-style models use 2 of RoBERTa's positions for padding offsets; the config value is the cap
      return typeof n === 'number' && n > 0 ? n : undefined;
    }
    // llama2.c: 7 int32 header fields, the last is seq_len
    const fd = fs.openSync(model, 'r');
    try {
      const head = Buffer.alloc(28);
      if (fs.readSync(fd, head, 0, 28, 0) < 28) return undefined;
      const seqLen = head.readInt32LE(24);
      return seqLen > 0 ? seqLen : undefined;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
}
