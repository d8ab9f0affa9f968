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
import type { Module } from '../../nn/module.js';
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
