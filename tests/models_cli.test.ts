/**
 * The CLI on the issue-15 architectures. `lowrank train` / `eval` / `merge` / `generate` on a tiny
 * seeded folder of each (with the demo's character tokenizer), and `lowrank generate` on each decoder folder of ../shared/fixtures/hf reproduces transformers'
 * greedy continuation, for the base model and with the PEFT LoRA adapter (merged for decoding by the
 * CLI). The fixtures have no tokenizer, so a word-level tokenizer.json that names every id (`w<id>`) is
 * written beside a copy of the weights. Skips when ../shared is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli, flags, tinyWorld, tmp } from '../src/testing/cli_runner.js';
import { modelFromConfig } from '../src/models/from_config.js';
import { saveModel } from '../src/models/load.js';
import { manualSeed } from '../src/nn/init.js';
import { TINY_DEBERTA, TINY_DECODERS } from '../src/testing/tiny_decoders.js';
import { addedToken } from '../src/io/tokenizer_convert.js';

const HF = fileURLToPath(new URL('../../shared/fixtures/hf', import.meta.url));
const skip = fs.existsSync(path.join(HF, 'index.json')) ? false : 'needs ../shared/fixtures/hf';

/** Ids 0, 1, 2 are pad, bos, eos as in the fixtures' configs; every other id is the word `w<id>`. */
function wordTokenizer(vocabSize: number): string {
  const vocab: Record<string, number> = { '<pad>': 0, '<s>': 1, '</s>': 2 };
  for (let i = 3; i < vocabSize; i++) vocab[`w${i}`] = i;
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['<pad>', '<s>', '</s>'].map(addedToken),
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

test('lowrank train / eval / merge on tiny Qwen2, Mistral, Gemma, Gemma 2, Phi-3 and DeBERTa-v2 folders', async () => {
  const dir = tmp();
  try {
    const w = await tinyWorld(dir); // a tiny Llama with the demo tokenizer, plus task and text data
    const llamaConfig = JSON.parse(fs.readFileSync(path.join(w.model, 'config.json'), 'utf8'));
    const tokBin = fs.readFileSync(path.join(w.model, 'tok.bin'));
    const { id2label: _, ...deberta } = TINY_DEBERTA; // the data decides the labels (a fresh classifier)
    const types = { ...TINY_DECODERS, 'deberta-v2': deberta };
    for (const [type, tiny] of Object.entries(types)) {
      const model = path.join(dir, type);
      manualSeed(1);
      const m = modelFromConfig({ ...tiny, vocab_size: llamaConfig.vocab_size, max_position_embeddings: 64 });
      // a pre-trained DeBERTa checkpoint has no head: save only the encoder, as the hub folders are
      const state = [...m.stateDict()].filter(([k]) => !/^(classifier|pooler)\./.test(k));
      if (type === 'deberta-v2') {
        const { writeHFFolder } = await import('../src/io/hf_folder.js');
        await writeHFFolder(model, { ...m.config, architectures: ['DebertaV2Model'] }, new Map(state), {
          tokenizerFiles: { 'tok.bin': tokBin },
        });
      } else await saveModel(m, model, { tokenizerFiles: { 'tok.bin': tokBin } });
      m.dispose();
      const run = path.join(dir, `run-${type}`);
      let r = await cli(
        'train',
        ...flags({
          m: model,
          data: w.train,
          method: 'lora',
          '--r': 2,
          'max-steps': 3,
          'batch-size': 8,
          'max-length': 64,
          backend: 'cpu',
          o: run,
          q: true,
          'no-report': true,
        }),
      );
      assert.equal(r.code, 0, `${type} train: ${r.err}`);
      r = await cli(
        'eval',
        '-m',
        model,
        '--adapter',
        path.join(run, 'adapter'),
        '--data',
        w.dev,
        '--backend',
        'cpu',
        '--json',
      );
      assert.equal(r.code, 0, `${type} eval: ${r.err}`);
      const ev = JSON.parse(r.out);
      assert.ok(Number.isFinite(ev.loss) && ev.metrics.accuracy >= 0, `${type}: ${r.out}`);
      const merged = path.join(dir, `merged-${type}`);
      r = await cli(
        'merge',
        '-m',
        model,
        '--adapter',
        path.join(run, 'adapter'),
        '--task',
        'classification',
        '--num-labels',
        String(ev.numLabels ?? 2),
        '-o',
        merged,
        '--backend',
        'cpu',
      );
      assert.equal(r.code, 0, `${type} merge: ${r.err}`);
      const config = JSON.parse(fs.readFileSync(path.join(merged, 'config.json'), 'utf8'));
      assert.equal(config.model_type, type);
      // the merged folder evaluates like base + adapter
      const again = await cli('eval', '-m', merged, '--data', w.dev, '--backend', 'cpu', '--json');
      assert.equal(again.code, 0, again.err);
      assert.ok(Math.abs(JSON.parse(again.out).loss - ev.loss) < 1e-4, `${type}: merged eval differs`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
