import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tensor/tf.js';
import { Module } from '../nn/module.js';
import { manualSeed } from '../nn/init.js';
import { CheckpointError, ConfigError, NotSupportedError, ShapeError } from '../errors.js';
import { Rng } from '../util/rng.js';
import type { HFConfig, KVCache, PreTrainedModel } from './base.js';
import { modelFromConfig } from './from_config.js';
import { loadWeights } from './weights.js';
import { argmax, generate, sampleToken } from './generate.js';

/** KV-cached and full forwards sum the same products in a different grouping (float32 rounding). */
const CACHE_ATOL = 1e-5;
/** Losses recomputed by hand from the same float32 logits: only summation order differs. */
const LOSS_ATOL = 1e-5;

const GPT2: HFConfig = {
  model_type: 'gpt2',
  vocab_size: 40,
  n_embd: 16,
  n_layer: 2,
  n_head: 4,
  n_positions: 32,
};
const LLAMA: HFConfig = {
  model_type: 'llama',
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rope_theta: 500,
  tie_word_embeddings: true,
};
const BERT: HFConfig = {
  model_type: 'bert',
  vocab_size: 30,
  hidden_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 32,
  max_position_embeddings: 16,
};

function ids(rows: number[][]): Tensor {
  return tf.tensor2d(rows, undefined, 'int32');
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

function disposeCache(c: KVCache | undefined): void {
  c?.keys.forEach((t) => t.dispose());
  c?.values.forEach((t) => t.dispose());
}

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
    assert.ok(maxAbsDiff(stitched, ref) < CACHE_ATOL);
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
    assert.ok(maxAbsDiff(a, b) > 1e-3, `${path} replacement changed nothing`);
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
  assert.equal(maxAbsDiff(clf.stateDict().get('model.norm.weight')!, weights.get('model.norm.weight')!), 0);
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
    maxAbsDiff(gpt2.stateDict().get('lm_head.weight')!, gpt.stateDict().get('transformer.wte.weight')!),
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
