/**
 * Flag parsing for the `lowrank` commands: a declarative option list per command, config files
 * (JSON or YAML) whose keys are the same options, flags winning over the file, and usage errors that
 * name the bad flag or key and the nearest valid one (exit code 2).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';

/**
 * The YAML parser, loaded when a YAML config is read: importing it at start-up cost every command
 * ~7 MB of resident memory (Node's ESM loader over its CommonJS build), `require` on demand costs less.
 */
function yaml(): typeof import('yaml') {
  return createRequire(import.meta.url)('yaml') as typeof import('yaml');
}

/** A mistake in how the command was called (exit code 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionType = 'string' | 'number' | 'int' | 'boolean' | 'list';

export interface OptionSpec {
  /** kebab-case flag name without dashes (`learning-rate`); camelCase and snake_case are accepted in config files. */
  name: string;
  type: OptionType;
  description: string;
  default?: string | number | boolean | string[];
  choices?: readonly string[];
  /** One-letter alias (`-o`). */
  short?: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** Positional arguments, e.g. `<adapter>`. */
  positionals?: { name: string; description: string; required: boolean }[];
  options: OptionSpec[];
  examples: string[];
  /** Whether `--config <file>` is accepted. */
  configFile?: boolean;
}

export type ParsedValue = string | number | boolean | string[];
export interface Parsed {
  values: Record<string, ParsedValue | undefined>;
  positionals: string[];
  help: boolean;
  /** Options given on the command line or in --config (the rest of `values` are defaults). */
  given?: Set<string>;
}

/**
 * Names users bring from other tools (Hugging Face `TrainingArguments`, PEFT, llama.cpp) → this
 * CLI's option; suggested when the option exists in the command.
 */
export const SYNONYMS: Record<string, string> = {
  'learning-rate': 'lr',
  epochs: 'max-steps',
  'num-epochs': 'max-steps',
  'num-train-epochs': 'max-steps',
  steps: 'max-steps',
  'train-steps': 'max-steps',
  'output-dir': 'output',
  out: 'output',
  outdir: 'output',
  'model-path': 'model',
  'model-name-or-path': 'model',
  'train-file': 'data',
  'train-data': 'data',
  dataset: 'data',
  'eval-file': 'eval-data',
  'validation-file': 'eval-data',
  'max-seq-length': 'max-length',
  'block-size': 'max-length',
  'seq-len': 'max-length',
  'context-length': 'max-length',
  rank: 'r',
  'lora-r': 'r',
  'lora-rank': 'r',
  alpha: 'lora-alpha',
  dropout: 'lora-dropout',
  'target-rank': 'target-r',
  'init-rank': 'init-r',
  bs: 'batch-size',
  batch: 'batch-size',
  'per-device-train-batch-size': 'batch-size',
  'gradient-accumulation-steps': 'grad-accum',
  warmup: 'warmup-steps',
  'lr-scheduler-type': 'schedule',
  'lr-scheduler': 'schedule',
  device: 'backend',
  'max-tokens': 'max-new-tokens',
  overwrite: 'force',
  'overwrite-output-dir': 'force',
};

/**
 * The option a mistyped or foreign name most likely means: a known synonym, else the nearest name
 * by edit distance when it is close (at most a third of the word, min 2), else undefined.
 * @example suggestOption('learning-rate', ['lr', 'eval-data']); // 'lr'
 */
export function suggestOption(word: string, names: string[]): string | undefined {
  const k = kebab(word);
  // synonyms known to this command count as candidates too, so a typo of one (`--lerning-rate`) works
  const known = Object.keys(SYNONYMS).filter((w) => names.includes(SYNONYMS[w]!));
  const near = nearest(k, [...names, ...known]);
  if (near === undefined) return undefined;
  if (editDistance(k, near) > Math.max(2, Math.floor(k.length / 3))) return undefined;
  return names.includes(near) ? near : SYNONYMS[near];
}

/** Levenshtein distance (for "did you mean"). */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The closest candidate to `word`.
 * @example nearest('lerning-rate', ['learning-rate', 'seed']); // 'learning-rate'
 */
export function nearest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word, c);
    if (dist < bestD) {
      bestD = dist;
      best = c;
    }
  }
  return best;
}

/** `learningRate` / `learning_rate` → `learning-rate`. */
export function kebab(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/_/g, '-')
    .toLowerCase();
}

function convert(spec: OptionSpec, raw: unknown, where: string): ParsedValue {
  const bad = (why: string): never => {
    throw new UsageError(`${where}: ${why} (got ${JSON.stringify(raw)})`);
  };
  let v: ParsedValue;
  switch (spec.type) {
    case 'boolean':
      if (typeof raw === 'boolean') v = raw;
      else if (raw === 'true' || raw === '1' || raw === 'yes') v = true;
      else if (raw === 'false' || raw === '0' || raw === 'no') v = false;
      else return bad('expects true or false');
      break;
    case 'number':
    case 'int': {
      const n =
        typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n)) return bad('expects a number');
      if (spec.type === 'int' && !Number.isInteger(n)) return bad('expects an integer');
      v = n;
      break;
    }
    case 'list':
      if (Array.isArray(raw)) v = raw.map(String);
      else if (typeof raw === 'string')
        v = raw
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0);
      else return bad('expects a comma-separated list');
      break;
    default:
      if (typeof raw !== 'string' && typeof raw !== 'number') return bad('expects a string');
      v = String(raw);
  }
  if (spec.choices && !(typeof v === 'string' && spec.choices.includes(v))) {
    const near = typeof v === 'string' ? nearest(v, [...spec.choices]) : undefined;
    throw new UsageError(
      `${where}: must be one of ${spec.choices.join(', ')} (got ${JSON.stringify(raw)})${near ? `; did you mean "${near}"?` : ''}`,
    );
  }
  return v;
}

