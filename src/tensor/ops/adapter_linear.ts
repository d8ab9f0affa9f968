import { tf, type Tensor } from '../tf.js';
import { ADALORA_KERNELS } from '../native/adalora_kernels.js';
import { ADAPTER_KERNELS } from '../native/adapter_kernels.js';
import type { DropoutDraw } from './add_norm.js';
import { aleaStreams, dropout } from './dropout.js';
import { nativeFused, runFused } from './fused.js';
import { linear } from './linear.js';
import { loraDelta } from './lora.js';

/** A base linear layer whose weight (and bias) no optimizer updates. */
export interface FrozenLinear {
  /** [out, in], or [in, out] with `weightIsInOut` (GPT-2's Conv1D). */
  weight: Tensor;
  bias: Tensor | null;
  weightIsInOut: boolean;
}

/** One adapter's factors: LoRA's A [r, in], B [out, r] and scale; AdaLoRA adds E [r, 1] and ranknum [1]. */
export interface LowRankFactors {
  a: Tensor;
  b: Tensor;
  scale: number;
  e?: Tensor;
  ranknum?: Tensor;
}

/**
 * The adapted linear layer as the composed tfjs ops: `linear(x) + loraDelta(dropout(x))`, exactly
 * what `LoraLinear` / `SVDLinear` ran before {@link adapterLinear} (and still run off `native`).
 *
 * @example
 * const y = adapterLinearComposed(x, { weight: w, bias: b, weightIsInOut: false }, { a, b: bB, scale: 2 }, null);
 */
export function adapterLinearComposed(
  x: Tensor,
  base: FrozenLinear,
  f: LowRankFactors,
  drop: DropoutDraw | null,
): Tensor {
  return tf.tidy(() => {
    const y = linear(x, base.weight, base.bias, base.weightIsInOut);
    const xd = drop && drop.rate > 0 ? dropout(x, drop.rate, drop.seed) : x;
    return tf.add(y, loraDelta(xd, f.a, f.b, f.scale, { e: f.e ?? null, ranknum: f.ranknum ?? null }));
  });
}

/** True when {@link adapterLinear} runs as the native kernels for these operands. */
export function adapterLinearFuses(x: Tensor, base: FrozenLinear, f: LowRankFactors): boolean {
  const { weight: w, bias } = base;
  const svd = f.e !== undefined || f.ranknum !== undefined;
  const extra = [...(bias ? [bias] : []), ...(svd ? [f.e!, f.ranknum!] : [])];
  if (svd && (f.e === undefined || f.ranknum === undefined)) return false;
  if (!nativeFused(x, w, f.a, f.b, ...extra) || w.rank !== 2 || f.a.rank !== 2 || f.b.rank !== 2)
    return false;
  const inF = x.shape[x.rank - 1]!;
  const [wIn, wOut] = base.weightIsInOut ? w.shape : [w.shape[1], w.shape[0]];
  const [r, aIn] = f.a.shape as [number, number];
  return (
    x.rank >= 1 &&
    wIn === inF &&
    aIn === inF &&
    r >= 1 &&
    f.b.shape[0] === wOut &&
    f.b.shape[1] === r &&
    (!bias || (bias.rank === 1 && bias.shape[0] === wOut)) &&
    (!svd || (f.e!.rank === 2 && f.e!.shape[0] === r && f.e!.shape[1] === 1 && f.ranknum!.size === 1))
  );
}

