/**
 * GEMM work of one training step of the reference encoder (issue 17's "GEMM bound": the step's
 * FLOPs over the measured sgemm rate). Counts the products a minimal implementation must run:
 * forward linears and attention, every linear's dX except where its input needs no gradient (the
 * first layer's q/k/v read the frozen embeddings when only adapters train), dW of trainable base
 * weights, the four attention backward products, and the adapters' two forward and four backward
 * products (`x·Aᵀ`, `h·Bᵀ`; dB, dh, dA, dx). Embedding gradients are scatter-adds, not GEMMs.
 *
 * {@link stepGemms} lists those products one by one at their real shapes (m, n, k, transposes,
 * how many per step), for the shape-honest bound of bench/encoder_bench.ts: each distinct product
 * timed with the addon's sgemm and summed, instead of all FLOPs at the best rate.
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

/** One product `op(A)·op(B)`, A op'd to [m, k], B to [k, n], run `count` times per step. */
export interface Gemm {
  what: string;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  count: number;
}

/** FLOPs of a product list (2 per multiply-add). */
export const gemmFlops = (gs: Gemm[]): number => gs.reduce((a, g) => a + 2 * g.m * g.n * g.k * g.count, 0);

/** Merges products of the same shape and transposes (summing counts), first seen first. */
function merged(gs: Gemm[]): Gemm[] {
  const by = new Map<string, Gemm>();
  for (const g of gs) {
    const key = `${g.m},${g.n},${g.k},${g.transA},${g.transB}`;
    const seen = by.get(key);
    if (seen) {
      seen.count += g.count;
      if (!seen.what.split(', ').includes(g.what)) seen.what += `, ${g.what}`;
    } else by.set(key, { ...g });
  }
  return [...by.values()];
}

/** The products of one linear [fin → fout] over `n` rows in a step of `plan`. */
function linearGemms(
  name: string,
  n: number,
  fin: number,
  fout: number,
  plan: AdapterPlan | 'full',
  inputNeedsGrad: boolean,
): Gemm[] {
  const g = (what: string, m: number, nn: number, k: number, transA: boolean, transB: boolean): Gemm => ({
    what: `${name} ${what}`,
    m,
    n: nn,
    k,
    transA,
    transB,
    count: 1,
  });
  const out = [g('x·Wᵀ', n, fout, fin, false, true)];
  if (inputNeedsGrad) out.push(g('dX = dy·W', n, fin, fout, false, false));
  if (plan === 'full') out.push(g('dW = dyᵀ·x', fout, fin, n, true, false));
  if (plan !== 'full' && plan.targets.includes(name)) {
    const r = plan.r;
    out.push(g('h = x·Aᵀ', n, r, fin, false, true), g('h·Bᵀ', n, fout, r, false, true));
    out.push(g('dB = dyᵀ·h', fout, r, n, true, false), g('dh = dy·B', n, r, fout, false, false));
    out.push(g('dA = dhᵀ·x', r, fin, n, true, false));
    if (inputNeedsGrad) out.push(g('dx += dh·A', n, fin, r, false, false));
  }
  return out;
}

/**
 * Every GEMM of one training step of `variant`, merged by shape (counts per step). Attention is
 * per (batch, head) block: scores q·kᵀ and P·v forward; dP = dy·vᵀ, dq = dS·k, dk = dSᵀ·q,
 * dv = Pᵀ·dy backward.
 * @example stepGemms(REFERENCE, 'lora').length; // distinct products of a LoRA step
 */
export function stepGemms(s: EncoderShape, variant: string): Gemm[] {
  const plan = ADAPTERS[variant];
  if (!plan) throw new Error(`bench: no FLOP plan for variant ${variant}`);
  const n = s.batch * s.seq;
  const h = s.hidden;
  const d = s.hidden / s.heads;
  const t = s.seq;
  const linears: [string, number, number][] = [
    ['query', h, h],
    ['key', h, h],
    ['value', h, h],
    ['attention.output.dense', h, h],
    ['intermediate.dense', h, s.ffn],
    ['output.dense', s.ffn, h],
  ];
  const all: Gemm[] = [];
  for (let layer = 0; layer < s.layers; layer++) {
    for (const [name, fin, fout] of linears) {
      const inputNeedsGrad = plan === 'full' || layer > 0 || !['query', 'key', 'value'].includes(name);
      all.push(...linearGemms(name, n, fin, fout, plan, inputNeedsGrad));
    }
    const blocks = s.batch * s.heads;
    const att = (what: string, m: number, nn: number, k: number, transA: boolean, transB: boolean): Gemm => ({
      what: `attention ${what}`,
      m,
      n: nn,
      k,
      transA,
      transB,
      count: blocks,
    });
    all.push(att('q·kᵀ', t, t, d, false, true), att('P·v', t, d, t, false, false));
    all.push(att('dP = dy·vᵀ', t, t, d, false, true), att('dq = dS·k', t, d, t, false, false));
    all.push(att('dk = dSᵀ·q', t, d, t, true, false), att('dv = Pᵀ·dy', t, d, t, true, false));
  }
  // pooler [H → H] and classifier [H → 2] on the [CLS] rows: forward, dX and dW each (as before)
  for (const [what, fout] of [
    ['pooler', h],
    ['classifier', 2],
  ] as [string, number][]) {
    all.push({ what: `${what} x·Wᵀ`, m: s.batch, n: fout, k: h, transA: false, transB: true, count: 1 });
    all.push({ what: `${what} dX`, m: s.batch, n: h, k: fout, transA: false, transB: false, count: 1 });
    all.push({ what: `${what} dW`, m: fout, n: h, k: s.batch, transA: true, transB: false, count: 1 });
  }
  return merged(all);
}

/**
 * FLOPs (2 per multiply-add) of the step's GEMMs for a variant.
 * @example stepGemmFlops(REFERENCE, 'lora') / 162e9 * 1e3; // ≈ 288 ms at 162 GFLOP/s
 */
export function stepGemmFlops(s: EncoderShape, variant: string): number {
  return gemmFlops(stepGemms(s, variant));
}
