import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';
import { floorOf, importsOf } from '../src/run/floors.js';

const ROOT = path.resolve(import.meta.dirname, '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'dist') out.push(...sources(p));
    } else if (/\.ts$/.test(e.name) && !/\.(test|d)\.ts$/.test(e.name)) out.push(p);
  }
  return out;
}

/** Every relative import of library and front-end code, as [from, to, typeOnly] repo-relative paths. */
function edges(): [string, string, boolean][] {
  const out: [string, string, boolean][] = [];
  for (const file of [...sources(path.join(ROOT, 'src')), ...sources(path.join(ROOT, 'web'))]) {
    const from = path.relative(ROOT, file).split(path.sep).join('/');
    for (const { spec, typeOnly } of importsOf(fs.readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const to = path
        .relative(ROOT, path.resolve(path.dirname(file), spec))
        .split(path.sep)
        .join('/');
      out.push([from, to.replace(/\.js$/, '.ts'), typeOnly]);
    }
  }
  return out;
}

test('importsOf finds static, type-only, side-effect, re-export and dynamic imports', () => {
  const src = [
    "import { a } from './a.js';",
    "import type { B } from '../b.js';",
    "import './c.js';",
    "export * from './d.js';",
    "export { e, type E } from './e.js';",
    "const { f } = await import('../f.js');",
    'const s = \'import x from "./not-a-line-start.js"\';',
  ].join('\n');
  assert.deepEqual(importsOf(src), [
    { spec: './a.js', typeOnly: false },
    { spec: '../b.js', typeOnly: true },
    { spec: './c.js', typeOnly: false },
    { spec: './d.js', typeOnly: false },
    { spec: './e.js', typeOnly: false },
    { spec: '../f.js', typeOnly: false },
  ]);
});

test('floorOf places each folder on its floor', () => {
  assert.deepEqual(
    ['src/tensor/tf.ts', 'src/io/source.ts', 'src/nn/linear.ts', 'src/tuners/lora/layer.ts'].map(floorOf),
    [0, 1, 2, 3],
  );
  assert.deepEqual(
    ['src/training/trainer.ts', 'src/run/methods.ts', 'src/cli/main.ts', 'web/engine/session.ts'].map(
      floorOf,
    ),
    [4, 5, 6, 6],
  );
});

/** The upward edges of `all` (and the paths on no floor), as readable lines. */
function upwardOf(all: [string, string, boolean][]): { upward: string[]; unplaced: string[] } {
  const unplaced = new Set<string>();
  const upward: string[] = [];
  for (const [from, to, typeOnly] of all) {
    const a = floorOf(from);
    const b = floorOf(to);
    if (a === undefined) unplaced.add(from);
    if (b === undefined) unplaced.add(to);
    if (a !== undefined && b !== undefined && b > a)
      upward.push(`${from} (floor ${a}) → ${to} (floor ${b})${typeOnly ? ' [type]' : ''}`);
  }
  return { upward, unplaced: [...unplaced].filter((p) => p.startsWith('src/') || p.startsWith('web/')) };
}

test('upwardOf reports an import from a lower floor to a higher one, type-only ones too', () => {
  const r = upwardOf([
    ['src/training/trainer.ts', 'src/cli/args.ts', false],
    ['src/nn/module.ts', 'src/tuners/lora/layer.ts', true],
    ['src/cli/main.ts', 'src/tensor/tf.ts', false],
    ['src/tuners/x.ts', 'src/models/base.ts', false],
    ['src/nope/x.ts', 'src/tensor/tf.ts', false],
  ]);
  assert.deepEqual(r.upward, [
    'src/training/trainer.ts (floor 4) → src/cli/args.ts (floor 6)',
    'src/nn/module.ts (floor 2) → src/tuners/lora/layer.ts (floor 3) [type]',
  ]);
  assert.deepEqual(r.unplaced, ['src/nope/x.ts']);
});

test('no import under src/ or web/ runs back up a floor (tensor → io → nn → models/tuners → training → run → front ends)', () => {
  const all = edges();
  assert.ok(all.length > 300, `expected the whole code base, found ${all.length} imports`);
  const { upward, unplaced } = upwardOf(all);
  assert.deepEqual(unplaced, []);
  assert.deepEqual(upward, []);
});

test('front ends hold no method building, tokenizer adaptation or import of another front end', () => {
  const frontEnds = ['src/cli/', 'src/serve/', 'src/harness/', 'web/'];
  const sideways = edges().filter(
    ([from, to]) =>
      frontEnds.some((f) => from.startsWith(f)) &&
      frontEnds.some((f) => to.startsWith(f) && !from.startsWith(f)),
  );
  // `lowrank serve` and `lowrank experiment` are CLI commands that call the server and the harness
  assert.deepEqual(
    sideways.filter(([from, to]) => !(from.startsWith('src/cli/') && /^src\/(serve|harness)\//.test(to))),
    [],
  );
  // the server's AdaLoRA → LoRA rewrite of a saved folder is serving, not method building
  for (const dir of ['src/cli/', 'src/harness/', 'web/']) {
    for (const file of sources(path.join(ROOT, dir))) {
      const text = fs.readFileSync(file, 'utf8');
      const rel = path.relative(ROOT, file);
      assert.ok(
        !/new (Lora|AdaLora)Config\(/.test(text),
        `${rel} builds a method config (use src/run/methods.ts)`,
      );
      assert.ok(!/encodePair\(/.test(text), `${rel} adapts a tokenizer (use src/run/tokenizer.ts)`);
    }
  }
});

/** Source without comments and quoted strings (either may name `tf.variableGrads(...)` without calling it). */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:])\/\/.*$/gm, '$1')
    .replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"/g, "''");
}

/** What only a training loop does: take gradients of a loss, or drive a tfjs optimizer. */
const TRAINING_LOOP = /\bvariableGrads\s*\(|\.minimize\s*\(|\bnew AdamW\s*\(|\btf\.train\.\w+\s*\(/;

/**
 * Files that may still hold a training loop of their own, each with its reason. src/testing holds test
 * helpers (the tuner matrix's one SGD step and the conformance step compared with PyTorch), not a
 * training path; bench/ (not scanned) times single steps on purpose.
 */
const LOOP_EXCEPTIONS: Record<string, string> = {};

test('code finds calls, not comments', () => {
  assert.ok(TRAINING_LOOP.test(code('const { grads } = tf.variableGrads(() => loss(), vars);')));
  assert.ok(TRAINING_LOOP.test(code('const opt = new AdamW(params, { lr });')));
  assert.ok(TRAINING_LOOP.test(code('tf.train.adam(1e-3).minimize(f);')));
  assert.ok(
    !TRAINING_LOOP.test(code('// call tf.variableGrads(...) after the step\nconst u = "https://x";')),
  );
  assert.ok(!TRAINING_LOOP.test(code('/**\n * `tf.variableGrads(...).grads` can be passed as is\n */')));
  assert.ok(!TRAINING_LOOP.test(code("throw new Error('pass e.g. tf.variableGrads(...).grads');")));
});

test('one training loop: no code outside src/training takes gradients or drives an optimizer', () => {
  const files = ['src', 'web', 'experiments'].flatMap((d) => sources(path.join(ROOT, d)));
  assert.ok(files.length > 200, `expected the whole code base, found ${files.length} files`);
  const loops = files
    .map((f) => path.relative(ROOT, f).split(path.sep).join('/'))
    .filter((rel) => !rel.startsWith('src/training/') && !rel.startsWith('src/testing/'))
    .filter((rel) => TRAINING_LOOP.test(code(fs.readFileSync(path.join(ROOT, rel), 'utf8'))))
    .filter((rel) => !(rel in LOOP_EXCEPTIONS));
  assert.deepEqual(loops, [], 'train through src/run/job.ts trainJob (the Trainer in src/training)');
  // the one loop is where it should be
  assert.ok(TRAINING_LOOP.test(code(fs.readFileSync(path.join(ROOT, 'src/training/step.ts'), 'utf8'))));
});

/** What builds a training loop of its own: constructing the library's Trainer. */
const TRAINER_CONSTRUCTION = /\bnew\s+Trainer\s*\(/;

/** The files (repo-relative) among `files` that construct a Trainer outside src/run and src/training. */
function trainerOutsideRun(files: { rel: string; text: string }[]): string[] {
  return files
    .filter(({ rel }) => !rel.startsWith('src/run/') && !rel.startsWith('src/training/'))
    .filter(({ text }) => TRAINER_CONSTRUCTION.test(code(text)))
    .map(({ rel }) => rel);
}

test('trainerOutsideRun finds a Trainer built outside the run floor, not one named in a comment or string', () => {
  const built = 'const t = new Trainer(peft, opts);';
  assert.deepEqual(
    trainerOutsideRun([
      { rel: 'web/engine/train.ts', text: built },
      { rel: 'src/harness/cell.ts', text: 'const t = new  Trainer (\n  model, opts);' },
      { rel: 'experiments/x.ts', text: '/** @example new Trainer(peft, opts) */\nlog("new Trainer(");' },
      { rel: 'src/run/job.ts', text: built },
      { rel: 'src/training/trainer.ts', text: built },
      { rel: 'src/harness/y.ts', text: 'const t = new TrainerLike(x); // new Trainer(' },
    ]),
    ['web/engine/train.ts', 'src/harness/cell.ts'],
  );
});

test('one training job: only src/run (and src/training) construct a Trainer; the harness, the page and the scripts call the job', () => {
  const files = ['src', 'web', 'experiments']
    .flatMap((d) => sources(path.join(ROOT, d)))
    .map((f) => ({
      rel: path.relative(ROOT, f).split(path.sep).join('/'),
      text: fs.readFileSync(f, 'utf8'),
    }));
  assert.ok(files.length > 200, `expected the whole code base, found ${files.length} files`);
  assert.deepEqual(trainerOutsideRun(files), [], 'train through src/run/job.ts trainJob');
  // the one construction is where it should be
  const core = files.find((f) => f.rel === 'src/run/job.ts');
  assert.ok(core && TRAINER_CONSTRUCTION.test(code(core.text)), 'src/run/job.ts builds the Trainer');
});

/**
 * Files the web build swaps for a browser twin (web/vite.config.ts): their Node imports never reach
 * the page, so the walk stops at them.
 */
const BROWSER_TWINS = [
  'src/io/source.ts',
  'src/tensor/backend.ts',
  'src/tensor/native/addon.ts',
  'src/tensor/tfjs.ts',
];

/**
 * The Node builtins that `entry` reaches through its value imports (static and dynamic), as
 * "file imports spec" lines; `read` gives a repo-relative file's text (undefined: not in the repo).
 */
function nodeImportsReached(entry: string, read: (rel: string) => string | undefined): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  const todo = [entry];
  while (todo.length) {
    const rel = todo.pop()!;
    if (seen.has(rel) || BROWSER_TWINS.includes(rel)) continue;
    seen.add(rel);
    const text = read(rel);
    if (text === undefined) continue;
    for (const { spec, typeOnly } of importsOf(text)) {
      if (typeOnly) continue;
      if (spec.startsWith('node:') || builtinModules.includes(spec)) out.push(`${rel} imports ${spec}`);
      else if (spec.startsWith('.'))
        todo.push(path.posix.join(path.posix.dirname(rel), spec).replace(/\.js$/, '.ts'));
    }
  }
  return out;
}

test('nodeImportsReached follows value imports to a Node builtin, skipping type imports and browser twins', () => {
  const tree: Record<string, string> = {
    'src/run/job.ts': "import { a } from './a.js';\nimport type { F } from './files.js';",
    'src/run/a.ts': "import '../io/source.js';\nconst m = await import('./deep.js');",
    'src/run/deep.ts': "import fs from 'node:fs';\nimport os from 'os';",
    'src/run/files.ts': "import path from 'node:path';",
    'src/io/source.ts': "import path from 'node:path';",
  };
  assert.deepEqual(
    nodeImportsReached('src/run/job.ts', (r) => tree[r]),
    ['src/run/deep.ts imports node:fs', 'src/run/deep.ts imports os'],
  );
  delete tree['src/run/deep.ts'];
  assert.deepEqual(
    nodeImportsReached('src/run/job.ts', (r) => tree[r]),
    [],
  );
});

test('the training job core (src/run/job.ts) is browser-safe: it reaches no Node builtin', () => {
  const read = (rel: string) =>
    fs.existsSync(path.join(ROOT, rel)) ? fs.readFileSync(path.join(ROOT, rel), 'utf8') : undefined;
  assert.deepEqual(nodeImportsReached('src/run/job.ts', read), []);
  // and the file wrapper does reach the file system (the walk is not vacuous)
  assert.ok(nodeImportsReached('src/run/train_job.ts', read).length > 0);
});
