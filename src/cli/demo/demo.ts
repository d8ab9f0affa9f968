/**
 * `lowrank demo`: the whole story on a fresh clone with nothing else present. It makes its own world
 * (a character tokenizer and an arithmetic language), pretrains a tiny Llama on it, then fine-tunes it
 * on a downstream task (does a+b carry? scored on (a, b) pairs never seen in fine-tuning) with LoRA and AdaLoRA at the same final rank budget
 * (AdaLoRA: targetR = LoRA's r on average, starting from initR) over every linear layer, and prints a
 * results table, where AdaLoRA put its rank, and the report paths.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from '../command.js';
import type { CliIO } from '../io.js';
import { table } from '../io.js';
import type { ParsedValue } from '../args.js';
import { TRAIN_OPTIONS } from '../commands/train_options.js';
import { runTraining, type TrainResult } from '../commands/train.js';
import { ALPHABET, charTokenizerFile, demoModelConfig, equationTsv, pretrainCorpus } from './language.js';
import { rankGrid, readAdapterSummary } from '../../report/ranks.js';

/** transformers' LlamaConfig.initializer_range default. */
const INITIALIZER_RANGE = 0.02;
const LINEAR = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

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
  r: number;
  seed: number;
}

/**
 * @example await runDemo({ output: 'runs/demo', backend: 'auto', pretrainSteps: 300, finetuneSteps: 200, r: 2, seed: 0 }, io);
 */
