/**
 * Markdown tables from results folders' cell JSON files (what docs/results.md embeds):
 *   node --import tsx experiments/tables.ts experiments/suites/main.json [experiments/suites/glue.json …]
 *
 * Several suites are merged into one paper-style table (methods × tasks, adapter-parameter column,
 * mean ± sample std of the primary dev metric over seeds, plus SST-2 test when scored). Also prints the
 * ablation table, the learning-rate search, parameters / rate / wall time per cell group, the untrained
 * base, the budget plan and the final rank sums of the pruning methods.
 */
import path from 'node:path';
import fs from 'node:fs';
import { readSuite, type Suite } from '../src/harness/suite.js';
import { stat, summarise, type GroupSummary, type Stat } from '../src/harness/summary.js';
import type { CellResult } from '../src/harness/cell.js';

const files = process.argv.slice(2).filter((a) => a.endsWith('.json'));
if (!files.length) {
  console.error('usage: node --import tsx experiments/tables.ts <suite.json> [<suite.json> …]');
  process.exit(2);
}
const suites: { suite: Suite; out: string; groups: GroupSummary[] }[] = files.map((f) => {
  const suite = readSuite(f);
  const out = suite.output!;
  return { suite, out, groups: summarise(suite, out).groups };
});
const groups = suites.flatMap((s) => s.groups);
const outOf = (g: GroupSummary) => suites.find((s) => s.groups.includes(g))!.out;
const uniq = <T>(xs: T[]) => [...new Set(xs)];
const tasks = uniq(suites.flatMap((s) => s.suite.tasks.map((t) => t.name))).filter((t) =>
  groups.some((g) => g.task === t),
);
const seedsPlanned = Math.max(...suites.map((s) => s.suite.seeds.length));
const name = suites.map((s) => s.suite.name).join(' + ');

const pct = (s: Stat, scale: number, digits: number) =>
  `${(s.mean * scale).toFixed(digits)} ± ${(s.std * scale).toFixed(digits)}${s.n < seedsPlanned ? ` (n=${s.n})` : ''}`;

/** Primary dev metric in the paper's units: accuracy/MCC/correlation ×100, LM as loss (perplexity). */
function cellText(g: GroupSummary | undefined): string {
  if (!g) return '—';
  if (g.primary.name === 'loss')
    return `${pct(g.primary, 1, 3)} (ppl ${g.metrics.perplexity!.mean.toFixed(2)})`;
  return pct(g.primary, 100, 1);
}

function header(extra: string[], ts: string[] = tasks): string {
  const metric = (t: string) => {
    const g = groups.find((x) => x.task === t);
    return g ? `${t} (${g.primary.name === 'loss' ? 'val loss ↓' : g.primary.name})` : t;
  };
  const cols = ['method', 'budget', 'adapter params (final)', ...ts.map(metric), ...extra];
  return `| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|`;
}

function rows(methods: string[], budgets: string[], withTest: boolean, ts: string[] = tasks): string[] {
  const lines: string[] = [];
  for (const b of budgets)
    for (const m of methods) {
      const gs = ts.map((t) => groups.find((g) => g.task === t && g.method === m && g.budget === b));
      const any = gs.find(Boolean);
      if (!any) continue;
      const p = any.params.adapterFinal.mean;
      const extra = withTest
        ? [
            gs
              .map((g) => (g?.metrics['test.accuracy'] ? pct(g.metrics['test.accuracy'], 100, 1) : ''))
              .find((s) => s) ?? '—',
          ]
        : [];
      lines.push(
        `| ${m} | ${b} | ${Math.round(p).toLocaleString('en-US')} | ${gs.map(cellText).join(' | ')} |${extra.map((e) => ` ${e} |`).join('')}`,
      );
    }
  return lines;
}

const methods = uniq(suites.flatMap((s) => s.suite.methods));
const ablations = uniq(suites.flatMap((s) => s.suite.ablations));
const budgets = ['ref', ...uniq(suites.flatMap((s) => s.suite.budgetNames))];
const hasTest = groups.some((g) => g.metrics['test.accuracy']);
console.log(`### Main table (${name})\n`);
console.log(header(hasTest ? ['SST-2 test acc'] : []));
console.log(rows(methods, budgets, hasTest).join('\n'));
if (ablations.length && groups.some((g) => ablations.includes(g.method as never))) {
  const ab = suites[0]!.suite.ablationBudget ?? 'low';
  console.log(`\n### Ablations (${ab} budget)\n`);
  // only the tasks the ablations ran on
  const abTasks = tasks.filter((t) =>
    groups.some((g) => g.task === t && ablations.includes(g.method as never)),
  );
  console.log(header([], abTasks));
  console.log(rows(['adalora', ...ablations], [ab], false, abTasks).join('\n'));
}

