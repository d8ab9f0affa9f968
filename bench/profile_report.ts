/**
 * The kernel table printed by bench/profile_step.ts and bench/profile_tiny.ts: per kernel (or per
 * kernel and input shapes under LOWRANK_PROFILE=shapes) ms/step, share of the step, calls/step;
 * then the time outside kernels and the cpu-path (tfjs JS) kernels above 5% of a step — issue 2's
 * rule is that none may be.
 */
import { kernelProfile } from '../src/tensor/native/profile.js';

/** CPU time of this process (all threads) in ms: with LOWRANK_THREADS=1 it tracks the work done
 * even while other processes share the cores and stretch wall-clock times. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export function printProfile(stepMs: number, steps: number, rows = 30): void {
  const profile = kernelProfile();
  const wide = process.env.LOWRANK_PROFILE === 'shapes' ? 60 : 24;
  const total = profile.reduce((a, k) => a + k.ms, 0) / steps;
  for (const k of profile.slice(0, rows))
    console.log(
      `${k.kernel.padEnd(wide)} ${k.native ? 'native' : 'cpu   '} ${(k.ms / steps).toFixed(2).padStart(8)} ms ${((100 * k.ms) / (stepMs * steps)).toFixed(1).padStart(5)}% calls ${(k.calls / steps).toFixed(0)}`,
    );
  const slow = profile.filter((k) => !k.native && k.ms / steps > 0.05 * stepMs);
  const calls = profile.reduce((a, k) => a + k.calls, 0) / steps;
  console.log(
    `kernels ${total.toFixed(1)} ms/step of ${stepMs.toFixed(1)} (${((100 * total) / stepMs).toFixed(0)}%), ${calls.toFixed(0)} kernel calls/step; cpu-path kernels above 5% of a step: ${slow.map((k) => `${k.kernel} ${((100 * k.ms) / steps / stepMs).toFixed(1)}%`).join(', ') || 'none'}`,
  );
}
