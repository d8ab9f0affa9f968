/**
 * HyperLoRA target matching is LoRA's (`tuners/base/matching.ts`, PEFT's `check_target_module_exists`):
 * regex `targetModules`, `excludeModules` (names or regex), `layersToTransform` / `layersPattern` wrap
 * exactly the layers a LoRA with the same rules wraps; the rules travel into the materialised PEFT
 * LoRA config, so PEFT loads the factors onto the same layers; bad combinations are the same errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf, type Tensor } from '../../tensor/tf.js';
import { ConfigError, NotSupportedError } from '../../errors.js';
import { tinyGpt2Lm, tinyIds, tinyLlamaLm } from '../../testing/tiny_models.js';
import type { PreTrainedModel } from '../../models/base.js';
import { getPeftModel, PeftModel } from '../peft_model.js';
import { LoraConfig } from '../lora/index.js';
import { HyperLoraConfig, HyperLoraModel, HYPER_CONFIG_NAME, type HyperLoraConfigOptions } from './index.js';

type Rules = Pick<
  HyperLoraConfigOptions,
  'targetModules' | 'excludeModules' | 'layersToTransform' | 'layersPattern'
>;
// Same factors, products in another order (per-row batched matmul vs LoRA's shared A, B).
const ATOL = 2e-5;

const hyperConfig = (rules: Rules) => new HyperLoraConfig({ ...rules, r: 2, numConditions: 2, hiddenDim: 8 });
/** The module paths a LoRA with `rules` adapts on the same base. */
function loraPaths(model: () => PreTrainedModel, rules: Rules): string[] {
  const peft = getPeftModel(
    model(),
    new LoraConfig({ r: 2, ...rules } as ConstructorParameters<typeof LoraConfig>[0]),
  );
  const paths = peft.base_model.tunerLayers().map(([k]) => k);
  peft.dispose();
  return paths.sort();
}
function hyperPaths(model: () => PreTrainedModel, rules: Rules): string[] {
  const hyper = new HyperLoraModel(model(), hyperConfig(rules));
  const paths = hyper.targets.map((t) => t.path);
  hyper.dispose();
  return paths.sort();
}

const CASES: [string, () => PreTrainedModel, Rules, string[]][] = [
  [
    'regex over whole paths',
    tinyLlamaLm,
    { targetModules: String.raw`.*\.1\.self_attn\.(q|v)_proj` },
    ['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj'],
  ],
  [
    'names minus excluded names',
    tinyLlamaLm,
    { targetModules: ['q_proj', 'down_proj'], excludeModules: ['model.layers.0.mlp.down_proj'] },
    ['model.layers.0.self_attn.q_proj', 'model.layers.1.mlp.down_proj', 'model.layers.1.self_attn.q_proj'],
  ],
  [
    'names minus an exclusion regex',
    tinyLlamaLm,
    { targetModules: ['q_proj', 'v_proj'], excludeModules: String.raw`.*\.0\..*` },
    ['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj'],
  ],
  [
    'layersToTransform',
    tinyLlamaLm,
    { targetModules: ['v_proj', 'up_proj'], layersToTransform: [0] },
    ['model.layers.0.mlp.up_proj', 'model.layers.0.self_attn.v_proj'],
  ],
  [
    'layersToTransform + layersPattern (GPT-2 names its blocks h)',
    tinyGpt2Lm,
    { targetModules: ['c_attn'], layersToTransform: 1, layersPattern: 'h' },
    ['transformer.h.1.attn.c_attn'],
  ],
];

for (const [name, model, rules, want] of CASES)
  test(`HyperLoRA targets = LoRA targets: ${name}`, () => {
    assert.deepEqual(hyperPaths(model, rules), want);
    assert.deepEqual(loraPaths(model, rules), want, 'LoRA with the same rules');
  });

