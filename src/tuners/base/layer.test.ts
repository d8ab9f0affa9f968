/**
 * The one adapter-layer template (`BaseTunerLayer`): every layer kind — LoRA Linear (plain, Conv1D
 * layout, `loraBias`), DoRA, LoRA Embedding and AdaLoRA's SVDLinear — goes through the same gate,
 * merge/unmerge driver and safe-merge check, and decides the cases the former copies disagreed on the
 * PEFT way: a non-finite safe merge throws `CheckpointError` (PEFT: ValueError "NaNs detected in the
 * merged weights") with the base untouched, and unmerging with nothing merged warns "Already unmerged.
 * Nothing to do." (PEFT's text).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor, type Variable } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import { Embedding, Linear } from '../../nn/layers.js';
import { assertNoLeak } from '../../tensor/memory.js';
import { CheckpointError } from '../../errors.js';
import { LoraLinear } from '../lora/layer.js';
import { LoraEmbedding } from '../lora/embedding.js';
import { SVDLinear, createSvdModule } from '../adalora/layer.js';
import '../lora/dora.js';
import { BaseTunerLayer, reconcileFanInFanOut } from './layer.js';
import { collectWarnings } from './warnings.js';

/** merge then unmerge is W + Δ − Δ in float32 (|W|, |Δ| = O(1) here): one rounding of each. */
const UNMERGE_ATOL = 1e-5;

interface Case {
  name: string;
  make(): BaseTunerLayer;
  input(): Tensor;
  /** The base weight variable the merge writes. */
  weight(l: BaseTunerLayer): Variable;
  /** Makes the adapter's delta non-finite (one of its tensors NaN). */
  poison(l: BaseTunerLayer): void;
  /** Makes the adapter's delta non-zero (so merge changes the weight). */
  perturb(l: BaseTunerLayer): void;
}

const fillAll = (vars: Variable[], f: (v: Variable) => Tensor) =>
  vars.forEach((v) => {
    const t = f(v);
    v.assign(t);
    t.dispose();
  });
const adapterVars = (l: BaseTunerLayer) => l.adapterParameters('default').map(([, v]) => v);
const ids = () => tf.tensor2d([[1, 4, 2]], [1, 3], 'int32');
const xs = (inF: number) => tf.tidy(() => tf.randomNormal([2, 3, inF], 0, 1, 'float32', 7));
const randomise = (l: BaseTunerLayer) =>
  fillAll(adapterVars(l), (v) => tf.randomNormal(v.shape, 0, 0.3, 'float32', 5));

const CASES: Case[] = [
  {
    name: 'LoRA Linear',
    make: () => new LoraLinear(new Linear(4, 3), 'default', { r: 2, loraAlpha: 4 }),
    input: () => xs(4),
    weight: (l) => (l.base_layer as Linear).weight,
    poison: (l) => fillAll([(l as LoraLinear).lora_B.get('default')!.weight], (v) => tf.fill(v.shape, NaN)),
    perturb: randomise,
  },
  {
    name: 'LoRA Linear, Conv1D layout + loraBias',
    make: () =>
      new LoraLinear(new Linear(4, 3, { fanInFanOut: true }), 'default', {
        r: 2,
        loraAlpha: 4,
        loraBias: true,
      }),
    input: () => xs(4),
    weight: (l) => (l.base_layer as Linear).weight,
    // only the bias goes non-finite: the bias merge is checked too, before anything is written
    poison: (l) =>
      fillAll([(l as LoraLinear).lora_B.get('default')!.bias!], (v) => tf.fill(v.shape, Infinity)),
    perturb: randomise,
  },
  {
    name: 'DoRA Linear',
    make: () => new LoraLinear(new Linear(4, 3), 'default', { r: 2, loraAlpha: 4, useDora: true }),
    input: () => xs(4),
    weight: (l) => (l.base_layer as Linear).weight,
    poison: (l) => fillAll([(l as LoraLinear).lora_B.get('default')!.weight], (v) => tf.fill(v.shape, NaN)),
    perturb: randomise,
  },
  {
    name: 'LoRA Embedding',
    make: () => new LoraEmbedding(new Embedding(6, 4), 'default', { r: 2, loraAlpha: 4 }),
    input: ids,
    weight: (l) => (l.base_layer as Embedding).weight,
    poison: (l) =>
      fillAll([(l as LoraEmbedding).lora_embedding_A.get('default')!], (v) => tf.fill(v.shape, NaN)),
    perturb: randomise,
  },
  {
    name: 'AdaLoRA SVDLinear',
    make: () =>
      new SVDLinear(new Linear(4, 3), 'default', {
        r: 2,
        loraAlpha: 4,
        loraDropout: 0,
        initLoraWeights: true,
      }),
    input: () => xs(4),
    weight: (l) => (l.base_layer as Linear).weight,
    poison: (l) => fillAll([(l as SVDLinear).lora_E.get('default')!], (v) => tf.fill(v.shape, NaN)),
    perturb: randomise,
  },
];

