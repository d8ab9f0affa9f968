// Backend conformance in Node (issue 12): every case of src/testing/conformance on native and wasm,
// compared with tfjs's cpu within each case's named tolerance. A backend that cannot start is
// reported as skipped with its own error (printed, and in test-artifacts/conformance-node.json).
//   npm test -- tests/conformance.test
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { initBackend } from '../src/tensor/backend.js';
import {
  conformanceCases,
  referenceOutputs,
  runOnBackend,
  type BackendResult,
} from '../src/testing/conformance/index.js';
import { failures, writeResults } from './conformance/report.js';

test('conformance: native and wasm equal cpu on every case', async () => {
  const cases = conformanceCases();
  const t0 = Date.now();
  const reference = await referenceOutputs(cases);
  const results: BackendResult[] = [
    { backend: 'cpu', runtime: 'node', adapter: 'the reference (tfjs cpu kernels)', cases: [] },
  ];
  for (const backend of ['native', 'wasm']) {
    const why = await initBackend(backend).then(
      () => undefined,
      (e: Error) => e.message,
    );
    if (why) {
      console.log(`# conformance: ${backend} skipped: ${why}`);
      results.push({ backend, runtime: 'node', skipped: why, cases: [] });
      continue;
    }
    results.push(await runOnBackend(cases, reference, backend, 'node'));
  }
  await initBackend('auto');
  const file = writeResults('node', results, {
    command: 'npm test -- tests/conformance.test',
    machine: `${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, load ${os.loadavg()[0]!.toFixed(1)}`,
    seconds: ((Date.now() - t0) / 1000).toFixed(1),
  });
  const ran = results.filter((r) => !r.skipped && r.backend !== 'cpu');
  console.log(
    `# conformance (node): ${cases.length} cases on ${ran.map((r) => r.backend).join(', ') || 'no backend'} in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${file}`,
  );
  assert.deepEqual(failures(results), []);
});
