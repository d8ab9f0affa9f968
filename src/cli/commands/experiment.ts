/**
 * `lowrank experiment <suite.json>`: the experiment harness of issue 7 (src/harness/runner.ts), the
 * same as `npm run experiments -- <suite.json>`. Runs a (task × method × budget × seed) grid with the
 * Trainer, one JSON per cell (resumable), then prints mean ± std per task × method × budget.
 */
import type { Command } from '../command.js';
import { table } from '../io.js';
import { runSuite } from '../../harness/runner.js';
import { readSuite } from '../../harness/suite.js';
import { summarise } from '../../harness/summary.js';

export const experimentCommand: Command = {
  spec: {
    name: 'experiment',
    summary: 'Run an experiment suite: tasks × methods × budgets × seeds, one JSON per cell (resumable)',
    positionals: [
      {
        name: 'suite',
        description: 'suite JSON (model, tasks by path and type, methods, budgets, seeds, training rule)',
        required: true,
      },
    ],
    options: [
      { name: 'only', type: 'string', description: 'run only cells whose id contains this substring' },
      {
        name: 'dry-run',
        type: 'boolean',
        description: "print each method's rank and exact parameter count (plan.json), train nothing",
        default: false,
      },
      {
        name: 'summary-only',
        type: 'boolean',
        description: 'rewrite summary.json and the rank heatmaps from finished cells, train nothing',
        default: false,
      },
      { name: 'max-cells', type: 'int', description: 'stop after this many cells' },
      {
        name: 'cache-dir',
        type: 'string',
        description: 'tokenised-data cache (default: lowrank-experiments in the OS temp folder)',
      },
    ],
    examples: [
      'lowrank experiment experiments/suites/quick.json --dry-run',
      'lowrank experiment experiments/suites/main.json --only shakespeare__ --max-cells 4',
      'lowrank experiment experiments/suites/main.json --summary-only',
    ],
  },
  async run(p, io) {
    const file = p.positionals[0]!;
    const v = p.values;
    const r = await runSuite(file, {
      only: v.only as string | undefined,
      dryRun: v['dry-run'] as boolean,
      summaryOnly: v['summary-only'] as boolean,
      maxCells: v['max-cells'] as number | undefined,
      cacheDir: v['cache-dir'] as string | undefined,
      log: (l) => io.err(l),
      print: (l) => io.out(l),
    });
    if (v['dry-run']) return;
    const { groups } = summarise(readSuite(file), r.output);
    const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(4));
    io.out(
      table(
        ['task', 'method', 'budget', 'metric', 'mean ± std', 'seeds', 'adapter params'],
        groups.map((g) => [
          g.task,
          g.method,
          g.budget,
          g.primary.name,
          `${fmt(g.primary.mean)} ± ${fmt(g.primary.std)}`,
          g.seeds.join(','),
          Math.round(g.params.adapterFinal.mean),
        ]),
      ),
    );
    io.out(
      `${r.finished} of ${r.cells} cells finished (${r.ran} this run); results in ${r.output} (summary.json, cells/)`,
    );
  },
};
