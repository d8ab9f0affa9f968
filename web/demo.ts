/**
 * The page's built-in demo model: a tiny Llama (causal LM) or BERT (classification) created from a
 * fixed config with seeded initial weights, and a small WordPiece `tokenizer.json` over the words of
 * the sample data (unknown words fall back to letters). Pure library code (no DOM, no Node API), so
 * the Node e2e test rebuilds the very same base model to check the page's adapter outputs.
 */
import { HFTokenizer } from '../src/io/tokenizer.js';
import { addedToken, wordPieceTokenizerJson } from '../src/io/tokenizer_convert.js';
import type { HFConfig, PreTrainedModel } from '../src/models/base.js';
import { modelFromConfig } from '../src/models/from_config.js';
import { manualSeed } from '../src/nn/init.js';
import type { DemoArch } from './demo_runs.js';

export type { DemoArch };
export { DEMO_RUNS, type DemoRun } from './demo_runs.js';

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '<s>', '</s>'];
const WORDS = (
  'the a my cat dog bird friend king child sat on looked at ran to found liked mat tree house river red ball ' +
  'what good great lovely happy wonderful fun bad awful sad boring terrible dull film day meal book trip song ' +
  'once upon time there was is and it he she they very not'
).split(' ');
const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');
const PUNCT = ['.', ',', '!', '?', "'"];

/** The demo vocabulary in id order. */
export function demoVocab(): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const t of [...SPECIALS, ...PUNCT, ...LETTERS, ...LETTERS.map((l) => `##${l}`), ...WORDS]) {
    if (!seen.has(t)) {
      seen.add(t);
      out.push(t);
    }
  }
  return out;
}

/** `tokenizer.json` of the demo: lower-casing BERT normaliser, WordPiece, `[CLS] … [SEP]` only for BERT. */
export function demoTokenizerJson(arch: DemoArch): Record<string, unknown> {
  const vocab = demoVocab();
  const id = (t: string) => vocab.indexOf(t);
  const postProcessor =
    arch === 'bert'
      ? {
          type: 'BertProcessing',
          sep: ['[SEP]', id('[SEP]')],
          cls: ['[CLS]', id('[CLS]')],
        }
      : null;
  return wordPieceTokenizerJson(
    Object.fromEntries(vocab.map((t, i) => [t, i])),
    SPECIALS.map((content) => addedToken(content, id(content))),
    postProcessor,
  );
}

/** `tokenizer_config.json` of the demo (names the special tokens the tokenizer loader looks up). */
export function demoTokenizerConfig(arch: DemoArch): Record<string, unknown> {
  return arch === 'bert'
    ? { pad_token: '[PAD]', unk_token: '[UNK]', cls_token: '[CLS]', sep_token: '[SEP]' }
    : { pad_token: '[PAD]', unk_token: '[UNK]', bos_token: '<s>', eos_token: '</s>' };
}

/** The demo model's Hugging Face `config.json`. */
export function demoConfig(arch: DemoArch): HFConfig {
  const vocabSize = demoVocab().length;
  if (arch === 'llama') {
    return {
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      vocab_size: vocabSize,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 3,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      max_position_embeddings: 128,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
      bos_token_id: demoVocab().indexOf('<s>'),
      eos_token_id: demoVocab().indexOf('</s>'),
      pad_token_id: 0,
    };
  }
  return {
    model_type: 'bert',
    architectures: ['BertForSequenceClassification'],
    vocab_size: vocabSize,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    max_position_embeddings: 128,
    type_vocab_size: 2,
    layer_norm_eps: 1e-12,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
    pad_token_id: 0,
    // The sample data's classes (web/samples.ts), in the order the data reader assigns ids (sorted).
    id2label: { 0: 'negative', 1: 'positive' },
    label2id: { negative: 0, positive: 1 },
  };
}

/** The head to build: the demo's own (Llama: causal LM, BERT: 2 classes) unless given. */
export interface DemoHead {
  task?: 'CAUSAL_LM' | 'SEQ_CLS';
  numLabels?: number;
}

export interface Demo {
  model: PreTrainedModel;
  tokenizer: HFTokenizer;
  config: HFConfig;
}

/**
 * Builds the demo model with weights seeded by `seed` (same seed → same weights on every backend,
 * since the initial values are drawn in JavaScript before they become tensors); `head` picks another
 * head (e.g. a Llama classifier).
 *
 * @example
 * const { model, tokenizer } = buildDemo('llama', 0);
 */
export function buildDemo(arch: DemoArch, seed: number, head: DemoHead = {}): Demo {
  manualSeed(seed);
  const config = demoConfig(arch);
  const task = head.task ?? (arch === 'bert' ? 'SEQ_CLS' : 'CAUSAL_LM');
  const model = modelFromConfig(
    config,
    task === 'SEQ_CLS' ? { task, numLabels: head.numLabels ?? 2 } : { task },
  );
  const tokenizer = HFTokenizer.fromJson(
    demoTokenizerJson(arch),
    demoTokenizerConfig(arch),
    `demo-${arch}/tokenizer.json`,
  );
  return { model, tokenizer, config: model.config };
}
