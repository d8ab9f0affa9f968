/** PeftModel API with LoRA on the tiny MLP: counts, adapters, disabling, merging, files, errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { quantizeModel } from '../nn/linear4bit.js';
import { CheckpointError, ConfigError } from '../errors.js';
import { TinyMlp } from '../testing/tiny_mlp.js';
import { perturbAdapter } from '../testing/tuner_matrix.js';
import { getPeftModel, PeftModel } from './peft_model.js';
import { BaseTunerLayer } from './base/layer.js';
import { ModulesToSaveWrapper } from './base/modules_to_save.js';
import { NoMatchingTargetError } from './base/tuner.js';
import { collectWarnings, setWarningHandler } from './base/warnings.js';
import { LoraConfig, LoraLinear } from './lora/index.js';
import { maxDiff } from '../testing/compare.js';

/** Outputs of identical float32 computations (same kernels, same order) are bit-equal. */
const SAME = 0;
/** Merged vs unmerged forward: one more float32 rounding of W + Δ, O(1) values. */
const MERGE_ATOL = 2e-5;

const mlp = () => {
  manualSeed(3);
  return new TinyMlp({ vocab: 12, hidden: 8, inner: 16, classes: 3 }).eval();
};
const ids = () =>
  tf.tensor2d(
    [
      [1, 5, 7],
      [3, 4, 11],
    ],
    [2, 3],
    'int32',
  );
function out(m: { forward: PeftModel['forward'] }): number[] {
  return tf.tidy(() => Array.from(m.forward({ inputIds: ids() }).logits.dataSync()));
}

test('trainable parameter counts and PEFT print format', () => {
  const peft = getPeftModel(mlp(), new LoraConfig({ r: 2, targetModules: ['fc1', 'fc2'] }));
  // base: embed 12·8 + fc1 16·8+16 + fc2 8·16+8 + classifier 3·8+3 = 403; LoRA: fc1 2·8+16·2, fc2 2·16+8·2 = 96
  assert.deepEqual(peft.getNbTrainableParameters(), { trainable: 96, all: 499 });
  assert.equal(
    peft.trainableParametersSummary(),
    'trainable params: 96 || all params: 499 || trainable%: 19.2385',
  );
  assert.deepEqual(
    peft.trainableParameters().map(([n]) => n),
    [
      'base_model.model.fc1.lora_A.default.weight',
      'base_model.model.fc1.lora_B.default.weight',
      'base_model.model.fc2.lora_A.default.weight',
      'base_model.model.fc2.lora_B.default.weight',
    ],
  );
  manualSeed(1);
  const big = getPeftModel(
    new TinyMlp({ vocab: 1000, hidden: 64, inner: 128, classes: 2 }),
    new LoraConfig({ r: 4, targetModules: ['fc1'] }),
  );
  // 64000 + (128·64+128) + (64·128+64) + (2·64+2) = 80706 base; LoRA 4·64 + 128·4 = 768
  assert.equal(
    big.trainableParametersSummary(),
    'trainable params: 768 || all params: 81,474 || trainable%: 0.9426',
  );
  peft.dispose();
  big.dispose();
  // QLoRA: fc1/fc2 weights become 4-bit codes; PEFT still counts them at out·in
  const q = mlp();
  quantizeModel(q, { skipModules: ['classifier', 'embed'] });
  const qPeft = getPeftModel(q, new LoraConfig({ r: 2, targetModules: ['fc1', 'fc2'] }));
  assert.deepEqual(qPeft.getNbTrainableParameters(), { trainable: 96, all: 499 });
  qPeft.dispose();
});

test('several adapters: add inactive, switch, delete; only the active one trains', () => {
  const peft = getPeftModel(mlp(), new LoraConfig({ r: 2, targetModules: ['fc1'] }));
  peft.addAdapter('b', new LoraConfig({ r: 3, targetModules: ['fc1', 'fc2'] }));
  perturbAdapter(peft);
  assert.deepEqual(peft.activeAdapters, ['default']);
  const yDefault = out(peft);
  peft.setAdapter('b');
  perturbAdapter(peft, 5);
  const yB = out(peft);
  assert.ok(maxDiff(yDefault, yB) > 1e-3);
  assert.ok(peft.trainableParameters().every(([n]) => n.includes('.b.')));
  const fc1 = peft.getBaseModel().getSubmodule('fc1') as LoraLinear;
  assert.deepEqual(fc1.adapterNames().sort(), ['b', 'default']);
  assert.throws(() => peft.setAdapter('nope'), ConfigError);
  assert.throws(() => peft.addAdapter('b', new LoraConfig({ targetModules: ['fc1'] })), /exists/);
  assert.throws(() => peft.addAdapter('x.y', new LoraConfig({ targetModules: ['fc1'] })), /contain no/);
  const n0 = tf.memory().numTensors;
  peft.deleteAdapter('b');
  assert.equal(tf.memory().numTensors, n0 - (2 + 2), 'deleting "b" frees its four tensors');
  assert.deepEqual(peft.activeAdapters, ['default']);
  assert.equal(maxDiff(out(peft), yDefault), SAME);
  assert.ok(!(peft.getBaseModel().getSubmodule('fc2') as LoraLinear).adapterNames().includes('b'));
  // once every adapter is deleted, a new one of the same type can be added (it used to be refused)
  peft.deleteAdapter('default');
  assert.equal(peft.peftConfig.size, 0);
  peft.addAdapter('again', new LoraConfig({ r: 2, targetModules: ['fc1'] }));
  assert.deepEqual(fc1.adapterNames(), ['again']);
  peft.dispose();
});

