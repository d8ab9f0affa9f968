/**
 * The experiment harness (issue 7): `npm run experiments -- <suite.json> [--only <substring>]
 * [--dry-run] [--summary-only] [--max-cells N]`.
 *
 * Expands the suite into (task × method × budget × seed) cells, runs each with the project's Trainer
 * and writes `<output>/cells/<id>.json`; cells whose JSON already exists are skipped, so an interrupted
 * run continues where it stopped. When `training.lr` is a list, each (task, method, budget) first runs
 * every learning rate with `tuneSeed` (`<output>/tune/…json`) and the best dev score picks the rate all
 * seeds use (the search run with the tune seed at that rate is reused as that seed's cell);
 * `training.inheritLr` / `training.lrFrom` take the rate from another method's / suite's search. At the end (and after every cell) `<output>/summary.json` holds mean ± std per
 * method × budget × task, and rank heatmaps of the AdaLoRA runs are rendered to `<output>/heatmaps/`.
 *
 * `--dry-run` prints the grid with each method's rank and exact parameter count, without training
 * (and writes `<output>/plan.json`); `--summary-only` rewrites summary.json and the heatmaps from the
 * finished cells.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { openTokenizer } from '../src/cli/data.js';
import { evaluate } from '../src/training/evaluate.js';
import { tf } from '../src/tensor/tf.js';
import { readSuite, expandGrid, type Cell, type Suite } from './lib/suite.js';
import { loadTask, type TaskData } from './lib/tasks.js';
import { runCell, metricTaskOf, type CellResult } from './lib/cell.js';
import { buildMethod, countTrainable } from './lib/methods.js';
import { summarise, renderHeatmaps } from './lib/summary.js';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const opt = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const suiteFile = argv.find((a) => a.endsWith('.json'));
if (!suiteFile) {
  console.error(
    'usage: npm run experiments -- <suite.json> [--only <substring>] [--dry-run] [--max-cells N]',
  );
  process.exit(2);
}
const suite = readSuite(suiteFile);
const out = suite.output ?? path.resolve(import.meta.dirname, 'results', suite.name);
const cacheDir = path.resolve(import.meta.dirname, '.cache');
const log = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

const writeJson = (file: string, v: unknown) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`; // two harness processes may share a results folder
  fs.writeFileSync(tmp, JSON.stringify(v, null, 1) + '\n');
  fs.renameSync(tmp, file);
};
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;

/** Prints every cell's rank and parameter count (no training). */
async function dryRun(s: Suite, cells: Cell[]): Promise<void> {
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
    console.log(
      `${key.padEnd(34)} budget ${String(budget ?? '-').padStart(6)}  r ${String(b.r ?? '-').padStart(3)} initR ${String(b.initR ?? '-').padStart(3)}  ` +
        `matched ${String(b.matchedCount).padStart(7)} (${b.relError === undefined ? 'ref' : (100 * b.relError).toFixed(1) + '%'})  initial ${n.adapter}  head ${n.head}  targets ${b.targets?.join(',') ?? 'all'}`,
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
  log(`${cells.length} cells; plan written to ${path.relative(process.cwd(), path.join(out, 'plan.json'))}`);
}

/** The primary dev score of a result, oriented so that larger is better. */
const score = (r: CellResult) => (r.primary.higherIsBetter ? r.primary.value : -r.primary.value);

async function main(): Promise<void> {
  const be = await initBackend('auto');
  log(`suite ${suite.name}: backend ${be.backend}; output ${path.relative(process.cwd(), out)}`);
  let cells = expandGrid(suite);
  const only = opt('only');
  if (only) cells = cells.filter((c) => c.id.includes(only));
  if (flag('dry-run')) return dryRun(suite, cells);
  if (flag('summary-only')) cells = []; // re-aggregate finished cells and redraw heatmaps, train nothing
  const tok = await openTokenizer(suite.model, suite.tokenizer);
  const data = new Map<string, TaskData>();
  const taskData = async (c: Cell) => {
    if (!data.has(c.task.name)) {
      const t = Date.now();
      data.set(c.task.name, await loadTask(c.task, tok.text, cacheDir));
      const d = data.get(c.task.name)!;
      log(
        `task ${c.task.name}: ${d.train.length} train / ${d.dev.length} dev${d.test ? ` / ${d.test.length} test` : ''} (${((Date.now() - t) / 1000).toFixed(1)} s)`,
      );
      await baseline(c, d);
    }
    return data.get(c.task.name)!;
  };
  /** Dev score of the untouched base (causal LM only: a fresh classification head is chance). */
  const baseline = async (c: Cell, d: TaskData) => {
    const file = path.join(out, 'baseline', `${c.task.name}.json`);
    if (c.task.type !== 'causal_lm' || fs.existsSync(file)) return;
    const m = await loadModel(suite.model, { task: 'CAUSAL_LM' });
    const r = evaluate(
      m as never,
      d.dev,
      'causal_lm',
      'causal_lm',
      suite.training.evalBatchSize ?? 64,
      tok.text.padTokenId,
    );
    tf.dispose(m.parameters());
    writeJson(file, { task: c.task.name, method: 'base (no training)', dev: r });
    log(
      `task ${c.task.name}: untrained base dev loss ${r.loss.toFixed(4)} (ppl ${r.perplexity?.toFixed(2)})`,
    );
  };
  const lrGrid = (method: string) => {
    const g = method === 'full' ? (suite.training.fullLr ?? suite.training.lr) : suite.training.lr;
    return Array.isArray(g) ? g : [g];
  };
  const tuneFile = (dir: string, task: string, method: string, budget: string, lr: number) =>
    path.join(dir, 'tune', `${task}__${method}__${budget}__lr${lr}.json`);
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
    let best: { lr: number; s: number; r: CellResult } | undefined;
    for (const lr of grid) {
      const file = tuneFile(dir, task, method, c.budget, lr);
      if (!fs.existsSync(file)) {
        if (from) throw new Error(`lrFrom: ${file} does not exist (run that suite's search first)`);
        log(`tune ${task} ${method} ${c.budget} lr ${lr} (seed ${suite.tuneSeed ?? 0})`);
        const tuneCell = {
          ...c,
          method,
          seed: suite.tuneSeed ?? 0,
          id: `tune:${task}__${method}__${c.budget}__lr${lr}`,
        };
        writeJson(
          file,
          await runCell(suite, tuneCell, await taskData(c), tok.text.padTokenId, lr, be.backend, log),
        );
      }
      const r = readJson<CellResult>(file);
      const s = score(r);
      if (!best || s > best.s) best = { lr, s, r };
    }
    const reuse = !from && method === c.method && c.seed === (suite.tuneSeed ?? 0);
    return { lr: best!.lr, ...(reuse ? { run: best!.r } : {}) };
  };
  const maxCells = Number(opt('max-cells') ?? Infinity);
  let ran = 0;
  for (const [i, c] of cells.entries()) {
    const file = path.join(out, 'cells', `${c.id}.json`);
    if (fs.existsSync(file)) continue;
    if (ran >= maxCells) break;
    const d = await taskData(c);
    const { lr, run } = await chooseLr(c);
    if (run) {
      // the search's run at the chosen rate is this cell (same seed, same config): not trained again
      writeJson(file, { ...run, id: c.id, suite: suite.name, fromTune: true });
      log(`cell ${i + 1}/${cells.length} ${c.id}: the search run at lr ${lr} (seed ${c.seed})`);
      continue;
    }
    log(`cell ${i + 1}/${cells.length} ${c.id} (lr ${lr}, ${metricTaskOf(c)})`);
    const r = await runCell(suite, c, d, tok.text.padTokenId, lr, be.backend, log);
    writeJson(file, r);
    ran++;
    log(
      `  done in ${r.wallSeconds.toFixed(0)} s: dev ${r.primary.name} ${r.primary.value.toFixed(4)}${r.test ? `, test ${JSON.stringify(r.test.metrics)}` : ''}; tensors ${tf.memory().numTensors}`,
    );
    writeJson(path.join(out, 'summary.json'), summarise(suite, out));
  }
  writeJson(path.join(out, 'summary.json'), summarise(suite, out));
  const maps = await renderHeatmaps(out);
  for (const m of maps) log(`heatmap ${path.relative(process.cwd(), m)}`);
  log(`summary ${path.relative(process.cwd(), path.join(out, 'summary.json'))}`);
}

await main();
