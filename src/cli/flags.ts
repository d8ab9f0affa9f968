/**
 * The CLI's side of option checking: range rules per flag (checked before anything is read or
 * written, exit 2), and the translation of library errors (which name API fields such as
 * `AdaLoraConfig.targetR` or `AdamW.lr`) into the flag the user typed. The library keeps its own
 * typed errors; only this layer knows about flags.
 */
import { ConfigError, DataError, LowrankError } from '../errors.js';
import { UsageError, type ParsedValue } from './args.js';

type Rule = [test: (x: number) => boolean, rule: string];
const atLeast = (n: number): Rule => [(x) => x >= n, `must be >= ${n}`];
const FRACTION_OPEN: Rule = [(x) => x > 0 && x < 1, 'must be between 0 and 1 (exclusive)'];
const DROPOUT: Rule = [(x) => x >= 0 && x < 1, 'must be in [0, 1)'];
const POSITIVE: Rule = [(x) => x > 0, 'must be > 0'];

/**
 * Range rules of numeric flags (those of every command; a flag a command lacks is skipped). `lowrank`
 * checks them after parsing, before a command runs.
 */
export const RANGE_RULES: Record<string, Rule> = {
  'max-steps': atLeast(1),
  'batch-size': atLeast(1),
  'eval-batch-size': atLeast(1),
  'grad-accum': atLeast(1),
  'max-length': atLeast(2),
  r: atLeast(1),
  'init-r': atLeast(1),
  'target-r': atLeast(0),
  tinit: atLeast(0),
  tfinal: atLeast(0),
  'delta-t': atLeast(1),
  'hyper-hidden': atLeast(1),
  'hyper-embedding': atLeast(1),
  'lora-alpha': POSITIVE,
  'lora-dropout': DROPOUT,
  'orth-reg-weight': atLeast(0),
  lr: POSITIVE,
  'weight-decay': atLeast(0),
  'warmup-steps': atLeast(0),
  'max-grad-norm': atLeast(0),
  'eval-every': atLeast(0),
  'save-every': atLeast(0),
  'keep-checkpoints': atLeast(1),
  'max-non-finite': atLeast(1),
  'eval-fraction': FRACTION_OPEN,
  'eval-limit': atLeast(0),
  'max-new-tokens': atLeast(1),
  steps: atLeast(1),
  temperature: atLeast(0),
  'top-k': atLeast(0),
  'top-p': [(x) => x > 0 && x <= 1, 'must be in (0, 1]'],
  'num-labels': atLeast(1),
  // demo
  'pretrain-steps': atLeast(1),
  'finetune-steps': atLeast(1),
  'planted-rank': atLeast(1),
  strength: POSITIVE,
  samples: atLeast(1),
  // serve
  port: [(x) => x >= 0 && x <= 65535, 'must be 0–65535'],
  'max-active': atLeast(1),
  'max-queue': atLeast(0),
  'max-tokens': atLeast(1),
  'max-n': atLeast(1),
  'body-limit-kb': atLeast(1),
  timeout: atLeast(0.001),
  'adapter-cache-mb': atLeast(0.001),
};

/**
 * Throws a usage error (exit 2) for the first numeric flag outside its range.
 * @example checkRanges({ lr: -1 }); // UsageError: --lr: must be > 0 (got -1)
 */
export function checkRanges(v: Record<string, ParsedValue | undefined>): void {
  for (const [name, [ok, rule]] of Object.entries(RANGE_RULES)) {
    const x = v[name];
    if (typeof x === 'number' && !ok(x)) throw new UsageError(`--${name}: ${rule} (got ${x})`);
  }
}

