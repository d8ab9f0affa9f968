/**
 * Turns what the user picks or drops (a `FileList` from a folder picker, a dropped file) into the
 * worker's `PickedFile`s: bytes plus the path inside the picked folder.
 */
import type { PickedFile } from './protocol.js';

/** Reads every file of a folder picker's FileList, keeping `webkitRelativePath` as the path. */
export async function readPicked(list: FileList | null): Promise<PickedFile[]> {
  if (!list || list.length === 0) return [];
  const out: PickedFile[] = [];
  for (const f of Array.from(list)) {
    const path = f.webkitRelativePath || f.name;
    out.push({ path, bytes: new Uint8Array(await f.arrayBuffer()) });
  }
  return out;
}

/** Guesses the data format from a file name (`.tsv`, `.csv`, `.jsonl`; anything else is plain text). */
export function formatFromName(name: string): 'text' | 'tsv' | 'csv' | 'jsonl' {
  const lower = name.toLowerCase();
  if (lower.endsWith('.tsv')) return 'tsv';
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  return 'text';
}

/** The ArrayBuffers behind some picked files, to transfer them to the worker without copying. */
export function buffersOf(files: PickedFile[]): ArrayBuffer[] {
  return files.map((f) => f.bytes.buffer as ArrayBuffer);
}

/** Saves `data` as a download named `name` (an object URL clicked through a temporary link). */
export function download(name: string, data: BlobPart, type: string): void {
  const url = URL.createObjectURL(new Blob([data], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
