/**
 * Process memory as the kernel counts it (Linux `/proc/self/status`): what a user sees in `top`,
 * as opposed to the bytes tfjs tensors hold. Used by `lowrank info` and the memory benchmark.
 * Elsewhere (or if /proc is unreadable) the current RSS comes from `process.memoryUsage()` and the
 * peak from `process.resourceUsage().maxRSS`.
 */
import * as fs from 'node:fs';

/** Resident memory of this process, bytes. */
export interface ProcessMemory {
  /** Resident set size now. */
  rss: number;
  /** Peak resident set size since start (or since the last {@link resetPeakRss}). */
  peakRss: number;
}

function statusField(text: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}

/**
 * Current and peak RSS of this process.
 *
 * @example
 * const { rss, peakRss } = processMemory(); // bytes
 */
export function processMemory(): ProcessMemory {
  let text = '';
  try {
    text = fs.readFileSync('/proc/self/status', 'utf8');
  } catch {
    // not Linux: fall back to Node's counters
  }
  const rss = statusField(text, 'VmRSS') ?? process.memoryUsage().rss;
  const peakRss = statusField(text, 'VmHWM') ?? process.resourceUsage().maxRSS * 1024;
  return { rss, peakRss: Math.max(peakRss, rss) };
}

/**
 * Resets the kernel's peak-RSS mark to the current RSS (Linux ≥ 4.0: `5` into `/proc/self/clear_refs`),
 * so a later {@link processMemory} `peakRss` is the peak of what ran in between. Returns false where
 * that is not possible (then `peakRss` keeps the peak since start).
 *
 * @example
 * if (resetPeakRss()) { load(); console.log(processMemory().peakRss); }
 */
export function resetPeakRss(): boolean {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}
