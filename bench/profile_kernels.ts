/**
 * Times the reference encoder step's non-GEMM native kernels alone, at the step's shapes (BERT
 * 6×384, 6 heads, seq 128, batch 8), beside one sgemm of the same FLOPs as a rate anchor:
 *   node --import tsx bench/profile_kernels.ts [threads] [reps] [kernel substring]
 * Prints per kernel the minimum and median wall ms of `reps` calls, CPU ms per call (user + system
 * of the whole process, so spinning BLAS workers count), and GFLOP/s where a FLOP count applies.
 * The minimum is the figure to compare on a shared machine; state `uptime` with it.
 */
import { loadAddon, type NativeAddon } from '../src/tensor/native/addon.js';
import { aleaStreams } from '../src/tensor/ops/dropout.js';

const threads = Number(process.argv[2] ?? 2);
const reps = Number(process.argv[3] ?? 20);
const only = process.argv[4] ?? '';
const addon: NativeAddon =
  loadAddon() ??
  (() => {
    throw new Error('native addon not built');
  })();
addon.setThreads(threads);

const [B, T, H, D, FF] = [8, 128, 6, 64, 1536];
const W = H * D;
const ROWS = B * T;

function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + seed) * 0.8;
  return a;
}

interface Case {
  name: string;
  flops?: number;
  run: () => void;
}

function cases(): Case[] {
  const q = filled(ROWS * W, 1),
    k = filled(ROWS * W, 2),
    v = filled(ROWS * W, 3);
  const out = new Float32Array(ROWS * W),
    probs = new Float32Array(B * H * T * T);
  const dq = new Float32Array(ROWS * W),
    dk = new Float32Array(ROWS * W),
    dv = new Float32Array(ROWS * W);
  const mask = new Float32Array(B * T); // padding mask [B, 1, 1, T]: strides [T, 0, 0, 1]
  for (let b = 0; b < B; b++) for (let t = 100 + b * 3; t < T; t++) mask[b * T + t] = -1e9;
  const maskStrides = Int32Array.from([T, 0, 0, 1]);
  const attnFlops = 2 * 2 * B * H * T * T * D; // q·kᵀ and p·v
  const h = filled(ROWS * W, 4),
    res = filled(ROWS * W, 5),
    g = filled(W, 6),
    beta = filled(W, 7);
  const y = new Float32Array(ROWS * W),
    sum = new Float32Array(ROWS * W);
  const mean = new Float32Array(ROWS),
    rstd = new Float32Array(ROWS),
    m8 = new Uint8Array(ROWS * W);
  const { states: list, chunk } = aleaStreams('5', ROWS * W);
  const states = Float64Array.from(list);
  const dg = new Float32Array(W),
    db = new Float32Array(W);
  const xf = filled(ROWS * FF, 8),
    of = new Float32Array(ROWS * FF),
    dyf = filled(ROWS * FF, 9);
  const mult = new Float32Array(ROWS * W);
  const a = filled(ROWS * W, 10),
    wmat = filled(W * W, 11),
    c = new Float32Array(ROWS * W);
  return [
    {
      name: 'sgemm 1024x384x384',
      flops: 2 * ROWS * W * W,
      run: () => addon.sgemm(a, wmat, c, ROWS, W, W, false, true),
    },
    {
      name: 'attentionForward',
      flops: attnFlops,
      run: () => addon.attentionForward(q, k, v, mask, maskStrides, out, probs, B, T, T, H, D, 0.125),
    },
    {
      name: 'attentionBackward',
      flops: 2 * attnFlops,
      run: () => addon.attentionBackward(out, q, k, v, probs, dq, dk, dv, B, T, T, H, D, 0.125),
    },
    {
      name: 'addNormForward (dropout 0.1)',
      run: () =>
        addon.addNormForward(h, res, g, beta, y, sum, mean, rstd, m8, ROWS, W, 1e-12, 0.9, states, chunk),
    },
    {
      name: 'addNormBackward',
      run: () => addon.addNormBackward(y, sum, g, mean, rstd, m8, dq, dk, dg, db, ROWS, W, 0.9),
    },
    { name: 'gelu forward [1024,1536]', run: () => addon.gelu(xf, of, null, false) },
    { name: 'gelu backward [1024,1536]', run: () => addon.gelu(xf, of, dyf, false) },
    { name: 'dropout [1024,384]', run: () => addon.dropout(h, y, mult, 0.9, states, chunk) },
  ];
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

console.log(`threads ${threads}, reps ${reps}, blas ${addon.info().blas}`);
for (const c of cases().filter((x) => x.name.includes(only))) {
  for (let i = 0; i < 3; i++) c.run(); // warm-up (pages, thread pools)
  const times: number[] = [];
  const cpu0 = cpuMs();
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    c.run();
    times.push(performance.now() - t0);
  }
  const cpu = (cpuMs() - cpu0) / reps;
  times.sort((x, y) => x - y);
  const min = times[0]!,
    med = times[times.length >> 1]!;
  const rate = c.flops ? ` ${(c.flops / min / 1e6).toFixed(1)} GFLOP/s at min` : '';
  console.log(
    `${c.name.padEnd(30)} min ${min.toFixed(3)} ms  median ${med.toFixed(3)} ms  cpu ${cpu.toFixed(3)} ms${rate}`,
  );
}
