/**
 * The demo's downstream task with a known answer: the "fine-tuned" model is the pretrained one with a
 * low-rank change planted in a few chosen matrices (ΔW = s·U·Vᵀ, U and V orthonormal, rank k, every
 * singular value s), and the downstream data is text sampled from that changed model. An adapter fits
 * the data exactly when it reproduces the planted change, so the needed update is concentrated by
 * construction: rank k in a few matrices, nothing elsewhere. With an even rank r < k per matrix (LoRA)
 * only r of the k directions fit (Eckart–Young); an allocation by importance (AdaLoRA, Zhang et al.
 * 2023 §3) can move the budget to where the change is.
 */
import { tf } from '../../tensor/tf.js';
import type { Module } from '../../nn/module.js';
import type { KVCache, PreTrainedModel } from '../../models/base.js';
import { Rng } from '../../util/rng.js';

/** One planted change: matrix path (Hugging Face key without `.weight`), rank and singular value. */
export interface PlantedMatrix {
  path: string;
  rank: number;
  /** The singular value of every planted direction. */
  sigma: number;
}

/**
 * Orthonormal columns (Gram–Schmidt on Gaussian vectors): a [n, k] row-major matrix.
 * @example orthonormalColumns(8, 2, new Rng(0)); // 16 numbers, columns of unit norm, orthogonal
 */
export function orthonormalColumns(n: number, k: number, rng: Rng): Float32Array {
  if (k > n) throw new RangeError(`orthonormalColumns: k (${k}) must not exceed n (${n})`);
  const cols: Float64Array[] = [];
  while (cols.length < k) {
    const v = Float64Array.from(rng.normalArray(n));
    for (const c of cols) {
      let d = 0;
      for (let i = 0; i < n; i++) d += v[i]! * c[i]!;
      for (let i = 0; i < n; i++) v[i]! -= d * c[i]!;
    }
    const norm = Math.hypot(...v);
    if (norm < 1e-6) continue; // (numerically) dependent draw: draw again
    for (let i = 0; i < n; i++) v[i]! /= norm;
    cols.push(v);
  }
  const out = new Float32Array(n * k);
  for (let j = 0; j < k; j++) for (let i = 0; i < n; i++) out[i * k + j] = cols[j]![i]!;
  return out;
}

/**
 * Root-mean-square singular value of a [out, in] matrix: ‖W‖_F / √min(out, in). The planted singular
 * value is a multiple of it, so "strength 1" means "as large as a typical direction of W itself".
 * @example await rmsSingularValue(tf.eye(4)); // 1
 */
export async function rmsSingularValue(w: tf.Tensor): Promise<number> {
  const [out, inn] = w.shape as [number, number];
  const sq = tf.tidy(() => tf.sum(tf.square(w)));
  const v = (await sq.data())[0]!;
  sq.dispose();
  return Math.sqrt(v / Math.min(out, inn));
}

/**
 * Adds ΔW = σ·U·Vᵀ (rank k, U [out, k] and V [in, k] orthonormal, drawn from `seed`) to each listed
 * matrix of `model`, in place; σ = `strength` × the matrix's RMS singular value. `inputDirs` ([in, k],
 * orthonormal) fixes V, e.g. to the directions the matrix's inputs really take ({@link inputSubspace}).
 * Returns what was planted.
 * @example await plantChange(model, [{ path: 'model.layers.0.self_attn.v_proj', rank: 8 }], 2, 7);
 */
