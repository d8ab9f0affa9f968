/**
 * Experiment suites (issue 7): a JSON file describing a grid of (task × method × budget × seed) cells
 * and the training rule shared by every cell. Paths in a suite are relative to the suite file.
 *
 * ```json
 * { "name": "quick", "model": "../../../shared/data/models/stories260K/stories260K.bin",
 *   "seeds": [0, 1], "budgets": { "low": 11600 },
 *   "tasks": [{ "name": "sst2", "type": "classification", "metric": "binary", "train": "…", "dev": "…" }],
 *   "methods": ["lora-qv", "lora-all", "adalora"], "budgetNames": ["low"],
 *   "ablations": [], "training": { "maxSteps": 300, "batchSize": 16, "lr": 5e-3 } }
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';

/** Method names the harness knows (see methods.ts for what each one builds). */
export const METHODS = [
  'full',
  'lora-all',
  'lora-qv',
  'adalora',
  'dora',
  'qlora',
  // ablations (paper Tables 4–5), run at the ablation budget
  'adalora-sensitivity',
  'adalora-magnitude',
  'adalora-no-orth',
  'prune-lora',
  'svd-lora',
] as const;
export type MethodName = (typeof METHODS)[number];

export type TaskType = 'classification' | 'regression' | 'causal_lm';

/** One task, given by paths and type (any GLUE-format folder works). */
export interface TaskSpec {
  name: string;
  type: TaskType;
  /** Metric set: 'binary' (accuracy/F1/MCC), 'cola' (MCC), 'classification', 'regression', 'causal_lm'. */
  metric?: 'binary' | 'cola' | 'classification' | 'regression' | 'causal_lm';
  /** Table tasks: train/dev (and optional test with labels) files. */
  train?: string;
  dev?: string;
  test?: string;
  /** Fixed label order for string labels (e.g. RTE's entailment/not_entailment). */
  labelNames?: string[];
  /** Causal LM: one text file split by characters: first `trainFraction` train, the rest validation. */
  text?: string;
  trainFraction?: number;
  /** Tokens per sequence (classification: truncation length; causal LM: block size). */
  maxLength: number;
  /** Per-task batch size (default `training.batchSize`). */
  batchSize?: number;
  /** Use a seeded random subset of this many training examples (0 or absent: all). */
  trainLimit?: number;
  /** Evaluate on the first N dev/validation examples (0 or absent: all). */
  evalLimit?: number;
  /** Same for the test file. */
  testLimit?: number;
}

/** The training rule applied to every method alike. */
export interface TrainingSpec {
  maxSteps: number;
  batchSize: number;
  evalBatchSize?: number;
  /** One learning rate for every method, or a grid searched on dev (seed `tuneSeed`) per task × method × budget. */
  lr: number | number[];
  /** Learning rate for full fine-tuning when it must differ (documented in results.md); default `lr`. */
  fullLr?: number | number[];
  warmupFraction?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  loraDropout?: number;
  /** AdaLoRA schedule as fractions of maxSteps (defaults 0.1, 0.3, 0.01 — the CLI's rule). */
  tinitFraction?: number;
  tfinalFraction?: number;
  deltaTFraction?: number;
  /** AdaLoRA initial rank = ceil(initRFactor × target rank), the paper's b(0) = 1.5·b(T). */
  initRFactor?: number;
  orthRegWeight?: number;
  /**
   * Methods that use another method's searched rate instead of their own search (same task, budget and
   * results folder), e.g. the ablations `{ "adalora-sensitivity": "adalora", "prune-lora": "lora-all" }`:
   * an ablation changes one thing of the method it modifies, the learning rate stays.
   */
  inheritLr?: Partial<Record<MethodName, MethodName>>;
  /**
   * Take every method's rate from a finished search of another suite instead of searching:
   * `output` (results folder, relative to the suite file) and `task` whose tune files decide.
   */
  lrFrom?: { output: string; task: string };
}

export interface Suite {
  name: string;
  /** Base model (llama2.c .bin or HF folder) and tokenizer. */
  model: string;
  tokenizer?: string;
  seeds: number[];
  /** Seed used for the learning-rate search when `training.lr` is a grid. */
  tuneSeed?: number;
  /** Trainable adapter parameters (excluding the task head, which every method trains alike). */
  budgets: Record<string, number>;
  /** Budgets the main methods run at. */
  budgetNames: string[];
  /** Budget the ablations run at. */
  ablationBudget?: string;
  /** Seeds of the ablation cells (default: `seeds`). */
  ablationSeeds?: number[];
  /** Allowed relative mismatch between a method's count and the budget (issue 7: 10%). */
  tolerance?: number;
  tasks: TaskSpec[];
  methods: MethodName[];
  ablations: MethodName[];
  training: TrainingSpec;
  /** Output folder (default: see `defaultOutput`). */
  output?: string;
}

/**
 * Where results go when the suite names no `output`: `results/<name>` beside the suite's folder when
 * that folder is called `suites` (experiments/suites/x.json → experiments/results/x), else
 * `results/<name>` inside the suite's folder.
 */
