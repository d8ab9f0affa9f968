import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LoraConfig } from './config.js';
import { configFromJson } from '../base/config.js';
import { collectWarnings } from '../base/warnings.js';
import { pyFloatRepr, pyJsonDumps, PyFloat } from '../base/py_json.js';
import { ConfigError, NotSupportedError } from '../../errors.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../../tests/fixtures/lora/${name}`, import.meta.url), 'utf8');

test('Python float repr matches CPython for the values configs hold', () => {
  // Expected strings are what CPython 3 prints for repr(float(x)).
  const cases: [number, string][] = [
    [0, '0.0'],
    [0.05, '0.05'],
    [1e-5, '1e-05'],
    [32, '32.0'],
    [0.1, '0.1'],
    [1e16, '1e+16'],
    [1.5e-7, '1.5e-07'],
    [123456789012345.6, '123456789012345.6'],
    [0.0001, '0.0001'],
    [-2.5, '-2.5'],
    [0.85, '0.85'],
  ];
  for (const [x, s] of cases) assert.equal(pyFloatRepr(x), s, `repr(${x})`);
  assert.equal(
    pyJsonDumps({ b: new PyFloat(0), a: [1, 'é'], c: {} }),
    '{\n  "a": [\n    1,\n    "\\u00e9"\n  ],\n  "b": 0.0,\n  "c": {}\n}',
  );
});

test('LoraConfig JSON is byte-equal to PEFT 0.20 save_pretrained output (golden from Python json.dumps)', () => {
  const cfg = new LoraConfig({
    r: 8,
    loraAlpha: 16,
    loraDropout: 0.05,
    targetModules: ['v_proj', 'q_proj'],
    taskType: 'CAUSAL_LM',
    baseModelNameOrPath: 'facebook/opt-125m',
    inferenceMode: true,
    peftVersion: '0.20.0',
  });
  assert.equal(cfg.toJsonString(), fixture('adapter_config_example.json'));
  assert.equal(Object.keys(cfg.toDict()).length, 41);
});

test('patterns, floats typed by the user, unicode: golden and file round trip', () => {
  const cfg = new LoraConfig({
    r: 16,
    loraAlpha: 32,
    loraDropout: 1e-5,
    targetModules: '.*\\.(q|v)_proj',
    taskType: 'SEQ_CLS',
    rankPattern: { v_proj: 4, 'model.layers.1.self_attn.q_proj': 2 },
    alphaPattern: { v_proj: 0.5 },
    excludeModules: ['model.layers.0.mlp.up_proj', 'lm_head'],
    bias: 'lora_only',
    modulesToSave: ['score'],
    initLoraWeights: 'gaussian',
    useRslora: true,
    baseModelNameOrPath: 'tiny-llama-é',
    inferenceMode: true,
    peftVersion: '0.20.0',
  });
  cfg.pyFloatPaths.add('lora_alpha'); // a Python user wrote lora_alpha=32.0
  const golden = fixture('adapter_config_patterns.json');
  assert.equal(cfg.toJsonString(), golden);
  const { config, unknownKeys } = configFromJson(LoraConfig, golden);
  assert.deepEqual(unknownKeys, []);
  assert.equal(config.toJsonString(), golden);
  assert.equal(config.loraAlpha, 32);
});

test('reading tolerates unknown and missing keys', () => {
  const { config, unknownKeys } = configFromJson(
    LoraConfig,
    '{"peft_type": "LORA", "r": 4, "some_future_key": 1}',
  );
  assert.deepEqual(unknownKeys, ['some_future_key']);
  assert.equal(config.r, 4);
  assert.equal(config.loraAlpha, 8);
  assert.equal(config.loraBias, false);
});

test('defaults are those of PEFT 0.20 lora/config.py', () => {
  const c = new LoraConfig();
  assert.equal(c.r, 8);
  assert.equal(c.loraAlpha, 8);
  assert.equal(c.loraDropout, 0);
  assert.equal(c.bias, 'none');
  assert.equal(c.initLoraWeights, true);
  assert.deepEqual(c.rankPattern, {});
  assert.equal(c.megatronCore, 'megatron.core');
  assert.equal(c.qaloraGroupSize, 16);
  assert.equal(c.peftType, 'LORA');
  assert.equal(c.inferenceMode, false);
});

