/** Shared fixtures of the CLI tests: an in-process runner with captured output and a tiny model folder. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../cli/main.js';
import type { CliIO } from '../cli/io.js';
import { equationTsv, pretrainCorpus } from '../cli/demo/language.js';
import { modelFromConfig } from '../models/from_config.js';
import { charLlamaConfig, saveCharModel } from './char_llama.js';
import { manualSeed } from '../nn/init.js';

/**
 * argv (after `node`) that runs the CLI from source in a child process, as `npm run lowrank` does
 * inside a clone (no build needed); the installed package runs dist/ instead (scripts/pack-check.sh).
 */
export const CLI_ENTRY = ['--import', 'tsx', path.resolve('src/cli/bin.ts')];

export const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lowrank-cli-'));

/** Runs `lowrank <argv>` in this process; returns exit code and captured stdout/stderr. */
export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), interactive: false };
  const code = await main(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A 2-layer, 16-wide Llama with the demo's character tokenizer, plus task and text data. */
export async function tinyWorld(
  dir: string,
): Promise<{ model: string; train: string; dev: string; text: string }> {
  manualSeed(0);
  const model = path.join(dir, 'model');
  const m = modelFromConfig(charLlamaConfig(), { task: 'CAUSAL_LM' });
  await saveCharModel(m, model);
  m.dispose();
  const files = {
    train: path.join(dir, 'train.tsv'),
    dev: path.join(dir, 'dev.tsv'),
    text: path.join(dir, 'text.txt'),
  };
  fs.writeFileSync(files.train, equationTsv('train', 96, 1));
  fs.writeFileSync(files.dev, equationTsv('dev', 30, 2));
  fs.writeFileSync(files.text, pretrainCorpus(40, 3));
  return { model, ...files };
}

/**
 * Command-line flags from an object, in its order: one-letter names take one dash, longer ones two, a
 * name already written with dashes (`'--r'`) is kept; `true` is a bare flag, numbers are written as
 * they print. The argument lists of the CLI tests are written this way.
 *
 * @example flags({ m: 'model', 'max-steps': 4, '--r': 2, q: true }); // ['-m', 'model', '--max-steps', '4', '--r', '2', '-q']
 */
export function flags(f: Record<string, string | number | true>): string[] {
  return Object.entries(f).flatMap(([name, v]) => {
    const flag = name.startsWith('-') ? name : name.length === 1 ? `-${name}` : `--${name}`;
    return v === true ? [flag] : [flag, String(v)];
  });
}

/** The tiny world's model, training and evaluation data as `train` flags. */
export const worldFlags = (w: { model: string; train: string; dev: string }) => ({
  m: w.model,
  data: w.train,
  'eval-data': w.dev,
});

/** A small AdaLoRA run on the tiny world (rank 4 pruned to 2). */
export const ADALORA_FLAGS = { method: 'adalora', 'init-r': 4, 'target-r': 2 } as const;
