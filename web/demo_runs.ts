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
 * for seeds 0, 1, 2: Llama 60 steps, final loss 2.19–2.24 vs ln(117) = 4.76; BERT 120 steps, final
 * loss ≤ 0.02 and 204–209 of 216 sentences right (3 frames × 72 adjective–noun pairs, held-out pairs
 * included). Asserted for the page's defaults by tests/web_demo.test.ts in Chromium.
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
    tinit: 6,
    tfinal: 12,
    deltaT: 3,
    steps: 120,
    learningRate: 0.05,
    batchSize: 8,
    seqLen: 16,
    prompt: SAMPLE_TSV_PROMPT,
  },
};
