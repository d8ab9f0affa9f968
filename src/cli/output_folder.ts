/**
 * Output folders the CLI may write into without destroying anything the user did not ask it to:
 * a new folder, an empty one, or (demo) a folder the demo itself marked earlier. Anything else needs
 * `--force`, and even then only the entries the command writes are replaced; other files stay.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from './args.js';
import { FileError } from './fs_errors.js';
import { writeFileAtomicSync } from '../run/files.js';

/** The demo's marker file: a folder holding it was made by `lowrank demo`. */
export const DEMO_MARKER = 'lowrank-demo.json';

/** The entries `lowrank demo` writes into its folder (the only ones it ever replaces). */
export const DEMO_ENTRIES = ['data', 'base-init', 'pretrain', 'planted', 'lora', 'adalora', '.lowrank-cache'];

function listOrUndefined(dir: string, flag: string): string[] | undefined {
  try {
    const st = fs.statSync(dir);
    if (!st.isDirectory())
      throw new UsageError(`${flag} ${dir}: is a file, not a folder; choose a folder path`);
    return fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (e instanceof UsageError) throw e;
    throw FileError.from(e, dir, flag);
  }
}

function preview(all: string[]): string {
  const names = [...all].sort();
  const shown = names.slice(0, 3).join(', ');
  return names.length > 3 ? `${shown}, … (${names.length} entries)` : shown;
}

/**
 * Makes `dir` ready for the demo: creates it (new), uses it (empty, or marked by an earlier demo: only
 * the demo's own entries are removed), or refuses with a usage error (anything else, unless `force`:
 * then the demo's entries are replaced and every other file is left as it is). Writes the marker first.
 * @example claimDemoFolder('runs/demo', false);
 */
export function claimDemoFolder(dir: string, force: boolean): void {
  const names = listOrUndefined(dir, '--output');
  const marked = names?.includes(DEMO_MARKER) ?? false;
  if (names && names.length > 0 && !marked && !force) {
    throw new UsageError(
      `--output ${dir}: the folder already holds files the demo did not make (${preview(names)}); ` +
        'choose a new folder (the demo creates it), or pass --force to write the demo beside them (they are left untouched)',
    );
  }
  try {
    fs.mkdirSync(dir, { recursive: true });
    for (const n of DEMO_ENTRIES)
      if (names?.includes(n)) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
    writeFileAtomicSync(
      path.join(dir, DEMO_MARKER),
      JSON.stringify({ madeBy: 'lowrank demo', entries: DEMO_ENTRIES, state: 'running' }, null, 2) + '\n',
    );
  } catch (e) {
    throw FileError.from(e, dir, '--output');
  }
}

/**
 * Refuses an output folder that is not new or empty (unless `force`), and one that is (or contains,
 * or sits inside) a protected folder such as the base model's: writing there would replace the very
 * files the command reads. `protect` lists [description, path] pairs.
 * @example checkOutputFolder('merged', '--output', false, [['the base model (--model)', 'stories260K']]);
 */
export function checkOutputFolder(
  dir: string,
  flag: string,
  force: boolean,
  protect: [string, string | undefined][] = [],
): void {
  const out = path.resolve(dir);
  for (const [what, p] of protect) {
    if (!p) continue;
    const prot = path.resolve(p);
    const protDir = fs.existsSync(prot) && fs.statSync(prot).isFile() ? path.dirname(prot) : prot;
    if (out === protDir)
      throw new UsageError(
        `${flag} ${dir}: is the folder of ${what}; writing there would replace the files it is read from. Choose another ${flag}`,
      );
  }
  const names = listOrUndefined(dir, flag);
  if (names && names.length > 0 && !force)
    throw new UsageError(
      `${flag} ${dir}: the folder is not empty (${preview(names)}); choose a new or empty folder, or pass --force to replace the files this command writes there`,
    );
}

export { writeFileAtomicSync };
