import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { tf, type Tensor } from '../../tensor/tf.js';
import type { ModelInputs, ModelOutput, PreTrainedModel } from '../../models/base.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import { modelFromConfig } from '../../models/from_config.js';
import { loadWeights } from '../../models/weights.js';
import { manualSeed } from '../../nn/init.js';
import { ConfigError, NotSupportedError } from '../../errors.js';
import { collectWarnings } from '../base/warnings.js';
import { PeftModel, getPeftModel } from '../peft_model.js';
import { loadSafetensors } from '../../io/safetensors.js';
import { AdaLoraConfig, AdaLoraModel, SVDLinear, orthRegularizer } from './index.js';

/** float32 forward vs the float64 plain-torch reference over two tiny layers (as models/parity.test.ts). */
const LOGIT_ATOL = 1e-4;
/** merged vs unmerged forward: W + Δ rounded once more in f32 and a different summation order, on logits up to ~15 (f32 ulp ≈ 1e-6) after two layers. */
const MERGE_ATOL = 1e-4;

/** loss + w·R is one more f32 addition: a few ulps relative to the loss. */
const LOSS_RTOL = 1e-6;

const fixturePath = (name: string) =>
  fileURLToPath(new URL(`../../../tests/fixtures/${name}`, import.meta.url));
const llamaFx = JSON.parse(readFileSync(fixturePath('models_llama.json'), 'utf8'));

function tinyLlama(): PreTrainedModel {
  const model = modelFromConfig(llamaFx.config);
  const state = new Map<string, Tensor>(
    Object.entries(llamaFx.weights as Record<string, { shape: number[]; data: number[] }>).map(([k, w]) => [
      k,
      tf.tensor(w.data, w.shape),
    ]),
  );
  loadWeights(model, state);
  state.forEach((t) => t.dispose());
  return model;
}

function inputs(withLabels: boolean): ModelInputs {
  const c = llamaFx.cases[0];
  const out: ModelInputs = {
    inputIds: tf.tensor2d(c.input_ids, undefined, 'int32'),
    attentionMask: tf.tensor2d(c.attention_mask, undefined, 'int32'),
  };
  if (withLabels) out.labels = tf.tensor2d(c.labels, undefined, 'int32');
  return out;
}
const disposeInputs = (i: ModelInputs) => Object.values(i).forEach((t) => (t as Tensor).dispose());

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const cfg = (o: Record<string, unknown> = {}) =>
  new AdaLoraConfig({
    initR: 4,
    targetR: 2,
    tinit: 2,
    tfinal: 4,
    deltaT: 2,
    totalStep: 24,
    loraAlpha: 8,
    targetModules: ['q_proj', 'v_proj'],
    taskType: 'CAUSAL_LM',
    ...o,
  });

const layers = (peft: PeftModel) => peft.base_model.tunerLayers() as [string, SVDLinear][];

test('getPeftModel: SVD layers of rank initR, PEFT names, trainable A/B/E only, fresh adapter = base, loss gets the regulariser', () => {
  manualSeed(1);
  const base = tinyLlama();
  const x = inputs(true);
  const ref = base.forward(x);
  const peft = getPeftModel(base, cfg());
  assert.ok(peft.base_model instanceof AdaLoraModel);
  const names = peft
    .namedParameters()
    .map(([n]) => n)
    .filter((n) => n.includes('layers.0.self_attn.q_proj'));
  assert.deepEqual(names, [
    'base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight',
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.default',
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.default',
    'base_model.model.model.layers.0.self_attn.q_proj.lora_E.default',
    'base_model.model.model.layers.0.self_attn.q_proj.ranknum.default',
  ]);
  const trainable = peft.trainableParameters().map(([n]) => n);
  assert.equal(trainable.length, 12);
  assert.ok(trainable.every((n) => /lora_[ABE]\.default$/.test(n)));
  assert.deepEqual(
    layers(peft).map(([, l]) => l.lora_A.get('default')!.shape),
    [
      [4, 16],
      [4, 16],
      [4, 16],
      [4, 16],
    ],
  );
  const out = peft.forward(x);
  assert.deepEqual(
    Array.from(out.logits.dataSync()),
    Array.from(ref.logits.dataSync()),
    'E = 0: bit-identical to the base model',
  );
  const r = orthRegularizer(peft.base_model.model.namedParameters(), 'default');
  const expectedLoss = ref.loss!.dataSync()[0]! + 0.5 * r.dataSync()[0]!;
  assert.ok(
    Math.abs(out.loss!.dataSync()[0]! - expectedLoss) <= LOSS_RTOL * Math.max(1, Math.abs(expectedLoss)),
  );
  [ref.logits, ref.loss!, out.logits, out.loss!, r].forEach((t) => t.dispose());
  disposeInputs(x);
  peft.dispose();
});

