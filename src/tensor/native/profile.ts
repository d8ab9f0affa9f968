/**
 * Per-kernel wall-clock profile of the native backend, on when `LOWRANK_PROFILE=1` (bench/ uses
 * it to find the kernels that dominate a training step). Off, {@link profiled} returns the kernel
 * unchanged, so normal runs pay nothing.
 */
export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
  native: boolean;
}

const table = new Map<string, KernelTime>();

export const profilingEnabled = (): boolean => process.env.LOWRANK_PROFILE === '1';

/**
 * Wraps a kernel function so each call adds to the profile.
 *
 * @example
 * const f = profiled('Add', kernelFunc);
 */
export function profiled<A extends unknown[], R>(
  name: string,
  fn: (...args: A) => R,
  native = true,
): (...args: A) => R {
  if (!profilingEnabled()) return fn;
  return (...args: A) => {
    const t0 = performance.now();
    const r = fn(...args);
    const entry = table.get(name) ?? { kernel: name, calls: 0, ms: 0, native };
    entry.calls += 1;
    entry.ms += performance.now() - t0;
    table.set(name, entry);
    return r;
  };
}

/** Profile entries, slowest first. */
export function kernelProfile(): KernelTime[] {
  return [...table.values()].sort((a, b) => b.ms - a.ms);
}

export function resetKernelProfile(): void {
  table.clear();
}
