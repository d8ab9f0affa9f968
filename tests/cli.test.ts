import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { COMMANDS } from '../src/cli/commands/index.js';
import { cli, flags, tinyWorld, tmp } from '../src/testing/cli_runner.js';
import { recommend } from '../src/cli/commands/recommend.js';

const DATA = path.resolve('../shared/data');
const haveData = fs.existsSync(path.join(DATA, 'models/stories260K/stories260K.bin'));

test('every command has --help with examples (exit 0); bare lowrank is a usage error', async () => {
  for (const c of COMMANDS) {
    const r = await cli(c.spec.name, '--help');
    assert.equal(r.code, 0, c.spec.name);
    assert.match(r.out, new RegExp(`^lowrank ${c.spec.name}`));
    assert.match(r.out, /Examples:\n  lowrank |Examples:\n  npm run demo/, c.spec.name);
  }
  assert.equal((await cli()).code, 2);
  assert.equal((await cli('--help')).code, 0);
});

test('usage errors exit 2 with the nearest valid name', async () => {
  let r = await cli('trian');
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown command "trian"; did you mean "train"/);
  r = await cli('train', '--lerning-rate', '1');
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown option --lerning-rate .*did you mean --/);
  r = await cli('train', '--max-steps', 'ten');
  assert.equal(r.code, 2);
  assert.match(r.err, /--max-steps: expects a number \(got "ten"\)/);
  r = await cli('train', '--method', 'lorra');
  assert.match(r.err, /must be one of lora, adalora, dora, full, hyperlora .*did you mean "lora"/);
  r = await cli('inspect');
  assert.equal(r.code, 2);
  assert.match(r.err, /missing <adapter>/);
  r = await cli('train', '--data', 'x.tsv');
  assert.equal(r.code, 2);
  assert.match(r.err, /missing --model/);
  const dir = tmp();
  const cfg = path.join(dir, 'c.yaml');
  fs.writeFileSync(cfg, 'model: m\nlearning_rat: 0.1\n');
  r = await cli('train', '--config', cfg);
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown key "learning_rat"/);
  fs.writeFileSync(cfg, 'maxSteps: [1\n');
  assert.match((await cli('train', '--config', cfg)).err, /not valid YAML/);
  assert.match((await cli('train', '--config', path.join(dir, 'none.json'))).err, /cannot read/);
});

test('bad files exit 1 with file, line and reason', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  let r = await cli('inspect', dir);
  assert.equal(r.code, 1);
  assert.match(r.err, /is not a PEFT adapter folder \(no adapter_config\.json\)/);
  const bad = path.join(dir, 'bad.tsv');
  fs.writeFileSync(bad, 'sentence\tlabel\n1+1=2.\t1\n2+2=4.\n');
  r = await cli(
    'train',
    ...flags({ m: w.model, data: bad, backend: 'cpu', o: path.join(dir, 'run-bad'), q: true }),
  );
  assert.equal(r.code, 1);
  assert.match(r.err, /bad\.tsv:3: expected 2 fields/);
  r = await cli(
    'train',
    ...flags({
      m: path.join(dir, 'missing'),
      tokenizer: path.join(w.model, 'tok.bin'),
      data: w.train,
      backend: 'cpu',
      o: path.join(dir, 'run-missing'),
      q: true,
    }),
  );
  assert.equal(r.code, 1);
  assert.match(r.err, /missing/);
});

test('recommend: method per constraint, table and a ready command', async () => {
  assert.equal(
    recommend({
      memoryGb: 8,
      modelParams: 7e9,
      tasks: 1,
      dynamic: false,
      compute: 'medium',
      expressiveness: 'medium',
    }).method,
    'qlora',
  );
  assert.equal(
    recommend({ tasks: 4, dynamic: false, compute: 'medium', expressiveness: 'medium' }).method,
    'hyperlora',
  );
  assert.equal(
    recommend({ tasks: 1, dynamic: false, compute: 'high', expressiveness: 'high' }).method,
    'dora',
  );
  assert.equal(
    recommend({ tasks: 1, dynamic: false, compute: 'low', expressiveness: 'medium' }).method,
    'lora',
  );
  assert.equal(
    recommend({
      memoryGb: 64,
      modelParams: 1e8,
      tasks: 1,
      dynamic: false,
      compute: 'medium',
      expressiveness: 'medium',
    }).method,
    'adalora',
  );
  const r = await cli('recommend', '--memory-gb', '16', '--model-params', '7b');
  assert.equal(r.code, 0);
  assert.match(r.out, /Recommended: QLoRA/);
  assert.match(r.out, /AdaLoRA +same budget/);
  assert.match(r.out, /lowrank train --model .* --quantize nf4/);
  assert.equal((await cli('recommend', '--model-params', 'lots')).code, 2);
  const j = JSON.parse((await cli('recommend', '--tasks', '3', '--json')).out);
  assert.equal(j.method, 'hyperlora');
  // The suggested line is the CLI's real HyperLoRA route, not a pointer to the API.
  assert.match(j.command ?? j.train ?? JSON.stringify(j), /lowrank train .*--method hyperlora --conditions /);
});