export async function plantChange(
  model: Module,
  targets: { path: string; rank: number; inputDirs?: Float32Array }[],
  strength: number,
  seed: number,
): Promise<PlantedMatrix[]> {
  const rng = new Rng(seed);
  const params = new Map(model.namedParameters());
  const planted: PlantedMatrix[] = [];
  for (const t of targets) {
    const w = params.get(`${t.path}.weight`);
    if (!w || w.rank !== 2) throw new RangeError(`plantChange: no matrix ${t.path}.weight in the model`);
    const [out, inn] = w.shape as [number, number];
    const sigma = strength * (await rmsSingularValue(w));
    const u = orthonormalColumns(out, t.rank, rng);
    const v = t.inputDirs ?? orthonormalColumns(inn, t.rank, rng);
    const next = tf.tidy(() =>
      tf.add(
        w,
        tf.mul(tf.matMul(tf.tensor2d(u, [out, t.rank]), tf.tensor2d(v, [inn, t.rank]), false, true), sigma),
      ),
    );
    w.assign(next);
    next.dispose();
    planted.push({ path: t.path, rank: t.rank, sigma });
  }
  return planted;
}

/**
 * Samples `count` sequences of `length` tokens from a causal LM at temperature 1, each after `prefix`
 * (e.g. BOS and the tokenizer's dummy-prefix space), drawing only from the token ids in `allowed`
 * (the demo's characters, so the text re-tokenises to exactly these ids). Batched, with the model's
 * KV cache (one new position per forward). Returns the sampled ids (prefix excluded).
 * @example const seqs = await sampleSequences(teacher, [1, 259], 32, 512, allowedIds, 3);
 */
export async function sampleSequences(
  model: PreTrainedModel,
  prefix: number[],
  length: number,
  count: number,
  allowed: number[],
  seed: number,
  batch = 256,
): Promise<number[][]> {
  const rng = new Rng(seed);
  const out: number[][] = [];
  const allowedIds = tf.tensor1d(allowed, 'int32');
  model.eval();
  try {
    for (let start = 0; start < count; start += batch) {
      const b = Math.min(batch, count - start);
      const rows = Array.from({ length: b }, () => [] as number[]);
      let feed = tf.tensor2d(Array.from({ length: b }, () => prefix).flat(), [b, prefix.length], 'int32');
      let cache: KVCache | undefined;
      try {
        for (let t = 0; t < length; t++) {
          const o = model.forward(
            cache
              ? { inputIds: feed, pastKeyValues: cache, useCache: true }
              : { inputIds: feed, useCache: true },
          );
          disposeCache(cache);
          cache = o.pastKeyValues;
          const probs = tf.tidy(() => {
            const [, T, V] = o.logits.shape as [number, number, number];
            const last = tf.reshape(tf.slice(o.logits, [0, T - 1, 0], [b, 1, V]), [b, V]);
            return tf.softmax(tf.gather(last, allowedIds, 1)); // [b, |allowed|]
          });
          o.logits.dispose();
          const p = await probs.data();
          probs.dispose();
          const next: number[] = [];
          for (let i = 0; i < b; i++) {
            let u = rng.uniform();
            let j = 0;
            for (; j < allowed.length - 1; j++) {
              u -= p[i * allowed.length + j]!;
              if (u < 0) break;
            }
            rows[i]!.push(allowed[j]!);
            next.push(allowed[j]!);
          }
          feed.dispose();
          feed = tf.tensor2d(next, [b, 1], 'int32');
        }
      } finally {
        feed.dispose();
        disposeCache(cache);
      }
      out.push(...rows);
    }
  } finally {
    allowedIds.dispose();
  }
  return out;
}

function disposeCache(cache: KVCache | undefined): void {
  cache?.keys.forEach((t) => t.dispose());
  cache?.values.forEach((t) => t.dispose());
}

/**
 * The loss floor of data sampled by `sampleSequences`: the mean cross-entropy, per predicted token,
 * of the sampling distribution itself (the model's softmax over `allowed` only) on the sampled tokens;
 * the prefix tokens after the first are certain in the data, so they count as zero loss. This is what
 * a perfect fit of the data reaches (its entropy, estimated on these sequences), comparable with the
 * causal-LM loss the trainer reports on the same sequences.
 * @example const floor = await samplingLoss(teacher, [1, 259], devSeqs, allowedIds);
 */
