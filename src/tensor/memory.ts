import { tf } from './tf.js';
import { internal } from '../errors.js';

/**
 * Runs `fn` and throws `internal:` if it leaves more live tensors than it found (DESIGN.md §4).
 * `allowed` is the number of tensors `fn` is documented to hand back to the caller.
 *
 * @example
 * await assertNoLeak(() => trainer.step(batch)); // a training step owns all its intermediates
 */
export async function assertNoLeak<T>(fn: () => T | Promise<T>, allowed = 0, what = 'operation'): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const after = tf.memory().numTensors;
  if (after - before > allowed) {
    internal(`${what} leaked ${after - before - allowed} tensor(s) (${before} before, ${after} after)`);
  }
  return result;
}

/** Disposes every tensor in a (possibly nested) record/array; ignores non-tensors. */
export function disposeAll(value: unknown): void {
  if (value instanceof tf.Tensor) value.dispose();
  else if (Array.isArray(value)) value.forEach(disposeAll);
  else if (value instanceof Map) value.forEach((v) => disposeAll(v));
  else if (value !== null && typeof value === 'object') Object.values(value).forEach(disposeAll);
}
