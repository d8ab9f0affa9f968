/**
 * What the package ships: `npm run build` compiles the files TypeScript lists for
 * tsconfig.build.json. Test support lives in src/testing/ (the one place for test helpers) and must
 * not be among them — not as a file there, not pulled in by an import from shipped code, and not as
 * a helper kept elsewhere (a shipped file importing a test-only module gives one away).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const ROOT = path.resolve(import.meta.dirname, '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** Modules only tests use: a shipped file importing one is a test helper in the wrong place. */
const TEST_ONLY_MODULES = /from ['"](node:test|node:assert(\/strict)?|playwright-core)['"]/;

/** Every repository file the build compiles (what ends up in dist/), repo-relative. */
function shippedFiles(): string[] {
  const r = spawnSync(process.execPath, [TSC, '-p', 'tsconfig.build.json', '--listFilesOnly'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `tsc --listFilesOnly failed: ${r.stderr}${r.stdout}`);
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.includes('/node_modules/'))
    .map((l) => path.relative(ROOT, l).split(path.sep).join('/'));
}

/** The shipped files that are test support, each with the reason. */
export function testSupportIn(files: string[], read: (f: string) => string): string[] {
  const out: string[] = [];
  for (const f of files) {
    if (f.startsWith('src/testing/')) out.push(`${f}: test support (src/testing/)`);
    else if (/\.test\.ts$/.test(f)) out.push(`${f}: a test`);
    else if (!f.startsWith('src/')) out.push(`${f}: outside src/`);
    else if (TEST_ONLY_MODULES.test(read(f))) out.push(`${f}: imports a test-only module`);
  }
  return out;
}

test('testSupportIn names test helpers, tests and files importing test-only modules', () => {
  const text: Record<string, string> = {
    'src/testing/tiny_mlp.ts': '',
    'src/a.test.ts': '',
    'src/util/helper.ts': "import assert from 'node:assert/strict';",
    'src/util/rng.ts': "import { x } from './y.js'; // node:assert is not imported here",
    'tests/x.ts': '',
  };
  assert.deepEqual(
    testSupportIn(Object.keys(text), (f) => text[f]!),
    [
      'src/testing/tiny_mlp.ts: test support (src/testing/)',
      'src/a.test.ts: a test',
      'src/util/helper.ts: imports a test-only module',
      'tests/x.ts: outside src/',
    ],
  );
});

test('the build (dist/) holds no test helper', () => {
  const files = shippedFiles();
  assert.ok(
    files.includes('src/index.ts') && files.length > 100,
    `unexpected build list: ${files.length} files`,
  );
  const found = testSupportIn(files, (f) => fs.readFileSync(path.join(ROOT, f), 'utf8'));
  assert.deepEqual(found, [], `move these into src/testing/ (not shipped):\n${found.join('\n')}`);
});