export function defaultOutput(file: string, name: string): string {
  const dir = path.dirname(path.resolve(file));
  return path.basename(dir) === 'suites'
    ? path.join(dir, '..', 'results', name)
    : path.join(dir, 'results', name);
}

/** One grid cell. `budget` is 'ref' for full fine-tuning (not budget-matched). */
export interface Cell {
  task: TaskSpec;
  method: MethodName;
  budget: string;
  seed: number;
  /** File-system id: task__method__budget__seed<s>. */
  id: string;
}

/** A suite file breaks a rule: `<file> <field>: <rule> (got …). <fix>.` */
function fail(file: string, field: string, rule: string, got: unknown, fix: string): never {
  throw new ConfigError(`${file} ${field}`, rule, got, fix);
}

/**
 * Reads and validates a suite file; resolves its paths against the file's folder.
 * @example const suite = readSuite('experiments/suites/quick.json');
 */
export function readSuite(file: string): Suite {
  if (!fs.existsSync(file))
    throw new ConfigError(
      'suite',
      'the suite file does not exist',
      file,
      'pass the path of a suite JSON file',
    );
  let s: Suite;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8')) as Suite;
  } catch (e) {
    throw new ConfigError(file, 'is not valid JSON', (e as Error).message, 'fix the JSON syntax');
  }
  const base = path.dirname(path.resolve(file));
  const abs = (p: string | undefined) => (p === undefined ? undefined : path.resolve(base, p));
  for (const k of [
    'name',
    'model',
    'seeds',
    'budgets',
    'budgetNames',
    'tasks',
    'methods',
    'training',
  ] as const)
    if (s[k] === undefined) fail(file, k, 'is required', undefined, `add "${k}" (see src/harness/suite.ts)`);
  s.ablations ??= [];
  for (const m of [...s.methods, ...s.ablations])
    if (!METHODS.includes(m)) fail(file, 'methods', 'unknown method', m, `use one of ${METHODS.join(', ')}`);
  for (const b of [...s.budgetNames, ...(s.ablations.length ? [s.ablationBudget ?? 'low'] : [])])
    if (!(b in s.budgets))
      fail(file, 'budgetNames', 'names a budget missing from "budgets"', b, `add "${b}" to "budgets"`);
  s.model = abs(s.model)!;
  s.tokenizer = abs(s.tokenizer);
  s.output = abs(s.output) ?? defaultOutput(file, s.name);
  if (s.training.lrFrom) s.training.lrFrom.output = abs(s.training.lrFrom.output)!;
  for (const [m, from] of Object.entries(s.training.inheritLr ?? {}))
    if (!METHODS.includes(m as MethodName) || !METHODS.includes(from))
      fail(file, 'training.inheritLr', 'maps unknown methods', `${m} → ${from}`, `use ${METHODS.join(', ')}`);
  for (const t of s.tasks) {
    if (!t.name || !t.type || !t.maxLength)
      fail(file, 'tasks', 'every task needs name, type and maxLength', t, 'add the missing keys');
    if (!['classification', 'regression', 'causal_lm'].includes(t.type))
      fail(
        file,
        `task ${t.name} type`,
        'unknown task type',
        t.type,
        'use classification, regression or causal_lm',
      );
    if (t.type === 'causal_lm' && !t.text)
      fail(file, `task ${t.name}`, 'a causal_lm task needs "text"', undefined, 'add the path of a text file');
    if (t.type !== 'causal_lm' && (!t.train || !t.dev))
      fail(file, `task ${t.name}`, 'needs "train" and "dev"', undefined, 'add both table paths');
    t.train = abs(t.train);
    t.dev = abs(t.dev);
    t.test = abs(t.test);
    t.text = abs(t.text);
  }
  return s;
}

/**
 * All cells of a suite, in run order: per task, the main methods seed-major (a partial run already
 * holds every method for the first seeds, so the tables fill in evenly), then the ablations.
 * @example expandGrid(suite).length; // tasks × (methods × budgets × seeds + ablations × ablationSeeds)
 */
export function expandGrid(s: Suite): Cell[] {
  const cells: Cell[] = [];
  const main: [MethodName, string][] = [];
  for (const m of s.methods) {
    if (m === 'full') main.push([m, 'ref']);
    else for (const b of s.budgetNames) main.push([m, b]);
  }
  const abl: [MethodName, string][] = s.ablations.map((m) => [m, s.ablationBudget ?? 'low']);
  const add = (task: TaskSpec, seeds: number[], pairs: [MethodName, string][]) => {
    for (const seed of seeds)
      for (const [method, budget] of pairs)
        cells.push({ task, method, budget, seed, id: `${task.name}__${method}__${budget}__seed${seed}` });
  };
  for (const task of s.tasks) {
    add(task, s.seeds, main);
    add(task, s.ablationSeeds ?? s.seeds, abl);
  }
  return cells;
}
