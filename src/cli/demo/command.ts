/**
 * The `lowrank demo` command: its flags, their checks, and the call to {@link runDemo} (demo.ts).
 */
import type { Command } from '../command.js';
import { UsageError } from '../args.js';
import { BACKEND } from '../commands/model_commands.js';
import { runDemo } from './demo.js';

/** `--quick`: a rough run in seconds (CI's installed-package check), not for conclusions. */
const QUICK = { pretrainSteps: 10, finetuneSteps: 6, samples: 64 };

export const demoCommand: Command = {
  spec: {
    name: 'demo',
    summary:
      'Plant a low-rank change in a few matrices of a tiny pretrained model; LoRA vs AdaLoRA at equal rank (~2 min)',
    options: [
      {
        name: 'output',
        short: 'o',
        type: 'string',
        description: 'a new or empty folder for everything the demo makes (or one an earlier demo made)',
        default: 'runs/demo',
      },
      BACKEND,
      { name: 'pretrain-steps', type: 'int', description: 'pretraining steps', default: 120 },
      { name: 'finetune-steps', type: 'int', description: 'fine-tuning steps per method', default: 120 },
      { name: 'r', type: 'int', description: 'LoRA rank = AdaLoRA average target rank', default: 2 },
      {
        name: 'planted-rank',
        type: 'int',
        description: 'rank of the planted change per matrix (= AdaLoRA initial rank)',
        default: 6,
      },
      {
        name: 'strength',
        type: 'number',
        description: "planted singular value, in units of the matrix's RMS singular value",
        default: 8,
      },
      { name: 'samples', type: 'int', description: 'downstream training sequences', default: 1536 },
      { name: 'seed', type: 'int', description: 'seed', default: 0 },
      {
        name: 'quick',
        type: 'boolean',
        description: 'a rough run in seconds (checks the install; no conclusions)',
        default: false,
      },
      {
        name: 'force',
        type: 'boolean',
        description: 'write into a non-empty --output the demo did not make (other files are left untouched)',
        default: false,
      },
    ],
    examples: [
      'npm run demo',
      'lowrank demo --backend wasm -o /tmp/demo',
      'lowrank demo --quick -o /tmp/demo-quick   # seconds; checks the install',
    ],
  },
  async run(p, io) {
    const v = p.values;
    const quick = Boolean(v.quick);
    if ((v['planted-rank'] as number) > 48)
      throw new UsageError(`--planted-rank: must be <= 48, the model's width (got ${v['planted-rank']})`);
    await runDemo(
      {
        output: v.output as string,
        backend: v.backend as string,
        pretrainSteps: quick ? QUICK.pretrainSteps : (v['pretrain-steps'] as number),
        finetuneSteps: quick ? QUICK.finetuneSteps : (v['finetune-steps'] as number),
        r: v.r as number,
        plantedRank: v['planted-rank'] as number,
        strength: v.strength as number,
        samples: quick ? QUICK.samples : (v.samples as number),
        seed: v.seed as number,
        force: Boolean(v.force),
      },
      io,
    );
    if (quick) io.out('(--quick: a smoke run of a few steps; its numbers show nothing about the methods)');
  },
};
