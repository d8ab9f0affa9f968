/**
 * The default training run of each built-in demo model (web/demo.ts). Its own module, free of library
 * imports, so the page's main thread can fill the form without bundling the model code.
 */
import { SAMPLE_TEXT_PROMPT, SAMPLE_TSV_PROMPT } from './samples.js';

export type DemoArch = 'llama' | 'bert';

/** The page's default training run for a demo model (what the form is set to when it loads). */
export interface DemoRun {
  method: 'adalora';
  /** Every linear layer of the blocks: a random-weight base needs capacity everywhere to fit the sample. */
  targetModules: string[];
  /** AdaLoRA's average target rank, initial rank and schedule (tinit, tfinal, ΔT). */
  r: number;
  initR: number;
  alpha: number;
  tinit: number;
  tfinal: number;
  deltaT: number;
  steps: number;
  learningRate: number;
  batchSize: number;
  seqLen: number;
  /** The prompt the trained adapter is tried on (a sample-grammar start; a held-out review). */
  prompt: string;
}

/**
 * Default runs, tuned so the page shows the point in well under a minute on single-threaded wasm:
 * the Llama's loss ends far below the uniform baseline ln(vocab) and its greedy text follows the
 * sample grammar; the BERT classifies held-out reviews by their adjective. Measured in Node on wasm
 * (seed 0): Llama 60 steps ≈ 2.2 final loss vs ln(117) = 4.76; BERT 80 steps ≈ 0.06, 207/216 sentences
 * right including unseen adjective–noun pairs. Asserted by tests/web.test.ts in Chromium.
 */
export const DEMO_RUNS: Record<DemoArch, DemoRun> = {
  llama: {
    method: 'adalora',
    targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    r: 4,
    initR: 8,
    alpha: 8,
    tinit: 6,
    tfinal: 12,
    deltaT: 3,
    steps: 60,
    learningRate: 0.1,
    batchSize: 8,
    seqLen: 32,
    prompt: SAMPLE_TEXT_PROMPT,
  },
  bert: {
    method: 'adalora',
    targetModules: ['query', 'key', 'value', 'dense'],
    r: 4,
    initR: 8,
    alpha: 8,
    tinit: 4,
    tfinal: 8,
    deltaT: 2,
    steps: 80,
    learningRate: 0.05,
    batchSize: 8,
    seqLen: 16,
    prompt: SAMPLE_TSV_PROMPT,
  },
};
