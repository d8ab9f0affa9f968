/**
 * `npm run bench -- --json <file> [--steps N] [--reps N] [--threads N] [--layers N]
 *  [--variants full,lora,adalora] [--backends native,wasm] [--wasm-variants lora] [--leak N] [--no-sgemm] [--no-steps]`
 *
 * Prints tables and writes JSON (issue 2): (1) sgemm at the reference model's shapes: tfjs on the
 * native backend vs cblas_sgemm called directly from the addon vs PyTorch; (2) one training step
 * of the reference encoder per variant on native / wasm vs the same model in plain PyTorch
 * (bench/torch_bench.py), each in its own process; (3) optionally a long leak run on native.
 * Timings are medians; ratios are against PyTorch measured in the same run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { tf } from '../src/tensor/tf.js';
import { backendInfo, initBackend, setThreads } from '../src/tensor/backend.js';
import { loadAddon } from '../src/tensor/native/addon.js';
import { leakRun } from './leak.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt?: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const threads = setThreads(opt('threads') ? Number(opt('threads')) : undefined);
const reps = Number(opt('reps', '10'));
const steps = opt('steps', '3')!;
const layers = opt('layers', '6')!;
const PYTHON = '/usr/bin/python3';
const haveTorch =
  existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

/** [label, m, n, k, transA, transB]: forward, backward and issue shapes of the reference encoder. */
const SHAPES: [string, number, number, number, boolean, boolean][] = [
  ['q/k/v/out proj  x·Wᵀ', 1024, 384, 384, false, true],
  ['FFN up          x·Wᵀ', 1024, 1536, 384, false, true],
  ['FFN down        x·Wᵀ', 1024, 384, 1536, false, true],
  ['FFN up dW     dyᵀ·x', 1536, 384, 1024, true, false],
  ['FFN up dX      dy·W', 1024, 384, 1536, false, false],
  ['issue 512×768·768×768', 512, 768, 768, false, false],
  ['issue, B transposed', 512, 768, 768, false, true],
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Median and best of `reps` timed runs of two functions after two warm-ups each, run alternately
 * so that load changes on a shared machine hit both alike (the efficiency column compares them).
 * `best` is the closest to the code's own speed, `median` to what a user sees.
 */
function timePair(
  a: () => void,
  b: () => void,
): [{ median: number; best: number }, { median: number; best: number }] {
  for (const f of [a, b, a, b]) f();
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < reps; i++) {
    for (const [f, ts] of [
      [a, ta],
      [b, tb],
    ] as const) {
      const t0 = performance.now();
      f();
      ts.push(performance.now() - t0);
    }
  }
  return [
    { median: median(ta), best: Math.min(...ta) },
    { median: median(tb), best: Math.min(...tb) },
  ];
}

function benchSgemm() {
  const addon = loadAddon();
  if (!addon) return { skipped: 'native addon not built' };
  const rows = SHAPES.map(([label, m, n, k, ta, tb]) => {
    const a = tf.randomNormal(ta ? [k, m] : [m, k]);
    const b = tf.randomNormal(tb ? [n, k] : [k, n]);
    const [A, B, C] = [a.dataSync() as Float32Array, b.dataSync() as Float32Array, new Float32Array(m * n)];
    // Native kernels run synchronously: the product is complete when matMul returns.
    const [native, direct] = timePair(
      () => tf.matMul(a, b, ta, tb).dispose(),
      () => addon.sgemm(A, B, C, m, n, k, ta, tb),
    );
    tf.dispose([a, b]);
    const [nativeMs, directMs] = [native.best, direct.best];
    const gflops = (2 * m * n * k) / nativeMs / 1e6;
    const medians = { nativeMedianMs: native.median, directMedianMs: direct.median };
    return { label, m, n, k, transA: ta, transB: tb, nativeMs, directMs, ...medians, gflops };
  });
  let torch: number[] | string = 'python3-torch not available';
  if (haveTorch) {
    const shapes = JSON.stringify(SHAPES.map(([, m, n, k, ta, tb]) => [m, n, k, ta, tb]));
    const r = spawnSync(PYTHON, ['bench/torch_bench.py', 'sgemm', shapes, String(threads), String(reps)], {
      encoding: 'utf8',
    });
    torch =
      r.status === 0
        ? (JSON.parse(r.stdout) as { ms: number[] }).ms
        : `torch failed: ${r.stderr.slice(-300)}`;
  }
  console.log(`\n## sgemm (ms, best of ${reps} runs after warm-up; medians in the JSON)\n`);
  console.log(
    '| shape | m×n×k | tfjs native | cblas direct | native efficiency | PyTorch | native / PyTorch |',
  );
  console.log('|---|---|---|---|---|---|---|');
  const out = rows.map((r, i) => {
    const t = Array.isArray(torch) ? torch[i]! : null;
    const row = { ...r, torchMs: t, efficiency: r.directMs / r.nativeMs, vsTorch: t ? r.nativeMs / t : null };
    console.log(
      `| ${r.label} | ${r.m}×${r.n}×${r.k} | ${r.nativeMs.toFixed(2)} | ${r.directMs.toFixed(2)} | ${(100 * row.efficiency).toFixed(0)}% | ${t?.toFixed(2) ?? '—'} | ${row.vsTorch?.toFixed(2) ?? '—'}× |`,
    );
    return row;
  });
  if (!Array.isArray(torch)) console.log(`PyTorch skipped: ${torch}`);
  return { rows: out };
}

