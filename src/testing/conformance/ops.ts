/**
 * Op cases of the conformance suite: every op the models and tuners use, forward and gradient, at the
 * shapes of the models the page and the tests train (hidden 64–128, 4 heads, sequences of 12, an MLP
 * of 4× hidden, a vocabulary of 512). Inputs come from a seeded JS generator, so every backend sees
 * the same numbers.
 */
import { tf, type Tensor } from '../../tensor/tf.js';
import { linear } from '../../tensor/ops/linear.js';
import { layerNorm, rmsNorm } from '../../tensor/ops/norm.js';
import { gelu, geluTanh, silu } from '../../tensor/ops/activations.js';
import { attention, paddingMask } from '../../tensor/ops/attention.js';
import { softmaxCrossEntropy } from '../../tensor/ops/loss.js';
import { loraDelta } from '../../tensor/ops/lora.js';
import { quantize4bit } from '../../tensor/quant/blockwise.js';
import { dequantize4bitTensor, linear4bit } from '../../tensor/quant/op.js';
import { readAll } from '../../tensor/read.js';
import type { ConformanceCase, Tolerance, Values } from './types.js';

/**
 * float32 forward ops: sums of ≤ 512 products in another order (blocked GEMM, GPU tree reductions)
 * differ by a few ulps of the partial sums; 1e-5 relative plus 1e-5 absolute for values near 0.
 */
export const OP_TOL: Tolerance = { atol: 1e-5, rtol: 1e-5 };
/** Gradients add a second reduction (over the batch) on top of the forward's: twice the slack. */
export const GRAD_TOL: Tolerance = { atol: 2e-5, rtol: 2e-5 };
/** Transcendentals (exp, tanh, erf) on GPUs are accurate to a few float32 ulps more than cpu's. */
export const TRANSCENDENTAL_TOL: Tolerance = { atol: 5e-5, rtol: 5e-5 };
/** NF4 dequantisation is a table lookup times a scale: one float32 multiply, bit-exact or 1 ulp. */
export const DEQUANT_TOL: Tolerance = { atol: 1e-7, rtol: 1e-7 };

/** Deterministic values in (−scale, scale) (same on every backend: generated in JS). */
export function seeded(n: number, seed: number, scale = 1): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

const t = (shape: number[], seed: number, scale = 1): Tensor =>
  tf.tensor(
    seeded(
      shape.reduce((a, b) => a * b, 1),
      seed,
      scale,
    ),
    shape,
  );

/** Reads named tensors (disposing them) into plain arrays. */
async function outputs(named: Record<string, Tensor>): Promise<Record<string, Values>> {
  const names = Object.keys(named);
  try {
    const vals = await readAll(names.map((n) => named[n]!));
    return Object.fromEntries(names.map((n, i) => [n, vals[i]!]));
  } finally {
    tf.dispose(Object.values(named));
  }
}

/** Value and gradients of `sum(f(xs) · probe)` (a fixed random probe makes every output element count). */
function valueAndGrads(f: (...xs: Tensor[]) => Tensor, xs: Tensor[], probeSeed = 99): Record<string, Tensor> {
  return tf.tidy(() => {
    const y = f(...xs);
    const probe = t(y.shape, probeSeed);
    const g = tf.grads((...ins: Tensor[]) => tf.sum(tf.mul(f(...ins), probe)))(xs);
    return { y, ...Object.fromEntries(g.map((gi, i) => [`grad${i}`, gi])) };
  });
}

function op(
  name: string,
  build: () => Record<string, Tensor>,
  tol: Partial<Record<string, Tolerance>> = {},
): ConformanceCase {
  return {
    name,
    group: 'op',
    tol: { default: OP_TOL, grad: GRAD_TOL, ...tol } as ConformanceCase['tol'],
    run: () => outputs(build()),
  };
}

