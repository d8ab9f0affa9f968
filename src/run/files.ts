/** Atomic file writes (temp file + fsync + rename) for run folders and every file lowrank writes. */
import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes a file atomically: a temp file in the same folder, fsync, rename (a reader never sees half a
 * file; a failure leaves the old file, and no temp file, behind).
 * @example writeFileAtomicSync('runs/a/config.json', '{}');
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
