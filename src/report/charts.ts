/**
 * Chart specifications (Vega-Lite) for the run report, rendered to SVG by Vega in Node without a
 * canvas, and SVG → PNG by resvg. Both packages load lazily so the CLI starts fast.
 */
import type { ModuleRank } from './ranks.js';

export type VlSpec = Record<string, unknown>;
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';
const WIDTH = 520;
const HEIGHT = 220;

/**
 * Multi-series line chart of `{ step, value, series }` points.
 * @example lineChart('Loss', rows, 'loss');
 */
export function lineChart(
  title: string,
  rows: { step: number; value: number; series: string }[],
  yTitle: string,
  logY = false,
): VlSpec {
  return {
    $schema: SCHEMA,
    title,
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows },
    mark: { type: 'line', point: rows.length < 60, interpolate: 'linear' },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
      y: {
        field: 'value',
        type: 'quantitative',
        title: yTitle,
        scale: logY ? { type: 'log' } : { zero: false },
      },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
}

/**
 * The AdaLoRA-paper picture: final rank of every adapted matrix, layers × module type.
 * @example heatmap(summary.modules, 'AdaLoRA final ranks');
 */
export function rankHeatmap(modules: ModuleRank[], title: string): VlSpec {
  const rows = modules.map((m) => ({
    layer: m.layer < 0 ? '-' : String(m.layer),
    type: m.type,
    rank: m.rank,
    allocated: m.allocated,
  }));
  const maxRank = Math.max(1, ...modules.map((m) => m.allocated));
  return {
    $schema: SCHEMA,
    title,
    data: { values: rows },
    width: { step: 46 },
    height: { step: 30 },
    layer: [
      {
        mark: 'rect',
        encoding: {
          x: { field: 'type', type: 'nominal', title: 'module type', sort: null },
          y: { field: 'layer', type: 'ordinal', title: 'layer', sort: { field: 'layer', op: 'min' } },
          color: {
            field: 'rank',
            type: 'quantitative',
            title: 'rank',
            scale: { scheme: 'greens', domain: [0, maxRank] },
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 12 },
        encoding: {
          x: { field: 'type', type: 'nominal', sort: null },
          y: { field: 'layer', type: 'ordinal', sort: { field: 'layer', op: 'min' } },
          text: { field: 'rank', type: 'quantitative' },
          color: { condition: { test: `datum.rank > ${maxRank / 2}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  };
}

/**
 * Vega-Lite spec → SVG string.
 * @example const svg = await renderSvg(lineChart(...));
 */
export async function renderSvg(spec: VlSpec): Promise<string> {
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const compiled = vl.compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * SVG → PNG bytes (scaled ×`zoom`, system fonts for labels).
 * @example fs.writeFileSync('ranks.png', await svgToPng(svg));
 */
export async function svgToPng(svg: string, zoom = 2): Promise<Uint8Array> {
  const { Resvg } = await import('@resvg/resvg-js');
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: zoom },
    background: 'white',
    font: { loadSystemFonts: true },
  });
  return r.render().asPng();
}
