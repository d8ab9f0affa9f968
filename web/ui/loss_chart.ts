/**
 * Live training-loss line chart (SVG). `push(step, loss)` appends a point and redraws; the y axis
 * spans the data seen so far and the baseline, if one is set: the loss of a uniform guess, ln(vocab)
 * for a causal LM or ln(classes) for a classifier, drawn dashed, so the chart shows whether the model
 * learned anything at all. The points are also kept on the element as `data-losses` (JSON), so tests
 * and users can read the exact numbers that are drawn.
 */
import { el, fmt } from './svg.js';

const W = 520;
const H = 220;
const PAD = { left: 48, right: 12, top: 10, bottom: 28 };

export class LossChart {
  private points: [number, number][] = [];
  private totalSteps = 1;
  private baseline: { value: number; label: string } | null = null;

  constructor(private readonly host: HTMLElement) {
    this.draw();
  }

  /** Clears the chart for a new run of `totalSteps` steps. */
  reset(totalSteps: number): void {
    this.points = [];
    this.totalSteps = Math.max(1, totalSteps);
    this.draw();
  }

  /**
   * Sets (or, with null, removes) the dashed reference line, e.g. the uniform baseline.
   *
   * @example
   * chart.setBaseline(Math.log(117), 'uniform ln(117)');
   */
  setBaseline(value: number | null, label = ''): void {
    this.baseline = value !== null && Number.isFinite(value) ? { value, label } : null;
    this.host.dataset.baseline = this.baseline ? String(value) : '';
    this.draw();
  }

  /** Adds one (step, loss) point; non-finite losses are drawn as gaps (not plotted). */
  push(step: number, loss: number): void {
    this.points.push([step, loss]);
    this.draw();
  }

  private draw(): void {
    const svg = el('svg', {
      width: W,
      height: H,
      viewBox: `0 0 ${W} ${H}`,
      role: 'img',
      'aria-label': 'training loss',
    });
    const finite = this.points.filter(([, l]) => Number.isFinite(l));
    const xMax = Math.max(this.totalSteps, ...this.points.map(([s]) => s));
    const ys = finite.map(([, l]) => l).concat(this.baseline ? [this.baseline.value] : []);
    let lo = Math.min(...ys);
    let hi = Math.max(...ys);
    if (ys.length === 0) [lo, hi] = [0, 1];
    if (hi - lo < 1e-6) [lo, hi] = [lo - 0.5, hi + 0.5];
    const x = (s: number) => PAD.left + ((W - PAD.left - PAD.right) * s) / xMax;
    const y = (l: number) => PAD.top + ((H - PAD.top - PAD.bottom) * (hi - l)) / (hi - lo);
    svg.append(
      el('line', { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom, stroke: '#888' }),
    );
    svg.append(el('line', { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom, stroke: '#888' }));
    for (const v of [lo, (lo + hi) / 2, hi]) {
      svg.append(el('text', { x: PAD.left - 4, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 11 }, fmt(v)));
    }
    svg.append(
      el('text', { x: W - PAD.right, y: H - 8, 'text-anchor': 'end', 'font-size': 11 }, `step ${xMax}`),
    );
    svg.append(el('text', { x: PAD.left, y: H - 8, 'font-size': 11 }, '0'));
    if (this.baseline) {
      const yb = y(this.baseline.value);
      svg.append(
        el('line', {
          x1: PAD.left,
          y1: yb,
          x2: W - PAD.right,
          y2: yb,
          stroke: '#c0392b',
          'stroke-dasharray': '5 4',
          class: 'baseline',
        }),
      );
      svg.append(
        el(
          'text',
          { x: W - PAD.right - 2, y: yb - 4, 'text-anchor': 'end', 'font-size': 11, fill: '#c0392b' },
          `${this.baseline.label} = ${fmt(this.baseline.value)}`,
        ),
      );
    }
    const d = finite
      .map(([s, l], i) => `${i === 0 ? 'M' : 'L'}${x(s).toFixed(1)},${y(l).toFixed(1)}`)
      .join(' ');
    if (d) svg.append(el('path', { d, fill: 'none', stroke: '#3d5afe', 'stroke-width': 2 }));
    const last = finite[finite.length - 1];
    if (last) svg.append(el('circle', { cx: x(last[0]), cy: y(last[1]), r: 3, fill: '#3d5afe' }));
    this.host.replaceChildren(svg);
    this.host.dataset.losses = JSON.stringify(
      this.points.map(([s, l]) => [s, Number.isFinite(l) ? l : null]),
    );
  }
}
