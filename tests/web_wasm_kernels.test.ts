// The browser build's wasm fallback kernels (src/tensor/wasm_kernels.ts) against tfjs's cpu kernels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf as tfc } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { registerWasmFallbackKernels } from '../src/tensor/wasm_kernels.js';
import { maxDiff } from '../src/testing/compare.js';

/** The fallback sums in float32 in index order, as tfjs's cpu kernel does. */
const SUM_ATOL = 1e-6;

async function on(backend: string, fn: () => tfc.Tensor): Promise<Float32Array> {
  await tfc.setBackend(backend);
  const t = fn();
  const out = (await t.data()) as Float32Array;
  t.dispose();
  return out;
}

test('UnsortedSegmentSum on wasm equals cpu and gives gather gradients', async () => {
  await initBackend('wasm');
  // Replace whatever the Node side registered with the browser build's kernel.
  if (tfc.getKernel('UnsortedSegmentSum', 'wasm')) tfc.unregisterKernel('UnsortedSegmentSum', 'wasm');
  registerWasmFallbackKernels();
  const xs = Array.from({ length: 24 }, (_, i) => Math.sin(i) * 3);
  const cases: [() => tfc.Tensor, string][] = [
    [
      () => tfc.unsortedSegmentSum(tfc.tensor2d(xs, [6, 4]), tfc.tensor1d([0, 2, 0, 1, 2, 2], 'int32'), 3),
      '1-D ids',
    ],
    [
      () => {
        const table = tfc.tensor2d(xs, [6, 4]);
        return tfc.grad((t: tfc.Tensor) =>
          tfc.sum(tfc.mul(tfc.gather(t, tfc.tensor1d([5, 0, 5, 2], 'int32')), tfc.scalar(2))),
        )(table);
      },
      'gather gradient',
    ],
  ];
  for (const [fn, what] of cases) {
    const cpu = await on('cpu', fn);
    const wasm = await on('wasm', fn);
    assert.equal(wasm.length, cpu.length, what);
    const diff = maxDiff(cpu, wasm);
    assert.ok(diff <= SUM_ATOL, `${what}: max |wasm − cpu| = ${diff}`);
  }
});
