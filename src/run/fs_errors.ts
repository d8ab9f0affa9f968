/**
 * File-system failures as lowrank reports them: typed (`FileError`, exit 1), naming the path the user
 * gave and the flag it came from, the cause in words (not a bare `EACCES`), and what to do.
 */
import { LowrankError } from '../errors.js';

const CAUSES: Record<string, [string, string]> = {
  ENOENT: ['does not exist', 'check the path'],
  EACCES: ['permission denied', 'choose a folder you can write to, or fix its permissions'],
  EPERM: ['operation not permitted', 'choose a folder you can write to, or fix its permissions'],
  EEXIST: ['already exists', 'choose a new path'],
  ENOTDIR: ['a part of the path is a file, not a folder', 'check the path'],
  EISDIR: ['is a folder, not a file', 'give a file path'],
  ENOSPC: ['no space left on the device', 'free some space or choose another disk'],
  EROFS: ['the file system is read-only', 'choose a writable location'],
  ENAMETOOLONG: ['the path is too long', 'choose a shorter path'],
};

/** A file or folder lowrank could not read or write (the CLI exits 1). */
export class FileError extends LowrankError {
  /**
   * Wraps a Node fs error; `userPath` is the path as the user gave it (reported instead of internal
   * paths such as a cache folder inside it), `flag` the option it came from.
   * @example throw FileError.from(e, 'runs/x', '--output');
   */
  static from(e: unknown, userPath: string, flag?: string): Error {
    if (e instanceof LowrankError || !(e instanceof Error)) return e as Error;
    const code = (e as NodeJS.ErrnoException).code;
    if (!code) return e;
    const [cause, fix] = CAUSES[code] ?? [`${code}: ${e.message}`, 'check the path'];
    const inner = (e as NodeJS.ErrnoException).path;
    const detail = inner && !samePath(inner, userPath) ? ` (at ${inner})` : '';
    return new FileError(`${flag ? `${flag} ` : ''}${userPath}`, `${cause}${detail}`, undefined, fix);
  }
}

function samePath(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}
