/**
 * QLoRA memory benchmark (issue 18; not a test): Llama-shaped Hugging Face folders with random weights
 * at the SmolLM-135M, SmolLM-360M and TinyLlama-1.1B shapes (src/testing/random_llama.ts), each
 * measurement in its own child process (bench/memory_worker.ts, bench/torch_llama.py):
 * load time and peak RSS in f32 and NF4, and a LoRA step's time and peak RSS at batch × seq.
 *
 *   node --import tsx bench/memory.ts [--dir /tmp/lowrank-mem] [--shapes 135M,360M] \
 *     [--cells load,step] [--batches 1,4] [--seq 256] [--steps 2] [--torch] \
 *     [--opts checkpoint,chunked,trim,half] [--parity] [--js]
 *
 * `--opts` turns on activation checkpointing, the chunked vocabulary loss, malloc_trim and (`half`,
 * NF4 cells only) float16 embeddings in the lowrank cells; `--parity` makes each step cell also compute the first-step loss on the plain path
 * (and torch uses the same token ids, so its first loss is comparable); `--js` runs the worker as
 * plain JavaScript (bundled once with esbuild into .bench/js/) instead of through tsx, whose
 * transpiler adds ~90 MB to every lowrank RSS that a user of the compiled package does not pay.
 *
 * Folders are generated once under --dir (F32: 0.54 / 1.45 / 4.4 GB). Prints one JSON line per cell,
 * then a markdown table (docs/qlora.md). Say the machine load (`uptime`) with any number.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LLAMA_SHAPES, writeRandomLlama } from '../src/testing/random_llama.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const dir = flag('dir', '/tmp/lowrank-mem');
const shapes = flag('shapes', '135M,360M').split(',') as (keyof typeof LLAMA_SHAPES)[];
const cells = flag('cells', 'load,step').split(',');
const batches = flag('batches', '1').split(',').map(Number);
const seq = Number(flag('seq', '256'));
const steps = Number(flag('steps', '2'));
const withTorch = process.argv.includes('--torch');
const opts = flag('opts', '')
  .split(',')
  .filter((o) => o !== '');
const parity = process.argv.includes('--parity');
const asJs = process.argv.includes('--js');
const worker = join(import.meta.dirname, 'memory_worker.ts');
const torchScript = join(import.meta.dirname, 'torch_llama.py');

/** The worker as one ESM file (node_modules external) three levels below the repo, like src/tensor/native/. */
let bundled: string | undefined;
function bundledWorker(): string {
  if (bundled) return bundled;
  const out = join(import.meta.dirname, '..', '.bench', 'js', 'worker', 'memory_worker.mjs');
  const r = spawnSync(
    'npx',
    [
      'esbuild',
      worker,
      '--bundle',
      '--platform=node',
      '--format=esm',
      '--packages=external',
      `--outfile=${out}`,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`esbuild failed: ${r.stderr}`);
  return (bundled = out);
}

type Row = Record<string, unknown> & { shape: string; impl: string };
const rows: Row[] = [];

function run(shape: string, impl: string, cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  let row: Row;
  try {
    row = { shape, impl, ...(JSON.parse(line) as object) };
  } catch {
    row = { shape, impl, error: (r.stderr || line || `exit ${r.status}`).slice(-300) };
  }
  console.log(JSON.stringify(row));
  rows.push(row);
}

for (const shape of shapes) {
  const folder = join(dir, shape);
  if (!existsSync(join(folder, 'model.safetensors'))) writeRandomLlama(folder, LLAMA_SHAPES[shape], 0);
  const lowrank = (cell: Record<string, unknown>) => {
    const full: Record<string, unknown> = { ...cell, ...Object.fromEntries(opts.map((o) => [o, true])) };
    if (parity && cell.steps) full.parity = true;
    const entry = asJs ? ['--expose-gc', bundledWorker()] : ['--import', 'tsx', '--expose-gc', worker];
    run(shape, 'lowrank', process.execPath, [...entry, JSON.stringify(full)]);
  };
  if (cells.includes('load')) for (const q of [undefined, 'nf4']) lowrank({ path: folder, quantize: q });
  if (cells.includes('step')) {
    for (const batch of batches) {
      for (const q of ['nf4', undefined]) lowrank({ path: folder, quantize: q, batch, seq, steps });
      if (withTorch)
        run(shape, 'torch', '/usr/bin/python3', [torchScript, folder, `${batch}`, `${seq}`, `${steps}`]);
    }
  }
}

const fmt = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) ? `${v}` : v.toFixed(1)) : '–');
const firstLoss = (r: Row) => ((r.losses as number[] | undefined)?.[0] ?? undefined)?.toFixed(6) ?? '–';
console.log(
  '\n| shape | impl | weights | load s | load peak MB | after load MB | held MB | batch×seq | step s | step peak MB | first loss | plain-path loss |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const steps = r.stepSeconds as number[] | undefined;
  const plain = typeof r.plainLoss === 'number' ? r.plainLoss.toFixed(6) : '–';
  console.log(
    `| ${r.shape} | ${r.impl} | ${(r.quantize as string) ?? 'f32'} | ${fmt(r.loadSeconds)} | ${fmt(r.loadPeakMb)} | ${fmt(r.afterLoadMb)} | ${fmt(r.heldMb)} | ${r.batch ? `${r.batch}×${r.seq}` : '–'} | ${steps ? steps.map((s) => s.toFixed(1)).join(' / ') : '–'} | ${fmt(r.stepPeakMb)} | ${firstLoss(r)} | ${plain} |` +
      (r.error ? ` error: ${String(r.error)}` : ''),
  );
}
