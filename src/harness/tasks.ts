/**
 * Task data for the harness: GLUE-format tables (train/dev/test by path) and causal-LM text files
 * (first `trainFraction` of the characters for training, the rest for validation), encoded with the
 * project's data pipeline and cached on disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadExamples, packText, type Example } from '../training/data/dataset.js';
import { contentHash } from '../training/data/hash.js';
import type { TextTokenizer } from '../training/data/tokenizer.js';
import { Rng } from '../util/rng.js';
import type { TaskSpec } from './suite.js';

export interface TaskData {
  train: Example[];
  dev: Example[];
  test?: Example[];
  /** Classes for classification heads (1 for regression, 0 for causal LM). */
  numLabels: number;
  labelNames?: string[];
  /** Sizes before subsetting, for the results page. */
  fullSizes: { train: number; dev: number; test?: number };
}

/** Seed of the fixed training subset (the same examples for every method and seed). */
const SUBSET_SEED = 1234;

function subset(all: Example[], limit: number | undefined): Example[] {
  if (!limit || limit >= all.length) return all;
  const perm = new Rng(SUBSET_SEED).permutation(all.length);
  return perm.slice(0, limit).map((i) => all[i]!);
}

const head = (all: Example[], limit: number | undefined) =>
  limit && limit < all.length ? all.slice(0, limit) : all;

/** Packs text into blocks, caching the token blocks by content + tokenizer + block size. */
function packCached(text: string, tok: TextTokenizer, block: number, cacheDir: string): Example[] {
  const key = contentHash(new TextEncoder().encode(text), tok.fingerprint, `pack:${block}`);
  const file = path.join(cacheDir, `${key}.json`);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as Example[];
  const out = packText(text, tok, block);
  fs.mkdirSync(cacheDir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(out));
  return out;
}

/**
 * Loads one task. Classification/regression: `train`, `dev`, optional `test` tables; causal LM: the
 * text split by characters at `trainFraction` (default 0.9) and packed into `maxLength`-token blocks.
 *
 * @example const d = await loadTask(suite.tasks[0], tok, 'experiments/.cache');
 */
export async function loadTask(t: TaskSpec, tok: TextTokenizer, cacheDir: string): Promise<TaskData> {
  if (t.type === 'causal_lm') {
    const text = fs.readFileSync(t.text!, 'utf8');
    const cut = Math.floor(text.length * (t.trainFraction ?? 0.9));
    const train = packCached(text.slice(0, cut), tok, t.maxLength, cacheDir);
    const dev = packCached(text.slice(cut), tok, t.maxLength, cacheDir);
    return {
      train: subset(train, t.trainLimit),
      dev: head(dev, t.evalLimit),
      numLabels: 0,
      fullSizes: { train: train.length, dev: dev.length },
    };
  }
  const opts = { task: t.type, tokenizer: tok, maxLength: t.maxLength, labelNames: t.labelNames, cacheDir };
  const train = await loadExamples(t.train!, opts);
  const labelNames = t.labelNames ?? train.labelNames;
  const dev = await loadExamples(t.dev!, { ...opts, labelNames });
  const test = t.test ? await loadExamples(t.test, { ...opts, labelNames }) : undefined;
  const numLabels =
    t.type === 'regression'
      ? 1
      : Math.max(2, labelNames?.length ?? Math.max(...train.examples.map((e) => e.label)) + 1);
  return {
    train: subset(train.examples, t.trainLimit),
    dev: head(dev.examples, t.evalLimit),
    ...(test ? { test: head(test.examples, t.testLimit) } : {}),
    numLabels,
    labelNames,
    fullSizes: { train: train.examples.length, dev: dev.examples.length, test: test?.examples.length },
  };
}
