/**
 * Autoregressive decoding for causal LMs with a KV cache: the prompt runs once, then each step feeds
 * only the newest token. Greedy (temperature 0), temperature, top-k and top-p (nucleus) sampling, with
 * a seeded generator so a seed fixes the sample.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { ConfigError } from '../errors.js';
import { Rng } from '../util/rng.js';
import type { KVCache, PreTrainedModel } from './base.js';
import { openNativeDecoder, type NativeDecoder } from './native_decode.js';

export interface GenerateOptions {
  /** Number of tokens to produce (fewer if an EOS token comes first). */
  maxNewTokens: number;
  /** 0 (default) = greedy argmax; otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent = no limit). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 or absent = all). */
  topP?: number;
  /** Seed of the sampling generator (default 0). */
  seed?: number;
  /** Stop after producing this token (or any of these). */
  eosTokenId?: number | number[];
  /** Called with each new token id and its index among the new tokens, as soon as it is chosen. */
  onToken?: (id: number, index: number) => void;
  /**
   * Use the native decode engine when the native backend can run this model (default true);
   * false forces the tfjs path (the reference the native one is tested against).
   */
  native?: boolean;
}

function checkOptions(opts: GenerateOptions): void {
  const { maxNewTokens, temperature = 0, topK = 0, topP = 1 } = opts;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new ConfigError(
      'generate.maxNewTokens',
      'must be a non-negative integer',
      maxNewTokens,
      'pass e.g. 256',
    );
  }
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new ConfigError('generate.temperature', 'must be ≥ 0', temperature, 'use 0 for greedy decoding');
  }
  if (!Number.isInteger(topK) || topK < 0)
    throw new ConfigError('generate.topK', 'must be a non-negative integer', topK, 'use 0 for no limit');
  if (!(topP > 0 && topP <= 1))
    throw new ConfigError('generate.topP', 'must be in (0, 1]', topP, 'use 1 for no limit');
}

/** Index of the largest value (the first one on ties, like `torch.argmax`). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * Picks the next token from one row of logits: greedy at temperature 0, otherwise softmax(logits / T)
 * restricted by top-k then top-p, sampled with `rng`.
 *
 * @example sampleToken(logits, { temperature: 0.8, topK: 40, topP: 0.95 }, new Rng(0))
 */
export function sampleToken(
  logits: ArrayLike<number>,
  opts: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>,
  rng: Rng,
): number {
  const temperature = opts.temperature ?? 0;
  if (temperature === 0) return argmax(logits);
  const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
  const topK = opts.topK ?? 0;
  let kept = topK > 0 ? order.slice(0, Math.min(topK, order.length)) : order;
  const maxLogit = logits[kept[0]!]! / temperature;
  const weights = kept.map((i) => Math.exp(logits[i]! / temperature - maxLogit)); // descending
  let total = weights.reduce((a, b) => a + b, 0);
  const topP = opts.topP ?? 1;
  if (topP < 1) {
    let cumulative = 0;
    let n = 0;
    while (n < kept.length && cumulative < topP * total) cumulative += weights[n++]!; // nucleus: ≥ 1 token
    kept = kept.slice(0, n);
    weights.length = n;
    total = cumulative;
  }
  let u = rng.uniform() * total;
  for (let j = 0; j < kept.length; j++) {
    u -= weights[j]!;
    if (u < 0) return kept[j]!;
  }
  return kept[kept.length - 1]!;
}

function disposeCache(cache: KVCache | undefined): void {
  cache?.keys.forEach((t) => t.dispose());
  cache?.values.forEach((t) => t.dispose());
}

