/**
 * `lowrank generate` on each issue-15 decoder folder of ../shared/fixtures/hf reproduces transformers'
 * greedy continuation, for the base model and with the PEFT LoRA adapter (merged for decoding by the
 * CLI). The fixtures have no tokenizer, so a word-level tokenizer.json that names every id (`w<id>`) is
 * written beside a copy of the weights. Skips when ../shared is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli, tmp } from './cli_helpers.js';

const HF = fileURLToPath(new URL('../../shared/fixtures/hf', import.meta.url));
const skip = fs.existsSync(path.join(HF, 'index.json')) ? false : 'needs ../shared/fixtures/hf';

/** Ids 0, 1, 2 are pad, bos, eos as in the fixtures' configs; every other id is the word `w<id>`. */
function wordTokenizer(vocabSize: number): string {
  const vocab: Record<string, number> = { '<pad>': 0, '<s>': 1, '</s>': 2 };
  for (let i = 3; i < vocabSize; i++) vocab[`w${i}`] = i;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<pad>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<pad>' },
  });
}

for (const name of ['qwen2', 'mistral', 'gemma', 'gemma2', 'phi3']) {
  test(
    `lowrank generate on ${name} equals the transformers greedy continuation (base and LoRA)`,
    { skip },
    async () => {
      const dir = tmp();
      try {
        const model = path.join(dir, 'model');
        fs.mkdirSync(model);
        for (const f of fs.readdirSync(path.join(HF, name, 'base')))
          fs.copyFileSync(path.join(HF, name, 'base', f), path.join(model, f));
        fs.writeFileSync(path.join(model, 'tokenizer.json'), wordTokenizer(1000));
        const probe = JSON.parse(fs.readFileSync(path.join(HF, name, 'probe.json'), 'utf8'));
        const prompt: number[] = probe.generate.input_ids[0];
        const text = (ids: number[]) => ids.map((i) => `w${i}`).join(' ');
        const base = await cli('generate', '-m', model, '-p', text(prompt), '-n', '8');
        assert.equal(base.code, 0, base.err);
        assert.equal(base.out.trim(), text([...prompt, ...probe.generate.new_tokens]));
        const lora = JSON.parse(fs.readFileSync(path.join(HF, name, 'peft', 'lora', 'logits.json'), 'utf8'));
        const adapter = path.join(HF, name, 'peft', 'lora');
        const withLora = await cli(
          'generate',
          '-m',
          model,
          '--adapter',
          adapter,
          '-p',
          text(prompt),
          '-n',
          '8',
        );
        assert.equal(withLora.code, 0, withLora.err);
        const want: number[] = lora.generate_new_tokens.filter((id: number) => id !== 2); // eos is not printed
        assert.equal(withLora.out.trim(), text([...prompt, ...want]));
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
}
