/**
 * HyperLoRA vs separate per-task LoRAs of the same total size (issue 5, docs/hyperlora.md), trained by
 * the library's Trainer (no loop of its own: issue 14).
 *
 * Base: stories260K (frozen). Three causal-LM "tasks" with distinct text styles: 0 tiny-shakespeare,
 * 1 TinyStories, 2 SST-2 movie-review sentences. Targets: q_proj and v_proj of all 5 layers, r = 4.
 * Every task's training set is the same STEPS × B windows of 64 tokens (one window stream per task),
 * so both arms see exactly the same windows, each once (one epoch, shuffled by the Trainer's seed):
 *  - per-task LoRA: one LoRA adapter per task, trained on that task's windows, B per step;
 *  - HyperLoRA: one hypernetwork for all three, trained on the union with each window's task as its
 *    `Example.condition` (the collator batches it), 3·B windows per step, tasks mixed by the shuffle.
 * The hypernetwork's hidden width is chosen so its parameter count just reaches the three LoRAs' total.
 * Both arms run the same learning-rate grid (AdamW, constant rate, no weight decay, no clipping);
 * each arm's rate is picked by its mean loss on a validation split, and the test split (disjoint,
 * after it) is reported at that rate, with the whole grid in the JSON. HyperLoRA is also evaluated
 * materialised to PEFT LoRA folders.
 *
 *   npx tsx experiments/hyperlora.ts [--steps 80] [--seed 0] [--lrs 1e-3,3e-3,1e-2]
 *     [--conditioning concat|film] [--shared-a] [--head-a-std 0.04] [--hidden 32] [--arms lora,hyper]
 * writes results/hyperlora_trainer_[film_][sharedA_][headA<σ>_][hidden<n>_][steps<n>_][pertask_]seed<seed>.json.
 * --hidden overrides the matched width: a diagnostic beyond the equal budget, not a fair comparison.
 * The per-task LoRA arm depends only on steps, seed and grid, so a HyperLoRA variant may skip it
 * (--arms hyper). --head-a-std σ re-initialises the A heads after construction (bias 0, weight
 * N(0, σ²)) so every (layer, condition) starts from its own A, as independent LoRAs do.
 * --arms hyper-per-task trains one single-condition hypernetwork per task (a third of the budget each).
 * The older `--head-lr-mult` diagnostic needed two learning rates, which the Trainer does not have;
 * its results (results/hyperlora_headlr0.2_seed*.json) came from the earlier script.
 */
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { loadModel } from '../src/models/load.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { manualSeed } from '../src/nn/init.js';
import { trainJob } from '../src/run/job.js';
import { evaluate } from '../src/training/evaluate.js';
import type { TrainableModel } from '../src/training/types.js';
import type { Example } from '../src/training/data/dataset.js';
import { getPeftModel, PeftModel } from '../src/tuners/peft_model.js';
import { LoraConfig } from '../src/tuners/lora/index.js';
import { HyperLoraConfig, HyperLoraModel, HyperNetwork } from '../src/tuners/hyperlora/index.js';
import { corpusIds } from '../src/models/windowed_loss.js';

const DATA = path.resolve(import.meta.dirname, '../../shared/data');
const MODEL = `${DATA}/models/stories260K/stories260K.bin`;
const args = process.argv.slice(2);
const arg = (name: string, dflt: number) =>
  args.includes(`--${name}`) ? Number(args[args.indexOf(`--${name}`) + 1]) : dflt;
const STEPS = arg('steps', 80);
const SEED = arg('seed', 0);
const LRS = (args.includes('--lrs') ? args[args.indexOf('--lrs') + 1]! : '1e-3,3e-3,1e-2')
  .split(',')
  .map(Number);
const CONDITIONING = (
  args.includes('--conditioning') ? args[args.indexOf('--conditioning') + 1] : 'concat'
) as 'concat' | 'film';
const HIDDEN = args.includes('--hidden') ? Number(args[args.indexOf('--hidden') + 1]) : 0;
const HEAD_A_STD = args.includes('--head-a-std') ? Number(args[args.indexOf('--head-a-std') + 1]) : 0;
const SHARED_A = args.includes('--shared-a');
const ARMS = (args.includes('--arms') ? args[args.indexOf('--arms') + 1]! : 'lora,hyper').split(',');
const T = 64; // tokens per window
const B = 4; // windows per task per step
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
  // held out: 16 validation windows (picks the learning rate), then 32 test windows (reported)
  return {
    train: ids.slice(0, cut),
    val: ids.slice(cut, cut + 16 * T),
    test: ids.slice(cut + 16 * T, cut + 48 * T),
  };
});
if (tasks.some((t) => t.test.length < 32 * T)) throw new Error('not enough held-out text');

