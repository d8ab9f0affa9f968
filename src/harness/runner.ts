/**
 * The experiment harness (issue 7) as a function, shared by `lowrank experiment <suite.json>` and
 * `npm run experiments -- <suite.json>` (experiments/run.ts).
 *
 * Expands the suite into (task × method × budget × seed) cells, runs each with the project's Trainer
 * and writes `<output>/cells/<id>.json`; cells whose JSON already exists are skipped, so an interrupted
 * run continues where it stopped. When `training.lr` is a list, each (task, method, budget) first runs
 * every learning rate with `tuneSeed` (`<output>/tune/…json`) and the best dev score picks the rate all
 * seeds use (the search run with the tune seed at that rate is reused as that seed's cell);
 * `training.inheritLr` / `training.lrFrom` take the rate from another method's / suite's search. After
 * every cell `<output>/summary.json` holds mean ± std per method × budget × task, and at the end rank
 * heatmaps of the AdaLoRA runs are rendered to `<output>/heatmaps/`.
 *
 * Two processes may share one output folder only when their cells are disjoint (different suites or
 * `only` filters): JSON files are written atomically, but a cell is not locked while it trains.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../tensor/backend.js';
import { loadModel } from '../models/load.js';
import { openTokenizer } from '../run/data.js';
import { evaluate } from '../training/evaluate.js';
import { tf } from '../tensor/tf.js';
import { ConfigError } from '../errors.js';
import { readSuite, expandGrid, type Cell, type Suite } from './suite.js';
import { loadTask, type TaskData } from './tasks.js';
import { runCell, metricTaskOf, type CellResult } from './cell.js';
import { buildMethod, countTrainable } from './methods.js';
import { summarise, renderHeatmaps } from './summary.js';

export interface RunOptions {
  /** Keep only cells whose id contains this substring. */
  only?: string;
  /** Print each method's rank and exact parameter count, write `plan.json`, train nothing. */
  dryRun?: boolean;
  /** Rewrite summary.json and the heatmaps from finished cells, train nothing. */
  summaryOnly?: boolean;
  /** Stop after training this many cells. */
  maxCells?: number;
  /** Tokenised-data cache (default: `lowrank-experiments` in the OS temp folder). */
  cacheDir?: string;
  /** Progress lines (default: stderr with a UTC time stamp). */
  log?: (line: string) => void;
  /** Dry-run plan lines (default: stdout). */
  print?: (line: string) => void;
}

export interface RunReport {
  suite: string;
  output: string;
  /** Cells of the grid after the `only` filter. */
  cells: number;
  /** Cells trained by this call (search runs reused as cells included). */
  ran: number;
  /** Cells with a result file now. */
  finished: number;
  heatmaps: string[];
}

const stamp = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

