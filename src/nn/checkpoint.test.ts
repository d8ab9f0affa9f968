import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../tensor/tf.js';
import { manualSeed } from './init.js';
import { checkpointBlock, isGradientCheckpointing, setGradientCheckpointing } from './checkpoint.js';
import { Linear } from './layers.js';
import { modelFromConfig } from '../models/from_config.js';
import type { HFConfig, PreTrainedModel } from '../models/base.js';
import { TINY_LLAMA, tinyIds } from '../testing/tiny_models.js';
import { TINY_DECODERS } from '../testing/tiny_decoders.js';
import { getPeftModel, LoraConfig } from '../tuners/index.js';

/**
 * Checkpointing recomputes each block with the same kernels on the same inputs, so values agree to
 * the last bit in practice; the tolerance only allows a different summation order where a gradient
 * is accumulated from several uses (the residual stream), a few f32 ulps of these O(1) values.
 */
const CHECKPOINT_RTOL = 1e-5;

interface StepResult {
  loss: number;
  grads: Map<string, Float32Array>;
  peakBytes: number;
}

/** One LoRA training step's loss and gradients (dropout on, so masks must be replayed). */
async function step(config: HFConfig, checkpoint: boolean, layers = 2): Promise<StepResult> {
  manualSeed(11);
  const base = modelFromConfig({ ...config, num_hidden_layers: layers }, { task: 'CAUSAL_LM' });
  const peft = getPeftModel(
    base,
    new LoraConfig({
      r: 4,
      loraAlpha: 8,
      loraDropout: 0.25,
      targetModules: ['q_proj', 'v_proj', 'down_proj'],
    }),
  );
  peft.train();
  // B = 0 at init would make every A gradient zero: give B values so both factors are checked
  for (const [name, p] of peft.trainableParameters())
    if (name.includes('lora_B')) tf.tidy(() => p.assign(tf.randomNormal(p.shape, 0, 0.1, 'float32', 5)));
  setGradientCheckpointing(peft, checkpoint);
  manualSeed(99); // dropout masks
  const named = peft.trainableParameters();
  const ids = tinyIds();
  let out: { value: tf.Scalar; grads: tf.NamedTensorMap } | undefined;
  const prof = await tf.profile(() => {
    out = tf.variableGrads(
      () => peft.forward({ inputIds: ids, labels: ids }).loss as tf.Scalar,
      named.map(([, v]) => v),
    );
  });
  const { value, grads } = out!;
  const byName = new Map<string, Float32Array>();
  for (const [name, v] of named) byName.set(name, (await grads[v.name]!.data()) as Float32Array);
  const loss = (await value.data())[0]!;
  tf.dispose([value, ids, ...Object.values(grads)]);
  peft.dispose();
  return { loss, grads: byName, peakBytes: prof.peakBytes };
}

function assertClose(a: StepResult, b: StepResult, what: string): void {
  assert.ok(
    Math.abs(a.loss - b.loss) <= CHECKPOINT_RTOL * Math.abs(b.loss),
    `${what}: loss ${a.loss} vs ${b.loss}`,
  );
  assert.deepEqual([...a.grads.keys()], [...b.grads.keys()]);
  for (const [name, g] of b.grads) {
    const h = a.grads.get(name)!;
    const scale = Math.max(...g.map(Math.abs));
    assert.ok(scale > 0, `${what}: ${name} has a zero gradient (the test would not see a difference)`);
    g.forEach((v, i) =>
      assert.ok(Math.abs(h[i]! - v) <= CHECKPOINT_RTOL * scale, `${what}: ${name}[${i}] ${h[i]} vs ${v}`),
    );
  }
}

test('checkpointing: Llama LoRA step with dropout gives the same loss and gradients, and no tensor is left', async () => {
  const before = tf.memory().numTensors;
  const plain = await step(TINY_LLAMA, false);
  const after = tf.memory().numTensors;
  const ckpt = await step(TINY_LLAMA, true);
  assertClose(ckpt, plain, 'llama');
  assert.equal(tf.memory().numTensors, after, 'checkpointed step leaks no tensor');
  assert.equal(after, before);
});

for (const type of ['qwen2', 'mistral', 'gemma2'] as const) {
  test(`checkpointing: ${type} (rope decoder hook) gives the same loss and gradients`, async () => {
    assertClose(await step(TINY_DECODERS[type]!, true), await step(TINY_DECODERS[type]!, false), type);
  });
}

