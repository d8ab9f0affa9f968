import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { tf } from '../tf.js';
import { ConfigError } from '../../errors.js';
import { assertNoLeak } from '../memory.js';
import {
  FP4_CODE,
  NF4_CODE,
  createDynamicMap,
  midpoints,
  absmaxOf,
  compressAbsmax,
  dequantize4bit,
  quantize4bit,
  quantizeBlockwise8,
  quantizedBytes,
  unpackIndices,
  dequantize4bitOps,
  dequantize4bitTensor,
  linear4bit,
  type QuantType,
} from './index.js';
import { lcgValues } from '../../testing/lcg.js';

const fixture = JSON.parse(
  fs.readFileSync(new URL('../../../tests/fixtures/nf4_reference.json', import.meta.url), 'utf8'),
);
// Gradients and matmuls through a dense copy vs. the 4-bit op use the same kernels: only the order of
// additions in the bias gradient (sum over rows) can differ.
const GRAD_ATOL = 1e-5;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('golden block (bitsandbytes quantize_4bit): indices, bytes, dequantised values bit for bit', () => {
  const block = new Float32Array(64);
  block.set([2, 1, -1, 0.5, 0, -0.3, 0.08, -2]);
  const q = quantize4bit(block, [64], { quantType: 'nf4' });
  assert.deepEqual([...unpackIndices(q).slice(0, 8)], [15, 12, 2, 10, 7, 5, 8, 0]);
  assert.deepEqual([...q.packed.slice(0, 4)], [0xfc, 0x2a, 0x75, 0x80]);
  assert.deepEqual([...q.absmax!], [2]);
  const expected = [
    2, 0.8814196586608887, -1.0501461029052734, 0.4922246038913727, 0, -0.3695468604564667,
    0.15916059911251068, -2,
  ];
  assert.deepEqual([...dequantize4bit(q).slice(0, 8)], expected);
  assert.deepEqual(fixture.golden.dequant, expected); // the torch reference agrees with bitsandbytes
});

test('dynamic map: 256 values bit-equal to the python3-torch create_dynamic_map', () => {
  const map = createDynamicMap();
  assert.equal(map.length, 256);
  assert.deepEqual([...map], fixture.dynamicMap);
  assert.equal(map[255], 1);
  assert.equal(map[0], Math.fround(-0.992968738079071));
  for (let i = 1; i < 256; i++) assert.ok(map[i]! > map[i - 1]!, 'ascending');
});

test('FP4 code table is bitsandbytes fp4 map / 12', () => {
  assert.deepEqual([...FP4_CODE], fixture.fp4Code);
  assert.equal(NF4_CODE.length, 16);
});

for (const c of fixture.cases as any[]) {
  test(`quantize4bit ${c.quantType} n=${c.n} matches the torch reference (packed, absmax, dequant, nested)`, () => {
    const x = lcgValues(c.n, c.seed);
    const q = quantize4bit(x, [c.n], { quantType: c.quantType as QuantType });
    assert.equal(hex(q.packed), c.packedHex);
    assert.deepEqual([...q.absmax!], c.absmax);
    if (c.dequant) assert.deepEqual([...dequantize4bit(q)], c.dequant);
    // Double quantisation: same 8-bit codes for the same centred input; the offset is a mean whose
    // last bit depends on the summation order (torch's f32 pairwise sum vs our f64 sum).
    const nested = compressAbsmax(q.absmax!);
    const OFFSET_RTOL = 2 ** -22; // two f32 ulps
    assert.ok(Math.abs(nested.offset - c.nested.offset) <= OFFSET_RTOL * Math.abs(c.nested.offset));
    const centred = q.absmax!.map((a) => Math.fround(a - c.nested.offset));
    const q8 = quantizeBlockwise8(centred, createDynamicMap(), 256);
    assert.equal(hex(q8.q), c.nested.q2Hex);
    assert.deepEqual([...q8.absmax], c.nested.absmax2);
    const dq = quantize4bit(x, [c.n], { quantType: c.quantType as QuantType, doubleQuant: true });
    const back = absmaxOf({ ...dq, nested: { ...q8, offset: c.nested.offset } });
    assert.deepEqual([...back], c.nested.absmaxDequant);
    assert.equal(hex(dq.packed), c.packedHex, 'double quantisation leaves the 4-bit codes alone');
  });
}

test('odd length pads a zero low nibble; ties go to the lower index; zero blocks give ±0', () => {
  const mids = midpoints(NF4_CODE);
  const x = Float32Array.from([1, mids[9]!, -0.5]); // absmax 1 → scaled = x exactly
  const q = quantize4bit(x, [3]);
  assert.equal(q.packed.length, 2);
  assert.deepEqual([...unpackIndices(q)], [15, 9, 2]); // -0.5 is nearest to -0.525 (index 2)
  assert.equal(q.packed[1]! & 0x0f, 0);
  const zeros = quantize4bit(new Float32Array(64), [64], { quantType: 'fp4' });
  assert.ok(dequantize4bit(zeros).every((v) => v === 0));
  const zerosNf4 = quantize4bit(new Float32Array(64), [64], { quantType: 'nf4' });
  assert.ok(dequantize4bit(zerosNf4).every((v) => v === 0));
});