/**
 * The adapted linear layer `y = x·Wᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ` (PEFT `lora.Linear.forward`; AdaLoRA's
 * `SVDLinear` with A∘E and s/(ranknum + 1e-5)) for a frozen base, as one op on the tape. On `native`
 * it is one kernel each way (native/src/adapter.cc): the forward draws the dropout mask from tfjs's
 * Alea stream for `drop.seed` (the mask of `tf.dropout(x, rate, undefined, seed)`, kept as one byte
 * per element), runs the base GEMM and adds the rank-r delta into its output; the backward writes dX
 * once (base product, then the adapter's masked product added in the same pass) and gives dA, dB
 * (and dE through `LowrankSvdPrepGrad`) in the same call; W and the bias get no gradient. The
 * adapter's rank-r products are the addon's own kernels, so values differ from the composed path in
 * the last bits (adapter_linear.test.ts beside this file). Elsewhere it is {@link adapterLinearComposed}.
 * `drop` null (eval, rate 0) skips the dropout. x [.., in] → [.., out].
 *
 * @example
 * const y = adapterLinear(x, { weight: w, bias: null, weightIsInOut: false }, { a, b, scale: 2 }, drop.draw());
 */
export function adapterLinear(
  x: Tensor,
  base: FrozenLinear,
  f: LowRankFactors,
  drop: DropoutDraw | null,
): Tensor {
  if (!adapterLinearFuses(x, base, f)) return adapterLinearComposed(x, base, f, drop);
  const { weight, bias, weightIsInOut: wInOut } = base;
  const active = drop !== null && drop.rate > 0 ? drop : null;
  const inF = x.shape[x.rank - 1]!;
  const outF = f.b.shape[0]!;
  const xShape = x.shape;
  const outShape = [...xShape.slice(0, -1), outF];
  const keep = active ? 1 - active.rate : 1; // tf.dropout's keepProb (float32 in the kernel)
  const attrs = active
    ? { wInOut, dropout: true, keep, ...aleaStreams(String(active.seed), x.size) }
    : { wInOut, dropout: false };
  const baseInputs: Record<string, Tensor> = bias ? { w: weight, bias } : { w: weight };
  const { scale, ranknum } = f;
  const svd = f.e !== undefined;
  const op = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xi, ai, bi] = args as Tensor[];
    const ei = svd ? (args[3] as Tensor) : undefined; // the last argument is tfjs's save function
    // LoRA: the kernel scales B itself (S = B·s, the Multiply of ops/lora.ts, and dB = dS·s);
    // AdaLoRA: A∘E and (B·s)/(ranknum + 1e-5) from LowrankSvdPrep, passed with scale 1 (exact).
    const [left, right] = svd
      ? runFused(ADALORA_KERNELS.svdPrep, { a: ai!, e: ei!, b: bi!, ranknum: ranknum! }, { scale })
      : [ai!, bi!];
    const bScale = svd ? 1 : scale;
    const x2 = xi!.reshape([-1, inF]); // [N, in]
    const [y, h, mask] = runFused(
      ADAPTER_KERNELS.forward,
      { x: x2, ...baseInputs, left: left!, b: right! },
      { ...attrs, bScale },
    );
    save([x2, h!, left!, right!, ai!, ei ?? ai!, mask ?? h!]);
    return {
      value: y!.reshape(outShape),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [sx, sh, sl, sr, sa, se, sm] = saved as [
          Tensor,
          Tensor,
          Tensor,
          Tensor,
          Tensor,
          Tensor,
          Tensor,
        ];
        const gradInputs: Record<string, Tensor> = {
          dy: dy.reshape([-1, outF]),
          x: sx,
          w: weight,
          h: sh,
          left: sl,
          b: sr,
        };
        if (active) gradInputs.mask = sm;
        const [dx, dLeft, dRight] = runFused(ADAPTER_KERNELS.backward, gradInputs, { wInOut, keep, bScale });
        const dX = dx!.reshape(xShape);
        if (!svd) return [dX, dLeft!, dRight!];
        const [dA, dE, dB] = runFused(
          ADALORA_KERNELS.svdPrepGrad,
          { dLeft: dLeft!, dScaledB: dRight!, a: sa, e: se, ranknum: ranknum! },
          { scale },
        );
        return [dX, dA!, dB!, dE!];
      },
    };
  });
  // W, the bias and ranknum are frozen: read in place, not inputs of the tape node.
  return tf.tidy(() => (svd ? op(x, f.a, f.b, f.e!) : op(x, f.a, f.b)) as Tensor);
}
