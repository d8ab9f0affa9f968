/**
 * LoftQ init (`initLoraWeights: 'loftq'`) against an independent python3-torch implementation of the
 * paper's Algorithm 1 / PEFT's `loftq_init` (tests/fixtures/loftq_reference.py), plus the QLoRA route:
 * LoftQ on the f32 model, then `quantizeModel(…, { doubleQuant: false })` packs the base without loss.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tf, type Tensor } from '../../tensor/tf.js';
import { Linear, Embedding } from '../../nn/layers.js';
import { Linear4bit, quantizeModel } from '../../nn/linear4bit.js';
import { lcgValues } from '../../testing/lcg.js';
import { tinyIds, tinyLlamaLm } from '../../testing/tiny_models.js';
import { ConfigError, NotSupportedError } from '../../errors.js';
import { collectWarnings } from '../base/warnings.js';
import { getPeftModel } from '../peft_model.js';
import { AdaLoraConfig } from '../adalora/index.js';
import './index.js'; // registers the LORA tuner for getPeftModel
import { LoraConfig } from './config.js';
import { LoraLinear } from './layer.js';
import { LoraEmbedding } from './embedding.js';
import { maxDiff } from '../../testing/compare.js';

interface RefCase {
  out: number;
  in: number;
  r: number;
  iters: number;
  seed: number;
  deq: number[];
  BA: number[];
  errQuant: number;
  errLoftq: number;
}
const ref = JSON.parse(
  readFileSync(new URL('../../../tests/fixtures/loftq_reference.json', import.meta.url), 'utf8'),
) as { cases: RefCase[] };

/** torch's f32 LAPACK SVD vs our f64 Jacobi rounded to f32: products agree to a few f32 ulps of |W|. */
const SVD_PRODUCT_ATOL = 2e-6;
/**
 * From the second round on, `res = W − L·R` is summed in another order than torch's f32 GEMM, so a
 * block's absmax may differ in its last bit (≤ 1 ulp of values ≤ 0.5: 6e-8); every code stays the same
 * (a different code would move an element by ≥ 0.04 · absmax).
 */
const DEQ_ATOL = 1.2e-7;
/** Norms summed over ≤ 1,000 elements in f32 (torch) and f64 (here). */
const NORM_RTOL = 1e-5;

const arr = (t: Tensor) => Float32Array.from(t.dataSync());

const baseWeight = (layer: LoraLinear) => (layer.base_layer as Linear).weight;

function loftqLayer(c: { out: number; in: number; r: number; iters: number; seed: number }, alpha = c.r) {
  const base = new Linear(c.in, c.out, { bias: false });
  const w = tf.tensor2d(lcgValues(c.out * c.in, c.seed), [c.out, c.in]);
  base.weight.assign(w);
  const layer = new LoraLinear(base, 'default', {
    r: c.r,
    loraAlpha: alpha,
    initLoraWeights: 'loftq',
    loftq: { bits: 4, iters: c.iters },
  });
  return { layer, w };
}

test('LoftQ: NF4 base and B·A equal the torch reference (1, 2 and 4 alternating rounds)', () => {
  for (const c of ref.cases) {
    const { layer, w } = loftqLayer(c);
    const deq = arr(baseWeight(layer));
    const deqTol = c.iters === 1 ? 0 : DEQ_ATOL; // round 1 quantises W itself: bit for bit
    assert.ok(maxDiff(deq, c.deq) <= deqTol, `base = deq(NF4(res)) (${c.out}×${c.in}, ${c.iters} rounds)`);
    const ba = tf.tidy(() =>
      arr(tf.matMul(layer.lora_B.get('default')!.weight, layer.lora_A.get('default')!.weight)),
    );
    assert.ok(
      maxDiff(ba, c.BA) <= SVD_PRODUCT_ATOL,
      `B·A (${c.out}×${c.in}, ${c.iters} rounds): ${maxDiff(ba, c.BA)}`,
    );
    // what the init buys: ‖W − (base + B·A)‖ is the reference's LoftQ error, below the plain 4-bit error
    const errLoftq = tf.tidy(
      () => tf.norm(tf.sub(w, tf.add(baseWeight(layer), tf.tensor2d(ba, [c.out, c.in])))).dataSync()[0]!,
    );
    assert.ok(Math.abs(errLoftq - c.errLoftq) <= NORM_RTOL * c.errLoftq + 1e-7);
    assert.ok(c.errLoftq < c.errQuant);
    // and the layer's own output is base + B·A (scaling 1)
    const x = tf.tensor2d(lcgValues(3 * c.in, 99), [3, c.in]);
    const want = tf.tidy(() =>
      arr(tf.matMul(x, tf.add(baseWeight(layer), tf.tensor2d(ba, [c.out, c.in])), false, true)),
    );
    const got = tf.tidy(() => arr(layer.forward(x)));
    assert.ok(maxDiff(got, want) < 1e-5);
    tf.dispose([x, w]);
    layer.dispose();
  }
});

