/**
 * One decoding step over many sequences at once, each with its own KV cache of its own length
 * (continuous batching). The per-sequence caches [1, nKv, Lᵢ, d] are left-padded to the longest one and
 * stacked into one batch cache [B, nKv, Lmax, d]; `attentionMask` hides the padding and
 * `positionOffsets` gives every row its true position, so row i computes what a batch of one would
 * (HF's left-padded batched generation with `position_ids`). After the step each row's cache is cut
 * back to its real length + 1 and handed back per sequence.
 *
 * Masked positions get the finite MASK_VALUE, whose softmax weight is exactly 0 in float32, so the
 * padding changes no sum; results differ from the batch-of-one path only by BLAS summation order.
 *
 * @example
 * const prefill = await prefillStep((i) => model.forward(i), [1, 403, 407]);
 * const { logits, caches } = await raggedDecodeStep((i) => model.forward(i), [42, 7], [c1, c2]);
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { ShapeError } from '../errors.js';
import type { KVCache, ModelInputs, ModelOutput } from './base.js';

/** Runs the model on inputs (a causal LM's forward, or a mixed-adapter forward). */
export type ForwardFn = (inputs: ModelInputs) => ModelOutput;

/** Disposes every tensor of a cache (undefined: nothing). */
export function disposeKVCache(cache: KVCache | undefined): void {
  cache?.keys.forEach((t) => t.dispose());
  cache?.values.forEach((t) => t.dispose());
}

/** Number of cached positions of a batch-of-one cache. */
export function cacheLength(cache: KVCache): number {
  return cache.keys[0]!.shape[2]!;
}

/** A new cache handle sharing the same data (tf.clone is copy-on-write): for n > 1 choices. */
export function cloneKVCache(cache: KVCache): KVCache {
  return { keys: cache.keys.map((t) => tf.clone(t)), values: cache.values.map((t) => tf.clone(t)) };
}

/** Last position's logits of each row as plain arrays; disposes `logits` [B, T, V]. */
async function lastLogits(logits: Tensor): Promise<Float32Array[]> {
  const [b, t, v] = logits.shape as number[];
  const last = logits.slice([0, t! - 1, 0], [b!, 1, v!]); // [B, 1, V]
  logits.dispose();
  const flat = (await last.data()) as Float32Array; // B·V
  last.dispose();
  return Array.from({ length: b! }, (_, i) => flat.subarray(i * v!, (i + 1) * v!));
}

/**
 * Runs a whole prompt (one sequence, batch of one) and returns its last logits and its cache. The
 * same computation as the first step of `generate`.
 */
export async function prefillStep(
  forward: ForwardFn,
  ids: number[],
): Promise<{ logits: Float32Array; cache: KVCache }> {
  const inputIds = tf.tensor2d([ids], [1, ids.length], 'int32');
  let out: ModelOutput;
  try {
    out = forward({ inputIds, useCache: true });
  } finally {
    inputIds.dispose();
  }
  out.loss?.dispose();
  const [logits] = await lastLogits(out.logits);
  return { logits: logits!, cache: out.pastKeyValues! };
}

/**
 * Left-pads each [1, nKv, Lᵢ, d] tensor to `lmax` and stacks them: [B, nKv, Lmax, d]. Allocates.
 */
function stackLayer(parts: Tensor[], lmax: number): Tensor {
  return tf.tidy(() =>
    tf.concat(
      parts.map((p) =>
        p.shape[2] === lmax
          ? p
          : tf.pad(p, [
              [0, 0],
              [0, 0],
              [lmax - p.shape[2]!, 0],
              [0, 0],
            ]),
      ),
      0,
    ),
  );
}

/**
 * One decode step: row i feeds `tokens[i]` after its own cache `caches[i]` (batch-of-one caches of any
 * lengths). Consumes the caches (they are disposed) and returns each row's next-token logits and its
 * new cache (length + 1). With equal lengths no mask or offsets are needed and none are passed.
 */
