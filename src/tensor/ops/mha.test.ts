/**
 * Fused multi-head attention (`multiHeadAttention`): the native forward/backward kernels against the
 * composed split → attention → merge path on the cpu backend, values and gradients for padding,
 * causal and Tq ≠ Tk masks; same bits run to run; nothing leaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../../util/rng.js';
import { assertNoLeak } from '../memory.js';
import { nativeAvailable, randn, runOn, type HostTensor } from '../../testing/backend_parity.js';
import { MASK_VALUE, multiHeadAttention } from './attention.js';

const skip = nativeAvailable() ? false : 'native addon not built';
// BLAS sums the d- and Tk-long products in another order than the cpu kernels' loops, and the
// native softmax uses the ~1-ulp vexp (vecmath.h): float32 differences of a few 1e-7 relative that
// the backward's products grow to ~1e-6 on O(1) values.
const MHA_TOL = { rtol: 1e-4, atol: 2e-6 };

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    assert.ok(
      err <= MHA_TOL.atol + MHA_TOL.rtol * Math.abs(want[i]!),
      `${what}[${i}]: ${got[i]} vs ${want[i]}`,
    );
  }
}

/** Output and the gradients of Σ out ⊙ w with respect to q, k, v. */
function program(heads: number, maskKind: 'none' | 'padding' | 'causal' | 'full') {
  return (q: Tensor, k: Tensor, v: Tensor, w: Tensor, pad: Tensor) => {
    const [b, tq] = q.shape as number[];
    const tk = k.shape[1]!;
    const mask =
      maskKind === 'padding'
        ? pad.reshape([b!, 1, 1, tk])
        : maskKind === 'full'
          ? pad.reshape([b!, 1, 1, tk]).tile([1, heads, tq!, 1])
          : null;
    const opts = { mask, causal: maskKind === 'causal' };
    const f = (x: Tensor, y: Tensor, z: Tensor) =>
      tf.sum(tf.mul(multiHeadAttention(x, y, z, heads, opts), w));
    const out = multiHeadAttention(q, k, v, heads, opts);
    const grads = tf.grads(f)([q, k, v]);
    return [out, ...grads];
  };
}

function inputs(rng: Rng, b: number, tq: number, tk: number, width: number): HostTensor[] {
  const pad = new Float32Array(b * tk);
  for (let i = 0; i < b; i++) for (let j = tk - i; j < tk; j++) pad[i * tk + j] = MASK_VALUE; // row i: last i keys masked
  return [
    randn(rng, [b, tq, width]),
    randn(rng, [b, tk, width]),
    randn(rng, [b, tk, width]),
    randn(rng, [b, tq, width]),
    { values: pad, shape: [b, tk], dtype: 'float32' },
  ];
}

test(
  'multiHeadAttention: native kernels equal the composed path on cpu (values, dq, dk, dv)',
  { skip },
  async () => {
    const rng = new Rng(31);
    const cases: [number, number, number, number, number, 'none' | 'padding' | 'causal' | 'full'][] = [
      [2, 5, 5, 3, 4, 'none'],
      [3, 7, 7, 2, 8, 'padding'],
      [2, 6, 6, 3, 4, 'causal'],
      [2, 3, 5, 2, 4, 'causal'], // Tq < Tk: the causal mask aligned to the end (KV-cached decoding)
      [2, 4, 4, 2, 3, 'full'], // a mask with every dimension spelled out
      [1, 1, 1, 1, 1, 'none'],
    ];
    for (const [b, tq, tk, heads, d, mask] of cases) {
      const ins = inputs(rng, b, tq, tk, heads * d);
      const nat = await runOn('native', ins, program(heads, mask));
      const cpu = await runOn('cpu', ins, program(heads, mask));
      const what = `B${b} Tq${tq} Tk${tk} h${heads} d${d} ${mask}`;
      nat.forEach((o, i) => {
        assert.deepEqual(o.shape, cpu[i]!.shape, `${what} output ${i} shape`);
        close(`${what} output ${i}`, o.values as Float32Array, cpu[i]!.values as Float32Array);
      });
      const again = await runOn('native', ins, program(heads, mask));
      again.forEach((o, i) =>
        assert.deepEqual(o.values, nat[i]!.values, `${what}: same bits run to run (${i})`),
      );
    }
  },
);

test('multiHeadAttention: one kernel forward and one backward on native; no leaks', { skip }, async () => {
  await tf.setBackend('native');
  const rng = new Rng(32);
  const [q, k, v] = inputs(rng, 2, 4, 4, 6)
    .slice(0, 3)
    .map((h) => tf.tensor(h.values, h.shape));
  const prof = await tf.profile(() => {
    const g = tf.grads((x: Tensor, y: Tensor, z: Tensor) => tf.sum(multiHeadAttention(x, y, z, 2)))([
      q!,
      k!,
      v!,
    ]);
    tf.dispose(g);
  });
  const names = prof.kernels.map((x) => x.name);
  assert.equal(names.filter((n) => n === 'LowrankAttention').length, 1);
  assert.equal(names.filter((n) => n === 'LowrankAttentionGrad').length, 1);
  assert.equal(names.filter((n) => n === 'Transpose' || n === 'BatchMatMul').length, 0, names.join(','));
  await assertNoLeak(() => {
    const { value, grads } = tf.valueAndGrads((x: Tensor, y: Tensor, z: Tensor) =>
      tf.sum(multiHeadAttention(x, y, z, 3)),
    )([q!, k!, v!]);
    tf.dispose([value, ...grads]);
  });
  tf.dispose([q!, k!, v!]);
});
