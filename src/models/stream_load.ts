/**
 * Streaming weight load: a model built with deferred init (nn/init.ts `deferInit`, zero placeholders
 * that take no memory until written) receives the checkpoint one tensor at a time. Each tensor is
 * read by byte range and either quantised straight into a `Linear4bit` from one reused buffer (QLoRA:
 * the f32 weight never exists as a tensor) or read into a fresh array that becomes its parameter's
 * data, before the next is read. Peak memory is the final model plus about one of the largest
 * quantised tensor, instead of the
 * checkpoint + a randomly initialised model + (for QLoRA) the f32 model before quantisation.
 */
import { tf, type Variable } from '../tensor/tf.js';
import { bytesToTypedArray } from '../io/dtypes.js';
import { rawToTensor } from '../io/safetensors.js';
import type { HFFolderStream } from '../io/hf_stream.js';
import type { PendingInit } from '../nn/init.js';
import { quantizeChild, quantizeTargets, type QuantizeOptions } from '../nn/linear4bit.js';
import { adoptHalfEmbedding, embeddingModules, HalfEmbedding, HalfLinear } from '../nn/half_embedding.js';
import type { Embedding } from '../nn/layers.js';
import { HalfMatrix, packHalfRows } from '../tensor/half.js';
import type { LinearLike } from '../nn/linear_like.js';
import type { PreTrainedModel } from './base.js';
import { planWeights, type LoadWeightsOptions, type WeightLoadReport } from './weights.js';

export interface StreamWeightsOptions extends LoadWeightsOptions {
  /** Placeholders from `deferInit`: what is not in the checkpoint gets its real init from here. */
  pending: PendingInit;
  /** Quantise the linear layers (except heads) to 4-bit as they are read (QLoRA). */
  quantize?: QuantizeOptions;
  /**
   * Store every embedding (and a head tied to one) in float16, converted a block of rows at a time as
   * it is read (nn/half_embedding.ts): the f32 table never exists whole.
   */
  halfEmbeddings?: boolean;
}

/** Bytes read per block when an embedding is converted to float16 while streaming. */
const HALF_READ_BYTES = 4 * 2 ** 20;

/**
 * Reads an embedding table a block of rows at a time, rounds each block to float16 into the packed
 * storage and installs it (a tied head follows). Returns false (nothing read) for a non-float dtype.
 */
async function streamHalfEmbedding(
  model: PreTrainedModel,
  folder: HFFolderStream,
  entry: HFFolderStream['entries'][number],
  target: [string, Embedding],
  where: string,
): Promise<boolean> {
  const dtype = entry.info.dtype;
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') return false;
  const [rows, cols] = entry.info.shape as [number, number];
  const rowBytes = cols * (dtype === 'F32' ? 4 : 2);
  const blockRows = Math.max(1, Math.floor(HALF_READ_BYTES / rowBytes));
  const buffer = new Uint8Array(Math.min(rows, blockRows) * rowBytes);
  const packed = new Int32Array(rows * Math.ceil(cols / 2));
  for (let r0 = 0; r0 < rows; r0 += blockRows) {
    const n = Math.min(blockRows, rows - r0);
    const bytes = await folder.readRange(entry, r0 * rowBytes, n * rowBytes, buffer);
    // F32: a view on the buffer; F16/BF16 widened exactly (float16 → f32 → float16 is the identity)
    packHalfRows(bytesToTypedArray(dtype, bytes, where, true) as Float32Array, cols, packed, r0);
  }
  adoptHalfEmbedding(model, target[0], target[1], HalfMatrix.fromPacked(packed, rows, cols));
  return true;
}

/** Splits `a.b.c` into the module path `a.b` and the leaf name `c`. */
function splitKey(key: string): [string, string] {
  const dot = key.lastIndexOf('.');
  return dot < 0 ? ['', key] : [key.slice(0, dot), key.slice(dot + 1)];
}

/**
 * Quantisation targets whose weight can be quantised as it is read: stored [out, in] (not a Conv1D
 * `fanInFanOut` weight) and not tied to another parameter. The rest are quantised after loading.
 */
