/**
 * The config field builder: one table gives the schema (snake_case keys, kinds, defaults, saved), the
 * instance fields and the unsupported-field check. Checked against PEFT's key names written out by hand
 * and against the exact message every unsupported field gives.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NotSupportedError } from '../../errors.js';
import { LoraConfig, LORA_FIELDS } from '../lora/config.js';
import { AdaLoraConfig } from '../adalora/config.js';
import { F, fieldSpecs, isTruthy } from './config.js';

test('fieldSpecs: snake_case keys from camelCase names, explicit snake, saved and unsupported flags', () => {
  const specs = fieldSpecs({
    loraAlpha: F.number(8),
    baseModelNameOrPath: F.str<string | null>(null),
    deltaT: F.int(1, { snake: 'deltaT' }),
    beta1: F.float(0.85),
    runtimeConfig: F.json<unknown>(null, { saved: false }),
    evaConfig: F.json<unknown>(null, { unsupported: true }),
  });
  assert.deepEqual(specs, [
    { camel: 'loraAlpha', snake: 'lora_alpha', kind: 'number', default: 8, saved: true },
    {
      camel: 'baseModelNameOrPath',
      snake: 'base_model_name_or_path',
      kind: 'str',
      default: null,
      saved: true,
    },
    { camel: 'deltaT', snake: 'deltaT', kind: 'int', default: 1, saved: true },
    { camel: 'beta1', snake: 'beta1', kind: 'float', default: 0.85, saved: true },
    { camel: 'runtimeConfig', snake: 'runtime_config', kind: 'json', default: null, saved: false },
    { camel: 'evaConfig', snake: 'eva_config', kind: 'json', default: null, saved: true, unsupported: true },
  ]);
});

test('LoRA/AdaLoRA schema: PEFT 0.20 key names (hand-listed), rank_pattern replaced by AdaLoRA', () => {
  const lora = LoraConfig.fields.filter((f) => f.saved !== false).map((f) => f.snake);
  // PEFT 0.20 LoraConfig keys of adapter_config.json (PEFT config.py `save_pretrained`)
  const peft =
    `peft_type task_type inference_mode base_model_name_or_path revision auto_mapping peft_version r
    target_modules exclude_modules lora_alpha lora_dropout fan_in_fan_out bias use_rslora modules_to_save
    init_lora_weights layers_to_transform layers_pattern rank_pattern alpha_pattern use_dora lora_bias
    loftq_config layer_replication target_parameters trainable_token_indices megatron_config megatron_core
    use_qalora qalora_group_size ensure_weight_tying alora_invocation_tokens eva_config corda_config
    lora_ga_config velora_config monteclora_config arrow_config kasa_config use_bdlora`.split(/\s+/);
  assert.deepEqual(lora, peft);
  const ada = AdaLoraConfig.fields.map((f) => f.snake);
  assert.equal(ada.filter((k) => k === 'rank_pattern').length, 1);
  assert.equal(AdaLoraConfig.fields.find((f) => f.snake === 'rank_pattern')!.default, null);
  for (const k of [
    'target_r',
    'init_r',
    'tinit',
    'tfinal',
    'deltaT',
    'beta1',
    'beta2',
    'orth_reg_weight',
    'total_step',
  ])
    assert.ok(ada.includes(k), k);
});

test('every unsupported field is rejected by LoRA and AdaLoRA with the same NotSupportedError message', () => {
  const unsupported = Object.entries(LORA_FIELDS)
    .filter(([, d]) => d.unsupported)
    .map(([k]) => k);
  assert.equal(unsupported.length, 13);
  for (const camel of unsupported) {
    const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    for (const [name, make] of [
      ['LoraConfig', (o: object) => new LoraConfig(o)],
      ['AdaLoraConfig', (o: object) => new AdaLoraConfig({ totalStep: 10, ...o })],
    ] as const) {
      assert.throws(
        () => make({ [camel]: [1] }),
        (e: unknown) =>
          e instanceof NotSupportedError &&
          e.message ===
            `${name}.${camel}: PEFT's ${snake} is not supported yet. remove ${camel} (or set it to null).`,
        `${name}.${camel}`,
      );
      // Python-falsy values are PEFT's "unset": accepted
      assert.doesNotThrow(() => make({ [camel]: [] }), `${name}.${camel} = []`);
    }
  }
});

test('isTruthy follows Python truthiness', () => {
  for (const v of [null, undefined, false, 0, '', [], {}])
    assert.equal(isTruthy(v), false, JSON.stringify(v));
  for (const v of [true, 1, 'x', [0], { a: 1 }]) assert.equal(isTruthy(v), true, JSON.stringify(v));
});
