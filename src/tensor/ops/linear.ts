import { tf, type Tensor } from '../tf.js';

/**
 * `y = x·Wᵀ + b` over the last axis of `x` (PyTorch `F.linear`; weight [out, in]).
 * With `weightIsInOut` the weight is [in, out] (GPT-2's Conv1D, PEFT's `fan_in_fan_out`).
 * Runs as one `_FusedMatMul` kernel so backends can fuse the bias add, except when the weight is a
 * frozen variable (with or without a bias): tfjs's fused matmul gradient (a customGrad) always computes dW, which for a frozen
 * base layer under LoRA is a full-size GEMM thrown away. A plain matMul + add lets the tape prune it.
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
    const frozenWeight = weight instanceof tf.Variable && !weight.trainable;
    const plain = frozenWeight ? tf.matMul(x2, weight, false, !weightIsInOut) : null; // [N, out]
    const y = plain
      ? bias
        ? tf.add(plain, bias)
        : plain
      : tf.fused.matMul({
          a: x2 as tf.Tensor2D,
          b: weight as tf.Tensor2D,
          transposeB: !weightIsInOut,
          bias: bias ?? undefined,
        });
    return y.reshape([...lead, outFeatures]);
  });
}