test('post-init errors name the field and the fix', () => {
  const bad: [object, RegExp][] = [
    [{ targetModules: 'q.*', layersToTransform: [0] }, /layersToTransform/],
    [{ targetModules: 'q.*', layersPattern: 'layers' }, /layersPattern: cannot be combined/],
    [{ targetModules: ['q'], layersPattern: 'layers' }, /needs layersToTransform/],
    [{ loraBias: true, initLoraWeights: 'gaussian' }, /loraBias/],
    [{ loraBias: true, useDora: true }, /useDora/],
    [{ r: 0 }, /LoraConfig.r: must be a positive integer/],
    [{ r: 2.5 }, /LoraConfig.r/],
    [{ loraDropout: 1 }, /loraDropout/],
    [{ bias: 'some' }, /LoraConfig.bias/],
    [{ rankPattern: { q: 0 } }, /rankPattern\["q"\]/],
    [{ taskType: 'CLS' }, /taskType/],
    [{ initLoraWeights: 'kaiming' }, /initLoraWeights/],
    [{ notAField: 1 }, /notAField: is not a field/],
  ];
  for (const [opts, re] of bad)
    assert.throws(
      () => new LoraConfig(opts as never),
      (e: Error) => e instanceof ConfigError && re.test(e.message),
      JSON.stringify(opts),
    );
  assert.throws(() => new LoraConfig({ initLoraWeights: 'eva' as never }), NotSupportedError);
  // LoftQ: PEFT's LoftQConfig keys only; 2 and 8 bits are PEFT's but not ours; iterations ≥ 1
  const loftq = (loftqConfig: Record<string, unknown>) => () =>
    new LoraConfig({ initLoraWeights: 'loftq', loftqConfig });
  assert.throws(loftq({ bits: 4 }), /loftqConfig: has an unknown key .*got "bits"/);
  assert.throws(loftq({ loftq_bits: 2 }), NotSupportedError);
  assert.throws(loftq({ loftq_bits: 3 }), /loftq_bits: must be 2, 4 or 8/);
  assert.throws(loftq({ loftq_iter: 0 }), /loftq_iter: must be a positive integer/);
  assert.throws(() => new LoraConfig({ initLoraWeights: 'loftq' }), /loftqConfig: is required/);
  assert.deepEqual(JSON.parse(loftq({ loftq_bits: 4, loftq_iter: 2 })().toJsonString()).loftq_config, {
    loftq_bits: 4,
    loftq_iter: 2,
  });
  assert.throws(() => new LoraConfig({ layerReplication: [[0, 1]] }), NotSupportedError);
});

test('loftqConfig without loftq init is dropped with a warning', () => {
  const { result, warnings } = collectWarnings(() => new LoraConfig({ loftqConfig: { bits: 4 } }));
  assert.deepEqual(result.loftqConfig, {});
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /loftqConfig is ignored/);
});

test('clone re-validates without repeating warnings and keeps float paths', () => {
  const { result: cfg, warnings } = collectWarnings(
    () => new LoraConfig({ loftqConfig: { bits: 4 }, loraAlpha: 16 }),
  );
  assert.equal(warnings.length, 1);
  cfg.pyFloatPaths.add('lora_alpha');
  const again = collectWarnings(() => cfg.clone({ inferenceMode: true }));
  assert.deepEqual(again.warnings, []);
  assert.equal(again.result.inferenceMode, true);
  assert.equal(again.result.toDict()['lora_alpha'] instanceof PyFloat, true);
  assert.throws(() => cfg.clone({ r: -1 }), ConfigError);
});

test('pyFloatRepr equals CPython repr() on 373 values across magnitudes (fixture from Python)', () => {
  const cases = JSON.parse(fixture('float_repr.json')) as [string, string][];
  for (const [hex, want] of cases) {
    const x = new DataView(Uint8Array.from(Buffer.from(hex, 'hex')).buffer).getFloat64(0, true);
    assert.equal(pyFloatRepr(x), want, `bits ${hex}`);
  }
});

test('string escaping equals Python json.dumps(ensure_ascii=True)', () => {
  // python3 -c "import json; print(json.dumps({'k':'a\x7fb\x01é😀'}))"
  assert.equal(pyJsonDumps({ k: 'a\x7fb\x01é😀' }), '{\n  "k": "a\\u007fb\\u0001\\u00e9\\ud83d\\ude00"\n}');
});
