/**
 * Operating the server: queue limit (429), per-request timeout (504), the adapter LRU (eviction,
 * load/unload routes, a changed folder picked up, an adapter bigger than the cache), graceful
 * shutdown, no tensor growth, `/v1/classify`, the `lowrank serve` command, and the text assembly
 * (stop strings across tokens, incomplete UTF-8 held back).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import OpenAI, { APIError } from 'openai';
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import { createServer, type LowrankServer, type ServeOptions } from '../src/serve/index.js';
import { TextAssembler } from '../src/serve/text.js';
import type { Tokenizer } from '../src/io/tokenizer.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { loadModel } from '../src/models/load.js';
import { modelFromConfig } from '../src/models/from_config.js';
import { manualSeed } from '../src/nn/init.js';
import { getPeftModel, PeftModel } from '../src/tuners/index.js';
import { LoraConfig } from '../src/tuners/lora/index.js';
import { perturbAdapter } from '../src/testing/tuner_matrix.js';
import { charLlamaConfig, saveCharModel } from '../src/testing/char_llama.js';
import { CLI_ENTRY, cli } from '../src/testing/cli_runner.js';
import { openaiClient, serveWorld, startServer, tmp, type World } from '../src/testing/serve_world.js';

/** Softmax scores through the server vs the library forward: same kernels, float32. */
const SCORE_ATOL = 1e-6;

let world: World;
before(async () => {
  await initBackend('auto');
  world = await serveWorld();
});
after(() => fs.rmSync(world.dir, { recursive: true, force: true }));

async function withServer(
  opts: Partial<ServeOptions>,
  fn: (s: LowrankServer, c: OpenAI, url: string) => Promise<void>,
) {
  const { server: s, client, url } = await startServer(world, opts);
  try {
    await fn(s, client, url);
  } finally {
    await s.close(0);
  }
}

const status = (p: Promise<unknown>) =>
  p.then(
    () => 200,
    (e: unknown) => (e instanceof OpenAI.APIError ? (e.status ?? -1) : -2),
  );

test('queue limit: requests beyond active + queued get 429 queue_full (streams too, as a status); the rest complete', async () => {
  await withServer({ maxActive: 1, maxQueue: 1 }, async (s, c) => {
    const plain = () =>
      status(c.completions.create({ model: 'lora_a', prompt: '1', max_tokens: 40, temperature: 0 }));
    const streamed = () =>
      status(
        c.completions
          .create({ model: 'lora_a', prompt: '1', max_tokens: 40, temperature: 0, stream: true })
          .then(async (st) => {
            for await (const _ of st);
          }),
      );
    const codes = await Promise.all([plain(), plain(), plain(), plain(), plain(), streamed(), streamed()]);
    assert.ok(codes.filter((x) => x === 200).length >= 2, `statuses ${codes}`);
    assert.deepEqual([...new Set(codes)].sort(), [200, 429], `statuses ${codes}`);
    assert.equal(codes.at(-1), 429, 'the last stream is refused with an HTTP 429, not an event');
    assert.equal(s.engine.queued + s.engine.running, 0);
    assert.equal(
      (await c.completions.create({ model: 'base', prompt: '1', max_tokens: 2 })).choices.length,
      1,
    );
  });
});

test('per-request timeout: 504 (an error event when streaming); sequences freed; server healthy', async () => {
  // 2 ms: 240 tokens take ≥ 240 event-loop turns (the engine yields after each step), far longer even
  // on the native engine, where a tiny model's step costs tens of µs
  await withServer({ requestTimeoutMs: 2, maxTokens: 240 }, async (s, c) => {
    const e = await c.completions
      .create({ model: 'lora_a', prompt: '1', max_tokens: 240, temperature: 0 })
      .catch((x: unknown) => x);
    assert.ok(e instanceof OpenAI.APIError && e.status === 504, String(e));
    assert.equal((e as APIError).code, 'timeout');
    const stream = await c.completions.create({
      model: 'lora_a',
      prompt: '1',
      max_tokens: 240,
      temperature: 0,
      stream: true,
    });
    await assert.rejects(async () => {
      for await (const _ of stream);
    }, /longer than 2 ms/);
    assert.equal(s.engine.running, 0);
    assert.equal(
      (await c.completions.create({ model: 'base', prompt: '1', max_tokens: 2 })).choices.length,
      1,
    );
  });
});

