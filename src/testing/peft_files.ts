/**
 * Comparing an adapter_config.json lowrank wrote with one PEFT (or a PEFT-layout fixture) wrote: lowrank
 * writes the keys PEFT 0.10 knows plus only the newer keys that hold non-default values
 * (tuners/base/peft_keys.ts), so the files are not byte-equal; they must mean the same config.
 */
import assert from 'node:assert/strict';
import type { FieldSpec } from '../tuners/base/config.js';
import { OLDEST_PEFT, PEFT_KEYS } from '../tuners/base/peft_keys.js';

/**
 * Every key lowrank wrote has PEFT's value; every key it left out is one PEFT 0.10 lacks and holds the
 * default in PEFT's file (or is `peft_version`, the writer's version); no key is written that 0.10 lacks
 * unless its value is not the default.
 *
 * @example assertSamePeftConfig(oursText, peftText, LoraConfig.fields);
 */
export function assertSamePeftConfig(ours: string, theirs: string, fields: readonly FieldSpec[]): void {
  const a = JSON.parse(ours) as Record<string, unknown>;
  const b = JSON.parse(theirs) as Record<string, unknown>;
  const table = PEFT_KEYS[String(b.peft_type)]!;
  const defaults = new Map(fields.map((f) => [f.snake, f.default]));
  for (const [k, v] of Object.entries(a)) {
    if (k === 'peft_version') continue;
    assert.deepEqual(v, b[k] ?? defaults.get(k) ?? null, `${k}: lowrank wrote ${JSON.stringify(v)}`);
  }
  for (const [k, v] of Object.entries(b)) {
    if (k in a || k === 'peft_version') continue;
    assert.notEqual(table[k], OLDEST_PEFT, `${k} is known to PEFT ${OLDEST_PEFT} but was left out`);
    assert.deepEqual(v ?? null, defaults.get(k) ?? null, `${k} left out although not at its default`);
  }
}
