/**
 * Adapter files every PEFT release from 0.10 loads (issue 15): the key table, and for every method the
 * saved adapter_config.json holds only keys PEFT 0.10.0 knows unless a non-default feature needs more
 * (then the file's needed release is stated, and `peft_version` appears only when that release has the
 * key); LoftQ adapters are saved as `init_lora_weights: true` and load onto an f32 or a 4-bit base;
 * `materialize` writes what `savePretrained` writes; unknown keys are reported by name when reading.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../../tensor/tf.js';
import { quantizeModel } from '../../nn/linear4bit.js';
import { manualSeed } from '../../nn/init.js';
import type { Module } from '../../nn/module.js';
import type { PreTrainedModel } from '../../models/base.js';
import { modelFromConfig } from '../../models/from_config.js';
import {
  clsInputs,
  lmInputs,
  tinyBertClassifier,
  tinyGpt2Lm,
  tinyLlamaLm,
  TINY_LLAMA,
} from '../../testing/tiny_models.js';
import { perturbAdapter } from '../../testing/tuner_matrix.js';
import { getPeftModel, PeftModel } from '../peft_model.js';
import { LoraConfig } from '../lora/index.js';
import { AdaLoraConfig } from '../adalora/index.js';
import { HyperLoraConfig, HyperLoraModel } from '../hyperlora/index.js';
import '../lora/dora.js';
import type { PeftConfig } from './config.js';
import { collectWarnings, setWarningHandler } from './warnings.js';
import { keysKnownBy, OLDEST_PEFT, PEFT_KEYS, PEFT_RELEASES, savedAdapterConfig } from './peft_keys.js';
import { maxDiff } from '../../testing/compare.js';

/** Outputs of an adapter before saving and after loading it again: same float32 ops, same order. */
const RELOAD_ATOL = 1e-6;

const tmp = () => mkdtempSync(join(tmpdir(), 'lowrank-keys-'));
const readCfg = (dir: string) => JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));

function logits(m: { forward: PreTrainedModel['forward'] }, make: () => Record<string, tf.Tensor>) {
  return tf.tidy(() => {
    const inputs = make();
    const { labels: _, ...x } = inputs;
    return Array.from(m.forward(x as never).logits.dataSync());
  });
}

test('key table: the 17 keys PEFT 0.10.0 rejected are exactly the newer ones (kasa_config is in no release)', () => {
  const issue = [
    'alora_invocation_tokens',
    'arrow_config',
    'corda_config',
    'ensure_weight_tying',
    'eva_config',
    'exclude_modules',
    'kasa_config',
    'lora_bias',
    'lora_ga_config',
    'monteclora_config',
    'peft_version',
    'qalora_group_size',
    'target_parameters',
    'trainable_token_indices',
    'use_bdlora',
    'use_qalora',
    'velora_config',
  ];
  const written = Object.keys(new LoraConfig({ targetModules: ['q'] }).toDict());
  const old = keysKnownBy('LORA', OLDEST_PEFT);
  assert.deepEqual(written.filter((k) => !old.has(k)).sort(), issue);
  assert.ok(!('kasa_config' in PEFT_KEYS.LORA!), 'kasa_config is on PEFT main only');
  // every key lowrank's LoRA/AdaLoRA configs write is in the table except kasa_config
  for (const [type, cfg] of [
    ['LORA', new LoraConfig({ targetModules: ['q'] })],
    ['ADALORA', new AdaLoraConfig({ targetModules: ['q'], totalStep: 10 })],
  ] as const) {
    const unknown = Object.keys(cfg.toDict()).filter((k) => !(k in PEFT_KEYS[type]!));
    assert.deepEqual(unknown, ['kasa_config'], type);
  }
  assert.equal(PEFT_RELEASES[0], '0.10.0');
  assert.equal(PEFT_RELEASES.at(-1), '0.20.0');
  assert.ok(
    keysKnownBy('LORA', '0.20.0').has('velora_config') && !keysKnownBy('LORA', '0.19.1').has('velora_config'),
  );
});

