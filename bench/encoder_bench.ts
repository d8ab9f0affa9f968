/**
 * Issue 17's training-step benchmark of the reference encoder, in one run (not a test):
 *   node --import tsx bench/encoder.ts [--steps 5] [--reps 3] [--threads N]
 *     [--variants lora,lora-ada,adalora,full] [--parity-steps 2] [--json out.json]
 * For each repetition and variant, lowrank native (bench/step_worker.ts) and plain PyTorch
 * (bench/torch_bench.py, same shapes, same thread count) each in their own process, alternated so
 * load changes hit both; medians and ranges over the repetitions. The GEMM bound is the step's GEMM
 * FLOPs (bench/encoder_flops.ts) over the best direct `cblas_sgemm` rate measured at the step's
 * shapes in this run. The shape-honest bound times every product of the step (bench/encoder_flops.ts
 * `stepGemms`: real m, n, k and transposes, attention per (batch, head) block) one by one with the
 * addon's sgemm, best of several calls per distinct shape, and sums count × time. Parity: the losses of the first `--parity-steps` steps from the seeded start on
 * native against the tfjs cpu backend (the composed reference ops), per variant.
 * Ratios in the JSON and table are same-run; the load average is printed before and after.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { backendInfo, initBackend, setThreads } from '../src/tensor/backend.js';
import { loadAddon, userEnvironment } from '../src/tensor/native/addon.js';
import { REFERENCE } from './encoder.js';
import { stepGemmFlops, stepGemms, type Gemm } from './encoder_flops.js';

// Native and cpu run the same seeded step (same dropout masks, see src/tensor/ops/dropout.ts); only
// float32 summation orders differ (BLAS vs the cpu kernels' loops), which moves a loss of ~0.7 by a
// few 1e-7 per step (tests/native_training.test.ts uses 1e-5 on a tiny model).
const PARITY_RTOL = 1e-4;
const PYTHON = '/usr/bin/python3';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const threads = setThreads(args.includes('--threads') ? Number(opt('threads', '0')) : undefined);
const steps = opt('steps', '5');
const reps = Number(opt('reps', '3'));
const paritySteps = Number(opt('parity-steps', '2'));
const variants = opt('variants', 'lora,lora-ada,adalora,full').split(',');
// OpenBLAS workers spin 2^timeout cycles after each GEMM (OpenBLAS's default 28) before sleeping.
// Both sides read the user's value (an A/B sets it for the whole run).
// PyTorch runs at its fastest setting seen here: passive OpenMP waiting unless the user chose
// otherwise (its default spinning made this step ~2× slower on 2 cores: 1107 vs ~560 ms, 8 Dec
// 2026) and OpenBLAS's own timeout (28 beat 4 for PyTorch: ~560 vs ~600 ms).
const torchEnv = {
  ...userEnvironment(),
  OMP_WAIT_POLICY: userEnvironment().OMP_WAIT_POLICY ?? 'passive',
};
const blasTimeout = {
  lowrank: process.env.OPENBLAS_THREAD_TIMEOUT ?? 'OpenBLAS default',
  pytorch: userEnvironment().OPENBLAS_THREAD_TIMEOUT ?? 'OpenBLAS default',
};
const load = () => loadavg().map((l) => Number(l.toFixed(2)));

interface Cell {
  ms?: number | null;
  losses?: number[];
  peakRssMb?: number;
  error?: string;
}

function worker(backend: string, variant: string, n: string): Cell {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/step_worker.ts', backend, variant, n], {
    encoding: 'utf8',
    env: { ...process.env, LOWRANK_THREADS: String(threads) },
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{'))
    return { error: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ') };
  return JSON.parse(line) as Cell;
}

function torch(variant: string): Cell {
  if (!existsSync(PYTHON)) return { error: `${PYTHON} not found` };
  const r = spawnSync(PYTHON, ['bench/torch_bench.py', 'step', variant, String(threads), steps], {
    encoding: 'utf8',
    env: torchEnv,
  });
  if (r.status !== 0) return { error: r.stderr.trim().split('\n').slice(-2).join(' ') };
  return JSON.parse(r.stdout) as Cell;
}

/** Best direct cblas_sgemm rate (GFLOP/s) over the step's main shapes, best of 10 each. */
function sgemmRate(): { gflops: number; shapes: { mnk: number[]; gflops: number }[] } {
  const addon = loadAddon();
  if (!addon) throw new Error('bench: the native addon is not built');
  const shapes: [number, number, number, boolean, boolean][] = [
    [1024, 384, 384, false, true],
    [1024, 1536, 384, false, true],
    [1024, 384, 1536, false, true],
    [1024, 384, 1536, false, false],
    [1536, 384, 1024, true, false],
  ];
  const rows = shapes.map(([m, n, k, ta, tb]) => {
    const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
    const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
    const c = new Float32Array(m * n);
    let best = Infinity;
    for (let i = 0; i < 12; i++) {
      const t0 = performance.now();
      addon.sgemm(a, b, c, m, n, k, ta, tb);
      if (i >= 2) best = Math.min(best, performance.now() - t0);
    }
    return { mnk: [m, n, k], gflops: (2 * m * n * k) / best / 1e6 };
  });
  return { gflops: Math.max(...rows.map((r) => r.gflops)), shapes: rows };
}

