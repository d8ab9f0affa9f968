import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import { CheckpointError, NotSupportedError } from '../errors.js';
import type { HFConfig, ModelInputs, PreTrainedModel } from './base.js';
import { modelFromConfig } from './from_config.js';
import { loadModel, loadModelWithReport, saveModel } from './load.js';

const TINY: Record<string, HFConfig> = {
  gpt2: { model_type: 'gpt2', vocab_size: 30, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 16 },
  llama: {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 30,
    hidden_size: 8,
    intermediate_size: 12,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    tie_word_embeddings: false,
    pad_token_id: 0,
  },
  roberta: {
    architectures: ['RobertaForSequenceClassification'],
    model_type: 'roberta',
    vocab_size: 30,
    hidden_size: 8,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 16,
    max_position_embeddings: 16,
    type_vocab_size: 1,
    pad_token_id: 1,
  },
};

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'lowrank-models-'));
}

function logitsOf(model: PreTrainedModel): Float32Array {
  const inputs: ModelInputs = { inputIds: tf.tensor2d([[0, 5, 9, 2]], undefined, 'int32') };
  const out = model.forward(inputs);
  const data = out.logits.dataSync() as Float32Array;
  out.logits.dispose();
  inputs.inputIds.dispose();
  return data;
}

for (const name of Object.keys(TINY)) {
  test(`${name}: saveModel then loadModel gives identical outputs and keys`, async () => {
    const dir = tempDir();
    try {
      manualSeed(21);
      const model = modelFromConfig(TINY[name]!).eval();
      await saveModel(model, dir);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as HFConfig;
      assert.deepEqual(config.architectures, [model.architecture]);
      const before = tf.memory().numTensors;
      const { model: again, report } = await loadModelWithReport(dir);
      assert.deepEqual(report, {
        newKeys: [],
        ignoredKeys: [],
        format: 'hf-folder',
        architecture: model.architecture,
      });
      assert.equal(again.training, false, 'loaded models are in eval mode');
      assert.deepEqual(logitsOf(again), logitsOf(model));
      again.dispose();
      assert.equal(tf.memory().numTensors, before, 'load + dispose leaves nothing behind');
      model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a causal-LM folder loads as SEQ_CLS with a fresh, seeded score head', async () => {
  const dir = tempDir();
  try {
    manualSeed(22);
    const lm = modelFromConfig(TINY.llama!);
    await saveModel(lm, dir);
    const a = await loadModelWithReport(dir, { task: 'SEQ_CLS', numLabels: 3, seed: 5 });
    const b = await loadModel(dir, { task: 'SEQ_CLS', numLabels: 3, seed: 5, padTokenId: 2 });
    assert.equal(b.config.pad_token_id, 2);
    assert.equal(a.model.architecture, 'LlamaForSequenceClassification');
    assert.deepEqual(a.report.newKeys, ['score.weight']);
    assert.deepEqual(a.report.ignoredKeys, ['lm_head.weight']);
    const sa = a.model.stateDict();
    const sb = b.stateDict();
    assert.deepEqual(sa.get('score.weight')!.shape, [3, 8]);
    assert.deepEqual(sa.get('score.weight')!.dataSync(), sb.get('score.weight')!.dataSync());
    assert.deepEqual(
      sa.get('model.norm.weight')!.dataSync(),
      lm.stateDict().get('model.norm.weight')!.dataSync(),
    );
    assert.deepEqual(a.model.config.id2label, { 0: 'LABEL_0', 1: 'LABEL_1', 2: 'LABEL_2' });
    [lm, a.model, b].forEach((m) => m.dispose());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tied weights are saved once and restored under both names', async () => {
  const dir = tempDir();
  try {
    manualSeed(23);
    const gpt = modelFromConfig(TINY.gpt2!);
    await saveModel(gpt, dir);
    const again = await loadModel(dir);
    const s = again.stateDict();
    assert.equal(s.get('lm_head.weight'), s.get('transformer.wte.weight'), 'one shared variable');
    assert.deepEqual(
      s.get('lm_head.weight')!.dataSync(),
      gpt.stateDict().get('transformer.wte.weight')!.dataSync(),
    );
    [gpt, again].forEach((m) => m.dispose());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pickles and missing paths are refused with a CheckpointError', async () => {
  const dir = tempDir();
  try {
    const pickle = join(dir, 'pytorch_model.bin');
    writeFileSync(pickle, 'not really a pickle');
    await assert.rejects(loadModel(pickle), CheckpointError);
    await assert.rejects(loadModel(join(dir, 'absent')), CheckpointError);
    await assert.rejects(loadModel(join(dir, 'absent'), { dtype: 'float16' }), NotSupportedError);
    const tensorsBefore = tf.memory().numTensors;
    // a causal LM without its (untied) lm_head in the file cannot be loaded as a causal LM
    manualSeed(24);
    const clf = modelFromConfig(TINY.llama!, { task: 'SEQ_CLS', numLabels: 2 });
    await saveModel(clf, dir);
    await assert.rejects(loadModel(dir, { task: 'CAUSAL_LM' }), CheckpointError);
    clf.dispose();
    assert.equal(tf.memory().numTensors, tensorsBefore, 'a failed load frees what it read');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
