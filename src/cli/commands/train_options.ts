/** The options of `lowrank train` (also accepted as keys of a --config JSON/YAML file). */
import type { OptionSpec } from '../args.js';
import { METHODS } from '../../run/methods.js';
import { SCHEDULES } from '../../training/optim.js';
import { ENCODINGS } from '../inputs.js';

export const DATA_OPTIONS: OptionSpec[] = [
  {
    name: 'data',
    type: 'string',
    description: 'training data: .tsv/.csv/.jsonl table (GLUE layouts detected) or plain text for causal LM',
  },
  {
    name: 'eval-data',
    type: 'string',
    description: 'evaluation data (default: split --eval-fraction off --data)',
  },
  {
    name: 'eval-fraction',
    type: 'number',
    description: 'fraction of --data held out when there is no --eval-data',
    default: 0.1,
  },
  {
    name: 'eval-limit',
    type: 'int',
    description: 'evaluate on at most this many examples (0: all)',
    default: 0,
  },
  {
    name: 'task',
    type: 'string',
    description: 'task (default: causal_lm for text files, else classification)',
    choices: ['classification', 'regression', 'causal_lm'],
  },
  {
    name: 'metric',
    type: 'string',
    description: 'metric set for evaluation (cola = Matthews correlation)',
    choices: ['classification', 'binary', 'cola', 'regression', 'causal_lm'],
  },
  {
    name: 'text-column',
    type: 'string',
    description: 'column with the text (default: sentence/text/sentence1/…)',
  },
  { name: 'text-pair-column', type: 'string', description: 'column with the second sentence of a pair' },
  { name: 'label-column', type: 'string', description: 'column with the label (default: label/score)' },
  {
    name: 'label-names',
    type: 'list',
    description: 'label strings in id order (default: numeric ids, or sorted strings)',
  },
  {
    name: 'max-length',
    type: 'int',
    description: 'max tokens per example; block size for causal LM',
    default: 128,
  },
  {
    name: 'tokenizer',
    type: 'string',
    description:
      'tokenizer.json / tok*.bin / folder (default: the model folder, or tok*.bin beside a llama2.c file)',
  },
  {
    name: 'encoding',
    type: 'string',
    description: 'text encoding of --data/--eval-data (other than UTF-8 or with binary bytes is refused)',
    default: 'utf-8',
    choices: ENCODINGS,
  },
  {
    name: 'no-cache',
    type: 'boolean',
    description: 'do not cache tokenised data (the cache is .lowrank-cache/ beside the --output folder)',
    default: false,
  },
];

