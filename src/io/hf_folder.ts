/**
 * Hugging Face model folders: `config.json` plus `model.safetensors` or a sharded checkpoint
 * (`model.safetensors.index.json` + `model-0000i-of-0000n.safetensors`), as `save_pretrained` writes.
 * Pickled checkpoints (`pytorch_model.bin`) are refused: unpickling runs arbitrary code (docs/design.md
 * "Floors").
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { CheckpointError } from '../errors.js';
import { loadSafetensors, saveSafetensors, type SafeTensorInput } from './safetensors.js';
import { isDirectory, joinPath, listDir, makeDir, pathExists, readJson, writeFileAtomic } from './source.js';

/** A parsed `config.json` (snake_case keys as on disk). Same shape as `HFConfig` in models/base.ts. */
export type HFConfigJson = Record<string, unknown> & { model_type?: string; architectures?: string[] };

/** What {@link readHFFolder} returns. The caller owns (and disposes) `weights`. */
export interface HFFolder {
  config: HFConfigJson;
  weights: Map<string, Tensor>;
  /** Entry names of the folder (sorted), e.g. to find tokenizer files. */
  files: string[];
  /** `__metadata__` of the (first) safetensors file. */
  metadata: Record<string, string>;
}

export const SAFETENSORS_WEIGHTS = 'model.safetensors';
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';
const PICKLE_FILES = [
  'pytorch_model.bin',
  'pytorch_model.bin.index.json',
  'model.bin',
  'tf_model.h5',
  'flax_model.msgpack',
];

const CONVERT_FIX =
  'convert it to safetensors in Python: `from transformers import AutoModel; ' +
  'AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)` (lowrank never unpickles: a pickle can run code)';

/** Reads and checks `config.json` of a model folder (shared with hf_stream.ts). */
export async function readConfig(dir: string): Promise<HFConfigJson> {
  const file = joinPath(dir, 'config.json');
  if (!(await pathExists(file))) {
    throw new CheckpointError(
      dir,
      'has no config.json',
      undefined,
      'pass a Hugging Face model folder (save_pretrained output)',
    );
  }
  const config = await readJson(file);
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new CheckpointError(file, 'must hold a JSON object', config, 'regenerate it with save_pretrained');
  }
  return config as HFConfigJson;
}

/** Parses `model.safetensors.index.json` into tensor name → shard file. */
export function parseIndex(json: unknown, file: string): Map<string, string> {
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new CheckpointError(
      file,
      'needs a "weight_map" object of tensor name → shard file',
      weightMap,
      'regenerate the index',
    );
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new CheckpointError(
        file,
        `weight_map["${name}"] must be a shard file name in the same folder`,
        shard,
      );
    }
    out.set(name, shard);
  }
  return out;
}

/**
 * Throws a CheckpointError naming the shard when a tensor the index places in it is not there
 * (`has` says which names were found in their shard).
 * @example assertIndexCovered(dir, weightMap, (name) => loaded.has(name));
 */
export function assertIndexCovered(
  dir: string,
  weightMap: ReadonlyMap<string, string>,
  has: (name: string) => boolean,
): void {
  for (const [name, shard] of weightMap) {
    if (!has(name)) {
      throw new CheckpointError(
        joinPath(dir, shard),
        `lacks tensor "${name}" that ${SAFETENSORS_INDEX} places there`,
        undefined,
        'the shard and the index disagree; re-save the model',
      );
    }
  }
}

/**
 * Loads the tensors of a sharded checkpoint; every tensor the index lists must be in its shard.
 * Tensors a shard holds but the index does not list are ignored, as transformers does.
 */
async function readSharded(
  dir: string,
): Promise<{ weights: Map<string, Tensor>; metadata: Record<string, string> }> {
  const indexFile = joinPath(dir, SAFETENSORS_INDEX);
  const weightMap = parseIndex(await readJson(indexFile), indexFile);
  const shards = [...new Set(weightMap.values())].sort();
  const weights = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  try {
    for (const [i, shard] of shards.entries()) {
      const content = await loadSafetensors(joinPath(dir, shard));
      if (i === 0) metadata = content.metadata;
      for (const [name, t] of content.tensors) {
        if (weightMap.get(name) === shard) weights.set(name, t);
        else t.dispose();
      }
    }
    assertIndexCovered(dir, weightMap, (name) => weights.has(name));
  } catch (err) {
    weights.forEach((t) => t.dispose());
    throw err;
  }
  return { weights, metadata };
}

/** The error for a folder with no safetensors weights (a pickle is named as such). */
export function refuseOrMissing(dir: string, files: string[]): never {
  const pickle = files.find((f) => PICKLE_FILES.includes(f));
  if (pickle) {
    throw new CheckpointError(
      joinPath(dir, pickle),
      'is a pickle/framework checkpoint, which lowrank does not load',
      undefined,
      CONVERT_FIX,
    );
  }
  throw new CheckpointError(
    dir,
    `has neither ${SAFETENSORS_WEIGHTS} nor ${SAFETENSORS_INDEX}`,
    files,
    'pass a folder written by save_pretrained(safe_serialization=True)',
  );
}

