// The web worker's engine pieces run in Node too (they use only the library): the training loop with
// AdaLoRA allocation, the rank snapshot for the heatmap, data preparation and tensor hygiene.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../src/tensor/tf.js';
import { forbidSyncReads } from '../src/tensor/read.js';
import { PeftModel } from '../src/tuners/index.js';
import { AdaLoraModel } from '../src/tuners/adalora/index.js';
import { DataError } from '../src/errors.js';
import { buildDemo } from '../web/demo.js';
import {
  HELD_OUT,
  NEGATIVE,
  POSITIVE,
  SAMPLE_TSV_PROMPT,
  sampleText,
  sampleTsv,
  THINGS,
} from '../web/samples.js';
import { demoConfig } from '../web/demo.js';
import { buildAdapter, rankSnapshotOf } from '../web/engine/adapters.js';
import { prepareData } from '../web/engine/data.js';
import { trainOnPage } from '../web/engine/train.js';
import { TrainControl } from '../web/train_control.js';
import type { Example } from '../src/training/data/dataset.js';
import { collate, DataLoader } from '../src/training/data/loader.js';
import { AdamW, clipGradNorm, scheduleFactor } from '../src/training/optim.js';
import type { TrainSpec } from '../web/protocol.js';

const STEPS = 8;

function spec(method: TrainSpec['method']['method']): TrainSpec {
  return {
    adapterName: 'a',
    data: { format: 'text', content: sampleText(), task: 'CAUSAL_LM', textColumn: '', labelColumn: '' },
    method: {
      method,
      r: 2,
      alpha: 4,
      dropout: 0,
      targetModules: [],
      initR: 4,
      tinit: 1,
      tfinal: 2,
      deltaT: 1,
      beta1: 0.85,
      beta2: 0.85,
      orthRegWeight: 0.5,
    },
    steps: STEPS,
    learningRate: 0.02,
    batchSize: 4,
    seqLen: 16,
    seed: 0,
  };
}

test('AdaLoRA run on the Trainer: one progress event per step, masks ranks, no tensor growth across steps', async () => {
  const { model, tokenizer } = buildDemo('llama', 0);
  const s = spec('adalora');
  const data = prepareData(s.data, tokenizer, s.seqLen, 'demo');
  const peft = new PeftModel(model, buildAdapter(s, 'CAUSAL_LM'), 'a');
  const tuner = peft.base_model;
  assert.ok(tuner instanceof AdaLoraModel);
  const control = new TrainControl();
  control.start();
  const counts: number[] = [];
  const losses: number[] = [];
  const budgets: number[] = [];
  const result = await trainOnPage(
    peft,
    {
      examples: data.examples,
      task: 'causal_lm',
      padTokenId: data.padTokenId,
      steps: STEPS,
      batchSize: s.batchSize,
      learningRate: s.learningRate,
      seed: 0,
    },
    control,
    {
      progress: (e) => {
        losses.push(e.loss);
        if (e.budget !== undefined) budgets.push(e.budget);
      },
      stepDone: () => counts.push(tf.memory().numTensors),
    },
  );
  control.finish();
  assert.equal(result.steps, STEPS);
  assert.equal(losses.length, STEPS);
  assert.ok(losses.every(Number.isFinite));
  assert.equal(budgets.length, STEPS);
  // The tensor count never grows from one step to the next (it drops when AdaLoRA freezes its pattern
  // and releases the importance statistics).
  assert.ok(
    counts.every((c, i) => i === 0 || c <= counts[i - 1]!),
    `tensor counts per step: ${counts.join(', ')}`,
  );
  const snap = rankSnapshotOf(peft, 'a', STEPS, 4, budgets[budgets.length - 1]!);
  assert.deepEqual(snap.layers, [0, 1, 2]);
  assert.deepEqual(snap.modules, ['q_proj', 'v_proj']);
  const total = snap.ranks.flat().reduce((a, b) => a + b, 0);
  assert.equal(total, snap.budget, 'after the final masking the ranks sum to the target budget');
  assert.ok(total < 4 * 6, 'some rank was pruned');
  peft.unload();
});

test('LoRA, DoRA configs; classification data; bad data is a DataError', () => {
  const lora = buildAdapter(spec('lora'), 'CAUSAL_LM') as unknown as Record<string, unknown>;
  assert.equal(lora.peftType, 'LORA');
  assert.equal(lora.useDora, false);
  assert.equal((buildAdapter(spec('dora'), 'CAUSAL_LM') as unknown as Record<string, unknown>).useDora, true);
  const { tokenizer } = buildDemo('bert', 0);
  const cls = prepareData(
    { format: 'tsv', content: sampleTsv(), task: 'SEQ_CLS', textColumn: 'sentence', labelColumn: 'label' },
    tokenizer,
    16,
    'demo',
  );
  assert.equal(cls.examples.length, 70);
  assert.deepEqual(cls.labelNames, ['negative', 'positive']);
  assert.deepEqual(new Set(cls.examples.map((e) => e.label)), new Set([0, 1]));
  assert.throws(
    () =>
      prepareData(
        {
          format: 'tsv',
          content: 'sentence\tlabel\nfine\tnot-a-number\nok\t1',
          task: 'SEQ_CLS',
          textColumn: 'sentence',
          labelColumn: 'nope',
        },
        tokenizer,
        16,
        'demo',
      ),
    DataError,
  );
  assert.throws(
    () =>
      prepareData(
        { format: 'text', content: '  ', task: 'CAUSAL_LM', textColumn: '', labelColumn: '' },
        tokenizer,
        16,
        'demo',
      ),
    DataError,
  );
});