/** Rows (batch × sequence), input and output features of a BERT-mini-sized attention/MLP layer. */
const [M, K, N] = [24, 128, 512];
/**
 * Fused activations checked: none (what `linear()` uses) and relu (wasm's transposed path was wrong
 * with it). The others share relu's code path on every backend; wasm_kernels.test.ts covers them all
 * on wasm. Each GPU case compiles its own shaders, which dominates the browser run's time.
 */
const FUSED_ACTS = ['linear', 'relu'] as const;

function matmulCases(): ConformanceCase[] {
  const cases: ConformanceCase[] = [];
  for (const tA of [false, true])
    for (const tB of [false, true])
      for (const withBias of [false, true])
        for (const act of FUSED_ACTS) {
          cases.push(
            op(`fused.matMul tA=${+tA} tB=${+tB} bias=${+withBias} ${act} [${M}×${K}·${K}×${N}]`, () => {
              const a = t(tA ? [K, M] : [M, K], 1, 0.5);
              const b = t(tB ? [N, K] : [K, N], 2, 0.5);
              const bias = withBias ? t([N], 3) : null;
              const f = (...xs: Tensor[]) =>
                tf.fused.matMul({
                  a: xs[0] as tf.Tensor2D,
                  b: xs[1] as tf.Tensor2D,
                  transposeA: tA,
                  transposeB: tB,
                  bias: xs[2],
                  activation: act,
                });
              const out = valueAndGrads(f, bias ? [a, b, bias] : [a, b]);
              tf.dispose([a, b, ...(bias ? [bias] : [])]);
              return out;
            }),
          );
        }
  return cases;
}

function withInputs(
  shapes: [number[], number, number?][],
  f: (...xs: Tensor[]) => Tensor,
): () => Record<string, Tensor> {
  return () => {
    const xs = shapes.map(([s, seed, scale]) => t(s, seed, scale ?? 1));
    try {
      return valueAndGrads(f, xs);
    } finally {
      tf.dispose(xs);
    }
  };
}

/** Hidden size, heads, sequence and batch of the attention cases. */
const [H, HEADS, T, B] = [64, 4, 12, 2];

function attentionCase(name: string, causal: boolean, padded: boolean): ConformanceCase {
  return op(
    name,
    () => {
      const d = H / HEADS;
      const q = t([B, HEADS, T, d], 11);
      const k = t([B, HEADS, T, d], 12);
      const v = t([B, HEADS, T, d], 13);
      // second row padded after 7 tokens
      const attn = tf.tensor2d(
        Array.from({ length: B * T }, (_, i) => (padded && i >= T && i % T >= 7 ? 0 : 1)),
        [B, T],
        'int32',
      );
      const mask = padded ? paddingMask(attn) : null;
      try {
        return valueAndGrads((qq, kk, vv) => attention(qq!, kk!, vv!, { causal, mask }), [q, k, v]);
      } finally {
        tf.dispose([q, k, v, attn, ...(mask ? [mask] : [])]);
      }
    },
    { y: TRANSCENDENTAL_TOL, grad: TRANSCENDENTAL_TOL },
  );
}

function nf4Case(): ConformanceCase {
  return op(
    `NF4 dequantisation and 4-bit linear [${N}×${K}], blocksize 64`,
    () => {
      const q = quantize4bit(seeded(N * K, 21, 0.2), [N, K], { quantType: 'nf4', blocksize: 64 });
      const w = dequantize4bitTensor(q);
      const x = t([M, K], 22);
      const bias = t([N], 23);
      const lin = valueAndGrads((xx, bb) => linear4bit(xx!, q, bb!), [x, bias]);
      tf.dispose([x, bias]);
      return { dequant: w, ...lin };
    },
    { dequant: DEQUANT_TOL },
  );
}

function addNCases(): ConformanceCase[] {
  return [2, 7, 8, 9, 30].map((n) =>
    op(`addN of ${n} inputs [${K}×${H}]`, () =>
      tf.tidy(() => ({ y: tf.addN(Array.from({ length: n }, (_, i) => t([K, H], 40 + i))) })),
    ),
  );
}

