import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tf, type Tensor } from '../tf.js';
import { initBackend } from '../backend.js';
import { nativeAvailable } from '../../testing/backend_parity.js';
import { chunkRowsFor, chunkedLinearCrossEntropy } from './chunked_ce.js';
import { linear } from './linear.js';
import { softmaxCrossEntropy } from './loss.js';

const ref = JSON.parse(
  readFileSync(new URL('../../../tests/fixtures/chunked_ce_reference.json', import.meta.url), 'utf8'),
) as {
  N: number;
  H: number;
  V: number;
  hidden: number[];
  weight: number[];
  labels: number[];
  loss: number;
  dHidden: number[];
  dWeight: number[];
};

/** f32 evaluation of a float64 reference: a few ulps of the O(1) loss and O(0.1) gradients. */
const TORCH_ATOL = 2e-6;
/**
 * Chunked vs the unchunked op in f32: the same products, summed per block then across blocks (the
 * loss) or accumulated over blocks (dW), so only the summation order differs.
 */
const CHUNK_ATOL = 1e-6;

const backends = ['cpu', ...(nativeAvailable() ? ['native'] : [])];

interface Result {
  loss: number;
  dHidden: Float32Array;
  dWeight?: Float32Array;
}

async function gradsOf(f: (h: Tensor, w: Tensor) => Tensor, trainW: boolean): Promise<Result> {
  const h = tf.tidy(() => tf.variable(tf.tensor2d(ref.hidden, [ref.N, ref.H])));
  const w = tf.tidy(() => tf.variable(tf.tensor2d(ref.weight, [ref.V, ref.H]), trainW));
  const { value, grads } = tf.variableGrads(() => f(h, w) as tf.Scalar, trainW ? [h, w] : [h]);
  const out: Result = {
    loss: (await value.data())[0]!,
    dHidden: (await grads[h.name]!.data()) as Float32Array,
  };
  if (trainW) out.dWeight = (await grads[w.name]!.data()) as Float32Array;
  if (!trainW) assert.equal(grads[w.name], undefined, 'a frozen weight gets no gradient');
  tf.dispose([value, h, w, ...Object.values(grads)]);
  return out;
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${what}[${i}] ${a[i]} vs ${b[i]}`);
}

for (const backend of backends) {
  test(`chunkedLinearCrossEntropy (${backend}): torch reference and the unchunked op, every block size`, async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const labels = tf.tensor1d(ref.labels, 'int32');
    const plain = await gradsOf((h, w) => softmaxCrossEntropy(linear(h, w), labels), true);
    assert.ok(Math.abs(plain.loss - ref.loss) <= TORCH_ATOL, `unchunked ${plain.loss} vs torch ${ref.loss}`);
    for (const rows of [1, 4, 7, ref.N, 1000]) {
      for (const trainW of [true, false]) {
        const got = await gradsOf(
          (h, w) => chunkedLinearCrossEntropy(h, w, labels, { chunkRows: rows }),
          trainW,
        );
        const what = `rows ${rows} trainW ${trainW}`;
        assert.ok(
          Math.abs(got.loss - ref.loss) <= TORCH_ATOL,
          `${what}: loss ${got.loss} vs torch ${ref.loss}`,
        );
        assert.ok(Math.abs(got.loss - plain.loss) <= CHUNK_ATOL, `${what}: loss vs unchunked`);
        close(got.dHidden, ref.dHidden, TORCH_ATOL, `${what} dHidden vs torch`);
        close(got.dHidden, plain.dHidden, CHUNK_ATOL, `${what} dHidden vs unchunked`);
        if (trainW) {
          close(got.dWeight!, ref.dWeight, TORCH_ATOL, `${what} dWeight vs torch`);
          close(got.dWeight!, plain.dWeight!, CHUNK_ATOL, `${what} dWeight vs unchunked`);
        }
      }
    }
    // without gradient recording: the loss alone
    const h = tf.tensor2d(ref.hidden, [ref.N, ref.H]);
    const w = tf.tensor2d(ref.weight, [ref.V, ref.H]);
    const loss = chunkedLinearCrossEntropy(h, w, labels, { chunkRows: 5 });
    assert.ok(Math.abs((await loss.data())[0]! - ref.loss) <= TORCH_ATOL);
    // every label ignored: 0 (as softmaxCrossEntropy), not NaN
    const ignored = tf.fill([ref.N], -100, 'int32');
    const zero = chunkedLinearCrossEntropy(h, w, ignored, { chunkRows: 5 });
    assert.equal((await zero.data())[0], 0);
    tf.dispose([h, w, loss, ignored, zero, labels]);
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  });
}

test('chunkRowsFor: default block of 8 Mi logits, at least one row', () => {
  assert.equal(chunkRowsFor(49152), 170);
  assert.equal(chunkRowsFor(32000), 262);
  assert.equal(chunkRowsFor(2 ** 30), 1);
  assert.equal(chunkRowsFor(49152, 64), 64);
});

test('chunkedLinearCrossEntropy: the peak holds one block of logits, not all rows', async () => {
  await initBackend('cpu');
  const [n, hd, v] = [256, 8, 512];
  const h = tf.tidy(() => tf.variable(tf.randomNormal([n, hd], 0, 1, 'float32', 1)));
  const w = tf.tidy(() => tf.variable(tf.randomNormal([v, hd], 0, 1, 'float32', 2), false));
  const labels = tf.randomUniform([n], 0, v, 'int32', 3);
  const peak = async (f: () => Tensor) =>
    (
      await tf.profile(() => {
        const { value, grads } = tf.variableGrads(f as () => tf.Scalar, [h]);
        tf.dispose([value, ...Object.values(grads)]);
      })
    ).peakBytes;
  const base = tf.memory().numBytes; // what is alive before (inputs and other tests' tensors)
  const full = -base + (await peak(() => softmaxCrossEntropy(linear(h, w), labels)));
  const chunked = -base + (await peak(() => chunkedLinearCrossEntropy(h, w, labels, { chunkRows: 4 })));
  const logitsBytes = n * v * 4;
  assert.ok(full >= 2 * logitsBytes, `unchunked peak ${full} B holds logits and more`);
  assert.ok(chunked < logitsBytes / 2, `chunked peak ${chunked} B < half the logits (${logitsBytes} B)`);
  tf.dispose([h, w, labels]);
});
