/**
 * Comments cite what a reader can open: the project's own documents in docs/ (docs/design.md first)
 * or the upstream source they follow (PEFT, transformers, bitsandbytes, safetensors, a paper). Design
 * notes that live outside the repository are not citations: a reader of the code does not have them.
 * Test code that reads data from ../shared keeps those paths; this check is about documents.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
/** The code trees of the repository (docs/ is prose and is checked by the same rule below). */
const TREES = ['src', 'web', 'tests', 'bench', 'native/src', 'experiments', 'scripts', 'docs'];
const SOURCE = /\.(ts|mts|mjs|js|cc|h|py|sh|html|md)$/;
// Built from pieces so that this file does not match itself.
const OUTSIDE_DOCUMENTS = [
  ['DESIGN', '.md'],
  ['PEFT-', 'SPEC'],
  ['shared/', 'notes'],
].map(([a, b]) => a! + b!);

function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (!['node_modules', 'dist', 'build', 'results'].includes(e.name)) out.push(...files(p));
    } else if (SOURCE.test(e.name)) out.push(p);
  }
  return out;
}

/** Every `file:line: text` under `trees` that names one of `needles`. */
export function citationsOf(root: string, trees: string[], needles: string[]): string[] {
  const hits: string[] = [];
  for (const file of trees.flatMap((t) => files(path.join(root, t)))) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (needles.some((n) => line.includes(n)))
        hits.push(`${path.relative(root, file)}:${i + 1}: ${line.trim()}`);
    });
  }
  return hits;
}

test('citationsOf finds a cited outside document and passes over everything else', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-'));
  try {
    fs.mkdirSync(path.join(dir, 'src'));
    fs.writeFileSync(
      path.join(dir, 'src', 'a.ts'),
      `// ok: docs/design.md "Floors"\n// cites ${OUTSIDE_DOCUMENTS[0]} §1\nconst x = 1;\n`,
    );
    fs.writeFileSync(path.join(dir, 'src', 'b.json'), `"${OUTSIDE_DOCUMENTS[1]}"`); // not a source file
    assert.deepEqual(citationsOf(dir, ['src'], OUTSIDE_DOCUMENTS), [
      `src/a.ts:2: // cites ${OUTSIDE_DOCUMENTS[0]} §1`,
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('no code comment or doc cites a design document outside the repository', () => {
  const hits = citationsOf(ROOT, TREES, OUTSIDE_DOCUMENTS);
  assert.deepEqual(hits, [], `cite docs/design.md or the upstream source instead:\n${hits.join('\n')}`);
});

test('every section of docs/design.md that code cites exists, and the conventions page points to it', () => {
  const design = fs.readFileSync(path.join(ROOT, 'docs', 'design.md'), 'utf8');
  const headings = new Set([...design.matchAll(/^#+ (?:\d+\. )?(.+)$/gm)].map((m) => m[1]!.trim()));
  // A citation may wrap onto the next comment line: join comment continuations before matching.
  const cited = TREES.flatMap((t) => files(path.join(ROOT, t))).flatMap((file) => {
    const text = fs.readFileSync(file, 'utf8').replace(/\n\s*(?:\*|\/\/|#)\s*/g, ' ');
    const rel = path.relative(ROOT, file);
    return [...text.matchAll(/docs\/design\.md "([^"]+)"/g)].map((m) => [m[1]!, rel] as const);
  });
  assert.ok(cited.length > 20, `expected the code to cite docs/design.md sections, found ${cited.length}`);
  const missing = cited.filter(([h]) => !headings.has(h)).map(([h, rel]) => `"${h}" cited in ${rel}`);
  assert.deepEqual(missing, [], `docs/design.md has no such section:\n${missing.join('\n')}`);
  const conventions = fs.readFileSync(path.join(ROOT, 'docs', 'CONVENTIONS.md'), 'utf8');
  assert.match(conventions, /\(design\.md\)|docs\/design\.md/);
});
