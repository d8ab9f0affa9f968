/**
 * QLoRA memory benchmark (issue 18; not a test): Llama-shaped Hugging Face folders with random weights
 * at the SmolLM-135M, SmolLM-360M and TinyLlama-1.1B shapes (src/testing/random_llama.ts), each
 * measurement in its own child process (bench/memory_worker.ts, bench/torch_llama.py):
 * load time and peak RSS in f32 and NF4, and a LoRA step's time and peak RSS at batch × seq.
 *
 *   node --import tsx bench/memory.ts [--dir /tmp/lowrank-mem] [--shapes 135M,360M] \
 *     [--cells load,step] [--batches 1,4] [--seq 256] [--steps 2] [--torch]
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
const worker = join(import.meta.dirname, 'memory_worker.ts');
const torchScript = join(import.meta.dirname, 'torch_llama.py');

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
  const lowrank = (cell: object) =>
    run(shape, 'lowrank', process.execPath, ['--import', 'tsx', '--expose-gc', worker, JSON.stringify(cell)]);
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
console.log(
  '\n| shape | impl | weights | load s | load peak MB | after load MB | held MB | batch×seq | step s | step peak MB |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const steps = r.stepSeconds as number[] | undefined;
  console.log(
    `| ${r.shape} | ${r.impl} | ${(r.quantize as string) ?? 'f32'} | ${fmt(r.loadSeconds)} | ${fmt(r.loadPeakMb)} | ${fmt(r.afterLoadMb)} | ${fmt(r.heldMb)} | ${r.batch ? `${r.batch}×${r.seq}` : '–'} | ${steps ? steps.map((s) => s.toFixed(1)).join(' / ') : '–'} | ${fmt(r.stepPeakMb)} |` +
      (r.error ? ` error: ${String(r.error)}` : ''),
  );
}
