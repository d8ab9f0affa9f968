/**
 * `PeftConfig`: the fields every tuner config shares (PEFT config.py `PeftConfig`), and the field schema
 * that maps camelCase fields in memory to PEFT's snake_case keys on disk (only adapter-file code
 * converts; docs/design.md "Config field table").
 *
 * A config is declared once, as a table of typed fields ({@link F}); the options type
 * ({@link OptionsOf}), the instance fields ({@link ValuesOf}, merged into the class by an interface of
 * the same name), the on-disk schema (`static fields`, from {@link fieldSpecs}) and the
 * unsupported-field check ({@link rejectUnsupported}) all come from that table.
 *
 * EXTENSION POINT — a tuner config is a subclass that
 *  1. writes its field table: `const MY_FIELDS = { rank: F.int(4), … }` (the JSON key is the camelCase
 *     name in snake_case unless `{ snake }` says otherwise),
 *  2. sets `static override readonly fields = [...Parent.fields, ...fieldSpecs(MY_FIELDS)]` (order does
 *     not matter on disk: keys are sorted when written) and merges the values into the class with
 *     `interface MyConfig extends ValuesOf<typeof MY_FIELDS> {}`,
 *  3. overrides `postInit()` calling `super.postInit()` first, then its own checks (PEFT's
 *     `__post_init__` chain: AdaLoRA runs LoRA's checks, then sets `peftType = 'ADALORA'`, …).
 *
 * @example
 * const MY_FIELDS = { rank: F.int(4) };
 * export type MyConfigOptions = PeftConfigOptions & OptionsOf<typeof MY_FIELDS>;
 * export interface MyConfig extends ValuesOf<typeof MY_FIELDS> {}
 * export class MyConfig extends PeftConfig {
 *   static override readonly fields = [...PeftConfig.fields, ...fieldSpecs(MY_FIELDS)];
 * }
 */
import { ConfigError, NotSupportedError } from '../../errors.js';
import { setWarningHandler } from './warnings.js';
import { PyFloat, applyFloats, pyJsonDumps, pyJsonParse, splitFloats, type PyJson } from './py_json.js';

/** How a field is written to `adapter_config.json`. */
export type FieldKind =
  | 'int' // Python int: written as an integer (a non-integer value is written as a float)
  | 'float' // Python float: always float repr (`0.0`, `1e-05`)
  | 'number' // int or float: integer values as ints (e.g. `lora_alpha`, typed int in PEFT)
  | 'bool'
  | 'str'
  | 'strset' // Python set or list of str: written as a sorted list (set order is arbitrary in Python)
  | 'json'; // any JSON value kept as read (nested dicts, lists, null)

export interface FieldSpec {
  /** Property name in memory (camelCase). */
  camel: string;
  /** Key in `adapter_config.json` (PEFT's snake_case). */
  snake: string;
  kind: FieldKind;
  /** Default value (cloned per instance when it is an object). */
  default: unknown;
  /** Written to disk? (`runtime_config` is not: PEFT config.py `to_dict`.) */
  saved?: boolean;
  /** A PEFT field this library does not implement: a truthy value is rejected, never ignored. */
  unsupported?: boolean;
}

/** Options of a field beyond its kind and default. */
export interface FieldOptions {
  /** Key on disk when it is not the camelCase name in snake_case (AdaLoRA's `deltaT`). */
  snake?: string;
  /** False for in-memory-only fields (`runtime_config`, lowrank-only switches). */
  saved?: boolean;
  /** PEFT has it, lowrank does not implement it: a truthy value throws `NotSupportedError`. */
  unsupported?: boolean;
}

/** One typed field of a config table: `T` is its type in memory. */
export interface FieldDef<T> extends FieldOptions {
  kind: FieldKind;
  default: T;
  /** Type carrier only (never set). */
  readonly type?: T;
}

const def =
  (kind: FieldKind) =>
  <T>(dflt: T, opts: FieldOptions = {}): FieldDef<T> => ({ kind, default: dflt, ...opts });

/**
 * Field builders by on-disk kind; the type parameter is the field's type in memory.
 * @example const FIELDS = { r: F.int(8), targetModules: F.strset<string[] | string | null>(null) };
 */
export const F = {
  int: def('int') as <T = number>(dflt: T, opts?: FieldOptions) => FieldDef<T>,
  float: def('float') as <T = number>(dflt: T, opts?: FieldOptions) => FieldDef<T>,
  number: def('number') as <T = number>(dflt: T, opts?: FieldOptions) => FieldDef<T>,
  bool: def('bool') as <T = boolean>(dflt: T, opts?: FieldOptions) => FieldDef<T>,
  str: def('str') as <T = string>(dflt: T, opts?: FieldOptions) => FieldDef<T>,
  strset: def('strset'),
  json: def('json'),
};

