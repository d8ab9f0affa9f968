/**
 * The AddN split of gpu_kernels.ts, exercised on tfjs's cpu kernel with a small limit (the browser
 * conformance suite runs the real WebGPU case): any number of inputs gives the one-pass sum, and no
 * intermediate is left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf as tfc } from './tf.js';
import { initBackend } from './backend.js';
import { splitAddN, webgpuMaxAddNInputs, WEBGPU_DEFAULT_STORAGE_BUFFERS } from './gpu_kernels.js';
import { maxDiff } from '../testing/compare.js';

/** float32 sums of ≤ 30 values in [-1, 1] in another order: a few ulps. */
const SUM_ATOL = 1e-5;

test('AddN split at a limit of 3 inputs equals the one-pass sum for 1…30 inputs, without leaks', async () => {
  await initBackend('cpu');
  const original = tfc.getKernel('AddN', 'cpu')!;
  // an inner kernel that records how many inputs each shader-like call takes, then split around it
  let widest = 0;
  tfc.unregisterKernel('AddN', 'cpu');
  tfc.registerKernel({
    ...original,
    kernelFunc: (args) => {
      widest = Math.max(widest, (args.inputs as unknown as unknown[]).length);
      return original.kernelFunc(args);
    },
  });
  splitAddN('cpu', () => 3);
  try {
    for (let n = 1; n <= 30; n++) {
      const xs = Array.from({ length: n }, (_, i) => tfc.tensor1d([Math.sin(i), Math.cos(i), i / 30]));
      const want = xs.reduce(
        (acc, _x, i) => acc.map((a, j) => a + [Math.sin(i), Math.cos(i), i / 30][j]!),
        [0, 0, 0],
      );
      const before = tfc.memory().numTensors;
      const y = tfc.addN(xs);
      assert.equal(tfc.memory().numTensors, before + 1, `n=${n}: only the result is new`);
      const got = await y.data();
      const err = maxDiff(want, got);
      assert.ok(err <= SUM_ATOL, `n=${n}: max error ${err}`);
      tfc.dispose([y, ...xs]);
      assert.ok(widest <= 3, `n=${n}: a call took ${widest} inputs`);
      widest = 0;
    }
  } finally {
    tfc.unregisterKernel('AddN', 'cpu');
    tfc.registerKernel(original);
  }
});

test('the WebGPU limit comes from the device, else the spec default', () => {
  assert.equal(webgpuMaxAddNInputs({}), WEBGPU_DEFAULT_STORAGE_BUFFERS - 1);
  assert.equal(webgpuMaxAddNInputs({ device: { limits: { maxStorageBuffersPerShaderStage: 10 } } }), 9);
});
