/**
 * A small Prometheus registry (text exposition format 0.0.4): counters, gauges and histograms with
 * labels, rendered by `GET /metrics`. Names follow Prometheus conventions (`_total`, `_seconds`).
 *
 * @example
 * const m = new Metrics();
 * m.counter('lowrank_requests_total', 'Requests by endpoint and status').inc({ endpoint: 'chat', status: '200' });
 * m.render(); // "# HELP lowrank_requests_total …\n# TYPE lowrank_requests_total counter\n…"
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${esc(labels[k]!)}"`).join(',')}}`;
}

function num(x: number): string {
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  return Number.isNaN(x) ? 'NaN' : String(x);
}

interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(`${this.name}${k} ${num(v)}`);
    return lines;
  }
}

export class Gauge implements Metric {
  private readonly values = new Map<string, number | (() => number)>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  set(value: number | (() => number), labels: Labels = {}): void {
    this.values.set(labelKey(labels), value);
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [k, v] of this.values)
      lines.push(`${this.name}${k} ${num(typeof v === 'function' ? v() : v)}`);
    return lines;
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    /** Upper bounds, ascending (the +Inf bucket is implicit). */
    readonly buckets: number[],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i]!++;
    });
    s.sum += value;
    s.count++;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const inner = k === '' ? '' : k.slice(1, -1) + ',';
      this.buckets.forEach((b, i) =>
        lines.push(`${this.name}_bucket{${inner}le="${num(b)}"} ${s.counts[i]}`),
      );
      lines.push(`${this.name}_bucket{${inner}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k} ${num(s.sum)}`, `${this.name}_count${k} ${s.count}`);
    }
    return lines;
  }
}

/** Latency buckets in seconds: 5 ms … 120 s. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Batch-size buckets (active sequences per decode step). */
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64];

/** The registry; metrics are created once by name and rendered in creation order. */
export class Metrics {
  private readonly all = new Map<string, Metric>();
  counter(name: string, help: string): Counter {
    return this.get(name, () => new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.get(name, () => new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets: number[]): Histogram {
    return this.get(name, () => new Histogram(name, help, buckets));
  }
  private get<M extends Metric>(name: string, make: () => M): M {
    let m = this.all.get(name);
    if (!m) this.all.set(name, (m = make()));
    return m as M;
  }
  /** The exposition text (content type `text/plain; version=0.0.4`). */
  render(): string {
    return [...this.all.values()].flatMap((m) => m.render()).join('\n') + '\n';
  }
}
