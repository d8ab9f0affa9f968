/**
 * Checks of the experiment harness's own logic (budget solver, grid order, Prune-LoRA hook, statistics):
 *   npm test -- src/harness   (or node --import tsx --test src/harness/harness.test.ts)
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import { TinyMlp } from '../testing/tiny_mlp.js';
import { getPeftModel } from '../tuners/peft_model.js';
import { LoraConfig } from '../tuners/lora/index.js';
import { costModel, solveRank, targetShapes } from './budget.js';
import { PruneLoraHook } from './prune_lora.js';
import { stat } from './summary.js';
import { expandGrid, type Suite } from './suite.js';

test('costModel: LoRA r(in+out), DoRA + out, SVD r(in+out+1)', () => {
  const shapes = [
    { path: 'a', inFeatures: 64, outFeatures: 64 },
    { path: 'b', inFeatures: 64, outFeatures: 32 },
  ];
  assert.deepEqual(costModel('lora', shapes), { fixed: 0, perRank: 224 });
  assert.deepEqual(costModel('dora', shapes), { fixed: 96, perRank: 224 });
  assert.deepEqual(costModel('svd', shapes), { fixed: 0, perRank: 226 });
});

test('solveRank picks the nearest integer rank ≥ 1', () => {
  assert.deepEqual(solveRank({ fixed: 0, perRank: 5780 }, 11600), {
    r: 2,
    count: 11560,
    relError: -40 / 11600,
  });
  assert.equal(solveRank({ fixed: 0, perRank: 1120 }, 11600).r, 10);
  assert.equal(solveRank({ fixed: 3000, perRank: 5780 }, 1000).r, 1); // never below 1
});

test('targetShapes finds linear layers by leaf name', () => {
  manualSeed(0);
  const m = new TinyMlp({ vocab: 10, hidden: 4, inner: 6, classes: 2 });
  assert.deepEqual(
    targetShapes(m, ['fc1', 'fc2']).map((s) => [s.path, s.inFeatures, s.outFeatures]),
    [
      ['fc1', 4, 6],
      ['fc2', 6, 4],
    ],
  );
  tf.dispose(m.parameters());
});

test('stat: mean and sample std', () => {
  const s = stat([1, 2, 3]);
  assert.equal(s.mean, 2);
  assert.equal(s.std, 1);
  assert.equal(stat([5]).std, 0);
});

test('expandGrid: full once per task, main methods seed-major, then ablations', () => {
  const task = { name: 't', type: 'causal_lm' as const, text: 'x', maxLength: 8 };
  const suite = {
    name: 's',
    model: 'm',
    seeds: [0, 1],
    ablationSeeds: [0],
    budgets: { low: 10 },
    budgetNames: ['low'],
    tasks: [task],
    methods: ['full', 'lora-all'],
    ablations: ['svd-lora'],
    training: { maxSteps: 1, batchSize: 1, lr: 1 },
  } as Suite;
  assert.deepEqual(
    expandGrid(suite).map((c) => c.id),
    [
      't__full__ref__seed0',
      't__lora-all__low__seed0',
      't__full__ref__seed1',
      't__lora-all__low__seed1',
      't__svd-lora__low__seed0',
    ],
  );
});

test('PruneLoraHook prunes LoRA doublets to the target budget and keeps them pruned', () => {
  manualSeed(3);
  const base = new TinyMlp({ vocab: 10, hidden: 4, inner: 6, classes: 2 });
  const peft = getPeftModel(base, new LoraConfig({ r: 3, loraAlpha: 6, targetModules: ['fc1', 'fc2'] }));
  const hook = new PruneLoraHook(peft, { targetR: 1, tinit: 1, tfinal: 2, totalStep: 8, deltaT: 1 });
  const params = peft.trainableParameters().filter(([n]) => n.includes('lora_'));
  const x = tf.tensor2d(
    [
      [1, 2, 3],
      [4, 5, 6],
    ],
    [2, 3],
    'int32',
  );
  const labels = tf.tensor1d([0, 1], 'int32');
  for (let step = 0; step < 8; step++) {
    // lora_B starts at zero: give it a value so every doublet has a nonzero score
    const { grads } = tf.variableGrads(
      () => peft.forward({ inputIds: x, labels }).loss as tf.Scalar,
      params.map(([, v]) => v),
    );
    const byName = new Map(params.map(([n, v]) => [n, grads[v.name]!]));
    for (const [n, v] of params) v.assign(tf.tidy(() => tf.sub(v, tf.mul(byName.get(n)!, 0.5))));
    hook.afterOptimizerStep(step, byName);
    tf.dispose(Object.values(grads));
  }
  const ranks = hook.ranks()!;
  assert.equal(
    Object.values(ranks).reduce((s, r) => s + r, 0),
    2,
  ); // targetR × 2 layers
  for (const [n, v] of params) {
    if (!n.includes('lora_A')) continue;
    const rows = v.arraySync() as number[][];
    const kept = hook.pattern![Object.keys(hook.pattern!).find((k) => k.replace('lora_E', 'lora_A') === n)!]!;
    rows.forEach((row, i) => {
      if (!kept[i])
        assert.ok(
          row.every((a) => a === 0),
          `${n} row ${i} pruned`,
        );
    });
  }
  hook.dispose();
  tf.dispose([x, labels, ...peft.parameters()]);
});
