/**
 * Child process for memory measurements: loads one model and prints one JSON line with the process's
 * RSS before, at peak during, and after the load, next to the bytes the model's tensors hold. Each
 * measurement runs in its own process so nothing earlier inflates the peak.
 *
 *   node --import tsx --expose-gc src/testing/load_memory_child.ts '{"path":"/tmp/m","quantize":"nf4"}'
 */
import { initBackend } from '../tensor/backend.js';
import { loadModel } from '../models/load.js';
import { memoryByCategory, totalBytes } from '../nn/memory_report.js';
import { processMemory, resetPeakRss } from '../util/process_memory.js';

interface Args {
  path: string;
  quantize?: 'nf4' | 'fp4';
  doubleQuant?: boolean;
  backend?: string;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  await initBackend(args.backend ?? 'auto');
  globalThis.gc?.();
  const before = processMemory().rss;
  const peakReset = resetPeakRss();
  const t0 = performance.now();
  const opts: Parameters<typeof loadModel>[1] = {};
  if (args.quantize) opts.quantize = args.quantize;
  if (args.quantize && args.doubleQuant) opts.doubleQuant = true;
  const model = await loadModel(args.path, opts);
  const seconds = (performance.now() - t0) / 1000;
  const mem = processMemory();
  globalThis.gc?.();
  const afterRelease = processMemory().rss;
  const held = totalBytes(memoryByCategory(model));
  process.stdout.write(
    JSON.stringify({
      before,
      peak: mem.peakRss,
      peakReset,
      after: mem.rss,
      afterRelease,
      held,
      seconds,
    }) + '\n',
  );
}

void main();
