/**
 * `lowrank experiment`: a tiny suite (2 tasks × LoRA/AdaLoRA × 1 seed, a 2-rate search) on a 2-layer
 * Llama built in a temp folder — plan, run, resume, filters, summary and a bad suite.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../src/tensor/tf.js';
import { cli, tinyWorld, tmp } from '../src/testing/cli_runner.js';
import type { CellResult } from '../src/harness/cell.js';

/** The suite: a causal-LM text task and a GLUE-style table task; budget 1100 = LoRA r 2 on all linear layers. */
function writeSuite(dir: string, w: { model: string; train: string; dev: string; text: string }, extra = {}) {
  const suite = {
    name: 'tiny',
    model: path.relative(path.join(dir, 'suites'), w.model),
    seeds: [0],
    tuneSeed: 0,
    budgets: { low: 1100 },
    budgetNames: ['low'],
    tolerance: 0.1,
    tasks: [
      { name: 'text', type: 'causal_lm', text: w.text, maxLength: 16, batchSize: 4, evalLimit: 4 },
      { name: 'eq', type: 'classification', metric: 'binary', train: w.train, dev: w.dev, maxLength: 8 },
    ],
    methods: ['lora-all', 'adalora'],
    ablations: [],
    training: { maxSteps: 10, batchSize: 8, evalBatchSize: 16, lr: [0.001, 0.01] },
    ...extra,
  };
  const file = path.join(dir, 'suites', 'tiny.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(suite));
  return file;
}

const cellsIn = (out: string) =>
  fs.existsSync(path.join(out, 'cells')) ? fs.readdirSync(path.join(out, 'cells')).sort() : [];

test('experiment: dry run, grid with learning-rate search, resume, summary table', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const suite = writeSuite(dir, w);
  const out = path.join(dir, 'results', 'tiny'); // default output: results/<name> beside suites/

  const plan = await cli('experiment', suite, '--dry-run');
  assert.equal(plan.code, 0, plan.err);
  assert.match(plan.out, /lm:lora-all:low +budget +1100 +r +2 .*matched +1088/);
  assert.match(plan.out, /cls:adalora:low .*r +2 initR +3/);
  assert.ok(fs.existsSync(path.join(out, 'plan.json')));
  assert.deepEqual(cellsIn(out), []);

  const before = tf.memory().numTensors;
  const run = await cli('experiment', suite, '--cache-dir', path.join(dir, 'cache'));
  assert.equal(run.code, 0, run.err);
  assert.equal(tf.memory().numTensors, before, 'the harness leaves no tensors behind');
  const ids = [
    'eq__adalora__low__seed0',
    'eq__lora-all__low__seed0',
    'text__adalora__low__seed0',
    'text__lora-all__low__seed0',
  ];
  assert.deepEqual(
    cellsIn(out),
    ids.map((i) => `${i}.json`),
  );
  for (const id of ids) {
    const [task, method] = id.split('__') as [string, string];
    const cell = JSON.parse(fs.readFileSync(path.join(out, 'cells', `${id}.json`), 'utf8')) as CellResult;
    // the rate with the best dev score wins, and seed 0 is that search run (not trained twice)
    const tuned = [0.001, 0.01].map((lr) => {
      const f = path.join(out, 'tune', `${task}__${method}__low__lr${lr}.json`);
      return JSON.parse(fs.readFileSync(f, 'utf8')) as CellResult;
    });
    const s = (r: CellResult) => (r.primary.higherIsBetter ? r.primary.value : -r.primary.value);
    const best = s(tuned[1]!) > s(tuned[0]!) ? tuned[1]! : tuned[0]!;
    assert.equal(cell.lr, best.lr);
    assert.equal(cell.fromTune, true);
    assert.equal(cell.primary.value, best.primary.value);
    assert.equal(cell.primary.name, task === 'text' ? 'loss' : 'accuracy');
    if (method === 'adalora') assert.ok(cell.ranks && Object.keys(cell.ranks).length === 14, 'final ranks');
  }
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as {
    groups: unknown[];
  };
  assert.equal(summary.groups.length, 4);
  assert.match(run.out, /text +lora-all +low +loss/);
  assert.match(run.out, /4 of 4 cells finished \(4 this run\)/);

  // resumable: a second run trains nothing and leaves the cell files alone
  const mtimes = ids.map((i) => fs.statSync(path.join(out, 'cells', `${i}.json`)).mtimeMs);
  const again = await cli('experiment', suite, '--cache-dir', path.join(dir, 'cache'));
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, /4 of 4 cells finished \(0 this run\)/);
  assert.deepEqual(
    ids.map((i) => fs.statSync(path.join(out, 'cells', `${i}.json`)).mtimeMs),
    mtimes,
  );
});

test('experiment: --only and --max-cells limit the grid; a bad suite exits 1 naming the field', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const suite = writeSuite(dir, w, {
    training: { maxSteps: 6, batchSize: 8, evalBatchSize: 16, lr: 0.01 },
    seeds: [0, 1],
  });
  const out = path.join(dir, 'results', 'tiny');
  const r = await cli('experiment', suite, '--only', 'eq__lora-all', '--max-cells', '1');
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(cellsIn(out), ['eq__lora-all__low__seed0.json']);
  assert.match(r.out, /1 of 2 cells finished \(1 this run\)/);

  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(
    bad,
    JSON.stringify({ ...JSON.parse(fs.readFileSync(suite, 'utf8')), methods: ['lora-al'] }),
  );
  const b = await cli('experiment', bad);
  assert.equal(b.code, 1);
  assert.match(b.err, /methods: unknown method \(got "lora-al"\)\. use one of full, lora-all/);
  const none = await cli('experiment', path.join(dir, 'missing.json'));
  assert.equal(none.code, 1);
  assert.match(none.err, /suite: the suite file does not exist/);
  assert.equal((await cli('experiment')).code, 2, 'the suite is a required positional');
});
