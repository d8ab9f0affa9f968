// The browser runner's page (tests/conformance_browser.test.ts): the shared conformance cases on the
// browser's backends, each compared with tfjs's cpu in the same page. The test calls
// `window.lowrankConformance(['wasm', 'webgl', 'webgpu'])` and reads the results.
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import {
  configureWasmPaths,
  initBackend,
  webglRendererInfo,
  webgpuAdapterInfo,
} from '../../../src/tensor/backend_browser.js';
import {
  conformanceCases,
  referenceOutputs,
  runOnBackend,
  type BackendResult,
} from '../../../src/testing/conformance/index.js';

import { runTraining } from './training_runs.js';

configureWasmPaths({
  'tfjs-backend-wasm.wasm': wasmPlain,
  'tfjs-backend-wasm-simd.wasm': wasmSimd,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
});

const log = document.querySelector('#log')!;

async function adapterOf(backend: string): Promise<string | undefined> {
  if (backend !== 'webgpu' && backend !== 'webgl') return undefined;
  const info = backend === 'webgpu' ? await webgpuAdapterInfo() : webglRendererInfo();
  return typeof info === 'string'
    ? info
    : `${info.description}${info.software ? ' — software renderer' : ''}`;
}

async function run(backends: string[], only?: string): Promise<BackendResult[]> {
  const cases = conformanceCases().filter((c) => !only || c.name.includes(only));
  log.textContent = `reference (cpu): ${cases.length} cases…`;
  const reference = await referenceOutputs(cases);
  const results: BackendResult[] = [
    { backend: 'cpu', runtime: 'chromium', adapter: 'the reference (tfjs cpu kernels)', cases: [] },
  ];
  for (const backend of backends) {
    log.textContent = `${backend}…`;
    const adapter = await adapterOf(backend);
    let why: string | undefined;
    try {
      await initBackend(backend);
    } catch (e) {
      why = e instanceof Error ? e.message : String(e);
    }
    if (why) {
      results.push({
        backend,
        runtime: 'chromium',
        skipped: why,
        ...(adapter ? { adapter } : {}),
        cases: [],
      });
      continue;
    }
    const r = await runOnBackend(cases, reference, backend, 'chromium');
    results.push({ ...r, ...(adapter ? { adapter } : {}) });
  }
  log.textContent = 'done';
  return results;
}

(window as unknown as { lowrankConformance: typeof run }).lowrankConformance = run;
(window as unknown as { lowrankTrain: typeof runTraining }).lowrankTrain = runTraining;
(window as unknown as { auto: typeof initBackend }).auto = initBackend;
(window as unknown as { lowrankAdapters(b: string[]): Promise<Record<string, string>> }).lowrankAdapters =
  async (backends) =>
    Object.fromEntries(await Promise.all(backends.map(async (b) => [b, (await adapterOf(b)) ?? 'CPU'])));
document.body.dataset.ready = 'true';
