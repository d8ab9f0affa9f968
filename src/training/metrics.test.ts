import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  accuracy,
  computeMetrics,
  f1,
  matthewsCorrelation,
  pearson,
  perplexity,
  rank,
  spearman,
} from './metrics.js';

const ref = JSON.parse(
  readFileSync(new URL('../../tests/fixtures/metrics_reference.json', import.meta.url), 'utf8'),
);
// both sides are float64 sums over < 50 terms in possibly different orders.
const F64_ATOL = 1e-12;
const near = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) <= F64_ATOL, `${what}: ${a} vs ${b}`);

test('hand-checked small cases', () => {
  near(accuracy([1, 0, 1], [1, 1, 1]), 2 / 3, 'accuracy');
  near(f1([1, 0, 1, 1], [1, 0, 0, 1]), 0.8, 'f1'); // tp 2, fp 1, fn 0
  near(f1([0, 0], [1, 1]), 0, 'f1 no tp');
  // tp=1 fp=1 tn=2 fn=0: (1·2 − 1·0)/√(2·1·3·2)
  near(matthewsCorrelation([1, 1, 0, 0], [1, 0, 0, 0]), 2 / Math.sqrt(12), 'mcc');
  near(matthewsCorrelation([1, 1, 1], [1, 0, 1]), 0, 'mcc constant prediction');
  assert.deepEqual(rank([10, 20, 20, 5]), [2, 3.5, 3.5, 1]);
  near(spearman([1, 2, 3, 4], [1, 3, 2, 4]), 0.8, 'spearman');
  near(perplexity(Math.log(4)), 4, 'ppl');
  assert.throws(() => accuracy([1], [1, 2]), /same length/);
  assert.throws(() => pearson([], []), /at least one/);
});

test('matches the python reference (ties, multiclass MCC)', () => {
  near(accuracy(ref.preds, ref.labels), ref.acc, 'acc');
  near(matthewsCorrelation(ref.preds, ref.labels), ref.mcc3, 'mcc3');
  near(f1(ref.bp, ref.bl), ref.f1, 'f1');
  near(matthewsCorrelation(ref.bp, ref.bl), ref.mcc2, 'mcc2');
  near(pearson(ref.x, ref.y), ref.pearson, 'pearson');
  assert.deepEqual(rank(ref.x), ref.ranks_x);
  near(spearman(ref.x, ref.y), ref.spearman, 'spearman');
  const m = computeMetrics('binary', ref.bp, ref.bl);
  near(m.f1!, ref.f1, 'computeMetrics f1');
});
