import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../tensor/tf.js';
import { assertNoLeak } from '../../tensor/memory.js';
import { orthRegularizer } from './orth_reg.js';

/** f32 sums/sqrt vs the exact real value: a few f32 ulps at magnitude ~2. */
const F32_TOL = 1e-6;

test('orthogonal regulariser golden: A=[[1,0,0],[0,2,0]], B=0 → (3+√2)/2 (PEFT adalora/model.py forward)', async () => {
  const a = tf.variable(
    tf.tensor2d([
      [1, 0, 0],
      [0, 2, 0],
    ]),
  );
  const b = tf.variable(tf.zeros([3, 2]));
  const params: [string, Tensor][] = [
    ['m.q.lora_A.default', a],
    ['m.q.lora_B.default', b],
    ['m.q.lora_A.other', tf.variable(tf.ones([2, 3]))], // other adapter: ignored
    ['m.q.base_layer.weight', tf.variable(tf.ones([3, 3]))],
  ];
  const r = await assertNoLeak(() => orthRegularizer(params, 'default'), 1);
  assert.ok(Math.abs(r.dataSync()[0]! - (3 + Math.SQRT2) / 2) < F32_TOL, String(r.dataSync()[0]));
  r.dispose();
  const none = orthRegularizer([], 'default');
  assert.equal(none.dataSync()[0], 0);
  none.dispose();
  params.forEach(([, p]) => p.dispose());
});

test('orthogonal regulariser is differentiable, with zero (not NaN) gradient at an exact orthonormal matrix', () => {
  const a = tf.variable(
    tf.tensor2d([
      [1, 0, 0],
      [0, 1, 0],
    ]),
  );
  const b = tf.variable(
    tf.tensor2d([
      [2, 0],
      [0, 0],
      [0, 0],
    ]),
  );
  const { value, grads } = tf.variableGrads(
    () =>
      orthRegularizer([
        ['x.lora_A.default', a],
        ['x.lora_B.default', b],
      ]) as tf.Scalar,
    [a, b],
  );
  // Bᵀ B − I = diag(3, −1), norm √10; d/dB = B·(2(BᵀB − I))/‖·‖ /N with N = 2.
  assert.ok(Math.abs(value.dataSync()[0]! - Math.sqrt(10) / 2) < F32_TOL);
  assert.ok(Array.from(grads[a.name]!.dataSync()).every((v) => v === 0));
  const gb = grads[b.name]!.dataSync();
  assert.ok(Math.abs(gb[0]! - (2 * 2 * 3) / Math.sqrt(10) / 2) < F32_TOL * 10, String(gb[0]));
  value.dispose();
  Object.values(grads).forEach((g) => g.dispose());
  a.dispose();
  b.dispose();
});