/** Every op case (forward and gradient). */
export function opCases(): ConformanceCase[] {
  return [
    ...matmulCases(),
    op(
      'linear (trainable W, bias) [B,T,in]→[B,T,out]',
      withInputs(
        [
          [[B, T, K], 31],
          [[N, K], 32, 0.1],
          [[N], 33],
        ],
        (x, w, b) => linear(x!, w!, b!),
      ),
    ),
    op(
      'linear, weight [in, out] (GPT-2 Conv1D)',
      withInputs(
        [
          [[B, T, K], 31],
          [[K, N], 32, 0.1],
          [[N], 33],
        ],
        (x, w, b) => linear(x!, w!, b!, true),
      ),
    ),
    op(
      'LoRA delta x·Aᵀ·Bᵀ·s',
      withInputs(
        [
          [[B, T, K], 34],
          [[8, K], 35],
          [[N, 8], 36],
        ],
        (x, a, b) => loraDelta(x!, a!, b!, 2),
      ),
    ),
    op(
      'layerNorm (BERT eps 1e-12)',
      withInputs(
        [
          [[B, T, H], 51, 3],
          [[H], 52],
          [[H], 53],
        ],
        (x, g, b) => layerNorm(x!, g!, b!, 1e-12),
      ),
      { grad: TRANSCENDENTAL_TOL },
    ),
    op(
      'rmsNorm (Llama eps 1e-6)',
      withInputs(
        [
          [[B, T, H], 54, 3],
          [[H], 55],
        ],
        (x, w) => rmsNorm(x!, w!, 1e-6),
      ),
      { grad: TRANSCENDENTAL_TOL },
    ),
    op(
      'gelu (erf)',
      withInputs([[[B, T, 4 * H], 56, 4]], (x) => gelu(x!)),
      { y: TRANSCENDENTAL_TOL, grad: TRANSCENDENTAL_TOL },
    ),
    op(
      'gelu (tanh, GPT-2)',
      withInputs([[[B, T, 4 * H], 57, 4]], (x) => geluTanh(x!)),
      { y: TRANSCENDENTAL_TOL, grad: TRANSCENDENTAL_TOL },
    ),
    op(
      'silu (Llama MLP)',
      withInputs([[[B, T, 4 * H], 58, 4]], (x) => silu(x!)),
      { y: TRANSCENDENTAL_TOL, grad: TRANSCENDENTAL_TOL },
    ),
    attentionCase(`attention, causal [${B}×${HEADS}×${T}×${H / HEADS}]`, true, false),
    attentionCase('attention, padding mask', false, true),
    attentionCase('attention, causal + padding', true, true),
    op(
      'softmax cross-entropy with ignored labels (vocab 512)',
      () => {
        const logits = t([B * T, 512], 61, 4);
        const labels = tf.tensor1d(
          Array.from({ length: B * T }, (_, i) => (i % 5 === 4 ? -100 : (i * 37) % 512)),
          'int32',
        );
        try {
          return valueAndGrads((l) => softmaxCrossEntropy(l!, labels), [logits]);
        } finally {
          tf.dispose([logits, labels]);
        }
      },
      { y: TRANSCENDENTAL_TOL, grad: TRANSCENDENTAL_TOL },
    ),
    op('gather (embedding lookup, repeated ids) and its gradient', () => {
      const table = t([512, H], 62);
      const ids = tf.tensor2d(
        Array.from({ length: B * T }, (_, i) => (i * 13) % 40),
        [B, T],
        'int32',
      );
      try {
        return valueAndGrads((tb) => tf.gather(tb!, ids), [table]);
      } finally {
        tf.dispose([table, ids]);
      }
    }),
    ...addNCases(),
    nf4Case(),
  ];
}