/** Library field names → the flag that sets them (camelCase names of configs, optimizer, loader). */
const FIELD_FLAGS: Record<string, string> = {
  targetR: '--target-r',
  initR: '--init-r',
  tinit: '--tinit',
  tfinal: '--tfinal',
  deltaT: '--delta-t',
  totalStep: '--max-steps',
  orthRegWeight: '--orth-reg-weight',
  loraAlpha: '--lora-alpha',
  loraDropout: '--lora-dropout',
  targetModules: '--target-modules',
  r: '--r',
  lr: '--lr',
  weightDecay: '--weight-decay',
  evalFraction: '--eval-fraction',
  batchSize: '--batch-size',
  gradientAccumulationSteps: '--grad-accum',
  warmupSteps: '--warmup-steps',
  maxSteps: '--max-steps',
  maxLength: '--max-length',
  blockSize: '--max-length',
  maxGradNorm: '--max-grad-norm',
  maxNewTokens: '--max-new-tokens',
  topK: '--top-k',
  topP: '--top-p',
  temperature: '--temperature',
  name: '--schedule',
  tokenizerPath: '--tokenizer',
  embeddingDtype: '--embedding-dtype',
};

/**
 * The flag behind a library error's `where` (`AdaLoraConfig.targetR` → `--target-r`,
 * `AdamW.lr` → `--lr`, `schedule.name` → `--schedule`), or undefined.
 * @example flagOf('AdaLoraConfig.targetR'); // '--target-r'
 */
export function flagOf(where: string): string | undefined {
  const field = where.split('.').pop()!;
  if (field === 'name' && !where.startsWith('schedule')) return undefined;
  return FIELD_FLAGS[field];
}

/** Replaces API field names in a sentence by their flags (`lower targetR` → `lower --target-r`). */
function speakFlags(text: string): string {
  return text.replace(/(?<![-\w])[A-Za-z]+\b/g, (w) =>
    FIELD_FLAGS[w] && w !== 'name' ? FIELD_FLAGS[w]! : w,
  );
}

/**
 * A library ConfigError about a field a flag sets becomes a usage error naming the flag (exit 2);
 * anything else is returned as it is.
 * @example throw toCliError(e);
 */
export function toCliError(e: unknown): unknown {
  if (e instanceof DataError && e.fix && /\bmaxLength\b/.test(e.fix))
    return new DataError(e.where, e.rule, e.got, speakFlags(e.fix));
  // HyperLoRA's condition sets are named as the user gave them (`conditions y=b.tsv`)
  if (e instanceof DataError && e.where.startsWith('conditions ')) return new UsageError(`--${e.message}`);
  // HyperLoRA's `conditions` (the sets) and `condition` (the one to use) are flags of the same name
  if (e instanceof ConfigError && (e.where === 'conditions' || e.where === 'condition'))
    return new UsageError(`--${e.message}`);
  if (!(e instanceof ConfigError)) return e;
  // `AdaLoraConfig.targetR` names its field; a rule across fields (`AdaLoraConfig`: "tinit must be
  // smaller than totalStep − tfinal") is reported under the first field its sentence names
  const flag =
    flagOf(e.where) ??
    (/^[A-Z]\w*Config$/.test(e.where)
      ? e.rule
          .split(/[^A-Za-z]+/)
          .map((w) => (w !== 'name' ? FIELD_FLAGS[w] : undefined))
          .find((f) => f !== undefined)
      : undefined);
  if (!flag) return e;
  const g = e.got;
  const got =
    g === undefined
      ? ''
      : g !== null && typeof g === 'object' && !Array.isArray(g)
        ? ` (got ${Object.entries(g)
            .map(([k, x]) => `${FIELD_FLAGS[k] ?? k} ${JSON.stringify(x)}`)
            .join(', ')})`
        : ` (got ${JSON.stringify(g)})`;
  const fix = e.fix ? ` ${speakFlags(e.fix)}` : '';
  const rule = speakFlags(e.rule).replace(new RegExp(`^${flag} `), '');
  return new UsageError(`${flag}: ${rule}${got}.${fix}`);
}

/** True for errors the CLI reports without a stack (typed library errors and usage errors). */
export function isReported(e: unknown): boolean {
  return e instanceof LowrankError || e instanceof UsageError;
}
