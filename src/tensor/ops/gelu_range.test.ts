/**
 * The native GELU kernels use vectorised approximations of erf, tanh and exp
 * (native/src/vecmath.h); this checks them over the whole useful input range — zero, tiny, large
 * and saturated inputs of both signs — against the composed tfjs ops on the cpu backend, values
 * and gradients (fused.test.ts covers random inputs and a numerical gradient check).
 */
import { test } from 'node:test';
import { tf, type Tensor } from '../tf.js';
import { assertBackendsAgree, nativeAvailable, type HostTensor } from '../../testing/backend_parity.js';
import { gelu, geluTanh } from './activations.js';

const skip = nativeAvailable() ? false : 'native addon not built';
// tfjs's cpu Erf uses the same Abramowitz & Stegun formula (in float64), so the two differ by
// float32 rounding of the polynomial and of exp/tanh (vecmath.h: ~1 ulp exp, ≤ 2e-7 tanh): a few
// ulp of O(1) intermediates, scaled by 0.5·|x| ≤ 15 at the ends of the grid.
const VALUE_TOL = { rtol: 1e-6, atol: 1e-6 };
// The gradient adds x·φ(x) (exp) and, for the tanh form, (1 − t²)·(1 + 3c·x²) factors.
const GRAD_TOL = { rtol: 1e-4, atol: 1e-5 };

const grid = Float32Array.from([
  ...Array.from({ length: 601 }, (_, i) => -30 + i * 0.1),
  0,
  1e-7,
  -1e-7,
  1e-3,
  -1e-3,
  0.5,
  -0.5,
  88,
  -88,
  200,
  -200,
]);
const input: HostTensor = { values: grid, shape: [grid.length], dtype: 'float32' };
const weights: HostTensor = {
  values: Float32Array.from(grid, (_, i) => 1 + (i % 7) / 7),
  shape: [grid.length],
  dtype: 'float32',
};

for (const [name, op] of [
  ['gelu', gelu],
  ['geluTanh', geluTanh],
] as const) {
  test(`${name} over [-30, 30] and saturated inputs: values and gradients`, { skip }, async () => {
    await assertBackendsAgree(`${name} value`, [input], (x: Tensor) => op(x), VALUE_TOL);
    const grad = (x: Tensor, w: Tensor) => tf.grad((a: Tensor) => tf.sum(tf.mul(op(a), w)))(x);
    await assertBackendsAgree(`${name} grad`, [input, weights], grad, GRAD_TOL);
  });
}
