/**
 * PEFT's adapter state-dict keys (PEFT utils/save_and_load.py, tuners_utils 1652): which model
 * tensors belong to one adapter and the key each gets in `adapter_model.safetensors`
 * (`base_model.model.<module path>.<attr>[.<param>]`, adapter name removed). The selection is
 * structural (attributes of tuner layers except `base_layer`, as PEFT HEAD does since #3490).
 *
 * @example
 * adapterKeyMap(loraModel, 'default', 'none');
 * // [['model.layers.0.self_attn.q_proj.lora_A.default.weight', 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'], …]
 */
import type { Tensor } from '../../tensor/tf.js';
import type { Module } from '../../nn/module.js';
import { CheckpointError } from '../../errors.js';
import { BaseTunerLayer } from './layer.js';
import { ModulesToSaveWrapper } from './modules_to_save.js';

/** Prefix of every saved key: `PeftModel.base_model` (the tuner) `.model` (the wrapped model). */
export const SAVED_KEY_PREFIX = 'base_model.model.';

/**
 * PEFT `_remove_adapter_name_from_state_dict_key`: drop a trailing `.<adapter>` (ParameterDict
 * entries), else the `.<adapter>` right before the last component (`lora_A.default.weight` → `lora_A.weight`).
 *
 * @example removeAdapterName('q.lora_A.default.weight', 'default'); // 'q.lora_A.weight'
 */
export function removeAdapterName(key: string, adapter: string): string {
  const suffix = `.${adapter}`;
  if (key.endsWith(suffix)) return key.slice(0, -suffix.length);
  const last = key.lastIndexOf('.');
  const head = key.slice(0, last);
  if (last > 0 && head.endsWith(suffix)) return head.slice(0, -suffix.length) + key.slice(last);
  return key;
}

/** `[modelKey, savedKey]` pairs; model keys are relative to the wrapped model. */
export type AdapterKeyMap = [string, string][];

/** Options for {@link adapterKeyMap}. */
export interface KeyMapOptions {
  /** `bias` of the adapter's config. */
  bias: 'none' | 'all' | 'lora_only';
  /** Extra per-tuner renaming of saved keys (LoRA: DoRA's `lora_magnitude_vector.weight` → `lora_magnitude_vector`). */
  renameSaved?: (savedKey: string) => string;
}

/**
 * The tensors of `adapter` and their saved keys, for the model wrapped by a tuner.
 * Order: module order, then modulesToSave, then biases.
 */
export function adapterKeyMap(model: Module, adapter: string, opts: KeyMapOptions): AdapterKeyMap {
  const out: AdapterKeyMap = [];
  const seen = new Set<string>();
  const add = (modelKey: string, saved: string) => {
    if (seen.has(modelKey)) return;
    seen.add(modelKey);
    out.push([modelKey, SAVED_KEY_PREFIX + (opts.renameSaved ? opts.renameSaved(saved) : saved)]);
  };
  const otherAdapterScopes: string[] = [];
  for (const [path, m] of model.namedModules()) {
    const at = (n: string) => (path ? `${path}.${n}` : n);
    if (m instanceof BaseTunerLayer) {
      for (const [local] of m.adapterParameters(adapter))
        add(at(local), removeAdapterName(at(local), adapter));
      for (const other of m.adapterNames()) {
        if (other === adapter) continue;
        for (const [local] of m.adapterParameters(other)) otherAdapterScopes.push(at(local));
      }
      if (opts.bias === 'lora_only' && m.adapterNames().includes(adapter)) {
        const base = m.getBaseLayer();
        if (base.hasParameter('bias')) add(at('base_layer.bias'), at('base_layer.bias'));
      }
    } else if (m instanceof ModulesToSaveWrapper) {
      const copy = m.modules_to_save.get(adapter);
      if (copy) for (const [n] of copy.namedParameters()) add(at(`modules_to_save.${adapter}.${n}`), at(n));
      for (const other of m.modules_to_save.keys())
        if (other !== adapter) otherAdapterScopes.push(at(`modules_to_save.${other}.`));
    }
  }
  if (opts.bias === 'all') {
    for (const k of model.stateDict().keys()) {
      if (!(k === 'bias' || k.endsWith('.bias'))) continue;
      if (otherAdapterScopes.some((s) => k === s || k.startsWith(s))) continue;
      add(k, k.replace(`modules_to_save.${adapter}.`, ''));
    }
  }
  return out;
}

/**
 * Saved tensors (PEFT keys) re-keyed to the model's own keys for one adapter, after checking them
 * against the adapter the config built: every adapter tensor present, no unknown key, every shape
 * equal (`own` is the model's state dict). The tensors are not copied; the caller keeps ownership.
 *
 * @example model.loadStateDict(savedToModelKeys('default', map, saved, model.stateDict()), false);
 */
export function savedToModelKeys(
  adapter: string,
  map: AdapterKeyMap,
  state: Map<string, Tensor>,
  own: Map<string, Tensor>,
): Map<string, Tensor> {
  const bySaved = new Map(map.map(([m, s]) => [s, m]));
  const unexpected = [...state.keys()].filter((k) => !bySaved.has(k));
  const missing = map.filter(([, s]) => !state.has(s)).map(([, s]) => s);
  if (unexpected.length || missing.length) {
    throw new CheckpointError(
      `adapter "${adapter}" weights`,
      'keys do not match the adapter built from adapter_config.json',
      {
        missing: missing.slice(0, 10),
        unexpected: unexpected.slice(0, 10),
        counts: [missing.length, unexpected.length],
      },
      'load the adapter into the base model it was trained on, with its own adapter_config.json',
    );
  }
  const remapped = new Map<string, Tensor>();
  for (const [saved, t] of state) {
    const target = own.get(bySaved.get(saved)!)!;
    if (target.shape.join(',') !== t.shape.join(',')) {
      throw new CheckpointError(
        saved,
        'has a different shape from the adapter built from the config',
        `[${t.shape}] vs [${target.shape}]`,
        'check r, rankPattern and the base model',
      );
    }
    remapped.set(bySaved.get(saved)!, t);
  }
  return remapped;
}
