import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '../tensor/tf.js';
import { defaultRng, deferInit, manualSeed } from '../nn/init.js';
import { Linear4bit, quantizeModel } from '../nn/linear4bit.js';
import { readHFFolder } from '../io/hf_folder.js';
import { CheckpointError } from '../errors.js';
import { writeRandomLlama, type LlamaShape } from '../testing/random_llama.js';
import type { HFConfig, PreTrainedModel } from './base.js';
import { modelFromConfig } from './from_config.js';
import { loadModelWithReport, saveModel } from './load.js';
import { loadWeights } from './weights.js';

const LLAMA: HFConfig = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 40,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  tie_word_embeddings: false,
};
const GPT2: HFConfig = {
  model_type: 'gpt2',
  vocab_size: 30,
  n_embd: 64,
  n_layer: 1,
  n_head: 2,
  n_positions: 16,
};

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'lowrank-stream-'));
}

/** The old, whole-file path: every tensor read, a randomly initialised model, then quantised whole. */
async function eagerLoad(dir: string, quant?: 'nf4' | 'fp4'): Promise<PreTrainedModel> {
  const { config, weights } = await readHFFolder(dir);
  const model = modelFromConfig(config);
  loadWeights(model, weights);
  weights.forEach((t) => t.dispose());
  if (quant) quantizeModel(model, { quantType: quant, doubleQuant: quant === 'nf4' });
  return model.eval();
}

/** Every module's 4-bit state and every dense tensor of two models are identical. */
function assertSameModel(a: PreTrainedModel, b: PreTrainedModel): void {
  const qa = a.namedModules().filter(([, m]) => m instanceof Linear4bit);
  const qb = new Map(b.namedModules().filter(([, m]) => m instanceof Linear4bit));
  assert.equal(qa.length, qb.size, 'same layers quantised');
  for (const [path, m] of qa) {
    const other = qb.get(path) as Linear4bit | undefined;
    assert.ok(other, `${path} is 4-bit in both`);
    assert.deepEqual((m as Linear4bit).quant, other.quant, `${path}: identical codes and constants`);
  }
  const sb = b.stateDict();
  for (const [k, t] of a.stateDict()) assert.deepEqual(t.dataSync(), sb.get(k)!.dataSync(), k);
}

