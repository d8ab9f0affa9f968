import { tf, type Tensor } from '../tf.js';

/**
 * `y = x·Wᵀ + b` over the last axis of `x` (PyTorch `F.linear`; weight [out, in]).
 * With `weightIsInOut` the weight is [in, out] (GPT-2's Conv1D, PEFT's `fan_in_fan_out`).
 * Runs as one `_FusedMatMul` kernel so backends can fuse the bias add.
 *
 * @example
 * linear(x, w, b); // x [B, T, in], w [out, in], b [out] → [B, T, out]
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, weightIsInOut = false): Tensor {
  return tf.tidy(() => {
    const inFeatures = x.shape[x.shape.length - 1]!;
    const outFeatures = weightIsInOut ? weight.shape[1]! : weight.shape[0]!;
    const lead = x.shape.slice(0, -1);
    const x2 = x.reshape([-1, inFeatures]); // [N, in]
    const y = tf.fused.matMul({
      a: x2 as tf.Tensor2D,
      b: weight as tf.Tensor2D,
      transposeB: !weightIsInOut,
      bias: bias ?? undefined,
    });
    return y.reshape([...lead, outFeatures]);
  });
}
