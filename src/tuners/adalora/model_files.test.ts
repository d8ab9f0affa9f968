/**
 * AdaLoRA adapter files: the PEFT-layout trimmed fixture (load, outputs, byte-identical re-save, load for
 * training), a training run on the tiny Llama with its saved rank pattern, and the PEFT #1327 warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../../tensor/tf.js';
import type { ModelInputs } from '../../models/base.js';
import { manualSeed } from '../../nn/init.js';
import { collectWarnings } from '../base/warnings.js';
import { PeftModel, getPeftModel } from '../peft_model.js';
import { loadSafetensors } from '../../io/safetensors.js';
import './index.js'; // registers the ADALORA tuner
import { AdaLoraConfig } from './config.js';
import { assertSamePeftConfig } from '../../testing/peft_files.js';
import type { AdaLoraModel } from './index.js';
import {
  LOGIT_ATOL,
  MERGE_ATOL,
  cfg,
  disposeInputs,
  fixturePath,
  inputs,
  layers,
  tinyLlama,
} from '../../testing/adalora_llama.js';
import { maxDiff } from '../../testing/compare.js';

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
    const f = 'adapter_model.safetensors';
    const fxDir = fixturePath('adalora_peft');
    assert.ok(
      readFileSync(path.join(dir, f)).equals(readFileSync(path.join(fxDir, f))),
      `${f} byte-identical`,
    );
    // the config means the same, written with only the keys PEFT 0.10 knows (tuners/base/peft_keys.ts)
    const cfg = (d: string) => readFileSync(path.join(d, 'adapter_config.json'), 'utf8');
    assertSamePeftConfig(cfg(dir), cfg(fxDir), AdaLoraConfig.fields);
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