test('non-default newer features: the file keeps them, states the release it needs, peft_version only from 0.18', async () => {
  const cases: [PeftConfig, string, string[], string | undefined][] = [
    [new LoraConfig({ targetModules: ['q'], loraBias: true }), '0.14.0', ['lora_bias'], undefined],
    [
      new LoraConfig({ targetModules: ['q'], excludeModules: ['k'] }),
      '0.14.0',
      ['exclude_modules'],
      undefined,
    ],
    [
      new LoraConfig({ targetModules: ['q'], ensureWeightTying: true }),
      '0.18.0',
      ['ensure_weight_tying'],
      '0.18.0',
    ],
  ];
  for (const [cfg, needs, keys, version] of cases) {
    const saved = savedAdapterConfig(cfg);
    assert.equal(saved.needs, needs);
    assert.deepEqual(
      saved.newerKeys.map((k) => k.key),
      keys,
    );
    const json = JSON.parse(saved.text);
    assert.equal(json.peft_version, version);
    for (const k of saved.keys)
      assert.ok(keysKnownBy('LORA', saved.needs).has(k), `${k} unknown to ${needs}`);
  }
  // saving says so, naming the key and the release
  const model = tinyLlamaLm();
  const peft = getPeftModel(model, new LoraConfig({ r: 2, targetModules: ['q_proj'], loraBias: true }));
  const dir = tmp();
  try {
    const { result, warnings } = collectWarnings(() => peft.savePretrained(dir));
    await result;
    assert.ok(
      warnings.some((w) => w.includes('needs PEFT ≥ 0.14.0 (lora_bias since 0.14.0)')),
      warnings.join('\n'),
    );
  } finally {
    peft.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

interface MethodCase {
  name: string;
  model: () => Module;
  inputs: () => Record<string, tf.Tensor>;
  config: () => PeftConfig;
}

const methods: MethodCase[] = [
  {
    name: 'LoRA',
    model: () => tinyLlamaLm(),
    inputs: lmInputs,
    config: () => new LoraConfig({ r: 2, targetModules: 'all-linear', taskType: 'CAUSAL_LM' }),
  },
  {
    name: 'LoRA SEQ_CLS (modules_to_save)',
    model: tinyBertClassifier,
    inputs: clsInputs,
    config: () => new LoraConfig({ r: 2, taskType: 'SEQ_CLS' }),
  },
  {
    name: 'DoRA on GPT-2 (fan_in_fan_out)',
    model: tinyGpt2Lm,
    inputs: lmInputs,
    config: () =>
      new LoraConfig({ r: 2, useDora: true, targetModules: ['c_attn', 'c_fc'], taskType: 'CAUSAL_LM' }),
  },
  {
    name: 'AdaLoRA',
    model: () => tinyLlamaLm(),
    inputs: lmInputs,
    config: () =>
      new AdaLoraConfig({
        initR: 4,
        targetR: 2,
        totalStep: 10,
        targetModules: ['q_proj', 'v_proj'],
        taskType: 'CAUSAL_LM',
      }),
  },
  {
    name: 'QLoRA (NF4 base)',
    model: () => {
      const m = tinyLlamaLm();
      quantizeModel(m, { quantType: 'nf4', doubleQuant: true });
      return m;
    },
    inputs: lmInputs,
    config: () => new LoraConfig({ r: 2, targetModules: ['q_proj', 'down_proj'], taskType: 'CAUSAL_LM' }),
  },
];

for (const c of methods) {
  test(`${c.name}: the saved adapter_config.json holds only keys PEFT 0.10.0 knows, and reloads`, async () => {
    const peft = getPeftModel(c.model(), c.config());
    perturbAdapter(peft);
    peft.eval();
    const before = logits(peft, c.inputs);
    const dir = tmp();
    try {
      const { result, warnings } = collectWarnings(() => peft.savePretrained(dir));
      await result;
      assert.ok(!warnings.some((w) => w.includes('needs PEFT')), warnings.join('\n'));
      const json = readCfg(dir);
      const known = keysKnownBy(json.peft_type, OLDEST_PEFT);
      assert.deepEqual(
        Object.keys(json).filter((k) => !known.has(k)),
        [],
      );
      assert.equal(json.inference_mode, true);
      const again = await PeftModel.fromPretrained(c.model(), dir);
      assert.ok(maxDiff(logits(again, c.inputs), before) <= RELOAD_ATOL, 'reloaded adapter differs');
      again.dispose();
    } finally {
      peft.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('LoftQ: saved as init_lora_weights true, loads onto the f32 and the 4-bit base without re-running LoftQ', async () => {
  manualSeed(9);
  const cfg = { ...TINY_LLAMA, hidden_size: 64, intermediate_size: 64 }; // LoftQ blocks of 64
  const base = () => {
    manualSeed(9);
    return modelFromConfig(cfg, { task: 'CAUSAL_LM' }).eval();
  };
  const loftqConfig = { loftq_bits: 4, loftq_iter: 1 };
  const peft = getPeftModel(
    base(),
    new LoraConfig({
      r: 2,
      loraAlpha: 2,
      initLoraWeights: 'loftq',
      loftqConfig,
      targetModules: ['q_proj', 'v_proj'],
      taskType: 'CAUSAL_LM',
    }),
  );
  perturbAdapter(peft, 3, 0.05);
  peft.eval();
  const want = logits(peft, lmInputs);
  const dir = tmp();
  const baseDir = tmp();
  try {
    await peft.savePretrained(dir);
    const json = readCfg(dir);
    assert.equal(json.init_lora_weights, true);
    assert.deepEqual(json.loftq_config, {});
    const known = keysKnownBy('LORA', OLDEST_PEFT);
    assert.deepEqual(
      Object.keys(json).filter((k) => !known.has(k)),
      [],
    );
    // LoftQ changed the base (its weights now sit on the NF4 grid): that base goes with the adapter
    const { saveModel, loadModel } = await import('../../models/load.js');
    await saveModel(peft.unload() as PreTrainedModel, baseDir);
    // only the LoftQ-adapted q/v weights are on the NF4 grid: quantise exactly those, which is lossless
    const skipModules = ['k_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'];
    for (const quantize of [false, true]) {
      const m = await loadModel(baseDir);
      if (quantize) quantizeModel(m, { quantType: 'nf4', doubleQuant: false, skipModules });
      const loaded = await PeftModel.fromPretrained(m, dir);
      const d = maxDiff(logits(loaded, lmInputs), want);
      assert.ok(d <= RELOAD_ATOL, `${quantize ? '4-bit' : 'f32'} base: ${d}`);
      loaded.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(baseDir, { recursive: true, force: true });
  }
});

test('materialize writes what savePretrained writes (inference_mode, task_type, no 0.10-unknown keys)', async () => {
  const model = tinyLlamaLm();
  const hyper = new HyperLoraModel(
    model,
    new HyperLoraConfig({ r: 2, hiddenDim: 8, numConditions: 2, targetModules: ['q_proj', 'v_proj'] }),
  );
  const dir = tmp();
  const lora = tmp();
  try {
    await hyper.saveMaterialized(dir, 1);
    const json = readCfg(dir);
    assert.equal(json.inference_mode, true);
    assert.equal(json.task_type, 'CAUSAL_LM');
    assert.equal(json.peft_version, undefined);
    const known = keysKnownBy('LORA', OLDEST_PEFT);
    assert.deepEqual(
      Object.keys(json).filter((k) => !known.has(k)),
      [],
    );
    // the same keys and values as a LoRA adapter of that config saved by savePretrained
    const peft = getPeftModel(
      tinyLlamaLm(),
      new LoraConfig({
        r: 2,
        loraAlpha: json.lora_alpha,
        targetModules: ['q_proj', 'v_proj'],
        taskType: 'CAUSAL_LM',
      }),
    );
    await peft.savePretrained(lora);
    assert.deepEqual(json, readCfg(lora));
    peft.dispose();
  } finally {
    hyper.dispose();
    rmSync(dir, { recursive: true, force: true });
    rmSync(lora, { recursive: true, force: true });
  }
});

test('reading stays tolerant: keys of newer PEFT versions (or of none) are reported by name and ignored', async () => {
  const peft = getPeftModel(tinyLlamaLm(), new LoraConfig({ r: 2, targetModules: ['q_proj'] }));
  const dir = tmp();
  try {
    await peft.savePretrained(dir);
    const json = readCfg(dir);
    writeFileSync(
      join(dir, 'adapter_config.json'),
      JSON.stringify({ ...json, kasa_config: null, future_option: 3 }),
    );
    const warnings: string[] = [];
    const restore = setWarningHandler((m) => warnings.push(m)); // the read is async: keep it for the await
    const again = await PeftModel.fromPretrained(tinyLlamaLm(), dir).finally(restore);
    assert.ok(
      warnings.some((w) => /ignoring keys this version does not know: future_option/.test(w)),
      `warnings: ${JSON.stringify(warnings)}`,
    );
    again.dispose();
  } finally {
    peft.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