export async function raggedDecodeStep(
  forward: ForwardFn,
  tokens: number[],
  caches: KVCache[],
): Promise<{ logits: Float32Array[]; caches: KVCache[] }> {
  if (tokens.length !== caches.length || tokens.length === 0) {
    throw new ShapeError(
      'raggedDecodeStep',
      'needs one cache per token and at least one row',
      [tokens.length, caches.length],
      'pass matching arrays',
    );
  }
  const lengths = caches.map(cacheLength);
  const lmax = Math.max(...lengths);
  const ragged = lengths.some((l) => l !== lmax);
  const nLayers = caches[0]!.keys.length;
  const out = tf.tidy(() => {
    const past: KVCache = {
      keys: Array.from({ length: nLayers }, (_, l) =>
        stackLayer(
          caches.map((c) => c.keys[l]!),
          lmax,
        ),
      ),
      values: Array.from({ length: nLayers }, (_, l) =>
        stackLayer(
          caches.map((c) => c.values[l]!),
          lmax,
        ),
      ),
    };
    const inputs: ModelInputs = {
      inputIds: tf.tensor2d(tokens, [tokens.length, 1], 'int32'),
      pastKeyValues: past,
      useCache: true,
    };
    if (ragged) {
      // row i: Lmax − Lᵢ padding slots, Lᵢ real cached tokens, then the new token
      inputs.attentionMask = tf.tensor2d(
        lengths.flatMap((l) => [...new Array<number>(lmax - l).fill(0), ...new Array<number>(l + 1).fill(1)]),
        [tokens.length, lmax + 1],
        'float32',
      );
      inputs.positionOffsets = lengths;
    }
    const o = forward(inputs);
    const next = o.pastKeyValues!;
    // row i keeps its last Lᵢ + 1 positions: [1, nKv, Lᵢ + 1, d]
    const cut = (t: Tensor, i: number) => {
      const [, h, , d] = t.shape as number[];
      return t.slice([i, 0, lmax - lengths[i]!, 0], [1, h!, lengths[i]! + 1, d!]);
    };
    const split = caches.map((_, i) => ({
      keys: next.keys.map((t) => cut(t, i)),
      values: next.values.map((t) => cut(t, i)),
    }));
    return { logits: o.logits, split };
  });
  caches.forEach(disposeKVCache);
  return { logits: await lastLogits(out.logits), caches: out.split };
}

/** Left-pads [B, nKv, L, d] with `n` zero positions on the time axis. Allocates (or returns `t`). */
function padLeft(t: Tensor, n: number): Tensor {
  return n === 0
    ? t
    : tf.pad(t, [
        [0, 0],
        [0, 0],
        [n, 0],
        [0, 0],
      ]);
}

/**
 * A persistent left-padded batch cache for continuous batching: rows join (`add`, after their
 * prefill) and leave (`remove`) between steps, and each `step` decodes one token for every row.
 * Between membership changes the batch cache just grows by one position per step (every row
 * appends one token), so no per-step restacking is needed; leaving rows are gathered out and
 * padding no remaining row needs is trimmed.
 *
 * @example
 * const batch = new RaggedBatch<string>();
 * batch.add('a', (await prefillStep(fwd, idsA)).cache);
 * batch.add('b', (await prefillStep(fwd, idsB)).cache);
 * const logits = await batch.step(fwd, [nextA, nextB]); // one row per member, in `batch.members` order
 * batch.remove(['a']);
 */
export class RaggedBatch<K> {
  private keys: Tensor[] = [];
  private values: Tensor[] = [];
  private lens: number[] = [];
  private rows: K[] = [];

  /** Row keys in batch order. */
  get members(): readonly K[] {
    return this.rows;
  }

  get size(): number {
    return this.rows.length;
  }

  /** Real cached length of each row. */
  get lengths(): readonly number[] {
    return this.lens;
  }

