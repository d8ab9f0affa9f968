/**
 * Aggregates the per-cell JSON files of a suite into `summary.json` (mean ± sample std over seeds per
 * task × method × budget, of the primary dev metric and of every other reported metric), and renders
 * the final AdaLoRA / Prune-LoRA rank pattern per task as a layers × module-type heatmap (mean kept
 * rank over seeds) with the report module's Vega-Lite chart.
 */
import fs from 'node:fs';
import path from 'node:path';
import { rankHeatmap, renderSvg, svgToPng } from '../report/charts.js';
import type { ModuleRank } from '../report/ranks.js';
import type { CellResult } from './cell.js';
import type { Suite } from './suite.js';

export interface Stat {
  mean: number;
  std: number;
  n: number;
  values: number[];
}

/** Mean and sample standard deviation (n − 1; 0 for one value). */
export function stat(values: number[]): Stat {
  const n = values.length;
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n, values };
}

export interface GroupSummary {
  task: string;
  method: string;
  budget: string;
  seeds: number[];
  lr: number[];
  params: { adapterInitial: number; adapterMatched: number; adapterFinal: Stat; head: number; base: number };
  primary: { name: string; higherIsBetter: boolean } & Stat;
  /** Every dev metric (plus `loss`, `perplexity`) and `test.<metric>` when a test set was scored. */
  metrics: Record<string, Stat>;
  wallSeconds: Stat;
  trainSeconds: Stat;
}

/** Reads every cell JSON of a results folder. */
export function readCells(out: string): CellResult[] {
  const dir = path.join(out, 'cells');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CellResult);
}

/**
 * The summary object written to `summary.json`.
 * @example summarise(suite, 'experiments/results/quick').groups[0].primary.mean;
 */
export function summarise(
  suite: Suite,
  out: string,
): { suite: string; cells: number; groups: GroupSummary[] } {
  const cells = readCells(out);
  const groups = new Map<string, CellResult[]>();
  for (const c of cells) {
    const k = `${c.task}|${c.method}|${c.budget}`;
    groups.set(k, [...(groups.get(k) ?? []), c]);
  }
  const res: GroupSummary[] = [];
  for (const rs of groups.values()) {
    const f = rs[0]!;
    const metrics: Record<string, number[]> = {};
    const add = (k: string, v: number | undefined) => {
      if (v !== undefined && Number.isFinite(v)) (metrics[k] ??= []).push(v);
    };
    for (const r of rs) {
      add('loss', r.dev.loss);
      add('perplexity', r.dev.perplexity);
      for (const [k, v] of Object.entries(r.dev.metrics)) add(k, v);
      if (r.test) for (const [k, v] of Object.entries(r.test.metrics)) add(`test.${k}`, v);
    }
    res.push({
      task: f.task,
      method: f.method,
      budget: f.budget,
      seeds: rs.map((r) => r.seed),
      lr: [...new Set(rs.map((r) => r.lr))],
      params: {
        adapterInitial: f.params.adapterInitial,
        adapterMatched: f.params.adapterMatched,
        adapterFinal: stat(rs.map((r) => r.params.adapterFinal)),
        head: f.params.head,
        base: f.params.base,
      },
      primary: {
        name: f.primary.name,
        higherIsBetter: f.primary.higherIsBetter,
        ...stat(rs.map((r) => r.primary.value)),
      },
      metrics: Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, stat(v)])),
      wallSeconds: stat(rs.map((r) => r.wallSeconds)),
      trainSeconds: stat(rs.map((r) => r.trainSeconds)),
    });
  }
  const order = (m: string) => {
    const i = suite.methods.indexOf(m as never);
    return i >= 0 ? i : 100 + suite.ablations.indexOf(m as never);
  };
  res.sort(
    (a, b) =>
      a.task.localeCompare(b.task) || a.budget.localeCompare(b.budget) || order(a.method) - order(b.method),
  );
  return { suite: suite.name, cells: cells.length, groups: res };
}

/** `model.layers.3.mlp.up_proj` → layer 3, type `up_proj`. */
function moduleRank(pathName: string, rank: number, allocated: number): ModuleRank {
  const layer = /\.(\d+)\./.exec(pathName);
  return {
    path: pathName,
    layer: layer ? Number(layer[1]) : -1,
    type: pathName.slice(pathName.lastIndexOf('.') + 1),
    rank,
    allocated,
    params: 0,
  };
}

const TYPE_ORDER = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/**
 * Writes `heatmaps/<task>__<method>__<budget>.{svg,png}` (mean final rank over seeds) and returns the
 * PNG paths.
 */
export async function renderHeatmaps(out: string): Promise<string[]> {
  const cells = readCells(out).filter((c) => c.ranks);
  const groups = new Map<string, CellResult[]>();
  for (const c of cells) {
    const k = `${c.task}__${c.method}__${c.budget}`;
    groups.set(k, [...(groups.get(k) ?? []), c]);
  }
  const written: string[] = [];
  for (const [k, rs] of groups) {
    const mods = Object.keys(rs[0]!.ranks!);
    const initR = Number(rs[0]!.config.initR ?? 0);
    const modules = mods
      .map((m) => {
        const mean = rs.reduce((s, r) => s + (r.ranks![m] ?? 0), 0) / rs.length;
        return moduleRank(m, Number(mean.toFixed(2)), initR);
      })
      .sort((a, b) => a.layer - b.layer || TYPE_ORDER.indexOf(a.type) - TYPE_ORDER.indexOf(b.type));
    const f = rs[0]!;
    const title = `${f.method} final ranks, ${f.task} (${f.budget} budget, mean of ${rs.length} seed${rs.length > 1 ? 's' : ''}, initR ${initR})`;
    const svg = await renderSvg(rankHeatmap(modules, title));
    const dir = path.join(out, 'heatmaps');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${k}.svg`), svg);
    fs.writeFileSync(path.join(dir, `${k}.png`), await svgToPng(svg));
    written.push(path.join(dir, `${k}.png`));
  }
  return written;
}
