/**
 * From the page's method form to a PEFT config, and from an AdaLoRA model to the heatmap's
 * layer × module rank table.
 */
import { modulePathOfPatternKey, type AdaLoraConfig } from '../../src/tuners/adalora/index.js';
import type { PeftConfig, PeftModel } from '../../src/tuners/index.js';
import { methodConfig } from '../../src/run/methods.js';
import type { RankSnapshot, TrainSpec } from '../protocol.js';

/**
 * The PEFT config for a training run, from the library's one method builder (`src/run/methods.ts`).
 * Empty `targetModules` means the model's default targets (PEFT's per-architecture table). QLoRA is
 * LoRA over the 4-bit base (the caller quantises the base).
 *
 * @example
 * buildAdapter(spec, 'CAUSAL_LM'); // AdaLoraConfig { initR: 8, targetR: 4, totalStep: 40, ... }
 */
export function buildAdapter(spec: TrainSpec, taskType: 'CAUSAL_LM' | 'SEQ_CLS'): PeftConfig {
  const m = spec.method;
  return methodConfig({
    method: m.method,
    taskType,
    r: m.r,
    loraAlpha: m.alpha,
    loraDropout: m.dropout,
    ...(m.targetModules.length > 0 ? { targetModules: m.targetModules } : {}),
    totalStep: spec.steps,
    ...(m.method === 'adalora'
      ? {
          initR: m.initR,
          schedule: { tinit: m.tinit, tfinal: m.tfinal, deltaT: m.deltaT },
          beta1: m.beta1,
          beta2: m.beta2,
          orthRegWeight: m.orthRegWeight,
        }
      : {}),
  });
}

/** `model.layers.3.self_attn.q_proj` → [3, 'q_proj']; null for modules outside numbered layers. */
function layerAndModule(path: string): [number, string] | null {
  const m = /(?:^|\.)(?:layers|layer|h)\.(\d+)\.(?:.*\.)?([^.]+)$/.exec(path);
  return m ? [Number(m[1]), m[2]!] : null;
}

/**
 * The current AdaLoRA ranks of adapter `name` as a layer × module table: the allocator's rank
 * pattern once it has masked, else every adapted matrix at its initial rank. `budget` is the
 * allocator's scheduled total rank at that step.
 */
export function rankSnapshotOf(
  peft: PeftModel,
  name: string,
  step: number,
  initR: number,
  budget: number,
): RankSnapshot {
  const config = peft.peftConfig.get(name) as AdaLoraConfig | undefined;
  const pattern = config?.pattern ?? null;
  const ranks = new Map<string, number>();
  if (pattern) {
    for (const [key, mask] of Object.entries(pattern))
      ranks.set(modulePathOfPatternKey(key, name), mask.filter(Boolean).length);
  } else {
    for (const [path, layer] of peft.base_model.tunerLayers()) {
      if (layer.adapterNames().includes(name)) ranks.set(path, initR);
    }
  }
  const layers = new Set<number>();
  const modules: string[] = [];
  const cells = new Map<string, number>();
  for (const [path, r] of ranks) {
    const lm = layerAndModule(path);
    if (!lm) continue;
    layers.add(lm[0]);
    if (!modules.includes(lm[1])) modules.push(lm[1]);
    cells.set(`${lm[0]}:${lm[1]}`, r);
  }
  const layerList = [...layers].sort((a, b) => a - b);
  const table = layerList.map((l) => modules.map((mod) => cells.get(`${l}:${mod}`) ?? 0));
  return {
    step,
    layers: layerList,
    modules,
    ranks: table,
    budget,
    initR,
  };
}
