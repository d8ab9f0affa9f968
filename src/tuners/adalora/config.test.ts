import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../errors.js';
import { collectWarnings } from '../base/warnings.js';
import { configFromJson } from '../base/config.js';
import { AdaLoraConfig } from './config.js';

const fixtureText = (name: string) =>
  readFileSync(new URL(`../../../tests/fixtures/${name}`, import.meta.url), 'utf8');

test('defaults are PEFT’s (adalora/config.py)', () => {
  const c = new AdaLoraConfig({ totalStep: 100 });
  assert.equal(c.peftType, 'ADALORA');
  assert.deepEqual(
    [
      c.targetR,
      c.initR,
      c.tinit,
      c.tfinal,
      c.deltaT,
      c.beta1,
      c.beta2,
      c.orthRegWeight,
      c.totalStep,
      c.rankPattern,
    ],
    [8, 12, 0, 0, 1, 0.85, 0.85, 0.5, 100, null],
  );
  assert.equal(c.r, 8);
  assert.equal(c.importanceMetric, 'sensitivity-uncertainty');
});

test('schedule tuples of PEFT tests/test_config.py: valid and invalid (PEFT __post_init__ schedule check)', () => {
  for (const [totalStep, tinit, tfinal] of [
    [100, 0, 0],
    [100, 10, 10],
    [100, 79, 20],
    [100, 80, 19],
  ]) {
    assert.doesNotThrow(
      () => new AdaLoraConfig({ totalStep, tinit, tfinal }),
      `${totalStep},${tinit},${tfinal}`,
    );
  }
  for (const [totalStep, tinit, tfinal] of [
    [100, 20, 80],
    [100, 80, 20],
    [10, 20, 0],
    [10, 0, 10],
  ]) {
    assert.throws(
      () => new AdaLoraConfig({ totalStep, tinit, tfinal }),
      (e: unknown) =>
        e instanceof ConfigError &&
        /budgeting phase/.test(e.message) &&
        /decrease tinit or tfinal/.test(e.message),
      `${totalStep},${tinit},${tfinal}`,
    );
  }
});

test('every rule names its field; checks PEFT lacks are enforced', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{}, /AdaLoraConfig\.totalStep: is required/],
    [{ totalStep: null }, /totalStep/],
    [{ totalStep: 0 }, /totalStep/],
    [{ totalStep: 10.5 }, /totalStep/],
    [{ totalStep: 100, useDora: true }, /AdaLoraConfig\.useDora: AdaLoRA does not support DoRA/],
    [{ totalStep: 100, orthRegWeight: -0.1 }, /orthRegWeight: must be a number ≥ 0 \(got -0\.1\)/],
    [{ totalStep: 100, targetR: 12, initR: 12 }, /targetR: must be an integer in \[0, initR\)/],
    [{ totalStep: 100, targetR: 20 }, /targetR/],
    [{ totalStep: 100, initR: 0 }, /initR: must be a positive integer/],
    [{ totalStep: 100, deltaT: 0 }, /deltaT: must be an integer ≥ 1/],
    [{ totalStep: 100, deltaT: 1.5 }, /deltaT/],
    [{ totalStep: 100, beta1: 1 }, /beta1: must be strictly between 0 and 1/],
    [{ totalStep: 100, beta2: 0 }, /beta2/],
    [{ totalStep: 100, tinit: -1 }, /tinit: must be an integer ≥ 0/],
    [{ totalStep: 100, tfinal: -5 }, /tfinal: must be an integer ≥ 0/],
    [{ totalStep: 100, rankPattern: { 'a.lora_E': [1, 0] } }, /rankPattern/],
    [{ totalStep: 100, importanceMetric: 'gradient' }, /importanceMetric/],
    [{ totalStep: 100, layersPattern: 'layers' }, /layersPattern/],
    [{ totalStep: 100, targetModules: 'q_proj', layersToTransform: [0] }, /layersToTransform/],
  ];
  for (const [opts, re] of bad) {
    assert.throws(
      () => new AdaLoraConfig(opts as any),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      JSON.stringify(opts),
    );
  }
});

test('r ≠ 8 and other ignored LoRA fields warn instead of being silently dropped', () => {
  const { warnings } = collectWarnings(() => new AdaLoraConfig({ totalStep: 100, r: 4, useRslora: true }));
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /r is not used by AdaLoRA.*initR/);
  assert.match(warnings[1]!, /useRslora is ignored/);
  assert.equal(collectWarnings(() => new AdaLoraConfig({ totalStep: 100 })).warnings.length, 0);
  const c = collectWarnings(() => new AdaLoraConfig({ totalStep: 100, r: 4 })).result;
  const { result: copy, warnings: again } = collectWarnings(() => c.clone({ inferenceMode: true }));
  assert.deepEqual(again, [], 'clone (used when saving) does not warn again');
  assert.equal(copy.r, 4);
});

test('adapter_config.json is byte-equal to the python json.dumps golden (PEFT save_pretrained) and reads back', () => {
  const golden = fixtureText('adalora_adapter_config.json');
  const c = new AdaLoraConfig({
    baseModelNameOrPath: 'facebook/opt-125m',
    loraAlpha: 16,
    loraDropout: 0.05,
    targetModules: ['v_proj', 'q_proj'],
    taskType: 'CAUSAL_LM',
    inferenceMode: true,
    peftVersion: '0.20.0',
    initR: 4,
    targetR: 2,
    tinit: 200,
    tfinal: 1000,
    deltaT: 10,
    totalStep: 3000,
    rankPattern: { 'bert.encoder.layer.0.attention.self.query.lora_E': [true, false, true, true] },
  });
  assert.equal(c.toJsonString(), golden);
  const { config, unknownKeys } = configFromJson(AdaLoraConfig, golden);
  assert.deepEqual(unknownKeys, []);
  assert.equal(config.toJsonString(), golden);
  assert.deepEqual(config.pattern, c.pattern);
  assert.equal(config.totalStep, 3000);
});
