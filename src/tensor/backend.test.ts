/**
 * Backend selection and reporting, the wasm fallback's training kernels, and the native buffer
 * pool's ownership rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tf } from './tf.js';
import { BACKENDS, LOWRANK_VERSION, backendInfo, initBackend } from './backend.js';
import { ConfigError, NotSupportedError } from '../errors.js';
import { nativeAvailable } from '../testing/backend_parity.js';
import type { NativeBackend } from './native/register.js';

// float32 exp vs double Math.exp: a few ulps.
const EXP_TOL = 1e-6;
const skipNative = nativeAvailable() ? false : 'native addon not built';

test('auto picks native when the addon is built and reports it', { skip: skipNative }, async () => {
  const report = await initBackend('auto');
  assert.equal(report.backend, 'native');
  assert.deepEqual(report.tried, [{ name: 'native', ok: true }]);
  const info = backendInfo();
  assert.equal(info.backend, 'native');
  assert.equal(info.addonLoaded, true);
  assert.match(info.blas ?? '', /OpenBLAS/);
  assert.ok(info.threads >= 1);
});

test('explicit names: cpu works, unknown names and unavailable backends throw typed errors', async () => {
  assert.equal((await initBackend('cpu')).backend, 'cpu');
  await assert.rejects(initBackend('tpu'), ConfigError);
  await assert.rejects(initBackend('tensorflow'), NotSupportedError);
  await assert.rejects(initBackend('webgl'), /needs a browser/);
  assert.deepEqual([...BACKENDS], ['auto', 'native', 'wasm', 'cpu', 'tensorflow', 'webgpu', 'webgl']);
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  assert.equal(LOWRANK_VERSION, pkg.version);
  await initBackend('auto');
});

test('wasm runs an embedding gradient (UnsortedSegmentSum registered) like cpu', async () => {
  const run = async (name: string) => {
    await initBackend(name);
    const w = tf.tensor2d(
      Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 2),
      [6, 2],
    );
    const ids = tf.tensor1d([1, 3, 3, 5, 0], 'int32');
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.gather(x, ids), tf.tensor1d([1, -2]))))(w);
    const out = g.arraySync();
    tf.dispose([w, ids, g]);
    return out;
  };
  // Hand computation: each gathered row adds [1, -2] to its id's gradient row.
  const expected = [
    [1, -2],
    [1, -2],
    [0, 0],
    [2, -4],
    [0, 0],
    [1, -2],
  ];
  assert.deepEqual(await run('wasm'), expected);
  assert.deepEqual(await run('cpu'), expected);
  await initBackend('auto');
});

test(
  'the native pool recycles kernel outputs but never arrays user code has read',
  { skip: skipNative },
  async () => {
    await initBackend('native');
    const pool = (tf.backend() as unknown as NativeBackend).pool;
    const x = tf.tensor1d([1, 2, 3, 4]);
    const read = tf.tidy(() => tf.mul(x, 2)).dataSync(); // escapes: dataSync hands out the live array
    const before = Array.from(read);
    const hits0 = pool.stats().hits;
    for (let i = 0; i < 5; i++) tf.tidy(() => tf.add(tf.mul(x, 3), 1).dataSync().length);
    assert.deepEqual(Array.from(read), before, 'an array returned by dataSync was overwritten');
    const y = tf.tidy(() => tf.exp(x));
    const y2 = tf.tidy(() => tf.mul(y, 1));
    y.dispose();
    for (let i = 0; i < 5; i++) tf.dispose(tf.tidy(() => [tf.neg(x), tf.sqrt(x)]));
    assert.ok(pool.stats().hits > hits0, 'disposed outputs were not reused');
    // y2 must still hold exp(x) though y's array went back to the pool and was reused.
    y2.dataSync().forEach((v, i) =>
      assert.ok(Math.abs(v - Math.exp(i + 1)) < EXP_TOL * Math.exp(i + 1), `exp ${v}`),
    );
    tf.dispose([x, y2]);
  },
);