function writeJson(file: string, v: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`; // a reader never sees a half-written file
  fs.writeFileSync(tmp, JSON.stringify(v, null, 1) + '\n');
  fs.renameSync(tmp, file);
}
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;

/** The primary dev score of a result, oriented so that larger is better. */
const score = (r: CellResult) => (r.primary.higherIsBetter ? r.primary.value : -r.primary.value);

/** Prints every (task kind, method, budget)'s rank and parameter count (no training). */
async function dryRun(s: Suite, cells: Cell[], out: string, print: (l: string) => void): Promise<void> {
  const seen = new Set<string>();
  const plan: Record<string, unknown>[] = [];
  for (const c of cells) {
    const key = `${c.task.type === 'causal_lm' ? 'lm' : 'cls'}:${c.method}:${c.budget}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const taskType = c.task.type === 'causal_lm' ? 'CAUSAL_LM' : 'SEQ_CLS';
    const base = await loadModel(s.model, {
      task: taskType,
      ...(taskType === 'SEQ_CLS' ? { numLabels: 2, padTokenId: 0 } : {}),
      seed: 0,
    });
    const budget = c.budget === 'ref' ? undefined : s.budgets[c.budget];
    const b = buildMethod(base, c.method, budget, taskType, s.training, s.tolerance ?? 0.1);
    const n = countTrainable(b.model);
    const rel = b.relError === undefined ? 'ref' : (100 * b.relError).toFixed(1) + '%';
    print(
      `${key.padEnd(34)} budget ${String(budget ?? '-').padStart(6)}  r ${String(b.r ?? '-').padStart(3)} ` +
        `initR ${String(b.initR ?? '-').padStart(3)}  matched ${String(b.matchedCount).padStart(7)} (${rel})  ` +
        `initial ${n.adapter}  head ${n.head}  targets ${b.targets?.join(',') ?? 'all'}`,
    );
    plan.push({
      key,
      budget: budget ?? null,
      r: b.r ?? null,
      initR: b.initR ?? null,
      matched: b.matchedCount,
      relError: b.relError ?? null,
      initial: n.adapter,
      head: n.head,
      targets: b.targets ?? 'all',
    });
    b.hook?.dispose?.();
    tf.dispose(b.model.parameters());
    tf.dispose(base.parameters());
  }
  writeJson(path.join(out, 'plan.json'), { suite: s.name, cells: cells.length, methods: plan });
}

/**
 * Runs (or plans, or summarises) one suite file.
 * @example const r = await runSuite('experiments/suites/quick.json', { only: 'shakespeare__' });
 */
