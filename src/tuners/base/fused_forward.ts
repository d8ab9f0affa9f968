/**
 * When an adapter layer may run as the fused adapted-linear op (`adapterLinear`,
 * src/tensor/ops/adapter_linear.ts) instead of `BaseTunerLayer.forward`'s base-then-adapters loop:
 * exactly one active adapter present in the layer, nothing merged or disabled, and an nn `Linear`
 * base whose weight and bias are frozen (modules_to_save, full fine-tuning, `bias: 'all'` and 4-bit
 * bases keep the loop).
 */
import { Linear } from '../../nn/layers.js';
import type { Module } from '../../nn/module.js';
import type { FrozenLinear } from '../../tensor/ops/adapter_linear.js';
import { frozen } from '../../tensor/ops/linear.js';
import type { BaseTunerLayer } from './layer.js';

/**
 * The base layer as a {@link FrozenLinear}, or null when it is not an nn `Linear` with a frozen
 * weight and a frozen (or no) bias.
 * @example const base = frozenLinearOf(layer.base_layer); // null for a trainable or 4-bit base
 */
export function frozenLinearOf(m: Module): FrozenLinear | null {
  if (!(m instanceof Linear) || !frozen(m.weight) || (m.bias !== undefined && !frozen(m.bias))) return null;
  return { weight: m.weight, bias: m.bias ?? null, weightIsInOut: m.fanInFanOut };
}

/**
 * The one adapter `forward` would apply, or null when adapters are disabled or merged, or when
 * none or several active adapters are present in the layer.
 * @example const a = soleActiveAdapter(layer); // 'default'
 */
export function soleActiveAdapter(layer: BaseTunerLayer): string | null {
  if (layer.disableAdapters || layer.merged) return null;
  const present = layer.activeAdapterNames.filter((a) => layer.hasAdapter(a));
  return present.length === 1 ? present[0]! : null;
}
