/**
 * QLoRA dequantisation speed (issue 5): the native kernel (native/src/dequant.cc) against the
 * TypedArray loop (blockwise.ts), and what on-the-fly dequantisation costs a Linear4bit forward and a
 * whole stories260K forward against f32. Writes experiments/results/qlora_bench.json.
 *
 * The machine is shared, so the variants of one comparison run interleaved (A, B, C, A, B, C, …) and
 * both the minimum (the uncontended cost) and the median are recorded, with the 1-minute load.
 *
 *   npx tsx experiments/qlora_bench.ts [--reps 21]
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
import { lcgValues } from '../src/testing/lcg.js';

const args = process.argv.slice(2);
const REPS = Number(args[args.indexOf('--reps') + 1] || 21);

const backend = await initBackend('native');
const kernel = nativeDequantKernel();
if (!kernel) throw new Error('native dequant kernel unavailable: build the addon first');

type Timing = { minMs: number; medianMs: number };

/**
 * Times each variant `reps` times, interleaved, after one warm-up each. A variant may set up state
 * (threads, kernel registration) in `before`, which is not timed.
 */
function compare(
  variants: Record<string, { before?: () => void; run: () => void }>,
  reps = REPS,
): Record<string, Timing> {
  const times: Record<string, number[]> = {};
  const names = Object.keys(variants);
  for (const n of names) {
    variants[n]!.before?.();
    variants[n]!.run();
    times[n] = [];
  }
  for (let i = 0; i < reps; i++) {
    for (const n of names) {
      variants[n]!.before?.();
      const t0 = process.hrtime.bigint();
      variants[n]!.run();
      times[n]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  return Object.fromEntries(
    names.map((n) => {
      const t = times[n]!.sort((a, b) => a - b);
      return [n, { minMs: t[0]!, medianMs: t[Math.floor(t.length / 2)]! }];
    }),
  );
}

const withNative = () => registerDequantKernel(kernel);
const withTypedArray = () => registerDequantKernel(null);
const results: Record<string, unknown> = {
  backend: backend.backend,
  reps: REPS,
  load1Start: os.loadavg()[0],
};

// 1. Dequantising one 4096×4096 weight into a preallocated buffer.
const [R, C] = [4096, 4096];
const w = lcgValues(R * C, 3);
const dequant: Record<string, unknown>[] = [];
for (const doubleQuant of [true, false]) {
  const q = quantize4bit(w, [R, C], { quantType: 'nf4', doubleQuant });
  const out = new Float32Array(R * C);
  const t = compare({
    typedarray: { run: () => dequantize4bit(q, out) },
    native1t: { before: () => setThreads(1), run: () => kernel(q, out) },
    native2t: { before: () => setThreads(2), run: () => kernel(q, out) },
  });
  const row = { shape: [R, C], quantType: 'nf4', doubleQuant, ...t };
  dequant.push(row);
  console.log(JSON.stringify(row));
}
results.dequant = dequant;
setThreads(2);

// 2. One layer's forward: dense Linear vs Linear4bit (native kernel / TypedArray loop): a 4096×4096
// layer on 8 tokens (dequantisation-bound) and stories260K's 172×64 gate_proj on 8 × 256 tokens.
// The tidy callbacks return nothing: tf.tidy walks a returned TypedArray element by element looking
// for tensors (~1 s for a 2048×172 result under load), which would swamp the forward.
const forward: Record<string, unknown>[] = [];
for (const [outF, inF, tokens] of [
  [4096, 4096, 8],
  [172, 64, 2048],
] as const) {
  manualSeed(1);
  const dense = new Linear(inF, outF, { bias: false });
  const q4 = Linear4bit.fromLinear(dense, { quantType: 'nf4', doubleQuant: true });
  const x = tf.randomNormal([tokens, inF], 0, 1, 'float32', 5);
  const run = (m: { forward(x: tf.Tensor): tf.Tensor }) => () =>
    tf.tidy(() => {
      m.forward(x).dataSync();
    });
  const t = compare({
    dense: { run: run(dense) },
    linear4bitNative: { before: withNative, run: run(q4) },
    linear4bitTypedarray: { before: withTypedArray, run: run(q4) },
  });
  withNative();
  const row = { outF, inF, tokens, threads: 2, ...t };
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
  const f32Model = await loadModel(MODEL);
  const q4Model = await loadModel(MODEL, { quantize: 'nf4', doubleQuant: true });
  const ids = tf.tensor2d(
    Array.from({ length: 4 }, (_, b) => Array.from({ length: 256 }, (_, t) => (b * 131 + t * 7) % 512)),
    [4, 256],
    'int32',
  );
  const fwd = (m: typeof f32Model) => () =>
    tf.tidy(() => {
      m.forward({ inputIds: ids }).logits.dataSync();
    });
  const t = compare({
    f32: { run: fwd(f32Model) },
    nf4dqNative: { before: withNative, run: fwd(q4Model) },
    nf4dqTypedarray: { before: withTypedArray, run: fwd(q4Model) },
  });
  withNative();
  results.stories260K = { batch: [4, 256], threads: 2, ...t };
  console.log(JSON.stringify(results.stories260K));
  ids.dispose();
  f32Model.dispose();
  q4Model.dispose();
}
results.load1End = os.loadavg()[0];

const file = path.resolve(import.meta.dirname, 'results/qlora_bench.json');
fs.writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
console.log(`wrote ${file}`);
