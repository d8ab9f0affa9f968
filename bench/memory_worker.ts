/**
 * One cell of the QLoRA memory benchmark (bench/memory.ts), in its own process so its peak RSS is its
 * own. Loads a Hugging Face folder (f32 or NF4 + double quantisation, streaming), then optionally runs
 * LoRA steps (r 16, alpha 32, q_proj + v_proj, AdamW, causal-LM loss on random ids) and prints one
 * JSON line: load seconds, RSS before/peak/after the load, tensor bytes held, and per step its
 * seconds and the peak RSS of the steps. Options: `checkpoint` (activation checkpointing), `chunked`
 * (chunked vocabulary loss), `trim` (malloc_trim after the load and after each step), `half` (with
 * NF4: embeddings and a tied head in float16, `embeddingDtype: 'float16'`). Token ids are
 * `(i·7919 + 13) mod vocab` (bench/torch_llama.py uses the same), so the first-step loss is
 * comparable across implementations; with `parity` the worker also computes it on the plain path
 * (no checkpointing, no chunking, no gradients) before the step and reports both.
 *   node --import tsx --expose-gc bench/memory_worker.ts '{"path":"/tmp/m","quantize":"nf4","batch":1,"seq":256,"steps":1}'
 */
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { memoryByCategory, totalBytes } from '../src/nn/memory_report.js';
import { getPeftModel, LoraConfig } from '../src/tuners/index.js';
import { AdamW } from '../src/training/optim.js';
import { processMemory, resetPeakRss } from '../src/util/process_memory.js';
import { allocatorStats, releaseMemory, trimAllocator } from '../src/tensor/memory.js';
import { setGradientCheckpointing } from '../src/nn/checkpoint.js';
import { setChunkedLoss } from '../src/models/chunked_head.js';

interface Cell {
  path: string;
  quantize?: 'nf4';
  batch?: number;
  seq?: number;
  steps?: number;
  checkpoint?: boolean;
  chunked?: boolean;
  trim?: boolean;
  /** With quantize: `embeddingDtype: 'float16'`. */
  half?: boolean;
  parity?: boolean;
  /** Record the peak of tensor bytes (tf.profile: slower steps, so time without it). */
  profile?: boolean;
}

/** RSS after a GC and the background sweep that frees ArrayBuffer memory (needs --expose-gc). */
async function settledRss(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 300));
  }
  return processMemory().rss;
}

const cell = JSON.parse(process.argv[2] ?? '{}') as Cell;
const MB = 2 ** 20;
const mb = (b: number) => Math.round(b / MB);
await initBackend(process.env.LOWRANK_BACKEND ?? 'native');
globalThis.gc?.();
const before = processMemory().rss;
resetPeakRss();
let t0 = performance.now();
const base = await loadModel(
  cell.path,
  cell.quantize
    ? { quantize: 'nf4', doubleQuant: true, ...(cell.half ? { embeddingDtype: 'float16' as const } : {}) }
    : {},
);
const loadSeconds = (performance.now() - t0) / 1000;
if (cell.trim) trimAllocator();
const afterLoad = processMemory();
const held = totalBytes(memoryByCategory(base));
const out: Record<string, unknown> = {
  quantize: cell.quantize ? `${cell.quantize}${cell.half ? '+f16 emb' : ''}` : 'f32',
  loadSeconds,
  rssBeforeMb: mb(before),
  loadPeakMb: mb(afterLoad.peakRss),
  afterLoadMb: mb(afterLoad.rss),
  heldMb: mb(held),
};
if (cell.steps) {
  const [batch, seq] = [cell.batch ?? 1, cell.seq ?? 256];
  const model = getPeftModel(
    base,
    new LoraConfig({ r: 16, loraAlpha: 32, targetModules: ['q_proj', 'v_proj'], taskType: 'CAUSAL_LM' }),
  );
  model.train();
  const named = model.trainableParameters();
  const vars = named.map(([, v]) => v);
  const opt = new AdamW(named, { lr: 1e-4 });
  const vocab = base.config.vocab_size as number;
  const ids = tf.tensor2d(
    Int32Array.from({ length: batch * seq }, (_, i) => (i * 7919 + 13) % vocab),
    [batch, seq],
    'int32',
  );
  let plainLoss: number | undefined;
  if (cell.parity) {
    const l = tf.tidy(() => model.forward({ inputIds: ids, labels: ids }).loss!);
    plainLoss = (await l.data())[0]!;
    l.dispose();
    releaseMemory();
  }
  if (cell.checkpoint) setGradientCheckpointing(model, true);
  if (cell.chunked) setChunkedLoss(model, true);
  const pool = (tf.backend() as unknown as { pool?: { stats(): Record<string, number> } }).pool;
  resetPeakRss();
  let tensorPeakMb = 0;
  const losses: number[] = [];
  const stepSeconds: number[] = [];
  const stepCpuSeconds: number[] = [];
  let loss = 0;
  for (let i = 0; i < cell.steps; i++) {
    t0 = performance.now();
    const cpu0 = process.cpuUsage();
    let value: tf.Scalar | undefined;
    let grads: tf.NamedTensorMap = {};
    const run = () => {
      ({ value, grads } = tf.variableGrads(() => {
        const o = model.forward({ inputIds: ids, labels: ids });
        tf.dispose(o.logits);
        return o.loss as tf.Scalar;
      }, vars));
    };
    if (cell.profile) tensorPeakMb = Math.max(tensorPeakMb, mb((await tf.profile(run)).peakBytes));
    else run();
    opt.step(grads);
    loss = (await value!.data())[0]!;
    losses.push(loss);
    tf.dispose([value!, ...Object.values(grads)]);
    if (cell.trim) trimAllocator();
    stepSeconds.push((performance.now() - t0) / 1000);
    const cpu = process.cpuUsage(cpu0);
    stepCpuSeconds.push((cpu.user + cpu.system) / 1e6);
  }
  Object.assign(out, {
    batch,
    seq,
    stepSeconds,
    // user + system time of every thread (OpenBLAS, OpenMP): what the step costs, whatever the load
    stepCpuSeconds,
    checkpoint: cell.checkpoint ?? false,
    chunked: cell.chunked ?? false,
    trim: cell.trim ?? false,
    stepPeakMb: mb(processMemory().peakRss),
    tensorPeakMb: cell.profile ? tensorPeakMb : undefined,
    pool: pool?.stats(),
    mallocFreeMb: mb(allocatorStats()?.freeBytes ?? 0),
    afterStepMb: mb(processMemory().rss),
    poolFreedMb: mb(releaseMemory()),
    // V8 frees ArrayBuffer backing stores on a background sweep after the GC: give it a moment
    afterReleaseMb: mb(await settledRss()),
    tensorMb: mb(tf.memory().numBytes),
    mallocAfterRelease: Object.fromEntries(
      Object.entries(allocatorStats() ?? {}).map(([k, v]) => [k, mb(v)]),
    ),
    loss,
    losses,
    plainLoss,
    tensors: tf.memory().numTensors,
  });
}
console.log(JSON.stringify(out));