/** A two-layer MLP with the model contract: loss = mean(logits²) when labels are given. */
class TinyMlp extends Module {
  declare fc1: Linear;
  declare fc2: Linear;
  constructor() {
    super();
    this.registerModule('fc1', new Linear(3, 4));
    this.registerModule('fc2', new Linear(4, 2));
  }
  forward(inputs: ModelInputs): ModelOutput {
    return tf.tidy(() => {
      const logits = this.fc2.forward(this.fc1.forward(inputs.inputIds.toFloat()));
      return inputs.labels ? { logits, loss: tf.mean(tf.square(logits)) } : { logits };
    });
  }
}

test('forward adds orthRegWeight · R to the loss, only with a loss and a trainable adapter (spec §4)', () => {
  manualSeed(4);
  const peft = getPeftModel(
    new TinyMlp(),
    new AdaLoraConfig({
      initR: 2,
      targetR: 1,
      totalStep: 10,
      orthRegWeight: 0.25,
      targetModules: ['fc1', 'fc2'],
    }),
  );
  const tuner = peft.base_model as AdaLoraModel;
  const a = (tuner.model as TinyMlp).fc1 as unknown as SVDLinear;
  const b = (tuner.model as TinyMlp).fc2 as unknown as SVDLinear;
  // R = mean of ‖AAᵀ − I‖ and ‖BᵀB − I‖ over both layers: choose exact matrices.
  a.lora_A.get('default')!.assign(
    tf.tensor2d([
      [1, 0, 0],
      [0, 2, 0],
    ]),
  ); // ‖diag(0, 3)‖ = 3
  a.lora_B.get('default')!.assign(tf.zeros([4, 2])); // ‖−I₂‖ = √2
  b.lora_A.get('default')!.assign(
    tf.tensor2d([
      [1, 0, 0, 0],
      [0, 1, 0, 0],
    ]),
  ); // 0
  b.lora_B.get('default')!.assign(
    tf.tensor2d([
      [1, 0],
      [0, 1],
    ]),
  ); // 0
  const x: ModelInputs = {
    inputIds: tf.tensor2d([[1, 2, 3]], undefined, 'int32'),
    labels: tf.tensor1d([0], 'int32'),
  };
  const plain = peft.withAdapterDisabled(() => peft.forward(x)); // adapters off: still the trainable adapter's R
  const base = (tuner.model as TinyMlp).forward(x);
  const expectedR = (3 + Math.SQRT2) / 4;
  assert.ok(Math.abs(plain.loss!.dataSync()[0]! - (base.loss!.dataSync()[0]! + 0.25 * expectedR)) < 1e-6);
  const noLabels = peft.forward({ inputIds: x.inputIds });
  assert.equal(noLabels.loss, undefined);
  [plain.logits, plain.loss!, base.logits, base.loss!, noLabels.logits].forEach((t) => t.dispose());
  disposeInputs(x);
  peft.dispose();
});

test('model-level rules: one trainable adapter, no embeddings, no weighted adapters, inference mode has no regulariser (PEFT #571)', () => {
  const peft = getPeftModel(tinyLlama(), cfg());
  assert.throws(
    () => peft.addAdapter('second', cfg()),
    (e: unknown) => e instanceof ConfigError && /only one adapter can train/.test(e.message),
  );
  peft.addAdapter('frozen', cfg({ inferenceMode: true }));
  const xi = inputs(false);
  assert.throws(
    () => (peft.base_model as AdaLoraModel).forwardMixed(xi, ['default', 'frozen']),
    NotSupportedError,
  );
  disposeInputs(xi);
  assert.throws(
    () => (peft.base_model as AdaLoraModel).addWeightedAdapter(['default', 'frozen'], [1, 1], 'x'),
    NotSupportedError,
  );
  peft.dispose();
  assert.throws(() => getPeftModel(tinyLlama(), cfg({ targetModules: ['embed_tokens'] })), NotSupportedError);

  const infer = getPeftModel(tinyLlama(), cfg({ inferenceMode: true }));
  const x = inputs(true);
  const plain = infer.withAdapterDisabled(() => infer.forward(x));
  const out = infer.forward(x);
  assert.equal(
    out.loss!.dataSync()[0],
    plain.loss!.dataSync()[0],
    'no regulariser without a trainable adapter',
  );
  assert.throws(() => infer.updateAndAllocate(0, new Map()), /no adapter is trainable/);
  [plain.logits, plain.loss!, out.logits, out.loss!].forEach((t) => t.dispose());
  disposeInputs(x);
  infer.dispose();
});

