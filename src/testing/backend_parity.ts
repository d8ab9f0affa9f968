/**
 * Test helpers for backend parity: run the same tensor program on `native` and on tfjs's `cpu`
 * backend from identical inputs and compare every output element.
 */
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tensor/tf.js';
import { Rng } from '../util/rng.js';
import { loadAddon } from '../tensor/native/addon.js';

/** Inputs for a parity case: plain arrays, so each backend builds its own tensors. */
export interface HostTensor {
  values: Float32Array | Int32Array | Uint8Array;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool';
}

export function randn(rng: Rng, shape: number[]): HostTensor {
  return { values: rng.normalArray(shape.reduce((a, b) => a * b, 1)), shape, dtype: 'float32' };
}

export function randint(rng: Rng, shape: number[], n: number): HostTensor {
  const values = Int32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.int(n));
  return { values, shape, dtype: 'int32' };
}

export function toTensor(h: HostTensor): Tensor {
  return tf.tensor(h.values, h.shape, h.dtype);
}

/** Runs `program` on `backend` and returns each output's shape, dtype and values. */
export async function runOn(
  backend: string,
  inputs: HostTensor[],
  program: (...xs: Tensor[]) => Tensor | Tensor[],
) {
  await tf.setBackend(backend);
  const xs = inputs.map(toTensor);
  const out = tf.tidy(() => program(...xs));
  const list = Array.isArray(out) ? out : [out];
  const result = await Promise.all(
    list.map(async (t) => ({ shape: t.shape, dtype: t.dtype, values: await t.data() })),
  );
  tf.dispose([...xs, ...list]);
  return result;
}

/**
 * Asserts `program` gives the same outputs on native and cpu: equal shapes and dtypes, and
 * |a − b| ≤ atol + rtol·|b| elementwise (NaN must match NaN). `cpuProgram` replaces the program on
 * cpu where that backend has a known bug (it must compute the same function another way).
 */
export async function assertBackendsAgree(
  what: string,
  inputs: HostTensor[],
  program: (...xs: Tensor[]) => Tensor | Tensor[],
  tol: { rtol: number; atol: number },
  cpuProgram: (...xs: Tensor[]) => Tensor | Tensor[] = program,
): Promise<void> {
  const nat = await runOn('native', inputs, program);
  const cpu = await runOn('cpu', inputs, cpuProgram);
  assert.equal(nat.length, cpu.length, `${what}: output count`);
  nat.forEach((n, i) => {
    const c = cpu[i]!;
    assert.deepEqual(n.shape, c.shape, `${what}: shape of output ${i}`);
    assert.equal(n.dtype, c.dtype, `${what}: dtype of output ${i}`);
    for (let j = 0; j < c.values.length; j++) {
      const a = Number(n.values[j]);
      const b = Number(c.values[j]);
      if (Number.isNaN(b) && Number.isNaN(a)) continue;
      if (a === b) continue;
      const err = Math.abs(a - b);
      assert.ok(
        err <= tol.atol + tol.rtol * Math.abs(b),
        `${what}: output ${i}[${j}] native ${a} vs cpu ${b} (|Δ| ${err})`,
      );
    }
  });
}

/** True when the native backend is registered (addon built). */
export const nativeAvailable = (): boolean => tf.findBackend('native') != null;

/**
 * Why the native decoder's row tests cannot run here (`false`: they can): no native backend, or an
 * addon built before `Decoder.copyRow`.
 *
 * @example test('native rows', { skip: nativeRowsSkip() }, async () => {});
 */
export function nativeRowsSkip(): string | false {
  if (!nativeAvailable()) return 'native addon not built';
  const decoder = (loadAddon() as { Decoder?: { prototype: object } } | null)?.Decoder?.prototype;
  return decoder && 'copyRow' in decoder
    ? false
    : 'native addon built before Decoder.copyRow (rebuild: node scripts/install-native.mjs)';
}
