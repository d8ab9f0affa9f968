/**
 * Ragged KV caches (models/ragged_cache.ts): sequences of different lengths decoded in one batch give
 * the logits and greedy tokens of decoding each alone (`generate`), for Llama (RoPE, grouped-query
 * attention) and GPT-2 (learned absolute positions); no tensor is left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { manualSeed } from '../src/nn/init.js';
import { modelFromConfig } from '../src/models/from_config.js';
import type { KVCache, PreTrainedModel } from '../src/models/base.js';
import { argmax, generate } from '../src/models/generate.js';
import { disposeKVCache, prefillStep, RaggedBatch, raggedDecodeStep } from '../src/models/ragged_cache.js';
import { ShapeError } from '../src/errors.js';

/** Batched vs single rows: same kernels over padded (masked, exactly-zero-weight) positions; only the
 * BLAS summation order over the longer key axis differs. */
const RAGGED_LOGIT_ATOL = 2e-5;

const PROMPTS = [
  [1, 5, 9, 13, 2, 7, 30],
  [1, 40],
  [1, 3, 3, 8, 21],
];
const STEPS = 6;

function tinyModels(): [string, () => PreTrainedModel][] {
  return [
    [
      'llama (GQA, RoPE)',
      () =>
        modelFromConfig(
          {
            model_type: 'llama',
            vocab_size: 48,
            hidden_size: 32,
            intermediate_size: 48,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
          },
          { task: 'CAUSAL_LM' },
        ),
    ],
    [
      'gpt2 (absolute positions)',
      () =>
        modelFromConfig(
          { model_type: 'gpt2', vocab_size: 48, n_embd: 32, n_layer: 2, n_head: 4, n_positions: 64 },
          { task: 'CAUSAL_LM' },
        ),
    ],
  ];
}

for (const [name, make] of tinyModels()) {
  test(`ragged decode step equals decoding each sequence alone: ${name}`, async () => {
    await initBackend('auto');
    manualSeed(5);
    const model = make().eval();
    const forward = (i: Parameters<PreTrainedModel['forward']>[0]) => model.forward(i);
    const reference = await Promise.all(
      PROMPTS.map((p) => generate(model, p, { maxNewTokens: STEPS + 1, temperature: 0 })),
    );
    // single-sequence logits of every step, for the tolerance check
    const singleLogits: Float32Array[][] = [];
    for (const [i, p] of PROMPTS.entries()) {
      const rows: Float32Array[] = [];
      let { logits, cache } = await prefillStep(forward, p);
      for (let s = 0; s < STEPS; s++) {
        const out = await raggedDecodeStep(forward, [reference[i]![s]!], [cache]);
        cache = out.caches[0]!;
        logits = out.logits[0]!;
        rows.push(Float32Array.from(logits));
      }
      disposeKVCache(cache);
      singleLogits.push(rows);
    }
    const before = tf.memory().numTensors;
    const caches: KVCache[] = [];
    const next: number[] = [];
    for (const p of PROMPTS) {
      const { logits, cache } = await prefillStep(forward, p);
      caches.push(cache);
      next.push(argmax(logits));
    }
    const got: number[][] = next.map((t) => [t]);
    let live = caches;
    for (let s = 0; s < STEPS; s++) {
      const out = await raggedDecodeStep(
        forward,
        got.map((g) => g[g.length - 1]!),
        live,
      );
      live = out.caches;
      out.logits.forEach((row, i) => {
        const want = singleLogits[i]![s]!;
        let diff = 0;
        for (let j = 0; j < row.length; j++) diff = Math.max(diff, Math.abs(row[j]! - want[j]!));
        assert.ok(diff <= RAGGED_LOGIT_ATOL, `row ${i} step ${s}: max |Δlogit| ${diff}`);
        got[i]!.push(argmax(row));
      });
      live.forEach((c, i) => assert.equal(c.keys[0]!.shape[2], PROMPTS[i]!.length + s + 1));
    }
    live.forEach(disposeKVCache);
    assert.deepEqual(got, reference);
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
    model.dispose();
  });
}

/** Row i joins at step JOIN[i] and wants WANT[i] new tokens: joins and leaves mid-batch. */
const JOIN = [0, 2, 2, 5];
const WANT = [9, 3, 8, 4];
const PROMPTS4 = [...PROMPTS, [1, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]];

for (const [name, make] of tinyModels()) {
  test(`persistent ragged batch with rows joining and leaving equals generate: ${name}`, async () => {
    await initBackend('auto');
    manualSeed(6);
    const model = make().eval();
    const forward = (i: Parameters<PreTrainedModel['forward']>[0]) => model.forward(i);
    const want = await Promise.all(
      PROMPTS4.map((p, i) => generate(model, p, { maxNewTokens: WANT[i]!, temperature: 0 })),
    );
    const before = tf.memory().numTensors;
    const batch = new RaggedBatch<number>();
    const got: number[][] = PROMPTS4.map(() => []);
    for (let step = 0; got.some((g, i) => g.length < WANT[i]!); step++) {
      for (const [i, p] of PROMPTS4.entries()) {
        if (JOIN[i] !== step) continue;
        const { logits, cache } = await prefillStep(forward, p);
        got[i]!.push(argmax(logits));
        batch.add(i, cache);
      }
      batch.remove(batch.members.filter((i) => got[i]!.length >= WANT[i]!));
      if (batch.size === 0) continue;
      const rows = [...batch.members];
      const logits = await batch.step(
        forward,
        rows.map((i) => got[i]!.at(-1)!),
      );
      rows.forEach((i, k) => got[i]!.push(argmax(logits[k]!)));
      rows.forEach((i, k) => assert.equal(batch.lengths[k], PROMPTS4[i]!.length + got[i]!.length - 1));
    }
    batch.dispose();
    assert.deepEqual(got, want);
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
    model.dispose();
  });
}

test('positionOffsets must hold one non-negative integer per row', async () => {
  await initBackend('auto');
  manualSeed(1);
  const [, make] = tinyModels()[0]!;
  const model = make().eval();
  const inputIds = tf.tensor2d([[1], [2]], [2, 1], 'int32');
  assert.throws(() => model.forward({ inputIds, positionOffsets: [0] }), ShapeError);
  assert.throws(() => model.forward({ inputIds, positionOffsets: [0, -1] }), /positionOffsets/);
  inputIds.dispose();
  model.dispose();
});
