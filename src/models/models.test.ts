import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tensor/tf.js';
import { Module } from '../nn/module.js';
import { manualSeed } from '../nn/init.js';
import { CheckpointError, ConfigError, NotSupportedError, ShapeError } from '../errors.js';
import type { PreTrainedModel } from './base.js';
import { maxDiff } from '../testing/compare.js';
import {
  SMALL_BERT as BERT,
  SMALL_GPT2 as GPT2,
  SMALL_LLAMA as LLAMA,
  ids,
} from '../testing/small_models.js';
import { modelFromConfig } from './from_config.js';
import { loadWeights } from './weights.js';

/** Losses recomputed by hand from the same float32 logits: only summation order differs. */
const LOSS_ATOL = 1e-5;

test('causal-LM loss shifts inside and ignores -100', () => {
  manualSeed(7);
  const model = modelFromConfig(GPT2).eval();
  const x = ids([[4, 8, 15, 16]]);
  const labels = ids([[-100, 8, -100, 16]]);
  const { logits, loss } = model.forward({ inputIds: x, labels });
  // positions 0 and 2 predict labels 8 and 16; the others are ignored
  const expected = tf.tidy(() => {
    const lp = tf.logSoftmax(logits.reshape([4, 40])).arraySync() as number[][];
    return -(lp[0]![8]! + lp[2]![16]!) / 2;
  });
  assert.ok(
    Math.abs(loss!.dataSync()[0]! - expected) < LOSS_ATOL,
    `loss ${loss!.dataSync()[0]} vs ${expected}`,
  );
  [x, labels, logits, loss!].forEach((t) => t.dispose());
  model.dispose();
});

test('one label means regression with MSE; classes need int32 labels', () => {
  manualSeed(8);
  const model = modelFromConfig(BERT, { task: 'SEQ_CLS', numLabels: 1 }).eval();
  const x = ids([
    [2, 5, 6],
    [2, 9, 3],
  ]);
  const target = tf.tensor1d([0.5, -1]);
  const { logits, loss } = model.forward({ inputIds: x, labels: target });
  const l = logits.dataSync();
  const expected = ((l[0]! - 0.5) ** 2 + (l[1]! + 1) ** 2) / 2;
  assert.ok(
    Math.abs(loss!.dataSync()[0]! - expected) < LOSS_ATOL,
    `loss ${loss!.dataSync()[0]} vs ${expected}`,
  );
  [logits, loss!].forEach((t) => t.dispose());
  const clf = modelFromConfig(BERT, { task: 'SEQ_CLS', numLabels: 3 });
  assert.throws(() => clf.forward({ inputIds: x, labels: target }), ShapeError);
  [x, target].forEach((t) => t.dispose());
  model.dispose();
  clf.dispose();
});

test('decoder classification without pad_token_id works for one row and refuses a batch', () => {
  manualSeed(9);
  const model = modelFromConfig(LLAMA, { task: 'SEQ_CLS', numLabels: 2 }).eval();
  const one = ids([[1, 4, 5]]);
  const two = ids([
    [1, 4, 5],
    [1, 6, 7],
  ]);
  const out = model.forward({ inputIds: one });
  assert.deepEqual(out.logits.shape, [1, 2]);
  assert.throws(() => model.forward({ inputIds: two }), ConfigError);
  const padded = modelFromConfig(LLAMA, { task: 'SEQ_CLS', numLabels: 2, padTokenId: 0 }).eval();
  const batch = padded.forward({ inputIds: two });
  assert.deepEqual(batch.logits.shape, [2, 2]);
  batch.logits.dispose();
  padded.dispose();
  [one, two, out.logits].forEach((t) => t.dispose());
  model.dispose();
});

class Doubler extends Module {
  constructor(readonly inner: { forward(x: Tensor): Tensor }) {
    super();
  }
  forward(x: Tensor): Tensor {
    return tf.tidy(() => tf.mul(this.inner.forward(x), 2));
  }
}

