/**
 * A training run folder: `config.json` (the options the run was started with), `run.json` (derived
 * facts), `log.jsonl` (one record per line, flushed synchronously so a killed run keeps every finished
 * step), `checkpoints/` (rotated), `adapter/`, `best/`, `report.html`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileError } from './fs_errors.js';
import { writeFileAtomicSync } from './files.js';
import type { LogRecord } from '../training/types.js';

/**
 * Creates (or, with `resume`, reopens) a run folder and writes config.json and run.json atomically.
 * @example const run = openRunFolder('runs/a', config, { task: 'causal_lm' }, false);
 */
export function openRunFolder(
  dir: string,
  config: Record<string, unknown>,
  facts: Record<string, unknown>,
  resume: boolean,
  /** How the caller names `dir` in error messages (the CLI: `--output`). */
  label = 'output',
): { log: RunLog } {
  const logPath = path.join(dir, 'log.jsonl');
  try {
    fs.mkdirSync(dir, { recursive: true });
    writeFileAtomicSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    writeFileAtomicSync(path.join(dir, 'run.json'), JSON.stringify(facts, null, 2) + '\n');
    if (!resume) fs.writeFileSync(logPath, '');
  } catch (e) {
    throw FileError.from(e, dir, label);
  }
  return { log: new RunLog(logPath) };
}

/** Appends log records; on resume drops the records after the checkpoint's step. */
export class RunLog {
  constructor(readonly file: string) {}

  append(rec: LogRecord): void {
    fs.appendFileSync(this.file, JSON.stringify(rec) + '\n');
  }

  /** Keeps only complete records with `step <= step` (what the checkpoint knows about). */
  truncateAfter(step: number): void {
    if (!fs.existsSync(this.file)) return;
    const kept = fs
      .readFileSync(this.file, 'utf8')
      .split('\n')
      .filter((l) => {
        try {
          return (JSON.parse(l) as LogRecord).step <= step;
        } catch {
          return false;
        }
      });
    writeFileAtomicSync(this.file, kept.map((l) => l + '\n').join(''));
  }
}

/**
 * After a kill: removes the temp files of interrupted atomic writes (`.name.<pid>….tmp`) in the run
 * folder and its checkpoint/adapter folders, and checkpoint folders without their state file (a
 * checkpoint cut short; the resumed run writes it again). Returns what was removed.
 * @example cleanInterruptedWrites('runs/a');
 */
export function cleanInterruptedWrites(dir: string): string[] {
  const removed: string[] = [];
  const isTemp = (n: string) => /^\..+\.tmp$/.test(n);
  const sweep = (d: string, depth: number) => {
    if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) return;
    for (const n of fs.readdirSync(d)) {
      const p = path.join(d, n);
      if (isTemp(n)) {
        fs.rmSync(p, { recursive: true, force: true });
        removed.push(p);
      } else if (depth > 0 && fs.statSync(p).isDirectory()) sweep(p, depth - 1);
    }
  };
  sweep(dir, 2);
  const root = path.join(dir, 'checkpoints');
  if (fs.existsSync(root))
    for (const n of fs.readdirSync(root)) {
      const p = path.join(root, n);
      if (/^step-\d+$/.test(n) && !fs.existsSync(path.join(p, 'trainer_state.json'))) {
        fs.rmSync(p, { recursive: true, force: true });
        removed.push(p);
      }
    }
  return removed;
}

/**
 * Deletes all but the newest `keep` checkpoints (never the one just written).
 * @example rotateCheckpoints('runs/a', 2);
 */
export function rotateCheckpoints(dir: string, keep: number): void {
  const root = path.join(dir, 'checkpoints');
  if (!fs.existsSync(root)) return;
  const names = fs
    .readdirSync(root)
    .filter((n) => /^step-\d+$/.test(n))
    .sort();
  for (const n of names.slice(0, Math.max(0, names.length - Math.max(1, keep))))
    fs.rmSync(path.join(root, n), { recursive: true, force: true });
}
