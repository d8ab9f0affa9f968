/**
 * A trained hypernetwork, pinned to one condition, as an ordinary `PeftModel` LoRA over the same base
 * model: what `lowrank eval` / `generate --condition` run, so they reuse every LoRA path (merging for
 * KV-cached decoding included). The factors are the ones `materialize` writes to PEFT files, loaded in
 * memory instead of through a folder.
 *
 * @example
 * const hyper = await HyperLoraModel.fromPretrained(base, 'runs/hyper/adapter');
 * const lora = hyperToLora(hyper, hyper.config.conditionId('shakespeare')); // hyper is used up
 * const merged = lora.mergeAndUnload();
 */
import type { Tensor } from '../../tensor/tf.js';
import { disposeAll } from '../../tensor/memory.js';
import { internal } from '../../errors.js';
import { PeftModel } from '../peft_model.js';
import '../lora/index.js';
import type { HyperLoraModel } from './model.js';
import { HyperLoraLinear } from './layer.js';

/**
 * Replaces `hyper` by the plain LoRA adapter of `condition` (an id, or a [1, conditionDim] vector) on
 * the same base model, in eval mode and frozen. `hyper` is unusable afterwards: its base layers are
 * handed to the LoRA model and its hypernetwork is disposed.
 */
export function hyperToLora(hyper: HyperLoraModel, condition: number | Tensor): PeftModel {
  const { config, weights } = hyper.materialize(condition);
  try {
    const base = hyper.model;
    for (const t of hyper.targets) {
      const layer = base.getSubmodule(t.path);
      if (!(layer instanceof HyperLoraLinear)) throw internal(`hyperToLora: ${t.path} is not wrapped`);
      base.replaceChild(t.path, layer.base_layer);
    }
    hyper.hypernet.dispose();
    const peft = new PeftModel(base, config);
    peft.base_model.loadAdapterStateDict('default', weights);
    peft.requiresGrad(false);
    peft.eval();
    return peft;
  } finally {
    disposeAll(weights);
  }
}
