/**
 * Whole-training-step cases of the conformance suite: BERT (biases, a trained classifier head),
 * GPT-2 and Llama × LoRA, AdaLoRA through `updateAndAllocateAsync` with masking at every step, DoRA
 * and QLoRA. Each runs the library's own step (forward, `tf.variableGrads`, `clipGradNorm`, AdamW,
 * the AdaLoRA step) for a few steps and reports every step's loss, the first step's gradients and
 * the final trainable weights. Models are built from a seed in JS, with dropout off, so every backend
 * starts from the same bytes.
 */
import { tf, type Tensor, type Variable } from '../../tensor/tf.js';
import { manualSeed } from '../../nn/init.js';
import { modelFromConfig } from '../../models/from_config.js';
import type { HFConfig, ModelInputs, ModelOutput, PreTrainedModel } from '../../models/base.js';
import { quantizeModelAsync } from '../../nn/linear4bit.js';
import { getPeftModel, LoraConfig, type PeftModel } from '../../tuners/index.js';
import { AdaLoraConfig, AdaLoraModel } from '../../tuners/adalora/index.js';
import { AdamW, clipGradNorm } from '../../training/optim.js';
import { collate } from '../../training/data/loader.js';
import type { Example } from '../../training/data/dataset.js';
import { readAll, readScalar } from '../../tensor/read.js';
import { GPT2_64, LLAMA_64 } from '../small_models.js';
import type { ConformanceCase, Tolerance, Values } from './types.js';

/**
 * Step 1's loss: the forward alone, float32 in another summation order: ≤ 1e-5 relative (the issue's
 * bar for cpu/wasm/native is 1e-4 absolute; observed ≤ 2e-6).
 */
export const FIRST_LOSS_TOL: Tolerance = { atol: 1e-5, rtol: 1e-5 };
/** Later losses: after AdamW steps, whose update amplifies last-ulp gradient differences (≤ 1e-3). */
export const LATER_LOSS_TOL: Tolerance = { atol: 2e-4, rtol: 1e-4 };
/** First-step gradients: a backward pass of reductions over batch × sequence. */
export const STEP_GRAD_TOL: Tolerance = { atol: 5e-5, rtol: 1e-3 };
/**
 * Weights after the steps: AdamW moves each by ≈ lr·sign(m) early on, so an entry whose gradient is
 * rounding noise can move by up to 2·lr per step on one backend and not the other; lr = 1e-3 and 3–4
 * steps bound that at 8e-3. Observed differences are far smaller; this bound catches a wrong kernel
 * (which moves many entries by O(lr) consistently and changes the losses).
 */
export const WEIGHT_TOL: Tolerance = { atol: 8e-3, rtol: 0 };

export const LR = 1e-3;
export const STEPS = 4;
/** Every dropout field of the BERT and GPT-2 configs, off. */
export const NO_DROPOUT = {
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
  classifier_dropout: 0,
  embd_pdrop: 0,
  resid_pdrop: 0,
  attn_pdrop: 0,
};

const BERT: HFConfig = {
  model_type: 'bert',
  vocab_size: 96,
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 128,
  max_position_embeddings: 32,
  ...NO_DROPOUT,
};
const GPT2: HFConfig = { ...GPT2_64, ...NO_DROPOUT };
const LLAMA = LLAMA_64;

/** Eight examples of 5–12 tokens (padded batches), labels for 3 classes. */
function examples(task: 'classification' | 'causal_lm'): Example[] {
  return Array.from({ length: 8 }, (_, i) => {
    const ids = Array.from({ length: 5 + ((i * 3) % 8) }, (_, j) => 1 + ((i * 17 + j * 7) % 95));
    return task === 'classification' ? { inputIds: ids, label: i % 3 } : ({ inputIds: ids } as Example);
  });
}

interface TrainSpec {
  name: string;
  config: HFConfig;
  task: 'classification' | 'causal_lm';
  peft: (m: PreTrainedModel) => Promise<PeftModel>;
  maxGradNorm?: number;
}

/** What {@link librarySteps} trains: a PEFT or HyperLoRA model, by its forward loss. */
export interface StepSubject {
  train(): unknown;
  forward(batch: ModelInputs): ModelOutput;
  trainableParameters(): [string, Variable][];
}

/**
 * STEPS steps of the library's training step on alternating halves of `data` (collate → forward →
 * `tf.variableGrads` → `clipGradNorm` → AdamW at LR → `afterStep` with the clipped gradients by
 * parameter name). Adds step 1's gradients, every step's loss and the final trainable weights to `out`.
 */
