import { tf, type Tensor } from '../tf.js';
import { FUSED, nativeFused, runFused } from './fused.js';

/**
 * AdaLoRA's sensitivity EMA for one parameter (PEFT `RankAllocator.update_ipt`, arXiv 2303.10512
 * Eq. 8-10): `ipt = |p·g|`, `avgI = i0·β1 + ipt·(1−β1)`, `avgU = u0·β2 + |ipt − avgI|·(1−β2)`;
 * `i0`/`u0` null start from zeros. `(1 − β)` is a float64 expression rounded to float32 where it
 * meets the tensor, as in PyTorch. One native kernel on `native` (bit-identical to the composed ops,
 * which run everywhere else); no gradient (the allocator runs outside the tape). Caller disposes the
 * three results.
 *
 * @example const [ipt, avgI, avgU] = sensitivityEma(p, g, prevI, prevU, 0.85, 0.85);
 */
export function sensitivityEma(
  p: Tensor,
  g: Tensor,
  i0: Tensor | null,
  u0: Tensor | null,
  beta1: number,
  beta2: number,
): [Tensor, Tensor, Tensor] {
  const states = [i0, u0].filter((t): t is Tensor => t !== null);
  if (nativeFused(p, g, ...states)) {
    const inputs: Record<string, Tensor> = { p, g };
    if (i0) inputs.i0 = i0;
    if (u0) inputs.u0 = u0;
    return runFused(FUSED.sensitivityEma, inputs, { beta1, beta2 }) as [Tensor, Tensor, Tensor];
  }
  return tf.tidy(() => {
    const prevI = i0 ?? tf.zerosLike(p);
    const prevU = u0 ?? tf.zerosLike(p);
    const ipt = tf.abs(tf.mul(p, g));
    const avgI = tf.add(tf.mul(prevI, tf.scalar(beta1)), tf.mul(ipt, tf.scalar(1 - beta1)));
    const avgU = tf.add(
      tf.mul(prevU, tf.scalar(beta2)),
      tf.mul(tf.abs(tf.sub(ipt, avgI)), tf.scalar(1 - beta2)),
    );
    return [ipt, avgI, avgU];
  });
}

/** One parameter's inputs to {@link sensitivityEmaAll}. */
export interface SensitivityItem {
  p: Tensor;
  g: Tensor;
  i0: Tensor | null;
  u0: Tensor | null;
}

/**
 * {@link sensitivityEma} for every tracked parameter of an allocator step: one native kernel for all
 * of them (the same bits as one call each), the per-parameter ops elsewhere. Caller disposes.
 *
 * @example const [[ipt, avgI, avgU]] = sensitivityEmaAll([{ p, g, i0: null, u0: null }], 0.85, 0.85);
 */
export function sensitivityEmaAll(
  items: SensitivityItem[],
  beta1: number,
  beta2: number,
): [Tensor, Tensor, Tensor][] {
  const all = items.flatMap(({ p, g, i0, u0 }) => [p, g, ...[i0, u0].filter((t): t is Tensor => t !== null)]);
  if (items.length === 0 || !nativeFused(...all))
    return items.map(({ p, g, i0, u0 }) => sensitivityEma(p, g, i0, u0, beta1, beta2));
  const inputs: Record<string, Tensor> = {};
  items.forEach(({ p, g, i0, u0 }, i) => {
    inputs[`p${i}`] = p;
    inputs[`g${i}`] = g;
    if (i0) inputs[`a${i}`] = i0;
    if (u0) inputs[`u${i}`] = u0;
  });
  const outs = runFused(FUSED.sensitivityEmaAll, inputs, { beta1, beta2 });
  return items.map((_, i) => [outs[3 * i]!, outs[3 * i + 1]!, outs[3 * i + 2]!]);
}