test('LoftQ errors and warnings: 4-bit base, rank, scaling ≠ 1, AdaLoRA, embeddings', () => {
  const c = ref.cases[2]!;
  const { warnings } = collectWarnings(() => {
    const { layer, w } = loftqLayer(c, 2 * c.r);
    layer.dispose();
    w.dispose();
  });
  assert.match(warnings.join('\n'), /scaling loraAlpha \/ r is 2, not 1/);
  assert.throws(
    () => loftqLayer({ ...c, r: 17 }),
    (e: Error) => e instanceof ConfigError && /r must not exceed min\(out, in\) = 16/.test(e.message),
  );
  const q = Linear4bit.fromLinear(new Linear(64, 8, { bias: false }), { quantType: 'nf4' });
  assert.throws(
    () =>
      new LoraLinear(q, 'default', {
        r: 2,
        loraAlpha: 2,
        initLoraWeights: 'loftq',
        loftq: { bits: 4, iters: 1 },
      }),
    /needs the full-precision base weight.*quantizeModel\(model, \{ doubleQuant: false \}\)/,
  );
  assert.throws(
    () =>
      new AdaLoraConfig({
        initLoraWeights: 'loftq',
        loftqConfig: { loftq_bits: 4 },
        totalStep: 10,
        targetModules: ['q'],
      }),
    /AdaLoRA does not support LoftQ/,
  );
  assert.throws(
    () =>
      new LoraEmbedding(new Embedding(10, 4), 'default', { r: 2, loraAlpha: 2, initLoraWeights: 'loftq' }),
    NotSupportedError,
  );
});

test('QLoRA with LoftQ: quantizeModel packs the LoftQ base exactly, leaves adapters f32, outputs unchanged', () => {
  const model = tinyLlamaLm();
  const peft = getPeftModel(
    model,
    new LoraConfig({
      r: 2,
      loraAlpha: 2,
      initLoraWeights: 'loftq',
      loftqConfig: { loftq_bits: 4, loftq_iter: 2 },
      targetModules: 'all-linear', // every layer quantizeModel packs is then on the NF4 grid
    }),
  );
  const x = tinyIds();
  const before = tf.tidy(() => arr(peft.forward({ inputIds: x }).logits));
  const path = 'model.layers.1.mlp.down_proj';
  const grid = arr((model.getSubmodule(`${path}.base_layer`) as Linear).weight);
  const report = quantizeModel(model, { quantType: 'nf4', doubleQuant: false });
  assert.ok(report.quantized.includes(`${path}.base_layer`));
  assert.ok(!report.quantized.some((p) => p.includes('lora_')), 'adapter factors are not quantised');
  const packed = model.getSubmodule(`${path}.base_layer`) as Linear4bit;
  assert.ok(packed instanceof Linear4bit);
  const dense = packed.denseWeight();
  assert.equal(maxDiff(arr(dense), grid), 0, 're-quantising NF4-grid values is lossless');
  dense.dispose();
  assert.ok(model.getSubmodule(`${path}.lora_A.default`) instanceof Linear);
  const after = tf.tidy(() => arr(peft.forward({ inputIds: x }).logits));
  assert.ok(maxDiff(after, before) < 1e-5, 'the 4-bit model computes what the LoftQ model did');
  assert.ok(peft.trainableParameters().every(([n]) => n.includes('lora_')));
  x.dispose();
  peft.dispose();
});
