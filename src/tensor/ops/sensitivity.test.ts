/**
 * AdaLoRA's fused sensitivity EMA on native against the composed tfjs ops on cpu: bit-identical
 * (same float32 products and sums, no FMA), with and without previous state, odd and empty shapes;
 * nothing leaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../../util/rng.js';
import { nativeAvailable, randn, runOn } from '../../testing/backend_parity.js';
import { sensitivityEma, sensitivityEmaAll } from './sensitivity.js';

const skip = nativeAvailable() ? false : 'native addon not built';
const rng = new Rng(5);

test('sensitivityEma: native equals the composed ops on cpu bit for bit', { skip }, async () => {
  for (const shape of [[12, 384], [7, 1], [3, 0], [1]]) {
    const ins = [randn(rng, shape), randn(rng, shape), randn(rng, shape), randn(rng, shape)];
    for (const withState of [true, false]) {
      const program = (p: Tensor, g: Tensor, i0: Tensor, u0: Tensor) =>
        sensitivityEma(p, g, withState ? tf.abs(i0) : null, withState ? tf.abs(u0) : null, 0.85, 0.95);
      const nat = await runOn('native', ins, program);
      const cpu = await runOn('cpu', ins, program);
      nat.forEach((o, i) =>
        assert.deepEqual(o.values, cpu[i]!.values, `${JSON.stringify(shape)} state ${withState} output ${i}`),
      );
    }
  }
});

test('sensitivityEma: values of a hand-computed case; no tensors left', { skip }, async () => {
  await tf.setBackend('native');
  const before = tf.memory().numTensors;
  const [p, g, i0, u0] = [[2], [-3], [1], [0.5]].map((v) => tf.tensor1d(v));
  const out = sensitivityEma(p!, g!, i0!, u0!, 0.5, 0.25);
  // ipt = 6; avgI = 0.5 + 3 = 3.5; avgU = 0.125 + |6 − 3.5|·0.75 = 2
  assert.deepEqual(
    out.map((t) => t.dataSync()[0]),
    [6, 3.5, 2],
  );
  tf.dispose([...out, p!, g!, i0!, u0!]);
  assert.equal(tf.memory().numTensors, before);
});

test(
  'sensitivityEmaAll: one native call equals one sensitivityEma per parameter bit for bit',
  { skip },
  async () => {
    const shapes = [[12, 384], [7, 1], [3, 0], [1]];
    const ins = shapes.flatMap((s) => [randn(rng, s), randn(rng, s), randn(rng, s), randn(rng, s)]);
    const items = (xs: Tensor[]) =>
      shapes.map((_, i) => ({
        p: xs[4 * i]!,
        g: xs[4 * i + 1]!,
        // the first parameter starts from zeros, the others carry state
        i0: i === 0 ? null : tf.abs(xs[4 * i + 2]!),
        u0: i === 0 ? null : tf.abs(xs[4 * i + 3]!),
      }));
    const all = (...xs: Tensor[]) => sensitivityEmaAll(items(xs), 0.85, 0.95).flat();
    const each = (...xs: Tensor[]) =>
      items(xs).flatMap(({ p, g, i0, u0 }) => sensitivityEma(p, g, i0, u0, 0.85, 0.95));
    const nat = await runOn('native', ins, all);
    const one = await runOn('native', ins, each);
    const cpu = await runOn('cpu', ins, all);
    nat.forEach((o, i) => {
      assert.deepEqual(o.values, one[i]!.values, `output ${i} vs per-parameter kernel`);
      assert.deepEqual(o.values, cpu[i]!.values, `output ${i} vs composed ops on cpu`);
    });
  },
);
