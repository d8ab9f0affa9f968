import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../tensor/tf.js';
import { assertNoLeak } from '../../tensor/memory.js';
import { Embedding, Linear } from '../../nn/layers.js';
import { manualSeed } from '../../nn/init.js';
import { ConfigError, NotSupportedError } from '../../errors.js';
import { collectWarnings } from '../base/warnings.js';
import { SVDLinear, createSvdModule, RANKNUM_EPS } from './layer.js';

/** Merged vs unmerged: one extra f32 rounding of W + Δ and a different summation order (rtol 1e-6 plus a small absolute floor). */
const MERGE_RTOL = 1e-5;
const MERGE_ATOL = 1e-6;

const opts = { r: 2, loraAlpha: 4, loraDropout: 0, initLoraWeights: true };

function close(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i]! - b[i]!) <= atol + rtol * Math.abs(b[i]!), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

test('SVD forward golden: x=[1,2], A=I, E=[2,0], B=[[1,0],[0,1],[1,1]], α=4 → [2,0,2]·4/f32(2+1e-5) (PEFT SVDLinear.forward)', async () => {
  const base = new Linear(2, 3, { bias: false });
  base.weight.assign(tf.zeros([3, 2]));
  const layer = new SVDLinear(base, 'default', opts);
  layer.lora_A.get('default')!.assign(tf.eye(2));
  layer.lora_E.get('default')!.assign(tf.tensor2d([[2], [0]]));
  layer.lora_B.get('default')!.assign(
    tf.tensor2d([
      [1, 0],
      [0, 1],
      [1, 1],
    ]),
  );
  const x = tf.tensor2d([[1, 2]]);
  const y = await assertNoLeak(() => layer.forward(x), 1, 'forward');
  const v = Math.fround(8 / Math.fround(2 + Math.fround(RANKNUM_EPS)));
  assert.deepEqual(Array.from(y.dataSync()), [v, 0, v]);
  assert.ok(Math.abs(v - 3.99998) < 1e-5);
  const d = layer.getDeltaWeight('default');
  // Δ = B(A∘E)·4/rn = [[2,0],[0,0],[2,0]]·4/rn
  assert.deepEqual(Array.from(d.dataSync()), [v, 0, 0, 0, v, 0]);
  [x, y, d].forEach((t) => t.dispose());
  layer.dispose();
});

test('parameters: ParameterDict names without .weight, shapes, init, ranknum frozen', () => {
  manualSeed(3);
  const layer = new SVDLinear(new Linear(6, 5), 'default', {
    r: 4,
    loraAlpha: 0,
    loraDropout: 0.1,
    initLoraWeights: true,
  });
  const named = layer.namedParameters().map(([n, p]) => [n, p.shape, p.trainable]);
  assert.deepEqual(named, [
    ['base_layer.weight', [5, 6], true],
    ['base_layer.bias', [5], true],
    ['lora_A.default', [4, 6], true],
    ['lora_B.default', [5, 4], true],
    ['lora_E.default', [4, 1], true],
    ['ranknum.default', [1], false],
  ]);
  assert.equal(layer.scaling.get('default'), 4, 'alpha ≤ 0 → scaling = r');
  assert.deepEqual(Array.from(layer.ranknum.get('default')!.dataSync()), [4]);
  assert.ok(Array.from(layer.lora_E.get('default')!.dataSync()).every((v) => v === 0));
  const a = Array.from(layer.lora_A.get('default')!.dataSync());
  const std = Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
  assert.ok(std > 0.005 && std < 0.05, `A ~ N(0, 0.02²), sample std ${std}`);
  layer.setAdapter('default');
  assert.equal(layer.ranknum.get('default')!.trainable, false, 'setAdapter never unfreezes ranknum');
  layer.dispose();
});

test('fresh adapter = base; merged = unmerged; merge+unmerge restores W; fanInFanOut; no leaks', async () => {
  manualSeed(7);
  for (const fanInFanOut of [false, true]) {
    const base = new Linear(5, 4, { fanInFanOut });
    const layer = new SVDLinear(base, 'default', {
      r: 3,
      loraAlpha: 6,
      loraDropout: 0,
      initLoraWeights: true,
    });
    const x = tf.randomNormal([2, 3, 5], 0, 1, 'float32', 11);
    const b0 = base.forward(x);
    const y0 = layer.forward(x);
    assert.deepEqual(
      Array.from(y0.dataSync()),
      Array.from(b0.dataSync()),
      'E = 0 makes the adapter an identity',
    );
    layer.lora_E.get('default')!.assign(tf.tensor2d([[0.7], [-1.3], [0.4]]));
    const w0 = Array.from(base.weight.dataSync());
    const y1 = await assertNoLeak(() => layer.forward(x), 1);
    assert.ok(
      Math.max(...Array.from(tf.tidy(() => tf.abs(tf.sub(y1, b0)).dataSync()))) > 1e-4,
      'adapter changes the output',
    );
    await assertNoLeak(() => layer.merge({ safeMerge: true }));
    assert.deepEqual(layer.mergedAdapters, ['default']);
    const y2 = layer.forward(x);
    close(y2.dataSync(), y1.dataSync(), MERGE_RTOL, MERGE_ATOL, `merged fanInFanOut=${fanInFanOut}`);
    await assertNoLeak(() => layer.unmerge());
    close(base.weight.dataSync(), w0, MERGE_RTOL, MERGE_ATOL, 'unmerged weight');
    const { warnings } = collectWarnings(() => layer.unmerge());
    assert.match(warnings[0]!, /Already unmerged/);
    [x, b0, y0, y1, y2].forEach((t) => t.dispose());
    layer.dispose();
  }
});

