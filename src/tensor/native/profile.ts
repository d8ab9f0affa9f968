/**
 * Per-kernel wall-clock profile of the native backend, on when `LOWRANK_PROFILE=1` (bench/ uses
 * it to find the kernels that dominate a training step); `LOWRANK_PROFILE=shapes` keys the table by
 * kernel and input shapes (and transpose flags), to find which GEMM of a layer is slow. Off,
 * {@link profiled} returns the kernel unchanged, so normal runs pay nothing.
 */
export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
  native: boolean;
}

const table = new Map<string, KernelTime>();

export const profilingEnabled = (): boolean =>
  process.env.LOWRANK_PROFILE === '1' || process.env.LOWRANK_PROFILE === 'shapes';

interface ShapedArgs {
  inputs?: Record<string, { shape?: number[] } | undefined>;
  attrs?: Record<string, unknown>;
}

/** `Kernel [2,3]x[3,4] tA tB` under LOWRANK_PROFILE=shapes, else the kernel name. */
function keyOf(name: string, args: unknown[]): string {
  if (process.env.LOWRANK_PROFILE !== 'shapes') return name;
  const a = args[0] as ShapedArgs | undefined;
  const shapes = Object.values(a?.inputs ?? {})
    .map((t) => JSON.stringify(t?.shape ?? []))
    .join('x');
  const flags = ['transposeA', 'transposeB'].filter((f) => a?.attrs?.[f] === true).join(' ');
  return `${name} ${shapes} ${flags}`.trim();
}

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
    const key = keyOf(name, args);
    const entry = table.get(key) ?? { kernel: key, calls: 0, ms: 0, native };
    entry.calls += 1;
    entry.ms += performance.now() - t0;
    table.set(key, entry);
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
