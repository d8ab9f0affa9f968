/**
 * LoRA variants (PEFT lora/variants.py): a variant changes how one adapter of a LoRA layer is
 * initialised, contributes to the forward pass and merges — DoRA is the variant behind `useDora`
 * (PEFT `use_dora=True`). The LoRA layer and model import no variant: a variant registers itself
 * when its file is imported, e.g. `lora/dora.ts` (docs/design.md "The LoRA variant registry"):
 *
 * @example
 * registerLoraVariant('dora', 'linear', doraLinearVariant);
 * // later, new LoraConfig({ useDora: true }) layers call doraLinearVariant.init/forward/merge
 *
 * Contract, per adapter of a layer (the LoRA A/B tensors, scaling and dropout already exist):
 *  - `init(layer, adapter)`: runs once right after `updateLayer` created and initialised A/B
 *    (DoRA: magnitude vector from ‖W + s·BA‖). Register extra tensors as dict children named in
 *    `extraLayerNames` (e.g. `lora_magnitude_vector`) so save/load/delete/setAdapter see them.
 *  - `forward(layer, adapter, x, result)`: returns `result` plus this adapter's contribution (replaces
 *    `result + B(A(drop(x)))·s`). Called inside the layer's `tf.tidy`.
 *  - `merge(layer, adapter, w)` / `unmerge(layer, adapter, w)`: the new base weight (storage layout)
 *    from the current one. Called inside `tf.tidy`; return a fresh tensor.
 */
import type { Tensor } from '../../tensor/tf.js';
import { ConfigError } from '../../errors.js';
import type { LoraLayer } from './layer.js';

/** Layer kinds a variant can be registered for (PEFT resolves a variant per layer class). */
export type LoraLayerKind = 'linear' | 'embedding';

export interface LoraVariant {
  /** Children holding this variant's per-adapter tensors (saved, deleted, frozen with the adapter). */
  readonly extraLayerNames: readonly string[];
  init(layer: LoraLayer, adapter: string): void;
  forward(layer: LoraLayer, adapter: string, x: Tensor, result: Tensor): Tensor;
  merge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor;
  unmerge(layer: LoraLayer, adapter: string, weight: Tensor): Tensor;
}

const registry = new Map<string, LoraVariant>();

/**
 * Registers a variant under a name ('dora') for one layer kind. Registering twice replaces it.
 * @example registerLoraVariant('dora', 'linear', myDora);
 */
export function registerLoraVariant(name: string, kind: LoraLayerKind, variant: LoraVariant): void {
  registry.set(`${name}/${kind}`, variant);
}

/** The registered variant, or undefined. */
export function findLoraVariant(name: string, kind: LoraLayerKind): LoraVariant | undefined {
  return registry.get(`${name}/${kind}`);
}

/**
 * The variant a config asks for on a layer kind (`useDora` → 'dora'), or null for plain LoRA.
 * Throws a ConfigError when the variant is requested but not registered.
 */
export function resolveLoraVariant(
  config: { useDora: boolean },
  kind: LoraLayerKind,
  where: string,
): LoraVariant | null {
  if (!config.useDora) return null;
  const v = findLoraVariant('dora', kind);
  if (!v) {
    throw new ConfigError(
      `${where}.useDora`,
      `needs the DoRA variant for ${kind} layers, and none is registered`,
      true,
      kind === 'linear'
        ? "import the library entry ('lowrank') or 'src/tuners/lora/dora.js' so DoRA registers itself, or set useDora: false"
        : `DoRA is not available for ${kind} layers; set useDora: false or exclude these modules`,
    );
  }
  return v;
}
