// Issue 12's must-show in Chromium: 20 steps of LoRA and of AdaLoRA (masking included) on the page's
// demo Llama and on the demo BERT with a classifier head, on WebGPU and WebGL (SwiftShader here),
// with the page's training run (the Trainer), match wasm's losses; the adapter the WebGPU run saves (the
// page's download) loads in Node and gives the page's logits within 1e-4.
// Slow on a GPU-less machine (~10 min: every shader is compiled and run on the CPU), so it runs when
// LOWRANK_GPU_TRAINING=1:
//   LOWRANK_GPU_TRAINING=1 npm test -- tests/gpu_training
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CHROMIUM, openConformancePage, type ConformancePage } from './conformance/browser.js';
import type { RunResult, RunSpec } from './conformance/page/training_runs.js';
import { buildDemo, type DemoArch } from '../web/demo.js';
import { PeftModel } from '../src/tuners/index.js';
import '../src/tuners/adalora/index.js';
import { tf } from '../src/tensor/tf.js';
import { ARTIFACTS } from './conformance/report.js';
import { maxDiff } from '../src/testing/compare.js';

const STEPS = 20;
/** 20 AdamW steps at lr 0.01 from float32 results that differ in the last bits (issue 12's later-step bar). */
const LOSS_ATOL = 1e-3;
/** Page (WebGPU) vs Node (native/cpu) logits of the same adapter: float32 sums in other orders. */
const LOGIT_ATOL = 1e-4;

const enabled = process.env.LOWRANK_GPU_TRAINING === '1';
const skip = !fs.existsSync(CHROMIUM)
  ? `needs ${CHROMIUM}`
  : enabled
    ? false
    : 'slow on a GPU-less machine; run with LOWRANK_GPU_TRAINING=1';

let opened: ConformancePage | undefined;
before(async () => {
  if (!skip) opened = await openConformancePage();
});
after(async () => {
  await opened?.close();
});

function probe(vocab: number): number[][] {
  return [0, 1].map((r) => Array.from({ length: 8 }, (_, j) => 4 + ((r * 29 + j * 11) % (vocab - 4))));
}

async function nodeLogits(arch: DemoArch, files: Record<string, string>): Promise<number[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-gpu-adapter-'));
  for (const [name, data] of Object.entries(files))
    fs.writeFileSync(path.join(dir, name), Buffer.from(data, 'base64'));
  const { model, config } = buildDemo(arch, 0);
  const peft = await PeftModel.fromPretrained(model, dir);
  const ids = tf.tensor2d(probe(config.vocab_size as number), [2, 8], 'int32');
  const logits = tf.tidy(() => peft.forward({ inputIds: ids }).logits);
  const out = Array.from(await logits.data());
  tf.dispose([ids, logits]);
  for (const [, p] of peft.namedParameters()) p.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

const table: string[] = [];

for (const arch of ['llama', 'bert'] as const)
  for (const method of ['lora', 'adalora'] as const)
    test(
      `${arch} × ${method}: ${STEPS} steps on WebGPU and WebGL match wasm; the WebGPU adapter reloads in Node`,
      { skip, timeout: 900_000 },
      async () => {
        const page = opened!.page;
        const run = (backend: string) =>
          page.evaluate(
            (s) => (window as unknown as { lowrankTrain(s: RunSpec): Promise<RunResult> }).lowrankTrain(s),
            { backend, arch, method, steps: STEPS } satisfies RunSpec,
          );
        const wasm = await run('wasm');
        const line = [
          `${arch} ${method}`,
          `wasm ${wasm.msPerStep.toFixed(0)} ms/step, final loss ${wasm.losses.at(-1)!.toFixed(4)}`,
        ];
        for (const backend of ['webgpu', 'webgl']) {
          const r = await run(backend);
          const diff = maxDiff(r.losses, wasm.losses);
          line.push(`${backend} max |Δloss| ${diff.toExponential(1)} (${r.msPerStep.toFixed(0)} ms/step)`);
          assert.equal(r.losses.length, STEPS);
          assert.ok(diff <= LOSS_ATOL, `${backend} vs wasm: max loss difference ${diff}`);
          if (r.ranks)
            assert.deepEqual(r.ranks, wasm.ranks, `${backend}: AdaLoRA kept the same ranks as wasm`);
          if (backend === 'webgpu') {
            const node = await nodeLogits(arch, r.files);
            const d = maxDiff(node, r.logits);
            line.push(`WebGPU adapter in Node: max |Δlogit| ${d.toExponential(1)}`);
            assert.ok(d <= LOGIT_ATOL, `WebGPU adapter in Node: logits differ by ${d}`);
          }
        }
        assert.ok(wasm.losses.at(-1)! < wasm.losses[0]!, 'the loss falls');
        table.push(line.join('; '));
        console.log(`# ${line.join('; ')}`);
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        fs.writeFileSync(path.join(ARTIFACTS, 'gpu-training.txt'), `${table.join('\n')}\n`);
      },
    );