test('forward reads children at call time, so a replaced q_proj / query / c_attn takes effect', () => {
  for (const [config, path] of [
    [LLAMA, 'model.layers.0.self_attn.q_proj'],
    [BERT, 'encoder.layer.0.attention.self.query'],
    [GPT2, 'transformer.h.1.attn.c_attn'],
  ] as const) {
    manualSeed(10);
    const model = modelFromConfig(config).eval();
    const x = ids([[1, 2, 3]]);
    const a = model.forward({ inputIds: x }).logits;
    const old = model.getSubmodule(path) as unknown as { forward(x: Tensor): Tensor };
    model.replaceChild(path, new Doubler(old));
    const b = model.forward({ inputIds: x }).logits;
    assert.ok(maxDiff(a.dataSync(), b.dataSync()) > 1e-3, `${path} replacement changed nothing`);
    [x, a, b].forEach((t) => t.dispose());
    model.dispose();
  }
});

test('module paths are the Hugging Face keys; output modules and architecture are reported', () => {
  manualSeed(11);
  const lm = modelFromConfig(LLAMA) as PreTrainedModel;
  const names = lm.namedParameters().map(([n]) => n);
  assert.ok(names.includes('model.layers.1.self_attn.k_proj.weight'));
  assert.ok(names.includes('model.layers.0.mlp.gate_proj.weight'));
  assert.ok(names.includes('model.norm.weight'));
  assert.ok(!names.includes('lm_head.weight'), 'tied lm_head is listed once, under the embedding');
  assert.ok(lm.stateDict().has('lm_head.weight'));
  assert.deepEqual(
    lm.getSubmodule('model.layers.0.self_attn.k_proj').namedParameters()[0]![1].shape,
    [8, 16],
  );
  assert.deepEqual(lm.outputModuleNames(), ['lm_head']);
  const gpt = modelFromConfig(GPT2);
  assert.deepEqual(
    gpt.stateDict().get('transformer.h.0.attn.c_attn.weight')!.shape,
    [16, 48],
    'Conv1D [in, out]',
  );
  const untied = modelFromConfig({ ...GPT2, tie_word_embeddings: false });
  assert.deepEqual(untied.tiedParameterNames(), []);
  assert.notEqual(untied.stateDict().get('lm_head.weight'), untied.stateDict().get('transformer.wte.weight'));
  untied.dispose();
  const roberta = modelFromConfig({ ...BERT, model_type: 'roberta', pad_token_id: 1 }, { task: 'SEQ_CLS' });
  assert.ok(roberta.stateDict().has('roberta.encoder.layer.0.attention.output.LayerNorm.weight'));
  assert.ok(roberta.stateDict().has('classifier.out_proj.weight'));
  assert.equal(roberta.architecture, 'RobertaForSequenceClassification');
  [lm, gpt, roberta].forEach((m) => m.dispose());
});

test('modelFromConfig picks classes from architectures / model_type and refuses what it cannot build', () => {
  manualSeed(12);
  const fromArch = modelFromConfig({
    ...LLAMA,
    model_type: undefined,
    architectures: ['LlamaForSequenceClassification'],
  });
  assert.equal(fromArch.architecture, 'LlamaForSequenceClassification');
  assert.equal(fromArch.config.model_type, 'llama');
  const bare = modelFromConfig(BERT);
  assert.equal(bare.architecture, 'BertModel');
  assert.throws(() => modelFromConfig(BERT, { task: 'CAUSAL_LM' }), NotSupportedError);
  assert.throws(() => modelFromConfig({ model_type: 't5' }), NotSupportedError);
  assert.throws(() => modelFromConfig({ ...BERT, is_decoder: true }), NotSupportedError);
  modelFromConfig({ ...BERT, is_decoder: false, position_embedding_type: 'absolute' }).dispose();
  assert.throws(
    () => modelFromConfig({ ...LLAMA, rope_scaling: { type: 'linear', factor: 2 } }),
    NotSupportedError,
  );
  assert.throws(() => modelFromConfig({ ...LLAMA, num_key_value_heads: 3 }), ShapeError);
  assert.throws(() => modelFromConfig({ ...GPT2, n_embd: 'wide' }), ConfigError);
  [fromArch, bare].forEach((m) => m.dispose());
});

