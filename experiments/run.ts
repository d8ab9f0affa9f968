/**
 * `npm run experiments -- <suite.json> [--only <substring>] [--dry-run] [--summary-only] [--max-cells N]`:
 * the experiment harness of issue 7 (same as `lowrank experiment`). The harness itself is
 * src/harness/runner.ts; this entry keeps the tokenised-data cache in experiments/.cache.
 */
import path from 'node:path';
import { runSuite } from '../src/harness/runner.js';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const opt = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const suiteFile = argv.find((a) => a.endsWith('.json'));
if (!suiteFile) {
  console.error(
    'usage: npm run experiments -- <suite.json> [--only <substring>] [--dry-run] [--summary-only] [--max-cells N]',
  );
  process.exit(2);
}
const maxCells = opt('max-cells');
await runSuite(suiteFile, {
  only: opt('only'),
  dryRun: flag('dry-run'),
  summaryOnly: flag('summary-only'),
  maxCells: maxCells === undefined ? undefined : Number(maxCells),
  cacheDir: path.resolve(import.meta.dirname, '.cache'),
});
