/**
 * QLoRA on real weights (issue 5): stories260K quantised to NF4/FP4 (blocksize 64, ± double
 * quantisation) against its f32 original —
 *   1. per-matrix quantisation error,
 *   2. loss on TinyStories val (first ~20k tokens, 256-token windows, BOS per story: the oracle's method),
 *   3. bytes held by the frozen weights,
 *   4. a short LoRA fine-tune on tiny-shakespeare, f32 base vs NF4 base, same seed and data (the
 *      run floor's training job on the library's Trainer: AdamW at a constant 3e-3, no clipping,
 *      the same random windows for both).
 * Prints tables and writes experiments/results/qlora.json. Needs ../shared/data.
 *
 *   LOWRANK_BACKEND=cpu npx tsx experiments/qlora.ts [--steps 60] [--skip-finetune]
 */
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { manualSeed } from '../src/nn/init.js';
import { trainJob } from '../src/run/job.js';
import type { TrainableModel } from '../src/training/types.js';
import type { Example } from '../src/training/data/dataset.js';
import { getPeftModel } from '../src/tuners/peft_model.js';
import { LoraConfig } from '../src/tuners/lora/index.js';
import {
  quantizeModel,
  memoryByCategory,
  denseLinearWeights,
  quantizationErrors,
  corpusIds,
  windowedLoss,
} from '../src/index.js';
import { DATA, STORIES260K, hasFlag, numberArg } from './script_args.js';

const MODEL = STORIES260K;
const arg = numberArg;
const STEPS = arg('steps', 60);
const EVAL_TOKENS = arg('eval-tokens', 20480);

const backend = await initBackend((process.env.LOWRANK_BACKEND as 'cpu') ?? 'auto');
console.log(`backend: ${backend.backend}`);
const tok = await loadTokenizer(`${DATA}/models/stories260K/tok512.bin`);
const encode = (s: string) => tok.encode(s, { addSpecialTokens: false });
const valIds = corpusIds(
  fs.readFileSync(`${DATA}/text/tinystories/tinystories_val.txt`, 'utf8'),
  encode,
  1,
  EVAL_TOKENS,
);
const results: Record<string, unknown> = { backend: backend.backend, evalTokens: valIds.length };

// 1-3: error statistics, loss, memory
if (!hasFlag('skip-stats')) {
  const fp32 = await loadModel(MODEL);
  const fp32Loss = windowedLoss(fp32, valIds, 256);
  console.log(`f32 TinyStories val loss: ${fp32Loss.toFixed(4)} nats/token (oracle: 1.429)`);
  const variants: { name: string; quantType: 'nf4' | 'fp4'; doubleQuant: boolean; blocksize?: number }[] = [
    { name: 'nf4+dq', quantType: 'nf4', doubleQuant: true },
    { name: 'nf4', quantType: 'nf4', doubleQuant: false },
    { name: 'fp4', quantType: 'fp4', doubleQuant: false },
    { name: 'nf4+dq bs32', quantType: 'nf4', doubleQuant: true, blocksize: 32 },
  ];
  const rows: Record<string, unknown>[] = [];
  for (const v of variants) {
    const model = await loadModel(MODEL);
    const dense = denseLinearWeights(model);
    quantizeModel(model, {
      quantType: v.quantType,
      doubleQuant: v.doubleQuant,
      blocksize: v.blocksize ?? 64,
    });
    const errors = quantizationErrors(model, dense);
    const loss = windowedLoss(model, valIds, 256);
    const mem = memoryByCategory(model);
    const ratio = mem.frozenQuantized / mem.frozenQuantizedFp32;
    rows.push({ ...v, loss, delta: loss - fp32Loss, bytesRatio: ratio, memory: mem, errors });
    console.log(
      `\n${v.name}: loss ${loss.toFixed(4)} (Δ ${(loss - fp32Loss).toFixed(4)}), 4-bit bytes / f32 bytes = ${ratio.toFixed(4)}`,
    );
    if (v.name === 'nf4+dq') {
      console.log('| matrix | shape | mean abs err | max err / max|w| | ‖err‖/‖w‖ |\n|---|---|---|---|---|');
      for (const e of errors) {
        console.log(
          `| ${e.path} | ${e.shape.join('×')} | ${e.meanAbs.toExponential(3)} | ${e.maxRelToAbsmax.toFixed(4)} | ${e.relFrobenius.toFixed(4)} |`,
        );
      }
    }
    const mean = (f: (e: (typeof errors)[number]) => number) =>
      errors.reduce((s, e) => s + f(e), 0) / errors.length;
    console.log(
      `mean over ${errors.length} matrices: mean abs ${mean((e) => e.meanAbs).toExponential(3)}, ‖err‖/‖w‖ ${mean((e) => e.relFrobenius).toFixed(4)}`,
    );
    model.dispose();
  }
  results.fp32Loss = fp32Loss;
  results.quantized = rows;
  fp32.dispose();
}