test('checkpointing: lower peak tensor bytes with several layers', async () => {
  const plain = await step(TINY_LLAMA, false, 6);
  const ckpt = await step(TINY_LLAMA, true, 6);
  assertClose(ckpt, plain, 'llama 6 layers');
  assert.ok(
    ckpt.peakBytes < plain.peakBytes,
    `peak ${ckpt.peakBytes} B checkpointed vs ${plain.peakBytes} B`,
  );
});

test('checkpointing: inactive without gradient recording and with a cache; the flag round-trips', () => {
  manualSeed(3);
  const model: PreTrainedModel = modelFromConfig(TINY_LLAMA, { task: 'CAUSAL_LM' });
  const ids = tinyIds();
  const ref = tf.tidy(() => model.forward({ inputIds: ids }).logits.arraySync());
  setGradientCheckpointing(model, true);
  assert.ok(isGradientCheckpointing(model));
  assert.deepEqual(
    tf.tidy(() => model.forward({ inputIds: ids }).logits.arraySync()),
    ref,
  );
  const cached = model.forward({ inputIds: ids, useCache: true });
  assert.equal(cached.pastKeyValues?.keys.length, 2, 'the cache is still returned');
  tf.dispose([cached.logits, ...cached.pastKeyValues!.keys, ...cached.pastKeyValues!.values]);
  setGradientCheckpointing(model, false);
  assert.ok(!isGradientCheckpointing(model));
  ids.dispose();
  model.dispose();
});

test('checkpointBlock: frozen weights get no gradient computed, trainable ones do', async () => {
  manualSeed(4);
  const frozen = new Linear(3, 3, { bias: false }).requiresGrad(false);
  const trained = new Linear(3, 2);
  const block = { frozen, trained };
  const x = tf.variable(tf.randomNormal([4, 3], 0, 1, 'float32', 1));
  const run = (xi: tf.Tensor) => trained.forward(tf.relu(block.frozen.forward(xi)));
  const vars = [x, trained.weight, trained.bias!];
  const ref = tf.variableGrads(() => tf.sum(tf.square(run(x))), vars);
  let got: typeof ref | undefined;
  const prof = await tf.profile(() => {
    got = tf.variableGrads(() => tf.sum(tf.square(checkpointBlock(trained, x, [], (xi) => run(xi)))), vars);
  });
  for (const v of vars) {
    const a = await got!.grads[v.name]!.data();
    const b = await ref.grads[v.name]!.data();
    b.forEach((e, i) => assert.ok(Math.abs(a[i]! - e) <= CHECKPOINT_RTOL * Math.max(1, Math.abs(e)), v.name));
  }
  assert.equal(got!.grads[frozen.weight.name], undefined);
  // forward twice (once taped off, once recomputed) + dX and dW of `trained` + dX of `frozen`
  const matmuls = prof.kernels.filter((k) => k.name === 'BatchMatMul' || k.name === '_FusedMatMul').length;
  assert.equal(matmuls, 4 + 3);
  tf.dispose([x, ref.value, got!.value, ...Object.values(ref.grads), ...Object.values(got!.grads)]);
  frozen.dispose();
  trained.dispose();
});

test('a forward without gradients frees each layer before the next (peak does not grow with depth)', async () => {
  const peakOf = async (layers: number) => {
    manualSeed(3);
    const model = modelFromConfig({ ...TINY_LLAMA, num_hidden_layers: layers }, { task: 'CAUSAL_LM' });
    const ids = tf.tensor2d(
      Array.from({ length: 64 }, (_, i) => i % 30),
      [2, 32],
      'int32',
    );
    const base = tf.memory().numBytes;
    const prof = await tf.profile(() => {
      tf.dispose(model.forward({ inputIds: ids }).logits);
    });
    ids.dispose();
    model.dispose();
    return prof.peakBytes - base;
  };
  const two = await peakOf(2);
  const eight = await peakOf(8);
  // kept to the end, every layer's intermediates made it 3.6× here; the small growth left is each
  // layer's output and keys/values, which the trunk holds until it returns
  assert.ok(eight < 2 * two, `peak above the model: 8 layers ${eight} B vs 2 layers ${two} B`);
});
