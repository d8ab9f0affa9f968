/**
 * AdaLoRA's orthogonal penalty: the native kernel (all matrices in one call, gradient computed in
 * the forward) against the composed tfjs ops on cpu and against PyTorch 1.13
 * (tests/fixtures/orth_reg.py); zero-norm and empty matrices; same bits run to run; no leaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../../util/rng.js';
import { assertNoLeak } from '../memory.js';
import { nativeAvailable, randn, runOn, type HostTensor } from '../../testing/backend_parity.js';
import { orthPenalty, orthPenaltyComposed, type OrthKind } from './orth_reg.js';

const skip = nativeAvailable() ? false : 'native addon not built';
// Both sides sum r·r·n f32 products in different orders (BLAS blocks vs the cpu kernel's loop) and
// then a norm over r² terms: a few ulps relative to |C| ~ 1-10, so 1e-5 relative plus 1e-6 absolute
// for gradient entries near zero.
const PARITY_TOL = { rtol: 1e-5, atol: 1e-6 };
// torch's float32 GEMM/norm orders differ again; the same bound.
const TORCH_TOL = PARITY_TOL;

interface Golden {
  cases: { rows: number; cols: number; kind: OrthKind; seed: number }[];
  value: number;
  grads: number[][];
}
const golden = JSON.parse(
  readFileSync(new URL('../../../tests/fixtures/orth_reg.json', import.meta.url), 'utf8'),
) as Golden;

function goldenMatrix(rows: number, cols: number, seed: number): HostTensor {
  const values = Float32Array.from({ length: rows * cols }, (_, e) => Math.sin(0.37 * e + 0.11 * seed) * 0.4);
  return { values, shape: [rows, cols], dtype: 'float32' };
}

function valueAndGrads(penalty: typeof orthPenalty, kinds: OrthKind[]) {
  return (...xs: Tensor[]) => {
    const f = (...ys: Tensor[]) => penalty(ys, kinds);
    const value = f(...xs);
    const grads = tf.grads(f)(xs);
    return [value, ...grads];
  };
}

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = PARITY_TOL) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    assert.ok(err <= tol.atol + tol.rtol * Math.abs(want[i]!), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

for (const backend of ['native', 'cpu']) {
  test(
    `orthPenalty on ${backend} equals PyTorch (value and gradients)`,
    { skip: backend === 'native' && skip },
    async () => {
      const kinds = golden.cases.map((c) => c.kind);
      const ins = golden.cases.map((c) => goldenMatrix(c.rows, c.cols, c.seed));
      const out = await runOn(backend, ins, valueAndGrads(orthPenalty, kinds));
      close('value', out[0]!.values as Float32Array, [golden.value], TORCH_TOL);
      golden.grads.forEach((g, i) => close(`grad ${i}`, out[i + 1]!.values as Float32Array, g, TORCH_TOL));
    },
  );
}

test('orthPenalty: native kernel equals the composed ops on cpu on random A/B mixes', { skip }, async () => {
  const rng = new Rng(17);
  const shapes: [number, number, OrthKind][] = [
    [12, 384, 'A'],
    [384, 12, 'B'],
    [12, 1536, 'A'],
    [1536, 12, 'B'],
    [1, 7, 'A'],
    [7, 1, 'B'],
    [0, 5, 'A'], // fully pruned layer: C is 0×0, norm 0
    [5, 0, 'B'],
  ];
  const ins = shapes.map(([r, c]) => {
    const h = randn(rng, [r, c]);
    (h.values as Float32Array).forEach((v, i, a) => (a[i] = v * 0.1));
    return h;
  });
  const kinds = shapes.map((s) => s[2]);
  const nat = await runOn('native', ins, valueAndGrads(orthPenalty, kinds));
  const cpu = await runOn('cpu', ins, valueAndGrads(orthPenaltyComposed, kinds));
  nat.forEach((o, i) => close(`output ${i}`, o.values as Float32Array, cpu[i]!.values as Float32Array));
  // Same seed, same bits: run it again.
  const again = await runOn('native', ins, valueAndGrads(orthPenalty, kinds));
  again.forEach((o, i) => assert.deepEqual(o.values, nat[i]!.values, `run-to-run output ${i}`));
});

test(
  'orthPenalty: zero gradient (not NaN) at an orthonormal matrix; upstream scale; no leaks',
  { skip },
  async () => {
    await tf.setBackend('native');
    const a = tf.tensor2d([
      [1, 0, 0],
      [0, 1, 0],
    ]);
    const b = tf.tensor2d([
      [2, 0],
      [0, 0],
      [0, 0],
    ]);
    const { value, grads } = tf.valueAndGrads((x: Tensor, y: Tensor) =>
      tf.mul(orthPenalty([x, y], ['A', 'B']), 3),
    )([a, b]);
    // Bᵀ B − I = diag(3, −1): norm √10; R = √10 / 2; ∂R/∂B = 2·B·C / (2·√10), times the upstream 3.
    close('value', value.dataSync(), [(3 * Math.sqrt(10)) / 2]);
    assert.ok(Array.from(grads[0]!.dataSync()).every((v) => v === 0));
    close('dB[0]', [grads[1]!.dataSync()[0]!], [(3 * 2 * 2 * 3) / (2 * Math.sqrt(10))]);
    tf.dispose([value, ...grads]);
    await assertNoLeak(() => {
      const r = tf.tidy(() => {
        const { value: v, grads: g } = tf.valueAndGrads((x: Tensor, y: Tensor) =>
          orthPenalty([x, y], ['A', 'B']),
        )([a, b]);
        g.forEach((t) => t.dispose());
        return v;
      });
      r.dispose();
    }, 0);
    const empty = orthPenalty([], []);
    assert.equal(empty.dataSync()[0], 0);
    tf.dispose([a, b, empty]);
  },
);
