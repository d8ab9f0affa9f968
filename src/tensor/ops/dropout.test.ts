/**
 * Native dropout against tfjs's own tf.dropout on the cpu backend: the same seed must give the
 * same mask and values bit for bit (training runs are reproducible across backends, see
 * tests/native_training.test.ts), gradients equal dy·mask, and nothing leaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../../util/rng.js';
import { nativeAvailable, randn, runOn } from '../../testing/backend_parity.js';
import { aleaJump, aleaState, aleaStreams, dropout, type AleaState } from './dropout.js';

const skip = nativeAvailable() ? false : 'native addon not built';
const rng = new Rng(11);
const SEEDS = [
  { seed: 0, rate: 0.1 },
  { seed: 4294967295, rate: 0.5 },
  { seed: 123456789, rate: 0.9 },
  { seed: 0.25, rate: 0.3 },
];

test('aleaState reproduces the stream of tf.randomUniform (seedrandom Alea)', () => {
  for (const seed of ['0', '42', '4294967295', 'abc', '0.5']) {
    let { s0, s1, s2, c } = aleaState(seed);
    const ref = tf.randomUniform([64], 0, 1, 'float32', seed);
    const want = ref.dataSync();
    ref.dispose();
    for (let i = 0; i < want.length; i++) {
      const t = 2091639 * s0 + c; // exact integer arithmetic: < 2^53
      [s0, s1, c, s2] = [s1, s2, Math.floor(t / 2 ** 32), t % 2 ** 32];
      assert.equal(Math.fround(s2 / 2 ** 32), want[i], `seed ${seed} draw ${i}`);
    }
  }
});

test('aleaJump and aleaStreams land on the states of the single stream (multiply-with-carry jump)', () => {
  const step = (st: AleaState): AleaState => {
    const t = 2091639 * st.s0 + st.c;
    return { s0: st.s1, s1: st.s2, s2: t % 2 ** 32, c: Math.floor(t / 2 ** 32) };
  };
  for (const seed of ['0', '4294967295', '123']) {
    let st = aleaState(seed);
    const start = st;
    const want = new Map<number, AleaState>();
    for (let k = 1; k <= 20000; k++) {
      st = step(st);
      if ([1, 2, 3, 7, 4096, 12289, 20000].includes(k)) want.set(k, st);
    }
    for (const [k, s] of want) assert.deepEqual(aleaJump(start, k), s, `seed ${seed} k ${k}`);
    const { states, chunk } = aleaStreams(seed, 20000);
    assert.ok(states.length / 4 > 1, 'several substreams');
    for (let j = 0; j < states.length / 4; j++)
      assert.deepEqual(
        states.slice(4 * j, 4 * j + 4),
        Object.values(aleaJump(start, j * chunk)),
        `stream ${j}`,
      );
  }
});

test('native dropout equals tf.dropout on cpu bit for bit, value and gradient', { skip }, async () => {
  for (const { seed, rate } of SEEDS) {
    // the last two are split into substreams (aleaStreams: chunks of ≥ 4096, uneven last chunk)
    for (const shape of [[7, 33], [2, 3, 5, 4], [1], [0, 3], [1000], [97, 1031], [8193]]) {
      const x = randn(rng, shape);
      const w = randn(rng, shape);
      const program = (xi: Tensor, wi: Tensor) => {
        const f = (a: Tensor) => tf.sum(tf.mul(dropout(a, rate, seed), wi));
        return [dropout(xi, rate, seed), tf.grad(f)(xi)];
      };
      const reference = (xi: Tensor, wi: Tensor) => {
        const f = (a: Tensor) => tf.sum(tf.mul(tf.dropout(a, rate, undefined, seed), wi));
        return [tf.dropout(xi, rate, undefined, seed), tf.grad(f)(xi)];
      };
      const nat = await runOn('native', [x, w], program);
      const cpu = await runOn('cpu', [x, w], reference);
      const what = `seed ${seed} rate ${rate} shape ${JSON.stringify(shape)}`;
      assert.deepEqual(nat[0]!.values, cpu[0]!.values, `${what}: value`);
      assert.deepEqual(nat[1]!.values, cpu[1]!.values, `${what}: gradient`);
    }
  }
});

test('native dropout keeps about 1 − rate of the elements and leaves no tensors', { skip }, async () => {
  await tf.setBackend('native');
  const x = tf.ones([200, 50]);
  const before = tf.memory().numTensors;
  const kept = tf.tidy(() => {
    const g = tf.grad((a: Tensor) => tf.sum(dropout(a, 0.25, 7)))(x);
    return tf.sum(tf.notEqual(g, 0)).dataSync()[0]!;
  });
  assert.equal(tf.memory().numTensors, before);
  // 10000 Bernoulli(0.75) draws: std 43, so ±300 is 7 sigma.
  assert.ok(Math.abs(kept - 7500) < 300, `kept ${kept}`);
  x.dispose();
});
