/**
 * What the stand-alone experiment scripts (qlora.ts, qlora_gap.ts) share: where ../shared/data is,
 * the stories260K checkpoint, and numeric `--name value` options.
 */
import path from 'node:path';

export const DATA = path.resolve(import.meta.dirname, '../../shared/data');
export const STORIES260K = `${DATA}/models/stories260K/stories260K.bin`;

const args = process.argv.slice(2);

/** The number after `--name` on the command line, or `dflt`. */
export function numberArg(name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

/** True when `--name` is on the command line. */
export const hasFlag = (name: string): boolean => args.includes(`--${name}`);