export async function samplingLoss(
  model: PreTrainedModel,
  prefix: number[],
  seqs: number[][],
  allowed: number[],
  batch = 128,
): Promise<number> {
  const col = new Map(allowed.map((id, j) => [id, j]));
  let sum = 0;
  let count = 0;
  model.eval();
  for (let start = 0; start < seqs.length; start += batch) {
    const rows = seqs.slice(start, start + batch).map((s) => [...prefix, ...s]);
    const T = rows[0]!.length;
    const logp = tf.tidy(() => {
      const ids = tf.tensor2d(rows.flat(), [rows.length, T], 'int32');
      const logits = model.forward({ inputIds: ids }).logits; // [b, T, vocab]
      return tf.logSoftmax(tf.gather(logits, tf.tensor1d(allowed, 'int32'), 2)); // [b, T, |allowed|]
    });
    const lp = await logp.data();
    logp.dispose();
    const A = allowed.length;
    for (let i = 0; i < rows.length; i++) {
      // targets at positions 1..T-1; position t predicts rows[i][t + 1]
      for (let t = prefix.length - 1; t < T - 1; t++)
        sum -= lp[(i * T + t) * A + col.get(rows[i]![t + 1]!)!]!;
      count += T - 1;
    }
  }
  return sum / count;
}

/**
 * The top-`k` principal directions (uncentred) of the inputs a linear layer of `model` sees on the
 * given token sequences: an orthonormal [in, k] row-major matrix. A change planted along them acts on
 * the activations the model really has (a random V would mostly meet directions the data never takes,
 * and the needed update would be far lower-rank than planted). Subspace iteration on XᵀX.
 * @example const v = await inputSubspace(model, 'model.layers.0.self_attn.v_proj', seqs, 8);
 */
export async function inputSubspace(
  model: PreTrainedModel,
  path: string,
  seqs: number[][],
  k: number,
  seed = 0,
): Promise<Float32Array> {
  const lin = model.getSubmodule(path) as Module & { forward(x: tf.Tensor): tf.Tensor };
  const original = lin.forward;
  const parts: tf.Tensor[] = [];
  lin.forward = (x: tf.Tensor) => {
    const n = x.shape[x.shape.length - 1]!;
    const flat = tf.reshape(x, [-1, n]);
    parts.push(tf.keep(tf.matMul(flat, flat, true, false))); // [in, in]
    return original.call(lin, x);
  };
  model.eval();
  try {
    tf.tidy(() => {
      const ids = tf.tensor2d(seqs.flat(), [seqs.length, seqs[0]!.length], 'int32');
      model.forward({ inputIds: ids });
    });
  } finally {
    lin.forward = original;
  }
  const cov = tf.tidy(() => tf.addN(parts));
  tf.dispose(parts);
  const c = await cov.data();
  const n = cov.shape[0]!;
  cov.dispose();
  let v = orthonormalColumns(n, k, new Rng(seed));
  for (let it = 0; it < SUBSPACE_ITERATIONS; it++) {
    const next = new Float32Array(n * k);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < k; j++) {
        let acc = 0;
        for (let m = 0; m < n; m++) acc += c[i * n + m]! * v[m * k + j]!;
        next[i * k + j] = acc;
      }
    v = orthonormalize(next, n, k);
  }
  return v;
}

/** Subspace-iteration rounds: the 48- to 96-dimensional covariances of the demo converge well before. */
const SUBSPACE_ITERATIONS = 60;

/** Gram–Schmidt on the columns of a [n, k] row-major matrix. */
function orthonormalize(a: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let j = 0; j < k; j++) {
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = a[i * k + j]!;
    for (let p = 0; p < j; p++) {
      let d = 0;
      for (let i = 0; i < n; i++) d += v[i]! * out[i * k + p]!;
      for (let i = 0; i < n; i++) v[i]! -= d * out[i * k + p]!;
    }
    const norm = Math.hypot(...v) || 1;
    for (let i = 0; i < n; i++) out[i * k + j] = v[i]! / norm;
  }
  return out;
}