export async function runDemo(
  o: DemoOptions,
  io: CliIO,
): Promise<{ lora: TrainResult; adalora: TrainResult; table: string }> {
  const t0 = Date.now();
  const dataDir = path.join(o.output, 'data');
  fs.rmSync(o.output, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true });
  const tok = charTokenizerFile(ALPHABET);
  fs.writeFileSync(path.join(dataDir, 'tok.bin'), tok);
  fs.writeFileSync(path.join(dataDir, 'pretrain.txt'), pretrainCorpus(600, o.seed + 1));
  fs.writeFileSync(path.join(dataDir, 'train.tsv'), equationTsv('train', 2000, o.seed + 2));
  fs.writeFileSync(path.join(dataDir, 'dev.tsv'), equationTsv('dev', 30, o.seed + 3));
  io.err(`[demo] 1/4 made a character tokenizer and an arithmetic language in ${dataDir}`);

  // A fresh tiny Llama (random init) written as a Hugging Face folder with the tokenizer beside it.
  const { manualSeed, normal: normalInit } = await import('../../nn/init.js');
  const { modelFromConfig } = await import('../../models/from_config.js');
  const { saveModel } = await import('../../models/load.js');
  const { initBackend } = await import('../../tensor/backend.js');
  const backend = await initBackend(o.backend);
  manualSeed(o.seed);
  const initDir = path.join(o.output, 'base-init');
  const fresh = modelFromConfig(demoModelConfig(259 + ALPHABET.length), { task: 'CAUSAL_LM' });
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

  const quiet = { quiet: false, 'no-report': false } as const;
  io.err(
    `[demo] 2/4 pretraining a ${fmtInt(countParams(initDir))}-parameter Llama on correct equations (${o.pretrainSteps} steps, backend ${backend.backend})`,
  );
  const pre = await runTraining(
    values({
      ...quiet,
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
  const common = {
    ...quiet,
    model: baseDir,
    data: path.join(dataDir, 'train.tsv'),
    'eval-data': path.join(dataDir, 'dev.tsv'),
    task: 'classification',
    'max-length': 16,
    'batch-size': 32,
    lr: 5e-3,
    'max-steps': o.finetuneSteps,
    'eval-every': Math.max(1, Math.round(o.finetuneSteps / 4)),
    'save-every': 0,
    seed: o.seed,
    backend: o.backend,
    'target-modules': LINEAR,
    'warmup-steps': Math.round(o.finetuneSteps / 10),
  } as const;
  io.err(`[demo] 3/4 fine-tuning with LoRA (r=${o.r} on every linear layer)`);
  const lora = await runTraining(
    values({ ...common, method: 'lora', r: o.r, output: path.join(o.output, 'lora') }),
    io,
  );
  io.err(
    `[demo] 4/4 fine-tuning with AdaLoRA (initR=${o.r * 2} pruned to an average targetR=${o.r}: the same final rank budget)`,
  );
  const adalora = await runTraining(
    values({
      ...common,
      method: 'adalora',
      'init-r': o.r * 2,
      'target-r': o.r,
      // AdaLoRA's singular values start at zero and its budget shrinks while it trains: in so short a
      // run it gets twice LoRA's learning rate and a lighter orthogonal regulariser (0.1, not PEFT's 0.5)
      lr: 2 * (common.lr as number),
      'orth-reg-weight': 0.1,
      output: path.join(o.output, 'adalora'),
    }),
    io,
  );

  const rows: (string | number)[][] = [];
  for (const [name, r] of [
    ['LoRA', lora],
    ['AdaLoRA', adalora],
  ] as const) {
    const s = await readAdapterSummary(r.summary.adapterDir!);
    const e = r.summary.lastEval!;
    rows.push([
      name,
      fmtInt(r.trainableParams),
      fmtInt(s.totalParams),
      s.modules.reduce((a, m) => a + m.rank, 0),
      e.metrics.accuracy!.toFixed(3),
      e.metrics.mcc!.toFixed(3),
      e.loss.toFixed(4),
    ]);
  }
  const results = table(
    [
      'method',
      'trainable while training',
      'saved adapter params',
      'total rank',
      'dev accuracy',
      'dev MCC',
      'dev loss',
    ],
    rows,
  );
  const ada = await readAdapterSummary(adalora.summary.adapterDir!);
  const g = rankGrid(ada.modules);
  const heat = table(
    ['layer', ...g.types],
    g.layers.map((l, i) => [l, ...g.cells[i]!.map((x) => (x === undefined ? '.' : x))]),
  );
  io.out('');
  io.out(
    `lowrank demo: base model pretrained from scratch, then LoRA vs AdaLoRA at the same final rank budget (${((Date.now() - t0) / 1000) | 0} s, backend ${backend.backend})`,
  );
  io.out('');
  io.out(results);
  io.out('');
  io.out(
    `Where AdaLoRA put its rank (final rank per matrix, layers × module type; LoRA has ${o.r} everywhere):`,
  );
  io.out(heat);
  io.out('');
  io.out(`reports: ${adalora.report}`);
  io.out(`         ${lora.report}`);
  if (adalora.heatmap) io.out(`rank heatmap PNG: ${adalora.heatmap}`);
  io.out(`next: lowrank inspect ${adalora.summary.adapterDir}`);
  return { lora, adalora, table: results };
}

function countParams(dir: string): number {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, number>;
  const h = cfg.hidden_size!;
  const i = cfg.intermediate_size!;
  return cfg.vocab_size! * h + cfg.num_hidden_layers! * (4 * h * h + 3 * h * i + 2 * h) + h;
}

const fmtInt = (n: number) => n.toLocaleString('en-US');

export const demoCommand: Command = {
  spec: {
    name: 'demo',
    summary:
      'Pretrain a tiny model on a synthetic language, then compare LoRA and AdaLoRA at equal budget (~2 min)',
    options: [
      {
        name: 'output',
        short: 'o',
        type: 'string',
        description: 'folder for everything the demo makes',
        default: 'runs/demo',
      },
      {
        name: 'backend',
        type: 'string',
        description: 'compute backend',
        default: 'auto',
        choices: ['auto', 'native', 'wasm', 'cpu'],
      },
      { name: 'pretrain-steps', type: 'int', description: 'pretraining steps', default: 120 },
      { name: 'finetune-steps', type: 'int', description: 'fine-tuning steps per method', default: 80 },
      { name: 'r', type: 'int', description: 'LoRA rank = AdaLoRA target rank', default: 2 },
      { name: 'seed', type: 'int', description: 'seed', default: 0 },
    ],
    examples: [
      'npm run demo',
      'lowrank demo --backend cpu -o /tmp/demo',
      'lowrank demo --pretrain-steps 100 --finetune-steps 50   # quicker, rougher',
    ],
  },
  async run(p, io) {
    const v = p.values;
    await runDemo(
      {
        output: v.output as string,
        backend: v.backend as string,
        pretrainSteps: v['pretrain-steps'] as number,
        finetuneSteps: v['finetune-steps'] as number,
        r: v.r as number,
        seed: v.seed as number,
      },
      io,
    );
  },
};