test('merged = unmerged; merge then unmerge restores the base weights', () => {
  manualSeed(2);
  const peft = getPeftModel(tinyLlama(), cfg());
  for (const [, l] of layers(peft)) l.lora_E.get('default')!.assign(tf.tensor2d([[0.9], [-0.4], [0], [1.3]]));
  const x = inputs(false);
  const w0 = Array.from(layers(peft)[0]![1].base_layer.denseWeight().dataSync());
  const y = peft.forward(x).logits;
  peft.merge();
  const ym = peft.forward(x).logits;
  assert.ok(maxDiff(ym.dataSync(), y.dataSync()) < MERGE_ATOL);
  peft.unmerge();
  assert.ok(maxDiff(layers(peft)[0]![1].base_layer.denseWeight().dataSync(), w0) < MERGE_ATOL);
  [y, ym].forEach((t) => t.dispose());
  disposeInputs(x);
  peft.dispose();
});

test('PEFT-layout trimmed fixture (tests/fixtures/adalora_peft) loads and reproduces the plain-torch logits', async () => {
  const expected = JSON.parse(readFileSync(fixturePath('adalora_peft_expected.json'), 'utf8'));
  const peft = await PeftModel.fromPretrained(tinyLlama(), fixturePath('adalora_peft'));
  const ls = Object.fromEntries(layers(peft));
  assert.deepEqual(ls['model.layers.0.self_attn.q_proj']!.lora_A.get('default')!.shape, [3, 16]);
  assert.deepEqual(ls['model.layers.0.self_attn.v_proj']!.lora_B.get('default')!.shape, [8, 1]);
  assert.deepEqual(
    ls['model.layers.1.self_attn.v_proj']!.lora_E.get('default')!.shape,
    [0, 1],
    'fully pruned layer',
  );
  for (const l of Object.values(ls))
    assert.deepEqual(Array.from(l.ranknum.get('default')!.dataSync()), [4], 'ranknum restored to initR');
  assert.equal(peft.trainableParameters().length, 0, 'loaded in inference mode');
  const x: ModelInputs = {
    inputIds: tf.tensor2d(expected.input_ids, undefined, 'int32'),
    attentionMask: tf.tensor2d(expected.attention_mask, undefined, 'int32'),
  };
  const y = peft.forward(x).logits;
  assert.deepEqual(y.shape, expected.logits_shape);
  assert.ok(
    maxDiff(y.dataSync(), expected.logits) < LOGIT_ATOL,
    `logits differ by ${maxDiff(y.dataSync(), expected.logits)}`,
  );
  assert.ok(
    maxDiff(expected.logits, expected.base_logits) > 100 * LOGIT_ATOL,
    'the adapter matters in this fixture',
  );
  // Saving it again writes the same bytes as the Python writer did (config and safetensors).
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
  try {
    await peft.savePretrained(dir);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
      const ours = readFileSync(path.join(dir, f));
      assert.ok(
        ours.equals(readFileSync(path.join(fixturePath('adalora_peft'), f))),
        `${f} byte-identical to the PEFT-layout fixture`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  y.dispose();
  disposeInputs(x);
  peft.dispose();
});

test('trimmed fixture loaded for training: allocator counts the kept ranks, rank-0 layer trains without NaN', async () => {
  const peft = await PeftModel.fromPretrained(tinyLlama(), fixturePath('adalora_peft'), {
    isTrainable: true,
  });
  const tuner = peft.base_model as AdaLoraModel;
  assert.equal(tuner.trainableAdapterName, 'default');
  assert.equal(tuner.allocation!.allocator.initBgt, 3 + 1 + 4 + 0, 'Σ kept ranks, as PEFT');
  const x = inputs(true);
  const vars = peft.trainableParameters().map(([, p]) => p);
  const { value, grads } = tf.variableGrads(() => peft.forward(x).loss as tf.Scalar, vars);
  assert.ok(Number.isFinite(value.dataSync()[0]!));
  for (const g of Object.values(grads)) assert.ok(Array.from(g.dataSync()).every(Number.isFinite));
  const r = tuner.updateAndAllocate(0, grads);
  assert.equal(r.phase, 'budgeting');
  value.dispose();
  Object.values(grads).forEach((g) => g.dispose());
  disposeInputs(x);
  peft.dispose();
});

/** SGD on the causal-LM loss (with the regulariser), then the AdaLoRA step; returns what it did. */
function trainRun(peft: PeftModel, steps: number) {
  const lr = 0.05;
  const x = inputs(true);
  const log = [];
  for (let step = 0; step < steps; step++) {
    const vars = peft.trainableParameters().map(([, p]) => p);
    const { value, grads } = tf.variableGrads(() => peft.forward(x).loss as tf.Scalar, vars);
    tf.tidy(() => vars.forEach((v) => v.assign(tf.sub(v, tf.mul(grads[v.name]!, lr)))));
    log.push((peft.base_model as AdaLoraModel).updateAndAllocate(step, grads));
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
  }
  disposeInputs(x);
  return log;
}

test('AdaLoRA run on a tiny Llama: schedule, masks at the right steps, per-module ranks, rank_pattern saved; save/load byte-identical', async () => {
  manualSeed(3);
  const peft = getPeftModel(
    tinyLlama(),
    cfg({ initR: 4, targetR: 2, tinit: 2, tfinal: 4, deltaT: 2, totalStep: 24 }),
  );
  const tuner = peft.base_model as AdaLoraModel;
  const before = tf.memory().numTensors;
  const log = trainRun(peft, 24);
  assert.equal(
    tf.memory().numTensors - before,
    0,
    'no leak: the allocator statistics were reset at the freeze step',
  );
  // Tf = 20: masks at even steps 4..18 (after tinit = 2), forced at 20, re-applied 21..23.
  assert.deepEqual(
    log.filter((l) => l.masked).map((l) => l.step),
    [4, 6, 8, 10, 12, 14, 16, 18, 20, 21, 22, 23],
  );
  for (const l of log.filter((q) => q.phase === 'budgeting'))
    assert.equal(l.budget, tuner.allocation!.allocator.budgetSchedule(l.step).budget);
  // I = 16, T = 8, tinit 2, Tf 20: trunc(8·(1 − (s − 2)/18)³ + 8) for s = 3, 4, 5 is 14, 13, 12.
  assert.deepEqual(
    log.slice(0, 6).map((l) => l.budget),
    [16, 16, 16, 14, 13, 12],
  );
  const ranks = log[23]!.ranks!;
  assert.ok(Object.values(ranks).reduce((a, b) => a + b, 0) <= 8);
  assert.ok(
    new Set(Object.values(ranks)).size > 1,
    `final ranks differ per module: ${JSON.stringify(ranks)}`,
  );

  const dir = mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
  try {
    const x = inputs(false);
    const y = peft.forward(x).logits;
    await peft.savePretrained(dir);
    const saved = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(saved.peft_type, 'ADALORA');
    const pattern = saved.rank_pattern as Record<string, boolean[]>;
    assert.deepEqual(
      Object.keys(pattern).sort(),
      Object.keys(ranks)
        .map((k) => k.replace(/\.default$/, ''))
        .sort(),
    );
    const { tensors } = await loadSafetensors(path.join(dir, 'adapter_model.safetensors'));
    for (const [k, mask] of Object.entries(pattern)) {
      const p = `base_model.model.${k.replace(/\.lora_E$/, '')}`;
      const kept = mask.filter(Boolean).length;
      assert.deepEqual(tensors.get(`${p}.lora_E`)!.shape, [kept, 1]);
      assert.equal(tensors.get(`${p}.lora_A`)!.shape[0], kept);
      assert.equal(tensors.get(`${p}.lora_B`)!.shape[1], kept);
    }
    assert.ok(![...tensors.keys()].some((k) => k.includes('ranknum') || k.includes('.default')));
    tensors.forEach((t) => t.dispose());

    const again = await PeftModel.fromPretrained(tinyLlama(), dir);
    const y2 = again.forward(x).logits;
    assert.ok(maxDiff(y2.dataSync(), y.dataSync()) < MERGE_ATOL, 'loaded trimmed adapter = trained adapter');
    const dir2 = mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
    await again.savePretrained(dir2);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
      assert.ok(
        readFileSync(path.join(dir, f)).equals(readFileSync(path.join(dir2, f))),
        `${f} byte-identical after load + save`,
      );
    }
    rmSync(dir2, { recursive: true, force: true });
    [y, y2].forEach((t) => t.dispose());
    disposeInputs(x);
    again.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  peft.dispose();
});

test('saving after training without updateAndAllocate warns (PEFT #1327)', async () => {
  const peft = getPeftModel(tinyLlama(), cfg());
  const x = inputs(true);
  const vars = peft.trainableParameters().map(([, p]) => p);
  const { value, grads } = tf.variableGrads(() => peft.forward(x).loss as tf.Scalar, vars);
  value.dispose();
  const { result: saved, warnings } = collectWarnings(() =>
    peft.base_model.adapterStateDictForSave('default'),
  );
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /updateAndAllocate was never called/);
  saved.forEach((t) => t.dispose());
  // Through PeftModel's delegation: one call (step 0, before tinit: no mask) and the warning is gone.
  peft.updateAndAllocate(0, new Map(Object.entries(grads)));
  const again = collectWarnings(() => peft.base_model.adapterStateDictForSave('default'));
  assert.equal(again.warnings.length, 0);
  again.result.forEach((t) => t.dispose());
  Object.values(grads).forEach((g) => g.dispose());
  disposeInputs(x);
  peft.dispose();
});

test('GPT-2 (Conv1D, fanInFanOut) with default targets: warning, fresh = base, merged = unmerged, unmerge restores', () => {
  manualSeed(6);
  const gpt2 = modelFromConfig({
    model_type: 'gpt2',
    vocab_size: 32,
    n_embd: 8,
    n_layer: 1,
    n_head: 2,
    n_positions: 16,
  });
  gpt2.eval();
  const x: ModelInputs = { inputIds: tf.tensor2d([[1, 5, 9, 3]], undefined, 'int32') };
  const ref = gpt2.forward(x).logits;
  const config = new AdaLoraConfig({ initR: 3, targetR: 1, totalStep: 10, taskType: 'CAUSAL_LM' });
  const { result: peft, warnings } = collectWarnings(() => getPeftModel(gpt2, config));
  assert.match(warnings.join('\n'), /Setting fanInFanOut to true/);
  assert.equal(config.fanInFanOut, true, 'config records what was used, as PEFT does');
  const ls = layers(peft);
  assert.deepEqual(
    ls.map(([p]) => p),
    ['transformer.h.0.attn.c_attn'],
  );
  const layer = ls[0]![1];
  assert.deepEqual(Array.from(peft.forward(x).logits.dataSync()), Array.from(ref.dataSync()));
  layer.lora_E.get('default')!.assign(tf.tensor2d([[1.5], [-2], [0.5]]));
  layer.lora_A.get('default')!.assign(tf.randomNormal([3, 8], 0, 0.5, 'float32', 7));
  layer.lora_B.get('default')!.assign(tf.randomNormal([24, 3], 0, 0.5, 'float32', 8));
  const delta = layer.getDeltaWeight('default');
  assert.deepEqual(delta.shape, [8, 24], 'delta in the Conv1D [in, out] layout');
  const w0 = layer.base_layer.denseWeight();
  const y = peft.forward(x).logits;
  peft.merge();
  const ym = peft.forward(x).logits;
  assert.ok(maxDiff(ym.dataSync(), y.dataSync()) < MERGE_ATOL);
  assert.ok(maxDiff(y.dataSync(), ref.dataSync()) > 100 * MERGE_ATOL, 'the adapter changes the output');
  peft.unmerge();
  const w1 = layer.base_layer.denseWeight();
  assert.ok(maxDiff(w1.dataSync(), w0.dataSync()) < MERGE_ATOL);
  [ref, delta, w0, w1, y, ym].forEach((t) => t.dispose());
  disposeInputs(x);
  peft.dispose();
});