/**
 * Reads a JSON or YAML config file into option values; unknown keys are usage errors naming the
 * nearest valid key.
 * @example loadConfigFile('train.yaml', spec.options);
 */
export function loadConfigFile(file: string, options: OptionSpec[]): Record<string, ParsedValue> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(
      `--config: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  let data: unknown;
  try {
    data = file.endsWith('.json') ? JSON.parse(text) : yaml().parse(text);
  } catch (e) {
    throw new UsageError(
      `--config ${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    throw new UsageError(`--config ${file}: must be a mapping of option names to values`);
  const byName = new Map(options.map((o) => [o.name, o]));
  const out: Record<string, ParsedValue> = {};
  for (const [key, raw] of Object.entries(data as Record<string, unknown>)) {
    const spec = byName.get(kebab(key));
    if (!spec || spec.name === 'config') {
      const near = suggestOption(
        key,
        [...byName.keys()].filter((n) => n !== 'config'),
      );
      throw new UsageError(
        `--config ${file}: unknown key "${key}"${near ? `; did you mean "${near}"?` : ''}`,
      );
    }
    out[spec.name] = convert(spec, raw, `--config ${file}: ${key}`);
  }
  return out;
}

/**
 * Parses argv for one command: `--name value`, `--name=value`, `--flag`/`--no-flag`, `-x value`.
 * Precedence: flags > config file > defaults.
 * @example parseArgs(trainSpec, ['--model', 'm', '--lr', '1e-3']);
 */
export function parseArgs(spec: CommandSpec, argv: string[]): Parsed {
  const options = spec.configFile
    ? [
        ...spec.options,
        {
          name: 'config',
          type: 'string' as const,
          description: 'JSON or YAML file with any of these options',
        },
      ]
    : spec.options;
  const byName = new Map(options.map((o) => [o.name, o]));
  const byShort = new Map(options.filter((o) => o.short).map((o) => [o.short!, o]));
  const flags: Record<string, ParsedValue> = {};
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    let opt: OptionSpec | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      opt = byName.get(name);
      if (
        !opt &&
        name.startsWith('no-') &&
        byName.get(name.slice(3))?.type === 'boolean' &&
        inline === undefined
      ) {
        flags[name.slice(3)] = false;
        continue;
      }
    } else {
      name = arg.slice(1);
      opt = byShort.get(name);
    }
    if (!opt) {
      const near = suggestOption(name, [...byName.keys()]);
      throw new UsageError(
        `unknown option ${arg} for "lowrank ${spec.name}"${near ? `; did you mean --${near}?` : ''} (see lowrank ${spec.name} --help)`,
      );
    }
    let raw: string | boolean;
    if (inline !== undefined) raw = inline;
    else if (opt.type === 'boolean')
      raw = argv[i + 1] === 'true' || argv[i + 1] === 'false' ? argv[++i]! : true;
    else {
      if (i + 1 >= argv.length) throw new UsageError(`option --${opt.name} needs a value`);
      raw = argv[++i]!;
    }
    flags[opt.name] = convert(opt, raw, `--${opt.name}`);
  }
  if (help) return { values: {}, positionals, help };
  const maxPos = spec.positionals?.length ?? 0;
  if (positionals.length > maxPos)
    throw new UsageError(
      `unexpected argument "${positionals[maxPos]}" for "lowrank ${spec.name}" (see lowrank ${spec.name} --help)`,
    );
  for (const [i, p] of (spec.positionals ?? []).entries()) {
    if (p.required && positionals[i] === undefined)
      throw new UsageError(
        `missing <${p.name}> for "lowrank ${spec.name}" (see lowrank ${spec.name} --help)`,
      );
  }
  const fromFile = typeof flags.config === 'string' ? loadConfigFile(flags.config, options) : {};
  const values: Record<string, ParsedValue | undefined> = {};
  for (const o of options) values[o.name] = flags[o.name] ?? fromFile[o.name] ?? o.default;
  const given = new Set([...Object.keys(flags), ...Object.keys(fromFile)]);
  return { values, positionals, help, given };
}

/** The `--help` text of a command. */
export function helpText(spec: CommandSpec): string {
  const pos = (spec.positionals ?? []).map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`)).join(' ');
  const lines = [`lowrank ${spec.name}${pos ? ' ' + pos : ''} [options]`, '', spec.summary, ''];
  if (spec.positionals?.length) {
    lines.push('Arguments:');
    for (const p of spec.positionals) lines.push(`  ${p.name.padEnd(24)} ${p.description}`);
    lines.push('');
  }
  lines.push('Options:');
  const opts = spec.configFile
    ? [
        ...spec.options,
        {
          name: 'config',
          type: 'string' as const,
          description: 'JSON or YAML file with any of these options (flags win)',
        },
      ]
    : spec.options;
  for (const o of opts) {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${o.name}${o.type === 'boolean' ? '' : ` <${o.type === 'list' ? 'a,b' : o.type}>`}`;
    const extra = [
      o.choices ? `one of: ${o.choices.join(', ')}` : '',
      o.default !== undefined ? `default: ${Array.isArray(o.default) ? o.default.join(',') : o.default}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    lines.push(`  ${flag.padEnd(30)} ${o.description}${extra ? ` (${extra})` : ''}`);
  }
  lines.push(`  ${'-h, --help'.padEnd(30)} show this help`, '', 'Examples:');
  for (const e of spec.examples) lines.push(`  ${e}`);
  return lines.join('\n');
}