test('rank 0 is allowed: zero-size tensors, output = base; resizeByMask keeps rows and restores ranknum', () => {
  manualSeed(1);
  const base = new Linear(3, 2);
  const zero = new SVDLinear(base, 'default', { r: 0, loraAlpha: 8, loraDropout: 0, initLoraWeights: true });
  assert.deepEqual(zero.lora_A.get('default')!.shape, [0, 3]);
  assert.deepEqual(zero.lora_B.get('default')!.shape, [2, 0]);
  const x = tf.ones([1, 3]);
  const [yb, yz] = [base.forward(x), zero.forward(x)];
  assert.deepEqual(Array.from(yz.dataSync()), Array.from(yb.dataSync()));
  const dz = zero.getDeltaWeight('default');
  assert.ok(Array.from(dz.dataSync()).every((v) => v === 0));
  [yb, yz, dz].forEach((t) => t.dispose());
  zero.dispose();

  const layer = new SVDLinear(new Linear(3, 2), 'default', {
    r: 3,
    loraAlpha: 8,
    loraDropout: 0,
    initLoraWeights: true,
  });
  layer.lora_E.get('default')!.assign(tf.tensor2d([[1], [0], [3]]));
  const before = layer.forward(x);
  const a0 = layer.lora_A.get('default')!.arraySync() as number[][];
  layer.resizeByMask('default', [true, false, true], {
    r: 3,
    loraAlpha: 8,
    loraDropout: 0,
    initLoraWeights: true,
  });
  assert.deepEqual(layer.lora_A.get('default')!.arraySync(), [a0[0], a0[2]]);
  assert.deepEqual(Array.from(layer.lora_E.get('default')!.dataSync()), [1, 3]);
  assert.deepEqual(Array.from(layer.ranknum.get('default')!.dataSync()), [3], 'ranknum restored to initR');
  const after = layer.forward(x);
  close(
    after.dataSync(),
    before.dataSync(),
    MERGE_RTOL,
    MERGE_ATOL,
    'forward after trimming a pruned triplet',
  );
  layer.resizeByMask('default', [false, false], {
    r: 3,
    loraAlpha: 8,
    loraDropout: 0,
    initLoraWeights: true,
  });
  assert.equal(layer.r.get('default'), 0);
  [x, before, after].forEach((t) => t.dispose());
  layer.dispose();
});

test('createSvdModule: Embedding rejected clearly; fanInFanOut follows the module with a warning', () => {
  assert.throws(
    () => createSvdModule(new Embedding(5, 4), 'default', opts, false, 'wte'),
    (e: unknown) => e instanceof NotSupportedError && /Embedding/.test(String(e)),
  );
  assert.throws(() => new SVDLinear(new Linear(2, 2), 'default', { ...opts, r: -1 }), ConfigError);
  const { result, warnings } = collectWarnings(() =>
    createSvdModule(new Linear(4, 3, { fanInFanOut: true }), 'default', opts, false, 'h.0.attn.c_attn'),
  );
  assert.equal(result.fanInFanOut, true);
  assert.match(warnings[0]!, /Setting fanInFanOut to true/);
  result.layer.dispose();
});

test('an adapter re-created in eval mode (resize on load) keeps dropout off', () => {
  manualSeed(12);
  const o = { r: 2, loraAlpha: 2, loraDropout: 0.5, initLoraWeights: true };
  const layer = new SVDLinear(new Linear(4, 3), 'default', o).eval();
  layer.lora_E.get('default')!.assign(tf.tensor2d([[1], [2]]));
  const x = tf.ones([2, 4]);
  const y1 = layer.forward(x);
  layer.resizeByMask('default', [true, true], o);
  assert.equal(layer.lora_dropout.get('default')!.training, false);
  const y2 = layer.forward(x);
  assert.deepEqual(Array.from(y2.dataSync()), Array.from(y1.dataSync()));
  [x, y1, y2].forEach((t) => t.dispose());
  layer.dispose();
});

test('setScale multiplies alpha (not alpha / r: PEFT gets this wrong for AdaLoRA)', () => {
  const layer = new SVDLinear(new Linear(2, 2), 'default', {
    r: 4,
    loraAlpha: 8,
    loraDropout: 0,
    initLoraWeights: true,
  });
  layer.setScale('default', 0.5);
  assert.equal(layer.scaling.get('default'), 4);
  layer.setScale('default', 1);
  assert.equal(layer.scaling.get('default'), 8);
  layer.dispose();
});
