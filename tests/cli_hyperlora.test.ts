/**
 * The HyperLoRA route of the CLI on a tiny Llama: `train --method hyperlora --conditions a=…,b=…`
 * → hypernetwork folder; `materialize` → PEFT LoRA folder; `eval` / `generate --condition`; and the
 * usage errors (exit 2, naming the flag).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../src/tensor/tf.js';
import { cli, flags, tinyWorld, tmp } from '../src/testing/cli_runner.js';

/** Two text sets of one alphabet with different statistics: the corpus, and each line reversed. */
function twoSets(dir: string, text: string): { a: string; b: string } {
  const a = path.join(dir, 'a.txt');
  const b = path.join(dir, 'b.txt');
  const src = fs.readFileSync(text, 'utf8');
  fs.writeFileSync(a, src);
  fs.writeFileSync(
    b,
    src
      .split('\n')
      .map((l) => [...l].reverse().join(''))
      .join('\n'),
  );
  return { a, b };
}

const lossOf = (json: string) => (JSON.parse(json) as { loss: number }).loss;

test('train --method hyperlora → hypernetwork folder; materialize; eval/generate --condition agree with it', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const { a, b } = twoSets(dir, w.text);
  const run = path.join(dir, 'run');
  const n0 = tf.memory().numTensors;
  let r = await cli(
    'train',
    ...flags({ model: w.model, method: 'hyperlora', conditions: `plain=${a},reversed=${b}` }),
    ...flags({ 'target-modules': 'q_proj,v_proj', '--r': 2, 'hyper-hidden': 8, 'max-length': 32 }),
    ...flags({ 'max-steps': 6, 'batch-size': 4, lr: 0.01, 'eval-limit': 8, backend: 'cpu' }),
    ...flags({ o: run, quiet: true }),
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(tf.memory().numTensors, n0, 'train leaves no tensors behind');
  for (const f of ['config.json', 'log.jsonl', 'report.html', 'adapter/hyperlora_config.json'])
    assert.ok(fs.existsSync(path.join(run, f)), f);
  assert.ok(fs.existsSync(path.join(run, 'adapter/hyperlora_model.safetensors')));
  const saved = JSON.parse(fs.readFileSync(path.join(run, 'adapter/hyperlora_config.json'), 'utf8'));
  assert.deepEqual(saved.condition_names, ['plain', 'reversed']);
  assert.equal(saved.hidden_dim, 8);
  const printed = Object.fromEntries(
    [...r.out.matchAll(/eval loss \[(\w+)\]: ([\d.]+)/g)].map((m) => [m[1]!, Number(m[2])]),
  );
  assert.deepEqual(Object.keys(printed), ['plain', 'reversed'], r.out);
  assert.match(r.out, /hypernetwork: .*lowrank materialize --adapter/);

  // eval --condition on the same held-out split (same --seed, --eval-fraction) = train's per-condition loss
  const evalArgs = (data: string) => [
    'eval',
    ...flags({
      model: w.model,
      data,
      heldout: true,
      'max-length': 32,
      'eval-limit': 8,
      backend: 'cpu',
      json: true,
    }),
  ];
  const hyperDir = path.join(run, 'adapter');
  r = await cli(...evalArgs(b), '--adapter', hyperDir, '--condition', 'reversed');
  assert.equal(r.code, 0, r.err);
  const evalReversed = lossOf(r.out);
  assert.ok(Math.abs(evalReversed - printed.reversed!) < 1e-4, `${evalReversed} vs ${printed.reversed}`);

  // materialize → plain PEFT LoRA folder with the same outputs as the hypernetwork for its condition
  const mat = path.join(dir, 'reversed-lora');
  r = await cli(
    'materialize',
    ...flags({ m: w.model, adapter: hyperDir, condition: 'reversed', o: mat, backend: 'cpu' }),
  );
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /condition "reversed" \(id 1\) written/);
  const cfg = JSON.parse(fs.readFileSync(path.join(mat, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 2);
  assert.ok(fs.existsSync(path.join(mat, 'adapter_model.safetensors')));
  r = await cli(...evalArgs(b), '--adapter', mat);
  assert.equal(r.code, 0, r.err);
  assert.ok(Math.abs(lossOf(r.out) - evalReversed) < 1e-5, 'materialised = hypernetwork');
  // the other condition is another adapter (id 0 through its number works too)
  r = await cli(...evalArgs(b), '--adapter', hyperDir, '--condition', '0');
  assert.equal(r.code, 0, r.err);
  assert.notEqual(lossOf(r.out), evalReversed);

  r = await cli(
    'generate',
    ...flags({ m: w.model, adapter: hyperDir, condition: 'plain', p: '1+', n: 4, backend: 'cpu' }),
  );
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^1\+/);
  assert.match(r.err, /HyperLoRA condition plain as LORA/);

  // usage errors name the flag (exit 2)
  const bad = async (re: RegExp, ...argv: string[]) => {
    const x = await cli(...argv);
    assert.equal(x.code, 2, `${argv.join(' ')}: ${x.err}`);
    assert.match(x.err, re);
  };
  await bad(/--condition: is required: .*pick one of plain, reversed/, ...evalArgs(b), '--adapter', hyperDir);
  await bad(
    /--condition: .*"nope".*use one of plain, reversed/,
    ...evalArgs(b),
    ...flags({ adapter: hyperDir, condition: 'nope' }),
  );
  await bad(
    /--condition: only with --adapter <a HyperLoRA/,
    ...evalArgs(b),
    ...flags({ adapter: mat, condition: 'plain' }),
  );
  await bad(
    /--output: .* not empty/,
    'materialize',
    ...flags({ m: w.model, adapter: hyperDir, condition: 'plain', o: mat }),
  );
  await bad(
    /--adapter: .*no hyperlora_config.json/,
    'materialize',
    ...flags({ m: w.model, adapter: mat, condition: 'plain', o: path.join(dir, 'x') }),
  );
  await bad(
    /--condition: is required/,
    'materialize',
    ...flags({ m: w.model, adapter: hyperDir, o: path.join(dir, 'y') }),
  );
  await bad(
    /--condition: is required/,
    'merge',
    ...flags({ m: w.model, adapter: hyperDir, o: path.join(dir, 'z') }),
  );
  fs.rmSync(dir, { recursive: true, force: true });
});

