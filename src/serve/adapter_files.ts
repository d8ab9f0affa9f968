/**
 * Adapter folders as the server holds them: every adapter becomes a LoRA adapter of one shared
 * `PeftModel`, so any mix of them decodes in one batch. LoRA and DoRA folders (and HyperLoRA folders
 * written by `lowrank materialize`, which are LoRA) load as they are; an AdaLoRA folder is rewritten
 * to the LoRA adapter computing the same function:
 *
 *   AdaLoRA  Δy = ((x·(A∘E)ᵀ)·Bᵀ) · α / (ranknum + 1e-5)      (PEFT adalora/layer.py, SVDLinear)
 *   LoRA     Δy = (x·A'ᵀ)·B'ᵀ · α'/r'   with A' = A∘E, B' = B·α/(ranknum + 1e-5), α' = r' = rank kept
 *
 * where ranknum stays `init_r` after pruning (PEFT keeps it), and pruned rows are already trimmed away
 * in saved files (rank_pattern); a layer pruned to rank 0 adds nothing and is left out.
 *
 * @example const { config, weights } = await adapterForServing(dir, text, () => readAdapterWeights(dir));
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { CheckpointError, NotSupportedError } from '../errors.js';
import { configFromJson } from '../tuners/base/config.js';
import { pyJsonParse } from '../tuners/base/py_json.js';
import { LoraConfig } from '../tuners/lora/config.js';
import { disposeAll } from '../tensor/memory.js';

/** PEFT adds this to ranknum before dividing (PEFT adalora/layer.py `SVDLinear.forward`). */
const RANKNUM_EPS = 1e-5;

/** The LoRA config and weights (PEFT's saved key names; the caller disposes the tensors). */
export interface ServedAdapter {
  config: LoraConfig;
  weights: Map<string, Tensor>;
}

function raw(text: string, dir: string): Record<string, unknown> {
  try {
    const v = pyJsonParse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new CheckpointError(
    `${dir}/adapter_config.json`,
    'is not a JSON object',
    undefined,
    're-save the adapter',
  );
}

/**
 * Reads an adapter folder's config (text given) and weights as a LoRA adapter for the server.
 */
export async function adapterForServing(
  dir: string,
  configText: string,
  readWeights: () => Promise<Map<string, Tensor>>,
): Promise<ServedAdapter> {
  const json = raw(configText, dir);
  const type = String(json.peft_type ?? 'LORA');
  if (type === 'LORA') {
    const { config } = configFromJson(LoraConfig, configText);
    config.inferenceMode = true;
    return { config, weights: await readWeights() };
  }
  if (type === 'ADALORA') return adaloraAsLora(json, await readWeights(), dir);
  throw new NotSupportedError(
    `${dir}/adapter_config.json`,
    `serving peft_type ${type}`,
    'serve LoRA, DoRA, AdaLoRA or materialised HyperLoRA adapters',
  );
}

function adaloraAsLora(json: Record<string, unknown>, w: Map<string, Tensor>, dir: string): ServedAdapter {
  const initR = Number(json.init_r ?? 12);
  const alpha = Number(json.lora_alpha ?? 8);
  const scale = Math.fround(alpha / Math.fround(initR + RANKNUM_EPS));
  const out = new Map<string, Tensor>();
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  const targets: string[] = [];
  try {
    for (const [key, t] of w) {
      if (!key.endsWith('.lora_E')) {
        if (!/\.lora_[AB]$|\.ranknum$/.test(key)) out.set(key, tf.clone(t)); // modules_to_save etc.
        continue;
      }
      const prefix = key.slice(0, -'.lora_E'.length);
      const a = w.get(`${prefix}.lora_A`);
      const b = w.get(`${prefix}.lora_B`);
      if (!a || !b) {
        throw new CheckpointError(
          `${dir}/adapter_model.safetensors`,
          'holds lora_E without its lora_A and lora_B',
          prefix,
          're-save the adapter',
        );
      }
      const r = a.shape[0]!;
      if (r === 0) continue; // pruned to rank 0: no contribution
      const path = prefix.replace(/^base_model\.model\./, '');
      targets.push(path);
      rankPattern[path] = r;
      alphaPattern[path] = r; // LoRA scaling α'/r' = 1: the AdaLoRA scale lives in B'
      out.set(
        `${prefix}.lora_A.weight`,
        tf.tidy(() => tf.mul(a, e(w, key))),
      ); // [r, in] ∘ [r, 1]
      out.set(
        `${prefix}.lora_B.weight`,
        tf.tidy(() => tf.mul(b, scale)),
      ); // [out, r]
    }
  } catch (err) {
    disposeAll(out);
    throw err;
  } finally {
    disposeAll(w);
  }
  if (targets.length === 0) {
    disposeAll(out);
    throw new CheckpointError(
      dir,
      'AdaLoRA adapter has no layer with rank > 0',
      0,
      'train it longer or lower pruning',
    );
  }
  const config = new LoraConfig({
    taskType: json.task_type as never,
    r: initR,
    loraAlpha: initR,
    targetModules: targets,
    rankPattern,
    alphaPattern,
    ...(Array.isArray(json.modules_to_save) ? { modulesToSave: json.modules_to_save as string[] } : {}),
    bias: (json.bias as never) ?? 'none',
    inferenceMode: true,
  });
  return { config, weights: out };
}

function e(w: Map<string, Tensor>, key: string): Tensor {
  return w.get(key)!;
}
