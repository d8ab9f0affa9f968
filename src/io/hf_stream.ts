/**
 * A Hugging Face model folder opened for streaming: headers are read and checked up front (the same
 * checks and errors as {@link readHFFolder}), then tensors are read one at a time by byte range into
 * one reused buffer, so a loader can quantise or copy each into its final home before reading the
 * next. The whole checkpoint is never in memory, and no tensor exists twice beyond the one being read.
 */
import { CheckpointError } from '../errors.js';
import { SafetensorsReader, type RawTensor } from './safetensors.js';
import type { SafeTensorInfo } from './safetensors_header.js';
import {
  assertIndexCovered,
  SAFETENSORS_INDEX,
  SAFETENSORS_WEIGHTS,
  parseIndex,
  readConfig,
  refuseOrMissing,
  type HFConfigJson,
} from './hf_folder.js';
import { isDirectory, joinPath, listDir, readJson } from './source.js';

/** One checkpoint tensor: where it is and its header entry. */
export interface StreamEntry {
  name: string;
  info: SafeTensorInfo;
  reader: SafetensorsReader;
}

/** What {@link openHFFolderStream} returns. Call `close()` when done (also after an error). */
export interface HFFolderStream {
  config: HFConfigJson;
  /** Entry names of the folder (sorted). */
  files: string[];
  /** `__metadata__` of the (first) safetensors file. */
  metadata: Record<string, string>;
  /** Every tensor the checkpoint holds, in file then data-offset order (sequential reads). */
  entries: StreamEntry[];
  /** Bytes of the largest tensor (the size of the one read buffer). */
  maxTensorBytes: number;
  /**
   * Reads one tensor's raw bytes into `buffer` (at least `maxTensorBytes` long); the result is a view
   * on `buffer`, valid until the next read.
   */
  read(entry: StreamEntry, buffer: Uint8Array): Promise<RawTensor>;
  /** Reads `length` bytes of one tensor from byte `start` of its data into `buffer`; a view on it. */
  readRange(entry: StreamEntry, start: number, length: number, buffer: Uint8Array): Promise<Uint8Array>;
  /** Closes every shard file. */
  close(): Promise<void>;
}

function byteLength(info: SafeTensorInfo): number {
  return info.dataOffsets[1] - info.dataOffsets[0];
}

async function openAll(paths: string[]): Promise<SafetensorsReader[]> {
  const readers: SafetensorsReader[] = [];
  try {
    for (const p of paths) readers.push(await SafetensorsReader.open(p));
  } catch (err) {
    await Promise.all(readers.map((r) => r.close()));
    throw err;
  }
  return readers;
}

/** Entries of a sharded folder: what the index lists, each in its shard (as {@link readHFFolder}). */
function shardedEntries(
  dir: string,
  weightMap: Map<string, string>,
  readers: Map<string, SafetensorsReader>,
) {
  const entries: StreamEntry[] = [];
  for (const [shard, reader] of readers) {
    for (const name of reader.names()) {
      if (weightMap.get(name) === shard) entries.push({ name, info: reader.info(name), reader });
    }
  }
  const found = new Set(entries.map((e) => e.name));
  assertIndexCovered(dir, weightMap, (name) => found.has(name));
  return entries;
}

/**
 * Opens a Hugging Face model folder (single `model.safetensors` or sharded) for tensor-by-tensor reads.
 *
 * @example
 * const folder = await openHFFolderStream('./smollm');
 * const buf = new Uint8Array(folder.maxTensorBytes);
 * try { for (const e of folder.entries) use(e.name, await folder.read(e, buf)); } finally { await folder.close(); }
 */
export async function openHFFolderStream(dir: string): Promise<HFFolderStream> {
  if (!(await isDirectory(dir))) {
    throw new CheckpointError(dir, 'is not a directory', undefined, 'pass the folder that holds config.json');
  }
  const files = await listDir(dir);
  const config = await readConfig(dir);
  let readers: SafetensorsReader[];
  let entries: StreamEntry[];
  if (files.includes(SAFETENSORS_WEIGHTS)) {
    readers = await openAll([joinPath(dir, SAFETENSORS_WEIGHTS)]);
    entries = readers[0]!
      .names()
      .map((name) => ({ name, info: readers[0]!.info(name), reader: readers[0]! }));
  } else if (files.includes(SAFETENSORS_INDEX)) {
    const indexFile = joinPath(dir, SAFETENSORS_INDEX);
    const weightMap = parseIndex(await readJson(indexFile), indexFile);
    const shards = [...new Set(weightMap.values())].sort();
    readers = await openAll(shards.map((s) => joinPath(dir, s)));
    try {
      entries = shardedEntries(dir, weightMap, new Map(shards.map((s, i) => [s, readers[i]!])));
    } catch (err) {
      await Promise.all(readers.map((r) => r.close()));
      throw err;
    }
  } else {
    return refuseOrMissing(dir, files);
  }
  // data-offset order within each file: one forward pass over the bytes
  const fileOf = new Map(readers.map((r, i) => [r, i]));
  entries.sort(
    (a, b) => fileOf.get(a.reader)! - fileOf.get(b.reader)! || a.info.dataOffsets[0] - b.info.dataOffsets[0],
  );
  return {
    config,
    files,
    metadata: readers[0]?.metadata ?? {},
    entries,
    maxTensorBytes: entries.reduce((m, e) => Math.max(m, byteLength(e.info)), 0),
    read: (entry, buffer) => entry.reader.readRawInto(entry.name, buffer),
    readRange: (entry, start, length, buffer) =>
      entry.reader.readRangeInto(entry.name, start, length, buffer),
    close: async () => {
      await Promise.all(readers.map((r) => r.close()));
    },
  };
}
