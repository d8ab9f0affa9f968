import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tf } from './tf.js';
import { initBackend } from './backend.js';
import { nativeAvailable } from '../testing/backend_parity.js';
import { HalfMatrix, matMulHalf, matMulHalfT, packHalfRows } from './half.js';
import { f16BitsToFloat, floatToF16Bits } from '../util/float16.js';
import { chunkedLinearCrossEntropy } from './ops/chunked_ce.js';

interface Case {
  V: number;
  H: number;
  N: number;
  weight: number[];
  halfWeight: number[];
  ids: number[];
  rows: number[];
  hidden: number[];
  labels: number[];
  logits: number[];
  loss: number;
  dHidden: number[];
}
const ref = JSON.parse(
  readFileSync(new URL('../../tests/fixtures/half_embedding_reference.json', import.meta.url), 'utf8'),
) as { f32Bits: number[]; halfBits: number[]; cases: Case[] };

/**
 * f32 products and sums of float16-rounded inputs against torch's float64 of the same inputs: a few
 * ulps of O(10) logits and of the O(1) loss / O(0.1) gradients.
 */
const TORCH_ATOL = 1e-5;
/** Blockwise vs one matmul in f32: the same products, only the block sums' order differs. */
const BLOCK_ATOL = 1e-5;

const backends = ['cpu', ...(nativeAvailable() ? ['native'] : [])];

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${what}[${i}] ${a[i]} vs ${b[i]}`);
}

test('floatToF16Bits rounds as torch .half() (ties to even, subnormals, overflow, NaN); f16BitsToFloat inverts it', () => {
  const u = new Uint32Array(ref.f32Bits);
  const f = new Float32Array(u.buffer);
  for (let i = 0; i < f.length; i++) {
    assert.equal(floatToF16Bits(f[i]!), ref.halfBits[i], `value ${f[i]} (f32 bits ${u[i]!.toString(16)})`);
  }
  for (let b = 0; b < 65536; b++) {
    const v = f16BitsToFloat(b);
    if (Number.isNaN(v)) continue;
    assert.equal(floatToF16Bits(v), b, `round trip of float16 ${b.toString(16)}`);
  }
});

test('packHalfRows: a matrix packed in row blocks equals one pass; shapes that do not fit are refused', () => {
  const c = ref.cases[1]!; // odd width: the last pair is padded
  const w = Float32Array.from(c.weight);
  const whole = new Int32Array(c.V * Math.ceil(c.H / 2));
  packHalfRows(w, c.H, whole, 0);
  const blocks = new Int32Array(whole.length);
  for (let r0 = 0; r0 < c.V; r0 += 4)
    packHalfRows(w.subarray(r0 * c.H, Math.min(c.V, r0 + 4) * c.H), c.H, blocks, r0);
  assert.deepEqual(blocks, whole);
  assert.throws(() => packHalfRows(w.subarray(0, c.H + 1), c.H, blocks, 0), /whole number/);
  assert.throws(() => packHalfRows(w, c.H, blocks, 1), /inside the output/);
});

const runs = [
  ...backends.map((b) => [b, 'host'] as const),
  ['cpu', 'tensor'] as const, // the storage and widening GPU backends use, checked on cpu
];
for (const [backend, storage] of runs) {
  test(`HalfMatrix (${backend}, ${storage} storage): lookup, tied-head matmul and chunked loss equal torch on W.half().float()`, async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    for (const c of ref.cases) {
      const what = `V ${c.V} H ${c.H}`;
      const w = HalfMatrix.fromFloat32(Float32Array.from(c.weight), c.V, c.H, storage);
      assert.equal(w.storage, storage);
      const bytes = storage === 'tensor' ? c.V * c.H * 4 + 65536 * 4 : c.V * Math.ceil(c.H / 2) * 4;
      assert.equal(w.bytes, bytes, `${what}: bytes`);
      const ids = tf.tensor2d(c.ids, [2, 5], 'int32');
      const rows = w.gatherRows(ids);
      assert.deepEqual(rows.shape, [2, 5, c.H]);
      assert.deepEqual(
        Array.from(await rows.data()),
        Array.from(Float32Array.from(c.rows)),
        `${what}: rows exact`,
      );
      const all = w.rowBlock(0, c.V);
      assert.deepEqual(Array.from(await all.data()), c.halfWeight, `${what}: widened weight exact`);
      const labels = tf.tensor1d(c.labels, 'int32');
      const h = tf.tidy(() => tf.variable(tf.tensor2d(c.hidden, [c.N, c.H])));
      for (const blockRows of [1, 5, c.V]) {
        w.blockRows = blockRows;
        const logits = tf.tidy(() => matMulHalfT(h, w));
        close(await logits.data(), c.logits, TORCH_ATOL, `${what} block ${blockRows}: logits`);
        const plain = tf.tidy(() => tf.matMul(h, all, false, true));
        close(
          await logits.data(),
          await plain.data(),
          BLOCK_ATOL,
          `${what} block ${blockRows}: vs one matmul`,
        );
        for (const chunkRows of [1, 3, c.N]) {
          const { value, grads } = tf.variableGrads(
            () => chunkedLinearCrossEntropy(h, w, labels, { chunkRows }) as tf.Scalar,
            [h],
          );
          const tag = `${what} block ${blockRows} chunk ${chunkRows}`;
          assert.ok(Math.abs((await value.data())[0]! - c.loss) <= TORCH_ATOL, `${tag}: loss`);
          close(await grads[h.name]!.data(), c.dHidden, TORCH_ATOL, `${tag}: dHidden`);
          tf.dispose([value, ...Object.values(grads)]);
        }
        // the plain path's gradient through matMulHalfT: d sum(logits · probe) / dh = probe · W
        const probe = tf.tidy(() => tf.randomNormal([c.N, c.V], 0, 1, 'float32', 5));
        const { value, grads } = tf.variableGrads(
          () => tf.sum(tf.mul(matMulHalfT(h, w), probe)) as tf.Scalar,
          [h],
        );
        const want = tf.tidy(() => tf.matMul(probe, all));
        close(await grads[h.name]!.data(), await want.data(), BLOCK_ATOL, `${what}: matMulHalfT gradient`);
        const direct = tf.tidy(() => matMulHalf(probe, w));
        close(await direct.data(), await want.data(), BLOCK_ATOL, `${what}: matMulHalf`);
        tf.dispose([value, logits, plain, probe, want, direct, ...Object.values(grads)]);
      }
      tf.dispose([ids, rows, all, labels, h]);
      w.dispose();
      assert.ok(w.isDisposed);
    }
    if (storage === 'host') {
      const w = HalfMatrix.fromFloat32(
        Float32Array.from(ref.cases[0]!.weight),
        ref.cases[0]!.V,
        ref.cases[0]!.H,
      );
      const bad = tf.tensor1d([0, ref.cases[0]!.V], 'int32');
      assert.throws(() => w.gatherRows(bad), /token ids must be in \[0, 37\)/);
      bad.dispose();
      w.dispose();
    }
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  });
}