for (const c of CASES) {
  test(`adapter-layer template, ${c.name}: non-finite safe merge throws CheckpointError and writes nothing`, async () => {
    manualSeed(1);
    const layer = c.make();
    c.perturb(layer);
    c.poison(layer);
    const bias = (layer.base_layer as Linear).bias;
    const w0 = Array.from(c.weight(layer).dataSync());
    const b0 = bias ? Array.from(bias.dataSync()) : [];
    await assertNoLeak(() =>
      assert.throws(
        () => layer.merge({ safeMerge: true }),
        (e: unknown) => e instanceof CheckpointError && /NaN or Inf.*"default"/.test(e.message),
      ),
    );
    assert.deepEqual(Array.from(c.weight(layer).dataSync()), w0, 'base weight untouched');
    if (bias) assert.deepEqual(Array.from(bias.dataSync()), b0, 'base bias untouched');
    assert.equal(layer.merged, false);
    layer.dispose();
  });

  test(`adapter-layer template, ${c.name}: gate, merge == forward, unmerge restores, unmerge twice warns once`, async () => {
    manualSeed(2);
    const layer = c.make();
    c.perturb(layer);
    const x = c.input();
    const w0 = Array.from(c.weight(layer).dataSync());
    const y = await assertNoLeak(() => layer.forward(x), 1);
    layer.merge({ safeMerge: true });
    assert.deepEqual(layer.mergedAdapters, ['default']);
    assert.notDeepEqual(Array.from(c.weight(layer).dataSync()), w0, 'merge changed the weight');
    const yMerged = layer.forward(x);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(y, yMerged))).dataSync()[0]!);
    assert.ok(diff < 1e-4, `merged forward equals unmerged (max diff ${diff})`);
    // disabled while merged: the gate unmerges and returns the base output
    layer.enableAdapters(false);
    const warned = collectWarnings(() => layer.forward(x));
    assert.deepEqual(warned.warnings, []);
    assert.equal(layer.merged, false);
    layer.enableAdapters(true);
    const w1 = c.weight(layer).dataSync();
    w0.forEach((v, i) => assert.ok(Math.abs(v - w1[i]!) <= UNMERGE_ATOL, `weight[${i}] restored`));
    const { warnings } = collectWarnings(() => layer.unmerge());
    assert.deepEqual(warnings, ['Already unmerged. Nothing to do.']);
    [x, y, yMerged, warned.result].forEach((t) => t.dispose());
    layer.dispose();
  });
}

test('fanInFanOut mismatch: LoRA and AdaLoRA warn the same PEFT-style message and follow the module', () => {
  const conv = new Linear(4, 3, { fanInFanOut: true });
  const lora = collectWarnings(() => reconcileFanInFanOut(false, conv, 'h.0.attn.c_attn'));
  assert.equal(lora.result, true);
  const ada = collectWarnings(() =>
    createSvdModule(
      conv,
      'default',
      { r: 2, loraAlpha: 4, loraDropout: 0, initLoraWeights: true },
      false,
      'h.0.attn.c_attn',
    ),
  );
  assert.equal(ada.result.fanInFanOut, true);
  assert.deepEqual(ada.warnings, lora.warnings);
  assert.deepEqual(lora.warnings, [
    'fanInFanOut is false but the target module "h.0.attn.c_attn" is a Conv1D-style layer (weight [in, out]). Setting fanInFanOut to true.',
  ]);
  const same = collectWarnings(() => reconcileFanInFanOut(true, conv, 'x'));
  assert.deepEqual(same.warnings, []);
  ada.result.layer.dispose();
});
