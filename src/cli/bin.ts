/**
 * The process entry of `lowrank`: `bin/lowrank.js` runs the compiled copy (dist/cli/bin.js); inside a
 * clone `npm run lowrank -- <args>` runs this file from source through tsx. It wires the process's
 * streams to `main` and ends quietly when the reader of stdout goes away (`lowrank inspect … | head -1`):
 * a closed pipe is the reader's choice, not an error (exit 0, as `yes | head -1` does).
 */
import { main } from './main.js';

/**
 * True for the error a write to a closed pipe raises.
 * @example isBrokenPipe(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })); // true
 */
export function isBrokenPipe(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === 'EPIPE';
}

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (isBrokenPipe(e)) process.exit(process.exitCode ?? 0);
    throw e;
  });
}

process.exitCode = await main(process.argv.slice(2));
