/**
 * Adapter composition: `addWeightedAdapter` ('cat' | 'linear' | 'svd', weighted.ts) and mixed-adapter
 * batches (mixed_batch.ts) on a tiny Llama.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../tensor/tf.js';
import { assertNoLeak } from '../../tensor/memory.js';
import { manualSeed } from '../../nn/init.js';
import type { HFConfig } from '../../models/base.js';
import { modelFromConfig } from '../../models/from_config.js';
import { ConfigError, NotSupportedError, ShapeError } from '../../errors.js';
import { perturbAdapter } from '../../testing/tuner_matrix.js';
import { getPeftModel, type PeftModel } from '../peft_model.js';
import { AdaLoraConfig } from '../adalora/config.js';
import '../adalora/index.js';
import './dora.js';
import { LoraConfig, LoraLinear, type LoraModel } from './index.js';
import { addWeightedAdapter } from './weighted.js';
import { mixedBatchForward, BASE_ADAPTER } from './mixed_batch.js';
import { maxDiff } from '../../testing/compare.js';
import { TINY_LLAMA } from '../../testing/tiny_models.js';

const LLAMA: HFConfig = { ...TINY_LLAMA, num_key_value_heads: 4 };
// Same products in another association/summation order (B·(A·x) vs. concatenated factors): f32 rounding.
const ATOL = 2e-5;
// Jacobi SVD in f64 of an f32 delta, rounded back to f32 factors.
const SVD_ATOL = 1e-5;

function setup(): { peft: PeftModel; tuner: LoraModel; x: Tensor } {
  manualSeed(9);
  const model = modelFromConfig(LLAMA, { task: 'CAUSAL_LM' });
  const peft = getPeftModel(
    model,
    new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['q_proj', 'v_proj'] }),
    'a',
  );
  peft.addAdapter('b', new LoraConfig({ r: 3, loraAlpha: 3, targetModules: ['v_proj', 'down_proj'] }));
  peft.addAdapter('c', new LoraConfig({ r: 2, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'] }));
  for (const a of ['a', 'b', 'c']) {
    peft.setAdapter(a);
    perturbAdapter(peft, a.charCodeAt(0), 0.2);
  }
  peft.eval();
  const x = tf.tensor2d(
    [
      [1, 5, 7, 2, 9],
      [3, 4, 8, 8, 6],
      [2, 2, 9, 1, 0],
    ],
    [3, 5],
    'int32',
  );
  return { peft, tuner: peft.base_model as unknown as LoraModel, x };
}

const logits = (peft: PeftModel, x: Tensor) =>
  tf.tidy(() => peft.forward({ inputIds: x }).logits.dataSync() as Float32Array);

function layer(tuner: LoraModel, path: string): LoraLinear {
  return tuner.model.getSubmodule(path) as LoraLinear;
}

test("cat of two adapters (B₁A₁ + B₂A₂, 'two low-rank updates', not DoRA) = both adapters active together", async () => {
  const { peft, tuner, x } = setup();
  peft.setAdapter(['a', 'b']);
  const together = logits(peft, x);
  const before = tf.memory().numTensors;
  peft.addWeightedAdapter(['a', 'b'], [1, 1], 'ab', 'cat'); // PeftModel → LoraModel → weighted.ts
  const newVars = tuner.tunerLayers().reduce((n, [, l]) => n + l.adapterParameters('ab').length, 0);
  assert.equal(newVars, 2 * 3 * 2, 'A and B on q, v, down of 2 layers');
  assert.equal(tf.memory().numTensors - before, newVars, 'only the new adapter variables remain');
  assert.equal(tuner.peftConfig.get('ab')!.r, 5);
  assert.equal(tuner.peftConfig.get('ab')!.loraAlpha, 5);
  assert.deepEqual(tuner.peftConfig.get('ab')!.targetModules, ['down_proj', 'q_proj', 'v_proj']);
  peft.setAdapter('ab');
  assert.ok(
    maxDiff(logits(peft, x), together) <= ATOL,
    `cat vs together: ${maxDiff(logits(peft, x), together)}`,
  );
  // per layer: ΔW_cat = ΔW_a + ΔW_b exactly up to rounding
  const v = layer(tuner, 'model.layers.0.self_attn.v_proj');
  const d = tf.tidy(
    () =>
      v
        .getDeltaWeight('ab')
        .sub(v.getDeltaWeight('a').add(v.getDeltaWeight('b')))
        .abs()
        .max()
        .dataSync()[0]!,
  );
  assert.ok(d <= ATOL);
  peft.setAdapter('a');
  assert.ok(maxDiff(logits(peft, x), together) > 100 * ATOL, 'adapter b matters, so the check can fail');
  peft.dispose();
  x.dispose();
});

test('linear: A = Σ w√s·Aᵢ, B = Σ w√s·Bᵢ (same ranks only); svd: truncated Σ wᵢΔWᵢ', () => {
  const { peft, tuner, x } = setup();
  addWeightedAdapter(tuner, ['a', 'c'], [0.5, 2], 'lin', 'linear');
  const q = layer(tuner, 'model.layers.1.self_attn.q_proj');
  const want = tf.tidy(() =>
    q.lora_A
      .get('a')!
      .weight.mul(0.5 * Math.sqrt(2))
      .add(q.lora_A.get('c')!.weight.mul(2 * Math.sqrt(4)))
      .dataSync(),
  );
  assert.ok(maxDiff(q.lora_A.get('lin')!.weight.dataSync(), want) <= ATOL);
  assert.equal(q.scalingOf('lin'), 1);
  assert.throws(() => addWeightedAdapter(tuner, ['a', 'b'], [1, 1], 'bad', 'linear'), /same r/);
  // svd with rank = r_a + r_c reproduces the weighted sum of the deltas
  addWeightedAdapter(tuner, ['a', 'c'], [0.5, 2], 'svd4', 'svd', { svdRank: 4 });
  const err = tf.tidy(() => {
    const sum = q.getDeltaWeight('a').mul(0.5).add(q.getDeltaWeight('c').mul(2));
    return q.getDeltaWeight('svd4').sub(sum).abs().max().dataSync()[0]!;
  });
  assert.ok(err <= SVD_ATOL, `svd rank 4: ${err}`);
  // a lower rank truncates: factors shaped [1, in] / [out, 1]
  addWeightedAdapter(tuner, ['a', 'c'], [0.5, 2], 'svd1', 'svd', { svdRank: 1 });
  assert.deepEqual(q.lora_A.get('svd1')!.weight.shape, [1, 16]);
  assert.ok(!peft.trainableParameters().some(([n]) => n.includes('.svd4.')), 'new adapters are added frozen');
  peft.dispose();
  x.dispose();
});

test('addWeightedAdapter rejects AdaLoRA, DoRA, unknown adapters, mismatched weights, existing names', () => {
  const { peft, tuner, x } = setup();
  assert.throws(() => addWeightedAdapter(tuner, ['a', 'zz'], [1, 1], 'n', 'cat'), ConfigError);
  assert.throws(() => addWeightedAdapter(tuner, ['a', 'b'], [1], 'n', 'cat'), /one weight per adapter/);
  assert.throws(() => addWeightedAdapter(tuner, ['a'], [1], 'b', 'cat'), /exists/);
  peft.addAdapter('d', new LoraConfig({ r: 2, loraAlpha: 4, useDora: true, targetModules: ['q_proj'] }));
  assert.throws(() => addWeightedAdapter(tuner, ['a', 'd'], [1, 1], 'n', 'cat'), NotSupportedError);
  manualSeed(1);
  const ada = getPeftModel(
    modelFromConfig(LLAMA),
    new AdaLoraConfig({ initR: 4, targetR: 2, totalStep: 10, targetModules: ['q_proj'] }),
  );
  assert.throws(
    () => addWeightedAdapter(ada.base_model as unknown as LoraModel, ['default'], [1], 'n', 'linear'),
    (e: unknown) => e instanceof ConfigError && /LoRA adapters only/.test(String(e)),
  );
  ada.dispose();
  peft.dispose();
  x.dispose();
});

test('mixed batch: each row equals the run with its own adapter; __base__ rows equal the base model', async () => {
  const { peft, tuner, x } = setup();
  const per = new Map<string, Float32Array>();
  for (const a of ['a', 'b']) {
    peft.setAdapter(a);
    per.set(a, logits(peft, x));
  }
  per.set(
    BASE_ADAPTER,
    peft.withAdapterDisabled(() => logits(peft, x)),
  );
  peft.setAdapter('a');
  const names = ['b', BASE_ADAPTER, 'a'];
  const mixed = await assertNoLeak(
    () => tf.tidy(() => peft.forwardMixed({ inputIds: x }, names).logits.dataSync() as Float32Array),
    0,
  );
  const row = mixed.length / 3;
  names.forEach((a, i) => {
    const want = per.get(a)!.subarray(i * row, (i + 1) * row);
    assert.ok(maxDiff(mixed.subarray(i * row, (i + 1) * row), want) <= ATOL, `row ${i} (${a})`);
  });
  assert.ok(maxDiff(per.get('a')!, per.get('b')!) > 100 * ATOL, 'adapters differ, so the check can fail');
  const v = layer(tuner, 'model.layers.0.self_attn.v_proj');
  assert.ok(!Object.prototype.hasOwnProperty.call(v, 'forward'), 'layers are restored after the call');
  assert.ok(maxDiff(logits(peft, x), per.get('a')!) <= ATOL, 'normal forward afterwards');
  assert.throws(() => mixedBatchForward(tuner, { inputIds: x }, ['a', 'b']), ShapeError);
  assert.throws(() => mixedBatchForward(tuner, { inputIds: x }, ['a', 'b', 'nope']), /unknown adapter/);
  peft.train();
  assert.throws(() => mixedBatchForward(tuner, { inputIds: x }, names), /inference only/);
  peft.eval();
  peft.merge();
  assert.throws(() => mixedBatchForward(tuner, { inputIds: x }, names), /merged/);
  peft.unmerge();
  peft.addAdapter('d', new LoraConfig({ r: 2, loraAlpha: 4, useDora: true, targetModules: ['q_proj'] }));
  assert.throws(() => mixedBatchForward(tuner, { inputIds: x }, ['a', 'd', 'a']), /DoRA/);
  peft.dispose();
  x.dispose();
});