/** One window stream per task (an LCG): task k's first `n` windows of 64 tokens of its training text. */
function windows(task: number, n: number): number[][] {
  const src = tasks[task]!.train;
  let state = 1234 + 97 * task + SEED;
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff;
    const s = state % (src.length - T);
    out.push(src.slice(s, s + T));
  }
  return out;
}
/** Task k's training examples: the same STEPS·B windows for both arms (`condition` for HyperLoRA). */
const trainSet = (k: number, condition?: number): Example[] =>
  windows(k, STEPS * B).map((inputIds) => ({
    inputIds,
    label: -1,
    ...(condition !== undefined ? { condition } : {}),
  }));
/** Consecutive windows of a held-out split as examples. */
const heldOut = (ids: number[], condition?: number): Example[] =>
  Array.from({ length: Math.floor(ids.length / T) }, (_, i) => ({
    inputIds: ids.slice(i * T, (i + 1) * T),
    label: -1,
    ...(condition !== undefined ? { condition } : {}),
  }));

/**
 * One epoch of `train` through the run floor's training job (the library's Trainer): AdamW at a
 * constant rate, no decay, no clipping.
 */
async function trainOnce(
  model: TrainableModel,
  train: Example[],
  lr: number,
  batchSize: number,
): Promise<number> {
  const t0 = Date.now();
  await trainJob(
    {
      model: { model },
      task: 'causal_lm',
      train,
      padTokenId: 0,
      seed: SEED,
      trainer: { lr, weightDecay: 0, schedule: 'constant', maxSteps: STEPS, batchSize },
    },
    {
      onStep: (l) =>
        l.step % 20 === 1 ? console.log(`  step ${l.step} loss ${l.loss.toFixed(4)}`) : undefined,
    },
  );
  return (Date.now() - t0) / 1000;
}

/** Mean next-token loss (nats/token) of equal-length windows, by the library's `evaluate`. */
const lossOn = async (m: TrainableModel, examples: Example[]) =>
  (await evaluate(m, examples, 'causal_lm', 'causal_lm', 8, 0)).loss;
const evalSplits = async (m: TrainableModel, k: number, condition?: number) => ({
  val: await lossOn(m, heldOut(tasks[k]!.val, condition)),
  test: await lossOn(m, heldOut(tasks[k]!.test, condition)),
});

// base losses
manualSeed(SEED);
const base = await loadModel(MODEL);
const baseEval: { val: number; test: number }[] = [];
for (let k = 0; k < 3; k++) baseEval.push(await evalSplits(base, k));
base.dispose();

interface ArmRun {
  lr: number;
  val: number[];
  test: number[];
  params: number;
  seconds: number;
  /** HyperLoRA only: test loss of the materialised PEFT LoRA folders. */
  materialTest?: number[];
}

async function runLora(lr: number): Promise<ArmRun> {
  const run: ArmRun = { lr, val: [], test: [], params: 0, seconds: 0 };
  for (let k = 0; k < 3; k++) {
    manualSeed(SEED + k);
    const peft = getPeftModel(
      await loadModel(MODEL),
      new LoraConfig({ r: R, loraAlpha: 2 * R, targetModules: TARGETS }),
    );
    run.params += peft.trainableParameters().reduce((n, [, v]) => n + v.size, 0);
    run.seconds += await trainOnce(peft, trainSet(k), lr, B);
    const e = await evalSplits(peft, k);
    run.val.push(e.val);
    run.test.push(e.test);
    peft.dispose();
  }
  return run;
}

// one hypernetwork for all three, hidden width matched to the LoRAs' total size
function hyperConfig(hiddenDim: number, numConditions = 3): HyperLoraConfig {
  return new HyperLoraConfig({
    targetModules: TARGETS,
    r: R,
    loraAlpha: 2 * R,
    numConditions,
    embeddingDim: 8,
    layerEmbeddingDim: 4,
    moduleEmbeddingDim: 4,
    hiddenDim,
    conditioning: CONDITIONING,
    sharedA: SHARED_A,
  });
}

