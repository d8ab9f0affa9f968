// The training job's in-memory core: it trains exactly as the Trainer driven by hand, wires the
// method's step hook, honours abort, hands the built model to `beforeTraining` and resumes from the
// checkpoint that hook names, and leaves no tensor behind but the caller's weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../tensor/tf.js';
import { Trainer } from '../training/trainer.js';
import { checkpointDir } from '../training/checkpoint.js';
import type { Example } from '../training/data/dataset.js';
import type { TrainableModel } from '../training/types.js';
import { tinyLlamaLm } from '../testing/tiny_models.js';
import { buildAdapter, type MethodSpec } from './methods.js';
import { trainJob, type TrainerSettings } from './job.js';

const STEPS = 6;
/** Twelve rows of eight token ids below the tiny vocabulary (30), from a fixed LCG. */
const train: Example[] = Array.from({ length: 12 }, (_, i) => ({
  inputIds: Array.from({ length: 8 }, (_, j) => 1 + ((i * 7 + j * 13 + i * j) % 29)),
  label: -1,
}));
const settings: TrainerSettings = {
  lr: 0.05,
  maxSteps: STEPS,
  batchSize: 4,
  warmupSteps: 1,
  maxGradNorm: 1,
};
const adalora: MethodSpec = {
  method: 'adalora',
  taskType: 'CAUSAL_LM',
  r: 2,
  initR: 4,
  totalStep: STEPS,
  schedule: { tinit: 1, tfinal: 2, deltaT: 1 },
};
const common = { task: 'causal_lm' as const, train, padTokenId: 0, seed: 4, trainer: settings };

const weightsOf = async (m: TrainableModel) =>
  Promise.all(m.trainableParameters().map(async ([n, v]) => [n, Array.from(await v.data())] as const));

test('trainJob on a base + method trains as the Trainer driven by hand: same losses and weights, the AdaLoRA hook installed, only the weights left', async () => {
  const before = tf.memory().numTensors;
  const losses: number[] = [];
  const budgets: number[] = [];
  const base = tinyLlamaLm();
  const r = await trainJob(
    { ...common, model: { base, method: adalora } },
    {
      onStep: (l) => {
        losses.push(l.loss);
        if (l.budget !== undefined) budgets.push(l.budget);
      },
    },
  );
  assert.equal(r.summary.steps, STEPS);
  assert.equal(budgets.length, STEPS, 'the allocation hook ran after every step');
  assert.ok(r.lastRegLoss! > 0, 'the AdaLoRA regulariser is reported apart');
  assert.equal(
    r.trainableParams,
    r.model.trainableParameters().reduce((s, [, p]) => s + p.size, 0),
  );
  const got = await weightsOf(r.model);

  // the same adapter trained by the Trainer itself
  const byHand = buildAdapter(tinyLlamaLm(), adalora);
  const handLosses: number[] = [];
  const trainer = new Trainer(
    byHand.model as unknown as TrainableModel,
    { ...settings, task: 'causal_lm', train, padTokenId: 0, seed: 4, stepHook: byHand.hook },
    { onStep: (l) => handLosses.push(l.loss) },
  );
  await trainer.train();
  trainer.dispose();
  assert.deepEqual(losses, handLosses);
  assert.deepEqual(got, await weightsOf(byHand.model as unknown as TrainableModel));

  for (const m of [r.model as unknown as { parameters(): tf.Tensor[] }, byHand.model]) {
    (m as { base_model?: { allocation?: { dispose(): void } | null } }).base_model?.allocation?.dispose();
    tf.dispose(m.parameters());
  }
  assert.equal(tf.memory().numTensors, before, 'the optimizer state is freed; nothing else is left');
});

test('trainJob: a given model with stepHook null runs no hook; an abort ends the run after the step in flight', async () => {
  const built = buildAdapter(tinyLlamaLm(), adalora);
  const stop = new AbortController();
  const steps: number[] = [];
  const r = await trainJob(
    {
      ...common,
      model: { model: built.model as unknown as TrainableModel, stepHook: null },
      signal: stop.signal,
    },
    {
      onStep: (l) => {
        steps.push(l.step);
        assert.equal(l.budget, undefined, 'no allocation without a hook');
        if (l.step === 2) stop.abort();
      },
    },
  );
  assert.deepEqual(steps, [1, 2]);
  assert.equal(r.summary.steps, 2);
  assert.equal(r.model, built.model as unknown as TrainableModel, 'the caller’s model is the one trained');
  (
    built.model as { base_model?: { allocation?: { dispose(): void } | null } }
  ).base_model?.allocation?.dispose();
  tf.dispose(built.model.parameters());
});

test('trainJob: beforeTraining sees the built model before step 1, and the checkpoint it names is resumed exactly', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-job-'));
  const lora: MethodSpec = { method: 'lora', taskType: 'CAUSAL_LM', r: 2, totalStep: STEPS };
  const run = async (o: { stopAt?: number; resumeFrom?: string; output?: string }) => {
    const stop = new AbortController();
    const seen: number[] = [];
    const r = await trainJob(
      {
        ...common,
        trainer: { ...settings, saveEvery: 2 },
        model: { base: tinyLlamaLm(), method: lora },
        signal: stop.signal,
        ...(o.output ? { output: { dir: o.output } } : {}),
      },
      {
        beforeTraining: ({ model, trainableParams }) => {
          seen.push(-1);
          assert.ok(trainableParams > 0 && model.trainableParameters().length > 0);
          return { resumeFrom: o.resumeFrom };
        },
        onStep: (l) => {
          seen.push(l.step);
          if (l.step === o.stopAt) stop.abort();
        },
      },
    );
    const w = await weightsOf(r.model);
    tf.dispose((r.model as unknown as { parameters(): tf.Tensor[] }).parameters());
    return { r, seen, w };
  };
  try {
    const whole = await run({});
    assert.deepEqual(whole.seen, [-1, 1, 2, 3, 4, 5, 6]);
    const part = path.join(dir, 'part');
    const first = await run({ stopAt: 2, output: part });
    assert.equal(first.r.summary.steps, 2);
    const resumed = await run({ resumeFrom: checkpointDir(part, 2), output: part });
    assert.deepEqual(resumed.seen, [-1, 3, 4, 5, 6]);
    assert.equal(resumed.r.summary.resumedFrom, 2);
    assert.deepEqual(resumed.w, whole.w, 'stop + resume ends with the bytes of the uninterrupted run');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
