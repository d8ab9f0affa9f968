/**
 * AdaLoRA's save-time trimming and load-time resizing by `rank_pattern` (PEFT
 * adalora/model.py 259-326), as functions over a state dict and a module tree so the tuner model only
 * wires them in.
 *
 * Differences from PEFT, on purpose:
 * - pattern keys lose only a *trailing* `.<adapter>` (PEFT's `str.replace` removes every occurrence and
 *   corrupts module names such as `x.default_proj`); readers accept both spellings;
 * - the in-memory config is not mutated by saving (PEFT assigns the stripped pattern back);
 * - module paths come from the pattern key's structure (`<path>.lora_E[.<adapter>]`), not from a
 *   substring test, and missing modules are a `CheckpointError` naming the key instead of a KeyError.
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { CheckpointError, ShapeError } from '../../errors.js';
import type { Module } from '../../nn/module.js';
import type { RankPattern } from './rank_allocator.js';
import { SVDLinear, type SvdAdapterOptions } from './layer.js';

/**
 * The rank pattern as saved: keys without the trailing `.<adapter>` (PEFT save_pretrained, e.g. key
 * `bert.encoder.layer.0.attention.self.query.lora_E`).
 * @example stripAdapterFromPattern({ 'q.lora_E.default': [true] }, 'default'); // { 'q.lora_E': [true] }
 */
export function stripAdapterFromPattern(pattern: RankPattern, adapter: string): RankPattern {
  const suffix = `.${adapter}`;
  const out: RankPattern = {};
  for (const [k, v] of Object.entries(pattern))
    out[k.endsWith(suffix) ? k.slice(0, -suffix.length) : k] = [...v];
  return out;
}

/**
 * Module path of a pattern key: `<path>.lora_E` or `<path>.lora_E.<adapter>` → `<path>`.
 * @example modulePathOfPatternKey('model.layers.0.self_attn.q_proj.lora_E.default', 'default'); // 'model.layers.0.self_attn.q_proj'
 */
export function modulePathOfPatternKey(key: string, adapter: string): string {
  const suffix = `.${adapter}`;
  const k =
    key.endsWith(suffix) && key.slice(0, -suffix.length).endsWith('.lora_E')
      ? key.slice(0, -suffix.length)
      : key;
  if (!k.endsWith('.lora_E')) {
    throw new CheckpointError(
      'rank_pattern',
      'keys must name a lora_E parameter (<module path>.lora_E)',
      key,
      'use the rank_pattern written by the allocator',
    );
  }
  return k.slice(0, -'.lora_E'.length);
}

/**
 * Trims an adapter state dict by the rank pattern (PEFT utils/save_and_load.py, on save): drops `ranknum`;
 * for every pattern entry keeps rows `[mask]` of E and A and columns `[:, mask]` of B. `keyOf(path,
 * 'lora_A')` names the tensor in `state` (e.g. `base_model.model.<path>.lora_A.default`). Returns a new map;
 * the tensors it creates are new (caller disposes those not in `state`: see `created`).
 *
 * @example
 * const { state: trimmed, created } = trimStateDictByRankPattern(sd, pattern, 'default', (p, l) => `base_model.model.${p}.${l}.default`);
 */
export function trimStateDictByRankPattern(
  state: ReadonlyMap<string, Tensor>,
  pattern: RankPattern | null,
  adapter: string,
  keyOf: (path: string, layer: 'lora_A' | 'lora_B' | 'lora_E') => string,
): { state: Map<string, Tensor>; created: Tensor[] } {
  const out = new Map<string, Tensor>();
  for (const [k, t] of state) if (!/(^|\.)ranknum(\.|$)/.test(k)) out.set(k, t);
  const created: Tensor[] = [];
  if (pattern === null) return { state: out, created };
  for (const [name, mask] of Object.entries(pattern)) {
    const path = modulePathOfPatternKey(name, adapter);
    const idx = mask.flatMap((m, i) => (m ? [i] : []));
    for (const layer of ['lora_E', 'lora_A', 'lora_B'] as const) {
      const key = keyOf(path, layer);
      const t = out.get(key);
      if (!t)
        throw new CheckpointError(
          'AdaLoRA save',
          'rank_pattern names a module without this adapter tensor',
          key,
          'the pattern must come from this model',
        );
      const axis = layer === 'lora_B' ? 1 : 0;
      // PEFT keeps the tensor when its rank already equals the kept rank: nothing pruned, or a layer
      // that was loaded trimmed and is saved again.
      if (t.shape[axis] === idx.length) continue;
      if (t.shape[axis] !== mask.length) {
        throw new ShapeError(
          'AdaLoRA save',
          `rank pattern length differs from the rank of ${key}`,
          mask.length,
          `expected ${t.shape[axis]}`,
        );
      }
      const trimmed = tf.tidy(() => tf.gather(t, tf.tensor1d(idx, 'int32'), axis));
      created.push(trimmed);
      out.set(key, trimmed);
    }
  }
  return { state: out, created };
}

/**
 * Resizes every `SVDLinear` named by the pattern to its kept rank, keeping `ranknum` at its old value
 * (PEFT `resize_modules_by_rank_pattern`, on load), so that a trimmed checkpoint can then be copied in with
 * matching shapes.
 * @example resizeModulesByRankPattern(wrappedModel, config.pattern!, 'default', layerOpts);
 */
export function resizeModulesByRankPattern(
  root: Module,
  pattern: RankPattern,
  adapter: string,
  opts: SvdAdapterOptions,
): void {
  for (const [name, mask] of Object.entries(pattern)) {
    if (!Array.isArray(mask) || !mask.every((m) => typeof m === 'boolean')) {
      throw new CheckpointError(
        'rank_pattern',
        'values must be lists of booleans',
        name,
        'use the rank_pattern written by the allocator',
      );
    }
    const path = modulePathOfPatternKey(name, adapter);
    let layer: Module;
    try {
      layer = root.getSubmodule(path);
    } catch {
      throw new CheckpointError(
        'rank_pattern',
        'names a module the model does not have',
        path,
        'load the adapter into the model it was trained on',
      );
    }
    if (!(layer instanceof SVDLinear)) {
      throw new CheckpointError(
        'rank_pattern',
        'names a module that is not an AdaLoRA layer',
        path,
        'check targetModules of the adapter config',
      );
    }
    layer.resizeByMask(adapter, mask, opts);
  }
}
