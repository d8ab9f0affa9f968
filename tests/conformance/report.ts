/**
 * Conformance results on disk and as the docs table: each runner writes
 * `test-artifacts/conformance-<runtime>.json`; `node --import tsx tests/conformance/report.ts` renders
 * docs/backends.md's table from both files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackendResult } from '../../src/testing/conformance/index.js';

export const ARTIFACTS = path.resolve('test-artifacts');

/** Writes one runtime's results (atomically: temp + rename). */
export function writeResults(
  runtime: string,
  results: BackendResult[],
  meta: Record<string, string>,
): string {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `conformance-${runtime}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ meta, results }, null, 1));
  fs.renameSync(`${file}.tmp`, file);
  return file;
}

/** One line per failing/erroring case, for assertion messages. */
export function failures(results: BackendResult[]): string[] {
  return results.flatMap((r) =>
    r.cases
      .filter((c) => c.status !== 'pass')
      .map(
        (c) =>
          `${r.runtime}/${r.backend} ${c.name}: ${c.status} (worst ${c.worst.toExponential(2)}× the tolerance at ${c.worstOutput}${c.detail ? `; ${c.detail}` : ''})`,
      ),
  );
}

function cell(r: BackendResult, name: string): string {
  if (r.skipped) return 'skipped';
  if (r.backend === 'cpu') return 'reference';
  const c = r.cases.find((x) => x.name === name);
  if (!c) return '—';
  if (c.status === 'error') return `**error**`;
  const mark = c.status === 'pass' ? '✓' : '**✗**';
  return `${mark} ${c.worst < 1e-3 ? '<0.001' : c.worst.toFixed(3)}`;
}

/** The markdown table: cases × backends, each cell the worst error as a fraction of the tolerance. */
export function markdownTable(results: BackendResult[]): string {
  const cols = results.map((r) => `${r.backend} (${r.runtime})`);
  const names = [...new Set(results.flatMap((r) => r.cases.map((c) => c.name)))];
  const lines = [`| case | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`];
  for (const n of names) lines.push(`| ${n} | ${results.map((r) => cell(r, n)).join(' | ')} |`);
  return lines.join('\n');
}

function main(): void {
  const loaded = ['node', 'chromium']
    .map((rt) => path.join(ARTIFACTS, `conformance-${rt}.json`))
    .filter((f) => fs.existsSync(f))
    .map(
      (f) =>
        JSON.parse(fs.readFileSync(f, 'utf8')) as { meta: Record<string, string>; results: BackendResult[] },
    );
  const results = loaded.flatMap((l) => l.results);
  const skipped = results
    .filter((r) => r.skipped)
    .map((r) => `- ${r.backend} (${r.runtime}): skipped — ${r.skipped}`);
  const adapters = results.filter((r) => r.adapter).map((r) => `- ${r.backend} (${r.runtime}): ${r.adapter}`);
  const metas = loaded.map((l) =>
    Object.entries(l.meta)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; '),
  );
  process.stdout.write(
    [markdownTable(results), '', ...skipped, ...adapters, '', ...metas.map((m) => `- ${m}`), ''].join('\n'),
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname))
  main();