  private get lmax(): number {
    return this.keys.length === 0 ? 0 : this.keys[0]!.shape[2]!;
  }

  /** Appends a row with its batch-of-one cache; takes ownership of (disposes) the cache tensors. */
  add(row: K, cache: KVCache): void {
    const len = cacheLength(cache);
    if (this.rows.length === 0) {
      this.keys = [...cache.keys];
      this.values = [...cache.values];
    } else {
      const lmax = this.lmax;
      const top = Math.max(lmax, len);
      const join = (batch: Tensor[], one: Tensor[]) =>
        batch.map((t, l) =>
          tf.tidy(() => tf.concat([padLeft(t, top - lmax), padLeft(one[l]!, top - len)], 0)),
        );
      const keys = join(this.keys, cache.keys);
      const values = join(this.values, cache.values);
      tf.dispose([...this.keys, ...this.values]);
      disposeKVCache(cache);
      this.keys = keys;
      this.values = values;
    }
    this.rows.push(row);
    this.lens.push(len);
  }

  /** Removes rows (their cache rows are freed) and trims padding no remaining row needs. */
  remove(rows: Iterable<K>): void {
    const gone = new Set(rows);
    const keep = this.rows.map((r, i) => (gone.has(r) ? -1 : i)).filter((i) => i >= 0);
    if (keep.length === this.rows.length) return;
    if (keep.length === 0) return this.dispose();
    const lmax = this.lmax;
    const longest = Math.max(...keep.map((i) => this.lens[i]!));
    const cut = (t: Tensor) =>
      tf.tidy(() => {
        const g = tf.gather(t, keep, 0); // [B', nKv, Lmax, d]
        const [b, h, , d] = g.shape as number[];
        return longest === lmax ? g : g.slice([0, 0, lmax - longest, 0], [b!, h!, longest, d!]);
      });
    const keys = this.keys.map(cut);
    const values = this.values.map(cut);
    tf.dispose([...this.keys, ...this.values]);
    this.keys = keys;
    this.values = values;
    this.rows = keep.map((i) => this.rows[i]!);
    this.lens = keep.map((i) => this.lens[i]!);
  }

  /** Feeds `tokens[i]` to row i; returns each row's next-token logits. Every row grows by one. */
  async step(forward: ForwardFn, tokens: number[]): Promise<Float32Array[]> {
    const b = this.rows.length;
    if (tokens.length !== b || b === 0) {
      throw new ShapeError(
        'RaggedBatch.step',
        `needs one token per row (${b} rows, at least one)`,
        tokens.length,
        'pass a token per member',
      );
    }
    const lmax = this.lmax;
    const ragged = this.lens.some((l) => l !== lmax);
    const out = tf.tidy(() => {
      const inputs: ModelInputs = {
        inputIds: tf.tensor2d(tokens, [b, 1], 'int32'),
        pastKeyValues: { keys: this.keys, values: this.values },
        useCache: true,
      };
      if (ragged) {
        // row i: Lmax − Lᵢ padding slots, Lᵢ real cached tokens, then the new token
        inputs.attentionMask = tf.tensor2d(
          this.lens.flatMap((l) => [
            ...new Array<number>(lmax - l).fill(0),
            ...new Array<number>(l + 1).fill(1),
          ]),
          [b, lmax + 1],
          'float32',
        );
        inputs.positionOffsets = [...this.lens];
      }
      const o = forward(inputs);
      return { logits: o.logits, keys: o.pastKeyValues!.keys, values: o.pastKeyValues!.values };
    });
    tf.dispose([...this.keys, ...this.values]);
    this.keys = out.keys;
    this.values = out.values;
    this.lens = this.lens.map((l) => l + 1);
    return lastLogits(out.logits);
  }

  /** Frees every row. */
  dispose(): void {
    tf.dispose([...this.keys, ...this.values]);
    this.keys = [];
    this.values = [];
    this.rows = [];
    this.lens = [];
  }
}
