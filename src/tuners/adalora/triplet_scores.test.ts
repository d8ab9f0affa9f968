/**
 * `tripletScores` on native (one `LowrankTripletScores` call over all layers) against the composed
 * tfjs ops of PEFT's `mask_to_budget` (S = s(E) + mean_j s(A) + mean_o s(B), s = Ī·Ū or Ī): bit
 * for bit against the composed native kernels, within float32 tolerance against the cpu backend;
 * the error for a layer without lora_E is unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, type Tensor } from '../../tensor/tf.js';
import { Rng } from '../../util/rng.js';
import { nativeAvailable } from '../../testing/backend_parity.js';
import { CheckpointError } from '../../errors.js';
import { tripletScores } from './triplet_scores.js';
import type { ImportanceMetric } from './rank_allocator.js';

const skip = nativeAvailable() ? false : 'native addon not built';
// cpu's Mean sums in another order than the native kernel: ~1e-7 relative per score.
const CPU_RTOL = 1e-5;
// two layers; 13 and 37 columns leave a tail after the native sum's 8-wide blocks
const LAYERS = [
  { name: 'layer.0.query', r: 3, in: 13, out: 9 },
  { name: 'layer.0.value', r: 5, in: 37, out: 21 },
  { name: 'layer.1.dense', r: 1, in: 8, out: 4 },
];

function stats(seed: number) {
  const rng = new Rng(seed);
  const t = (shape: number[]) => tf.tensor(rng.normalArray(shape[0]! * shape[1]!).map(Math.abs), shape);
  const params = new Map<string, Tensor>();
  const ipt = new Map<string, Tensor>();
  const unc = new Map<string, Tensor>();
  for (const l of LAYERS) {
    const shapes: [string, number[]][] = [
      ['lora_A', [l.r, l.in]],
      ['lora_B', [l.out, l.r]],
      ['lora_E', [l.r, 1]],
    ];
    for (const [kind, shape] of shapes) {
      const n = `base_model.model.${l.name}.${kind}.default`;
      params.set(n, t(shape));
      ipt.set(n, t(shape));
      unc.set(n, t(shape));
    }
  }
  return { params, ipt, unc };
}

/** The composed ops, written out: s(E) + mean(s(A), 1) + mean(s(B), 0). */
function composed(s: ReturnType<typeof stats>, importance: ImportanceMetric): Float32Array[] {
  return LAYERS.map((l) =>
    tf.tidy(() => {
      const el = (kind: string) => {
        const n = `base_model.model.${l.name}.${kind}.default`;
        return importance === 'sensitivity' ? s.ipt.get(n)! : tf.mul(s.ipt.get(n)!, s.unc.get(n)!);
      };
      const sum = tf.add(
        tf.add(el('lora_E').reshape([-1]), tf.mean(el('lora_A'), 1).reshape([-1])),
        tf.mean(el('lora_B'), 0).reshape([-1]),
      );
      return sum.dataSync() as Float32Array;
    }),
  );
}

function scores(s: ReturnType<typeof stats>, importance: ImportanceMetric): Float32Array[] {
  const out = tripletScores(s.params, 'default', importance, s.ipt, s.unc);
  assert.deepEqual(
    [...out.keys()],
    LAYERS.map((l) => `base_model.model.${l.name}.lora_E.default`),
  );
  const v = [...out.values()].map((t) => t.dataSync() as Float32Array);
  out.forEach((t) => t.dispose());
  return v;
}

const dispose = (s: ReturnType<typeof stats>) =>
  [s.params, s.ipt, s.unc].forEach((m) => m.forEach((t) => t.dispose()));

test('native triplet scores equal the composed native kernels bit for bit', { skip }, async () => {
  await tf.setBackend('native');
  for (const importance of ['sensitivity-uncertainty', 'sensitivity'] as const) {
    const s = stats(3);
    const before = tf.memory().numTensors;
    assert.deepEqual(scores(s, importance), composed(s, importance), importance);
    assert.equal(tf.memory().numTensors, before);
    dispose(s);
  }
});

test('native triplet scores match the cpu backend', { skip }, async () => {
  for (const importance of ['sensitivity-uncertainty', 'sensitivity'] as const) {
    await tf.setBackend('native');
    const sn = stats(4);
    const nat = scores(sn, importance);
    dispose(sn);
    await tf.setBackend('cpu');
    const sc = stats(4);
    const cpu = scores(sc, importance);
    dispose(sc);
    nat.forEach((v, i) =>
      v.forEach((x, j) =>
        assert.ok(Math.abs(x - cpu[i]![j]!) <= CPU_RTOL * Math.abs(cpu[i]![j]!), importance),
      ),
    );
  }
  await tf.setBackend('native');
});

test('a lora_A without its lora_E is still a CheckpointError on native', { skip }, async () => {
  await tf.setBackend('native');
  const s = stats(5);
  const e = 'base_model.model.layer.0.value.lora_E.default';
  s.params.get(e)!.dispose();
  s.params.delete(e);
  assert.throws(() => tripletScores(s.params, 'default', 'sensitivity', s.ipt, s.unc), CheckpointError);
  dispose(s);
});
