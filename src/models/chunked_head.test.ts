import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../tensor/tf.js';
import { manualSeed } from '../nn/init.js';
import { setGradientCheckpointing } from '../nn/checkpoint.js';
import { quantizeModel } from '../nn/linear4bit.js';
import type { Module } from '../nn/module.js';
import { modelFromConfig } from './from_config.js';
import type { PreTrainedModel } from './base.js';
import { chunkedLossRows, setChunkedLoss } from './chunked_head.js';
import { TINY_LLAMA, tinyIds } from '../testing/tiny_models.js';
import { TINY_DECODERS } from '../testing/tiny_decoders.js';
import { getPeftModel, LoraConfig } from '../tuners/index.js';
import { ConfigError } from '../errors.js';

/**
 * Chunked vs full vocabulary loss in f32: the same products, summed per block and then across
 * blocks, so only the summation order differs (a few ulps of O(1) values).
 */
const CHUNKED_RTOL = 1e-5;

interface Step {
  loss: number;
  logitsShape: number[];
  grads: Map<string, Float32Array>;
}

type Setup = (m: Module) => void;

async function step(
  build: () => Module & { forward: PreTrainedModel['forward'] },
  setup: Setup,
): Promise<Step> {
  const model = build();
  setup(model);
  const named = (model as PreTrainedModel).trainableParameters();
  const ids = tinyIds();
  const labels = tf.tensor2d(
    [
      [1, 5, -100, 2, 9],
      [3, 4, 8, 8, -100],
    ],
    [2, 5],
    'int32',
  );
  let logitsShape: number[] = [];
  const { value, grads } = tf.variableGrads(
    () => {
      const out = model.forward({ inputIds: ids, labels });
      logitsShape = out.logits.shape;
      return out.loss as tf.Scalar;
    },
    named.map(([, v]) => v),
  );
  const byName = new Map<string, Float32Array>();
  for (const [name, v] of named) byName.set(name, (await grads[v.name]!.data()) as Float32Array);
  const loss = (await value.data())[0]!;
  tf.dispose([value, ids, labels, ...Object.values(grads)]);
  model.dispose();
  return { loss, logitsShape, grads: byName };
}

function assertSame(a: Step, b: Step, what: string): void {
  assert.ok(
    Math.abs(a.loss - b.loss) <= CHUNKED_RTOL * Math.abs(b.loss),
    `${what}: loss ${a.loss} vs ${b.loss}`,
  );
  assert.deepEqual([...a.grads.keys()], [...b.grads.keys()], what);
  for (const [name, g] of b.grads) {
    const h = a.grads.get(name)!;
    const scale = Math.max(...g.map(Math.abs));
    assert.ok(scale > 0, `${what}: ${name} gradient is zero (the comparison would be empty)`);
    g.forEach((v, i) => assert.ok(Math.abs(h[i]! - v) <= CHUNKED_RTOL * scale, `${what}: ${name}[${i}]`));
  }
}

function loraLlama(opts: { tie?: boolean; nf4?: boolean; config?: typeof TINY_LLAMA } = {}) {
  return () => {
    manualSeed(21);
    const base = modelFromConfig(
      { ...(opts.config ?? TINY_LLAMA), tie_word_embeddings: opts.tie ?? false },
      { task: 'CAUSAL_LM' },
    );
    if (opts.nf4) quantizeModel(base, { quantType: 'nf4', doubleQuant: true, blocksize: 32 });
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj'] }),
    );
    for (const [name, p] of peft.trainableParameters())
      if (name.includes('lora_B')) tf.tidy(() => p.assign(tf.randomNormal(p.shape, 0, 0.1, 'float32', 5)));
    return peft;
  };
}

function fullLlama(tie: boolean) {
  return () => {
    manualSeed(22);
    return modelFromConfig({ ...TINY_LLAMA, tie_word_embeddings: tie }, { task: 'CAUSAL_LM' });
  };
}

const off: Setup = () => {};
const chunked =
  (rows: number | true): Setup =>
  (m) =>
    setChunkedLoss(m, rows);

test('chunked loss: LoRA over Llama gives the same loss and gradients for any block size; logits are empty', async () => {
  const before = tf.memory().numTensors;
  const ref = await step(loraLlama(), off);
  assert.deepEqual(ref.logitsShape, [2, 5, 30]);
  for (const rows of [1, 3, true] as const) {
    const got = await step(loraLlama(), chunked(rows));
    assertSame(got, ref, `rows ${rows}`);
    assert.deepEqual(got.logitsShape, [2, 5, 0]);
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
});

test('chunked loss: a trainable (tied or untied) head gets the same gradient as the full path', async () => {
  for (const tie of [false, true]) {
    assertSame(await step(fullLlama(tie), chunked(3)), await step(fullLlama(tie), off), `full FT tie=${tie}`);
  }
});

test('chunked loss + checkpointing together, over an NF4 base and a rope decoder', async () => {
  const both: Setup = (m) => {
    setChunkedLoss(m, 4);
    setGradientCheckpointing(m, true);
  };
  assertSame(await step(loraLlama({ nf4: true }), both), await step(loraLlama({ nf4: true }), off), 'nf4');
  const qwen = loraLlama({ config: TINY_DECODERS.qwen2! as typeof TINY_LLAMA });
  assertSame(await step(qwen, both), await step(qwen, off), 'qwen2');
});

test('chunked loss: off without gradient recording (evaluation keeps the logits); option checks', () => {
  const model = loraLlama()();
  const ids = tinyIds();
  const ref = tf.tidy(() => model.forward({ inputIds: ids, labels: ids }).loss!.arraySync());
  setChunkedLoss(model, true);
  assert.equal(chunkedLossRows(model), null);
  const out = model.forward({ inputIds: ids, labels: ids });
  assert.deepEqual(out.logits.shape, [2, 5, 30]);
  assert.equal(out.loss!.arraySync(), ref);
  tf.dispose([out.logits, out.loss!]);
  assert.throws(() => setChunkedLoss(model, 0), ConfigError);
  assert.throws(() => setChunkedLoss(model, 2.5), ConfigError);
  setChunkedLoss(model, false);
  assert.equal(chunkedLossRows(model), undefined);
  ids.dispose();
  model.dispose();
});
