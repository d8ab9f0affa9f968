// A transformers-written BERT (BertForSequenceClassification with biases, from ../shared/fixtures)
// with a LoRA adapter and a trained classifier head (modules_to_save) trains to the same losses on
// cpu, wasm and native (issue 12: wasm's fused matMul + bias was wrong, and its losses drifted by
// 1e-2 from step 2). The library's own Trainer with clipping, 6 steps on each backend.
//   npm test -- tests/backend_bert
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { getPeftModel, LoraConfig } from '../src/tuners/index.js';
import { Trainer } from '../src/training/trainer.js';
import type { Example } from '../src/training/data/dataset.js';

const BASE = path.resolve('../shared/fixtures/peft-0.20/bert/base');
const haveBase = fs.existsSync(path.join(BASE, 'model.safetensors'));
if (!haveBase) console.log(`# backend BERT skipped: needs ${BASE}`);

/** Step 1 is one forward in float32 with another summation order (issue 12's bar). */
const FIRST_LOSS_ATOL = 1e-4;
/** Later steps follow AdamW updates from slightly different gradients (issue 12's bar). */
const LATER_LOSS_ATOL = 1e-3;
const STEPS = 6;

/** 24 sentences of 6–12 ids in [3, 1000) (the fixture's vocabulary), 3 labels, deterministic. */
function examples(): Example[] {
  return Array.from({ length: 24 }, (_, i) => ({
    inputIds: Array.from({ length: 6 + (i % 7) }, (_, j) => 3 + ((i * 131 + j * 71) % 997)),
    label: i % 3,
  }));
}

async function lossesOn(backend: string): Promise<number[] | string> {
  const why = await initBackend(backend).then(
    () => undefined,
    (e: Error) => e.message,
  );
  if (why) return why;
  const model = await loadModel(BASE);
  const peft = getPeftModel(
    model,
    new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['query', 'value'], modulesToSave: ['classifier'] }),
  );
  const losses: number[] = [];
  const trainer = new Trainer(
    peft,
    {
      task: 'classification',
      train: examples(),
      padTokenId: 0,
      lr: 5e-3,
      maxSteps: STEPS,
      batchSize: 8,
      seed: 3,
      maxGradNorm: 1,
    },
    { onStep: (l) => losses.push(l.loss) },
  );
  try {
    await trainer.train();
  } finally {
    trainer.dispose();
    for (const [, p] of peft.namedParameters()) p.dispose();
  }
  return losses;
}

test(
  'transformers-written BERT + LoRA + classifier head: cpu, wasm and native losses agree',
  { skip: haveBase ? false : `needs ${BASE}` },
  async () => {
    const cpu = await lossesOn('cpu');
    assert.ok(Array.isArray(cpu), `cpu: ${cpu}`);
    for (const backend of ['wasm', 'native']) {
      const got = await lossesOn(backend);
      if (!Array.isArray(got)) {
        console.log(`# backend BERT: ${backend} skipped: ${got}`);
        continue;
      }
      console.log(`# ${backend} vs cpu: ${got.map((l, i) => (l - cpu[i]!).toExponential(1)).join(' ')}`);
      assert.ok(Math.abs(got[0]! - cpu[0]!) <= FIRST_LOSS_ATOL, `${backend} step 1: ${got[0]} vs ${cpu[0]}`);
      for (let i = 1; i < STEPS; i++)
        assert.ok(
          Math.abs(got[i]! - cpu[i]!) <= LATER_LOSS_ATOL,
          `${backend} step ${i + 1}: ${got[i]} vs ${cpu[i]}`,
        );
    }
    await initBackend('auto');
  },
);
