/**
 * AdaLoRA's rank heatmap: one cell per layer (rows) × adapted module (columns), shaded by the
 * current rank out of `initR` and labelled with the number, like the AdaLoRA paper's figure. Redrawn
 * at every masking step; the snapshot is kept on the element as `data-ranks` for tests.
 */
import type { RankSnapshot } from '../protocol.js';
import { el } from './svg.js';

const CELL_W = 64;
const CELL_H = 26;
const LEFT = 62;
const TOP = 22;
/** Room for the caption line under the grid. */
const MIN_WIDTH = 380;

/** Colour from white (rank 0) to deep blue (rank initR). */
function shade(rank: number, initR: number): string {
  const t = initR > 0 ? Math.min(1, Math.max(0, rank / initR)) : 0;
  const c = (a: number, b: number) => Math.round(a + (b - a) * t);
  return `rgb(${c(247, 26)},${c(248, 64)},${c(255, 180)})`;
}

export class RankHeatmap {
  constructor(private readonly host: HTMLElement) {
    this.clear('no AdaLoRA run yet');
  }

  /** Shows a message instead of a map (e.g. for LoRA runs). */
  clear(message: string): void {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = message;
    this.host.replaceChildren(p);
    delete this.host.dataset.ranks;
  }

  /** Draws a rank snapshot. */
  render(s: RankSnapshot): void {
    const w = Math.max(LEFT + CELL_W * s.modules.length + 8, MIN_WIDTH);
    const h = TOP + CELL_H * s.layers.length + 24;
    const svg = el('svg', {
      width: w,
      height: h,
      viewBox: `0 0 ${w} ${h}`,
      role: 'img',
      'aria-label': 'rank heatmap',
    });
    s.modules.forEach((m, j) => {
      svg.append(
        el(
          'text',
          { x: LEFT + CELL_W * j + CELL_W / 2, y: TOP - 6, 'text-anchor': 'middle', 'font-size': 11 },
          m,
        ),
      );
    });
    s.layers.forEach((layer, i) => {
      svg.append(
        el(
          'text',
          { x: LEFT - 6, y: TOP + CELL_H * i + 17, 'text-anchor': 'end', 'font-size': 11 },
          `layer ${layer}`,
        ),
      );
      s.modules.forEach((_, j) => {
        const r = s.ranks[i]?.[j] ?? 0;
        const x = LEFT + CELL_W * j;
        const y = TOP + CELL_H * i;
        svg.append(
          el('rect', { x, y, width: CELL_W - 2, height: CELL_H - 2, fill: shade(r, s.initR), class: 'cell' }),
        );
        const dark = r / Math.max(1, s.initR) > 0.55;
        svg.append(
          el(
            'text',
            {
              x: x + CELL_W / 2 - 1,
              y: y + 17,
              'text-anchor': 'middle',
              'font-size': 12,
              fill: dark ? '#fff' : '#1d2433',
            },
            String(r),
          ),
        );
      });
    });
    const total = s.ranks.flat().reduce((a, b) => a + b, 0);
    svg.append(
      el(
        'text',
        { x: LEFT, y: h - 6, 'font-size': 11 },
        `step ${s.step}: total rank ${total} (budget ${s.budget}, init r ${s.initR})`,
      ),
    );
    this.host.replaceChildren(svg);
    this.host.dataset.ranks = JSON.stringify(s);
  }
}
