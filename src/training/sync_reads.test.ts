/**
 * No synchronous tensor read on the training path (src/tensor/read.ts). GPU backends (WebGPU, WebGL)
 * lose the device or stall on `dataSync`/`arraySync`; here every synchronous read through the engine
 * throws (`forbidSyncReads`), so any that reaches training — loss, clipping, AdaLoRA's allocation with
 * masking, evaluation, the adapter save, QLoRA's quantisation — fails this test on any backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tensor/tf.js';
import { forbidSyncReads, readDataSync } from '../tensor/read.js';
import { NotSupportedError } from '../errors.js';
import { getPeftModel, LoraConfig, type PeftModel } from '../tuners/index.js';
import { AdaLoraConfig } from '../tuners/adalora/index.js';
import { quantizeModelAsync } from '../nn/linear4bit.js';
import { tinyBertClassifier, tinyLlamaLm } from '../testing/tiny_models.js';
import { trainWithoutSyncReads, withoutSyncReads } from '../testing/sync_reads.js';
import type { Example } from './data/dataset.js';

const STEPS = 6;

function examples(n: number, task: 'classification' | 'causal_lm'): Example[] {
  return Array.from({ length: n }, (_, i) => {
    const ids = Array.from({ length: 3 + (i % 4) }, (_, j) => 1 + ((i * 7 + j * 3) % 28));
    return task === 'classification' ? { inputIds: ids, label: i % 3 } : ({ inputIds: ids } as Example);
  });
}

async function trainGuarded(peft: PeftModel, task: 'classification' | 'causal_lm'): Promise<number[]> {
  const { losses, dir } = await trainWithoutSyncReads(peft, {
    task,
    train: examples(16, task),
    eval: examples(6, task),
    maxSteps: STEPS,
    seed: 1,
    evalEvery: 3,
    saveAdapter: (d) => peft.savePretrained(d),
  });
  assert.ok(fs.existsSync(path.join(dir, 'adapter', 'adapter_model.safetensors')), 'adapter saved');
  fs.rmSync(dir, { recursive: true, force: true });
  return losses;
}

test('the guard itself: a dataSync under forbidSyncReads throws; readDataSync names the async way', () => {
  const t = tf.tensor1d([1, 2]);
  const restore = forbidSyncReads();
  try {
    assert.throws(() => t.dataSync(), NotSupportedError);
    assert.throws(() => t.arraySync(), NotSupportedError);
  } finally {
    restore();
  }
  assert.deepEqual(Array.from(t.dataSync()), [1, 2]);
  assert.deepEqual(Array.from(readDataSync(t, 'here', 'there')), [1, 2]); // cpu: allowed
  t.dispose();
});

test('LoRA on BERT with a trained classifier head: training, clipping, eval, save never read synchronously', async () => {
  const peft = getPeftModel(
    tinyBertClassifier(),
    new LoraConfig({ r: 2, targetModules: ['query', 'value'], modulesToSave: ['classifier'] }),
  );
  const losses = await trainGuarded(peft, 'classification');
  assert.equal(losses.length, STEPS);
  assert.ok(losses.every(Number.isFinite));
});

test('AdaLoRA on Llama (masking during the run, freeze and final phases) never reads synchronously', async () => {
  const peft = getPeftModel(
    tinyLlamaLm(),
    new AdaLoraConfig({
      initR: 4,
      targetR: 2,
      tinit: 1,
      tfinal: 2,
      deltaT: 1,
      totalStep: STEPS,
      targetModules: ['q_proj', 'v_proj'],
    }),
  );
  const losses = await trainGuarded(peft, 'causal_lm');
  assert.equal(losses.length, STEPS);
  const pattern = (peft.peftConfig.get('default') as AdaLoraConfig).rankPattern as Record<string, boolean[]>;
  const kept = Object.values(pattern).reduce((n, v) => n + v.filter(Boolean).length, 0);
  assert.ok(kept < 4 * Object.keys(pattern).length, `masking pruned something (kept ${kept})`);
});

test('QLoRA: quantizeModelAsync + LoRA training never read synchronously', async () => {
  const model = tinyLlamaLm();
  await withoutSyncReads(() => quantizeModelAsync(model, { quantType: 'nf4' }));
  const peft = getPeftModel(model, new LoraConfig({ r: 2, targetModules: ['q_proj', 'v_proj'] }));
  const losses = await trainGuarded(peft, 'causal_lm');
  assert.ok(losses.every(Number.isFinite));
});