for (const [name, config, quant, shard] of [
  ['llama NF4+DQ, one file', LLAMA, 'nf4', undefined],
  ['llama FP4, sharded', LLAMA, 'fp4', 20_000],
  ['llama f32, sharded', LLAMA, undefined, 20_000],
  ['gpt2 (Conv1D, tied) NF4+DQ', GPT2, 'nf4', undefined],
] as const) {
  test(`streaming load == whole-file load + quantizeModel: ${name}`, async () => {
    const dir = tempDir();
    try {
      manualSeed(31);
      const src = modelFromConfig(config);
      await saveModel(src, dir, shard ? { maxShardBytes: shard } : {});
      src.dispose();
      const before = tf.memory().numTensors;
      const eager = await eagerLoad(dir, quant);
      const opts = quant ? { quantize: quant, doubleQuant: quant === 'nf4' } : {};
      const { model, report } = await loadModelWithReport(dir, opts);
      assert.deepEqual(report.newKeys, []);
      assertSameModel(model, eager);
      [model, eager].forEach((m) => m.dispose());
      assert.equal(tf.memory().numTensors, before, 'nothing left behind');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('deferred init: materialised placeholders equal an eager build, and the generator ends where it would', () => {
  for (const config of [LLAMA, GPT2]) {
    manualSeed(7);
    const eager = modelFromConfig(config, { task: 'SEQ_CLS', numLabels: 3 });
    const eagerState = defaultRng().state();
    manualSeed(7);
    const { value: lazy, pending } = deferInit(() =>
      modelFromConfig(config, { task: 'SEQ_CLS', numLabels: 3 }),
    );
    assert.deepEqual(defaultRng().state(), eagerState, 'the stream advanced by exactly the eager draws');
    const placeholders = lazy.namedParameters().filter(([, p]) => pending.has(p));
    assert.ok(placeholders.length > 0);
    for (const [, p] of lazy.namedParameters()) pending.materialize(p);
    assertSameModel(lazy, eager);
    [eager, lazy].forEach((m) => m.dispose());
  }
});

test('a fresh SEQ_CLS head after a streaming load has the eager build seed values', async () => {
  const dir = tempDir();
  try {
    manualSeed(32);
    const lm = modelFromConfig(LLAMA);
    await saveModel(lm, dir);
    lm.dispose();
    manualSeed(5);
    const eager = modelFromConfig(LLAMA, { task: 'SEQ_CLS', numLabels: 3 });
    const { model, report } = await loadModelWithReport(dir, {
      task: 'SEQ_CLS',
      numLabels: 3,
      seed: 5,
      quantize: 'nf4',
    });
    assert.deepEqual(report.newKeys, ['score.weight']);
    assert.deepEqual(
      model.stateDict().get('score.weight')!.dataSync(),
      eager.stateDict().get('score.weight')!.dataSync(),
    );
    [eager, model].forEach((m) => m.dispose());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a shape mismatch found while streaming throws and leaves no tensor behind', async () => {
  const dir = tempDir();
  try {
    manualSeed(33);
    const other = modelFromConfig({ ...LLAMA, intermediate_size: 96 });
    await saveModel(other, dir);
    other.dispose();
    const before = tf.memory().numTensors;
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'config.json'), JSON.stringify(LLAMA));
    await assert.rejects(loadModelWithReport(dir, { quantize: 'nf4' }), CheckpointError);
    assert.equal(tf.memory().numTensors, before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A model big enough for its f32 weights (~100 MB) to dwarf the process's noise, small enough to
 * generate in a few seconds: 8 layers of 512 hidden, 1536 MLP, vocab 8000 (f32: 25M weights).
 */
const MEM_SHAPE: LlamaShape = {
  hidden_size: 512,
  intermediate_size: 1536,
  num_hidden_layers: 8,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  vocab_size: 8000,
  tie_word_embeddings: false,
};
const LARGEST_TENSOR = 8000 * 512 * 4; // embed_tokens / lm_head, f32
// the read buffer of the quantised tensors, transient quantiser arrays (indices: ¼ of a tensor), the
// module tree and allocator slack, counted in largest tensors (measured: ~0.8; the old whole-file
// path held the f32 checkpoint, ~6 of them, on top of the model)
const PEAK_SLACK_TENSORS = 2;

test('an NF4 load peaks at the packed model + a few of the largest tensor (child process RSS)', () => {
  const dir = tempDir();
  try {
    writeRandomLlama(dir, MEM_SHAPE, 1);
    const child = join(import.meta.dirname, '..', 'testing', 'load_memory_child.ts');
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--expose-gc',
        child,
        JSON.stringify({ path: dir, quantize: 'nf4', doubleQuant: true }),
      ],
      { encoding: 'utf8', timeout: 240_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const m = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, number | boolean>;
    if (!m.peakReset) return; // no /proc/self/clear_refs: the peak would include start-up
    const growth = (m.peak as number) - (m.before as number);
    const bound = (m.held as number) + PEAK_SLACK_TENSORS * LARGEST_TENSOR;
    console.log(
      `NF4 load of a ${(25.2e6 * 4) / 1e6} MB f32 model: peak +${(growth / 1e6).toFixed(0)} MB, held ${((m.held as number) / 1e6).toFixed(0)} MB, bound ${(bound / 1e6).toFixed(0)} MB`,
    );
    assert.ok(
      growth <= bound,
      `peak RSS growth ${growth} > held ${m.held} + ${PEAK_SLACK_TENSORS} × largest`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
