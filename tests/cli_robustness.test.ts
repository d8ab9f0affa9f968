/**
 * The CLI robustness table of issue 13: each hostile use → the message and exit code, with nothing the
 * user had destroyed and nothing left behind (every case snapshots the folder tree and file bytes
 * before and after).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import {
  ADALORA_FLAGS,
  CLI_ENTRY,
  cli,
  flags,
  tinyWorld,
  tmp,
  worldFlags,
} from '../src/testing/cli_runner.js';

/** Every file under `dir` (relative path → bytes as hex digest-free base64), folders included. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n);
      const rel = path.relative(dir, p);
      if (fs.statSync(p).isDirectory()) {
        out.set(rel + '/', '');
        walk(p);
      } else out.set(rel, fs.readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return out;
}

function assertUnchanged(before: Map<string, string>, dir: string, what: string): void {
  const after = snapshot(dir);
  const added = [...after.keys()].filter((k) => !before.has(k));
  const gone = [...before.keys()].filter((k) => !after.has(k));
  const changed = [...before.keys()].filter((k) => after.has(k) && after.get(k) !== before.get(k));
  assert.deepEqual({ added, gone, changed }, { added: [], gone: [], changed: [] }, what);
}

const TRAIN_TINY = ['--max-steps', '2', '--batch-size', '8', '--backend', 'cpu', '-q', '--no-report'];

test('robustness table: usage and range errors exit 2 naming the flag; nothing is written', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const out = path.join(dir, 'run');
  const base = ['train', '-m', w.model, '--data', w.train, '--eval-data', w.dev, '-o', out, ...TRAIN_TINY];
  const cases: [string[], RegExp][] = [
    [['--lr', '-1'], /--lr: must be > 0 \(got -1\)/],
    [['--eval-fraction', '1.5'], /--eval-fraction: must be between 0 and 1 \(exclusive\) \(got 1\.5\)/],
    [
      ['--method', 'adalora', '--init-r', '4', '--target-r', '4'],
      /--target-r: must be below --init-r \(got --target-r 4, --init-r 4\).*lower --target-r or raise --init-r/,
    ],
    [['--lora-dropout', '1'], /--lora-dropout: must be in \[0, 1\) \(got 1\)/],
    [
      ['--max-length', '4096'],
      /--max-length: .*has 128 positions \(got 4096\); pass --max-length 128 or less/,
    ],
    [['--learning-rate', '0.1'], /unknown option --learning-rate .*did you mean --lr\?/],
    [['--lerning-rate', '0.1'], /did you mean --lr\?/],
    [['--epochs', '3'], /unknown option --epochs .*did you mean --max-steps\?/],
    [['--output-dir', 'x'], /unknown option --output-dir .*did you mean --output\?/],
    [['--block-size', '8'], /did you mean --max-length\?/],
    [['--encoding', 'ebcdic'], /--encoding: must be one of utf-8, latin1, utf-16le/],
  ];
  const before = snapshot(dir);
  for (const [extra, message] of cases) {
    const r = await cli(...base, ...extra);
    assert.equal(r.code, 2, `${extra.join(' ')}: ${r.err}`);
    assert.match(r.err, message, extra.join(' '));
    assert.doesNotMatch(r.err, /AdamW|AdaLoraConfig|evalFraction|targetR/, 'names the flag, not the API');
    assertUnchanged(before, dir, `${extra.join(' ')} left something behind`);
  }
  // a rule only the library knows (AdaLoRA's schedule) is reported with the flags, before anything is read
  const r = await cli(
    ...base,
    '--method',
    'adalora',
    '--init-r',
    '4',
    '--target-r',
    '2',
    '--tinit',
    '2',
    '--tfinal',
    '1',
  );
  assert.equal(r.code, 2, r.err);
  assert.match(
    r.err,
    /^lowrank: --tinit: .*\(got --max-steps 2, --tinit 2, --tfinal 1\).*decrease --tinit or --tfinal, or increase --max-steps/,
  );
  assertUnchanged(before, dir, 'library rule left something behind');
});

test("range table: every command's numeric flags are checked before it runs (demo, serve, generate)", async () => {
  const dir = tmp();
  const out = path.join(dir, 'demo');
  const cases: [string[], RegExp][] = [
    [['demo', '-o', out, '--samples', '0'], /^lowrank: --samples: must be >= 1 \(got 0\)/],
    [['demo', '-o', out, '--strength', '0'], /^lowrank: --strength: must be > 0 \(got 0\)/],
    [
      ['serve', '-m', path.join(dir, 'none'), '--max-active', '0'],
      /^lowrank: --max-active: must be >= 1 \(got 0\)/,
    ],
    [
      ['serve', '-m', path.join(dir, 'none'), '--timeout', '0'],
      /^lowrank: --timeout: must be >= 0.001 \(got 0\)/,
    ],
    [
      ['generate', '-m', path.join(dir, 'none'), '--top-p', '0'],
      /^lowrank: --top-p: must be in \(0, 1\] \(got 0\)/,
    ],
  ];
  for (const [argv, message] of cases) {
    const r = await cli(...argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, message);
  }
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing is written');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('robustness table: bad paths and data exit 1 with a typed message naming the user path', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const latin1 = path.join(dir, 'latin1.txt');
  fs.writeFileSync(latin1, Buffer.from('caf\xe9 au lait. '.repeat(40), 'latin1'));
  const random = path.join(dir, 'random.bin');
  fs.writeFileSync(random, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)));
  const empty = path.join(dir, 'empty.txt');
  fs.writeFileSync(empty, '1+1=2.\n');
  const aFile = path.join(dir, 'a-file');
  fs.writeFileSync(aFile, 'mine');
  const out = path.join(dir, 'run');
  const train = (...a: string[]) => cli('train', '-m', w.model, ...TRAIN_TINY, ...a);
  const cases: [Promise<{ code: number; err: string }>, number, RegExp, string][] = [
    [
      train('--data', w.train, '-m', path.join(dir, 'no-model'), '-o', out),
      1,
      /--model .*no-model: does not exist/,
      'missing model',
    ],
    [
      train('--data', path.join(dir, 'nope.txt'), '-o', out),
      1,
      /--data .*nope\.txt: does not exist/,
      'missing data',
    ],
    [
      train('--data', latin1, '-o', out),
      1,
      /--data .*latin1\.txt: is not UTF-8 text \(byte 0xe9 at line 1, byte offset 3\).*--encoding latin1/,
      'Latin-1',
    ],
    [train('--data', random, '-o', out), 1, /--data .*random\.bin: looks like binary data/, 'random bytes'],
    [
      train('--data', empty, '--task', 'causal_lm', '--max-length', '64', '-o', out),
      1,
      /shorter than one block of 64 tokens.*lower --max-length/,
      'tiny corpus',
    ],
    [
      train('--data', w.train, '-o', path.join(aFile, 'run')),
      1,
      /--output .*a-file\/run: a part of the path is a file, not a folder/,
      'output under a file',
    ],
    [
      train('--data', w.train, '-o', aFile),
      2,
      /--output .*a-file: is a file, not a folder/,
      'output is a file',
    ],
  ];
  const before = snapshot(dir);
  for (const [run, code, message, what] of cases) {
    const r = await run;
    assert.equal(r.code, code, `${what}: ${r.err}`);
    assert.match(r.err, message, what);
    assert.doesNotMatch(r.err, /--block-size|EACCES|ENOTDIR|ENOENT|\.lowrank-cache/, what);
    assertUnchanged(before, dir, `${what} left something behind`);
  }
  // --encoding latin1 says the Latin-1 file is meant: it trains
  const ok = await train(
    '--data',
    latin1,
    '--task',
    'causal_lm',
    '--max-length',
    '16',
    '--encoding',
    'latin1',
    '-o',
    out,
  );
  assert.equal(ok.code, 0, ok.err);
});

test('robustness table: an existing run is refused before tokenising (no cache), trailing slash gives no //', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const parent = path.join(dir, 'runs');
  fs.mkdirSync(parent);
  const out = path.join(parent, 'a');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'log.jsonl'), '');
  fs.writeFileSync(path.join(out, 'thesis.txt'), 'three years of work');
  const before = snapshot(dir);
  let r = await cli('train', '-m', w.model, '--data', w.train, '-o', out, ...TRAIN_TINY);
  assert.equal(r.code, 2);
  assert.match(r.err, /--output .*already holds a run.*--resume/);
  assertUnchanged(before, dir, 'refused run');
  assert.ok(!fs.existsSync(path.join(parent, '.lowrank-cache')), 'no tokenisation cache');
  // a non-empty folder that is not a run is refused too
  const user = path.join(dir, 'user');
  fs.mkdirSync(user);
  fs.writeFileSync(path.join(user, 'notes.md'), '# notes');
  const before2 = snapshot(dir);
  r = await cli('train', '-m', w.model, '--data', w.train, '-o', user, ...TRAIN_TINY);
  assert.equal(r.code, 2);
  assert.match(r.err, /--output .*user: the folder is not empty \(notes\.md\)/);
  assertUnchanged(before2, dir, 'refused non-empty');
  // trailing slash: paths printed without //
  r = await cli(
    'train',
    ...flags({ m: w.model, data: w.train, o: path.join(dir, 'fresh') + '/' }),
    ...TRAIN_TINY,
  );
  assert.equal(r.code, 0, r.err);
  assert.doesNotMatch(r.out + r.err, /\/\//);
});

test('robustness table: resume skips a truncated newest checkpoint, names it, ends byte-identical; refused resume names each option; no temp files left', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const out = path.join(dir, 'run');
  const args = [
    'train',
    ...flags({
      ...worldFlags(w),
      ...ADALORA_FLAGS,
      'max-steps': 6,
      'save-every': 2,
      'keep-checkpoints': 2,
      'eval-every': 0,
      'batch-size': 8,
      lr: 0.01,
      backend: 'cpu',
      q: true,
      'no-report': true,
      o: out,
    }),
  ];
  let r = await cli(...args);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /final train loss: [\d.]+ \(task loss; \+ orthogonal regulariser [\d.]+\)/);
  const adapter = fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors'));
  const ckpt = path.join(out, 'checkpoints');
  assert.deepEqual(fs.readdirSync(ckpt), ['step-000004', 'step-000006']);
  // the newest checkpoint is cut short (a kill during a copy), and a killed write left a temp file
  const newest = path.join(ckpt, 'step-000006', 'trainable.safetensors');
  fs.writeFileSync(newest, fs.readFileSync(newest).subarray(0, 100));
  fs.writeFileSync(path.join(ckpt, 'step-000004', '.optimizer.safetensors.999.0.tmp'), 'partial');
  r = await cli('train', '-o', out, '--resume');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /skipped checkpoints\/step-000006: .*trainable\.safetensors/);
  assert.match(r.err, /resuming from checkpoints\/step-000004/);
  assert.ok(fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors')).equals(adapter));
  const temps = [...snapshot(out).keys()].filter((k) => /\.tmp$/.test(k));
  assert.deepEqual(temps, [], 'no temp file left after resume');
  // a truncated trainer_state.json: skipped with its reason, not "fix or regenerate the file"
  const state = path.join(ckpt, 'step-000006', 'trainer_state.json');
  fs.writeFileSync(state, fs.readFileSync(state, 'utf8').slice(0, 20));
  r = await cli('train', '-o', out, '--resume');
  assert.equal(r.code, 0, r.err);
  assert.doesNotMatch(r.err, /regenerate/);
  assert.match(r.err, /skipped checkpoints\/step-000006: .*trainer_state\.json: is not valid JSON/);
  // a refused resume names each changed option
  const before = snapshot(dir);
  r = await cli(...args.map((a) => (a === '0.01' ? '0.02' : a === '6' ? '8' : a)), '--resume');
  assert.equal(r.code, 2);
  assert.match(r.err, /--resume: .* was started with other options: --lr 0\.01 → 0\.02, --max-steps 6 → 8\./);
  assertUnchanged(before, dir, 'refused resume');
});

test('robustness table: merge never writes into the base model folder or a non-empty folder without --force', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const run = path.join(dir, 'run');
  let r = await cli(
    'train',
    ...flags({ m: w.model, data: w.text, task: 'causal_lm', 'max-length': 16, o: run }),
    ...TRAIN_TINY,
  );
  assert.equal(r.code, 0, r.err);
  const adapter = path.join(run, 'adapter');
  const user = path.join(dir, 'mine');
  fs.mkdirSync(user);
  fs.writeFileSync(path.join(user, 'config.json'), '{"mine": true}');
  const before = snapshot(dir);
  for (const [target, message] of [
    [w.model, /--output .*model: is the folder of the base model \(--model\)/],
    [w.model + '/', /is the folder of the base model/],
    [adapter, /is the folder of the adapter \(--adapter\)/],
    [user, /--output .*mine: the folder is not empty \(config\.json\).*--force/],
  ] as const) {
    r = await cli('merge', '-m', w.model, '--adapter', adapter, '-o', target, '--backend', 'cpu');
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, message);
    assertUnchanged(before, dir, `merge -o ${target}`);
  }
  // --force replaces what merge writes, never the base folder
  r = await cli('merge', '-m', w.model, '--adapter', adapter, '-o', w.model, '--force', '--backend', 'cpu');
  assert.equal(r.code, 2);
  assertUnchanged(before, dir, 'merge --force into the base folder');
  r = await cli('merge', '-m', w.model, '--adapter', adapter, '-o', user, '--force', '--backend', 'cpu');
  assert.equal(r.code, 0, r.err);
});

test('robustness table: demo -o a folder of user files refuses and leaves them byte-identical', async () => {
  const dir = tmp();
  const mine = path.join(dir, 'thesis');
  fs.mkdirSync(mine);
  fs.writeFileSync(path.join(mine, 'thesis.txt'), 'chapter 1');
  fs.writeFileSync(path.join(mine, 'notes.md'), '# notes');
  const before = snapshot(dir);
  for (const o of [mine, mine + '/']) {
    const r = await cli('demo', '-o', o, '--quick', '--backend', 'cpu');
    assert.equal(r.code, 2);
    assert.match(
      r.err,
      /--output .*thesis\/?: the folder already holds files the demo did not make \(notes\.md, thesis\.txt\)/,
    );
    assertUnchanged(before, dir, `demo -o ${o}`);
  }
});

test('robustness table: generate stops at the model positions with a note; EPIPE ends quietly', async () => {
  const dir = tmp();
  const w = await tinyWorld(dir);
  const r = await cli('generate', '-m', w.model, '-p', '1+1=', '-n', '1000', '--backend', 'cpu');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /note: the model has 128 positions; generating \d+ tokens, not 1000/);
  // a reader that goes away (`| head -1`): exit 0, no stack
  const child = spawn(process.execPath, [...CLI_ENTRY, 'recommend', '--tasks', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.destroy();
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  assert.equal(code, 0, err);
  assert.doesNotMatch(err, /EPIPE|Error/);
  const piped = spawnSync('bash', ['-c', `node ${CLI_ENTRY.join(' ')} recommend --tasks 1 | head -1`], {
    encoding: 'utf8',
  });
  assert.equal(piped.status, 0);
  assert.doesNotMatch(piped.stderr, /EPIPE/);
});

test('robustness table: help texts and small messages', async () => {
  const train = (await cli('train', '--help')).out;
  assert.match(train, /--no-cache .*\.lowrank-cache\/ beside the --output folder/);
  assert.match((await cli('eval', '--help')).out, /--data <string> +evaluation data/);
  const rec = await cli('recommend', '--memory-gb', '16', '--model-params', '7b');
  assert.match(rec.out, /fp32 weights take 28\.0 GB/);
});

test('robustness table: a safetensors header length of 2^64 − 1 is printed exactly', async () => {
  const dir = tmp();
  const a = path.join(dir, 'adapter');
  fs.mkdirSync(a);
  fs.writeFileSync(
    path.join(a, 'adapter_config.json'),
    JSON.stringify({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'] }),
  );
  fs.writeFileSync(path.join(a, 'adapter_model.safetensors'), Buffer.alloc(64, 0xff));
  const before = snapshot(dir);
  const r = await cli('inspect', a);
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, /18446744073709551615/);
  assertUnchanged(before, dir, 'inspect');
});