// Paired comparison: cells of one seed share the data order, so per-seed differences cancel part of
// the seed noise. Positive = AdaLoRA better (lower loss / higher score).
const pairRows: string[] = [];
const readCell = (g: GroupSummary, seed: number) =>
  JSON.parse(
    fs.readFileSync(
      path.join(outOf(g), 'cells', `${g.task}__${g.method}__${g.budget}__seed${seed}.json`),
      'utf8',
    ),
  ) as CellResult;
for (const a of groups.filter((g) => g.method === 'adalora')) {
  for (const g of groups.filter(
    (x) => x.task === a.task && x.budget === a.budget && x.method !== 'adalora',
  )) {
    const seeds = a.seeds.filter((s) => g.seeds.includes(s));
    if (!seeds.length) continue;
    const d = seeds.map((s) => {
      const x = readCell(a, s).primary;
      const y = readCell(g, s).primary.value;
      return (x.higherIsBetter ? x.value - y : y - x.value) * (x.name === 'loss' ? 1 : 100);
    });
    const st = stat(d);
    const wins = d.filter((v) => v > 0).length;
    pairRows.push(
      `| ${a.task} | ${a.budget} | ${g.method} | ${st.mean >= 0 ? '+' : ''}${st.mean.toFixed(3)} ± ${st.std.toFixed(3)} | ${wins} of ${seeds.length} | ${d.map((v) => v.toFixed(3)).join(', ')} |`,
    );
  }
}
if (pairRows.length) {
  console.log('\n### AdaLoRA vs each method, paired by seed (positive: AdaLoRA better)\n');
  console.log(
    '| task | budget | vs | Δ mean ± std (loss: nats; scores: points) | AdaLoRA better on | per seed |\n|---|---|---|---|---|---|',
  );
  console.log(pairRows.join('\n'));
}

// Learning-rate search: every rate's dev score on the tune seed; the chosen one in bold.
const tuneRows: string[] = [];
for (const { out } of suites) {
  const dir = path.join(out, 'tune');
  if (!fs.existsSync(dir)) continue;
  const runs = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CellResult);
  const keys = uniq(runs.map((r) => `${r.task}|${r.method}|${r.budget}`));
  for (const k of keys) {
    const rs = runs.filter((r) => `${r.task}|${r.method}|${r.budget}` === k).sort((a, b) => a.lr - b.lr);
    const sc = (r: CellResult) => (r.primary.higherIsBetter ? r.primary.value : -r.primary.value);
    const best = rs.reduce((a, b) => (sc(b) > sc(a) ? b : a));
    const fmt = (r: CellResult) => {
      const v = r.primary.name === 'loss' ? r.primary.value.toFixed(3) : (100 * r.primary.value).toFixed(1);
      return r === best ? `**${r.lr}: ${v}**` : `${r.lr}: ${v}`;
    };
    tuneRows.push(`| ${k.split('|').join(' | ')} | seed ${rs[0]!.seed} | ${rs.map(fmt).join(' · ')} |`);
  }
}
if (tuneRows.length) {
  console.log('\n### Learning-rate search (dev score per rate on the tune seed; chosen rate in bold)\n');
  console.log('| task | method | budget | seed | lr: dev score |\n|---|---|---|---|---|');
  console.log(tuneRows.join('\n'));
}