// 4: fine-tune on tiny-shakespeare, LoRA r=8 on every projection, f32 vs NF4+DQ base
if (!hasFlag('skip-finetune')) {
  const shakespeare = fs.readFileSync(`${DATA}/text/tinyshakespeare/input.txt`, 'utf8');
  // encoded block by block: the llama2.c merge loop is quadratic in the length of one string
  const ids = corpusIds(shakespeare, encode, 1, 60_000);
  const T = 64;
  const B = 8;
  const heldOut = ids.slice(ids.length - 16 * 128); // last 16 windows of 128 for evaluation
  const train = ids.slice(0, ids.length - heldOut.length);
  const windows: Example[] = [];
  let rng = 12345;
  for (let i = 0; i < STEPS * B; i++) {
    rng = (Math.imul(rng, 1103515245) + 12345) & 0x7fffffff;
    const s = rng % (train.length - T);
    windows.push({ inputIds: train.slice(s, s + T), label: -1 });
  }
  const finetune: Record<string, unknown>[] = [];
  for (const quant of [false, true]) {
    manualSeed(0);
    const base = await loadModel(MODEL);
    if (quant) quantizeModel(base, { quantType: 'nf4', doubleQuant: true });
    const peft = getPeftModel(
      base,
      new LoraConfig({
        r: 8,
        loraAlpha: 16,
        targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      }),
    );
    const before = windowedLoss(base, heldOut, 128);
    // the batches are drawn up front, in the order they are trained on (the same windows for both bases)
    const t0 = Date.now();
    await trainJob(
      {
        model: { model: peft as unknown as TrainableModel },
        task: 'causal_lm',
        train: windows,
        padTokenId: 0, // every window is T tokens: nothing is padded
        seed: 0,
        trainer: {
          shuffle: false,
          lr: 3e-3,
          weightDecay: 0,
          schedule: 'constant',
          maxSteps: STEPS,
          batchSize: B,
          maxGradNorm: 0,
        },
      },
      {
        onStep: (l) => {
          if ((l.step - 1) % 20 === 0)
            console.log(`${quant ? 'qlora' : 'lora '} step ${l.step - 1} loss ${l.loss.toFixed(4)}`);
        },
      },
    );
    const after = windowedLoss(peft, heldOut, 128);
    const mem = memoryByCategory(peft);
    finetune.push({
      base: quant ? 'nf4+dq' : 'f32',
      before,
      after,
      steps: STEPS,
      seconds: (Date.now() - t0) / 1000,
      memory: mem,
    });
    console.log(
      `${quant ? 'QLoRA (NF4+DQ base)' : 'LoRA (f32 base)'}: held-out loss ${before.toFixed(4)} → ${after.toFixed(4)} in ${STEPS} steps`,
    );
    peft.dispose();
  }
  results.finetune = finetune;
}

fs.mkdirSync(path.resolve(import.meta.dirname, 'results'), { recursive: true });
const part = hasFlag('skip-stats') ? 'finetune' : hasFlag('skip-finetune') ? 'stats' : 'all';
fs.writeFileSync(
  path.resolve(import.meta.dirname, `results/qlora_${part}.json`),
  JSON.stringify(results, null, 2),
);
console.log(`\nwrote experiments/results/qlora_${part}.json`);