test('invalid blocksize and shape are rejected with typed errors', () => {
  assert.throws(() => quantize4bit(new Float32Array(4), [4], { blocksize: 48 }), ConfigError);
  assert.throws(() => quantize4bit(new Float32Array(4), [5]), /holds 5 elements/);
  assert.throws(
    () => quantize4bit(new Float32Array(4), [4], { quantType: 'int4' as QuantType }),
    ConfigError,
  );
});

test('storage cost: ≈ 4.127 bits/element with double quantisation, 4.5 without', () => {
  const n = 64 * 256 * 4;
  const x = lcgValues(n, 5);
  const dq = quantize4bit(x, [n], { doubleQuant: true });
  const plain = quantize4bit(x, [n]);
  const BITS_TOL = 0.01; // the per-tensor f32 offset (32 bits over 65536 elements)
  assert.ok(Math.abs((quantizedBytes(dq) * 8) / n - (4 + 8 / 64 + 32 / (64 * 256))) < BITS_TOL);
  assert.equal((quantizedBytes(plain) * 8) / n, 4 + 32 / 64);
  // double-quantised absmax stays close to the exact one (8-bit dynamic code, relative to block max)
  const exact = plain.absmax!;
  const approx = absmaxOf(dq);
  const NESTED_RTOL = 0.02; // 8-bit dynamic map: worst relative step near the top of each 256-block
  exact.forEach((a, i) => assert.ok(Math.abs(approx[i]! - a) <= NESTED_RTOL * Math.max(...exact)));
});

test('tfjs-ops dequantisation equals the TypedArray kernel bit for bit, without leaks', async () => {
  const x = lcgValues(64 * 5 + 7, 9);
  for (const quantType of ['nf4', 'fp4'] as const) {
    const q = quantize4bit(x, [x.length], { quantType, doubleQuant: true });
    const ref = dequantize4bit(q);
    await assertNoLeak(() => {
      const got = tf.tidy(() =>
        dequantize4bitOps(
          tf.tensor1d(Int32Array.from(q.packed), 'int32'),
          tf.tensor1d(absmaxOf(q)),
          tf.tensor1d(q.code),
          q.blocksize,
          q.shape,
        ).dataSync(),
      );
      assert.deepEqual([...got], [...ref]);
    });
  }
});

test('linear4bit: forward and gradients equal a dense linear over the dequantised weight', async () => {
  const [outF, inF] = [6, 70];
  const q = quantize4bit(lcgValues(outF * inF, 13), [outF, inF], { doubleQuant: true });
  const x = tf.tensor(lcgValues(2 * 3 * inF, 17), [2, 3, inF]);
  const b = tf.tensor1d(lcgValues(outF, 19));
  await assertNoLeak(() => {
    const [y, yRef, gx, gxRef, gb, gbRef] = tf.tidy(() => {
      const w = dequantize4bitTensor(q);
      const dense = (xx: tf.Tensor, bb: tf.Tensor) =>
        tf.add(tf.matMul(xx.reshape([-1, inF]), w, false, true), bb);
      const loss4 = (xx: tf.Tensor, bb: tf.Tensor) => linear4bit(xx, q, bb).square().sum();
      const lossD = (xx: tf.Tensor, bb: tf.Tensor) => dense(xx, bb).square().sum();
      const [g1, g2] = tf.grads(loss4)([x, b]);
      const [r1, r2] = tf.grads(lossD)([x, b]);
      return [linear4bit(x, q, b).reshape([-1, outF]), dense(x, b), g1!, r1!, g2!, r2!].map((t) =>
        t.arraySync(),
      );
    });
    assert.deepEqual(y, yRef);
    assert.deepEqual(gx, gxRef);
    (gb as number[]).forEach((v, i) =>
      assert.ok(Math.abs(v - (gbRef as number[])[i]!) <= GRAD_ATOL * Math.abs(v)),
    );
    const noBias = tf.tidy(
      () =>
        linear4bit(x, q, null)
          .sub(linear4bit(x, q, b))
          .add(b)
          .abs()
          .max()
          .dataSync()[0]!,
    );
    assert.ok(noBias <= GRAD_ATOL, `without bias = with bias − b (${noBias})`);
  });
  x.dispose();
  b.dispose();
});

test('NF4 quantisation (fused search + pack) == the bitsandbytes rule element by element: odd sizes, zero and NaN blocks, midpoints', () => {
  const mids = midpoints(NF4_CODE);
  for (const n of [1, 63, 64, 65, 1000, 4097]) {
    const v = lcgValues(n, n);
    if (n > 200) v.fill(0, 64, 128); // an all-zero block: 0·∞ = NaN → index 0, as the CUDA tree
    if (n > 1000) for (let i = 0; i < 15; i++) v[200 + i] = mids[i]! * 3; // exactly on a bucket edge
    const q = quantize4bit(v, [n], { quantType: 'nf4' });
    const idx = unpackIndices(q);
    const absmax = absmaxOf(q);
    for (let i = 0; i < n; i++) {
      const s = Math.min(1, Math.max(-1, Math.fround(v[i]! * Math.fround(1 / absmax[Math.floor(i / 64)]!))));
      let want = 0; // the number of midpoints strictly below s (ties go to the lower code)
      for (const m of mids) if (s > m) want++;
      assert.equal(idx[i], want, `element ${i} of ${n}`);
    }
    if (n % 2 === 1) assert.equal(q.packed.at(-1)! & 0x0f, 0, 'the padding nibble is zero');
  }
});
