/**
 * `adapterLinear` (the adapted linear layer as one op, native/src/adapter.cc) against the composed
 * tfjs path it replaces (`linear(x) + loraDelta(dropout(x))`): value and the gradients for x, A, B
 * (and E) on native and against the cpu backend's composed ops; the dropout mask bit for bit equal
 * to tf.dropout's; no tensors left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../../util/rng.js';
import { maxDiff } from '../../testing/compare.js';
import { nativeAvailable, randn, runOn, type HostTensor } from '../../testing/backend_parity.js';
import {
  adapterLinear,
  adapterLinearComposed,
  adapterLinearFuses,
  type LowRankFactors,
} from './adapter_linear.js';
import type { DropoutDraw } from './add_norm.js';

const skip = nativeAvailable() ? false : 'native addon not built';
const rng = new Rng(23);
// The adapter's rank-r products are the addon's own 8-lane sums, OpenBLAS and the cpu backend's
// matMul sum in other orders: ~1e-6 relative per value at these sizes (k ≤ 64), so 1e-4 relative
// with an absolute floor for values near 0 (sums of O(1) terms that cancel).
const TOL = { rtol: 1e-4, atol: 2e-5 };

interface Case {
  x: number[];
  r: number;
  out: number;
  bias: boolean;
  inOut: boolean;
  svd: boolean;
  rate: number;
}
// in = last dim of x. 37 / 13 / 33: tails after the 8-wide blocks; r = 1, 5, 12, 17: the 8-, 4- and
// 1-row blocks; 24·40·… crosses the Alea substream chunk (4096 elements).
const CASES: Case[] = [
  { x: [2, 5, 16], r: 4, out: 12, bias: true, inOut: false, svd: false, rate: 0.1 },
  { x: [3, 37], r: 5, out: 33, bias: false, inOut: false, svd: false, rate: 0 },
  { x: [2, 3, 4, 13], r: 1, out: 7, bias: true, inOut: true, svd: false, rate: 0.5 },
  { x: [8, 24, 40], r: 12, out: 33, bias: true, inOut: false, svd: true, rate: 0.1 },
  { x: [4, 64, 48], r: 17, out: 40, bias: false, inOut: true, svd: true, rate: 0 },
  { x: [2, 128, 64], r: 8, out: 72, bias: true, inOut: false, svd: false, rate: 0.25 },
];
const SEED = 1234;

function inputs(c: Case): HostTensor[] {
  const inF = c.x[c.x.length - 1]!;
  const lead = c.x.slice(0, -1);
  return [
    randn(rng, c.x),
    randn(rng, c.inOut ? [inF, c.out] : [c.out, inF]),
    randn(rng, [c.out]),
    randn(rng, [c.r, inF]),
    randn(rng, [c.out, c.r]),
    randn(rng, [c.r, 1]),
    randn(rng, [...lead, c.out]), // the upstream gradient (weights of the test loss)
  ];
}

/** The layer output and the gradients of sum(y·g) for x, A, B (and E). */
function program(c: Case, fused: boolean) {
  return (x: Tensor, w: Tensor, bias: Tensor, a: Tensor, b: Tensor, e: Tensor, g: Tensor): Tensor[] => {
    const base = { weight: w, bias: c.bias ? bias : null, weightIsInOut: c.inOut };
    const drop: DropoutDraw | null = c.rate > 0 ? { rate: c.rate, seed: SEED } : null;
    const ranknum = tf.tensor1d([c.r]); // outside tf.grads' scope: the backward reads it
    const run = (xi: Tensor, ai: Tensor, bi: Tensor, ei?: Tensor) => {
      const f: LowRankFactors = { a: ai, b: bi, scale: c.svd ? 12 : 2 };
      if (c.svd) Object.assign(f, { e: ei!, ranknum });
      if (fused) assert.equal(adapterLinearFuses(xi, base, f), tf.getBackend() === 'native');
      return (fused ? adapterLinear : adapterLinearComposed)(xi, base, f, drop);
    };
    if (c.svd) {
      const grads = tf.grads((xi, ai, bi, ei) => tf.sum(tf.mul(run(xi!, ai!, bi!, ei!), g)));
      return [run(x, a, b, e), ...grads([x, a, b, e])];
    }
    const grads = tf.grads((xi, ai, bi) => tf.sum(tf.mul(run(xi!, ai!, bi!), g)));
    return [run(x, a, b), ...grads([x, a, b])];
  };
}

