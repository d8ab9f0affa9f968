/**
 * Causal-LM loss over a token stream, the way the stories260K oracle was computed: used to compare a
 * quantised model with its f32 twin (docs/qlora.md) and a fine-tuned model with its base.
 *
 * @example
 * const ids = corpusIds(text, (s) => tok.encode(s, { addSpecialTokens: false }), 1, 2048);
 * windowedLoss(model, ids, 256); // nats/token
 */
import { tf } from '../tensor/tf.js';
import { DataError } from '../errors.js';
import type { ModelInputs, ModelOutput } from './base.js';

/**
 * Token ids for causal-LM evaluation the way the stories260K oracle was computed: every blank-line
 * separated block is encoded with BOS in front, the blocks are concatenated and cut after `maxTokens`.
 */
export function corpusIds(
  text: string,
  encode: (block: string) => number[],
  bos: number,
  maxTokens: number,
): number[] {
  const ids: number[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    if (block.trim().length === 0) continue;
    ids.push(bos, ...encode(block.trim()));
    if (ids.length >= maxTokens) break;
  }
  return ids.slice(0, maxTokens);
}

/**
 * Mean next-token cross-entropy (nats/token) over non-overlapping windows of `window` tokens, `batch`
 * windows per forward. The model's mode is left as found; every tensor is disposed.
 *
 * @example windowedLoss(llama, ids, 256) // ≈ 1.43 for stories260K on TinyStories val
 */
export function windowedLoss(
  model: { forward(inputs: ModelInputs): ModelOutput },
  ids: number[],
  window: number,
  batch = 4,
): number {
  const windows: number[][] = [];
  for (let s = 0; s + window <= ids.length; s += window) windows.push(ids.slice(s, s + window));
  if (windows.length === 0)
    throw new DataError('windowedLoss', `needs at least ${window} tokens`, ids.length, 'pass more text');
  let sum = 0;
  for (let i = 0; i < windows.length; i += batch) {
    const group = windows.slice(i, i + batch);
    sum +=
      tf.tidy(() => {
        const input = tf.tensor2d(group, [group.length, window], 'int32');
        return model.forward({ inputIds: input, labels: input }).loss!.dataSync()[0]!;
      }) * group.length;
  }
  return sum / windows.length;
}