test('train --method hyperlora: bad --conditions and conflicting flags are usage errors naming the flag', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const { a, b } = twoSets(dir, w.text);
  let k = 0;
  const train = async (re: RegExp, extra: Record<string, string>) => {
    const r = await cli(
      'train',
      ...flags({ model: w.model, backend: 'cpu', o: path.join(dir, `r${k++}`), ...extra }),
    );
    assert.equal(r.code, 2, `${JSON.stringify(extra)}: ${r.err}`);
    assert.match(r.err, re);
  };
  await train(/--conditions: HyperLoRA needs at least two training sets/, { method: 'hyperlora' });
  await train(/--conditions: one condition is plain LoRA/, { method: 'hyperlora', conditions: `x=${a}` });
  await train(/--conditions: each entry must be name=path \(got "x"\)/, {
    method: 'hyperlora',
    conditions: `x,y=${b}`,
  });
  await train(/--conditions: a condition name appears twice \(got "x"\)/, {
    method: 'hyperlora',
    conditions: `x=${a},x=${b}`,
  });
  await train(/--conditions: only for --method hyperlora/, {
    method: 'lora',
    data: a,
    conditions: `x=${a},y=${b}`,
  });
  await train(/--data: --method hyperlora reads its training sets from --conditions/, {
    method: 'hyperlora',
    data: a,
    conditions: `x=${a},y=${b}`,
  });
  await train(/--quantize: .*hyperlora is not supported yet/, {
    method: 'hyperlora',
    quantize: 'nf4',
    conditions: `x=${a},y=${b}`,
  });
  await train(/--conditions y=.*causal LMs/, { method: 'hyperlora', conditions: `x=${a},y=${w.train}` });
  await train(/--hyper-hidden: must be >= 1/, {
    method: 'hyperlora',
    conditions: `x=${a},y=${b}`,
    'hyper-hidden': '0',
  });
  const help = await cli('train', '--help');
  assert.match(help.out, /--conditions <a,b> +HyperLoRA: named text sets, name=path,name=path/);
  assert.match(help.out, /one of: lora, adalora, dora, full, hyperlora/);
  const mh = await cli('materialize', '--help');
  assert.equal(mh.code, 0);
  assert.match(mh.out, /--condition <string> +the condition to export/);
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Pinned before issue 14 moved the condition from token-type ids (offset by CONDITION_STRIDE, read
 * back with dataSync) to `Example.condition` → `ModelInputs.condition`: the same run on cpu gives the
 * same losses bit for bit and the same hypernetwork and materialised PEFT files byte for byte.
 */
const PINNED = {
  log: [
    ['train', 1, 14.860494613647461],
    ['train', 2, 14.97501277923584],
    ['train', 3, 14.675253868103027],
    ['eval', 3, 14.00995785849435],
    ['train', 4, 13.912899017333984],
    ['train', 5, 13.196025848388672],
    ['train', 6, 13.680415153503418],
    ['eval', 6, 12.97092274257115],
  ],
  hypernetwork: 'd59d5cf10a282fb7',
  materialised: { plain: 'dfc6909a79b482cb', reversed: '48bbb7fb17a99d3a' },
  materialisedConfig: 'be9fa41f3f05463d',
};

test('train --method hyperlora on cpu: the losses and files of the run before the condition became data', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const { a, b } = twoSets(dir, w.text);
  const run = path.join(dir, 'run');
  const r = await cli(
    'train',
    ...['--model', w.model, '--method', 'hyperlora', '--conditions', `plain=${a},reversed=${b}`],
    ...['--target-modules', 'q_proj,v_proj', '--r', '2', '--hyper-hidden', '8', '--max-length', '32'],
    ...['--max-steps', '6', '--batch-size', '4', '--lr', '0.01', '--eval-limit', '8', '--backend', 'cpu'],
    ...['-o', run, '--quiet', '--eval-every', '3'],
  );
  assert.equal(r.code, 0, r.err);
  const log = fs
    .readFileSync(path.join(run, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; step: number; loss: number })
    .filter((l) => l.type !== 'meta')
    .map((l) => [l.type, l.step, l.loss]);
  assert.deepEqual(log, PINNED.log);
  const sha = (f: string) =>
    crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex').slice(0, 16);
  assert.equal(sha(path.join(run, 'adapter/hyperlora_model.safetensors')), PINNED.hypernetwork);
  for (const c of ['plain', 'reversed'] as const) {
    const mat = path.join(dir, `m-${c}`);
    const m = await cli(
      'materialize',
      ...[
        '-m',
        w.model,
        '--adapter',
        path.join(run, 'adapter'),
        '--condition',
        c,
        '-o',
        mat,
        '--backend',
        'cpu',
      ],
    );
    assert.equal(m.code, 0, m.err);
    assert.equal(sha(path.join(mat, 'adapter_model.safetensors')), PINNED.materialised[c], c);
    assert.equal(sha(path.join(mat, 'adapter_config.json')), PINNED.materialisedConfig);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