interface Cell {
  backend: string;
  variant: string;
  ms?: number;
  peakRssMb?: number;
  trainable?: number;
  error?: string;
}

function runCell(backend: string, variant: string): Cell {
  const cellSteps = backend === 'wasm' ? '1' : steps; // wasm is ~100× slower: one timed step
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'bench/step_worker.ts', backend, variant, cellSteps, layers],
    {
      encoding: 'utf8',
      env: { ...process.env, LOWRANK_THREADS: String(threads) },
    },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{'))
    return { backend, variant, error: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ') };
  return JSON.parse(line) as Cell;
}

function runTorch(variant: string): Cell {
  if (!haveTorch) return { backend: 'pytorch', variant, error: 'python3-torch not available' };
  if (layers !== '6')
    return { backend: 'pytorch', variant, error: 'the PyTorch script is the 6-layer reference only' };
  const r = spawnSync(PYTHON, ['bench/torch_bench.py', 'step', variant, String(threads), steps], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return { backend: 'pytorch', variant, error: r.stderr.slice(-300) };
  return { backend: 'pytorch', variant, ...(JSON.parse(r.stdout) as Omit<Cell, 'backend' | 'variant'>) };
}

function benchSteps() {
  const variants = opt('variants', 'full,lora,adalora')!.split(',');
  const backends = opt('backends', 'native,wasm')!.split(',');
  // wasm runs ~10-100× slower; `--wasm-variants lora` limits it to the cells that finish in time.
  const wasmVariants = opt('wasm-variants', variants.join(','))!.split(',');
  const cells: (Cell & { vsTorch?: number })[] = [];
  console.log(
    `\n## training step, reference encoder (${layers} layers, hidden 384, 6 heads, FFN 1536, seq 128, batch 8)\n`,
  );
  console.log('| variant | backend | ms/step | × PyTorch | peak RSS MB | trainable params |');
  console.log('|---|---|---|---|---|---|');
  for (const variant of variants) {
    const torch = runTorch(variant);
    const here = backends.filter((b) => b !== 'wasm' || wasmVariants.includes(variant));
    for (const cell of [...here.map((b) => runCell(b, variant)), torch]) {
      const ratio = cell.ms && torch.ms ? cell.ms / torch.ms : undefined;
      cells.push({ ...cell, ...(ratio ? { vsTorch: ratio } : {}) });
      const ms = cell.ms ? cell.ms.toFixed(0) : `— (${cell.error})`;
      console.log(
        `| ${variant} | ${cell.backend} | ${ms} | ${ratio ? ratio.toFixed(2) + '×' : '—'} | ${cell.peakRssMb?.toFixed(0) ?? '—'} | ${cell.trainable ?? '—'} |`,
      );
    }
  }
  return { cells };
}

await initBackend('native');
const env = {
  ...backendInfo(),
  threads,
  cores: availableParallelism(),
  loadavg: loadavg(),
  date: new Date().toISOString(),
};
console.log(
  `# lowrank bench — ${env.backend}, ${env.blas}, ${threads} thread(s), load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
const result: Record<string, unknown> = { env };
if (!args.includes('--no-sgemm')) result.sgemm = benchSgemm();
if (!args.includes('--no-steps')) result.steps = benchSteps();
if (opt('leak')) result.leak = leakRun(Number(opt('leak')));
result.loadavgAfter = loadavg();
const file = opt('json');
if (file) {
  writeFileSync(file, JSON.stringify(result, null, 2));
  console.log(`\nwrote ${file}`);
}
