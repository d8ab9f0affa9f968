/**
 * The run folder of `lowrank train`: `config.json` (resolved options), `log.jsonl` (one record per
 * line, flushed synchronously so a killed run keeps every finished step), `checkpoints/` (rotated),
 * `adapter/`, `best/`, `report.html`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from './args.js';
import type { LogRecord } from '../training/types.js';

/**
 * Creates (or, with `resume`, reopens) a run folder and writes config.json.
 * @example const run = openRunFolder('runs/a', config, false);
 */
export function openRunFolder(
  dir: string,
  config: Record<string, unknown>,
  resume: boolean,
): { log: RunLog } {
  const logPath = path.join(dir, 'log.jsonl');
  if (!resume && fs.existsSync(logPath)) {
    throw new UsageError(
      `--output ${dir} already holds a run (log.jsonl); pass --resume to continue it or choose another --output`,
    );
  }
  fs.mkdirSync(dir, { recursive: true });
  const cfgPath = path.join(dir, 'config.json');
  const tmp = `${cfgPath}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n');
  fs.renameSync(tmp, cfgPath);
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
    fs.writeFileSync(this.file, kept.map((l) => l + '\n').join(''));
  }
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