test('adapter cache: LRU eviction by bytes, load/unload routes, too-big adapter 422, no tensor growth', async () => {
  // lora_a holds 896 floats (3584 B), lora_b 640 (2560 B): a 4000-byte cache keeps one of them
  await withServer({ adapterCacheBytes: 4000 }, async (s, c, url) => {
    const tensors = tf.memory().numTensors;
    const greedy = async (model: string) =>
      (await c.completions.create({ model, prompt: '4+4=', max_tokens: 12, temperature: 0 })).choices[0]!
        .text;
    const a1 = await greedy('lora_a');
    assert.deepEqual(s.adapters.loaded(), ['lora_a']);
    assert.equal(s.adapters.bytes, 3584);
    const b1 = await greedy('lora_b');
    assert.deepEqual(s.adapters.loaded(), ['lora_b'], 'lora_a was evicted');
    assert.equal(await greedy('lora_a'), a1, 'reloaded adapter gives the same text');
    assert.notEqual(a1, b1);
    assert.match(s.metrics.render(), /lowrank_adapter_cache_evictions_total 2/);
    const post = (route: string, body: unknown) =>
      fetch(`${url}/v1/adapters/${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    let r = await post('load', { name: 'lora_b' });
    assert.deepEqual(await r.json(), { name: 'lora_b', loaded: true, bytes: 2560 });
    r = await post('unload', { name: 'lora_b' });
    assert.equal(r.status, 200);
    assert.deepEqual(s.adapters.loaded(), []);
    assert.equal((await post('unload', { name: 'lora_b' })).status, 404);
    assert.equal((await post('load', { name: '../x' })).status, 404);
    const big = await post('load', { name: 'dora' });
    assert.equal(big.status, 422);
    assert.match(
      ((await big.json()) as { error: { message: string } }).error.message,
      /more than the whole adapter cache/,
    );
    assert.equal(tf.memory().numTensors, tensors, 'loading, evicting and unloading leaves no tensor behind');
  });
});

test('a changed adapter folder is picked up on the next request', async () => {
  const hot = path.join(world.adapters, 'hot');
  fs.cpSync(path.join(world.adapters, 'lora_a'), hot, { recursive: true });
  try {
    await withServer({}, async (_s, c) => {
      const greedy = async (model: string) =>
        (await c.completions.create({ model, prompt: '8-1=', max_tokens: 12, temperature: 0 })).choices[0]!
          .text;
      const a = await greedy('hot');
      assert.equal(a, await greedy('lora_a'));
      for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
        fs.copyFileSync(path.join(world.adapters, 'lora_b', f), path.join(hot, f));
      assert.equal(await greedy('hot'), await greedy('lora_b'));
    });
  } finally {
    fs.rmSync(hot, { recursive: true, force: true });
  }
});

test('graceful shutdown: a running request finishes, later ones are refused', async () => {
  const { server: s, client: c } = await startServer(world);
  const running = c.completions.create({ model: 'lora_a', prompt: '1', max_tokens: 120, temperature: 0 });
  while (s.engine.running === 0) await new Promise((r) => setTimeout(r, 2));
  const closing = s.close(30_000);
  const r = await running;
  assert.equal(r.usage!.completion_tokens, 120);
  await closing;
  assert.notEqual(await status(c.completions.create({ model: 'base', prompt: '1', max_tokens: 2 })), 200);
});

test('shutdown without grace cancels the running request with 503', async () => {
  const { server: s, client: c } = await startServer(world);
  const running = status(
    c.completions.create({ model: 'lora_a', prompt: '1', max_tokens: 200, temperature: 0 }),
  );
  while (s.engine.running === 0) await new Promise((r) => setTimeout(r, 2));
  await s.close(0);
  assert.equal(await running, 503);
});

test('/v1/classify: labels and scores equal the library forward with the adapter', async () => {
  const dir = tmp();
  try {
    manualSeed(3);
    const m = modelFromConfig(
      charLlamaConfig({
        num_hidden_layers: 1,
        id2label: { 0: 'neg', 1: 'pos' },
        label2id: { neg: 0, pos: 1 },
      }),
      { task: 'SEQ_CLS', numLabels: 2 },
    );
    await saveCharModel(m, path.join(dir, 'model'));
    m.dispose();
    const model = path.join(dir, 'model');
    const peft = getPeftModel(
      await loadModel(model, { task: 'SEQ_CLS', numLabels: 2 }),
      new LoraConfig({ taskType: 'SEQ_CLS', r: 2, targetModules: ['q_proj'] }),
    );
    perturbAdapter(peft as never, 5, 0.5);
    await peft.savePretrained(path.join(dir, 'adapters', 'sent'));
    peft.dispose();
    const tok = await loadTokenizer(path.join(model, 'tok.bin'));
    const base = await loadModel(model, { task: 'SEQ_CLS', numLabels: 2 });
    const { server: s, url } = await startServer({
      model: { model: base, tokenizer: tok },
      adapters: path.join(dir, 'adapters'),
    });
    try {
      const r = await fetch(`${url}/v1/classify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'sent', input: ['1+1=2', '3-1=5'] }),
      });
      const body = (await r.json()) as { data: { label: string; scores: Record<string, number> }[] };
      assert.equal(r.status, 200, JSON.stringify(body));
      const ref = await PeftModel.fromPretrained(
        await loadModel(model, { task: 'SEQ_CLS', numLabels: 2 }),
        path.join(dir, 'adapters', 'sent'),
      );
      for (const [i, text] of ['1+1=2', '3-1=5'].entries()) {
        const ids = tok.encode(text);
        const inputIds = tf.tensor2d([ids], [1, ids.length], 'int32');
        const logits = ref.forward({ inputIds }).logits;
        const p = Array.from(tf.softmax(logits).dataSync());
        tf.dispose([inputIds, logits]);
        assert.ok(Math.abs(body.data[i]!.scores.neg! - p[0]!) < SCORE_ATOL);
        assert.ok(Math.abs(body.data[i]!.scores.pos! - p[1]!) < SCORE_ATOL);
        assert.equal(body.data[i]!.label, p[1]! > p[0]! ? 'pos' : 'neg');
      }
      ref.dispose();
      const c = openaiClient(url);
      assert.equal(await status(c.completions.create({ model: 'base', prompt: '1' })), 400);
    } finally {
      await s.close(0);
      base.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('createServer: an adapters path that is not a folder is a ConfigError naming the option', async () => {
  await assert.rejects(
    createServer({ model: world.model, adapters: path.join(world.dir, 'missing'), port: 0, logger: false }),
    /createServer\.adapters: must be an existing folder/,
  );
});

test('lowrank serve: usage errors exit 2; the command serves until SIGTERM, then exits 0', async () => {
  assert.equal((await cli('serve')).code, 2);
  let r = await cli('serve', '-m', world.model, '--port', '70000');
  assert.equal(r.code, 2);
  assert.match(r.err, /--port/);
  r = await cli('serve', '-m', world.model, '--adapters', path.join(world.dir, 'nope'));
  assert.equal(r.code, 2);
  assert.match(r.err, /--adapters: .* is not a folder/);
  const child = spawn(
    process.execPath,
    [
      ...CLI_ENTRY,
      'serve',
      '-m',
      world.model,
      '--adapters',
      world.adapters,
      '--port',
      '0',
      '--log-level',
      'silent',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /lowrank serve: (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on('exit', () => reject(new Error(`serve exited early: ${err}`)));
  });
  const c = openaiClient(url);
  const out = await c.completions.create({ model: 'lora_a', prompt: '2+2=', max_tokens: 5, temperature: 0 });
  assert.equal(out.usage!.completion_tokens, 5);
  const code = await new Promise<number | null>((resolve) => {
    child.on('exit', (x) => resolve(x));
    child.kill('SIGTERM');
  });
  assert.equal(code, 0, err);
  assert.match(err, /SIGTERM: finishing running requests[\s\S]*stopped/);
});

/** A tokenizer over raw bytes (id = byte), to test text assembly exactly. */
const bytes: Tokenizer = {
  kind: 'huggingface',
  vocabSize: 256,
  encode: (t) => Array.from(new TextEncoder().encode(t)),
  decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids)),
  encodePair: () => {
    throw new Error('no pairs');
  },
};

