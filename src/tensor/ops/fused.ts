/**
 * How the ops in this folder reach the native backend's fused kernels: {@link nativeFused} says
 * whether the active backend is `native` and every tensor is float32; {@link runFused} runs a
 * `Lowrank*` kernel through the engine (so tapes, tidy and memory tracking see it). Every op keeps
 * its composed-tfjs path for the other backends.
 */
import { tf, type Tensor } from '../tf.js';
import { NATIVE_BACKEND } from '../native/register.js';

export { FUSED } from '../native/fused_kernels.js';

/** True when fused native kernels can run on these tensors. */
export function nativeFused(...ts: Tensor[]): boolean {
  return tf.getBackend() === NATIVE_BACKEND && ts.every((t) => t.dtype === 'float32');
}

/** Runs a lowrank fused kernel (single or multiple outputs). */
export function runFused(
  name: string,
  inputs: Record<string, Tensor>,
  attrs: Record<string, unknown> = {},
): Tensor[] {
  const out = tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as
    Tensor | Tensor[];
  return Array.isArray(out) ? out : [out];
}

type Forward = (
  x: Tensor,
  save: tf.GradSaveFunc,
) => { value: Tensor; gradFunc: (dy: Tensor, saved: Tensor[]) => Tensor };

/**
 * `tf.customGrad` for a one-input op, typed: `forward` returns the value and the gradient
 * function (which receives the tensors passed to `save`).
 * @example const op = customGrad1((x, save) => { save([x]); return { value: x.square(), gradFunc: (dy, [s]) => dy.mul(s!.mul(2)) }; });
 */
export function customGrad1(forward: Forward): (x: Tensor) => Tensor {
  const f = tf.customGrad(((...args: unknown[]) =>
    forward(args[0] as Tensor, args[1] as tf.GradSaveFunc)) as unknown as Parameters<
    typeof tf.customGrad
  >[0]);
  return (x) => f(x) as Tensor;
}