/**
 * Reads a Hugging Face model folder: `config.json` and its safetensors weights (single or sharded).
 * The caller owns the returned tensors.
 *
 * @example
 * const { config, weights } = await readHFFolder('./my-bert');
 * console.log(config.architectures, weights.get('bert.embeddings.word_embeddings.weight')!.shape);
 */
export async function readHFFolder(dir: string): Promise<HFFolder> {
  if (!(await isDirectory(dir))) {
    throw new CheckpointError(dir, 'is not a directory', undefined, 'pass the folder that holds config.json');
  }
  const files = await listDir(dir);
  const config = await readConfig(dir);
  if (files.includes(SAFETENSORS_WEIGHTS)) {
    const { tensors, metadata } = await loadSafetensors(joinPath(dir, SAFETENSORS_WEIGHTS));
    return { config, weights: tensors, files, metadata };
  }
  if (files.includes(SAFETENSORS_INDEX)) {
    const { weights, metadata } = await readSharded(dir);
    return { config, weights, files, metadata };
  }
  return refuseOrMissing(dir, files);
}

/** Options of {@link writeHFFolder}. */
export interface WriteHFFolderOptions {
  /** Extra files written beside the model, e.g. `{'tokenizer.json': text}` or `{'tok512.bin': bytes}`. */
  tokenizerFiles?: Record<string, Uint8Array | string>;
  /** Split the weights into shards of at most this many bytes (+ an index), like `max_shard_size`. */
  maxShardBytes?: number;
}

/** Bytes a tensor takes in the file (tf tensors are written as F32/I32 (4 bytes) or BOOL (1 byte)). */
function inputBytes(t: SafeTensorInput): number {
  if (t instanceof tf.Tensor) return t.size * (t.dtype === 'bool' ? 1 : 4);
  return t.data.byteLength;
}

/** Greedy shard split in key order, as transformers' `shard_checkpoint` does. */
function splitShards(
  weights: Map<string, SafeTensorInput>,
  maxBytes: number,
): Map<string, SafeTensorInput>[] {
  const shards: Map<string, SafeTensorInput>[] = [new Map()];
  let size = 0;
  for (const [name, t] of weights) {
    const n = inputBytes(t);
    if (size + n > maxBytes && shards.at(-1)!.size > 0) {
      shards.push(new Map());
      size = 0;
    }
    shards.at(-1)!.set(name, t);
    size += n;
  }
  return shards;
}

async function writeSharded(
  dir: string,
  weights: Map<string, SafeTensorInput>,
  maxBytes: number,
): Promise<void> {
  const shards = splitShards(weights, maxBytes);
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const [i, shard] of shards.entries()) {
    const name = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
    await saveSafetensors(joinPath(dir, name), shard, { format: 'pt' });
    for (const [key, t] of shard) {
      weightMap[key] = name;
      total += inputBytes(t);
    }
  }
  const sorted = Object.fromEntries(
    Object.keys(weightMap)
      .sort()
      .map((k) => [k, weightMap[k]]),
  );
  const index = { metadata: { total_size: total }, weight_map: sorted };
  await writeFileAtomic(joinPath(dir, SAFETENSORS_INDEX), JSON.stringify(index, null, 2) + '\n');
}

/**
 * Writes a Hugging Face model folder (each file atomically): `config.json` (2-space JSON, as
 * transformers writes it), `model.safetensors` with metadata `{"format":"pt"}` (or shards + index), and
 * any tokenizer files.
 *
 * @example
 * await writeHFFolder('./out', { model_type: 'llama', architectures: ['LlamaForCausalLM'] }, weights,
 *   { tokenizerFiles: { 'tokenizer.json': tokJsonText } });
 */
export async function writeHFFolder(
  dir: string,
  config: HFConfigJson,
  weights: Map<string, SafeTensorInput>,
  opts: WriteHFFolderOptions = {},
): Promise<void> {
  await makeDir(dir);
  await writeFileAtomic(joinPath(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  if (opts.maxShardBytes !== undefined) await writeSharded(dir, weights, opts.maxShardBytes);
  else await saveSafetensors(joinPath(dir, SAFETENSORS_WEIGHTS), weights, { format: 'pt' });
  for (const [name, data] of Object.entries(opts.tokenizerFiles ?? {})) {
    if (name.includes('/') || name.includes('\\')) {
      throw new CheckpointError(
        `writeHFFolder tokenizerFiles["${name}"]`,
        'must be a plain file name',
        name,
        'drop the directory part',
      );
    }
    await writeFileAtomic(joinPath(dir, name), data);
  }
}
