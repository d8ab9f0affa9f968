/**
 * The Trainer's AdaLoRA hook: after each optimizer step it calls the tuner's
 * `updateAndAllocate(step, grads)` (PEFT adalora/model.py `update_and_allocate`: after optimizer.step, before
 * the gradients are dropped, 0-based step) and checkpoints the allocator's EMAs, the rank pattern and the
 * call count so a resumed run allocates exactly as an uninterrupted one. `Trainer` installs it by default for
 * AdaLoRA models, so library users cannot forget it (PEFT's most reported AdaLoRA mistake, #1327).
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { ConfigError } from '../errors.js';
import { readScalar } from '../tensor/read.js';
import { PeftModel } from '../tuners/peft_model.js';
import type { AdaLoraConfig, AdaLoraModel } from '../tuners/adalora/index.js';
import { orthRegularizer } from '../tuners/adalora/orth_reg.js';
import type { StepHook } from './types.js';

/** `model.layers.0.self_attn.q_proj.lora_E.default` → `model.layers.0.self_attn.q_proj`. */
export function moduleOfParam(name: string): string {
  return name.replace(/\.lora_E(\.[^.]+)?$/, '');
}

/**
 * The trainer hook for AdaLoRA models (undefined for other tuners): calls the tuner's
 * `updateAndAllocate(step, grads)` and checkpoints the allocator's EMAs, the rank pattern and the call
 * count so a resumed run allocates exactly as an uninterrupted one.
 *
 * @example const hook = adaloraHook(peft); new Trainer(peft, { ..., stepHook: hook });
 */
export function adaloraHook(model: unknown): StepHook | undefined {
  if (!(model instanceof PeftModel)) return undefined;
  const tuner = model.base_model as unknown as AdaLoraModel;
  if (typeof tuner.updateAndAllocateAsync !== 'function' || !tuner.allocation) return undefined;
  const alloc = tuner.allocation;
  const cfg = alloc.config;
  const initRanks = (): Record<string, number> =>
    Object.fromEntries(
      [...alloc.params().keys()]
        .filter((n) => n.includes('lora_E'))
        .map((n) => [moduleOfParam(n), cfg.initR]),
    );
  const maps = () => ({
    ipt: alloc.allocator.ipt as Map<string, Tensor>,
    avg_ipt: alloc.allocator.expAvgIpt as Map<string, Tensor>,
    avg_unc: alloc.allocator.expAvgUnc as Map<string, Tensor>,
  });
  return {
    async regularizer() {
      // the term AdaLoraModel.forward adds to the task loss (orthRegWeight · R, PEFT adalora/model.py
      // `forward`), on the current weights, so the trainer can report the task loss and the regulariser apart
      const adapter = tuner.trainableAdapterName;
      if (adapter === null) return 0;
      const r = tf.tidy(() =>
        tf.mul(orthRegularizer(tuner.model.namedParameters(), adapter), cfg.orthRegWeight),
      );
      const v = await readScalar(r);
      r.dispose();
      return v;
    },
    async afterOptimizerStep(step, grads) {
      const r = await tuner.updateAndAllocateAsync(step, grads);
      const ranks = r.ranks
        ? Object.fromEntries(Object.entries(r.ranks).map(([k, v]) => [moduleOfParam(k), v]))
        : initRanks();
      return { budget: r.budget, ranks, newPattern: r.masked && r.phase !== 'final' };
    },
    stateTensors() {
      const out = new Map<string, Tensor>();
      for (const [kind, m] of Object.entries(maps())) for (const [n, t] of m) out.set(`${kind}/${n}`, t);
      return out;
    },
    stateJson() {
      return { rankPattern: cfg.rankPattern ?? null, calls: alloc.calls };
    },
    loadState(tensors, json) {
      const j = json as { rankPattern: AdaLoraConfig['rankPattern']; calls: number } | undefined;
      if (!j)
        throw new ConfigError(
          'AdaLoRA resume',
          'the checkpoint has no allocator state',
          undefined,
          'resume from a checkpoint written by an AdaLoRA run',
        );
      alloc.allocator.resetIpt();
      const m = maps();
      for (const [key, t] of tensors) {
        const slash = key.indexOf('/');
        const target = m[key.slice(0, slash) as keyof typeof m];
        if (!target) throw new ConfigError('AdaLoRA resume', 'unknown allocator state tensor', key);
        target.set(key.slice(slash + 1), tf.clone(t));
      }
      cfg.rankPattern = j.rankPattern;
      alloc.calls = j.calls;
    },
  };
}