/** Parameters of the three per-task LoRAs (the budget), without training them. */
async function loraBudget(): Promise<number> {
  const peft = getPeftModel(
    await loadModel(MODEL),
    new LoraConfig({ r: R, loraAlpha: 2 * R, targetModules: TARGETS }),
  );
  const n = 3 * peft.trainableParameters().reduce((s, [, v]) => s + v.size, 0);
  peft.dispose();
  return n;
}

async function hiddenFor(budget: number, numConditions = 3): Promise<number> {
  const probe = new HyperLoraModel(await loadModel(MODEL), hyperConfig(1, numConditions));
  const { shapes, numLayers } = probe.hypernet;
  probe.dispose();
  for (let hidden = 1; hidden < 256; hidden++) {
    const net = new HyperNetwork(hyperConfig(hidden, numConditions), shapes, numLayers);
    const n = net.numParameters();
    net.dispose();
    if (n >= budget) return hidden;
  }
  throw new Error('no hidden width reaches the budget');
}

async function runHyper(lr: number, hidden: number): Promise<ArmRun> {
  manualSeed(SEED);
  const hyper = new HyperLoraModel(await loadModel(MODEL), hyperConfig(hidden));
  if (HEAD_A_STD > 0)
    tf.tidy(() => {
      for (const [n, p] of hyper.hypernet.namedParameters()) {
        if (/_A\.weight$/.test(n)) p.assign(tf.randomNormal(p.shape, 0, HEAD_A_STD, 'float32', 77 + SEED));
        if (/_A\.bias$/.test(n)) p.assign(tf.zerosLike(p));
      }
    });
  const params = hyper.trainableParameters().reduce((n, [, v]) => n + v.size, 0);
  const run: ArmRun = { lr, val: [], test: [], params, seconds: 0 };
  run.seconds = await trainOnce(
    hyper,
    [0, 1, 2].flatMap((k) => trainSet(k, k)),
    lr,
    3 * B,
  );
  for (let k = 0; k < 3; k++) {
    const e = await evalSplits(hyper, k, k);
    run.val.push(e.val);
    run.test.push(e.test);
  }
  // materialised adapters, loaded as plain PEFT LoRA folders
  const tmp = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'hyperlora-exp-'));
  run.materialTest = [];
  for (let k = 0; k < 3; k++) {
    await hyper.saveMaterialized(path.join(tmp, `task${k}`), k);
    const peft = await PeftModel.fromPretrained(await loadModel(MODEL), path.join(tmp, `task${k}`));
    run.materialTest.push(await lossOn(peft, heldOut(tasks[k]!.test)));
    peft.dispose();
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  hyper.dispose();
  return run;
}

/**
 * Diagnostic arm 'hyper-per-task': one single-condition hypernetwork per task, each a third of the
 * budget, trained on its task alone (as the per-task LoRAs are). Against the shared hypernetwork it
 * separates what sharing across conditions costs from what generating the factors costs.
 */
async function runHyperPerTask(lr: number, hidden: number): Promise<ArmRun> {
  const run: ArmRun = { lr, val: [], test: [], params: 0, seconds: 0 };
  for (let k = 0; k < 3; k++) {
    manualSeed(SEED + k);
    const hyper = new HyperLoraModel(await loadModel(MODEL), hyperConfig(hidden, 1));
    run.params += hyper.trainableParameters().reduce((n, [, v]) => n + v.size, 0);
    run.seconds += await trainOnce(hyper, trainSet(k, 0), lr, B);
    const e = await evalSplits(hyper, k, 0);
    run.val.push(e.val);
    run.test.push(e.test);
    hyper.dispose();
  }
  return run;
}

const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
const loraRuns: ArmRun[] = [];
const hyperRuns: ArmRun[] = [];
const perTaskRuns: ArmRun[] = [];
const pick = (runs: ArmRun[]) =>
  runs.length ? runs.reduce((b, r) => (mean(r.val) < mean(b.val) ? r : b)) : undefined;
