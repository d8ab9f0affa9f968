/** `lowrank info --model`: float16 embeddings and the training-step memory estimate (issue 18). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { cli, tmp } from '../src/testing/cli_runner.js';
import { modelFromConfig } from '../src/models/from_config.js';
import { saveModel } from '../src/models/load.js';
import { manualSeed } from '../src/nn/init.js';
import { estimateStepActivations } from '../src/models/step_memory.js';
import { stepInfo } from '../src/cli/commands/info.js';

const CONFIG = {
  model_type: 'llama',
  vocab_size: 80,
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  tie_word_embeddings: true,
};

async function tinyModelDir(): Promise<string> {
  manualSeed(3);
  const dir = path.join(tmp(), 'model');
  const m = modelFromConfig(CONFIG, { task: 'CAUSAL_LM' });
  await saveModel(m, dir);
  m.dispose();
  return dir;
}

test('estimateStepActivations: the SmolLM-135M shape at 4 × 256, by hand (see models/step_memory.ts)', () => {
  const smol = {
    model_type: 'llama',
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    vocab_size: 49152,
  };
  // per token and layer: 10·576 + 3·192 + 4·1536 + 2·9·256 = 17,088 floats
  const perLayer = 17088;
  assert.deepEqual(estimateStepActivations(smol, 4, 256), {
    plain: 4 * 1024 * (2 * 30 * perLayer + 4 * 49152),
    withMemoryOptions: 4 * (1024 * (30 * 576 + 2 * perLayer) + 3 * 2 ** 23),
  });
  assert.equal(estimateStepActivations({ model_type: 'bert' }, 4, 256), null, 'not a decoder config');
});

test('stepInfo: no suggestion when a plain step fits; the memory flags when only they fit; else smaller batches', () => {
  const est = { plain: 10e9, withMemoryOptions: 1e9 };
  assert.equal(stepInfo(est, 4, 256, 1e9, 24e9).suggestion, null);
  assert.match(stepInfo(est, 4, 256, 1e9, 8e9).suggestion!, /add --gradient-checkpointing --chunked-loss/);
  assert.match(stepInfo(est, 4, 256, 1e9, 1.5e9).suggestion!, /lower --batch-size or --max-length/);
});

test('info --model --quantize nf4 --embedding-dtype float16: float16 bytes, RSS and the step estimate', async () => {
  const dir = await tinyModelDir();
  const r = await cli(
    'info',
    '--backend',
    'cpu',
    '--model',
    dir,
    '--quantize',
    'nf4',
    '--embedding-dtype',
    'float16',
    '--json',
  );
  assert.equal(r.code, 0, r.err);
  const m = JSON.parse(r.out).model;
  assert.equal(m.memory.frozenHalf, 80 * 32 * 4, 'the packed float16 table');
  assert.equal(
    m.memory.trainable + m.memory.frozenDense,
    5 * 64 * 4,
    'only the norms stay f32 (the tied head has no f32 copy)',
  );
  assert.equal(
    m.process.heldBytes,
    m.memory.trainable + m.memory.frozenDense + m.memory.frozenQuantized + m.memory.frozenHalf,
  );
  assert.ok(m.process.rss >= m.process.heldBytes, 'RSS reported beside the tensor bytes');
  assert.equal(m.step.batch, 8);
  assert.equal(m.step.seq, 128);
  assert.deepEqual(
    { plain: m.step.plain, withMemoryOptions: m.step.withMemoryOptions },
    estimateStepActivations(CONFIG, 8, 128),
  );
  assert.equal(m.step.suggestion, null, 'a tiny step fits');

  // 64 × 65,536 tokens: the attention scores alone are far beyond any machine
  const big = await cli(
    'info',
    '--backend',
    'cpu',
    '--model',
    dir,
    '--quantize',
    'nf4',
    '--batch-size',
    '64',
    '--max-length',
    '65536',
  );
  assert.equal(big.code, 0, big.err);
  assert.match(big.out, /frozen 4-bit/);
  assert.match(big.out, /training step 64 × 65536 \(rough estimate of activations\): plain [\d,]+ B/);
  assert.match(
    big.out,
    /a step would not fit even with --gradient-checkpointing --chunked-loss: lower --batch-size/,
  );
});

test('--embedding-dtype float16 needs --quantize (info and train: usage errors, exit 2)', async () => {
  const info = await cli('info', '--model', 'x', '--embedding-dtype', 'float16');
  assert.equal(info.code, 2);
  assert.match(info.err, /--embedding-dtype float16: needs --quantize/);
  const train = await cli('train', '--model', 'x', '--data', 'y.tsv', '--embedding-dtype', 'float16');
  assert.equal(train.code, 2);
  assert.match(train.err, /--embedding-dtype float16: needs --quantize/);
  const range = await cli('info', '--model', 'x', '--batch-size', '0');
  assert.equal(range.code, 2);
  assert.match(range.err, /--batch-size: must be >= 1/);
});
