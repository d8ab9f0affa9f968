/**
 * HyperLoRA in the CLI: `--conditions name=path,…` of `lowrank train --method hyperlora` (the training
 * glue lives in `src/run/hyperlora.ts`), and `--condition` of eval / generate / merge / materialize,
 * which pins a saved hypernetwork to one condition as a plain LoRA.
 */
import type { ConditionSet } from '../run/hyperlora.js';
import { UsageError } from './args.js';

import type { Module } from '../nn/module.js';
import type { PeftModel } from '../tuners/peft_model.js';

/**
 * Parses `--conditions name=path,name=path`.
 * @example parseConditions(['a=x.txt', 'b=y.txt']); // [{ name: 'a', path: 'x.txt' }, …]
 */
export function parseConditions(list: string[] | undefined): ConditionSet[] {
  if (!list || list.length === 0)
    throw new UsageError(
      '--conditions: --method hyperlora needs at least two training sets as name=path,name=path (it replaces --data)',
    );
  const sets = list.map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1)
      throw new UsageError(`--conditions: each entry must be name=path (got ${JSON.stringify(item)})`);
    return { name: item.slice(0, eq).trim(), path: item.slice(eq + 1).trim() };
  });
  const names = sets.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new UsageError(`--conditions: condition name "${dup}" appears twice`);
  if (sets.length < 2)
    throw new UsageError(
      `--conditions: one condition is plain LoRA; give two or more name=path sets (got ${sets.length}), or use --method lora`,
    );
  return sets;
}

/** Whether `dir` holds a saved hypernetwork (rather than a PEFT adapter). */
export async function isHyperLoraFolder(dir: string): Promise<boolean> {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { HYPER_CONFIG_NAME } = await import('../tuners/hyperlora/model.js');
  return fs.existsSync(path.join(dir, HYPER_CONFIG_NAME));
}

/** Loads the hypernetwork in `dir` onto `base` and pins it to `condition` (a name or id) as a LoRA. */
export async function loadHyperAsLora(
  base: Module,
  dir: string,
  condition: string | undefined,
): Promise<{ peft: PeftModel; condition: number; names: string[] | undefined }> {
  const { HyperLoraModel, hyperToLora } = await import('../tuners/hyperlora/index.js');
  const hyper = await HyperLoraModel.fromPretrained(base, dir);
  const names = hyper.config.conditionNames;
  if (condition === undefined || condition === '') {
    hyper.dispose();
    throw new UsageError(
      `missing --condition: ${dir} is a HyperLoRA hypernetwork; pick one of ${names ? names.join(', ') : `the ids 0…${hyper.config.numConditions - 1}`} (eval and generate take --condition; lowrank materialize exports one as a PEFT LoRA folder)`,
    );
  }
  let id: number;
  try {
    id = hyper.config.conditionId(condition);
  } catch (e) {
    hyper.dispose();
    throw new UsageError(`--condition: ${(e as Error).message}`);
  }
  return { peft: hyperToLora(hyper, id), condition: id, names };
}