test('the rules are saved, reloaded and written into the materialised LoRA config, whose PEFT load gives the hypernetwork outputs', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-hyper-targets-'));
  const rules: Rules = {
    targetModules: ['q_proj', 'v_proj'],
    excludeModules: ['model.layers.0.self_attn.v_proj'],
    layersToTransform: [0, 1],
    layersPattern: 'layers',
  };
  const hyper = new HyperLoraModel(tinyLlamaLm(), hyperConfig(rules));
  assert.deepEqual(hyper.targets.map((t) => t.path).sort(), [
    'model.layers.0.self_attn.q_proj',
    'model.layers.1.self_attn.q_proj',
    'model.layers.1.self_attn.v_proj',
  ]);
  tf.tidy(() => {
    for (const [n, p] of hyper.hypernet.namedParameters())
      if (/_B\.(weight|bias)$/.test(n)) p.assign(tf.randomNormal(p.shape, 0, 0.3, 'float32', 11));
  });
  hyper.eval();
  await hyper.savePretrained(path.join(dir, 'hyper'));
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'hyper', HYPER_CONFIG_NAME), 'utf8'));
  assert.deepEqual(json.exclude_modules, rules.excludeModules);
  assert.deepEqual(json.layers_to_transform, [0, 1]);
  assert.equal(json.layers_pattern, 'layers');
  const again = await HyperLoraModel.fromPretrained(tinyLlamaLm(), path.join(dir, 'hyper'));
  assert.deepEqual(again.targets, hyper.targets);
  again.dispose();

  const x = tinyIds();
  const logits = (f: () => { logits: Tensor }) => tf.tidy(() => Array.from(f().logits.dataSync()));
  const want = logits(() => hyper.forward({ inputIds: x }, [1, 1]));
  await hyper.saveMaterialized(path.join(dir, 'lora'), 1);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'lora', 'adapter_config.json'), 'utf8'));
  assert.deepEqual(cfg.exclude_modules, rules.excludeModules);
  assert.deepEqual(cfg.layers_to_transform, [0, 1]);
  assert.equal(cfg.layers_pattern, 'layers');
  const lora = await PeftModel.fromPretrained(tinyLlamaLm(), path.join(dir, 'lora'));
  assert.deepEqual(
    lora.base_model
      .tunerLayers()
      .map(([k]) => k)
      .sort(),
    hyper.targets.map((t) => t.path).sort(),
  );
  const got = logits(() => lora.forward({ inputIds: x }));
  const base = tinyLlamaLm();
  const plain = logits(() => base.forward({ inputIds: x }));
  const diff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  assert.ok(diff(got, want) <= ATOL, `materialised LoRA differs by ${diff(got, want)}`);
  assert.ok(diff(plain, want) > 1e-3, 'the adapter changes the outputs (the check can fail)');
  // a regex target is written as the regex
  const byRegex = new HyperLoraModel(tinyLlamaLm(), hyperConfig({ targetModules: String.raw`.*\.q_proj` }));
  await byRegex.saveMaterialized(path.join(dir, 'regex'), 0);
  const rcfg = JSON.parse(fs.readFileSync(path.join(dir, 'regex', 'adapter_config.json'), 'utf8'));
  assert.equal(rcfg.target_modules, String.raw`.*\.q_proj`);
  tf.dispose([x]);
  [byRegex, lora, hyper, base].forEach((m) => m.dispose());
  fs.rmSync(dir, { recursive: true, force: true });
});

test('HyperLoRA target rules: the same errors as LoRA; a matched non-linear module is refused; all-linear is not supported', () => {
  const cfgErr = (rules: Rules, re: RegExp) =>
    assert.throws(
      () => hyperConfig(rules),
      (e: unknown) => e instanceof ConfigError && re.test((e as Error).message),
    );
  cfgErr(
    { targetModules: '.*q_proj', layersToTransform: [0] },
    /layersToTransform: cannot be combined with a regex/,
  );
  cfgErr(
    { targetModules: '.*q_proj', layersPattern: 'layers' },
    /layersPattern: cannot be combined with a regex/,
  );
  cfgErr({ targetModules: ['q_proj'], layersPattern: 'layers' }, /layersPattern: needs layersToTransform/);
  cfgErr({ targetModules: ['q_proj'], layersToTransform: [-1] }, /layersToTransform: must be a layer index/);
  cfgErr({ targetModules: '' }, /targetModules: must list at least one module name, or be one regex/);
  assert.throws(() => hyperConfig({ targetModules: 'all-linear' }), NotSupportedError);
  assert.throws(
    () =>
      new HyperLoraModel(
        tinyLlamaLm(),
        hyperConfig({ targetModules: String.raw`model\.embed_tokens|.*\.q_proj` }),
      ),
    /module "model.embed_tokens" \(Embedding\) cannot take a HyperLoRA adapter: only linear layers can/,
  );
  assert.throws(
    () =>
      new HyperLoraModel(
        tinyLlamaLm(),
        hyperConfig({ targetModules: ['q_proj'], excludeModules: String.raw`.*q_proj` }),
      ),
    /matched no linear layer of the model \(2 excluded by excludeModules\)/,
  );
  // a config without the new fields writes the file it always wrote (no new keys)
  const plain = hyperConfig({ targetModules: ['q_proj'] }).toJson();
  for (const k of ['exclude_modules', 'layers_to_transform', 'layers_pattern'])
    assert.equal(k in plain, false, k);
});
