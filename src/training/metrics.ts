/**
 * Evaluation metrics on plain arrays (GLUE's choices: accuracy, F1, Matthews correlation for CoLA,
 * Pearson/Spearman for STS-B; loss and perplexity for causal LM). Definitions follow scikit-learn
 * and scipy.stats.
 */
import { ConfigError } from '../errors.js';

function sameLength(where: string, a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length)
    throw new ConfigError(where, 'predictions and labels must have the same length', [a.length, b.length]);
  if (a.length === 0)
    throw new ConfigError(where, 'needs at least one example', 0, 'evaluate on a non-empty set');
}

/**
 * Fraction of exact matches.
 * @example accuracy([1, 0, 1], [1, 1, 1]); // 2/3
 */
export function accuracy(preds: ArrayLike<number>, labels: ArrayLike<number>): number {
  sameLength('accuracy', preds, labels);
  let ok = 0;
  for (let i = 0; i < preds.length; i++) if (preds[i] === labels[i]) ok++;
  return ok / preds.length;
}

/**
 * Binary F1 of the positive class (sklearn `f1_score(average='binary')`; 0 when there is no true or
 * predicted positive, as sklearn's `zero_division=0`).
 * @example f1([1, 0, 1, 1], [1, 0, 0, 1]); // 0.8
 */
export function f1(preds: ArrayLike<number>, labels: ArrayLike<number>, positive = 1): number {
  sameLength('f1', preds, labels);
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < preds.length; i++) {
    const p = preds[i] === positive;
    const l = labels[i] === positive;
    if (p && l) tp++;
    else if (p) fp++;
    else if (l) fn++;
  }
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/**
 * Matthews correlation (sklearn `matthews_corrcoef`, multiclass form; 0 when undefined).
 * @example matthewsCorrelation([1, 1, 0, 0], [1, 0, 0, 0]); // 0.577…
 */
export function matthewsCorrelation(preds: ArrayLike<number>, labels: ArrayLike<number>): number {
  sameLength('matthewsCorrelation', preds, labels);
  const classes = [...new Set([...Array.from(preds), ...Array.from(labels)])];
  const idx = new Map(classes.map((c, i) => [c, i]));
  const k = classes.length;
  const t = new Float64Array(k); // true counts
  const p = new Float64Array(k); // predicted counts
  let c = 0;
  const s = preds.length;
  for (let i = 0; i < s; i++) {
    t[idx.get(labels[i]!)!]! += 1;
    p[idx.get(preds[i]!)!]! += 1;
    if (preds[i] === labels[i]) c++;
  }
  let pt = 0;
  let pp = 0;
  let tt = 0;
  for (let j = 0; j < k; j++) {
    pt += p[j]! * t[j]!;
    pp += p[j]! * p[j]!;
    tt += t[j]! * t[j]!;
  }
  const denom = Math.sqrt((s * s - pp) * (s * s - tt));
  return denom === 0 ? 0 : (c * s - pt) / denom;
}

/**
 * Pearson correlation coefficient (NaN-free: 0 when either side is constant).
 * @example pearson([1, 2, 3], [2, 4, 7]); // 0.9934…
 */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  sameLength('pearson', x, y);
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx === 0 || syy === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

/**
 * 1-based ranks with ties given their average rank (scipy `rankdata(method='average')`).
 * @example rank([10, 20, 20, 5]); // [2, 3.5, 3.5, 1]
 */
export function rank(x: ArrayLike<number>): number[] {
  const order = Array.from({ length: x.length }, (_, i) => i).sort((a, b) => x[a]! - x[b]!);
  const r = new Array<number>(x.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && x[order[j + 1]!] === x[order[i]!]) j++;
    const avg = (i + j) / 2 + 1;
    for (let q = i; q <= j; q++) r[order[q]!] = avg;
    i = j + 1;
  }
  return r;
}

/**
 * Spearman rank correlation: Pearson on average ranks (scipy `spearmanr`).
 * @example spearman([1, 2, 3, 4], [1, 3, 2, 4]); // 0.8
 */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  sameLength('spearman', x, y);
  return pearson(rank(x), rank(y));
}

/**
 * exp(mean negative log-likelihood per token).
 * @example perplexity(Math.log(4)); // 4
 */
export function perplexity(meanLoss: number): number {
  return Math.exp(meanLoss);
}

/** Which metrics a task reports (GLUE conventions). */
export type MetricTask = 'classification' | 'binary' | 'cola' | 'regression' | 'causal_lm';

/**
 * The metric set for a task; `primary` names the one best-checkpoint tracking uses.
 * @example computeMetrics('binary', [1, 0], [1, 1]); // { accuracy: 0.5, f1: 0.667, mcc: 0 }
 */
export function computeMetrics(
  task: MetricTask,
  preds: ArrayLike<number>,
  labels: ArrayLike<number>,
): Record<string, number> {
  switch (task) {
    case 'regression':
      return { pearson: pearson(preds, labels), spearman: spearman(preds, labels) };
    case 'binary':
      return {
        accuracy: accuracy(preds, labels),
        f1: f1(preds, labels),
        mcc: matthewsCorrelation(preds, labels),
      };
    case 'cola':
      return { mcc: matthewsCorrelation(preds, labels), accuracy: accuracy(preds, labels) };
    case 'classification':
      return { accuracy: accuracy(preds, labels), mcc: matthewsCorrelation(preds, labels) };
    case 'causal_lm':
      return {};
  }
}

/** The metric (and its direction) best-checkpoint tracking uses per task. */
export function primaryMetric(task: MetricTask): { name: string; higherIsBetter: boolean } {
  switch (task) {
    case 'regression':
      return { name: 'spearman', higherIsBetter: true };
    case 'cola':
      return { name: 'mcc', higherIsBetter: true };
    case 'binary':
    case 'classification':
      return { name: 'accuracy', higherIsBetter: true };
    case 'causal_lm':
      return { name: 'loss', higherIsBetter: false };
  }
}