/** A config's field table: camelCase name → typed field. */
export type FieldTable = { readonly [camel: string]: FieldDef<unknown> };
/** The instance fields a table declares (merge into the class with an interface). */
export type ValuesOf<T extends FieldTable> = {
  -readonly [K in keyof T]: T[K] extends FieldDef<infer V> ? V : never;
};
/** The constructor options a table accepts: every field optional. */
export type OptionsOf<T extends FieldTable> = { [K in keyof T]?: ValuesOf<T>[K] };

/** `loraAlpha` → `lora_alpha` (PEFT's key names are the snake_case of ours). */
function snakeCase(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * The on-disk schema of a field table, in table order.
 * @example fieldSpecs({ loraAlpha: F.number(8) }); // [{ camel: 'loraAlpha', snake: 'lora_alpha', kind: 'number', default: 8, saved: true }]
 */
export function fieldSpecs(table: FieldTable): FieldSpec[] {
  return Object.entries(table).map(([camel, d]) => ({
    camel,
    snake: d.snake ?? snakeCase(camel),
    kind: d.kind,
    default: d.default,
    saved: d.saved ?? true,
    ...(d.unsupported ? { unsupported: true } : {}),
  }));
}

/**
 * Throws `NotSupportedError` for the first `unsupported` field holding a truthy value (PEFT features
 * lowrank does not implement are an error, never a silent no-op).
 * @example rejectUnsupported(config, 'LoraConfig'); // throws if e.g. layerReplication is set
 */
export function rejectUnsupported(config: PeftConfig, where: string): void {
  for (const f of config.fieldSpecs) {
    if (f.unsupported && isTruthy((config as unknown as Record<string, unknown>)[f.camel])) {
      throw new NotSupportedError(
        `${where}.${f.camel}`,
        `PEFT's ${f.snake}`,
        `remove ${f.camel} (or set it to null)`,
      );
    }
  }
}

/** Python truthiness of a config value (empty list/dict, 0, '' and null are false). */
export function isTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** PEFT's `TaskType` values (config.py); `null` means none. */
export const TASK_TYPES = [
  'SEQ_CLS',
  'SEQ_2_SEQ_LM',
  'CAUSAL_LM',
  'TOKEN_CLS',
  'QUESTION_ANS',
  'FEATURE_EXTRACTION',
] as const;
export type PeftTaskType = (typeof TASK_TYPES)[number];

/** The fields every tuner config shares (PEFT `PeftConfig`). */
const PEFT_FIELDS = {
  peftType: F.str<string>(null as unknown as string),
  taskType: F.str<PeftTaskType | null>(null),
  inferenceMode: F.bool(false),
  baseModelNameOrPath: F.str<string | null>(null),
  revision: F.str<string | null>(null),
  autoMapping: F.json<Record<string, unknown> | null>(null),
  peftVersion: F.str<string | null>(null),
};

/** Options every config accepts (`peftType` is set by the config class). */
export type PeftConfigOptions = Omit<OptionsOf<typeof PEFT_FIELDS>, 'peftType'>;

function cloneDefault(v: unknown): unknown {
  return v !== null && typeof v === 'object' ? structuredClone(v) : v;
}

/** Instance fields of every config, from {@link PEFT_FIELDS}. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface PeftConfig extends ValuesOf<typeof PEFT_FIELDS> {}

/** Base of every tuner config (PEFT `PeftConfig`). */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export abstract class PeftConfig {
  static readonly fields: readonly FieldSpec[] = fieldSpecs(PEFT_FIELDS);
  /**
   * snake_case dotted paths (`lora_alpha`, `alpha_pattern.v_proj`) whose integer-valued numbers are
   * written as Python floats (`32.0`). Filled when a config is read from disk so a file round-trips
   * byte for byte; add paths to write floats where a Python user would have typed them.
   */
  readonly pyFloatPaths = new Set<string>();

  constructor(options: object = {}) {
    const ctor = new.target as unknown as { fields: readonly FieldSpec[]; name: string };
    const known = new Set(ctor.fields.map((f) => f.camel));
    for (const key of Object.keys(options)) {
      if (!known.has(key)) {
        throw new ConfigError(
          `${ctor.name}.${key}`,
          'is not a field of this config',
          key,
          `use one of: ${[...known].sort().join(', ')}`,
        );
      }
    }
    for (const f of ctor.fields) {
      const given = (options as Record<string, unknown>)[f.camel];
      (this as Record<string, unknown>)[f.camel] = given === undefined ? cloneDefault(f.default) : given;
    }
    this.postInit();
  }

  /** Validation and normalisation, in PEFT's `__post_init__` order. Subclasses call `super.postInit()` first. */
  protected postInit(): void {
    if (this.taskType !== null && !(TASK_TYPES as readonly string[]).includes(this.taskType)) {
      throw new ConfigError(
        'PeftConfig.taskType',
        `must be one of ${TASK_TYPES.join(', ')} or null`,
        this.taskType,
        'pick the task the model head solves, e.g. "CAUSAL_LM" or "SEQ_CLS"',
      );
    }
  }

  /** The schema of this config's class. */
  get fieldSpecs(): readonly FieldSpec[] {
    return (this.constructor as unknown as { fields: readonly FieldSpec[] }).fields;
  }

  /**
   * The snake_case dict PEFT's `asdict(config)` gives, with int/float typing for the JSON writer.
   * @example pyJsonDumps(new LoraConfig({ r: 4 }).toDict())
   */
  toDict(): { [key: string]: PyJson } {
    const out: { [key: string]: PyJson } = {};
    for (const f of this.fieldSpecs) {
      if (f.saved === false) continue;
      out[f.snake] = toPy(f, (this as Record<string, unknown>)[f.camel]);
    }
    return applyFloats(out, this.pyFloatPaths) as { [key: string]: PyJson };
  }

  /** `adapter_config.json` text exactly as Python's `json.dumps(indent=2, sort_keys=True)` writes it. */
  toJsonString(): string {
    return pyJsonDumps(this.toDict());
  }

  /** A deep copy (same class) with some fields replaced; runs validation again (silently). */
  clone(overrides: Record<string, unknown> = {}): this {
    const opts: Record<string, unknown> = {};
    for (const f of this.fieldSpecs) opts[f.camel] = cloneDefault((this as Record<string, unknown>)[f.camel]);
    const Ctor = this.constructor as new (o: object) => this;
    // Validation runs again, but its warnings were given when this config was made: do not repeat them.
    const restore = setWarningHandler(() => undefined);
    let copy: this;
    try {
      copy = new Ctor({ ...opts, ...overrides });
    } finally {
      restore();
    }
    this.pyFloatPaths.forEach((p) => copy.pyFloatPaths.add(p));
    return copy;
  }
}

function toPy(f: FieldSpec, v: unknown): PyJson {
  if (v === null || v === undefined) return null;
  switch (f.kind) {
    case 'float':
      return typeof v === 'number' ? new PyFloat(v) : (v as PyJson);
    case 'strset':
      return Array.isArray(v) ? [...(v as string[])].sort() : (v as PyJson);
    default:
      return structuredClone(v) as PyJson;
  }
}

/**
 * camelCase options from a snake_case dict read from disk. Unknown keys are returned separately
 * (PEFT warns and drops them, config.py `from_peft_type`); missing keys take the defaults.
 *
 * @example const { options, unknown } = optionsFromDict(LoraConfig.fields, json);
 */
export function optionsFromDict(
  fields: readonly FieldSpec[],
  dict: Record<string, unknown>,
): { options: Record<string, unknown>; unknown: string[] } {
  const bySnake = new Map(fields.map((f) => [f.snake, f]));
  const options: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(dict)) {
    const f = bySnake.get(k);
    if (!f) unknown.push(k);
    else options[f.camel] = v;
  }
  return { options, unknown };
}

