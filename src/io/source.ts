/**
 * The one place where io/ touches the file system (docs/design.md "Floors": nothing outside cli/ and web/
 * imports Node-only APIs directly; a browser build swaps this module). Every function takes a path string and
 * raises {@link CheckpointError} naming the path when the file is missing or unreadable.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { CheckpointError } from '../errors.js';

/** Turns a Node fs error into a CheckpointError that names the path and what to do. */
function fsError(path: string, action: string, err: unknown): CheckpointError {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') {
    return new CheckpointError(
      path,
      `cannot ${action}: no such file or directory`,
      undefined,
      'check the path',
    );
  }
  if (code === 'EISDIR') {
    return new CheckpointError(path, `cannot ${action}: it is a directory`, undefined, 'pass a file path');
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new CheckpointError(path, `cannot ${action}`, msg, 'check the path and its permissions');
}

/**
 * Reads a whole file as bytes.
 *
 * @example
 * const bytes = await readBytes('model.safetensors');
 */
export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    const buf = await fsp.readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw fsError(path, 'read file', err);
  }
}

/**
 * Reads a whole file as UTF-8 text.
 *
 * @example
 * const text = await readText('train.tsv');
 */
export async function readText(path: string): Promise<string> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (err) {
    throw fsError(path, 'read file', err);
  }
}

/**
 * Reads and parses a JSON file; a syntax error becomes a CheckpointError naming the file.
 *
 * @example
 * const config = await readJson('my-bert/config.json') as Record<string, unknown>;
 */
export async function readJson(path: string): Promise<unknown> {
  const text = await readText(path);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new CheckpointError(path, 'is not valid JSON', msg, 'fix or regenerate the file');
  }
}

/**
 * True when something (file or directory) exists at `path`.
 *
 * @example
 * if (await pathExists('out/config.json')) { ... }
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await fsp.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * True when `path` is an existing directory.
 *
 * @example
 * const folder = await isDirectory('./my-bert');
 */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await fsp.stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Lists the entry names of a directory, sorted bytewise for deterministic order.
 *
 * @example
 * const names = await listDir('./my-bert'); // ['config.json', 'model.safetensors', ...]
 */
export async function listDir(path: string): Promise<string[]> {
  try {
    return (await fsp.readdir(path)).sort();
  } catch (err) {
    throw fsError(path, 'list directory', err);
  }
}

/**
 * Creates a directory and its parents (no error if it exists).
 *
 * @example
 * await makeDir('out/adapter');
 */
export async function makeDir(path: string): Promise<void> {
  try {
    await fsp.mkdir(path, { recursive: true });
  } catch (err) {
    throw fsError(path, 'create directory', err);
  }
}

/** Joins path segments with the platform separator (kept here so callers never import node:path). */
export function joinPath(...parts: string[]): string {
  return nodePath.join(...parts);
}

/** The last segment of a path (`a/b/c.bin` → `c.bin`). */
export function baseName(path: string): string {
  return nodePath.basename(path);
}

let tmpCounter = 0;

/**
 * Makes a rename durable by fsync'ing its directory. Platforms that cannot open a directory for
 * syncing (Windows: EISDIR/EPERM) keep the rename, which is already atomic; that is the only error ignored.
 */
async function syncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL') throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * Writes a file atomically: the data goes to a temporary file in the same directory, is fsync'ed, and
 * is renamed over `path`, so readers see either the old file or the whole new one, never half of it.
 *
 * @example
 * await writeFileAtomic('out/config.json', JSON.stringify(config, null, 2));
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const dir = nodePath.dirname(path);
  const tmp = nodePath.join(dir, `.${nodePath.basename(path)}.${process.pid}.${tmpCounter++}.tmp`);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, 'w');
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, path);
    await syncDir(dir);
  } catch (err) {
    if (handle) await handle.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw fsError(path, 'write file', err);
  }
}

/**
 * Copies a file atomically (read whole, then {@link writeFileAtomic}).
 *
 * @example
 * await copyFileAtomic('tok512.bin', 'out/tok512.bin');
 */
export async function copyFileAtomic(from: string, to: string): Promise<void> {
  await writeFileAtomic(to, await readBytes(from));
}

/** A read-only file opened for reading byte ranges without loading it whole. */
export interface RandomAccessFile {
  /** The path it was opened from (used in error messages). */
  readonly path: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Reads exactly `length` bytes starting at `offset`; a short read is a CheckpointError. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Like {@link read}, into the front of `target` (a buffer reused across reads, so streaming a
   * checkpoint allocates no memory per tensor); returns the filled view `target[0, length)`.
   */
  readInto(offset: number, length: number, target: Uint8Array): Promise<Uint8Array>;
  /** Releases the file handle. */
  close(): Promise<void>;
}

/**
 * Opens a file for byte-range reads (used for large safetensors files: the header is parsed alone and
 * each tensor is read by range). Close it when done.
 *
 * @example
 * const f = await openRandomAccess('model.safetensors');
 * try { const head = await f.read(0, 8); } finally { await f.close(); }
 */
export async function openRandomAccess(path: string): Promise<RandomAccessFile> {
  let handle: fsp.FileHandle;
  let size: number;
  try {
    handle = await fsp.open(path, 'r');
    size = (await handle.stat()).size;
  } catch (err) {
    throw fsError(path, 'open file', err);
  }
  const file: RandomAccessFile = {
    path,
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      const inRange = offset >= 0 && length >= 0 && offset + length <= size; // else readInto names the range
      return file.readInto(offset, length, new Uint8Array(inRange ? length : 0));
    },
    async readInto(offset: number, length: number, target: Uint8Array): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new CheckpointError(
          path,
          `byte range [${offset}, ${offset + length}) is outside the file of ${size} bytes`,
          undefined,
          'the file is truncated or corrupt; re-download or regenerate it',
        );
      }
      if (target.byteLength < length) {
        throw new CheckpointError(path, `read buffer of ${target.byteLength} bytes is too small`, length);
      }
      const out = target.subarray(0, length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done);
        if (bytesRead === 0) {
          throw new CheckpointError(
            path,
            'file ended early while reading',
            offset + done,
            'the file is truncated',
          );
        }
        done += bytesRead;
      }
      return out;
    },
    async close(): Promise<void> {
      await handle.close();
    },
  };
  return file;
}

/**
 * Size of a file in bytes.
 *
 * @example
 * const n = fileSize('model.safetensors');
 */
export function fileSize(path: string): number {
  try {
    return fs.statSync(path).size;
  } catch (err) {
    throw fsError(path, 'stat file', err);
  }
}