/** Best time (ms) of the addon's sgemm at each distinct product shape, cached across variants. */
const gemmMs = new Map<string, number>();
function timeGemm(g: Gemm): number {
  const key = `${g.m},${g.n},${g.k},${g.transA},${g.transB}`;
  const known = gemmMs.get(key);
  if (known !== undefined) return known;
  const addon = loadAddon()!;
  const a = Float32Array.from({ length: g.m * g.k }, (_, i) => Math.sin(i));
  const b = Float32Array.from({ length: g.k * g.n }, (_, i) => Math.cos(i));
  const c = new Float32Array(g.m * g.n);
  // tiny products take microseconds: time batches of calls so timer resolution does not dominate
  const per = Math.max(1, Math.min(64, Math.ceil(2e7 / (2 * g.m * g.n * g.k))));
  let best = Infinity;
  for (let i = 0; i < 12; i++) {
    const t0 = performance.now();
    for (let j = 0; j < per; j++) addon.sgemm(a, b, c, g.m, g.n, g.k, g.transA, g.transB);
    if (i >= 2) best = Math.min(best, (performance.now() - t0) / per);
  }
  gemmMs.set(key, best);
  return best;
}

/** The shape-honest GEMM bound of a variant's step: Σ count × best sgemm time of each product. */
function shapeBound(variant: string): { ms: number; gemms: (Gemm & { ms: number })[] } {
  const gemms = stepGemms(REFERENCE, variant).map((g) => ({ ...g, ms: timeGemm(g) }));
  return { ms: gemms.reduce((a, g) => a + g.count * g.ms, 0), gemms };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const range = (xs: number[], d = 0) =>
  xs.length ? `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}` : '—';

await initBackend('native');
const loadBefore = load();
console.log(
  `# reference encoder step — ${backendInfo().blas}, ${threads} thread(s), OPENBLAS_THREAD_TIMEOUT lowrank ${blasTimeout.lowrank} / PyTorch ${blasTimeout.pytorch}, load ${loadBefore.join(' ')}`,
);
const rate = sgemmRate();
console.log(`sgemm rate (best direct cblas_sgemm at the step's shapes): ${rate.gflops.toFixed(0)} GFLOP/s`);

const ms: Record<string, { native: number[]; torch: number[]; ratio: number[]; errors: string[] }> = {};
const firstLosses: Record<string, number[]> = {};
for (const v of variants) ms[v] = { native: [], torch: [], ratio: [], errors: [] };
for (let rep = 0; rep < reps; rep++) {
  for (const v of variants) {
    const nat = worker('native', v, steps);
    const pt = torch(v);
    const slot = ms[v]!;
    if (nat.ms) slot.native.push(nat.ms);
    else slot.errors.push(`native: ${nat.error}`);
    if (pt.ms) slot.torch.push(pt.ms);
    else slot.errors.push(`pytorch: ${pt.error}`);
    if (nat.ms && pt.ms) slot.ratio.push(nat.ms / pt.ms);
    if (nat.losses && !firstLosses[v]) firstLosses[v] = nat.losses;
    console.log(
      `rep ${rep + 1} ${v}: native ${nat.ms?.toFixed(0) ?? nat.error} ms, PyTorch ${pt.ms?.toFixed(0) ?? pt.error} ms (load ${load()[0]})`,
    );
  }
}

const parity: Record<string, { native: number[]; cpu: number[]; maxRelDiff: number; ok: boolean } | string> =
  {};
if (paritySteps > 0) {
  for (const v of variants) {
    const cpu = worker('cpu', v, String(paritySteps - 1));
    const nat = firstLosses[v]?.slice(0, paritySteps);
    if (!cpu.losses || !nat) {
      parity[v] = `not run: ${cpu.error ?? 'no native losses'}`;
      continue;
    }
    const rel = nat.map((l, i) => Math.abs(l - cpu.losses![i]!) / Math.abs(cpu.losses![i]!));
    const maxRelDiff = Math.max(...rel);
    parity[v] = { native: nat, cpu: cpu.losses, maxRelDiff, ok: maxRelDiff <= PARITY_RTOL };
  }
}

const shapeBounds = Object.fromEntries(variants.map((v) => [v, shapeBound(v)]));
console.log(
  `\n| variant | native ms | PyTorch ms | native / PyTorch | GEMM bound ms | native / bound | shape-honest bound ms | native / shape bound | parity (first ${paritySteps} losses vs cpu) |`,
);
console.log('|---|---|---|---|---|---|---|---|---|');
const rows = variants.map((v) => {
  const s = ms[v]!;
  const boundMs = (stepGemmFlops(REFERENCE, v) / (rate.gflops * 1e9)) * 1e3;
  const shape = shapeBounds[v]!;
  const p = parity[v];
  const pText =
    p === undefined
      ? 'skipped'
      : typeof p === 'string'
        ? p
        : `${p.ok ? 'ok' : 'FAIL'} (max rel ${p.maxRelDiff.toExponential(1)})`;
  const nMed = s.native.length ? median(s.native) : NaN;
  console.log(
    `| ${v} | ${nMed.toFixed(0)} (${range(s.native)}) | ${s.torch.length ? median(s.torch).toFixed(0) : '—'} (${range(s.torch)}) | ${s.ratio.length ? median(s.ratio).toFixed(2) : '—'}× (${range(s.ratio, 2)}) | ${boundMs.toFixed(0)} | ${(nMed / boundMs).toFixed(2)}× | ${shape.ms.toFixed(0)} | ${(nMed / shape.ms).toFixed(2)}× | ${pText} |`,
  );
  if (s.errors.length) console.log(`  errors: ${s.errors.join('; ')}`);
  return {
    variant: v,
    ...s,
    gemmFlops: stepGemmFlops(REFERENCE, v),
    boundMs,
    shapeBoundMs: shape.ms,
    shapeGemms: shape.gemms,
    parity: p,
  };
});
const pairRatio = (a: string, b: string) => {
  const [x, y] = [ms[a], ms[b]];
  if (!x || !y) return null;
  const n = Math.min(x.native.length, y.native.length);
  return Array.from({ length: n }, (_, i) => x.native[i]! / y.native[i]!);
};
const adaVsLora = pairRatio('adalora', 'lora-ada');
if (adaVsLora?.length)
  console.log(
    `\nAdaLoRA / LoRA (same targets, r 12), native, per repetition: ${adaVsLora.map((r) => r.toFixed(2)).join(', ')}`,
  );
const loadAfter = load();
console.log(`load before ${loadBefore.join(' ')}, after ${loadAfter.join(' ')}`);
const file = opt('json', '');
if (file) {
  const result = {
    env: { ...backendInfo(), threads, blasTimeout, loadBefore, loadAfter, date: new Date().toISOString() },
    rate,
    rows,
    adaVsLora,
  };
  writeFileSync(file, JSON.stringify(result, null, 2));
  console.log(`wrote ${file}`);
}
