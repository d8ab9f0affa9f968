/**
 * The benchmark's three variants of the reference encoder (issue 2) and their training step, shared
 * by bench/step_worker.ts (timed cells) and bench/profile_step.ts (kernel profiles):
 * `full` fine-tuning, `lora` r=8 alpha=16 on query,value, `adalora` init_r=12 target_r=8 on every
 * linear of a layer with update_and_allocate at every step (as bench/torch_bench.py), and `lora-ada`:
 * LoRA r=12 alpha=12 on AdaLoRA's targets (same targets, initial rank and scale 1 as `adalora`), the
 * anchor of issue 17's "AdaLoRA ≤ 1.1× LoRA" goal.
 */
import { tf, type Tensor, type Variable } from '../src/tensor/tf.js';
import { AdamW } from '../src/training/optim.js';
import { getPeftModel, LoraConfig, AdaLoraConfig, type PeftModel } from '../src/tuners/index.js';
import { buildEncoder, type Batch, type EncoderShape } from './encoder.js';

export const VARIANTS = ['full', 'lora', 'adalora', 'lora-ada'] as const;
export type Variant = (typeof VARIANTS)[number];

const ADALORA_TARGETS = [
  'query',
  'key',
  'value',
  'attention.output.dense',
  'intermediate.dense',
  'output.dense',
];

type Forward = ReturnType<typeof buildEncoder>['forward'];

export interface VariantModel {
  variant: Variant;
  forward: Forward;
  peft?: PeftModel;
  named: [string, Variable][];
  vars: Variable[];
  opt: AdamW;
}

/** Builds the encoder with the variant's adapters (seeded) and its AdamW. */
export function buildVariant(variant: string, shape: EncoderShape): VariantModel {
  if (!(VARIANTS as readonly string[]).includes(variant))
    throw new Error(`bench: variant must be one of ${VARIANTS.join(', ')} (got ${variant})`);
  const base = buildEncoder(shape);
  let peft: PeftModel | undefined;
  if (variant === 'lora') {
    peft = getPeftModel(
      base,
      new LoraConfig({
        r: 8,
        loraAlpha: 16,
        loraDropout: 0.1,
        targetModules: ['query', 'value'],
        taskType: 'SEQ_CLS',
      }),
    );
  } else if (variant === 'lora-ada') {
    peft = getPeftModel(
      base,
      new LoraConfig({
        r: 12,
        loraAlpha: 12,
        loraDropout: 0.1,
        targetModules: ADALORA_TARGETS,
        taskType: 'SEQ_CLS',
      }),
    );
  } else if (variant === 'adalora') {
    // tinit = tfinal = 0, deltaT = 1: every step is a budgeting step (sensitivity update + masking),
    // the most expensive phase of AdaLoRA, as in bench/torch_bench.py.
    peft = getPeftModel(
      base,
      new AdaLoraConfig({
        initR: 12,
        targetR: 8,
        tinit: 0,
        tfinal: 0,
        deltaT: 1,
        totalStep: 1000,
        loraAlpha: 12,
        loraDropout: 0.1,
        targetModules: ADALORA_TARGETS,
        taskType: 'SEQ_CLS',
      }),
    );
  }
  const model = peft ?? base;
  const named = model.trainableParameters();
  return {
    variant: variant as Variant,
    forward: model.forward.bind(model) as Forward,
    peft,
    named,
    vars: named.map(([, v]) => v),
    opt: new AdamW(named, { lr: 1e-4 }),
  };
}

/** One training step (forward, backward, AdamW, AdaLoRA's update_and_allocate); returns the loss. */
export function variantStep(m: VariantModel, batch: Batch, step: number): number {
  const { value, grads } = tf.variableGrads(() => {
    const out = m.forward({
      inputIds: batch.inputIds,
      attentionMask: batch.attentionMask,
      labels: batch.labels,
    });
    tf.dispose(out.logits);
    return out.loss as tf.Scalar;
  }, m.vars);
  m.opt.step(grads);
  if (m.variant === 'adalora') {
    const byName = new Map<string, Tensor>(m.named.map(([n, v]) => [n, grads[v.name]!]));
    m.peft!.updateAndAllocate(step, byName);
  }
  const loss = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(grads)]);
  return loss;
}
