/**
 * `svdDelta` (AdaLoRA's delta as one tape op, `LowrankSvdPrep` / `LowrankSvdPrepGrad` for the small
 * factors) against the composed tfjs ops it replaces (PEFT SVDLinear.forward: x·(A∘E)ᵀ·Bᵀ·s /
 * (ranknum + 1e-5), the scale folded into B): on native bit for bit, value and the gradients for x,
 * A, E and B; against the cpu backend's composed ops within float32 tolerance; no tensors left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../../util/rng.js';
import { maxDiff } from '../../testing/compare.js';
import { nativeAvailable, randn, runOn } from '../../testing/backend_parity.js';
import { loraDelta, svdDelta } from './lora.js';

const skip = nativeAvailable() ? false : 'native addon not built';
const rng = new Rng(17);
// native vs cpu: the same float32 products, but OpenBLAS and the cpu backend's matMul sum in
// different orders (and dE's row sums differ in order): ~1e-6 relative per value.
const CPU_TOL = { rtol: 1e-4, atol: 1e-5 };
const RANKNUM_EPS = 1e-5;
// x shape, r, out; in = last dim of x. 37 and 13: row sums with a tail after the 8-wide blocks.
const CASES: { x: number[]; r: number; out: number; ranknum: number; scale: number }[] = [
  { x: [2, 5, 16], r: 4, out: 12, ranknum: 4, scale: 8 },
  { x: [3, 37], r: 3, out: 5, ranknum: 12, scale: 12 },
  { x: [2, 3, 4, 13], r: 1, out: 7, ranknum: 12, scale: 0.5 },
  { x: [8, 24, 40], r: 12, out: 33, ranknum: 12, scale: 12 },
];

/** The composed tfjs ops of the fallback path (ops/lora.ts `loraDelta` off native). */
function composed(x: Tensor, a: Tensor, e: Tensor, b: Tensor, rn: Tensor, scale: number): Tensor {
  const inF = x.shape[x.shape.length - 1]!;
  const scaledB = tf.div(tf.mul(b, tf.scalar(scale)), tf.add(rn, tf.scalar(RANKNUM_EPS)));
  const h = tf.matMul(x.reshape([-1, inF]), tf.mul(a, e), false, true);
  return tf.matMul(h, scaledB, false, true).reshape([...x.shape.slice(0, -1), b.shape[0]!]);
}

/** The delta and the gradients of sum(delta·w) for x, A, E, B. */
function program(which: 'fused' | 'composed' | 'loraDelta', ranknum: number, scale: number) {
  return (x: Tensor, a: Tensor, e: Tensor, b: Tensor, w: Tensor): Tensor[] => {
    const rn = tf.tensor1d([ranknum]);
    const f = (xi: Tensor, ai: Tensor, ei: Tensor, bi: Tensor) =>
      which === 'fused'
        ? svdDelta(xi, ai, ei, bi, rn, scale)
        : which === 'composed'
          ? composed(xi, ai, ei, bi, rn, scale)
          : loraDelta(xi, ai, bi, scale, { e: ei, ranknum: rn });
    const grads = tf.grads((xi, ai, ei, bi) => tf.sum(tf.mul(f(xi!, ai!, ei!, bi!), w)));
    return [f(x, a, e, b), ...grads([x, a, e, b])];
  };
}

function inputs({ x, r, out }: (typeof CASES)[number]) {
  const inF = x[x.length - 1]!;
  return [
    randn(rng, x),
    randn(rng, [r, inF]),
    randn(rng, [r, 1]),
    randn(rng, [out, r]),
    randn(rng, [...x.slice(0, -1), out]),
  ];
}

const NAMES = ['delta', 'dx', 'dA', 'dE', 'dB'];

test(
  'native svdDelta equals the composed native kernels bit for bit (value and gradients)',
  { skip },
  async () => {
    for (const c of CASES) {
      const xs = inputs(c);
      const fused = await runOn('native', xs, program('fused', c.ranknum, c.scale));
      const viaLora = await runOn('native', xs, program('loraDelta', c.ranknum, c.scale)); // dispatches to svdDelta
      const parts = await runOn('native', xs, program('composed', c.ranknum, c.scale));
      fused.forEach((o, i) => {
        assert.deepEqual(o.shape, parts[i]!.shape, `${NAMES[i]} shape ${JSON.stringify(c)}`);
        assert.deepEqual(o.values, parts[i]!.values, `${NAMES[i]} ${JSON.stringify(c)}`);
        assert.deepEqual(viaLora[i]!.values, parts[i]!.values, `loraDelta ${NAMES[i]} ${JSON.stringify(c)}`);
      });
    }
  },
);

test('native svdDelta matches loraDelta composed on the cpu backend', { skip }, async () => {
  for (const c of CASES) {
    const xs = inputs(c);
    const nat = await runOn('native', xs, program('fused', c.ranknum, c.scale));
    const cpu = await runOn('cpu', xs, program('loraDelta', c.ranknum, c.scale)); // cpu: composed path
    nat.forEach((o, i) => {
      const ref = cpu[i]!.values;
      const scale = Math.max(...Array.from(ref, Math.abs), 1);
      const d = maxDiff(o.values, ref);
      assert.ok(d <= CPU_TOL.atol + CPU_TOL.rtol * scale, `${NAMES[i]} ${JSON.stringify(c)}: ${d}`);
    });
  }
});

test('svdDelta leaves no tensors behind (forward and backward)', { skip }, async () => {
  await tf.setBackend('native');
  const x = tf.randomNormal([2, 3, 8]);
  const a = tf.variable(tf.randomNormal([4, 8]));
  const e = tf.variable(tf.randomNormal([4, 1]));
  const b = tf.variable(tf.randomNormal([5, 4]));
  const rn = tf.tensor1d([4]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const { value, grads } = tf.variableGrads(() => tf.sum(svdDelta(x, a, e, b, rn, 2)) as tf.Scalar);
    assert.deepEqual(grads[e.name]!.shape, [4, 1]);
    tf.dispose([value, ...Object.values(grads)]);
  }
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, a, e, b, rn]);
});
