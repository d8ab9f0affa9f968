/**
 * GEMM work of one training step of the reference encoder (issue 17's "GEMM bound": the step's
 * FLOPs over the measured sgemm rate). Counts the products a minimal implementation must run:
 * forward linears and attention, every linear's dX except where its input needs no gradient (the
 * first layer's q/k/v read the frozen embeddings when only adapters train), dW of trainable base
 * weights, the four attention backward products, and the adapters' two forward and four backward
 * products (`x·Aᵀ`, `h·Bᵀ`; dB, dh, dA, dx). Embedding gradients are scatter-adds, not GEMMs.
 */
import type { EncoderShape } from './encoder.js';

export interface AdapterPlan {
  /** Adapted linears by their HF suffix (query, key, value, attention.output.dense, …). */
  targets: string[];
  r: number;
}

/** Adapters per bench variant (bench/variants.ts); `full` trains every weight. */
export const ADAPTERS: Record<string, AdapterPlan | 'full'> = {
  full: 'full',
  lora: { targets: ['query', 'value'], r: 8 },
  adalora: {
    targets: ['query', 'key', 'value', 'attention.output.dense', 'intermediate.dense', 'output.dense'],
    r: 12,
  },
  'lora-ada': {
    targets: ['query', 'key', 'value', 'attention.output.dense', 'intermediate.dense', 'output.dense'],
    r: 12,
  },
};

/**
 * FLOPs (2 per multiply-add) of the step's GEMMs for a variant.
 * @example stepGemmFlops(REFERENCE, 'lora') / 162e9 * 1e3; // ≈ 288 ms at 162 GFLOP/s
 */
export function stepGemmFlops(s: EncoderShape, variant: string): number {
  const plan = ADAPTERS[variant];
  if (!plan) throw new Error(`bench: no FLOP plan for variant ${variant}`);
  const n = s.batch * s.seq;
  const h = s.hidden;
  const linears: [string, number, number][] = [
    ['query', h, h],
    ['key', h, h],
    ['value', h, h],
    ['attention.output.dense', h, h],
    ['intermediate.dense', h, s.ffn],
    ['output.dense', s.ffn, h],
  ];
  const full = plan === 'full';
  let flops = 0;
  for (let layer = 0; layer < s.layers; layer++) {
    for (const [name, fin, fout] of linears) {
      const mm = 2 * n * fin * fout;
      const inputNeedsGrad = full || layer > 0 || !['query', 'key', 'value'].includes(name);
      flops += mm; // forward
      if (inputNeedsGrad) flops += mm; // dX
      if (full) flops += mm; // dW
      if (!full && plan.targets.includes(name)) {
        const a = 2 * n * fin * plan.r; // x·Aᵀ, dA, dx
        const b = 2 * n * plan.r * fout; // h·Bᵀ, dB, dh
        flops += 2 * a + 3 * b + (inputNeedsGrad ? a : 0);
      }
    }
    flops += 3 * 4 * s.batch * s.seq * s.seq * h; // attention: 2 forward + 4 backward products
  }
  const head = 2 * s.batch * h * h + 2 * s.batch * h * 2; // pooler + classifier, forward
  return flops + 3 * head;
}
