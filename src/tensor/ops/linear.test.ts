import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../tf.js';
import { linear } from './linear.js';

/** Same arithmetic, different kernel grouping (fused bias add vs matMul + add). */
const FUSION_ATOL = 1e-6;

function matmulKernels(kernels: { name: string }[]): number {
  return kernels.filter((k) => k.name === 'BatchMatMul' || k.name === '_FusedMatMul').length;
}

for (const withBias of [true, false]) {
  test(`linear: a frozen weight gives the same values and input gradient, without computing dW (${withBias ? 'with' : 'no'} bias)`, async () => {
    const x = tf.variable(tf.randomNormal([6, 5], 0, 1, 'float32', 1));
    const run = async (trainableWeight: boolean) => {
      const w = tf.variable(tf.randomNormal([4, 5], 0, 1, 'float32', 2), trainableWeight);
      const b = tf.variable(tf.randomNormal([4], 0, 1, 'float32', 3), false);
      let out: { y: number[]; dx: number[] } | undefined;
      const prof = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(
          () => tf.sum(tf.square(linear(x, w, withBias ? b : null))),
          [x],
        );
        out = { y: Array.from(value.dataSync()), dx: Array.from(grads[x.name]!.dataSync()) };
        tf.dispose([value, grads]);
      });
      w.dispose();
      b.dispose();
      const adds = prof.kernels.filter((k) => k.name === 'Add').length;
      return { ...out!, matmuls: matmulKernels(prof.kernels), adds };
    };
    const frozen = await run(false);
    const trainable = await run(true);
    assert.ok(Math.abs(frozen.y[0]! - trainable.y[0]!) <= FUSION_ATOL * Math.abs(trainable.y[0]!));
    frozen.dx.forEach((v, i) => assert.ok(Math.abs(v - trainable.dx[i]!) <= FUSION_ATOL * 10, `dx[${i}]`));
    assert.equal(frozen.matmuls, 2, 'forward + dX only');
    assert.equal(trainable.matmuls, 3, 'forward + dX + dW (fused gradient)');
    assert.equal(frozen.adds, 0, 'a bias is added inside the fused matmul, not by a separate Add');
    x.dispose();
  });
}

test('linear: a trainable bias on a frozen weight gets its gradient; dW is still skipped', async () => {
  const x = tf.randomNormal([6, 5], 0, 1, 'float32', 4);
  const w = tf.variable(tf.randomNormal([4, 5], 0, 1, 'float32', 5), false);
  const b = tf.variable(tf.randomNormal([4], 0, 1, 'float32', 6), true);
  let db: number[] = [];
  const prof = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => tf.sum(linear(x, w, b)), [b]);
    db = Array.from(grads[b.name]!.dataSync());
    tf.dispose([value, grads]);
  });
  // d/db Σ (x·Wᵀ + b) = number of rows, for every output
  assert.deepEqual(db, [6, 6, 6, 6]);
  assert.equal(matmulKernels(prof.kernels), 1, 'forward only: neither dW nor dX is needed');
  tf.dispose([x, w, b]);
});
