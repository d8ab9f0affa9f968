/**
 * The base model's own output head, kept aside while adapters come and go: PEFT's `unload` leaves an
 * adapter's trained copy of a `modules_to_save` head (the classifier) in the model, so switching back
 * to the bare base (or to another adapter) writes the base's values back first.
 */
import type { PreTrainedModel } from '../../src/models/base.js';
import type { Module } from '../../src/nn/module.js';
import { tf, type Tensor } from '../../src/tensor/tf.js';

/** Copies of the output heads' parameters (e.g. `classifier.weight`), by parameter name. */
export function snapshotHeads(model: PreTrainedModel): Map<string, Tensor> {
  const heads = model.outputModuleNames();
  const out = new Map<string, Tensor>();
  for (const [n, p] of model.namedParameters()) {
    if (heads.some((h) => n === h || n.startsWith(`${h}.`))) out.set(n, tf.keep(p.clone()));
  }
  return out;
}

/** Writes the snapshotted head parameters back (after `unload` put an adapter's head copy in place). */
export function restoreHeads(model: Module, heads: Map<string, Tensor>): void {
  const params = new Map(model.namedParameters());
  for (const [n, t] of heads) params.get(n)?.assign(t);
}