test('withAdapterDisabled gives base outputs, re-enables (also after a throw), keeps trainability', () => {
  const base = mlp();
  const want = out(base);
  const peft = getPeftModel(base, new LoraConfig({ r: 2, targetModules: ['fc1', 'fc2'] }));
  perturbAdapter(peft);
  const withAdapter = out(peft);
  assert.equal(
    maxDiff(
      peft.withAdapterDisabled(() => out(peft)),
      want,
    ),
    SAME,
  );
  assert.throws(
    () =>
      peft.withAdapterDisabled(() => {
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(maxDiff(out(peft), withAdapter), SAME);
  assert.equal(peft.trainableParameters().length, 4);
  peft.dispose();
});

test('mergeAndUnload returns the plain model with merged weights; safe merge refuses NaN', () => {
  const peft = getPeftModel(
    mlp(),
    new LoraConfig({ r: 2, targetModules: ['fc1', 'embed'], modulesToSave: ['classifier'] }),
  );
  perturbAdapter(peft);
  const y = out(peft);
  const fc1 = peft.getBaseModel().getSubmodule('fc1') as LoraLinear;
  const B = fc1.lora_B.get('default')!.weight;
  const saved = B.clone();
  B.assign(tf.fill(B.shape, NaN));
  const before = Array.from(fc1.base_layer.denseWeight().dataSync());
  assert.throws(() => peft.merge({ safeMerge: true }), CheckpointError);
  assert.deepEqual(Array.from((fc1.base_layer as Linear).weight.dataSync()), before);
  assert.equal(fc1.merged, false);
  B.assign(saved);
  saved.dispose();
  const plain = peft.mergeAndUnload();
  assert.ok(
    plain
      .namedModules()
      .every(([, m]) => !(m instanceof BaseTunerLayer) && !(m instanceof ModulesToSaveWrapper)),
  );
  assert.ok(plain.namedParameters().every(([n]) => !n.includes('lora_') && !n.includes('base_layer')));
  assert.ok(maxDiff(out(plain as TinyMlp), y) <= MERGE_ATOL);
  plain.dispose();
});

test('save: non-default adapters in <dir>/<name>; loadAdapter; unknown keys warn; pickles refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowrank-peft-'));
  try {
    const peft = getPeftModel(mlp(), new LoraConfig({ r: 2, targetModules: ['fc1'], taskType: null }));
    peft.addAdapter('second', new LoraConfig({ r: 1, loraAlpha: 2, targetModules: ['fc2'] }));
    perturbAdapter(peft);
    peft.setAdapter('second');
    perturbAdapter(peft, 8);
    await peft.savePretrained(dir);
    assert.ok(
      existsSync(join(dir, 'adapter_config.json')) &&
        existsSync(join(dir, 'second', 'adapter_model.safetensors')),
    );
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.inference_mode, true);
    assert.deepEqual(cfg.auto_mapping, { base_model_class: 'TinyMlp', parent_library: 'lowrank' });
    const ySecond = out(peft);
    peft.setAdapter('default');
    const yDefault = out(peft);

    const loaded = await PeftModel.fromPretrained(mlp(), dir);
    assert.equal(maxDiff(out(loaded), yDefault), SAME);
    await loaded.loadAdapter(join(dir, 'second'), 'second');
    loaded.setAdapter('second');
    assert.equal(maxDiff(out(loaded), ySecond), SAME);
    assert.equal(loaded.trainableParameters().length, 0);

    const trainable = await PeftModel.fromPretrained(mlp(), dir, { isTrainable: true });
    assert.equal(trainable.trainableParameters().length, 2);

    cfg.some_future_field = 1;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(cfg));
    const warnings: string[] = [];
    const restore = setWarningHandler((m) => warnings.push(m));
    try {
      (await PeftModel.fromPretrained(mlp(), dir)).dispose();
    } finally {
      restore();
    }
    assert.ok(warnings.some((w) => w.includes('some_future_field')));

    rmSync(join(dir, 'second', 'adapter_model.safetensors'));
    writeFileSync(join(dir, 'second', 'adapter_model.bin'), 'pickle');
    await assert.rejects(() => PeftModel.fromPretrained(mlp(), join(dir, 'second')), /pickle/);
    await assert.rejects(() => PeftModel.fromPretrained(mlp(), join(dir, 'missing')), /adapter_config.json/);
    [peft, loaded, trainable].forEach((m) => m.dispose());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mismatched weights are refused with the keys named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lowrank-peft-'));
  try {
    const peft = getPeftModel(mlp(), new LoraConfig({ r: 2, targetModules: ['fc1'] }));
    await peft.savePretrained(dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    cfg.target_modules = ['fc1', 'fc2'];
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(cfg));
    await assert.rejects(
      () => PeftModel.fromPretrained(mlp(), dir),
      (e: Error) => e instanceof CheckpointError && /fc2\.lora_A\.weight/.test(e.message),
    );
    cfg.target_modules = ['fc1'];
    cfg.r = 3;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(cfg));
    await assert.rejects(() => PeftModel.fromPretrained(mlp(), dir), /different shape/);
    writeFileSync(join(dir, 'adapter_config.json'), '{"r": 2,');
    await assert.rejects(
      () => PeftModel.fromPretrained(mlp(), dir),
      (e: Error) => e instanceof CheckpointError && /adapter_config\.json: is not valid JSON/.test(e.message),
    );
    peft.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config errors at model level: no match, unsupported module, one bias adapter, AdaLoRA-only method, DoRA unregistered', () => {
  assert.throws(
    () => getPeftModel(mlp(), new LoraConfig({ targetModules: ['q_proj'] })),
    (e: Error) =>
      e instanceof NoMatchingTargetError && /matched no module/.test(e.message) && /fc1/.test(e.message),
  );
  class WithNorm extends Module {
    declare ln: LayerNorm;
    constructor() {
      super();
      this.registerModule('ln', new LayerNorm(4));
    }
  }
  assert.throws(
    () => getPeftModel(new WithNorm(), new LoraConfig({ targetModules: ['ln'] })),
    /"ln" \(LayerNorm\) cannot take a LoRA adapter/,
  );
  const peft = getPeftModel(mlp(), new LoraConfig({ targetModules: ['fc1'], bias: 'all' }));
  assert.throws(
    () => peft.addAdapter('b', new LoraConfig({ targetModules: ['fc1'], bias: 'lora_only' })),
    /only one adapter may train biases/,
  );
  assert.throws(
    () => peft.updateAndAllocate(3),
    (e: Error) => e instanceof ConfigError && /AdaLoRA/.test(e.message),
  );
  assert.throws(
    () => getPeftModel(mlp(), new LoraConfig({ targetModules: ['fc1'], useDora: true })),
    /DoRA variant/,
  );
  assert.throws(
    () => getPeftModel(mlp(), new LoraConfig({ targetModules: ['fc1'], initLoraWeights: 'pissa', r: 9 })),
    /min\(out, in\) = 8/,
  );
  peft.dispose();
});

test('modulesToSave: trainable copy trains, original kept; Conv1D fanInFanOut reconciled with a warning', () => {
  const peft = getPeftModel(
    mlp(),
    new LoraConfig({ r: 2, targetModules: ['fc1'], modulesToSave: ['classifier'], fanInFanOut: true }),
  );
  const w = peft.getBaseModel().getSubmodule('classifier') as ModulesToSaveWrapper;
  assert.ok(w instanceof ModulesToSaveWrapper);
  assert.ok(
    peft
      .trainableParameters()
      .some(([n]) => n === 'base_model.model.classifier.modules_to_save.default.weight'),
  );
  assert.ok(!peft.trainableParameters().some(([n]) => n.includes('original_module')));
  assert.equal(
    (peft.peftConfig.get('default') as LoraConfig).fanInFanOut,
    false,
    'PEFT resets fan_in_fan_out for nn.Linear targets',
  );
  const { warnings } = collectWarnings(() =>
    getPeftModel(mlp(), new LoraConfig({ targetModules: ['fc2'], fanInFanOut: true })),
  );
  assert.match(warnings[0]!, /fanInFanOut is true/);
  peft.dispose();
});
