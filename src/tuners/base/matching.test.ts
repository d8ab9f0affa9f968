/** Target matching exactly as PEFT tuners_utils.py `check_target_module_exists`, and saved-key naming (utils/save_and_load.py). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../errors.js';
import {
  isInModulesToSave,
  layerIndexOf,
  matchTarget,
  resolveTargetModules,
  type TargetSpec,
} from './matching.js';
import { removeAdapterName } from './state_dict.js';

const spec = (o: Partial<TargetSpec>): TargetSpec => ({
  targetModules: null,
  excludeModules: null,
  layersToTransform: null,
  layersPattern: null,
  modulesToSave: null,
  ...o,
});
const Q0 = 'model.layers.0.self_attn.q_proj';
const Q1 = 'model.layers.1.self_attn.q_proj';

test('list targets: exact key or "." + suffix, never a bare substring', () => {
  const s = spec({ targetModules: ['q_proj', 'lm_head'] });
  assert.equal(matchTarget(s, Q0), 'target');
  assert.equal(matchTarget(s, 'lm_head'), 'target');
  assert.equal(matchTarget(s, 'model.layers.0.self_attn.xq_proj'), 'no');
  assert.equal(matchTarget(s, 'model.layers.0.self_attn'), 'no');
});

test('string targets are a full regex match', () => {
  assert.equal(matchTarget(spec({ targetModules: '.*\\.q_proj' }), Q0), 'target');
  assert.equal(matchTarget(spec({ targetModules: 'q_proj' }), Q0), 'no');
  assert.equal(matchTarget(spec({ targetModules: '.*layers\\.1\\..*(q|v)_proj' }), Q1), 'target');
  assert.equal(matchTarget(spec({ targetModules: '.*layers\\.1\\..*(q|v)_proj' }), Q0), 'no');
  assert.equal(matchTarget(spec({ targetModules: '.*(?P<p>q)_proj' }), Q0), 'target'); // Python named group
  assert.throws(() => matchTarget(spec({ targetModules: '(?i).*Q_PROJ' }), Q0), ConfigError);
});

test('excludeModules: regex string full match, list exact or suffix', () => {
  assert.equal(
    matchTarget(spec({ targetModules: ['q_proj'], excludeModules: '.*layers\\.0\\..*' }), Q0),
    'excluded',
  );
  assert.equal(
    matchTarget(spec({ targetModules: ['q_proj'], excludeModules: '.*layers\\.0\\..*' }), Q1),
    'target',
  );
  assert.equal(
    matchTarget(spec({ targetModules: ['q_proj'], excludeModules: ['layers.1.self_attn.q_proj'] }), Q1),
    'excluded',
  );
  assert.equal(matchTarget(spec({ targetModules: ['q_proj'], excludeModules: ['proj'] }), Q1), 'target');
});

test('modulesToSave excludes the module and everything under it: (^|.*\\.)m($|\\..*)', () => {
  assert.ok(isInModulesToSave('classifier', ['classifier']));
  assert.ok(isInModulesToSave('classifier.dense', ['classifier']));
  assert.ok(isInModulesToSave('bert.pooler.classifier', ['classifier']));
  assert.ok(!isInModulesToSave('my_classifier', ['classifier']));
  assert.equal(
    matchTarget(spec({ targetModules: ['dense'], modulesToSave: ['classifier'] }), 'classifier.dense'),
    'excluded',
  );
});

test('layersToTransform / layersPattern (list-target branch only)', () => {
  assert.equal(layerIndexOf(Q1, null), 1);
  assert.equal(layerIndexOf('h.3.attn', null), null); // needs a component before the layer list
  assert.equal(layerIndexOf('transformer.h.3.attn.c_attn', 'h'), 3);
  assert.equal(layerIndexOf('transformer.h.3.attn.c_attn', ['layers', 'h']), 3);
  assert.equal(layerIndexOf(Q1, 'h'), null);
  assert.equal(matchTarget(spec({ targetModules: ['q_proj'], layersToTransform: 1 }), Q1), 'target');
  assert.equal(matchTarget(spec({ targetModules: ['q_proj'], layersToTransform: 1 }), Q0), 'no');
  assert.equal(matchTarget(spec({ targetModules: ['q_proj'], layersToTransform: [0, 2] }), Q0), 'target');
  assert.equal(matchTarget(spec({ targetModules: ['q_proj'], layersToTransform: [] }), Q1), 'target'); // empty list = all
  assert.equal(
    matchTarget(spec({ targetModules: ['q_proj'], layersToTransform: [0], layersPattern: 'h' }), Q0),
    'no',
  );
  assert.equal(matchTarget(spec({ targetModules: [Q1], layersToTransform: [0] }), Q1), 'target'); // exact key: no filter
});

test('defaults per architecture, all-linear expansion, clear error without a default', () => {
  assert.deepEqual(resolveTargetModules(null, 'llama', [], []), ['q_proj', 'v_proj']);
  assert.deepEqual(resolveTargetModules(null, 'bert', [], []), ['query', 'value']);
  assert.deepEqual(resolveTargetModules(null, 'roberta', [], []), ['query', 'value']);
  assert.deepEqual(resolveTargetModules(null, 'gpt2', [], []), ['c_attn']);
  const linears = [
    'transformer.h.0.attn.c_attn',
    'transformer.h.0.mlp.c_fc',
    'transformer.h.1.attn.c_attn',
    'lm_head',
  ];
  assert.deepEqual(resolveTargetModules('ALL-LINEAR', 'gpt2', linears, ['lm_head']), ['c_attn', 'c_fc']);
  assert.throws(() => resolveTargetModules('all-linear', undefined, linears, null), /PreTrainedModel/);
  assert.throws(
    () => resolveTargetModules(null, undefined, [], null),
    (e: Error) => e instanceof ConfigError && /targetModules: is required/.test(e.message),
  );
});

test('adapter name removal for saved keys (PEFT get_peft_model_state_dict)', () => {
  assert.equal(removeAdapterName('a.q.lora_A.default.weight', 'default'), 'a.q.lora_A.weight');
  assert.equal(removeAdapterName('a.q.lora_B.default.bias', 'default'), 'a.q.lora_B.bias');
  assert.equal(removeAdapterName('a.wte.lora_embedding_A.default', 'default'), 'a.wte.lora_embedding_A');
  assert.equal(removeAdapterName('a.q.lora_E.other', 'other'), 'a.q.lora_E');
  assert.equal(removeAdapterName('a.q.base_layer.bias', 'default'), 'a.q.base_layer.bias');
});
