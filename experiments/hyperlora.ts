/**
 * HyperLoRA vs separate per-task LoRAs of the same total size (issue 5, docs/hyperlora.md).
 *
 * Base: stories260K (frozen). Three causal-LM "tasks" with distinct text styles: 0 tiny-shakespeare,
 * 1 TinyStories, 2 SST-2 movie-review sentences. Targets: q_proj and v_proj of all 5 layers, r = 4.
 *  - per-task LoRA: one LoRA adapter per task, trained on that task only (batch B windows per step);
 *  - HyperLoRA: one hypernetwork for all three (condition = task id), each step a mixed batch with B
 *    windows of every task — so both see the same examples of each task.
 * The hypernetwork's hidden width is chosen so its parameter count ≈ the three LoRAs together.
 * Reports held-out loss per task (base, LoRA, HyperLoRA, and HyperLoRA materialised to a PEFT LoRA).
 *
 *   npx tsx experiments/hyperlora.ts [--steps 150] [--seed 0]
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf, type Variable } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { manualSeed } from '../src/nn/init.js';
import { AdamW } from '../src/training/optim.js';
import { getPeftModel, PeftModel } from '../src/tuners/peft_model.js';
import { LoraConfig } from '../src/tuners/lora/index.js';
import { HyperLoraConfig, HyperLoraModel, HyperNetwork } from '../src/tuners/hyperlora/index.js';
import { corpusIds, windowedLoss } from '../src/tuners/qlora/report.js';

const DATA = path.resolve(import.meta.dirname, '../../shared/data');
const MODEL = `${DATA}/models/stories260K/stories260K.bin`;
const args = process.argv.slice(2);
const arg = (name: string, dflt: number) =>
  args.includes(`--${name}`) ? Number(args[args.indexOf(`--${name}`) + 1]) : dflt;
const STEPS = arg('steps', 150);
const SEED = arg('seed', 0);
const T = 64; // tokens per window
const B = 4; // windows per task per step
const LR = 3e-3;
const R = 4;
const TARGETS = ['q_proj', 'v_proj'];

const backend = await initBackend((process.env.LOWRANK_BACKEND as 'auto') ?? 'auto');
console.log(`backend: ${backend.backend}`);
const tok = await loadTokenizer(`${DATA}/models/stories260K/tok512.bin`);
const encode = (s: string) => tok.encode(s, { addSpecialTokens: false });
const sst2 = fs
  .readFileSync(`${DATA}/glue/SST-2/train.tsv`, 'utf8')
  .split('\n')
  .slice(1, 6001)
  .map((l) => l.split('\t')[0])
  .join('\n\n'); // one block per sentence
const texts = [
  fs.readFileSync(`${DATA}/text/tinyshakespeare/input.txt`, 'utf8').slice(0, 150_000),
  fs.readFileSync(`${DATA}/text/tinystories/tinystories_val.txt`, 'utf8').slice(0, 150_000),
  sst2.slice(0, 150_000),
];
const TASKS = ['tiny-shakespeare', 'TinyStories', 'SST-2 sentences'];
const tasks = texts.map((t) => {
  const ids = corpusIds(t, encode, 1, 40_000); // block by block (the merge loop is quadratic per string)
  const cut = Math.floor(ids.length * 0.9);
  return { train: ids.slice(0, cut), heldOut: ids.slice(cut, cut + 32 * T) };
});

let rng = 1234 + SEED;
function windows(task: number, n: number): number[][] {
  const src = tasks[task]!.train;
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    rng = (Math.imul(rng, 1103515245) + 12345) & 0x7fffffff;
    const s = rng % (src.length - T);
    out.push(src.slice(s, s + T));
  }
  return out;
}

function trainSteps(vars: [string, Variable][], loss: (step: number) => tf.Scalar): number {
  const opt = new AdamW(vars, { lr: LR, weightDecay: 0 });
  const t0 = Date.now();
  for (let step = 0; step < STEPS; step++) {
    const { value, grads } = tf.variableGrads(
      () => loss(step),
      vars.map(([, v]) => v),
    );
    opt.step(new Map(vars.map(([n, v]) => [n, grads[v.name]!])));
    if (step % 20 === 0) console.log(`  step ${step} loss ${value.dataSync()[0]!.toFixed(4)}`);
    tf.dispose([value, ...Object.values(grads)]);
  }
  return (Date.now() - t0) / 1000;
}

const batchLoss = (forward: (x: tf.Tensor) => tf.Tensor | undefined, rows: number[][]) => {
  const x = tf.tensor2d(rows, [rows.length, T], 'int32');
  return forward(x) as tf.Scalar;
};

// base losses
manualSeed(SEED);
const base = await loadModel(MODEL);
const baseLoss = tasks.map((t) => windowedLoss(base, t.heldOut, T, 8));
base.dispose();

// per-task LoRAs
const loraLoss: number[] = [];
let loraParams = 0;
let loraSeconds = 0;
for (let k = 0; k < 3; k++) {
  manualSeed(SEED + k);
  const peft = getPeftModel(
    await loadModel(MODEL),
    new LoraConfig({ r: R, loraAlpha: 2 * R, targetModules: TARGETS }),
  );
  const vars = peft.trainableParameters();
  loraParams += vars.reduce((n, [, v]) => n + v.size, 0);
  loraSeconds += trainSteps(vars, () =>
    batchLoss((x) => peft.forward({ inputIds: x, labels: x }).loss, windows(k, B)),
  );
  peft.eval();
  loraLoss.push(windowedLoss(peft, tasks[k]!.heldOut, T, 8));
  peft.dispose();
}

// one hypernetwork for all three, hidden width matched to the LoRAs' total size
function hyperConfig(hiddenDim: number): HyperLoraConfig {
  return new HyperLoraConfig({
    targetModules: TARGETS,
    r: R,
    loraAlpha: 2 * R,
    numConditions: 3,
    embeddingDim: 8,
    layerEmbeddingDim: 4,
    moduleEmbeddingDim: 4,
    hiddenDim,
  });
}
const probe = new HyperLoraModel(await loadModel(MODEL), hyperConfig(1));
const shapes = probe.hypernet.shapes;
const numLayers = probe.hypernet.numLayers;
probe.dispose();
let hidden = 1;
for (; hidden < 256; hidden++) {
  const net = new HyperNetwork(hyperConfig(hidden), shapes, numLayers);
  const n = net.numParameters();
  net.dispose();
  if (n >= loraParams) break;
}
manualSeed(SEED);
const hyper = new HyperLoraModel(await loadModel(MODEL), hyperConfig(hidden));
const hyperVars = hyper.trainableParameters();
const hyperParams = hyperVars.reduce((n, [, v]) => n + v.size, 0);
const hyperSeconds = trainSteps(hyperVars, () => {
  const rows = [0, 1, 2].flatMap((k) => windows(k, B));
  const conds = [0, 1, 2].flatMap((k) => Array<number>(B).fill(k));
  return batchLoss((x) => hyper.forward({ inputIds: x, labels: x }, conds).loss, rows);
});
hyper.eval();
const hyperLoss = tasks.map((t, k) => {
  const m = {
    forward: (i: Parameters<typeof hyper.forward>[0]) =>
      hyper.forward(i, Array<number>(i.inputIds.shape[0]!).fill(k)),
  };
  return windowedLoss(m, t.heldOut, T, 8);
});
// materialised adapters, loaded as plain PEFT LoRA
const tmp = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'hyperlora-exp-'));
const materialLoss: number[] = [];
for (let k = 0; k < 3; k++) {
  await hyper.saveMaterialized(path.join(tmp, `task${k}`), k);
  const peft = await PeftModel.fromPretrained(await loadModel(MODEL), path.join(tmp, `task${k}`));
  peft.eval();
  materialLoss.push(windowedLoss(peft, tasks[k]!.heldOut, T, 8));
  peft.dispose();
}
fs.rmSync(tmp, { recursive: true, force: true });

console.log(
  `\nsteps ${STEPS}, ${B} windows × ${T} tokens per task per step, AdamW lr ${LR}, r ${R} on ${TARGETS.join(', ')}`,
);
console.log(
  `per-task LoRAs: ${loraParams} params in total (${loraSeconds.toFixed(0)} s); HyperLoRA: ${hyperParams} params, hidden ${hidden} (${hyperSeconds.toFixed(0)} s)`,
);
console.log('| task | base | per-task LoRA | HyperLoRA | HyperLoRA materialised |\n|---|---|---|---|---|');
TASKS.forEach((name, k) =>
  console.log(
    `| ${name} | ${baseLoss[k]!.toFixed(4)} | ${loraLoss[k]!.toFixed(4)} | ${hyperLoss[k]!.toFixed(4)} | ${materialLoss[k]!.toFixed(4)} |`,
  ),
);
const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
console.log(
  `| mean | ${mean(baseLoss).toFixed(4)} | ${mean(loraLoss).toFixed(4)} | ${mean(hyperLoss).toFixed(4)} | ${mean(materialLoss).toFixed(4)} |`,
);
fs.mkdirSync(path.resolve(import.meta.dirname, 'results'), { recursive: true });
fs.writeFileSync(
  path.resolve(import.meta.dirname, `results/hyperlora_seed${SEED}.json`),
  JSON.stringify(
    {
      backend: backend.backend,
      steps: STEPS,
      seed: SEED,
      tasks: TASKS,
      baseLoss,
      loraLoss,
      hyperLoss,
      materialLoss,
      loraParams,
      hyperParams,
      hidden,
    },
    null,
    2,
  ),
);