/** Runs one cached step on `ids` ([1, n]) and returns the last position's logits and the new cache. */
async function step(model: PreTrainedModel, ids: number[], past: KVCache | undefined) {
  const inputIds = tf.tensor2d([ids], [1, ids.length], 'int32');
  const out = model.forward(
    past ? { inputIds, pastKeyValues: past, useCache: true } : { inputIds, useCache: true },
  );
  inputIds.dispose();
  disposeCache(past);
  const [, t, v] = out.logits.shape as number[];
  const last: Tensor = out.logits.slice([0, t! - 1, 0], [1, 1, v!]); // [1, 1, V]
  out.logits.dispose();
  out.loss?.dispose();
  const logits = (await last.data()) as Float32Array; // [V]
  last.dispose();
  return { logits, cache: out.pastKeyValues };
}

/**
 * Generates up to `maxNewTokens` ids after the prompt `inputIds` with a causal LM, reusing the KV cache
 * (the prefix is never recomputed). Runs the model in eval mode and restores its mode afterwards;
 * every tensor it makes is disposed. Returns only the new ids.
 *
 * @example
 * const ids = await generate(model, [1, 403, 407, 261, 378], { maxNewTokens: 32, temperature: 0 });
 * const sampled = await generate(model, prompt, { maxNewTokens: 64, temperature: 0.8, topP: 0.9, seed: 7 });
 */
export async function generate(
  model: PreTrainedModel,
  inputIds: number[],
  opts: GenerateOptions,
): Promise<number[]> {
  if (model.taskType !== 'CAUSAL_LM') {
    throw new ConfigError(
      'generate',
      'needs a causal LM',
      model.architecture,
      'load the model with task CAUSAL_LM',
    );
  }
  if (inputIds.length === 0)
    throw new ConfigError('generate.inputIds', 'must hold at least one token', 0, 'start with BOS');
  checkOptions(opts);
  const eos = new Set(opts.eosTokenId === undefined ? [] : [opts.eosTokenId].flat());
  const rng = new Rng(opts.seed ?? 0);
  // Native decode engine (native_decode.ts): one addon call per token; null → the tfjs loop below.
  const native = opts.native === false ? null : openNativeDecoder(model, inputIds.length + opts.maxNewTokens);
  if (native) return generateNative(native, inputIds, opts, (logits) => sampleToken(logits, opts, rng), eos);
  const wasTraining = model.training;
  model.eval();
  const generated: number[] = [];
  let cache: KVCache | undefined;
  try {
    let feed = inputIds;
    while (generated.length < opts.maxNewTokens) {
      const next = await step(model, feed, cache);
      cache = next.cache;
      const id = sampleToken(next.logits, opts, rng);
      generated.push(id);
      opts.onToken?.(id, generated.length - 1);
      if (eos.has(id)) break;
      feed = [id];
    }
  } finally {
    disposeCache(cache);
    model.train(wasTraining);
  }
  return generated;
}

/**
 * The token loop of {@link generate} on a native decoder (same sampling, EOS and callbacks). Greedy
 * without a callback runs the whole loop in one addon call; otherwise one call per token, into one
 * reused logits buffer.
 */
function generateNative(
  native: NativeDecoder,
  inputIds: number[],
  opts: GenerateOptions,
  pick: (logits: Float32Array) => number,
  eos: Set<number>,
): number[] {
  const generated: number[] = [];
  try {
    if (opts.maxNewTokens === 0) return generated;
    const first = pick(native.feed(inputIds));
    generated.push(first);
    opts.onToken?.(first, 0);
    if (eos.has(first) || opts.maxNewTokens === 1) return generated;
    if ((opts.temperature ?? 0) === 0 && !opts.onToken)
      return generated.concat(native.greedy(first, opts.maxNewTokens - 1, [...eos]));
    const { handle, vocabSize } = native;
    const [tok, row, slot] = [Int32Array.of(first), new Int32Array(1), new Int32Array(1)];
    const logits = new Float32Array(vocabSize);
    while (generated.length < opts.maxNewTokens) {
      handle.step(tok, row, slot, logits);
      const id = pick(logits);
      generated.push(id);
      opts.onToken?.(id, generated.length - 1);
      if (eos.has(id)) break;
      tok[0] = id;
    }
  } finally {
    native.dispose();
  }
  return generated;
}
