/**
 * The tfjs forward of a batch group of the server (when the native engine does not run it): one
 * mixed-adapter forward — one base GEMM per layer, each adapter's delta on its own rows
 * (tuners/lora/mixed_batch.ts) — or, when every row has the same adapter, that adapter's own forward
 * (the single-adapter shortcut: no per-row routing), or a solo adapter's own forward (DoRA,
 * modules_to_save copies, LoRA on non-linear layers).
 *
 * @example const logits = forwardFor(store, [handle])({ inputIds, useCache: true }).logits;
 */
import type { ModelInputs } from '../models/base.js';
import type { ForwardFn } from '../models/ragged_cache.js';
import { BASE_ADAPTER } from '../tuners/lora/mixed_batch.js';
import type { AdapterHandle, AdapterStore } from './adapters.js';

/** The forward of a group of rows with these adapters. */
export function forwardFor(store: AdapterStore, handles: AdapterHandle[]): ForwardFn {
  const peft = store.peft;
  if (!peft) return (inputs: ModelInputs) => store.base.forward(inputs);
  const solo = handles[0]!.solo ? handles[0]!.internal! : null;
  if (solo !== null) {
    return (inputs) => {
      peft.setAdapter(solo);
      return peft.forward(inputs);
    };
  }
  const names = handles.map((h) => h.internal ?? BASE_ADAPTER);
  const only = names[0]!;
  if (only !== BASE_ADAPTER && names.every((n) => n === only)) {
    // one adapter on every row: its own forward, without the per-row routing of a mixed batch
    return (inputs) => {
      peft.setAdapter(only);
      return peft.forward(inputs);
    };
  }
  return (inputs) => {
    // modules_to_save copies follow the active adapter, not the rows: mixed rows use the originals
    // (adapters with copies decode in their own group)
    const wrappers = peft.base_model.wrappers();
    wrappers.forEach(([, w]) => w.enableAdapters(false));
    try {
      return peft.forwardMixed(inputs, names);
    } finally {
      wrappers.forEach(([, w]) => w.enableAdapters(true));
    }
  };
}
