// Must-show runs of issue 12 in the page: 20 steps of LoRA or AdaLoRA (masking included) with the
// page's training run (web/engine/train.ts: the library's Trainer with clipping, AdamW and AdaLoRA's
// updateAndAllocateAsync hook) on the
// page's demo Llama or the demo BERT with a classifier head, on a named backend. Returns every
// step's loss, the trained model's logits on a probe batch, and the adapter folder's files (what
// the page's download holds), so Node can reload it and compare.
import { initBackend } from '../../../src/tensor/backend_browser.js';
import { tf } from '../../../src/tensor/tf.js';
import { readBytes, listDir } from '../../../src/io/source_browser.js';
import { getPeftModel, LoraConfig } from '../../../src/tuners/index.js';
import { AdaLoraConfig, AdaLoraModel } from '../../../src/tuners/adalora/index.js';
import { buildDemo, type DemoArch } from '../../../web/demo.js';
import { trainOnPage } from '../../../web/engine/train.js';
import { TrainControl } from '../../../web/train_control.js';
import type { Example } from '../../../src/training/data/dataset.js';

export interface RunSpec {
  backend: string;
  arch: DemoArch;
  method: 'lora' | 'adalora';
  steps: number;
}

export interface RunResult {
  backend: string;
  losses: number[];
  msPerStep: number;
  logits: number[];
  files: Record<string, string>; // name → base64
  ranks?: number[];
}

/** The probe batch both the page and Node run (ids inside the demo vocabulary). */
export function probeIds(vocab: number): number[][] {
  return [0, 1].map((r) => Array.from({ length: 8 }, (_, j) => 4 + ((r * 29 + j * 11) % (vocab - 4))));
}

function examples(arch: DemoArch, vocab: number): Example[] {
  return Array.from({ length: 16 }, (_, i) => {
    const ids = Array.from({ length: 6 + (i % 5) }, (_, j) => 4 + ((i * 37 + j * 13) % (vocab - 4)));
    return arch === 'bert' ? { inputIds: ids, label: i % 2 } : ({ inputIds: ids } as Example);
  });
}

function b64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export async function runTraining(spec: RunSpec): Promise<RunResult> {
  await initBackend(spec.backend);
  const { model, config } = buildDemo(spec.arch, 0);
  const vocab = config.vocab_size as number;
  const peftConfig =
    spec.method === 'adalora'
      ? new AdaLoraConfig({
          initR: 6,
          targetR: 2,
          tinit: 2,
          tfinal: 4,
          deltaT: 2,
          totalStep: spec.steps,
          loraAlpha: 8,
          ...(spec.arch === 'bert' ? { modulesToSave: ['classifier'] } : {}),
        })
      : new LoraConfig({
          r: 4,
          loraAlpha: 8,
          ...(spec.arch === 'bert' ? { modulesToSave: ['classifier'] } : {}),
        });
  const peft = getPeftModel(model, peftConfig);
  const tuner = peft.base_model;
  const control = new TrainControl();
  control.start();
  const losses: number[] = [];
  const t0 = performance.now();
  try {
    await trainOnPage(
      peft,
      {
        examples: examples(spec.arch, vocab),
        task: spec.arch === 'bert' ? 'classification' : 'causal_lm',
        padTokenId: 0,
        steps: spec.steps,
        batchSize: 4,
        learningRate: 0.01,
        seed: 1,
      },
      control,
      { progress: (e) => losses.push(e.loss) },
    );
  } finally {
    control.finish();
  }
  const msPerStep = (performance.now() - t0) / spec.steps;
  const ids = tf.tensor2d(probeIds(vocab), [2, 8], 'int32');
  const logitsT = tf.tidy(() => peft.forward({ inputIds: ids }).logits);
  const logits = Array.from(await logitsT.data());
  tf.dispose([ids, logitsT]);
  const dir = `/conformance/${spec.backend}-${spec.arch}-${spec.method}`;
  await peft.savePretrained(dir);
  const files: Record<string, string> = {};
  for (const f of await listDir(dir)) files[f] = b64(await readBytes(`${dir}/${f}`));
  const ranks =
    tuner instanceof AdaLoraModel
      ? Object.values((peft.peftConfig.get('default') as AdaLoraConfig).rankPattern ?? {}).map(
          (v) => (v as boolean[]).filter(Boolean).length,
        )
      : undefined;
  if (tuner instanceof AdaLoraModel) tuner.allocation?.dispose();
  for (const [, p] of peft.namedParameters()) p.dispose();
  return { backend: spec.backend, losses, msPerStep, logits, files, ...(ranks ? { ranks } : {}) };
}