test('sample sentiment data: every noun in both classes, named labels, the default prompt held out', () => {
  const rows = sampleTsv()
    .split('\n')
    .slice(1)
    .map((r) => r.split('\t') as [string, string]);
  assert.deepEqual([...new Set(rows.map(([, l]) => l))].sort(), ['negative', 'positive']);
  for (const thing of THINGS) {
    const with_ = rows.filter(([s]) => s.split(' ').includes(thing));
    const pos = with_.filter(([, l]) => l === 'positive').length;
    const neg = with_.filter(([, l]) => l === 'negative').length;
    // Held-out pairs remove at most one row per class, so a noun never predicts the label.
    assert.ok(pos >= 5 && neg >= 5 && Math.abs(pos - neg) <= 1, `${thing}: ${pos} positive, ${neg} negative`);
  }
  // Every row's label is its adjective's class.
  for (const [s, l] of rows) {
    const words = s.split(' ');
    assert.equal(
      words.some((w) => POSITIVE.includes(w)),
      l === 'positive',
      s,
    );
    assert.equal(
      words.some((w) => NEGATIVE.includes(w)),
      l === 'negative',
      s,
    );
  }
  for (const pair of HELD_OUT) assert.ok(!rows.some(([s]) => s.includes(pair)), `${pair} is held out`);
  assert.ok(
    [...HELD_OUT].some((p) => SAMPLE_TSV_PROMPT.endsWith(p)),
    'the default prompt is a held-out pair',
  );
  // The demo BERT names the classes in the order the data reader assigns them (sorted).
  assert.deepEqual(demoConfig('bert').id2label, { 0: 'negative', 1: 'positive' });
});

/**
 * The page's training before it moved onto the Trainer, kept as the reference it must still equal:
 * AdamW (no decay) on a linear schedule with floor(6%) warm-up, clipping at 1, AdaLoRA's
 * updateAndAllocate after each step, the batch capped at the number of examples. Returns each step's
 * minimised loss (task loss + AdaLoRA's regulariser) and the trained weights.
 */
async function referenceRun(
  peft: PeftModel,
  task: 'causal_lm' | 'classification',
  examples: Example[],
  steps: number,
  lr: number,
  batch: number,
) {
  const params = peft.trainableParameters();
  const byVar = new Map(params.map(([n, v]) => [v.name, n]));
  const loader = new DataLoader(examples, Math.min(batch, examples.length), 0);
  const opt = new AdamW(params, { lr, weightDecay: 0 });
  const schedule = { name: 'linear' as const, warmupSteps: Math.floor(steps * 0.06), totalSteps: steps };
  const tuner = peft.base_model;
  const losses: number[] = [];
  const norms: number[] = [];
  peft.train();
  for (let step = 0; step < steps; step++) {
    const batchT = collate(loader.next(), task, 0);
    const r = tf.variableGrads(
      () => peft.forward(batchT).loss as tf.Scalar,
      params.map(([, v]) => v),
    );
    tf.dispose(Object.values(batchT));
    losses.push((await r.value.data())[0]!);
    r.value.dispose();
    const clipped = await clipGradNorm(r.grads, 1);
    norms.push(clipped.norm);
    tf.dispose(Object.values(r.grads));
    const named = new Map(Object.entries(clipped.grads).map(([vn, g]) => [byVar.get(vn)!, g]));
    opt.step(named, lr * scheduleFactor(schedule, step));
    if (tuner instanceof AdaLoraModel) await tuner.updateAndAllocateAsync(step, named);
    tf.dispose(Object.values(clipped.grads));
  }
  opt.dispose();
  const weights = await Promise.all(params.map(([, v]) => v.data()));
  return { losses, weights, norms };
}

