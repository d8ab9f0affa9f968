/**
 * Batched decoding across adapters on the native decode engine (issue 17: "unmerged adapters applied
 * per row, so batched decoding across adapters works for the server"): several prompts of any
 * lengths decode side by side, each with its own adapters, sharing one pass over the base weights per
 * step. PEFT's analogue is mixed-batch inference (`adapter_names=[…]` in `generate`).
 */
import { ConfigError, NotSupportedError } from '../errors.js';
import { Rng } from '../util/rng.js';
import type { PreTrainedModel } from './base.js';
import { type GenerateOptions, sampleToken } from './generate.js';
import { nativeDecodeSupport, openNativeDecoder } from './native_decode.js';

/** One sequence of a batch: its prompt and the adapters it runs with. */
export interface BatchRequest {
  inputIds: number[];
  /** Adapter names applied unmerged ([] = base model); null or absent = the model's active adapters. */
  adapters?: string[] | null;
}

/** {@link GenerateOptions} without the single-sequence callback; `seed` seeds row i with seed + i. */
export type BatchGenerateOptions = Omit<GenerateOptions, 'onToken' | 'native'> & {
  /** Called with the row, the new token id and its index among that row's new tokens. */
  onToken?: (row: number, id: number, index: number) => void;
};

/**
 * Generates for every request at once on the native decode engine and returns each row's new ids.
 * Rows stop on EOS independently. Throws NotSupportedError (with the reason) when the native engine
 * cannot run the model, e.g. on another tfjs backend.
 *
 * @example
 * const [sql, chat] = await generateBatch(model, [
 *   { inputIds: [1, 403, 407], adapters: ['sql'] },
 *   { inputIds: [1, 261], adapters: ['chat'] },
 * ], { maxNewTokens: 32 });
 */
export async function generateBatch(
  model: PreTrainedModel,
  requests: BatchRequest[],
  opts: BatchGenerateOptions,
): Promise<number[][]> {
  if (requests.length === 0) return [];
  requests.forEach((r, i) => {
    if (r.inputIds.length === 0) {
      throw new ConfigError(
        `generateBatch.requests[${i}].inputIds`,
        'must hold at least one token',
        0,
        'start with BOS',
      );
    }
  });
  const keys = [...new Set(requests.map((r) => JSON.stringify(r.adapters ?? null)))];
  const adapters = keys.map((k) => JSON.parse(k) as string[] | null);
  const slotOf = requests.map((r) => keys.indexOf(JSON.stringify(r.adapters ?? null)));
  const maxSeq = Math.max(...requests.map((r) => r.inputIds.length)) + opts.maxNewTokens;
  const config = { rows: requests.length, adapters };
  const dec = openNativeDecoder(model, maxSeq, config);
  if (!dec) {
    const why = nativeDecodeSupport(model, maxSeq, config) ?? 'unknown';
    throw new NotSupportedError(
      'generateBatch',
      `batched decoding off the native decode engine (${why})`,
      'use the native backend, or call generate once per request',
    );
  }
  const eos = new Set(opts.eosTokenId === undefined ? [] : [opts.eosTokenId].flat());
  const rngs = requests.map((_, i) => new Rng((opts.seed ?? 0) + i));
  const out: number[][] = requests.map(() => []);
  const v = dec.vocabSize;
  const pick = (row: number, logits: Float32Array): number => {
    const id = sampleToken(logits, opts, rngs[row]!);
    out[row]!.push(id);
    opts.onToken?.(row, id, out[row]!.length - 1);
    return id;
  };
  try {
    if (opts.maxNewTokens === 0) return out;
    // Prompts one row at a time (their lengths differ), then one batched step per new token.
    let live = requests.map((r, row) => ({ row, id: pick(row, dec.feed(r.inputIds, row, slotOf[row]!)) }));
    while (true) {
      live = live.filter(({ row, id }) => !eos.has(id) && out[row]!.length < opts.maxNewTokens);
      if (live.length === 0) break;
      const rows = live.map((l) => l.row);
      const logits = dec.step(
        live.map((l) => l.id),
        rows,
        rows.map((r) => slotOf[r]!),
      );
      live = rows.map((row, i) => ({ row, id: pick(row, logits.subarray(i * v, (i + 1) * v)) }));
    }
  } finally {
    dec.dispose();
  }
  return out;
}
