/**
 * Copying checkpoint tensors into a model: a key copy, plus the renames Hugging Face itself applies
 * (base-model prefix added or stripped, old `LayerNorm.gamma/beta` names) and a fixed list of
 * non-parameter buffers old checkpoints carry. No weight is transposed: GPT-2's Conv1D weights stay
 * [in, out] in `Linear` with `fanInFanOut`, so the list of transposed weights is empty.
 */
import type { Tensor } from '../tensor/tf.js';
import { CheckpointError } from '../errors.js';
import type { PreTrainedModel } from './base.js';

/**
 * Checkpoint entries that are buffers, not weights, in some HF versions: GPT-2's causal-mask
 * `attn.bias` / `attn.masked_bias`, BERT's `embeddings.position_ids`, Llama's `rotary_emb.inv_freq`.
 */
const BUFFER_KEYS: RegExp[] = [
  /(^|\.)attn\.(masked_)?bias$/,
  /(^|\.)embeddings\.position_ids$/,
  /(^|\.)rotary_emb\.inv_freq$/,
];

/** HF base-model prefixes (`base_model_prefix`) of the architectures here. */
const BASE_PREFIXES = ['bert', 'roberta', 'deberta', 'transformer', 'model'];

export interface WeightLoadReport {
  /** Model parameters the checkpoint did not have, left at their (seeded) fresh initialisation. */
  newKeys: string[];
  /** Checkpoint entries the model has no place for (e.g. a pre-training head), not loaded. */
  ignoredKeys: string[];
}

export interface LoadWeightsOptions {
  /**
   * Module paths whose parameters may be missing from the checkpoint and keep their fresh init
   * (a new classification head). Any other missing key is an error.
   */
  allowNew?: string[];
}

/** The checkpoint keys renamed to this model's paths (prefix and legacy-name fixes): own → checkpoint key. */
function renameKeys(model: PreTrainedModel, keys: string[]): Map<string, string> {
  const prefix = BASE_PREFIXES.find((p) => model.hasChild(p));
  const own = new Set(model.stateDict().keys());
  const legacy = (k: string) =>
    k.replace(/LayerNorm\.gamma$/, 'LayerNorm.weight').replace(/LayerNorm\.beta$/, 'LayerNorm.bias');
  let rename = (k: string) => legacy(k);
  if (prefix && !keys.some((k) => k.startsWith(`${prefix}.`))) {
    // a bare-model checkpoint (e.g. GPT-2's `h.0…`) loaded under a head: add the prefix to trunk keys
    rename = (k: string) => (own.has(legacy(k)) ? legacy(k) : `${prefix}.${legacy(k)}`);
  } else if (!prefix) {
    // a headed checkpoint (e.g. `bert.encoder…` + `cls.*`) loaded into the bare model: strip the prefix
    const direct = keys.some((k) => own.has(legacy(k)));
    const found = direct ? undefined : BASE_PREFIXES.find((p) => keys.some((k) => k.startsWith(`${p}.`)));
    if (found) rename = (k: string) => legacy(k.startsWith(`${found}.`) ? k.slice(found.length + 1) : k);
  }
  return new Map(keys.map((k) => [rename(k), k]));
}

/** Which checkpoint tensor goes where: see {@link planWeights}. */
export interface WeightPlan extends WeightLoadReport {
  /** Model key → checkpoint key, for every checkpoint tensor the model takes. */
  sources: Map<string, string>;
}

/**
 * Matches checkpoint keys (with their shapes) to `model`'s state dict, before any tensor is read:
 * renames, tied aliases and `allowNew` as {@link loadWeights}; a missing key or a shape mismatch throws
 * the same `CheckpointError`s.
 *
 * @example
 * const plan = planWeights(model, new Map([['model.embed_tokens.weight', [32000, 2048]], …]));
 * plan.sources.get('lm_head.weight'); // 'lm_head.weight'
 */
export function planWeights(
  model: PreTrainedModel,
  shapes: Map<string, number[]>,
  opts: LoadWeightsOptions = {},
): WeightPlan {
  const renamed = renameKeys(model, [...shapes.keys()]);
  const own = model.stateDict();
  const aliases = new Set(model.tiedParameterNames().map(([, alias]) => alias));
  const ignoredKeys: string[] = [];
  const sources = new Map<string, string>();
  for (const [k, ck] of renamed) {
    if (own.has(k)) sources.set(k, ck);
    else ignoredKeys.push(k);
  }
  const allowNew = opts.allowNew ?? [];
  const isNew = (k: string) => allowNew.some((m) => k === m || k.startsWith(`${m}.`));
  const missing = [...own.keys()].filter((k) => !sources.has(k) && !aliases.has(k));
  const unexplained = missing.filter((k) => !isNew(k));
  if (unexplained.length > 0) {
    throw new CheckpointError(
      `loadWeights(${model.architecture})`,
      `${unexplained.length} model weight(s) are missing from the checkpoint`,
      unexplained.slice(0, 10),
      'check that the checkpoint matches the architecture in config.json',
    );
  }
  const mismatched: string[] = [];
  for (const [k, ck] of sources) {
    const have = own.get(k)!.shape;
    const got = shapes.get(ck)!;
    if (have.length !== got.length || have.some((d, i) => d !== got[i])) {
      mismatched.push(`${k}: checkpoint [${got}] vs model [${have}]`);
    }
  }
  if (mismatched.length > 0) {
    throw new CheckpointError(
      'loadStateDict',
      'tensor shapes differ from the model',
      mismatched,
      'load a checkpoint made for this model configuration',
    );
  }
  return {
    sources,
    newKeys: missing,
    ignoredKeys: ignoredKeys.filter((k) => !BUFFER_KEYS.some((re) => re.test(k))),
  };
}

/**
 * Loads `weights` (HF names) into `model`. Tied aliases (`lm_head.weight`) may be absent; modules in
 * `allowNew` may be absent and keep their fresh init; any other missing key, or a shape mismatch,
 * throws a `CheckpointError`. The caller keeps ownership of `weights`.
 *
 * @example
 * const report = loadWeights(model, weights, { allowNew: ['score'] });
 * report.newKeys; // ['score.weight'] when a causal-LM checkpoint is loaded for classification
 */
export function loadWeights(
  model: PreTrainedModel,
  weights: Map<string, Tensor>,
  opts: LoadWeightsOptions = {},
): WeightLoadReport {
  const plan = planWeights(model, new Map([...weights].map(([k, t]) => [k, t.shape])), opts);
  const state = new Map([...plan.sources].map(([k, ck]) => [k, weights.get(ck)!]));
  model.loadStateDict(state, false);
  return { newKeys: plan.newKeys, ignoredKeys: plan.ignoredKeys };
}
