import { tf, type Tensor } from '../tf.js';
import { customGrad1 } from './fused.js';

/**
 * A weight (or bias) no optimizer updates: a non-trainable `tf.Variable`.
 *
 * @example
 * frozen(layer.weight); // true once the base model is frozen for LoRA
 */
export function frozen(t: Tensor | null | undefined): boolean {
  return t instanceof tf.Variable && !t.trainable;
}

/**
 * `y = x·Wᵀ + b` over the last axis of `x` (PyTorch `F.linear`; weight [out, in]).
 * With `weightIsInOut` the weight is [in, out] (GPT-2's Conv1D, PEFT's `fan_in_fan_out`).
 * Runs as one `_FusedMatMul` kernel so backends can fuse the bias add (native: the bias is written
 * into the output and the GEMM accumulates onto it, no separate [N, out] pass). tfjs's fused matmul
 * gradient (a customGrad) always computes dW, which for a frozen base layer under LoRA is a
 * full-size GEMM thrown away; a frozen weight (and frozen or absent bias) therefore goes through
 * its own customGrad whose backward is the dX product alone.
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
    const fused = (a: Tensor) =>
      tf.fused.matMul({
        a: a as tf.Tensor2D,
        b: weight as tf.Tensor2D,
        transposeB: !weightIsInOut,
        bias: bias ?? undefined,
      });
    let y: Tensor;
    if (frozen(weight) && (bias == null || frozen(bias))) {
      const op = customGrad1((xi) => ({
        value: fused(xi),
        // dX = dy·W ([N, out]·[out, in]), or dy·Wᵀ for an [in, out] weight
        gradFunc: (dy) => tf.matMul(dy, weight, false, weightIsInOut),
      }));
      y = op(x2);
    } else if (frozen(weight)) {
      // trainable bias on a frozen weight (lora bias 'all'): plain matMul + add lets the tape prune dW
      y = tf.add(tf.matMul(x2, weight, false, !weightIsInOut), bias!);
    } else {
      y = fused(x2);
    }
    return y.reshape([...lead, outFeatures]);
  });
}