export async function runSuite(suiteFile: string, opts: RunOptions = {}): Promise<RunReport> {
  const log = opts.log ?? stamp;
  const suite = readSuite(suiteFile);
  const out = suite.output!;
  const cacheDir = opts.cacheDir ?? path.join(os.tmpdir(), 'lowrank-experiments');
  if (opts.maxCells !== undefined && !(Number.isInteger(opts.maxCells) && opts.maxCells >= 0))
    throw new ConfigError('maxCells', 'must be an integer ≥ 0', opts.maxCells, 'pass e.g. --max-cells 4');
  const be = await initBackend('auto');
  log(`suite ${suite.name}: backend ${be.backend}; output ${out}`);
  let cells = expandGrid(suite);
  if (opts.only) cells = cells.filter((c) => c.id.includes(opts.only!));
  const report = (ran: number, heatmaps: string[] = []): RunReport => ({
    suite: suite.name,
    output: out,
    cells: cells.length,
    ran,
    finished: cells.filter((c) => fs.existsSync(path.join(out, 'cells', `${c.id}.json`))).length,
    heatmaps,
  });
  if (opts.dryRun) {
    await dryRun(suite, cells, out, opts.print ?? console.log);
    log(`${cells.length} cells; plan written to ${path.join(out, 'plan.json')}`);
    return report(0);
  }
  if (opts.summaryOnly) cells = [];
  const tok = cells.length ? await openTokenizer(suite.model, suite.tokenizer) : undefined;
  const data = new Map<string, TaskData>();
  const taskData = async (c: Cell) => {
    if (!data.has(c.task.name)) {
      const t = Date.now();
      const d = await loadTask(c.task, tok!.text, cacheDir);
      data.set(c.task.name, d);
      const sizes = `${d.train.length} train / ${d.dev.length} dev${d.test ? ` / ${d.test.length} test` : ''}`;
      log(`task ${c.task.name}: ${sizes} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
      await baseline(c, d);
    }
    return data.get(c.task.name)!;
  };
  /** Dev score of the untouched base (causal LM only: a fresh classification head is chance). */
  const baseline = async (c: Cell, d: TaskData) => {
    const file = path.join(out, 'baseline', `${c.task.name}.json`);
    if (c.task.type !== 'causal_lm' || fs.existsSync(file)) return;
    const m = await loadModel(suite.model, { task: 'CAUSAL_LM' });
    const evalBatch = suite.training.evalBatchSize ?? 64;
    const r = await evaluate(m as never, d.dev, 'causal_lm', 'causal_lm', evalBatch, tok!.text.padTokenId);
    tf.dispose(m.parameters());
    writeJson(file, { task: c.task.name, method: 'base (no training)', dev: r });
    log(
      `task ${c.task.name}: untrained base dev loss ${r.loss.toFixed(4)} (ppl ${r.perplexity?.toFixed(2)})`,
    );
  };
  const train = (c: Cell, d: TaskData, lr: number) =>
    runCell(suite, c, d, tok!.text.padTokenId, lr, be.backend, log);

  const lrGrid = (method: string) => {
    const g = method === 'full' ? (suite.training.fullLr ?? suite.training.lr) : suite.training.lr;
    return Array.isArray(g) ? g : [g];
  };
  /**
   * The learning rate of a cell and, when the search ran with this cell's seed, the search run at that
   * rate (the same training run: it is reused as the cell instead of training it twice).
   */
  const chooseLr = async (c: Cell): Promise<{ lr: number; run?: CellResult }> => {
    const from = suite.training.lrFrom;
    const method = suite.training.inheritLr?.[c.method] ?? c.method;
    const grid = lrGrid(method);
    if (grid.length === 1 && !from) return { lr: grid[0]! };
    const dir = from?.output ?? out;
    const task = from?.task ?? c.task.name;
    const tuneSeed = suite.tuneSeed ?? 0;
    let best: { lr: number; s: number; r: CellResult } | undefined;
    for (const lr of grid) {
      const file = path.join(dir, 'tune', `${task}__${method}__${c.budget}__lr${lr}.json`);
      if (!fs.existsSync(file)) {
        if (from)
          throw new ConfigError(
            `${suite.name} training.lrFrom`,
            'the learning-rate search result does not exist',
            file,
            'run the search of the suite that writes it first',
          );
        log(`tune ${task} ${method} ${c.budget} lr ${lr} (seed ${tuneSeed})`);
        const id = `tune:${task}__${method}__${c.budget}__lr${lr}`;
        writeJson(file, await train({ ...c, method, seed: tuneSeed, id }, await taskData(c), lr));
      }
      const r = readJson<CellResult>(file);
      if (!best || score(r) > best.s) best = { lr, s: score(r), r };
    }
    const reuse = !from && method === c.method && c.seed === tuneSeed;
    return { lr: best!.lr, ...(reuse ? { run: best!.r } : {}) };
  };

  const maxCells = opts.maxCells ?? Infinity;
  let ran = 0;
  for (const [i, c] of cells.entries()) {
    const file = path.join(out, 'cells', `${c.id}.json`);
    if (fs.existsSync(file)) continue;
    if (ran >= maxCells) break;
    const d = await taskData(c);
    const { lr, run } = await chooseLr(c);
    ran++;
    if (run) {
      // the search's run at the chosen rate is this cell (same seed, same config): not trained again
      writeJson(file, { ...run, id: c.id, suite: suite.name, fromTune: true });
      log(`cell ${i + 1}/${cells.length} ${c.id}: the search run at lr ${lr} (seed ${c.seed})`);
    } else {
      log(`cell ${i + 1}/${cells.length} ${c.id} (lr ${lr}, ${metricTaskOf(c)})`);
      const r = await train(c, d, lr);
      writeJson(file, r);
      const test = r.test ? `, test ${JSON.stringify(r.test.metrics)}` : '';
      log(
        `  done in ${r.wallSeconds.toFixed(0)} s: dev ${r.primary.name} ${r.primary.value.toFixed(4)}${test}; tensors ${tf.memory().numTensors}`,
      );
    }
    writeJson(path.join(out, 'summary.json'), summarise(suite, out));
  }
  writeJson(path.join(out, 'summary.json'), summarise(suite, out));
  const maps = await renderHeatmaps(out);
  for (const m of maps) log(`heatmap ${m}`);
  log(`summary ${path.join(out, 'summary.json')}`);
  return report(ran, maps);
}
