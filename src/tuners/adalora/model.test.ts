import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../tensor/tf.js';
import type { ModelInputs, ModelOutput } from '../../models/base.js';
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import { modelFromConfig } from '../../models/from_config.js';
import { manualSeed } from '../../nn/init.js';
import { ConfigError, NotSupportedError } from '../../errors.js';
import { collectWarnings } from '../base/warnings.js';
import { getPeftModel } from '../peft_model.js';
import { AdaLoraConfig, AdaLoraModel, SVDLinear, orthRegularizer } from './index.js';
import {
  LOSS_RTOL,
  MERGE_ATOL,
  cfg,
  disposeInputs,
  inputs,
  layers,
  tinyLlama,
} from '../../testing/adalora_llama.js';
import { maxDiff } from '../../testing/compare.js';

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

test('forward adds orthRegWeight · R to the loss, only with a loss and a trainable adapter (PEFT AdaLoraModel.forward)', () => {
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
