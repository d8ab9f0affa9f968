/**
 * Runs the conformance cases on a backend and compares them with the `cpu` reference (shared by the
 * Node and the browser runner; no Node-only import).
 */
import { tf } from '../../tensor/tf.js';
import type { BackendResult, CaseResult, ConformanceCase, Tolerance, Values } from './types.js';

function toleranceFor(c: ConformanceCase, output: string): Tolerance {
  let best = '';
  for (const k of Object.keys(c.tol))
    if (k !== 'default' && output.startsWith(k) && k.length > best.length) best = k;
  return best ? c.tol[best]! : c.tol.default;
}

/**
 * Compares outputs: the worst `|got − want| / (atol + rtol·max|want|)` over each output (≤ 1 passes),
 * with where it was. The relative part scales with the output's largest entry, as float32 rounding
 * of a sum scales with its terms, not with a result that cancels to near 0.
 * A length mismatch, a missing output or a NaN where the reference is finite is infinitely bad.
 * @example compareOutputs(c, cpuOut, wasmOut).worst <= 1
 */
export function compareOutputs(
  c: ConformanceCase,
  want: Record<string, Values>,
  got: Record<string, Values>,
): { worst: number; worstOutput?: string; maxAbs?: number } {
  let worst = 0;
  let worstOutput: string | undefined;
  let maxAbs: number | undefined;
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    if (!g || g.length !== w.length) return { worst: Infinity, worstOutput: name };
    const { atol, rtol } = toleranceFor(c, name);
    let scale = 0;
    for (let i = 0; i < w.length; i++) if (Math.abs(w[i]!) > scale) scale = Math.abs(w[i]!);
    const allowed = atol + rtol * scale;
    for (let i = 0; i < w.length; i++) {
      const wi = w[i]!;
      const gi = g[i]!;
      const err = Math.abs(gi - wi);
      const ratio = Number.isNaN(err) ? (Number.isNaN(wi) && Number.isNaN(gi) ? 0 : Infinity) : err / allowed;
      if (ratio > worst) {
        worst = ratio;
        worstOutput = `${name}[${i}]`;
        maxAbs = err;
      }
    }
  }
  return { worst, worstOutput, maxAbs };
}

/**
 * Every case's outputs on `cpu` (the reference). Switches the backend to cpu.
 * @example const ref = await referenceOutputs(cases);
 */
export async function referenceOutputs(
  cases: ConformanceCase[],
): Promise<Map<string, Record<string, Values>>> {
  await tf.setBackend('cpu');
  const out = new Map<string, Record<string, Values>>();
  for (const c of cases) out.set(c.name, await c.run());
  return out;
}

/**
 * Runs every case on `backend` (already registered; `tf.setBackend` is called here) and compares it
 * with `reference`. A case that throws is an `error` with its message; the backend's leaked tensors
 * are reported as a failure of that case.
 * @example const r = await runOnBackend(cases, ref, 'wasm', 'node');
 */
export async function runOnBackend(
  cases: ConformanceCase[],
  reference: Map<string, Record<string, Values>>,
  backend: string,
  runtime: BackendResult['runtime'],
): Promise<BackendResult> {
  await tf.setBackend(backend);
  const results: CaseResult[] = [];
  for (const c of cases) {
    const t0 = performance.now();
    const before = tf.memory().numTensors;
    try {
      const got = await c.run();
      const leaked = tf.memory().numTensors - before;
      const cmp = compareOutputs(c, reference.get(c.name)!, got);
      const status = cmp.worst <= 1 && leaked <= 0 ? 'pass' : 'fail';
      results.push({
        name: c.name,
        group: c.group,
        status,
        ...cmp,
        ...(leaked > 0 ? { detail: `${leaked} tensor(s) leaked` } : {}),
        ms: performance.now() - t0,
      });
    } catch (e) {
      results.push({
        name: c.name,
        group: c.group,
        status: 'error',
        worst: Infinity,
        detail: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
        ms: performance.now() - t0,
      });
    }
  }
  return { backend, runtime, cases: results };
}