test('info prints the backend in use', async () => {
  const r = await cli('info', '--backend', 'cpu', '--json');
  assert.equal(r.code, 0);
  const j = JSON.parse(r.out);
  assert.equal(j.backend, 'cpu');
  assert.equal(typeof j.addonLoaded, 'boolean');
});

test('train (AdaLoRA) → inspect → eval → generate --adapter → merge → report on a tiny model', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const out = path.join(dir, 'run');
  const cfg = path.join(dir, 'train.yaml');
  fs.writeFileSync(
    cfg,
    `model: ${w.model}\ndata: ${w.train}\nevalData: ${w.dev}\nmethod: adalora\ninit_r: 4\ntarget-r: 2\nmax-steps: 100\nbatch-size: 8\n`,
  );
  let r = await cli(
    'train',
    ...flags({
      config: cfg,
      'max-steps': 12,
      'eval-every': 6,
      'save-every': 4,
      lr: 0.01,
      backend: 'cpu',
      o: out,
      'target-modules': 'q_proj,v_proj,down_proj',
    }),
  );
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /steps: 12 /); // the flag won over the file's 100
  for (const f of [
    'config.json',
    'run.json',
    'log.jsonl',
    'adapter/adapter_config.json',
    'adapter/adapter_model.safetensors',
    'best/adapter_config.json',
    'report.html',
    'rank_heatmap.png',
  ])
    assert.ok(fs.existsSync(path.join(out, f)), f);
  assert.deepEqual(fs.readdirSync(path.join(out, 'checkpoints')), ['step-000008', 'step-000012']); // keep 2
  const logs = fs
    .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(logs.filter((l) => l.type === 'train').length, 12);
  assert.equal(logs.filter((l) => l.type === 'eval').length, 2);
  assert.ok(logs.every((l) => l.type !== 'train' || typeof l.budget === 'number'));
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'))['max-steps'], 12);
  assert.equal((await cli('train', '--config', cfg, '-o', out, '--backend', 'cpu')).code, 2); // refuses to overwrite a run

  r = await cli('inspect', path.join(out, 'adapter'));
  assert.equal(r.code, 0);
  assert.match(r.out, /method: ADALORA/);
  assert.match(r.out, /model\.layers\.1\.mlp\.down_proj/);
  assert.match(r.out, /rank pattern \(layers × module type\)/);

  r = await cli(
    'eval',
    ...flags({ m: w.model, adapter: path.join(out, 'adapter'), data: w.dev, backend: 'cpu', json: true }),
  );
  assert.equal(r.code, 0, r.err);
  const ev = JSON.parse(r.out);
  assert.ok(ev.metrics.accuracy >= 0 && ev.metrics.accuracy <= 1 && Number.isFinite(ev.loss), r.out);

  const lm = path.join(dir, 'lm');
  r = await cli(
    'train',
    ...flags({
      m: w.model,
      data: w.text,
      method: 'lora',
      '--r': 2,
      'max-length': 32,
      'max-steps': 4,
      backend: 'cpu',
      o: lm,
      q: true,
      'no-report': true,
    }),
  );
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /perplexity/);
  r = await cli(
    'generate',
    ...flags({ m: w.model, adapter: path.join(lm, 'adapter'), p: '1+2=', n: 5, backend: 'cpu' }),
  );
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.startsWith('1+2='), r.out);
  const merged = path.join(dir, 'merged');
  r = await cli(
    'merge',
    ...flags({ m: w.model, adapter: path.join(lm, 'adapter'), o: merged, backend: 'cpu' }),
  );
  assert.equal(r.code, 0, r.err);
  assert.ok(
    fs.existsSync(path.join(merged, 'model.safetensors')) && fs.existsSync(path.join(merged, 'tok.bin')),
  );
  // the merged folder is a model of its own: same greedy continuation as base + adapter
  const a = await cli('generate', '-m', merged, '-p', '1+2=', '-n', '5', '--backend', 'cpu');
  assert.equal(
    a.out,
    r.out === ''
      ? a.out
      : (
          await cli(
            'generate',
            ...flags({ m: w.model, adapter: path.join(lm, 'adapter'), p: '1+2=', n: 5, backend: 'cpu' }),
          )
        ).out,
  );
  r = await cli('report', lm);
  assert.equal(r.code, 0, r.err);
  assert.ok(fs.existsSync(path.join(lm, 'report.html')));
  assert.equal((await cli('report', dir)).code, 1);
});