test('loadWeights: causal-LM weights into a classifier report the new head; prefixes are fixed; gaps throw', () => {
  manualSeed(13);
  const lm = modelFromConfig(LLAMA);
  const weights = lm.stateDict();
  const clf = modelFromConfig(LLAMA, { task: 'SEQ_CLS', numLabels: 3 });
  const report = loadWeights(clf, weights, { allowNew: clf.outputModuleNames() });
  assert.deepEqual(report.newKeys, ['score.weight']);
  assert.deepEqual(report.ignoredKeys, ['lm_head.weight']);
  assert.equal(
    maxDiff(
      clf.stateDict().get('model.norm.weight')!.dataSync(),
      weights.get('model.norm.weight')!.dataSync(),
    ),
    0,
  );
  assert.throws(() => loadWeights(modelFromConfig(LLAMA, { task: 'SEQ_CLS' }), weights), CheckpointError);
  // a bare GPT-2 checkpoint (`h.0.…`, no `transformer.` prefix, with the old attn.bias buffer)
  const gpt = modelFromConfig(GPT2);
  const bare = new Map(
    [...gpt.stateDict()].filter(([k]) => k.startsWith('transformer.')).map(([k, t]) => [k.slice(12), t]),
  );
  const mask = tf.ones([1, 1, 32, 32]);
  bare.set('h.0.attn.bias', mask);
  const gpt2 = modelFromConfig(GPT2);
  assert.deepEqual(loadWeights(gpt2, bare), { newKeys: [], ignoredKeys: [] });
  assert.equal(
    maxDiff(
      gpt2.stateDict().get('lm_head.weight')!.dataSync(),
      gpt.stateDict().get('transformer.wte.weight')!.dataSync(),
    ),
    0,
  );
  [lm, clf, gpt, gpt2].forEach((m) => m.dispose());
  mask.dispose();
});

test('training steps: gradients reach every trainable weight, frozen ones get none, tensor count stays flat', () => {
  for (const [config, task, labels] of [
    [GPT2, 'CAUSAL_LM', [[3, 4, -100]]],
    [LLAMA, 'CAUSAL_LM', [[3, 4, 5]]],
    [BERT, 'SEQ_CLS', [1]],
    [{ ...LLAMA, pad_token_id: 0 }, 'SEQ_CLS', [0]],
  ] as const) {
    manualSeed(14);
    const model = modelFromConfig(config, { task }).train();
    const frozen = model
      .namedParameters()
      .find(
        ([n]) =>
          n.endsWith('.0.mlp.down_proj.weight') ||
          n.endsWith('layer.0.output.dense.weight') ||
          n.endsWith('h.0.mlp.c_proj.weight'),
      );
    frozen![1].trainable = false;
    const x = ids([[1, 2, 3]]);
    const y = tf.tensor(labels as unknown as number[], undefined, 'int32');
    const trainable = model.trainableParameters().map(([, p]) => p);
    let before = 0;
    for (let step = 0; step < 3; step++) {
      if (step === 1) before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(
        () => model.forward({ inputIds: x, labels: y }).loss! as tf.Scalar,
        trainable,
      );
      assert.ok(Number.isFinite(value.dataSync()[0]!));
      assert.ok(!(frozen![1].name in grads), 'frozen parameter got a gradient');
      const withGrad = Object.keys(grads).length;
      assert.equal(
        withGrad,
        trainable.length,
        `${model.architecture}: every trainable weight gets a gradient`,
      );
      value.dispose();
      tf.dispose(grads);
    }
    assert.equal(
      tf.memory().numTensors,
      before,
      `${model.architecture}: repeated steps do not grow the tensor count`,
    );
    [x, y].forEach((t) => t.dispose());
    model.dispose();
  }
});
