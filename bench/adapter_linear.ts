/**
 * The adapted linear layer's kernels alone (native/src/adapter.cc) at the reference encoder's shapes
 * (1024 rows; in × out = 384×384, 1536×384, 384×1536; r = 12, dropout on): the fused forward and
 * backward with r = 0 (the base GEMMs and mask alone) and r = 12, against the six OpenBLAS sgemm
 * calls the composed path runs for the adapter's products. Best of `reps` calls each (robust to a
 * shared machine's load); `LOWRANK_THREADS` sets the threads (default: the addon's).
 *   LOWRANK_THREADS=1 node --import tsx bench/adapter_linear.ts [reps]
 */
import { loadAddon } from '../src/tensor/native/addon.js';
import { aleaStreams } from '../src/tensor/ops/dropout.js';
import { Rng } from '../src/util/rng.js';

const addon = loadAddon();
if (!addon) throw new Error('bench/adapter_linear: the native addon is not built');
if (process.env.LOWRANK_THREADS) addon.setThreads(Number(process.env.LOWRANK_THREADS));
const reps = Number(process.argv[2] ?? 40);
const rng = new Rng(5);
const ROWS = 1024;
const R = 12;
const KEEP = 0.9;

function best(f: () => void): number {
  for (let i = 0; i < 3; i++) f();
  let ms = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
}

for (const [inF, outF] of [
  [384, 384],
  [1536, 384],
  [384, 1536],
] as const) {
  const x = rng.normalArray(ROWS * inF);
  const w = rng.normalArray(outF * inF);
  const left = rng.normalArray(R * inF);
  const sB = rng.normalArray(outF * R);
  const dy = rng.normalArray(ROWS * outF);
  const [y, h, dx] = [
    new Float32Array(ROWS * outF),
    new Float32Array(ROWS * R),
    new Float32Array(ROWS * inF),
  ];
  const [dL, dS] = [new Float32Array(R * inF), new Float32Array(outF * R)];
  const mask = new Uint8Array(ROWS * inF);
  const st = aleaStreams('7', ROWS * inF);
  const states = Float64Array.from(st.states);
  const fwd = (r: number) => () =>
    addon.adapterForward(x, w, null, left, sB, y, h, mask, ROWS, inF, outF, r, 0, KEEP, states, st.chunk);
  const bwd = (r: number) => () =>
    addon.adapterBackward(dy, x, w, mask, h, left, sB, dx, dL, dS, ROWS, inF, outF, r, 0, KEEP);
  const [hh, yy, dh, dxx, dLL, dSS] = [ROWS * R, ROWS * outF, ROWS * R, ROWS * inF, R * inF, outF * R].map(
    (n) => new Float32Array(n),
  ) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  const blas = () => {
    addon.sgemm(x, left, hh, ROWS, R, inF, false, true); // h = x·Aᵀ
    addon.sgemm(hh, sB, yy, ROWS, outF, R, false, true); // delta = h·Sᵀ
    addon.sgemm(dy, sB, dh, ROWS, R, outF, false, false); // dh = dy·S
    addon.sgemm(dh, left, dxx, ROWS, inF, R, false, false); // dX_adapter = dh·A
    addon.sgemm(dh, x, dLL, R, inF, ROWS, true, false); // dA = dhᵀ·x
    addon.sgemm(dy, hh, dSS, outF, R, ROWS, true, false); // dS = dyᵀ·h
  };
  const [f0, f1, b0, b1, bl] = [fwd(0), fwd(R), bwd(0), bwd(R), blas].map(best) as number[];
  console.log(
    `in ${inF} out ${outF}: fused fwd ${f1!.toFixed(3)} ms (r=0: ${f0!.toFixed(3)}), bwd ${b1!.toFixed(3)} ms ` +
      `(r=0: ${b0!.toFixed(3)}); adapter part ${(f1! - f0! + b1! - b0!).toFixed(3)} ms vs OpenBLAS's six products ${bl!.toFixed(3)} ms`,
  );
}