const budget = await loraBudget();
const hidden = HIDDEN || (await hiddenFor(budget));
const hiddenPerTask = ARMS.includes('hyper-per-task') ? await hiddenFor(budget / 3, 1) : 0;
for (const lr of LRS) {
  if (ARMS.includes('lora')) {
    console.log(`\nlr ${lr}: per-task LoRAs`);
    loraRuns.push(await runLora(lr));
  }
  if (ARMS.includes('hyper')) {
    console.log(`lr ${lr}: HyperLoRA (${CONDITIONING}${SHARED_A ? ', shared A' : ''}, hidden ${hidden})`);
    hyperRuns.push(await runHyper(lr, hidden));
  }
  if (ARMS.includes('hyper-per-task')) {
    console.log(`lr ${lr}: one single-condition HyperLoRA per task (hidden ${hiddenPerTask})`);
    perTaskRuns.push(await runHyperPerTask(lr, hiddenPerTask));
  }
}
const perTask = pick(perTaskRuns);
if (perTask)
  console.log(
    `\nper-task hypernetworks (${perTask.params} params): picked lr ${perTask.lr}, test ${perTask.test.map((v) => v.toFixed(4)).join(' / ')}, mean ${mean(perTask.test).toFixed(4)}; val over the grid ${perTaskRuns.map((r) => `${r.lr}: ${mean(r.val).toFixed(4)}`).join(', ')}`,
  );
const lora = pick(loraRuns);
const hyper = pick(hyperRuns);
const cell = (r: ArmRun | undefined, f: (r: ArmRun) => number) => (r ? f(r).toFixed(4) : '—');

console.log(
  `\nsteps ${STEPS} (Trainer, one epoch), ${B} windows × ${T} tokens per task per step, AdamW, r ${R} on ${TARGETS.join(', ')}, seed ${SEED}`,
);
console.log(
  `per-task LoRAs: ${budget} params in total; HyperLoRA (${CONDITIONING}): ${hyperRuns[0]?.params ?? '—'} params, hidden ${hidden}`,
);
console.log(
  '\nmean validation loss over the learning-rate grid:\n| lr | per-task LoRA | HyperLoRA |\n|---|---|---|',
);
LRS.forEach((lr, i) =>
  console.log(
    `| ${lr} | ${cell(loraRuns[i], (r) => mean(r.val))} | ${cell(hyperRuns[i], (r) => mean(r.val))} |`,
  ),
);
console.log(
  `\ntest loss at the picked rates (LoRA ${lora?.lr ?? '—'}, HyperLoRA ${hyper?.lr ?? '—'}):\n| task | base | per-task LoRA | HyperLoRA | HyperLoRA materialised |\n|---|---|---|---|---|`,
);
TASKS.forEach((name, k) =>
  console.log(
    `| ${name} | ${baseEval[k]!.test.toFixed(4)} | ${cell(lora, (r) => r.test[k]!)} | ${cell(hyper, (r) => r.test[k]!)} | ${cell(hyper, (r) => r.materialTest![k]!)} |`,
  ),
);
console.log(
  `| mean | ${mean(baseEval.map((e) => e.test)).toFixed(4)} | ${cell(lora, (r) => mean(r.test))} | ${cell(hyper, (r) => mean(r.test))} | ${cell(hyper, (r) => mean(r.materialTest!))} |`,
);
fs.mkdirSync(path.resolve(import.meta.dirname, 'results'), { recursive: true });
fs.writeFileSync(
  path.resolve(
    import.meta.dirname,
    `results/hyperlora_trainer_${CONDITIONING === 'concat' ? '' : `${CONDITIONING}_`}${SHARED_A ? 'sharedA_' : ''}${HEAD_A_STD ? `headA${HEAD_A_STD}_` : ''}${HIDDEN ? `hidden${HIDDEN}_` : ''}${STEPS === 80 ? '' : `steps${STEPS}_`}${ARMS.join('+') === 'hyper-per-task' ? 'pertask_' : ''}seed${SEED}.json`,
  ),
  JSON.stringify(
    {
      backend: backend.backend,
      steps: STEPS,
      seed: SEED,
      tasks: TASKS,
      windowsPerTaskPerStep: B,
      tokensPerWindow: T,
      lrs: LRS,
      conditioning: CONDITIONING,
      sharedA: SHARED_A,
      headAStd: HEAD_A_STD || null,
      trainedBy: 'Trainer (one epoch of the same windows, shuffled by the seed)',
      hiddenOverride: HIDDEN || null,
      loraParams: budget,
      hidden,
      base: { val: baseEval.map((e) => e.val), test: baseEval.map((e) => e.test) },
      lora: lora ? { picked: lora.lr, runs: loraRuns } : null,
      hyper: hyper ? { picked: hyper.lr, runs: hyperRuns } : null,
      hyperPerTask: perTask ? { picked: perTask.lr, runs: perTaskRuns } : null,
    },
    null,
    2,
  ) + '\n',
);
