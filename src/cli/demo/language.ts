/**
 * The demo's synthetic world, made by the project itself: a character-level llama2.c tokenizer file
 * and an arithmetic language ("7+5=12.") for pretraining, plus a downstream task (does a+b carry?) on (a, b) pairs never seen in fine-tuning.
 */
import { Rng } from '../../util/rng.js';

/** The characters of the language (every one is a single token). */
export const ALPHABET = ' 0123456789+-=.';

/**
 * A llama2.c tokenizer file (run.c format: int32 max_token_length, then per token float32 score, int32
 * length, bytes): `<unk>`, BOS, EOS, the 256 byte-fallback tokens, then one token per character.
 * @example fs.writeFileSync('tok.bin', charTokenizerFile(ALPHABET));
 */
export function charTokenizerFile(alphabet: string): Uint8Array {
  const enc = new TextEncoder();
  const pieces: Uint8Array[] = [enc.encode('<unk>'), enc.encode('\n<s>\n'), enc.encode('\n</s>\n')];
  for (let b = 0; b < 256; b++)
    pieces.push(enc.encode(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
  for (const ch of alphabet) pieces.push(enc.encode(ch));
  const maxLen = Math.max(...pieces.map((p) => p.length));
  const size = 4 + pieces.reduce((s, p) => s + 8 + p.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setInt32(0, maxLen, true);
  let pos = 4;
  pieces.forEach((p, i) => {
    view.setFloat32(pos, i >= 259 ? 0 : -1e6, true);
    view.setInt32(pos + 4, p.length, true);
    out.set(p, pos + 8);
    pos += 8 + p.length;
  });
  return out;
}

function equation(rng: Rng, correct: boolean): string {
  const a = rng.int(10);
  const b = rng.int(10);
  const plus = rng.uniform() < 0.5 || a < b;
  const c = plus ? a + b : a - b;
  let shown = c;
  if (!correct) {
    const delta = (rng.int(3) + 1) * (rng.uniform() < 0.5 ? -1 : 1);
    shown = c + delta < 0 ? c - delta : c + delta;
  }
  return `${a}${plus ? '+' : '-'}${b}=${shown}.`;
}

/**
 * Pretraining text: paragraphs of correct equations separated by blank lines.
 * @example pretrainCorpus(200, 1).slice(0, 20); // '3+4=7. 9-2=7. 5+5=10.'
 */
export function pretrainCorpus(paragraphs: number, seed: number): string {
  const rng = new Rng(seed);
  const out: string[] = [];
  for (let p = 0; p < paragraphs; p++)
    out.push(Array.from({ length: 8 }, () => equation(rng, true)).join(' '));
  return out.join('\n\n') + '\n';
}

/** Seed of the fixed split of the 100 (a, b) pairs into 70 training and 30 held-out pairs. */
const PAIR_SPLIT_SEED = 12345;
const TRAIN_PAIRS = 70;

/**
 * The downstream task as a GLUE-style TSV (`sentence\tlabel`): does `a+b=` carry into two digits
 * (label 1 when a + b ≥ 10)? The (a, b) pairs of `dev` never occur in `train`, so a model can only
 * score on dev by reading out the arithmetic it learned in pretraining (it must know the carry to
 * predict the character after "="), which is what the adapters have to learn to do.
 * @example equationTsv('train', 2000, 2); // 'sentence\tlabel\n7+5=\t1\n...'
 */
export function equationTsv(part: 'train' | 'dev', rows: number, seed: number): string {
  const pairs = new Rng(PAIR_SPLIT_SEED).permutation(100);
  const mine = part === 'train' ? pairs.slice(0, TRAIN_PAIRS) : pairs.slice(TRAIN_PAIRS);
  const rng = new Rng(seed);
  const lines = ['sentence\tlabel'];
  for (let i = 0; i < rows; i++) {
    const p = part === 'dev' ? mine[i % mine.length]! : mine[rng.int(mine.length)]!;
    const a = Math.floor(p / 10);
    const b = p % 10;
    lines.push(`${a}+${b}=\t${a + b >= 10 ? 1 : 0}`);
  }
  return lines.join('\n') + '\n';
}

/** Llama config of the demo's base model (tiny: trains in seconds on 2 cores). */
export function demoModelConfig(vocabSize: number): Record<string, unknown> {
  return {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: vocabSize,
    hidden_size: 48,
    intermediate_size: 96,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    max_position_embeddings: 128,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 2,
    _name_or_path: 'lowrank-demo-arith',
  };
}
