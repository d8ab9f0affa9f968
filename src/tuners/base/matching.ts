/**
 * Which modules a tuner adapts: PEFT's `check_target_module_exists` (tuners_utils.py
 * 2293), `all-linear` expansion, per-architecture defaults, and the `modules_to_save` rule.
 * Keys are `namedModules()` paths of the wrapped model (no `base_model.model.` prefix).
 *
 * Python regexes run as JavaScript regexes: `re.fullmatch(p, key)` is `^(?:p)$`; `(?P<name>` is
 * rewritten to `(?<name>`. Other Python-only syntax (e.g. `(?i)` inline flags) is rejected clearly.
 *
 * @example
 * matchTarget({ targetModules: ['q_proj'], ... }, 'model.layers.0.self_attn.q_proj'); // 'target'
 */
import { ConfigError } from '../../errors.js';

/** The config fields target matching reads (LoraConfig and its subclasses have them all). */
export interface TargetSpec {
  targetModules: string[] | string | null;
  excludeModules: string[] | string | null;
  layersToTransform: number | number[] | null;
  layersPattern: string | string[] | null;
  modulesToSave: string[] | null;
}

/**
 * PEFT's default targets when `targetModules` is omitted (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING;
 * the AdaLoRA mapping has the same entries for these architectures).
 */
export const DEFAULT_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  bert: ['query', 'value'],
  roberta: ['query', 'value'],
  gpt2: ['c_attn'],
  llama: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  gemma: ['q_proj', 'v_proj'],
  gemma2: ['q_proj', 'v_proj'],
  phi3: ['qkv_proj'],
  'deberta-v2': ['query_proj', 'value_proj'],
};

const regexCache = new Map<string, RegExp>();

/** Python `re.compile(p)` for `fullmatch`/`match`, as a JS RegExp anchored as asked. */
export function pyRegex(pattern: string, anchor: 'full' | 'start', where = 'targetModules'): RegExp {
  const key = `${anchor}:${pattern}`;
  let re = regexCache.get(key);
  if (!re) {
    if (/\(\?[aiLmsux]+\)/.test(pattern)) {
      throw new ConfigError(
        where,
        'uses a Python inline flag such as (?i), which JavaScript regexes lack',
        pattern,
        'spell the alternatives out, e.g. [Qq]_proj',
      );
    }
    const js = pattern.replace(/\(\?P</g, '(?<').replace(/\(\?P=(\w+)\)/g, '\\k<$1>');
    try {
      re = new RegExp(anchor === 'full' ? `^(?:${js})$` : `^(?:${js})`, 'u');
    } catch (e) {
      throw new ConfigError(
        where,
        'is not a valid regular expression',
        pattern,
        `fix the pattern (${(e as Error).message})`,
      );
    }
    regexCache.set(key, re);
  }
  return re;
}

/** PEFT's `modules_to_save` exclusion: `re.match(rf"(^|.*\.){m}($|\..*)", key)` for any m. */
export function isInModulesToSave(key: string, modulesToSave: readonly string[] | null): boolean {
  if (!modulesToSave) return false;
  return modulesToSave.some((m) => pyRegex(`(^|.*\\.)${m}($|\\..*)`, 'start', 'modulesToSave').test(key));
}

/** The layer index in a key (`model.layers.3.mlp` → 3), PEFT's `layers_to_transform` lookup. */
export function layerIndexOf(key: string, layersPattern: string | string[] | null): number | null {
  const patterns =
    layersPattern === null || layersPattern.length === 0
      ? null
      : typeof layersPattern === 'string'
        ? [layersPattern]
        : layersPattern;
  if (!patterns) {
    const m = /^.*?\.[^.]*\.(\d+)\./.exec(key);
    return m ? Number(m[1]) : null;
  }
  for (const p of patterns) {
    const m = pyRegex(`.*?\\.${p}\\.(\\d+)\\.`, 'start', 'layersPattern').exec(key);
    if (m) return Number(m[1]);
  }
  return null;
}

/** Outcome for one key: adapted, excluded by a rule, or simply not a target. */
export type MatchResult = 'target' | 'excluded' | 'no';

/**
 * PEFT `check_target_module_exists` for one module key; `targetModules` must already be expanded
 * (`all-linear`, defaults) by {@link resolveTargetModules}.
 */
export function matchTarget(spec: TargetSpec, key: string): MatchResult {
  const ex = spec.excludeModules;
  if (typeof ex === 'string') {
    if (pyRegex(ex, 'full', 'excludeModules').test(key)) return 'excluded';
  } else if (ex && ex.some((e) => key === e || key.endsWith('.' + e))) {
    return 'excluded';
  }
  if (isInModulesToSave(key, spec.modulesToSave)) return 'excluded';
  const t = spec.targetModules;
  if (t === null) return 'no';
  if (typeof t === 'string') return pyRegex(t, 'full').test(key) ? 'target' : 'no';
  if (t.includes(key)) return 'target'; // exact match: no layer filter (PEFT returns right away)
  if (!t.some((name) => key.endsWith('.' + name))) return 'no';
  const ltt = spec.layersToTransform;
  const filtered = typeof ltt === 'number' || (Array.isArray(ltt) && ltt.length > 0);
  if (!filtered) return 'target';
  const idx = layerIndexOf(key, spec.layersPattern);
  if (idx === null) return 'no';
  return (typeof ltt === 'number' ? idx === ltt : (ltt as number[]).includes(idx)) ? 'target' : 'no';
}

/**
 * The concrete `targetModules`: `all-linear` expanded to the leaf names of every linear layer minus
 * the output layer's (PEFT `_maybe_include_all_linear_layers`), `null` replaced by the architecture
 * default. PEFT writes the expanded value into the saved config; so do we.
 *
 * @example
 * resolveTargetModules(null, 'llama', [], []); // ['q_proj', 'v_proj']
 */
export function resolveTargetModules(
  target: string[] | string | null,
  modelType: string | undefined,
  linearModuleNames: readonly string[],
  outputModuleNames: readonly string[] | null,
): string[] | string {
  if (target === null) {
    const d = modelType ? DEFAULT_TARGET_MODULES[modelType] : undefined;
    if (!d) {
      throw new ConfigError(
        'targetModules',
        `is required: there is no default for model type "${modelType ?? 'unknown'}"`,
        null,
        `name the modules to adapt, e.g. targetModules: ['q_proj', 'v_proj'] (defaults exist for ${Object.keys(DEFAULT_TARGET_MODULES).join(', ')})`,
      );
    }
    return [...d];
  }
  if (typeof target === 'string' && target.toLowerCase() === 'all-linear') {
    if (outputModuleNames === null) {
      throw new ConfigError(
        'targetModules',
        '"all-linear" needs a PreTrainedModel (to know its output layer)',
        target,
        'list the target modules explicitly',
      );
    }
    const leaf = (n: string) => n.slice(n.lastIndexOf('.') + 1);
    const out = new Set(outputModuleNames.map(leaf));
    return [...new Set(linearModuleNames.map(leaf))].filter((n) => !out.has(n)).sort();
  }
  return target;
}
