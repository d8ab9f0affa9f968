/**
 * The CLI's checks of a `lowrank train` run folder (the folder itself is written by `src/run/run_folder.ts`): `config.json` (resolved options), `run.json` (derived facts),
 * `log.jsonl` (one record per line, flushed synchronously so a killed run keeps every finished step),
 * `checkpoints/` (rotated), `adapter/`, `best/`, `report.html`. Nothing is written until every option
 * has been checked; a refused resume names each option that differs from the run's own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfigFile, UsageError, type ParsedValue } from './args.js';
import { FileError } from './fs_errors.js';
import { TRAIN_OPTIONS } from './commands/train_options.js';

/**
 * A path without trailing slashes (so joined paths never show `//`).
 * @example trimSlash('runs/a/'); // 'runs/a'
 */
export function trimSlash(p: string): string {
  const t = p.replace(/\/+$/, '');
  return t === '' ? (p.startsWith('/') ? '/' : p) : t;
}

/** Options that may differ between a run and its resume (they do not change what is trained). */
const RESUME_FREE = new Set([
  'output',
  'resume',
  'quiet',
  'no-report',
  'backend',
  'keep-checkpoints',
  'save-every',
  'eval-every',
  'eval-batch-size',
  'eval-limit',
  'no-cache',
  'max-non-finite',
  'config',
]);

/**
 * `--resume`: the run's own config.json supplies every option the user did not give on this command
 * line (`given`: the flags and config-file keys given; undefined = all of `v`).
 * @example v = withSavedOptions(v, 'runs/a', new Set(['output', 'resume']));
 */
export function withSavedOptions(
  v: Record<string, ParsedValue | undefined>,
  output: string,
  given?: ReadonlySet<string>,
): Record<string, ParsedValue | undefined> {
  const saved = path.join(output, 'config.json');
  if (!fs.existsSync(saved)) {
    if (!v.model)
      throw new UsageError(
        `--resume: ${output} holds no run to resume (no config.json); start it without --resume, or pass the --output of an earlier run`,
      );
    return v;
  }
  const fromRun = loadConfigFile(saved, TRAIN_OPTIONS);
  const mine = Object.entries(v).filter(([k, x]) => x !== undefined && (given ? given.has(k) : true));
  return { ...v, ...fromRun, ...Object.fromEntries(mine) };
}

/**
 * Refuses (usage error, exit 2) a resume whose options differ from those the run was started with,
 * naming each: `--lr 0.01 → 0.02`.
 * @example checkResumeOptions(v, 'runs/a');
 */
export function checkResumeOptions(v: Record<string, ParsedValue | undefined>, output: string): void {
  const saved = path.join(output, 'config.json');
  if (!fs.existsSync(saved)) return;
  const fromRun = loadConfigFile(saved, TRAIN_OPTIONS);
  const show = (x: ParsedValue | undefined) =>
    x === undefined ? '(unset)' : Array.isArray(x) ? x.join(',') : String(x);
  const changed: string[] = [];
  for (const o of TRAIN_OPTIONS) {
    if (RESUME_FREE.has(o.name)) continue;
    const a = fromRun[o.name] ?? o.default;
    const b = v[o.name];
    if (JSON.stringify(a ?? null) !== JSON.stringify(b ?? null))
      changed.push(`--${o.name} ${show(a)} → ${show(b)}`);
  }
  if (changed.length)
    throw new UsageError(
      `--resume: ${output} was started with other options: ${changed.join(', ')}. ` +
        `Resume with the run's own options (lowrank train -o ${output} --resume), or start a new run in another --output`,
    );
}

/**
 * Checks `--output` before anything is written: a new run needs a new or empty folder (an earlier
 * run is resumed with --resume, nothing else is overwritten); a resume needs a run there; the nearest
 * existing parent must be writable. Throws usage errors (exit 2) and typed file errors (exit 1).
 * @example checkRunFolder('runs/a', false);
 */
export function checkRunFolder(dir: string, resume: boolean): void {
  let names: string[] | undefined;
  try {
    if (fs.existsSync(dir)) {
      if (!fs.statSync(dir).isDirectory())
        throw new UsageError(`--output ${dir}: is a file, not a folder; choose a folder path`);
      names = fs.readdirSync(dir).sort();
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw FileError.from(e, dir, '--output');
  }
  const isRun = names?.includes('log.jsonl') || names?.includes('config.json');
  if (!resume && isRun)
    throw new UsageError(
      `--output ${dir}: already holds a run (log.jsonl); pass --resume to continue it, or choose another --output`,
    );
  if (!resume && names && names.length > 0)
    throw new UsageError(
      `--output ${dir}: the folder is not empty (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}) and holds no run; choose a new or empty folder`,
    );
  if (resume && !isRun && names && names.length > 0)
    throw new UsageError(`--resume: ${dir} holds no run (no config.json or log.jsonl)`);
  let probe = path.resolve(dir);
  while (!fs.existsSync(probe)) probe = path.dirname(probe);
  try {
    if (!fs.statSync(probe).isDirectory())
      throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR', path: probe });
    fs.accessSync(probe, fs.constants.W_OK);
  } catch (e) {
    throw FileError.from(e, dir, '--output');
  }
}

export { cleanInterruptedWrites, openRunFolder, RunLog, rotateCheckpoints } from '../run/run_folder.js';
