/**
 * A one-line progress display on stderr: step/total, bar, ETA, loss, lr and (AdaLoRA) budget. Redraws
 * in place on a terminal; elsewhere prints a line every `every` steps so logs stay readable.
 */
import type { CliIO } from './io.js';
import type { EvalLog, TrainLog } from '../training/types.js';

function clock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}:` : ''}${String(m).padStart(h ? 2 : 1, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * @example const p = new Progress(io, 200, 10); trainer callbacks: { onStep: (l) => p.step(l) }
 */
export class Progress {
  private start = Date.now();
  private firstStep?: number;
  private width = 24;

  constructor(
    private readonly io: CliIO,
    private readonly total: number,
    private readonly every: number,
    private readonly quiet = false,
  ) {}

  /** Text of the line for a train log (exported for tests). */
  line(l: TrainLog): string {
    // the clock starts when the display is made (just before training), so the first step counts too
    if (this.firstStep === undefined) this.firstStep = l.step - 1;
    const done = l.step - this.firstStep;
    const rate = (Date.now() - this.start) / Math.max(1, done);
    const eta = rate * (this.total - l.step);
    const filled = Math.round((this.width * l.step) / this.total);
    const bar = '█'.repeat(filled) + '░'.repeat(this.width - filled);
    const budget =
      l.budget !== undefined
        ? `  budget ${Math.round(l.budget)}${l.ranks ? ` (kept ${Object.values(l.ranks).reduce((a, b) => a + b, 0)})` : ''}`
        : '';
    return `step ${String(l.step).padStart(String(this.total).length)}/${this.total} ${bar} ETA ${clock(eta)}  loss ${l.loss.toFixed(4)}${l.regLoss !== undefined ? `  reg ${l.regLoss.toFixed(4)}` : ''}  lr ${l.lr.toExponential(2)}${budget}`;
  }

  step(l: TrainLog): void {
    if (this.quiet) return;
    const text = this.line(l);
    if (this.io.interactive) process.stderr.write(`\r${text}\x1b[K`);
    else if (l.step % this.every === 0 || l.step === this.total) this.io.err(text);
  }

  eval(l: EvalLog): void {
    if (this.quiet) return;
    const m = Object.entries(l.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`);
    if (l.perplexity !== undefined) m.push(`ppl ${l.perplexity.toFixed(2)}`);
    const text = `eval @ ${l.step}: loss ${l.loss.toFixed(4)}${m.length ? '  ' + m.join('  ') : ''}${l.best ? '  (best)' : ''}`;
    if (this.io.interactive) process.stderr.write(`\r${text}\x1b[K\n`);
    else this.io.err(text);
  }

  done(): void {
    if (!this.quiet && this.io.interactive) process.stderr.write('\n');
  }
}
