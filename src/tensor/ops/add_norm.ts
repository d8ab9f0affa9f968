import { tf, type Tensor } from '../tf.js';
import { ADD_NORM_KERNELS } from '../native/add_norm_kernels.js';
import { aleaStreams, dropout } from './dropout.js';
import { nativeFused, runFused } from './fused.js';
import { layerNorm } from './norm.js';

/** One dropout draw: the rate and the seed a `Dropout` module took for this call. */
export interface DropoutDraw {
  rate: number;
  seed: number;
}

const sameShape = (a: Tensor, b: Tensor): boolean =>
  a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);
const lastAxisWeight = (x: Tensor, w: Tensor): boolean => w.rank === 1 && w.shape[0] === x.shape[x.rank - 1];

/**
 * `layerNorm(dropout(h) + residual)`, the post-LN residual of BERT (HF `BertSelfOutput` /
 * `BertOutput`: `LayerNorm(dropout(dense(x)) + input)`). On `native` it is one kernel each way
 * (native/src/add_norm.cc): the mask is drawn from tfjs's Alea stream for `drop.seed` (the mask of
 * `tf.dropout(h, rate, undefined, seed)`), kept as one byte per element, and the backward gives
 * dh = ds·mask/keep, d(residual) = ds, dγ, dβ in one pass; the results equal the separate native
 * kernels bit for bit. Elsewhere (or for shapes the kernel does not take) it is those ops composed.
 * `drop` null (eval, rate 0) skips the dropout.
 *
 * @example
 * const y = dropoutAddLayerNorm(dense(x), x, ln.weight, ln.bias, 1e-12, { rate: 0.1, seed: 42 });
 */
export function dropoutAddLayerNorm(
  h: Tensor,
  residual: Tensor,
  gamma: Tensor,
  beta: Tensor | null,
  eps: number,
  drop: DropoutDraw | null,
): Tensor {
  const active = drop !== null && drop.rate > 0 ? drop : null;
  const fusable =
    nativeFused(h, residual, gamma, ...(beta ? [beta] : [])) &&
    sameShape(h, residual) &&
    lastAxisWeight(h, gamma) &&
    (!beta || lastAxisWeight(h, beta));
  if (!fusable)
    return tf.tidy(() =>
      layerNorm(tf.add(active ? dropout(h, active.rate, active.seed) : h, residual), gamma, beta, eps),
    );
  const hasBeta = beta !== null;
  const keep = active ? 1 - active.rate : 1; // tf.dropout's keepProb (float32 in the kernel)
  const attrs = active
    ? { eps, dropout: true, keep, ...aleaStreams(String(active.seed), h.size) }
    : { eps, dropout: false };
  const f = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [hi, ri, g, b] = args as Tensor[];
    const inputs: Record<string, Tensor> = { h: hi!, residual: ri!, gamma: g! };
    if (hasBeta) inputs.beta = b!;
    const [y, sum, mean, rstd, mask] = runFused(ADD_NORM_KERNELS.forward, inputs, attrs);
    save(mask ? [sum!, g!, mean!, rstd!, mask] : [sum!, g!, mean!, rstd!]);
    return {
      value: y!,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [s, sg, sm, sr, sk] = saved;
        const gradInputs: Record<string, Tensor> = { dy, sum: s!, gamma: sg!, mean: sm!, rstd: sr! };
        if (sk) gradInputs.mask = sk;
        return runFused(ADD_NORM_KERNELS.backward, gradInputs, { keep, hasBeta });
      },
    };
  });
  return tf.tidy(() => (hasBeta ? f(h, residual, gamma, beta) : f(h, residual, gamma)) as Tensor);
}
