/**
 * The browser twin of `io/source.ts` (docs/design.md "Floors": a browser build swaps this module). The web
 * build aliases `source.js` to this file (see `web/vite.config.ts`), so every io/ function that reads
 * or writes a path (`loadModel`, `PeftModel.fromPretrained`, `savePretrained`, safetensors reading)
 * runs unchanged in a tab or a Web Worker.
 *
 * Paths name entries of an in-memory file tree: the page mounts the files the user picked
 * (`mountFile('/model/config.json', bytes)`), and whatever the library writes (`savePretrained('/out')`)
 * lands in the same tree, from where the page takes the bytes for download ({@link takeFile}).
 * Paths are POSIX-like; `a/b` and `/a/b` name the same file. Same exports and errors as `source.ts`.
 */
import { CheckpointError } from '../errors.js';

/** File contents by normalised path (no leading slash). Directories are implied by their files. */
const files = new Map<string, Uint8Array>();
/** Directories created explicitly with {@link makeDir} (they exist even while empty). */
const dirs = new Set<string>(['']);

/** Normalises `path`: resolves `.`/`..`, drops the leading and trailing slashes. */
function norm(path: string): string {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

function dirExists(p: string): boolean {
  if (dirs.has(p)) return true;
  const prefix = p + '/';
  for (const k of files.keys()) if (k.startsWith(prefix)) return true;
  return false;
}

function notFound(path: string, action: string): CheckpointError {
  return new CheckpointError(
    path,
    `cannot ${action}: no such file or directory`,
    undefined,
    'check the path (in the browser, pick or drop the file first)',
  );
}

function getFile(path: string, action: string): Uint8Array {
  const p = norm(path);
  const data = files.get(p);
  if (data) return data;
  if (dirExists(p))
    throw new CheckpointError(path, `cannot ${action}: it is a directory`, undefined, 'pass a file path');
  throw notFound(path, action);
}

/**
 * Puts a file into the in-memory tree (replacing any file at that path). The page calls this for
 * each file the user picks or drops; the bytes are kept by reference.
 *
 * @example
 * mountFile('/model/config.json', new TextEncoder().encode('{"model_type":"llama"}'));
 */
export function mountFile(path: string, data: Uint8Array): void {
  const p = norm(path);
  if (p === '') throw new CheckpointError(path, 'is not a file path', undefined, 'give a file name');
  files.set(p, data);
}

/**
 * Removes a file, or a directory and everything below it. Returns how many files were removed.
 *
 * @example
 * unmount('/adapters/old');
 */
export function unmount(path: string): number {
  const p = norm(path);
  let n = 0;
  if (files.delete(p)) n++;
  const prefix = p === '' ? '' : p + '/';
  for (const k of [...files.keys()]) {
    if (k.startsWith(prefix)) {
      files.delete(k);
      n++;
    }
  }
  for (const d of [...dirs]) if (d !== '' && (d === p || d.startsWith(prefix))) dirs.delete(d);
  return n;
}

/**
 * Returns the bytes of a file in the tree (what `savePretrained` wrote, for a download).
 *
 * @example
 * await peft.savePretrained('/out'); const bytes = takeFile('/out/adapter_model.safetensors');
 */
export function takeFile(path: string): Uint8Array {
  return getFile(path, 'read file');
}

/** Reads a whole file as bytes (same contract as `source.ts`). */
export async function readBytes(path: string): Promise<Uint8Array> {
  return getFile(path, 'read file');
}

/** Reads a whole file as UTF-8 text. */
export async function readText(path: string): Promise<string> {
  return new TextDecoder('utf-8').decode(getFile(path, 'read file'));
}

/** Reads and parses a JSON file; a syntax error becomes a CheckpointError naming the file. */
export async function readJson(path: string): Promise<unknown> {
  const text = await readText(path);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new CheckpointError(path, 'is not valid JSON', msg, 'fix or regenerate the file');
  }
}

/** True when a file or directory exists at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  const p = norm(path);
  return files.has(p) || dirExists(p);
}

/** True when `path` is an existing directory. */
export async function isDirectory(path: string): Promise<boolean> {
  const p = norm(path);
  return !files.has(p) && dirExists(p);
}

/** Lists the entry names of a directory, sorted bytewise like `source.ts`. */
export async function listDir(path: string): Promise<string[]> {
  const p = norm(path);
  if (files.has(p))
    throw new CheckpointError(path, 'cannot list directory: it is a file', undefined, 'pass a folder');
  if (!dirExists(p)) throw notFound(path, 'list directory');
  const prefix = p === '' ? '' : p + '/';
  const names = new Set<string>();
  for (const k of files.keys()) if (k.startsWith(prefix)) names.add(k.slice(prefix.length).split('/')[0]!);
  for (const d of dirs)
    if (d !== p && d.startsWith(prefix) && d !== '') names.add(d.slice(prefix.length).split('/')[0]!);
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Creates a directory and its parents (no error if it exists). */
export async function makeDir(path: string): Promise<void> {
  let p = norm(path);
  if (files.has(p))
    throw new CheckpointError(
      path,
      'cannot create directory: a file has that name',
      undefined,
      'choose another path',
    );
  while (p !== '') {
    dirs.add(p);
    p = parentOf(p);
  }
}

/** Joins path segments with `/`. */
export function joinPath(...parts: string[]): string {
  const joined = parts.filter((s) => s !== '').join('/');
  const n = norm(joined);
  return joined.startsWith('/') ? '/' + n : n === '' ? '.' : n;
}

/** The last segment of a path (`a/b/c.bin` → `c.bin`). */
export function baseName(path: string): string {
  const p = norm(path);
  return p.slice(p.lastIndexOf('/') + 1);
}

/**
 * Writes a file. In memory a write is one map assignment, so readers see the old or the new bytes,
 * never half of them (the guarantee of `source.ts`'s atomic rename). The parent must exist.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const p = norm(path);
  const parent = parentOf(p);
  if (!dirExists(parent)) throw notFound(path, 'write file');
  if (dirExists(p))
    throw new CheckpointError(path, 'cannot write file: it is a directory', undefined, 'pass a file path');
  files.set(p, typeof data === 'string' ? new TextEncoder().encode(data) : data.slice());
}

/** Copies a file. */
export async function copyFileAtomic(from: string, to: string): Promise<void> {
  await writeFileAtomic(to, await readBytes(from));
}

/** A read-only file opened for reading byte ranges (same interface as `source.ts`). */
export interface RandomAccessFile {
  readonly path: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  readInto(offset: number, length: number, target: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Opens a file for byte-range reads; reads are views on the mounted bytes. */
export async function openRandomAccess(path: string): Promise<RandomAccessFile> {
  const data = getFile(path, 'open file');
  const size = data.byteLength;
  const file: RandomAccessFile = {
    path,
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new CheckpointError(
          path,
          `byte range [${offset}, ${offset + length}) is outside the file of ${size} bytes`,
          undefined,
          'the file is truncated or corrupt; re-download or regenerate it',
        );
      }
      return data.subarray(offset, offset + length);
    },
    async readInto(offset: number, length: number, target: Uint8Array): Promise<Uint8Array> {
      const view = await file.read(offset, length);
      if (target.byteLength < length) {
        throw new CheckpointError(path, `read buffer of ${target.byteLength} bytes is too small`, length);
      }
      target.set(view);
      return target.subarray(0, length);
    },
    async close(): Promise<void> {},
  };
  return file;
}

/** Size of a file in bytes. */
export function fileSize(path: string): number {
  return getFile(path, 'stat file').byteLength;
}