const NAMES = ['y', 'dx', 'dA', 'dB', 'dE'];

function assertClose(what: string, got: { values: ArrayLike<number>; shape: number[] }[], want: typeof got) {
  assert.equal(got.length, want.length, `${what}: outputs`);
  got.forEach((o, i) => {
    assert.deepEqual(o.shape, want[i]!.shape, `${what} ${NAMES[i]} shape`);
    let scale = 0;
    for (let j = 0; j < want[i]!.values.length; j++) scale = Math.max(scale, Math.abs(want[i]!.values[j]!));
    const d = maxDiff(o.values, want[i]!.values);
    assert.ok(d <= TOL.atol + TOL.rtol * scale, `${what} ${NAMES[i]}: max |Δ| ${d} (max |value| ${scale})`);
  });
}

test(
  'native adapterLinear matches the composed ops on native and on cpu (value, dx, dA, dB, dE)',
  { skip },
  async () => {
    for (const c of CASES) {
      const xs = inputs(c);
      const fused = await runOn('native', xs, program(c, true));
      const composedNative = await runOn('native', xs, program(c, false));
      const composedCpu = await runOn('cpu', xs, program(c, false));
      const cpuViaEntry = await runOn('cpu', xs, program(c, true)); // off native: the composed path itself
      assertClose(`native fused vs native composed ${JSON.stringify(c)}`, fused, composedNative);
      assertClose(`native fused vs cpu composed ${JSON.stringify(c)}`, fused, composedCpu);
      cpuViaEntry.forEach((o, i) =>
        assert.deepEqual(o.values, composedCpu[i]!.values, `cpu entry ${NAMES[i]}`),
      );
    }
  },
);

test(
  "the fused dropout mask is tf.dropout's bit for bit (identity factors, zero base)",
  { skip },
  async () => {
    // in = r = 16, A = B = I, W = 0, scale 1: y = drop(x) exactly (each h is one nonzero product).
    const rows = 1024; // 16384 elements: four Alea substreams
    const r = 16;
    const x = randn(rng, [rows, r]);
    for (const rate of [0.1, 0.5]) {
      const [fusedY] = await runOn('native', [x], (xi) => {
        const eye = tf.eye(r);
        const base = { weight: tf.zeros([r, r]), bias: null, weightIsInOut: false };
        return adapterLinear(xi, base, { a: eye, b: eye, scale: 1 }, { rate, seed: SEED });
      });
      const [want] = await runOn('cpu', [x], (xi) => tf.dropout(xi, rate, undefined, SEED));
      // +0: the fused y is 0 + (0·1 + …) where tf.dropout gives x·0 = −0 for a negative x
      const plusZero = (v: ArrayLike<number>) => Float32Array.from(v, (e) => e + 0);
      assert.deepEqual(plusZero(fusedY!.values), plusZero(want!.values), `rate ${rate}`);
    }
  },
);

test('adapterLinear on native leaves no tensors behind (forward and gradients)', { skip }, async () => {
  await tf.setBackend('native');
  const c = CASES[3]!;
  const xs = inputs(c).map((h) => tf.tensor(h.values, h.shape, h.dtype));
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const outs = tf.tidy(() =>
      program(c, true)(...(xs as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor])),
    );
    tf.dispose(outs);
  }
  assert.equal(tf.memory().numTensors, before);
  tf.dispose(xs);
});
