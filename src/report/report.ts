/**
 * The run report: reads a run folder (`config.json`, `log.jsonl`, `adapter/`) and writes
 * `report.html` (summary, loss / metric / LR / AdaLoRA-budget curves and the rank heatmap, all as
 * embedded SVG) plus `rank_heatmap.png`.
 */
import { CheckpointError } from '../errors.js';
import { joinPath, pathExists, readJson, readText, writeFileAtomic } from '../io/source.js';
import type { LogRecord } from '../training/types.js';
import { lineChart, rankHeatmap, renderSvg, svgToPng } from './charts.js';
import { readAdapterSummary, type AdapterSummary } from './ranks.js';

export interface RunReport {
  html: string;
  heatmapPng?: string;
}

/**
 * Reads `log.jsonl` (one record per line; a torn last line from a killed run is ignored).
 * @example const logs = await readRunLog('runs/demo');
 */
export async function readRunLog(runDir: string): Promise<LogRecord[]> {
  const p = joinPath(runDir, 'log.jsonl');
  if (!(await pathExists(p)))
    throw new CheckpointError(
      runDir,
      'is not a run folder (no log.jsonl)',
      undefined,
      'pass the --output folder of lowrank train',
    );
  const out: LogRecord[] = [];
  for (const line of (await readText(p)).split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as LogRecord);
    } catch {
      // a run killed mid-write leaves one partial line; the rest is still valid
    }
  }
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) =>
  Math.abs(v) >= 100 || Number.isInteger(v) ? String(Math.round(v * 100) / 100) : v.toPrecision(4);

/**
 * Writes `report.html` and `rank_heatmap.png` into the run folder and returns their paths.
 * @example const { html } = await writeReport('runs/demo-adalora');
 */
export async function writeReport(runDir: string, title?: string): Promise<RunReport> {
  const logs = await readRunLog(runDir);
  const config = (await pathExists(joinPath(runDir, 'config.json')))
    ? ((await readJson(joinPath(runDir, 'config.json'))) as Record<string, unknown>)
    : {};
  const adapterDir = joinPath(runDir, 'adapter');
  const adapter: AdapterSummary | undefined = (await pathExists(joinPath(adapterDir, 'adapter_config.json')))
    ? await readAdapterSummary(adapterDir)
    : undefined;
  const train = logs.filter((l) => l.type === 'train');
  const evals = logs.filter((l) => l.type === 'eval');
  const skips = logs.filter((l) => l.type === 'skip');
  const charts: string[] = [];
  const lossRows = [
    ...train.map((l) => ({ step: l.step, value: l.loss, series: 'train loss' })),
    ...evals.map((l) => ({ step: l.step, value: l.loss, series: 'eval loss' })),
  ];
  if (lossRows.length) charts.push(await renderSvg(lineChart('Loss', lossRows, 'loss')));
  const metricRows = evals.flatMap((l) =>
    Object.entries(l.metrics).map(([k, v]) => ({ step: l.step, value: v, series: k })),
  );
  if (metricRows.length) charts.push(await renderSvg(lineChart('Evaluation metrics', metricRows, 'value')));
  const ppl = evals
    .filter((l) => l.perplexity !== undefined)
    .map((l) => ({ step: l.step, value: l.perplexity!, series: 'eval perplexity' }));
  if (ppl.length) charts.push(await renderSvg(lineChart('Perplexity', ppl, 'perplexity')));
  if (train.length)
    charts.push(
      await renderSvg(
        lineChart(
          'Learning rate',
          train.map((l) => ({ step: l.step, value: l.lr, series: 'lr' })),
          'learning rate',
        ),
      ),
    );
  const budget = train.filter((l) => l.budget !== undefined);
  if (budget.length) {
    const rows = budget.flatMap((l) => {
      const r = [{ step: l.step, value: l.budget!, series: 'scheduled budget' }];
      if (l.ranks)
        r.push({
          step: l.step,
          value: Object.values(l.ranks).reduce((a, b) => a + b, 0),
          series: 'actual total rank',
        });
      return r;
    });
    charts.push(await renderSvg(lineChart('AdaLoRA rank budget', rows, 'total rank')));
  }
  let heatmapSvg = '';
  let heatmapPng: string | undefined;
  if (adapter && adapter.modules.length) {
    heatmapSvg = await renderSvg(
      rankHeatmap(adapter.modules, `${adapter.method}: final rank per adapted matrix`),
    );
    heatmapPng = joinPath(runDir, 'rank_heatmap.png');
    await writeFileAtomic(heatmapPng, await svgToPng(heatmapSvg));
  }
  const last = evals.at(-1);
  const summaryRows: [string, string][] = [
    ['steps', String(train.at(-1)?.step ?? 0)],
    ['final train loss', train.length ? fmt(train.at(-1)!.loss) : '-'],
    ...(last
      ? ([
          ['final eval loss', fmt(last.loss)],
          ...Object.entries(last.metrics).map(([k, v]) => [`eval ${k}`, fmt(v)]),
          ...(last.perplexity !== undefined ? [['eval perplexity', fmt(last.perplexity)]] : []),
        ] as [string, string][])
      : []),
    ['skipped steps (non-finite loss)', String(skips.length)],
    ...(adapter
      ? ([
          ['adapter method', adapter.method],
          ['adapter parameters', adapter.totalParams.toLocaleString('en-US')],
          ['total kept rank', String(adapter.modules.reduce((a, m) => a + m.rank, 0))],
        ] as [string, string][])
      : []),
  ];
  const heading =
    title ??
    `lowrank run: ${String(config.method ?? adapter?.method ?? '')} ${String(config.output ?? runDir)}`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(heading)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:1em}.chart{border:1px solid #eee;padding:.5em}pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head>
<body><h1>${esc(heading)}</h1>
<h2>Summary</h2><table>${summaryRows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
${heatmapSvg ? `<h2>Where the rank went</h2><div class="chart">${heatmapSvg}</div><p>PNG: rank_heatmap.png</p>` : ''}
<h2>Curves</h2><div class="charts">${charts.map((c) => `<div class="chart">${c}</div>`).join('\n')}</div>
<h2>Configuration</h2><pre>${esc(JSON.stringify(config, null, 2))}</pre>
</body></html>
`;
  const htmlPath = joinPath(runDir, 'report.html');
  await writeFileAtomic(htmlPath, html);
  return { html: htmlPath, heatmapPng };
}