function assemble(text: string, stops: string[]): { deltas: string[]; stopped: boolean; final: string } {
  const t = new TextAssembler(bytes, stops);
  const deltas: string[] = [];
  let stopped = false;
  for (const id of bytes.encode(text)) {
    const r = t.push(id);
    deltas.push(r.delta);
    if (r.stopped) {
      stopped = true;
      break;
    }
  }
  deltas.push(t.flush());
  return { deltas, stopped, final: deltas.join('') };
}

test('text assembly: stop strings across tokens, held-back prefixes, incomplete UTF-8', () => {
  let r = assemble('hello END world', ['END']);
  assert.equal(r.final, 'hello ');
  assert.ok(r.stopped);
  assert.ok(!r.deltas.some((d) => d.includes('E')), 'a possible stop prefix is never released');
  r = assemble('an ENtry', ['END']);
  assert.equal(r.final, 'an ENtry');
  assert.ok(!r.stopped);
  r = assemble('x\n\ny', ['\n\n', 'x']);
  assert.equal(r.final, '');
  r = assemble('naïve €', []);
  assert.equal(r.final, 'naïve €');
  assert.ok(
    r.deltas.every((d) => !d.includes('\uFFFD')),
    'no half character is ever released',
  );
});

test('structured logs: one JSON line per finished generation with adapter, usage and latency', async () => {
  const lines: string[] = [];
  const stream = { write: (l: string) => void lines.push(l) };
  await withServer({ logger: { level: 'info', stream } }, async (_s, c) => {
    await c.completions.create({ model: 'lora_a', prompt: '6+1=', max_tokens: 4, temperature: 0 });
    await c.completions.create({ model: 'nope', prompt: 'x' }).catch(() => undefined);
  });
  const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const done = entries.find((e) => e.msg === 'generation done');
  assert.ok(done, lines.join(''));
  assert.equal(done.model, 'lora_a');
  assert.equal(done.completion_tokens, 4);
  assert.equal(typeof done.ms, 'number');
  assert.equal(typeof done.reqId, 'string');
  assert.ok(entries.some((e) => e.msg === 'adapter loaded' && e.adapter === 'lora_a'));
  assert.ok(entries.some((e) => e.status === 404 && e.code === 'model_not_found'));
  assert.ok(entries.some((e) => e.msg === 'shutting down'));
});
