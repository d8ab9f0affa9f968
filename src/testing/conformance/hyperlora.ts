/**
 * HyperLoRA cases of the conformance suite: the library's training step on a mixed-condition batch
 * whose condition comes from the collator (`Example.condition` → int32 [B] or float32 [B, dim]
 * `condition`), so the gather of condition embeddings, the hypernetwork and the per-row batched
 * adapters run on the backend under test. Each case reports every step's loss, the first step's
 * gradients, the final hypernetwork weights and the LoRA factors materialised for one condition.
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import { modelFromConfig } from '../../models/from_config.js';
import type { HFConfig } from '../../models/base.js';
import {
  HyperLoraConfig,
  HyperLoraModel,
  type HyperLoraConfigOptions,
} from '../../tuners/hyperlora/index.js';
import { AdamW, clipGradNorm } from '../../training/optim.js';
import { collate } from '../../training/data/loader.js';
import type { Example } from '../../training/data/dataset.js';
import { readAll, readScalar } from '../../tensor/read.js';
import { FIRST_LOSS_TOL, LATER_LOSS_TOL, STEP_GRAD_TOL, WEIGHT_TOL } from './training.js';
import type { ConformanceCase, Values } from './types.js';

const LR = 1e-3;
const STEPS = 4;
const HIDDEN = 8;
/**
 * A materialised factor entry is a head's dot product over HIDDEN tanh units (|h| ≤ 1) plus a bias:
 * HIDDEN + 1 head weights, each within WEIGHT_TOL after the steps.
 */
export const MATERIALISED_TOL = { atol: WEIGHT_TOL.atol * (HIDDEN + 1), rtol: 0 };

const LLAMA: HFConfig = {
  model_type: 'llama',
  vocab_size: 96,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  tie_word_embeddings: false,
};
const GPT2: HFConfig = {
  model_type: 'gpt2',
  vocab_size: 96,
  n_embd: 64,
  n_layer: 2,
  n_head: 4,
  n_positions: 32,
  embd_pdrop: 0,
  resid_pdrop: 0,
  attn_pdrop: 0,
};
/** Condition vectors of the 'vector' case: condition k is row k. */
const VECTORS = [
  [1, 0, 0.5],
  [0, 1, -1],
  [0.3, -0.2, 0.7],
];

/** Eight causal-LM examples of 5–12 tokens; example i has condition i mod 3 (id or vector). */
function examples(vector: boolean): Example[] {
  return Array.from({ length: 8 }, (_, i) => ({
    inputIds: Array.from({ length: 5 + ((i * 3) % 8) }, (_, j) => 1 + ((i * 17 + j * 7) % 95)),
    label: -1,
    condition: vector ? VECTORS[i % 3]! : i % 3,
  }));
}

interface HyperSpec {
  name: string;
  config: HFConfig;
  hyper: Omit<HyperLoraConfigOptions, 'r' | 'hiddenDim'>;
}

/** STEPS library training steps (collate → forward → grads → clip → AdamW), then condition 1's factors. */
async function hyperSteps(spec: HyperSpec): Promise<Record<string, Values>> {
  manualSeed(4321);
  const base = modelFromConfig(spec.config, { task: 'CAUSAL_LM' });
  const hyper = new HyperLoraModel(base, new HyperLoraConfig({ ...spec.hyper, r: 4, hiddenDim: HIDDEN }));
  // B heads start at zero (a fresh hypernetwork is its base): move them so step 1's gradients reach A
  tf.tidy(() => {
    for (const [n, p] of hyper.hypernet.namedParameters())
      if (/_B\.weight$/.test(n)) p.assign(tf.randomNormal(p.shape, 0, 0.05, 'float32', 17));
  });
  const params = hyper.trainableParameters();
  const byVar = new Map(params.map(([n, v]) => [v.name, n]));
  const opt = new AdamW(params, { lr: LR, weightDecay: 0.01 });
  const vector = spec.hyper.conditionType === 'vector';
  const data = examples(vector);
  const out: Record<string, Values> = {};
  const losses: number[] = [];
  try {
    hyper.train();
    for (let step = 0; step < STEPS; step++) {
      const batch = collate(data.slice((step % 2) * 4, (step % 2) * 4 + 4), 'causal_lm', 0);
      const { value, grads } = tf.variableGrads(
        () => hyper.forward(batch).loss as tf.Scalar,
        params.map(([, v]) => v),
      );
      tf.dispose(Object.values(batch));
      losses.push(await readScalar(value));
      value.dispose();
      const { grads: clipped } = await clipGradNorm(grads, 1);
      if (step === 0) {
        const names = Object.keys(grads);
        const vals = await readAll(names.map((n) => grads[n]!));
        names.forEach((n, i) => (out[`grad ${byVar.get(n) ?? n}`] = vals[i]!));
      }
      tf.dispose(Object.values(grads));
      opt.step(
        new Map<string, Tensor>(Object.entries(clipped).map(([vn, g]) => [byVar.get(vn) ?? vn, g])),
        LR,
      );
      tf.dispose(Object.values(clipped));
    }
    out['loss step 1'] = [losses[0]!];
    out['loss later steps'] = losses.slice(1);
    const finals = await readAll(params.map(([, v]) => v));
    params.forEach(([n], i) => (out[`weight ${n}`] = finals[i]!));
    const cond = vector ? tf.tensor2d([VECTORS[1]!]) : 1;
    const { weights } = hyper.materialize(cond);
    try {
      const keys = [...weights.keys()].sort();
      const vals = await readAll(keys.map((k) => weights.get(k)!));
      keys.forEach((k, i) => (out[`materialised ${k}`] = vals[i]!));
    } finally {
      tf.dispose([...weights.values()]);
      if (typeof cond !== 'number') cond.dispose();
    }
    return out;
  } finally {
    opt.dispose();
    hyper.dispose();
  }
}

function hyperCase(spec: HyperSpec): ConformanceCase {
  return {
    name: spec.name,
    group: 'training',
    tol: {
      default: WEIGHT_TOL,
      'loss step 1': FIRST_LOSS_TOL,
      'loss later': LATER_LOSS_TOL,
      grad: STEP_GRAD_TOL,
      weight: WEIGHT_TOL,
      materialised: MATERIALISED_TOL,
    },
    run: () => hyperSteps(spec),
  };
}

/** The HyperLoRA training cases. */
export function hyperloraCases(): ConformanceCase[] {
  return [
    hyperCase({
      name: `Llama + HyperLoRA (condition ids from the collator, mixed batch, FiLM), ${STEPS} steps`,
      config: LLAMA,
      hyper: { targetModules: ['q_proj', 'v_proj', 'down_proj'], numConditions: 3, conditioning: 'film' },
    }),
    hyperCase({
      name: `GPT-2 + HyperLoRA (condition vectors from the collator, Conv1D, layer 1 only), ${STEPS} steps`,
      config: GPT2,
      hyper: {
        targetModules: ['c_attn', 'attn.c_proj'], // the MLP's c_proj has another shape
        conditionType: 'vector',
        conditionDim: 3,
        layersToTransform: [1],
      },
    }),
  ];
}