console.log('\n### Parameters, learning rate and wall time per cell\n');
console.log(
  '| task | method | budget | adapter params initial → final | rel. to budget | lr | seeds | wall s / cell (of which training loop + dev eval) |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const g of groups) {
  const cell = `${g.task}__${g.method}__${g.budget}__seed${g.seeds[0]}.json`;
  const first = JSON.parse(fs.readFileSync(path.join(outOf(g), 'cells', cell), 'utf8')) as CellResult;
  const rel = first.params.relErrorToBudget;
  console.log(
    `| ${g.task} | ${g.method} | ${g.budget} | ${g.params.adapterInitial.toLocaleString('en-US')} → ${Math.round(g.params.adapterFinal.mean).toLocaleString('en-US')} | ${rel === null ? 'ref' : `${(100 * rel).toFixed(1)}%`} | ${g.lr.join(', ')} | ${g.seeds.join(',')} | ${g.wallSeconds.mean.toFixed(0)} ± ${g.wallSeconds.std.toFixed(0)} (${g.trainSeconds.mean.toFixed(0)}) |`,
  );
}
for (const { out } of suites) {
  const baseDir = path.join(out, 'baseline');
  if (!fs.existsSync(baseDir)) continue;
  console.log('\n### Untrained base (causal LM)\n');
  for (const f of fs.readdirSync(baseDir)) {
    const b = JSON.parse(fs.readFileSync(path.join(baseDir, f), 'utf8')) as {
      task: string;
      dev: { loss: number; perplexity: number };
    };
    console.log(`- ${b.task}: val loss ${b.dev.loss.toFixed(3)} (ppl ${b.dev.perplexity.toFixed(2)})`);
  }
}

for (const { suite, out } of suites) {
  const planFile = path.join(out, 'plan.json');
  if (!fs.existsSync(planFile)) continue;
  type PlanRow = {
    key: string;
    budget: number | null;
    r: number | null;
    initR: number | null;
    matched: number;
    relError: number | null;
    initial: number;
    targets: string[] | string;
  };
  const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')) as { methods: PlanRow[] };
  console.log(`\n### Budget plan (${suite.name} --dry-run, classification head excluded)\n`);
  console.log(
    '| task kind:method:budget | budget | r (initR) | matched params | vs budget | params at start | targets |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const p of plan.methods) {
    const t = Array.isArray(p.targets)
      ? p.targets.length === 7
        ? 'all linear'
        : p.targets.join(',')
      : p.targets;
    console.log(
      `| ${p.key} | ${p.budget ?? '—'} | ${p.r ?? '—'}${p.initR !== null && p.initR !== p.r ? ` (${p.initR})` : ''} | ${p.matched.toLocaleString('en-US')} | ${p.relError === null ? 'ref' : `${(100 * p.relError).toFixed(1)}%`} | ${p.initial.toLocaleString('en-US')} | ${t} |`,
    );
  }
}

// Final rank budget per module type and per layer (mean over seeds) for the pruning methods.
const TYPES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
type RankCell = { task: string; method: string; budget: string; ranks?: Record<string, number> };
const rankCells = suites.flatMap(({ out }) => {
  const cellsDir = path.join(out, 'cells');
  return fs.existsSync(cellsDir)
    ? fs
        .readdirSync(cellsDir)
        .map((f) => JSON.parse(fs.readFileSync(path.join(cellsDir, f), 'utf8')) as RankCell)
        .filter((c) => c.ranks)
    : [];
});
if (rankCells.length) {
  const layers = [
    ...new Set(Object.keys(rankCells[0]!.ranks!).map((k) => Number(/\.(\d+)\./.exec(k)?.[1] ?? -1))),
  ].sort((a, b) => a - b);
  console.log('\n### Final ranks by module type and by layer (Σ over the other axis, mean over seeds)\n');
  console.log(
    `| task | method | budget | seeds | ${TYPES.join(' | ')} | ${layers.map((l) => `layer ${l}`).join(' | ')} |`,
  );
  console.log(`|---|---|---|---|${TYPES.map(() => '---').join('|')}|${layers.map(() => '---').join('|')}|`);
  const keys = [...new Set(rankCells.map((c) => `${c.task}|${c.method}|${c.budget}`))].sort();
  for (const k of keys) {
    const cs = rankCells.filter((c) => `${c.task}|${c.method}|${c.budget}` === k);
    const mean = (pred: (m: string) => boolean) =>
      (
        cs.reduce(
          (s, c) =>
            s +
            Object.entries(c.ranks!)
              .filter(([m]) => pred(m))
              .reduce((a, [, r]) => a + r, 0),
          0,
        ) / cs.length
      ).toFixed(1);
    console.log(
      `| ${k.split('|').join(' | ')} | ${cs.length} | ${TYPES.map((t) => mean((m) => m.endsWith(`.${t}`))).join(' | ')} | ${layers.map((l) => mean((m) => m.includes(`.${l}.`))).join(' | ')} |`,
    );
  }
}
