/**
 * `dropoutAddLayerNorm` (one native kernel each way) against the separate ops it replaces: on
 * native, bit for bit against the native dropout + Add + LowrankNorm kernels (value and every
 * gradient); on cpu, the composed tfjs ops (tf.dropout's own mask) within float32 tolerance and
 * with the same dropped elements; no dropout in eval; no tensors left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../../util/rng.js';
import { maxDiff } from '../../testing/compare.js';
import { nativeAvailable, randn, runOn } from '../../testing/backend_parity.js';
import { dropoutAddLayerNorm, type DropoutDraw } from './add_norm.js';
import { dropout } from './dropout.js';
import { layerNorm } from './norm.js';

const skip = nativeAvailable() ? false : 'native addon not built';
const rng = new Rng(5);
// native vs cpu: the same float32 ops, but the cpu kernels compute moments with tf.moments' own
// summation order and in JS doubles: ~1e-6 relative per value, a little more through the backward.
const CPU_TOL = { rtol: 1e-4, atol: 1e-5 };
const EPS = 1e-12; // BERT's layer_norm_eps
const CASES: { shape: number[]; drop: DropoutDraw | null }[] = [
  { shape: [2, 5, 16], drop: { rate: 0.1, seed: 7 } },
  { shape: [3, 33], drop: { rate: 0.5, seed: 4294967295 } },
  { shape: [4, 8, 24], drop: null },
  { shape: [1, 7], drop: { rate: 0.3, seed: 0 } },
  { shape: [3, 37, 97], drop: { rate: 0.1, seed: 12345 } }, // 10767 elements: two mask substreams
];

/** y and the gradients of sum(y·w) for h, residual, γ, β, by the fused op or by the composed ops. */
function program(fused: boolean, drop: DropoutDraw | null) {
  return (h: Tensor, r: Tensor, g: Tensor, b: Tensor, w: Tensor): Tensor[] => {
    const f = (hi: Tensor, ri: Tensor, gi: Tensor, bi: Tensor) => {
      if (fused) return dropoutAddLayerNorm(hi, ri, gi, bi, EPS, drop);
      const d = drop
        ? tf.getBackend() === 'cpu'
          ? tf.dropout(hi, drop.rate, undefined, drop.seed)
          : dropout(hi, drop.rate, drop.seed)
        : hi;
      return layerNorm(tf.add(d, ri), gi, bi, EPS);
    };
    const grads = tf.grads((hi, ri, gi, bi) => tf.sum(tf.mul(f(hi!, ri!, gi!, bi!), w)));
    return [f(h, r, g, b), ...grads([h, r, g, b])];
  };
}

function inputs(shape: number[]) {
  const c = shape[shape.length - 1]!;
  return [randn(rng, shape), randn(rng, shape), randn(rng, [c]), randn(rng, [c]), randn(rng, shape)];
}

const NAMES = ['y', 'dh', 'dresidual', 'dgamma', 'dbeta'];

test(
  'native fused dropout + add + layer norm equals the separate native kernels bit for bit',
  { skip },
  async () => {
    for (const { shape, drop } of CASES) {
      const xs = inputs(shape);
      const fused = await runOn('native', xs, program(true, drop));
      const parts = await runOn('native', xs, program(false, drop));
      fused.forEach((o, i) =>
        assert.deepEqual(
          o.values,
          parts[i]!.values,
          `${NAMES[i]} ${JSON.stringify(shape)} ${JSON.stringify(drop)}`,
        ),
      );
    }
  },
);

test('native fused dropout + add + layer norm matches the composed tfjs ops on cpu', { skip }, async () => {
  for (const { shape, drop } of CASES) {
    const xs = inputs(shape);
    const nat = await runOn('native', xs, program(true, drop));
    const cpu = await runOn('cpu', xs, program(true, drop)); // cpu: the op's composed path
    nat.forEach((o, i) => {
      const ref = cpu[i]!.values;
      const scale = Math.max(...Array.from(ref, Math.abs), 1);
      const d = maxDiff(o.values, ref);
      assert.ok(d <= CPU_TOL.atol + CPU_TOL.rtol * scale, `${NAMES[i]} ${JSON.stringify(shape)}: ${d}`);
    });
    // the same elements dropped: dh is exactly 0 where the mask dropped h, on both backends
    const zeros = (v: ArrayLike<number>) => Array.from(v, (x) => x === 0);
    assert.deepEqual(zeros(nat[1]!.values), zeros(cpu[1]!.values), `mask ${JSON.stringify(shape)}`);
  }
});

test('dropoutAddLayerNorm leaves no tensors and falls back for a broadcast residual', { skip }, async () => {
  await tf.setBackend('native');
  const h = tf.randomNormal([3, 4, 8]);
  const r = tf.randomNormal([4, 8]); // broadcasts: not the kernel's case, the composed ops run
  const g = tf.ones([8]);
  const b = tf.zeros([8]);
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    const y = dropoutAddLayerNorm(h, r, g, b, EPS, { rate: 0.2, seed: 3 });
    const gr = tf.grad((hi: Tensor) =>
      tf.sum(dropoutAddLayerNorm(hi, tf.broadcastTo(r, hi.shape), g, b, EPS, { rate: 0.2, seed: 3 })),
    )(h);
    return [y.shape, gr.shape];
  });
  assert.deepEqual(out, [
    [3, 4, 8],
    [3, 4, 8],
  ]);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([h, r, g, b]);
});
