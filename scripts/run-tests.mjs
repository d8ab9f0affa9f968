// Runs every `*.test.ts` under src/ (and tests/) with Node's own test runner through tsx.
// Node 20's `--test` takes no globs, so the files are listed here. Extra args filter by path substring:
//   npm test -- lora adalora
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const roots = ['src', 'tests'];
const files = [];
function walk(dir) {
  let entries;
  try { entries = readdirSync(dir); } catch { return; }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.test.ts')) files.push(p);
  }
}
roots.forEach(walk);
const filters = process.argv.slice(2);
const selected = files.filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (selected.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...selected.map((f) => relative('.', f))],
  { stdio: 'inherit', env: { ...process.env, LOWRANK_TEST: '1' } },
);
process.exit(r.status ?? 1);
