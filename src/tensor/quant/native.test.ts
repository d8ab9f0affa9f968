import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../tf.js';
import { addonError } from '../native/addon.js';
import { assertNoLeak } from '../memory.js';
import { Linear4bit } from '../../nn/linear4bit.js';
import {
  dequantize4bit,
  dequantize4bitTensor,
  dequantKernelName,
  quantize4bit,
  registerDequantKernel,
  type Quantized4bit,
  type QuantType,
} from './index.js';
import { nativeDequantKernel, type DequantKernel } from './native.js';
import { lcgValues } from '../../testing/lcg.js';

const kernel = nativeDequantKernel();
const skip = kernel
  ? false
  : `native dequant kernel unavailable: ${addonError() ?? 'addon predates dequant.cc'}`;

/** Bit equality of two f32 arrays (distinguishes −0 from 0, compares NaN payloads). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** Values with whole zero blocks (blocks 1 and 3 of 64) and a zero tail, so absmax = 0 occurs. */
function withZeroBlocks(n: number, seed: number): Float32Array {
  const x = lcgValues(n, seed);
  x.fill(0, 64, 128);
  x.fill(0, 192, 256);
  x.fill(0, Math.max(0, n - 5));
  return x;
}

// Odd lengths (padding nibble), a single element, a short last block, more than 256 blocks (several
// second-level absmax under double quantisation) and > 2^16 elements (the OpenMP-parallel path).
const LENGTHS = [1, 3, 63, 65, 603, 19_205, 4096 * 17 + 3];

test(
  'native dequantize4bit is bit-exact with the TypedArray loop (NF4/FP4, double quant on/off)',
  { skip },
  () => {
    const k = kernel as DequantKernel;
    let cases = 0;
    for (const quantType of ['nf4', 'fp4'] as QuantType[])
      for (const doubleQuant of [false, true])
        for (const blocksize of [32, 64, 4096])
          for (const n of LENGTHS)
            for (const x of [lcgValues(n, n + 11), withZeroBlocks(n, n + 3)]) {
              const q = quantize4bit(x, [n], { quantType, doubleQuant, blocksize });
              const ref = dequantize4bit(q);
              const got = new Float32Array(n).fill(Number.NaN); // every element must be written
              k(q, got);
              assert.ok(sameBits(got, ref), `${quantType} dq=${doubleQuant} bs=${blocksize} n=${n}`);
              cases++;
            }
    assert.equal(cases, 2 * 2 * 3 * LENGTHS.length * 2);
  },
);

test('native dequantize4bit rejects a wrong output length and a state without absmax', { skip }, () => {
  const k = kernel as DequantKernel;
  const q = quantize4bit(lcgValues(70, 1), [70]);
  assert.throws(() => k(q, new Float32Array(69)), /out must hold 70 elements/);
  const broken: Quantized4bit = { ...q, absmax: null, nested: null };
  assert.throws(() => k(broken, new Float32Array(70)), /needs absmax or nested absmax/);
  const short: Quantized4bit = { ...q, packed: q.packed.subarray(0, 10) };
  assert.throws(() => k(short, new Float32Array(70)), /inconsistent array lengths/);
});

test(
  'Linear4bit uses the native kernel on backend native; the same output without it',
  { skip },
  async () => {
    await tf.ready();
    const previous = tf.getBackend();
    await tf.setBackend('native');
    let calls = 0;
    const counting: DequantKernel = (q, out) => {
      calls++;
      (kernel as DequantKernel)(q, out);
    };
    try {
      assert.equal(dequantKernelName(), 'registered', 'installed when the module loads');
      registerDequantKernel(counting);
      const [outF, inF] = [40, 97];
      const q = quantize4bit(lcgValues(outF * inF, 5), [outF, inF], { doubleQuant: true });
      const layer = new Linear4bit(inF, outF, q, null);
      const x = tf.tensor(lcgValues(3 * inF, 9), [3, inF]);
      await assertNoLeak(() => {
        const withKernel = tf.tidy(() => layer.forward(x).dataSync() as Float32Array);
        assert.equal(calls, 1, 'the forward dequantised through the registered kernel');
        const dense = tf.tidy(() => dequantize4bitTensor(q).dataSync() as Float32Array);
        assert.ok(sameBits(dense, dequantize4bit(q)));
        registerDequantKernel(null);
        assert.equal(dequantKernelName(), 'typedarray');
        const fallback = tf.tidy(() => layer.forward(x).dataSync() as Float32Array);
        assert.equal(calls, 2);
        assert.ok(sameBits(withKernel, fallback), 'same dense weight, same matmul');
      });
      registerDequantKernel(counting);
      await tf.setBackend('cpu');
      assert.equal(dequantKernelName(), 'typedarray', 'the cpu backend keeps the TypedArray loop');
      tf.tidy(() => layer.forward(tf.tensor(lcgValues(inF, 2), [1, inF])));
      assert.equal(calls, 2, 'not called off the native backend');
      x.dispose();
    } finally {
      registerDequantKernel(kernel);
      await tf.setBackend(previous);
    }
  },
);