test('the page trains on the Trainer exactly as its own loop did: same weights; same losses (AdaLoRA: task loss + regLoss)', async () => {
  for (const [arch, method] of [
    ['llama', 'lora'],
    ['llama', 'adalora'],
    ['bert', 'lora'],
  ] as const) {
    const s = spec(method);
    const cls = arch === 'bert';
    const dataSpec: TrainSpec['data'] = cls
      ? { format: 'tsv', content: sampleTsv(), task: 'SEQ_CLS', textColumn: 'sentence', labelColumn: 'label' }
      : s.data;
    const task = cls ? ('classification' as const) : ('causal_lm' as const);
    const runs = [];
    const norms: number[] = [];
    for (const page of [true, false]) {
      const { model, tokenizer } = buildDemo(arch, 0);
      const data = prepareData(dataSpec, tokenizer, s.seqLen, 'demo');
      const peft = new PeftModel(model, buildAdapter(s, cls ? 'SEQ_CLS' : 'CAUSAL_LM'), 'a');
      let out: { losses: number[]; weights: ArrayLike<number>[]; regs: number[] };
      if (page) {
        const control = new TrainControl();
        control.start();
        const losses: number[] = [];
        const regs: number[] = [];
        const run = { examples: data.examples, task, padTokenId: data.padTokenId, seed: 0 };
        await trainOnPage(peft, { ...run, steps: STEPS, batchSize: 500, learningRate: 0.05 }, control, {
          progress: (e) => {
            losses.push(e.loss);
            regs.push(e.regLoss ?? 0);
          },
        });
        const weights = await Promise.all(peft.trainableParameters().map(([, v]) => v.data()));
        out = { losses, regs, weights };
      } else {
        const r = await referenceRun(peft, task, data.examples, STEPS, 0.05, 500);
        norms.push(...r.norms);
        out = { ...r, regs: r.losses.map(() => 0) };
      }
      runs.push(out);
      (peft.base_model as { allocation?: { dispose(): void } | null }).allocation?.dispose();
      tf.dispose(peft.parameters());
    }
    if (cls) assert.ok(Math.max(...norms) > 1, `clipping is exercised (norms ${norms.join(', ')})`);
    const [page, ref] = runs as [(typeof runs)[0], (typeof runs)[0]];
    // the same ops in the same order on the same backend: bit-identical
    assert.deepEqual(
      page.weights.map((w) => Array.from(w)),
      ref.weights.map((w) => Array.from(w)),
    );
    if (method === 'lora') {
      assert.deepEqual(page.losses, ref.losses);
      assert.ok(page.regs.every((r) => r === 0));
    } else {
      // the page reports the task loss and the regulariser apart, as the CLI; their sum is what the
      // old loop reported (the regulariser is computed separately, so equal up to float32 rounding)
      const SUM_TOL = 1e-6; // one float32 rounding of a loss of order 1
      assert.ok(page.regs.every((r) => r > 0));
      page.losses.forEach((l, i) =>
        assert.ok(Math.abs(l + page.regs[i]! - ref.losses[i]!) <= SUM_TOL, `step ${i + 1}`),
      );
    }
  }
});

test('page run: pause holds the Trainer at a step boundary, stop ends it with the steps done; no wait after the last step', async () => {
  const s = spec('lora');
  const { model, tokenizer } = buildDemo('llama', 0);
  const data = prepareData(s.data, tokenizer, s.seqLen, 'demo');
  const peft = new PeftModel(model, buildAdapter(s, 'CAUSAL_LM'), 'a');
  const run = { examples: data.examples, task: 'causal_lm' as const, padTokenId: 0, seed: 0, batchSize: 4 };
  const control = new TrainControl();
  control.start();
  const steps: number[] = [];
  const done = trainOnPage(peft, { ...run, steps: STEPS, learningRate: 0.01 }, control, {
    progress: () => {},
    stepDone: (step) => {
      steps.push(step);
      if (step === 2) control.pause();
    },
  });
  while (control.state !== 'paused' || steps.length < 2) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(steps, [1, 2], 'no step runs while paused');
  control.stop();
  const r = await done;
  control.finish();
  assert.deepEqual(r, { steps: 2, finalLoss: r.finalLoss, stopped: true });
  assert.equal(control.state, 'stopped');
  // a pause asked for during the last step does not hold a finished run
  const c2 = new TrainControl();
  c2.start();
  const r2 = await trainOnPage(peft, { ...run, steps: 2, learningRate: 0.01 }, c2, {
    progress: () => {},
    stepDone: (step) => step === 2 && c2.pause(),
  });
  assert.equal(r2.stopped, false);
  assert.equal(r2.steps, 2);
  tf.dispose(peft.parameters());
});

test('a page run (AdaLoRA with masking and heatmap snapshots) makes no synchronous tensor read', async () => {
  const s = spec('adalora');
  const { model, tokenizer } = buildDemo('llama', 0);
  const data = prepareData(s.data, tokenizer, s.seqLen, 'demo');
  const peft = new PeftModel(model, buildAdapter(s, 'CAUSAL_LM'), 'a');
  const control = new TrainControl();
  control.start();
  const snapshots: number[] = [];
  const run = { examples: data.examples, task: 'causal_lm' as const, padTokenId: data.padTokenId, seed: 0 };
  const restore = forbidSyncReads();
  try {
    await trainOnPage(peft, { ...run, steps: STEPS, batchSize: 4, learningRate: 0.02 }, control, {
      progress: () => {},
      newRanks: (step, budget) => snapshots.push(rankSnapshotOf(peft, 'a', step + 1, 4, budget).budget),
    });
  } finally {
    restore();
    control.finish();
  }
  assert.ok(snapshots.length >= 2, `heatmap snapshots at ${snapshots.length} steps`);
  (peft.base_model as { allocation?: { dispose(): void } | null }).allocation?.dispose();
  tf.dispose(peft.parameters());
});
