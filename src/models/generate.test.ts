/**
 * Decoding: KV-cached forwards equal full recomputes, the attention-mask length rule, greedy and sampled
 * generation, and generate's option checks, on the small GPT-2 and Llama of the model tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import { ConfigError, ShapeError } from '../errors.js';
import { Rng } from '../util/rng.js';
import type { KVCache } from './base.js';
import { modelFromConfig } from './from_config.js';
import { argmax, generate, sampleToken } from './generate.js';
import { maxDiff } from '../testing/compare.js';
import { SMALL_GPT2 as GPT2, SMALL_LLAMA as LLAMA, disposeCache, ids } from '../testing/small_models.js';

/** KV-cached and full forwards sum the same products in a different grouping (float32 rounding). */
const CACHE_ATOL = 1e-5;

for (const [name, config] of [
  ['GPT-2', GPT2],
  ['Llama (GQA)', LLAMA],
] as const) {
  test(`${name}: KV-cached decoding equals a full recompute, without leaking tensors`, () => {
    manualSeed(3);
    const model = modelFromConfig(config).eval();
    const tokens = [[5, 9, 1, 33, 7, 12, 2, 30]];
    const before = tf.memory().numTensors;
    const full = ids(tokens);
    const ref = model.forward({ inputIds: full }).logits; // [1, 8, V]
    // prompt of 3, then one token at a time
    let cache: KVCache | undefined;
    const pieces: Tensor[] = [];
    for (const [from, to] of [
      [0, 3],
      [3, 4],
      [4, 5],
      [5, 6],
      [6, 8],
    ]) {
      const inputIds = ids([tokens[0]!.slice(from, to)]);
      const out = model.forward({ inputIds, pastKeyValues: cache, useCache: true });
      disposeCache(cache);
      cache = out.pastKeyValues;
      pieces.push(out.logits);
      inputIds.dispose();
    }
    const stitched = tf.concat(pieces, 1);
    assert.ok(maxDiff(stitched.dataSync(), ref.dataSync()) < CACHE_ATOL);
    assert.deepEqual(cache!.keys[0]!.shape.slice(0, 3), [1, config === LLAMA ? 2 : 4, 8]);
    [stitched, ref, full, ...pieces].forEach((t) => t.dispose());
    disposeCache(cache);
    assert.equal(tf.memory().numTensors, before);
    model.dispose();
  });
}

test('an attention mask covering cache + new tokens is required to have that length', () => {
  manualSeed(4);
  const model = modelFromConfig(LLAMA).eval();
  const first = model.forward({ inputIds: ids([[3, 4]]), useCache: true });
  const next = ids([[5]]);
  const badMask = tf.ones([1, 1], 'int32');
  assert.throws(
    () => model.forward({ inputIds: next, attentionMask: badMask, pastKeyValues: first.pastKeyValues }),
    ShapeError,
  );
  [first.logits, next, badMask].forEach((t) => t.dispose());
  disposeCache(first.pastKeyValues);
  model.dispose();
});

test('greedy generate equals an argmax loop over full recomputes; tensor count stays flat', async () => {
  manualSeed(5);
  const model = modelFromConfig(LLAMA);
  const prompt = [1, 7, 3];
  const seq = [...prompt];
  model.eval();
  for (let i = 0; i < 6; i++) {
    const x = ids([seq]);
    const logits = model.forward({ inputIds: x }).logits;
    const last = logits.slice([0, seq.length - 1, 0], [1, 1, 40]);
    seq.push(argmax(last.dataSync()));
    [x, logits, last].forEach((t) => t.dispose());
  }
  model.train();
  const before = tf.memory().numTensors;
  const seen: number[] = [];
  const out = await generate(model, prompt, {
    maxNewTokens: 6,
    temperature: 0,
    onToken: (id) => seen.push(id),
  });
  assert.deepEqual(out, seq.slice(prompt.length));
  assert.deepEqual(seen, out);
  assert.equal(model.training, true, 'generate restores the training mode');
  const again = await generate(model, prompt, {
    maxNewTokens: 6,
    temperature: 0.9,
    topK: 5,
    topP: 0.9,
    seed: 11,
  });
  const same = await generate(model, prompt, {
    maxNewTokens: 6,
    temperature: 0.9,
    topK: 5,
    topP: 0.9,
    seed: 11,
  });
  assert.deepEqual(again, same, 'a seed fixes the sample');
  assert.equal(tf.memory().numTensors, before);
  const stopped = await generate(model, prompt, { maxNewTokens: 6, eosTokenId: out[1] });
  assert.equal(stopped.length, out.indexOf(out[1]!) + 1);
  model.dispose();
});

test('sampleToken honours top-k and top-p', () => {
  const logits = [0, 5, 4.9, -3, 1];
  const rng = new Rng(1);
  const drawn = new Set(
    Array.from({ length: 200 }, () => sampleToken(logits, { temperature: 1, topK: 2 }, rng)),
  );
  assert.deepEqual([...drawn].sort(), [1, 2]);
  // p(1) ≈ 0.50, so top-p 0.3 keeps only the best token
  const nucleus = new Set(
    Array.from({ length: 50 }, () => sampleToken(logits, { temperature: 1, topP: 0.3 }, rng)),
  );
  assert.deepEqual([...nucleus], [1]);
  assert.equal(sampleToken(logits, { temperature: 0 }, rng), 1);
});

test('generate rejects bad options and non-LM models', async () => {
  manualSeed(6);
  const lm = modelFromConfig(GPT2);
  await assert.rejects(generate(lm, [1], { maxNewTokens: 2, topP: 0 }), ConfigError);
  await assert.rejects(generate(lm, [], { maxNewTokens: 2 }), ConfigError);
  await assert.rejects(generate(lm, [1], { maxNewTokens: 40 }), ShapeError); // past n_positions
  const clf = modelFromConfig(GPT2, { task: 'SEQ_CLS' });
  await assert.rejects(generate(clf, [1], { maxNewTokens: 2 }), ConfigError);
  lm.dispose();
  clf.dispose();
});
