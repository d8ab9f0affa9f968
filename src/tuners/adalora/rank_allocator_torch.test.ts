/**
 * The rank allocator end to end against the python3-torch reference (tests/fixtures/adalora_mask.py):
 * three EMA steps, triplet scores, threshold, rank pattern and the zeroed lora_E entries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tf, type Tensor } from '../../tensor/tf.js';
import { RankAllocator } from './rank_allocator.js';

const ref = JSON.parse(
  readFileSync(new URL('../../../tests/fixtures/adalora_mask.json', import.meta.url), 'utf8'),
);
const schedule = {
  targetR: 1,
  tinit: 0,
  tfinal: 0,
  totalStep: 100,
  deltaT: 1,
  beta1: ref.beta1,
  beta2: ref.beta2,
};
const disposeMap = (m: Map<string, Tensor>) => m.forEach((t) => t.dispose());
const col = (m: Map<string, Tensor>, n: string) => Array.from(m.get(n)!.dataSync());

/** Triplet scores: torch.mean's summation order differs from tfjs's (PEFT `RankAllocator.mask_to_budget`): a few f32 ulps. */
const SCORE_RTOL = 1e-5;

test('three EMA steps then a masking step match the python3-torch reference (scores, threshold, pattern, zeroed E)', () => {
  assert.ok(ref.relative_gap > 100 * SCORE_RTOL, 'the reference threshold has a margin over the tolerance');
  let params = new Map<string, tf.Variable>();
  let alloc: RankAllocator | null = null;
  for (const step of ref.steps as Record<string, { shape: number[]; p: number[]; grad: number[] }>[]) {
    disposeMap(params);
    params = new Map(Object.entries(step).map(([n, r]) => [n, tf.variable(tf.tensor(r.p, r.shape))]));
    alloc ??= new RankAllocator(params, schedule);
    const grads = new Map(Object.entries(step).map(([n, r]) => [n, tf.tensor(r.grad, r.shape)]));
    alloc.updateIpt(params, grads);
    disposeMap(grads);
  }
  const scores = alloc!.tripletScores(params);
  for (const [n, expected] of Object.entries(ref.triplet_scores as Record<string, number[]>)) {
    Array.from(scores.get(n)!.dataSync()).forEach((v, i) =>
      assert.ok(
        Math.abs(v - expected[i]!) <= SCORE_RTOL * Math.abs(expected[i]!),
        `${n}[${i}]: ${v} vs ${expected[i]}`,
      ),
    );
  }
  disposeMap(scores);
  assert.deepEqual(alloc!.maskToBudget(params, ref.budget), ref.rank_pattern);
  for (const [n, e] of Object.entries(ref.masked_E as Record<string, number[]>)) {
    assert.deepEqual(col(params, n), e.map(Math.fround));
  }
  alloc!.dispose();
  disposeMap(params);
});
