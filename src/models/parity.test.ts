/**
 * Parity with an independent plain-PyTorch forward (tests/fixtures/models_reference.py, float64 over
 * float32 weights): tiny random BERT, RoBERTa, GPT-2 and Llama checkpoints, with padding, GQA,
 * rope_theta ≠ 10000, tied embeddings and last-non-pad-token pooling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tf, type Tensor } from '../tensor/tf.js';
import type { HFConfig, ModelInputs, PreTrainedModel } from './base.js';
import { modelFromConfig } from './from_config.js';
import { loadWeights } from './weights.js';
import { BertModel } from './bert.js';
import { BertForSequenceClassification } from './bert_classification.js';
import { maxDiff } from '../testing/compare.js';

/** float32 forward vs a float64 reference over a few layers of width 16: rounding stays far below this. */
const LOGIT_ATOL = 1e-4;

interface Fixture {
  config: HFConfig;
  weights: Record<string, { shape: number[]; data: number[] }>;
  cases: {
    task?: 'SEQ_CLS' | 'CAUSAL_LM';
    input_ids: number[][];
    attention_mask: number[][];
    token_type_ids?: number[][];
    labels: number[] | number[][];
    logits: number[];
    logits_shape: number[];
    hidden?: number[];
    loss: number;
  }[];
}

function fixture(name: string): Fixture {
  const url = new URL(`../../tests/fixtures/models_${name}.json`, import.meta.url);
  return JSON.parse(readFileSync(fileURLToPath(url), 'utf8')) as Fixture;
}

function stateOf(fx: Fixture): Map<string, Tensor> {
  return new Map(Object.entries(fx.weights).map(([k, w]) => [k, tf.tensor(w.data, w.shape, 'float32')]));
}

function inputsOf(c: Fixture['cases'][number], withLabels: boolean): ModelInputs {
  const inputs: ModelInputs = {
    inputIds: tf.tensor2d(c.input_ids, undefined, 'int32'),
    attentionMask: tf.tensor2d(c.attention_mask, undefined, 'int32'),
  };
  if (c.token_type_ids) inputs.tokenTypeIds = tf.tensor2d(c.token_type_ids, undefined, 'int32');
  if (withLabels) inputs.labels = tf.tensor(c.labels as number[], undefined, 'int32');
  return inputs;
}

/** Loads the fixture into `model` (strict key copy), checks every case's logits and loss, disposes. */
function checkModel(
  model: PreTrainedModel,
  fx: Fixture,
  taskFilter?: string,
  expectIgnored: string[] = [],
): void {
  const state = stateOf(fx);
  const report = loadWeights(model, state);
  state.forEach((t) => t.dispose());
  assert.deepEqual(report.newKeys, []);
  assert.deepEqual(report.ignoredKeys, expectIgnored);
  model.eval();
  for (const c of fx.cases.filter((c) => !taskFilter || c.task === taskFilter)) {
    const inputs = inputsOf(c, true);
    const before = tf.memory().numTensors;
    const out = model.forward(inputs);
    assert.deepEqual(out.logits.shape, c.logits_shape);
    const diff = maxDiff(out.logits.dataSync(), c.logits);
    assert.ok(diff < LOGIT_ATOL, `${model.architecture} logits differ by ${diff}`);
    const loss = out.loss!.dataSync()[0]!;
    assert.ok(
      Math.abs(loss - c.loss) < LOGIT_ATOL,
      `${model.architecture} loss ${loss} vs reference ${c.loss}`,
    );
    out.logits.dispose();
    out.loss!.dispose();
    assert.equal(tf.memory().numTensors, before, 'forward leaves only its outputs');
    Object.values(inputs).forEach((t) => (t as Tensor).dispose());
  }
  model.dispose();
}

test('BERT sequence classification matches the PyTorch reference (padding, token types, pooler)', () => {
  const fx = fixture('bert');
  const model = modelFromConfig(fx.config);
  assert.ok(model instanceof BertForSequenceClassification);
  assert.equal(model.architecture, 'BertForSequenceClassification');
  checkModel(model, fx);
});

test('BERT encoder hidden states match the reference at every position', () => {
  const fx = fixture('bert');
  const c = fx.cases[0]!;
  const bert = new BertModel(fx.config);
  const state = new Map<string, Tensor>();
  for (const [k, w] of Object.entries(fx.weights)) {
    if (k.startsWith('bert.')) state.set(k.slice('bert.'.length), tf.tensor(w.data, w.shape));
  }
  bert.loadStateDict(state);
  state.forEach((t) => t.dispose());
  bert.eval();
  const inputs = inputsOf(c, false);
  const out = bert.forward(inputs);
  assert.deepEqual(out.logits.shape, [2, 7, 16]);
  assert.ok(maxDiff(out.logits.dataSync(), c.hidden!) < LOGIT_ATOL);
  out.logits.dispose();
  Object.values(inputs).forEach((t) => (t as Tensor).dispose());
  bert.dispose();
});

test('RoBERTa (offset positions, classifier.dense/out_proj head, no pooler) matches the reference', () => {
  const fx = fixture('roberta');
  const model = modelFromConfig(fx.config);
  assert.equal(model.architecture, 'RobertaForSequenceClassification');
  assert.ok(!model.namedModules().some(([n]) => n.includes('pooler')));
  checkModel(model, fx);
});

test('GPT-2 LM (Conv1D weights, tied lm_head, padding + causal mask, shifted loss) matches the reference', () => {
  const fx = fixture('gpt2');
  const model = modelFromConfig(fx.config);
  assert.equal(model.architecture, 'GPT2LMHeadModel');
  assert.deepEqual(model.tiedParameterNames(), [['transformer.wte.weight', 'lm_head.weight']]);
  checkModel(model, fx, 'CAUSAL_LM', ['score.weight']);
});

test('GPT-2 sequence classification pools the last non-pad token', () => {
  const fx = fixture('gpt2');
  const model = modelFromConfig(fx.config, { task: 'SEQ_CLS' });
  assert.equal(model.architecture, 'GPT2ForSequenceClassification');
  checkModel(model, fx, 'SEQ_CLS');
});

test('Llama LM (GQA 4/2, rope_theta 1000, tied embeddings, padding) matches the reference', () => {
  const fx = fixture('llama');
  const model = modelFromConfig(fx.config);
  assert.equal(model.architecture, 'LlamaForCausalLM');
  assert.deepEqual(model.tiedParameterNames(), [['model.embed_tokens.weight', 'lm_head.weight']]);
  checkModel(model, fx);
});

test('Llama sequence classification (right and left padding, pad_token_id pooling) matches the reference', () => {
  const fx = fixture('llama_seqcls');
  const model = modelFromConfig(fx.config);
  assert.equal(model.architecture, 'LlamaForSequenceClassification');
  assert.deepEqual(model.tiedParameterNames(), []);
  checkModel(model, fx);
});
