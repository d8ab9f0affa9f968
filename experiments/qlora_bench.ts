/**
 * QLoRA dequantisation speed (issue 5): the native kernel (native/src/dequant.cc) against the
 * TypedArray loop (blockwise.ts), and what on-the-fly dequantisation costs a Linear4bit forward
 * against a dense f32 Linear. Writes experiments/results/qlora_bench.json. Timings are medians;
 * the machine is shared, so run it when the load is low (the JSON records the 1-minute load).
 *
 *   npx tsx experiments/qlora_bench.ts [--reps 9]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../src/tensor/tf.js';
import { initBackend, setThreads } from '../src/tensor/backend.js';
import { manualSeed } from '../src/nn/init.js';
import { Linear } from '../src/nn/layers.js';
import { Linear4bit } from '../src/nn/linear4bit.js';
import { loadModel } from '../src/models/load.js';
import { dequantize4bit, quantize4bit, registerDequantKernel } from '../src/tensor/quant/index.js';
import { nativeDequantKernel } from '../src/tensor/quant/native.js';
import { lcgValues } from '../src/tensor/quant/testing.js';

const args = process.argv.slice(2);
const REPS = Number(args[args.indexOf('--reps') + 1] || 9);

const backend = await initBackend('native');
const kernel = nativeDequantKernel();
if (!kernel) throw new Error('native dequant kernel unavailable: build the addon first');

/** Median wall time of `fn` in ms after one warm-up call. */
function median(fn: () => void, reps = REPS): number {
  fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

const results: Record<string, unknown> = { backend: backend.backend, load1: os.loadavg()[0], reps: REPS };

// 1. Dequantising one 4096×4096 weight into a preallocated buffer.
const [R, C] = [4096, 4096];
const w = lcgValues(R * C, 3);
const dequant: Record<string, unknown>[] = [];
for (const doubleQuant of [true, false]) {
  const q = quantize4bit(w, [R, C], { quantType: 'nf4', doubleQuant });
  const out = new Float32Array(R * C);
  const row: Record<string, unknown> = { shape: [R, C], quantType: 'nf4', doubleQuant };
  row.typedarrayMs = median(() => dequantize4bit(q, out), 5);
  for (const threads of [1, 2]) {
    setThreads(threads);
    row[`native${threads}tMs`] = median(() => kernel(q, out));
  }
  const gb = (R * C * 4.5) / 8 / 1e9 + (R * C * 4) / 1e9; // bytes read + written
  row.native1tGBs = gb / ((row.native1tMs as number) / 1e3);
  dequant.push(row);
  console.log(JSON.stringify(row));
}
results.dequant = dequant;
setThreads(2);

// 2. Forward cost: dense Linear vs Linear4bit (native kernel, TypedArray loop) on two shapes:
// a 4096×4096 layer on 8 tokens (dequantisation-bound) and stories260K's 172×64 MLP on 8×256 tokens.
const forward: Record<string, unknown>[] = [];
for (const [outF, inF, tokens] of [
  [4096, 4096, 8],
  [172, 64, 2048],
] as const) {
  manualSeed(1);
  const dense = new Linear(inF, outF, { bias: false });
  const q4 = Linear4bit.fromLinear(dense, { quantType: 'nf4', doubleQuant: true });
  const x = tf.randomNormal([tokens, inF], 0, 1, 'float32', 5);
  const run = (m: { forward(x: tf.Tensor): tf.Tensor }) => () => tf.tidy(() => m.forward(x).dataSync());
  const row: Record<string, unknown> = { outF, inF, tokens, threads: 2 };
  row.denseMs = median(run(dense));
  row.linear4bitNativeMs = median(run(q4));
  registerDequantKernel(null);
  row.linear4bitTypedarrayMs = median(run(q4), 5);
  registerDequantKernel(kernel);
  forward.push(row);
  console.log(JSON.stringify(row));
  x.dispose();
  dense.dispose();
  q4.dispose();
}
results.forward = forward;

// 3. A whole-model forward: stories260K (35 linear layers of 64–172 wide) on 4 × 256 tokens, f32 vs
// NF4 + double quantisation with each dequantisation path (skipped without ../shared/data).
const MODEL = path.resolve(import.meta.dirname, '../../shared/data/models/stories260K/stories260K.bin');
if (fs.existsSync(MODEL)) {
  setThreads(2);
  const f32Model = await loadModel(MODEL);
  const q4Model = await loadModel(MODEL, { quantize: 'nf4', doubleQuant: true });
  const ids = tf.tensor2d(
    Array.from({ length: 4 }, (_, b) => Array.from({ length: 256 }, (_, t) => (b * 131 + t * 7) % 512)),
    [4, 256],
    'int32',
  );
  const fwd = (m: typeof f32Model) => () => tf.tidy(() => m.forward({ inputIds: ids }).logits.dataSync());
  const row: Record<string, unknown> = { model: 'stories260K', batch: [4, 256], threads: 2 };
  row.f32Ms = median(fwd(f32Model));
  row.nf4dqNativeMs = median(fwd(q4Model));
  registerDequantKernel(null);
  row.nf4dqTypedarrayMs = median(fwd(q4Model));
  registerDequantKernel(kernel);
  results.stories260K = row;
  console.log(JSON.stringify(row));
  ids.dispose();
  f32Model.dispose();
  q4Model.dispose();
}

const file = path.resolve(import.meta.dirname, 'results/qlora_bench.json');
fs.writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
console.log(`wrote ${file}`);
