/**
 * `node --import tsx bench/page_backends.ts [--steps 20] [--backends wasm,webgl,webgpu,cpu]`
 *
 * Milliseconds per training step of the page's training run (web/engine/train.ts) on each backend in
 * Debian's headless Chromium (--enable-unsafe-webgpu), for LoRA and AdaLoRA on the page's demo Llama
 * and the demo BERT with a classifier head. Not a test: it prints a table with the machine, the
 * browser, each backend's adapter and the load average (numbers from a loaded machine are not speeds).
 * The first steps include shader compilation on GPU backends, as a user's first run does.
 */
import * as os from 'node:os';
import { openConformancePage } from '../tests/conformance/browser.js';
import type { RunResult, RunSpec } from '../tests/conformance/page/training_runs.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : dflt;
};
const steps = Number(opt('steps', '20'));
const backends = opt('backends', 'wasm,webgl,webgpu,cpu').split(',');

async function main(): Promise<void> {
  const load0 = os.loadavg()[0]!;
  const opened = await openConformancePage();
  try {
    const adapters = (await opened.page.evaluate(async (bs) => {
      const w = window as unknown as { lowrankAdapters(b: string[]): Promise<Record<string, string>> };
      return w.lowrankAdapters(bs);
    }, backends)) as Record<string, string>;
    const rows: string[][] = [];
    for (const arch of ['llama', 'bert'] as const)
      for (const method of ['lora', 'adalora'] as const) {
        const row = [`${arch} ${method}`];
        for (const backend of backends) {
          try {
            const r = (await opened.page.evaluate(
              (s) => (window as unknown as { lowrankTrain(s: RunSpec): Promise<RunResult> }).lowrankTrain(s),
              { backend, arch, method, steps } satisfies RunSpec,
            )) as RunResult;
            row.push(r.msPerStep.toFixed(0));
          } catch (e) {
            row.push(`error: ${(e as Error).message.split('\n')[0]}`);
          }
        }
        rows.push(row);
        console.error(row.join('  '));
      }
    const head = ['run (ms per step)', ...backends];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    console.log(
      `machine: ${os.cpus()[0]?.model} × ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GB, no GPU`,
    );
    console.log(
      `browser: Chromium ${opened.context.browser()?.version() ?? '?'} headless, --enable-unsafe-webgpu`,
    );
    for (const b of backends) console.log(`${b}: ${adapters[b] ?? 'CPU'}`);
    console.log(
      `load average: ${load0.toFixed(1)} before, ${os.loadavg()[0]!.toFixed(1)} after; ${steps} steps, batch 4`,
    );
    console.log([fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n'));
  } finally {
    await opened.close();
  }
}

await main();