test(
  'convert llama2.c → Hugging Face folder',
  { skip: haveData ? false : 'needs ../shared/data' },
  async () => {
    const out = path.join(tmp(), 'hf');
    const r = await cli('convert', path.join(DATA, 'models/stories260K/stories260K.bin'), '-o', out);
    assert.equal(r.code, 0, r.err);
    for (const f of ['config.json', 'model.safetensors', 'tok512.bin'])
      assert.ok(fs.existsSync(path.join(out, f)), f);
    assert.equal((await cli('convert', path.join(DATA, 'README.md'), '-o', path.join(out, 'x'))).code, 1);
  },
);

test('train --quantize nf4 (QLoRA): 4-bit frozen base, fp32 LoRA adapter; refused for full fine-tuning', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const out = path.join(dir, 'qlora');
  const common = ['--model', w.model, '--data', w.train, '--max-steps', '3', '--backend', 'cpu'];
  const r = await cli('train', ...common, '--method', 'lora', '--quantize', 'nf4', '-o', out, '--quiet');
  assert.equal(r.code, 0, r.err);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter/adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  const full = await cli(
    'train',
    ...flags({ method: 'full', quantize: 'nf4', o: path.join(dir, 'f') }),
    ...common,
  );
  assert.equal(full.code, 2);
  assert.match(full.err, /--quantize: a 4-bit base is frozen/);
});

test('train/eval classify with a decoder whose config has no pad_token_id (llama2.c style): the tokenizer pad id is used', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const cfgPath = path.join(w.model, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  delete cfg.pad_token_id;
  fs.writeFileSync(cfgPath, JSON.stringify(cfg));
  const out = path.join(dir, 'run');
  const common = ['--data', w.train, '--batch-size', '4', '--backend', 'cpu'];
  const r = await cli(
    'train',
    ...flags({ m: w.model, method: 'lora', 'max-steps': 2, o: out, quiet: true }),
    ...common,
  );
  assert.equal(r.code, 0, r.err);
  const e = await cli('eval', '-m', w.model, '--adapter', path.join(out, 'adapter'), ...common.slice(0, 4));
  assert.equal(e.code, 0, e.err);
});

test(
  'generate --steps 256 on stories260K prints the oracle greedy text exactly (llama2.c counts the prompt in its steps)',
  { skip: haveData ? false : 'needs ../shared/data' },
  async () => {
    const dir = path.join(DATA, 'models/stories260K');
    const r = await cli(
      'generate',
      ...flags({
        model: path.join(dir, 'stories260K.bin'),
        tokenizer: path.join(dir, 'tok512.bin'),
        prompt: 'Once upon a time',
        steps: 256,
        temperature: 0,
      }),
    );
    assert.equal(r.code, 0, r.err);
    const oracle = JSON.parse(fs.readFileSync(path.join(dir, 'oracle.json'), 'utf8'));
    assert.equal(r.out.replace(/\n$/, ''), oracle.greedy_256_steps_text);
    assert.equal(
      (
        await cli(
          'generate',
          ...flags({ model: path.join(dir, 'stories260K.bin'), steps: 2, p: 'Once upon a time' }),
        )
      ).code,
      2,
    );
  },
);

test('train --gradient-checkpointing --chunked-loss: the same causal-LM train and eval losses as the plain path', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  // f32 summation order differs (the loss is summed a block of rows at a time); values are O(1)
  const MEMORY_SAVER_RTOL = 1e-5;
  const run = async (name: string, ...extra: string[]) => {
    const out = path.join(dir, name);
    const r = await cli(
      'train',
      ...flags({ m: w.model, data: w.text, method: 'lora', 'lora-dropout': 0.1, 'max-steps': 4 }),
      ...flags({ 'batch-size': 2, 'max-length': 32, 'eval-every': 2, backend: 'cpu', o: out, q: true }),
      ...extra,
    );
    assert.equal(r.code, 0, r.err);
    const losses = fs
      .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { loss?: number })
      .filter((l) => typeof l.loss === 'number')
      .map((l) => l.loss!);
    return { out, losses };
  };
  const plain = await run('plain');
  const saver = await run('saver', '--gradient-checkpointing', '--chunked-loss');
  assert.equal(saver.losses.length, plain.losses.length);
  assert.ok(plain.losses.length >= 4, 'train and eval losses are logged');
  plain.losses.forEach((l, i) =>
    assert.ok(
      Math.abs(saver.losses[i]! - l) <= MEMORY_SAVER_RTOL * Math.abs(l),
      `loss ${i}: ${saver.losses[i]} vs ${l}`,
    ),
  );
  const cfg = JSON.parse(fs.readFileSync(path.join(saver.out, 'config.json'), 'utf8'));
  assert.ok(JSON.stringify(cfg).includes('gradient'), 'the run folder records the memory options');
});
