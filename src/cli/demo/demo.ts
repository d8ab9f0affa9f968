/**
 * `lowrank demo`: what AdaLoRA is for, on a fresh clone with nothing else present. It makes its own
 * world (a character tokenizer and an arithmetic language), pretrains a tiny Llama on it, then plants
 * a known low-rank change in a few of its matrices and samples the downstream data from the changed
 * model (planted.ts). LoRA (rank r in every matrix) and AdaLoRA (the same final total rank, moved by
 * importance) fine-tune the pretrained model on that data; the table says how much of the gap between
 * the pretrained and the changed model each closes, the grid where AdaLoRA put its rank beside where
 * the change really was.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CliIO } from '../io.js';
import { table } from '../io.js';
import type { ParsedValue } from '../args.js';
import { TRAIN_OPTIONS } from '../commands/train_options.js';
import { runTraining, type TrainResult } from '../commands/train.js';
import { ALPHABET, charTokenizerFile, demoModelConfig, pretrainCorpus } from './language.js';
import { inputSubspace, plantChange, sampleSequences, samplingLoss, type PlantedMatrix } from './planted.js';
import { rankGrid, readAdapterSummary } from '../../report/ranks.js';
import { claimDemoFolder, DEMO_MARKER, writeFileAtomicSync } from '../output_folder.js';

/** transformers' LlamaConfig.initializer_range default. */
const INITIALIZER_RANGE = 0.02;
/** Token ids of the demo's characters in the llama2.c file: `<unk>`, BOS, EOS, 256 bytes, then ALPHABET. */
const FIRST_CHAR_ID = 259;
const BOS_ID = 1;
/** llama2.c's encoder puts a dummy-prefix space before the text: every sample starts BOS, ' '. */
const PREFIX = [BOS_ID, FIRST_CHAR_ID];

/** Where the change is planted: the value projections of the first and the last layer. */
export const PLANTED_TARGETS = ['model.layers.0.self_attn.v_proj', 'model.layers.2.self_attn.v_proj'];
/**
 * The adapted matrices: PEFT's default for Llama (q_proj, v_proj; 6 matrices in 3 layers). Adapting
 * every linear layer lets an even spread make up for the planted matrices through their neighbours
 * (o_proj, the MLP), which blurs what this demo is about: where the rank goes.
 */
const TARGET_MODULES = ['q_proj', 'v_proj'];

function values(overrides: Record<string, ParsedValue>): Record<string, ParsedValue | undefined> {
  const v: Record<string, ParsedValue | undefined> = {};
  for (const o of TRAIN_OPTIONS) v[o.name] = o.default;
  return { ...v, ...overrides };
}

export interface DemoOptions {
  output: string;
  backend: string;
  pretrainSteps: number;
  finetuneSteps: number;
  /** LoRA's rank = AdaLoRA's average target rank. */
  r: number;
  /** Rank of the planted change in each planted matrix (also AdaLoRA's initial rank). */
  plantedRank: number;
  /** Planted singular value, in RMS singular values of the matrix. */
  strength: number;
  /** Downstream training sequences sampled from the changed model. */
  samples: number;
  seed: number;
  force: boolean;
}

export interface DemoResult {
  lora: TrainResult;
  adalora: TrainResult;
  table: string;
  /** Dev loss of the pretrained model (no adapter) and of the changed model itself (the floor). */
  baseLoss: number;
  plantedLoss: number;
  planted: PlantedMatrix[];
}

/** Characters of sampled ids (the prefix excluded). */
function toText(ids: number[]): string {
  return ids.map((id) => ALPHABET[id - FIRST_CHAR_ID]!).join('');
}

/**
 * @example await runDemo({ output: 'runs/demo', backend: 'auto', pretrainSteps: 120, finetuneSteps: 120, r: 2, plantedRank: 8, strength: 2, samples: 1536, seed: 0, force: false }, io);
 */