export const TRAIN_OPTIONS: OptionSpec[] = [
  {
    name: 'model',
    short: 'm',
    type: 'string',
    description: 'base model: Hugging Face folder or llama2.c .bin',
  },
  ...DATA_OPTIONS,
  {
    name: 'method',
    type: 'string',
    description: 'fine-tuning method (hyperlora: one hypernetwork over the --conditions sets)',
    default: 'adalora',
    // QLoRA is `--quantize nf4` with an adapter method
    choices: METHODS.filter((m) => m !== 'qlora'),
  },
  {
    name: 'conditions',
    type: 'list',
    description:
      'HyperLoRA: named text sets, name=path,name=path (replaces --data; each split by --eval-fraction)',
  },
  {
    name: 'hyper-hidden',
    type: 'int',
    description: 'HyperLoRA: hidden width of the hypernetwork (default 32)',
  },
  {
    name: 'hyper-embedding',
    type: 'int',
    description: 'HyperLoRA: size of the learned condition embedding (default 16)',
  },
  {
    name: 'quantize',
    type: 'string',
    description: 'QLoRA: keep the frozen base in 4 bits (nf4 or fp4); adapters stay fp32',
    choices: ['nf4', 'fp4'],
  },
  {
    name: 'double-quant',
    type: 'boolean',
    description: 'with --quantize: quantise the absmax constants again (the QLoRA recipe)',
    default: true,
  },
  {
    name: 'embedding-dtype',
    type: 'string',
    description:
      "with --quantize: storage of the frozen embeddings and a tied head; float16 halves them (as transformers' 4-bit load)",
    choices: ['float32', 'float16'],
  },
  {
    name: 'gradient-checkpointing',
    type: 'boolean',
    description: 'recompute each decoder layer in backward instead of keeping its activations (less memory)',
    default: false,
  },
  {
    name: 'chunked-loss',
    type: 'boolean',
    description: 'causal LM: compute the loss over the vocabulary a block of rows at a time (less memory)',
    default: false,
  },
  { name: 'r', type: 'int', description: 'LoRA/DoRA/HyperLoRA rank', default: 8 },
  { name: 'lora-alpha', type: 'number', description: 'scaling numerator (default: 2 × rank)' },
  { name: 'lora-dropout', type: 'number', description: 'dropout on the adapter input', default: 0 },
  {
    name: 'target-modules',
    type: 'list',
    description: 'module names to adapt (default: the architecture default, e.g. q_proj,v_proj)',
  },
  { name: 'init-r', type: 'int', description: 'AdaLoRA initial rank per matrix', default: 12 },
  { name: 'target-r', type: 'int', description: 'AdaLoRA average target rank', default: 8 },
  { name: 'tinit', type: 'int', description: 'AdaLoRA warm-up steps before pruning (default 10% of steps)' },
  {
    name: 'tfinal',
    type: 'int',
    description: 'AdaLoRA final steps with a frozen pattern (default 30% of steps)',
  },
  { name: 'delta-t', type: 'int', description: 'AdaLoRA steps between reallocations (default steps/100)' },
  {
    name: 'orth-reg-weight',
    type: 'number',
    description: 'AdaLoRA orthogonal regulariser weight',
    default: 0.5,
  },
  { name: 'lr', type: 'number', description: 'peak learning rate', default: 1e-3 },
  { name: 'weight-decay', type: 'number', description: 'AdamW decoupled weight decay', default: 0 },
  {
    name: 'schedule',
    type: 'string',
    description: 'learning-rate schedule',
    default: 'linear',
    choices: SCHEDULES,
  },
  { name: 'warmup-steps', type: 'int', description: 'linear warm-up steps', default: 0 },
  { name: 'max-steps', type: 'int', description: 'optimizer steps', default: 200 },
  { name: 'batch-size', short: 'b', type: 'int', description: 'examples per micro-batch', default: 8 },
  {
    name: 'eval-batch-size',
    type: 'int',
    description: 'examples per evaluation batch (default: batch size)',
  },
  { name: 'grad-accum', type: 'int', description: 'micro-batches per optimizer step', default: 1 },
  {
    name: 'max-grad-norm',
    type: 'number',
    description: 'global gradient-norm clipping (0: off)',
    default: 1,
  },
  {
    name: 'eval-every',
    type: 'int',
    description: 'evaluate every N steps (0: only at the end)',
    default: 50,
  },
  {
    name: 'save-every',
    type: 'int',
    description: 'resumable checkpoint every N steps (0: only at the end)',
    default: 50,
  },
  { name: 'keep-checkpoints', type: 'int', description: 'checkpoints kept on disk', default: 2 },
  {
    name: 'max-non-finite',
    type: 'int',
    description: 'stop after this many non-finite losses in a row',
    default: 5,
  },
  { name: 'seed', type: 'int', description: 'seed for init, dropout and shuffling', default: 42 },
  {
    name: 'backend',
    type: 'string',
    description: 'compute backend',
    default: 'auto',
    choices: ['auto', 'native', 'wasm', 'cpu'],
  },
  {
    name: 'output',
    short: 'o',
    type: 'string',
    description: 'run folder (config.json, log.jsonl, checkpoints/, adapter/, report.html)',
  },
  {
    name: 'resume',
    type: 'boolean',
    description: 'continue the run in --output from its newest checkpoint',
    default: false,
  },
  { name: 'no-report', type: 'boolean', description: 'skip the HTML report at the end', default: false },
  { name: 'quiet', short: 'q', type: 'boolean', description: 'no progress output', default: false },
];