/** Result of reading a config file: the config plus the keys the reader did not know. */
export interface ParsedConfig<C extends PeftConfig> {
  config: C;
  unknownKeys: string[];
}

/**
 * Builds a config of class `Ctor` from `adapter_config.json` text: snake_case → camelCase, float-ness
 * kept in `pyFloatPaths`, unknown keys returned (the caller warns), missing keys defaulted.
 *
 * @example const { config } = configFromJson(LoraConfig, fs.readFileSync('adapter_config.json', 'utf8'));
 */
export function configFromJson<C extends PeftConfig>(
  Ctor: (new (o: object) => C) & { fields: readonly FieldSpec[] },
  text: string,
): ParsedConfig<C> {
  const { plain, floatPaths } = splitFloats(pyJsonParse(text));
  if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) {
    throw new ConfigError('adapter_config.json', 'must hold a JSON object', typeof plain, 'check the file');
  }
  const { options, unknown } = optionsFromDict(Ctor.fields, plain as Record<string, unknown>);
  const config = new Ctor(options);
  const known = new Set(Ctor.fields.map((f) => f.snake));
  floatPaths.forEach((p) => {
    if (known.has(p.split('.')[0]!)) config.pyFloatPaths.add(p);
  });
  return { config, unknownKeys: unknown };
}