function streamableTargets(
  model: PreTrainedModel,
  targets: [string, LinearLike][],
  sources: Map<string, string>,
): Map<string, [string, LinearLike]> {
  const uses = new Map<Variable, number>();
  for (const [, t] of model.stateDict()) uses.set(t as Variable, (uses.get(t as Variable) ?? 0) + 1);
  const out = new Map<string, [string, LinearLike]>();
  for (const [path, m] of targets) {
    const w = m.getParameter('weight');
    const ckpt = sources.get(`${path}.weight`);
    if (ckpt === undefined || m.fanInFanOut || !w || (uses.get(w) ?? 0) > 1) continue;
    out.set(ckpt, [path, m]);
  }
  return out;
}

/** Copies one checkpoint tensor into the parameter or buffer at `key` (a cast if the dtypes differ). */
function assignInto(model: PreTrainedModel, key: string, t: tf.Tensor): void {
  const [path, name] = splitKey(key);
  const mod = model.getSubmodule(path);
  const p = mod.getParameter(name);
  if (p) {
    if (t.dtype === p.dtype) p.assign(t);
    else tf.tidy(() => p.assign(tf.cast(t, p.dtype)));
    return;
  }
  mod.registerBuffer(name, tf.clone(t));
}

/**
 * Loads the checkpoint of an opened folder into `model` (built under `deferInit`), tensor by tensor.
 * Same renames, checks and report as `loadWeights`; with `quantize`, the same layers become 4-bit as
 * `quantizeModel` would make them. On error the caller disposes the model.
 *
 * @example
 * const folder = await openHFFolderStream(dir);
 * const { value: model, pending } = deferInit(() => modelFromConfig(folder.config));
 * const report = await streamWeights(model, folder, { pending, quantize: { quantType: 'nf4' } });
 */
export async function streamWeights(
  model: PreTrainedModel,
  folder: HFFolderStream,
  opts: StreamWeightsOptions,
): Promise<WeightLoadReport> {
  const shapes = new Map(folder.entries.map((e) => [e.name, e.info.shape]));
  const plan = planWeights(model, shapes, opts.allowNew ? { allowNew: opts.allowNew } : {});
  const targetOf = new Map<string, string>([...plan.sources].map(([own, ck]) => [ck, own]));
  const targets = opts.quantize ? quantizeTargets(model, opts.quantize).targets : [];
  const streamable = streamableTargets(model, targets, plan.sources);
  const done = new Set<string>();
  const halfTargets = new Map<string, [string, Embedding]>(
    opts.halfEmbeddings ? embeddingModules(model).map(([p, m]) => [`${p}.weight`, [p, m]]) : [],
  );
  // One buffer, reused, for the tensors quantised as they are read; every other tensor is read
  // straight into a fresh array that becomes its parameter's data (no copy at all).
  const reused = new Uint8Array(
    folder.entries.reduce(
      (m, e) => (streamable.has(e.name) ? Math.max(m, e.info.dataOffsets[1] - e.info.dataOffsets[0]) : m),
      0,
    ),
  );
  for (const entry of folder.entries) {
    const key = targetOf.get(entry.name);
    if (key === undefined) continue; // ignored checkpoint entry: never read
    const where = `${entry.reader.path}: tensor "${entry.name}"`;
    const half = halfTargets.get(key);
    if (half && (await streamHalfEmbedding(model, folder, entry, half, where))) continue;
    const owner = model.getSubmodule(splitKey(key)[0]);
    if (owner instanceof HalfEmbedding || owner instanceof HalfLinear) continue; // a tied alias already in float16
    const q = streamable.get(entry.name);
    if (q) {
      const raw = await folder.read(entry, reused);
      // a view on the read buffer for F32; widened F16/BF16 are one fresh array
      const values = bytesToTypedArray(raw.dtype, raw.bytes, where, true);
      if (values instanceof Float32Array) {
        quantizeChild(model, q[0], q[1], opts.quantize, values);
        done.add(q[0]);
        continue;
      }
    }
    const size = entry.info.dataOffsets[1] - entry.info.dataOffsets[0];
    const raw = await folder.read(entry, new Uint8Array(size));
    const t = rawToTensor(raw, where, true); // F32/I32 data become the tensor's own (a view, no copy)
    try {
      assignInto(model, key, t);
    } finally {
      t.dispose();
    }
  }
  // parameters the checkpoint lacks get the init an eager build would have given them
  for (const [, p] of model.namedParameters()) opts.pending.materialize(p);
  for (const [path, m] of targets) if (!done.has(path)) quantizeChild(model, path, m, opts.quantize);
  return { newKeys: plan.newKeys, ignoredKeys: plan.ignoredKeys };
}
