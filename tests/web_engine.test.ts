// The web worker's engine pieces run in Node too (they use only the library): the training loop with
// AdaLoRA allocation, the rank snapshot for the heatmap, data preparation and tensor hygiene.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../src/tensor/tf.js';
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
import { trainLoop } from '../web/engine/train.js';
import { TrainControl } from '../web/train_control.js';
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

test('AdaLoRA loop: one progress event per step, masks ranks, no tensor growth across steps', async () => {
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
  const result = await trainLoop(
    peft,
    {
      examples: data.examples,
      task: 'causal_lm',
      padTokenId: data.padTokenId,
      steps: STEPS,
      batchSize: s.batchSize,
      learningRate: s.learningRate,
      seed: 0,
      maxGradNorm: 1,
      afterStep: (step: number, grads: Map<string, Tensor>) => tuner.updateAndAllocate(step, grads).budget,
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