export async function runDemo(o: DemoOptions, io: CliIO): Promise<DemoResult> {
  const t0 = Date.now();
  claimDemoFolder(o.output, o.force);
  const dataDir = path.join(o.output, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  const tok = charTokenizerFile(ALPHABET);
  writeFileAtomicSync(path.join(dataDir, 'tok.bin'), tok);
  writeFileAtomicSync(path.join(dataDir, 'pretrain.txt'), pretrainCorpus(600, o.seed + 1));
  io.err(`[demo] 1/5 made a character tokenizer and an arithmetic language in ${dataDir}`);

  // A fresh tiny Llama (random init) written as a Hugging Face folder with the tokenizer beside it.
  const { manualSeed, normal: normalInit } = await import('../../nn/init.js');
  const { modelFromConfig } = await import('../../models/from_config.js');
  const { saveModel, loadModel } = await import('../../models/load.js');
  const { initBackend } = await import('../../tensor/backend.js');
  const backend = await initBackend(o.backend);
  manualSeed(o.seed);
  const initDir = path.join(o.output, 'base-init');
  const fresh = modelFromConfig(demoModelConfig(FIRST_CHAR_ID + ALPHABET.length), { task: 'CAUSAL_LM' });
  // Hugging Face's `_init_weights` for Llama: every matrix ~ N(0, initializer_range²), norms at 1
  // (PyTorch's N(0, 1) embedding default would start the tied LM head at a loss of ~45 nats).
  for (const [, p] of fresh.namedParameters()) {
    if (p.rank !== 2) continue;
    const w = normalInit(p.shape, 0, INITIALIZER_RANGE);
    p.assign(w);
    w.dispose();
  }
  await saveModel(fresh, initDir, { tokenizerFiles: { 'tok.bin': tok } });
  fresh.dispose();

  io.err(
    `[demo] 2/5 pretraining a ${fmtInt(countParams(initDir))}-parameter Llama on correct equations (${o.pretrainSteps} steps, backend ${backend.backend})`,
  );
  const pre = await runTraining(
    values({
      model: initDir,
      data: path.join(dataDir, 'pretrain.txt'),
      task: 'causal_lm',
      method: 'full',
      'max-length': 48,
      'batch-size': 16,
      lr: 3e-3,
      'warmup-steps': Math.round(o.pretrainSteps / 20),
      'max-steps': o.pretrainSteps,
      'eval-every': 0,
      'save-every': 0,
      'eval-limit': 32,
      seed: o.seed,
      backend: o.backend,
      output: path.join(o.output, 'pretrain'),
      'no-report': true,
    }),
    io,
  );
  const baseDir = pre.summary.adapterDir!;

  // The downstream task: the pretrained model with a rank-k change in two matrices; data sampled from it.
  const teacher = await loadModel(baseDir, { task: 'CAUSAL_LM' });
  const allowed = [...ALPHABET].map((_, i) => FIRST_CHAR_ID + i);
  // V of each planted change: the top directions of the inputs the matrix really sees (on text the
  // pretrained model writes), so the change is rank k on the model's own activations
  const probe = (await sampleSequences(teacher, PREFIX, 32, 256, allowed, o.seed + 5)).map((q) => [
    ...PREFIX,
    ...q,
  ]);
  const targets = [];
  for (const p of PLANTED_TARGETS)
    targets.push({
      path: p,
      rank: o.plantedRank,
      inputDirs: await inputSubspace(teacher, p, probe, o.plantedRank),
    });
  const planted = await plantChange(teacher, targets, o.strength, o.seed + 7);
  const plantedDir = path.join(o.output, 'planted');
  await saveModel(teacher, path.join(plantedDir, 'model'), { tokenizerFiles: { 'tok.bin': tok } });
  const seqLen = 32;
  const devCount = Math.max(64, Math.round(o.samples / 6));
  const seqs = await sampleSequences(teacher, PREFIX, seqLen, o.samples + devCount, allowed, o.seed + 11);
  const trainFile = path.join(dataDir, 'downstream-train.txt');
  const devFile = path.join(dataDir, 'downstream-dev.txt');
  writeFileAtomicSync(trainFile, seqs.slice(0, o.samples).map(toText).join('\n\n') + '\n');
  writeFileAtomicSync(devFile, seqs.slice(o.samples).map(toText).join('\n\n') + '\n');
  // the dev loss of the pretrained model (where fine-tuning starts) and of the changed model (the floor)
  const devExamples = seqs.slice(o.samples).map((s) => ({ inputIds: [...PREFIX, ...s], label: -1 }));
  const { evaluate } = await import('../../training/evaluate.js');
  const devLoss = async (m: typeof teacher) =>
    (await evaluate(m, devExamples, 'causal_lm', 'causal_lm', 64, 2)).loss;
  const plantedLoss = await samplingLoss(teacher, PREFIX, seqs.slice(o.samples), allowed);
  teacher.dispose();
  const base = await loadModel(baseDir, { task: 'CAUSAL_LM' });
  const baseLoss = await devLoss(base);
  base.dispose();
  writeFileAtomicSync(
    path.join(plantedDir, 'planted.json'),
    JSON.stringify({ planted, strength: o.strength, seed: o.seed + 7, baseLoss, plantedLoss }, null, 2) +
      '\n',
  );
  io.err(
    `[demo] 3/5 planted a rank-${o.plantedRank} change in ${PLANTED_TARGETS.join(' and ')}; sampled ${o.samples} + ${devCount} sequences from the changed model (dev loss: pretrained ${baseLoss.toFixed(4)}, changed model ${plantedLoss.toFixed(4)})`,
  );

  const common = {
    model: baseDir,
    data: trainFile,
    'eval-data': devFile,
    task: 'causal_lm',
    'max-length': seqLen + PREFIX.length,
    'batch-size': 32,
    'max-steps': o.finetuneSteps,
    'eval-every': 0,
    'save-every': 0,
    seed: o.seed,
    backend: o.backend,
    'target-modules': TARGET_MODULES,
    'lora-dropout': 0,
    'warmup-steps': Math.round(o.finetuneSteps / 10),
  } as const;
  const nMatrices = 3 * TARGET_MODULES.length;
  io.err(
    `[demo] 4/5 fine-tuning with LoRA (r=${o.r} in each of the ${nMatrices} ${TARGET_MODULES.join('/')} matrices)`,
  );
  const lora = await runTraining(
    values({ ...common, method: 'lora', r: o.r, lr: 1e-2, output: path.join(o.output, 'lora') }),
    io,
  );
  io.err(
    `[demo] 5/5 fine-tuning with AdaLoRA (initR=${o.plantedRank} pruned to an average targetR=${o.r}: the same final total rank)`,
  );
  const adalora = await runTraining(
    values({
      ...common,
      method: 'adalora',
      'init-r': o.plantedRank,
      'target-r': o.r,
      // AdaLoRA's singular values start at zero and its budget shrinks while it trains: in so short a
      // run it gets twice LoRA's learning rate and a lighter orthogonal regulariser (0.1, not PEFT's 0.5)
      lr: 2e-2,
      'orth-reg-weight': 0.1,
      output: path.join(o.output, 'adalora'),
    }),
    io,
  );

  const gap = baseLoss - plantedLoss;
  const rows: (string | number)[][] = [
    ['pretrained (no adapter)', '-', '-', '-', baseLoss.toFixed(4), gap.toFixed(4), '0%'],
  ];
  const summaries = [];
  for (const [name, r] of [
    ['LoRA', lora],
    ['AdaLoRA', adalora],
  ] as const) {
    const s = await readAdapterSummary(r.summary.adapterDir!);
    summaries.push(s);
    const e = r.summary.lastEval!;
    const inPlanted = s.modules
      .filter((m) => PLANTED_TARGETS.includes(m.path))
      .reduce((a, m) => a + m.rank, 0);
    rows.push([
      name,
      fmtInt(s.totalParams),
      s.modules.reduce((a, m) => a + m.rank, 0),
      `${inPlanted} of ${o.plantedRank * PLANTED_TARGETS.length}`,
      e.loss.toFixed(4),
      (e.loss - plantedLoss).toFixed(4),
      `${((100 * (baseLoss - e.loss)) / gap).toFixed(1)}%`,
    ]);
  }
  rows.push(['changed model itself', '-', '-', '-', plantedLoss.toFixed(4), '0', '100%']);
  const results = table(
    [
      'model',
      'saved adapter params',
      'total rank',
      'rank on the change',
      'dev loss',
      'excess loss',
      'gap closed',
    ],
    rows,
  );
  const g = rankGrid(summaries[1]!.modules);
  const plantedCell = (layer: number, type: string) =>
    PLANTED_TARGETS.some((p) => p.includes(`layers.${layer}.`) && p.endsWith(`.${type}`))
      ? o.plantedRank
      : '.';
  const heat = table(
    ['layer', ...g.types, '|', ...g.types],
    g.layers.map((l, i) => [
      l,
      ...g.cells[i]!.map((x) => (x === undefined ? '.' : x)),
      '|',
      ...g.types.map((t) => plantedCell(l, t)),
    ]),
  );
  const seconds = ((Date.now() - t0) / 1000) | 0;
  io.out('');
  io.out(
    `lowrank demo: a rank-${o.plantedRank} change planted in 2 of the ${nMatrices} adapted matrices; LoRA (r=${o.r} in each) vs AdaLoRA (the same total rank ${o.r * nMatrices}, allocated by importance) (${seconds} s, backend ${backend.backend})`,
  );
  io.out('');
  io.out(results);
  io.out('');
  io.out(
    "excess loss = dev loss minus the changed model's own (what the fit still misses); gap closed = share of pretrained → changed",
  );
  io.out('');
  io.out(
    `Where AdaLoRA put its rank (left; LoRA has ${o.r} in every cell) and where the change really was (right):`,
  );
  io.out(heat);
  io.out('');
  io.out(`reports: ${adalora.report}`);
  io.out(`         ${lora.report}`);
  if (adalora.heatmap) io.out(`rank heatmap PNG: ${adalora.heatmap}`);
  io.out(`next: lowrank inspect ${adalora.summary.adapterDir}`);
  writeFileAtomicSync(
    path.join(o.output, DEMO_MARKER),
    JSON.stringify(
      {
        madeBy: 'lowrank demo',
        state: 'done',
        backend: backend.backend,
        seconds,
        options: o,
        baseLoss,
        plantedLoss,
        lora: { devLoss: lora.summary.lastEval!.loss, modules: summaries[0]!.modules },
        adalora: { devLoss: adalora.summary.lastEval!.loss, modules: summaries[1]!.modules },
      },
      null,
      2,
    ) + '\n',
  );
  return { lora, adalora, table: results, baseLoss, plantedLoss, planted };
}

function countParams(dir: string): number {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, number>;
  const h = cfg.hidden_size!;
  const i = cfg.intermediate_size!;
  return cfg.vocab_size! * h + cfg.num_hidden_layers! * (4 * h * h + 3 * h * i + 2 * h) + h;
}

const fmtInt = (n: number) => n.toLocaleString('en-US');