export async function librarySteps(
  model: StepSubject,
  data: Example[],
  task: 'classification' | 'causal_lm',
  out: Record<string, Values>,
  opts: {
    maxGradNorm?: number;
    afterStep?: (step: number, grads: Map<string, Tensor>) => Promise<void>;
  } = {},
): Promise<void> {
  const params = model.trainableParameters();
  const byVar = new Map(params.map(([n, v]) => [v.name, n]));
  const opt = new AdamW(params, { lr: LR, weightDecay: 0.01 });
  const losses: number[] = [];
  try {
    model.train();
    for (let step = 0; step < STEPS; step++) {
      const batch = collate(data.slice((step % 2) * 4, (step % 2) * 4 + 4), task, 0);
      const { value, grads } = tf.variableGrads(
        () => model.forward(batch).loss as tf.Scalar,
        params.map(([, v]) => v),
      );
      tf.dispose(Object.values(batch));
      losses.push(await readScalar(value));
      value.dispose();
      const { grads: clipped } = await clipGradNorm(grads, opts.maxGradNorm ?? 1);
      if (step === 0) {
        const names = Object.keys(grads);
        const vals = await readAll(names.map((n) => grads[n]!));
        names.forEach((n, i) => (out[`grad ${byVar.get(n) ?? n}`] = vals[i]!));
      }
      tf.dispose(Object.values(grads));
      const named = new Map<string, Tensor>(
        Object.entries(clipped).map(([vn, g]) => [byVar.get(vn) ?? vn, g]),
      );
      opt.step(named, LR);
      await opts.afterStep?.(step, named);
      tf.dispose(Object.values(clipped));
    }
    out['loss step 1'] = [losses[0]!];
    out['loss later steps'] = losses.slice(1);
    const finals = await readAll(params.map(([, v]) => v));
    params.forEach(([n], i) => (out[`weight ${n}`] = finals[i]!));
  } finally {
    opt.dispose();
  }
}

/** The tolerances of a training case's losses, step-1 gradients and final weights. */
export const STEP_TOLS = {
  default: WEIGHT_TOL,
  'loss step 1': FIRST_LOSS_TOL,
  'loss later': LATER_LOSS_TOL,
  grad: STEP_GRAD_TOL,
  weight: WEIGHT_TOL,
};

/** Runs STEPS steps of the library's training step; returns losses, step-1 grads, final weights. */
async function trainSteps(spec: TrainSpec): Promise<Record<string, Values>> {
  manualSeed(1234);
  const base = modelFromConfig(
    spec.config,
    spec.task === 'classification' ? { task: 'SEQ_CLS', numLabels: 3 } : { task: 'CAUSAL_LM' },
  );
  const peft = await spec.peft(base);
  const tuner = peft.base_model;
  const out: Record<string, Values> = {};
  try {
    await librarySteps(peft, examples(spec.task), spec.task, out, {
      maxGradNorm: spec.maxGradNorm,
      afterStep: async (step, grads) => {
        if (!(tuner instanceof AdaLoraModel)) return;
        const info = await tuner.updateAndAllocateAsync(step, grads);
        out[`ranks after step ${step + 1}`] = Object.values(info.ranks ?? {});
      },
    });
    return out;
  } finally {
    if (tuner instanceof AdaLoraModel) tuner.allocation?.dispose();
    for (const [, p] of peft.namedParameters()) p.dispose();
  }
}

function trainingCase(spec: TrainSpec): ConformanceCase {
  return {
    name: spec.name,
    group: 'training',
    tol: { ...STEP_TOLS, ranks: { atol: 0, rtol: 0 } },
    run: () => trainSteps(spec),
  };
}

const LINEARS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** Every training case. */
export function trainingCases(): ConformanceCase[] {
  return [
    trainingCase({
      name: `BERT (biases) + LoRA on query/value + trained classifier head, ${STEPS} steps`,
      config: BERT,
      task: 'classification',
      peft: async (m) =>
        getPeftModel(
          m,
          new LoraConfig({
            r: 4,
            loraAlpha: 8,
            targetModules: ['query', 'value'],
            modulesToSave: ['classifier'],
          }),
        ),
    }),
    trainingCase({
      name: `GPT-2 + LoRA on c_attn/c_proj (Conv1D, biases), ${STEPS} steps`,
      config: GPT2,
      task: 'causal_lm',
      peft: async (m) =>
        getPeftModel(
          m,
          new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_proj'], fanInFanOut: true }),
        ),
    }),
    trainingCase({
      name: `Llama + LoRA on all linear layers, ${STEPS} steps`,
      config: LLAMA,
      task: 'causal_lm',
      peft: async (m) => getPeftModel(m, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: LINEARS })),
    }),
    trainingCase({
      name: `Llama + AdaLoRA (updateAndAllocateAsync, masking every step), ${STEPS} steps`,
      config: LLAMA,
      task: 'causal_lm',
      peft: async (m) =>
        getPeftModel(
          m,
          new AdaLoraConfig({
            initR: 6,
            targetR: 2,
            tinit: 0,
            tfinal: 1,
            deltaT: 1,
            totalStep: STEPS + 1,
            targetModules: LINEARS,
          }),
        ),
    }),
    trainingCase({
      name: `Llama + DoRA on q/v, ${STEPS} steps`,
      config: LLAMA,
      task: 'causal_lm',
      peft: async (m) =>
        getPeftModel(
          m,
          new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'], useDora: true }),
        ),
    }),
    trainingCase({
      name: `Llama + QLoRA (NF4 base, quantizeModelAsync), ${STEPS} steps`,
      config: LLAMA,
      task: 'causal_lm',
      peft: async (m) => {
        await quantizeModelAsync(m, { quantType: 'nf4', blocksize: 64 });
        return getPeftModel(m, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: LINEARS }));
      },
    }),
  ];
}
