/**
 * The OpenAI-compatible API through the official `openai` client: completions, chat, streaming, stop,
 * logprobs, and every kind of bad request (unknown / broken / escaping adapter, malformed JSON, body
 * too large, wrong key) answered in OpenAI's error shape — with the server healthy afterwards.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { APIError } from 'openai';
import { tf } from '../src/tensor/tf.js';
import { initBackend } from '../src/tensor/backend.js';
import type { LowrankServer } from '../src/serve/index.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { loadModel } from '../src/models/load.js';
import { PeftModel } from '../src/tuners/index.js';
import {
  CHAT_TEMPLATE,
  openaiClient,
  serveWorld,
  startServer,
  type World,
} from '../src/testing/serve_world.js';

/** Server log-probabilities are float64 log-softmax of the same float32 logits (up to BLAS order). */
const LOGPROB_ATOL = 1e-4;
const KEY = 'sk-test-key';
const BODY_LIMIT = 16 * 1024;

let world: World;
let server: LowrankServer;
let url: string;
let client: OpenAI;

before(async () => {
  await initBackend('auto');
  world = await serveWorld();
  ({ server, client, url } = await startServer(world, { apiKey: KEY, bodyLimit: BODY_LIMIT, maxTokens: 64 }));
});

after(async () => {
  await server.close();
  fs.rmSync(world.dir, { recursive: true, force: true });
});

/** The server still answers: /health is ok and a completion works. */
async function assertHealthy(): Promise<void> {
  const h = (await (await fetch(`${url}/health`)).json()) as { status: string; active: number };
  assert.equal(h.status, 'ok');
  const r = await client.completions.create({
    model: 'lora_a',
    prompt: '1+1=',
    max_tokens: 3,
    temperature: 0,
  });
  assert.equal(r.usage!.completion_tokens, 3);
}

async function rejects(p: Promise<unknown>, status: number, code: string | null): Promise<APIError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, String(e));
    assert.equal(e.status, status, e.message);
    if (code !== null) assert.equal(e.code, code, e.message);
    assert.equal(typeof (e.error as { message?: unknown }).message, 'string');
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

test('GET /v1/models lists the base and every adapter folder, not the escaping symlink', async () => {
  const ids = (await client.models.list()).data.map((m) => m.id);
  assert.deepEqual(ids, ['base', 'adalora', 'broken', 'dora', 'lora_a', 'lora_b', 'lora_norm']);
});

test('completions: text, usage, finish_reason; streaming chunks add up to the same text', async () => {
  const req = { model: 'lora_a', prompt: '7+8=', max_tokens: 20, temperature: 0 } as const;
  const r = await client.completions.create(req);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0]!.finish_reason, 'length');
  const promptTokens = (await loadTokenizer(path.join(world.model, 'tok.bin'))).encode('7+8=').length;
  assert.deepEqual(r.usage, {
    prompt_tokens: promptTokens,
    completion_tokens: 20,
    total_tokens: promptTokens + 20,
  });
  const stream = await client.completions.create({
    ...req,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, r.choices[0]!.text);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, r.usage);
});

test('stop: the text ends before the first stop string, finish_reason "stop", streamed or not', async () => {
  const full = (
    await client.completions.create({ model: 'lora_b', prompt: '3+4=', max_tokens: 30, temperature: 0 })
  ).choices[0]!.text;
  const stop = full.slice(6, 8);
  const want = full.slice(0, full.indexOf(stop));
  const r = await client.completions.create({
    model: 'lora_b',
    prompt: '3+4=',
    max_tokens: 30,
    temperature: 0,
    stop: [stop, 'never'],
  });
  assert.equal(r.choices[0]!.text, want);
  assert.equal(r.choices[0]!.finish_reason, 'stop');
  assert.ok(r.usage!.completion_tokens < 30);
  const stream = await client.completions.create({
    model: 'lora_b',
    prompt: '3+4=',
    max_tokens: 30,
    temperature: 0,
    stop,
    stream: true,
  });
  let text = '';
  let finish: string | null = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, want);
  assert.equal(finish, 'stop');
});

test('logprobs equal the log-softmax of the library forward on the same adapter', async () => {
  const r = await client.completions.create({
    model: 'dora',
    prompt: '2*3=',
    max_tokens: 4,
    temperature: 0,
    logprobs: 3,
    return_tokens_as_token_ids: true,
  } as never);
  const lp = (r as OpenAI.Completion).choices[0]!.logprobs!;
  const ids = lp.tokens!.map((t) => Number(t.slice(9)));
  const tok = await loadTokenizer(path.join(world.model, 'tok.bin'));
  const peft = await PeftModel.fromPretrained(
    await loadModel(world.model, { seed: 0 }),
    path.join(world.adapters, 'dora'),
  );
  const prompt = tok.encode('2*3=');
  const inputIds = tf.tensor2d(
    [[...prompt, ...ids.slice(0, -1)]],
    [1, prompt.length + ids.length - 1],
    'int32',
  );
  const logits = peft.forward({ inputIds }).logits; // [1, T, V]
  const rows = (await logits.array()) as number[][][];
  tf.dispose([inputIds, logits]);
  peft.dispose();
  ids.forEach((id, k) => {
    const row = rows[0]![prompt.length - 1 + k]!;
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    assert.ok(Math.abs(lp.token_logprobs![k]! - (row[id]! - lse)) < LOGPROB_ATOL, `token ${k}`);
    const top = Object.entries(lp.top_logprobs![k]!);
    assert.equal(top.length, 3);
    assert.equal(top[0]![0], `token_id:${id}`, 'greedy token is the most likely');
    assert.ok(top.every(([, v], i) => i === 0 || v <= top[i - 1]![1]));
  });
  assert.deepEqual(lp.text_offset!.slice(0, 2), [0, lp.tokens![0]!.length]);
});

test('chat: the model chat template, streaming with role then content, logprobs', async () => {
  const messages = [
    { role: 'system' as const, content: 'be brief' },
    { role: 'user' as const, content: '2+2' },
  ];
  const r = await client.chat.completions.create({
    model: 'lora_a',
    messages,
    max_tokens: 12,
    temperature: 0,
    logprobs: true,
    top_logprobs: 2,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0]!.message.role, 'assistant');
  const tok = await loadTokenizer(path.join(world.model, 'tok.bin'));
  const rendered = 'system: be brief\nuser: 2+2\nassistant:';
  assert.equal(r.usage!.prompt_tokens, tok.encode(rendered, { addSpecialTokens: false }).length);
  assert.equal(r.choices[0]!.logprobs!.content!.length, r.usage!.completion_tokens);
  assert.equal(r.choices[0]!.logprobs!.content![0]!.top_logprobs.length, 2);
  const same = await client.completions.create({
    model: 'lora_a',
    prompt: rendered,
    max_tokens: 12,
    temperature: 0,
  });
  // the completion prompt gets BOS from the tokenizer; the template's bos_token is '' here
  assert.equal(typeof same.choices[0]!.text, 'string');
  const stream = await client.chat.completions.create({
    model: 'lora_a',
    messages,
    max_tokens: 12,
    temperature: 0,
    stream: true,
  });
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
  assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), r.choices[0]!.message.content);
  assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, 'length');
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id));
});

test('a model without a chat template: chat is a 400 naming the fix; completions still work', async () => {
  const tok = await loadTokenizer(path.join(world.model, 'tok.bin'));
  const { server: s, client: c } = await startServer({
    model: { model: await loadModel(world.model, { seed: 0 }), tokenizer: tok },
  });
  try {
    const e = await rejects(
      c.chat.completions.create({ model: 'base', messages: [{ role: 'user', content: 'hi' }] }),
      400,
      'no_chat_template',
    );
    assert.match(e.message, /chat_template/);
    assert.equal(
      (await c.completions.create({ model: 'base', prompt: 'x', max_tokens: 2 })).choices.length,
      1,
    );
  } finally {
    await s.close();
  }
  assert.ok(CHAT_TEMPLATE.includes('add_generation_prompt'));
});

test('unknown adapter, path traversal and symlink escape: 404 model_not_found; server healthy', async () => {
  for (const model of ['nope', '../model', 'escape', '.hidden', 'a/b']) {
    const e = await rejects(client.completions.create({ model, prompt: 'x' }), 404, 'model_not_found');
    assert.equal(e.param, 'model');
  }
  await assertHealthy();
});

test('corrupted adapter: 422 with the typed CheckpointError; other adapters keep serving', async () => {
  const e = await rejects(
    client.completions.create({ model: 'broken', prompt: 'x', max_tokens: 2 }),
    422,
    'adapter_load_failed',
  );
  assert.match(e.message, /CheckpointError: .*adapter_model\.safetensors.*truncated/);
  await assertHealthy();
  assert.ok(!server.adapters.loaded().includes('broken'));
});

test('malformed JSON, wrong types, over limits: 400/413 in OpenAI shape; server healthy', async () => {
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
      body,
    });
  const bad = await post('{"model": "base", "prompt": ');
  assert.equal(bad.status, 400);
  const err = (await bad.json()) as { error: { message: string; type: string } };
  assert.equal(err.error.type, 'invalid_request_error');
  assert.equal((await post('[1, 2]')).status, 400);
  await rejects(
    client.completions.create({ model: 'base', prompt: 'x', max_tokens: 65 }),
    400,
    'invalid_value',
  );
  await rejects(
    client.completions.create({ model: 'base', prompt: 'x', temperature: -1 }),
    400,
    'invalid_value',
  );
  await rejects(client.completions.create({ model: 'base', prompt: 'x', n: 99 }), 400, 'invalid_value');
  await rejects(
    client.completions.create({ model: 'base', prompt: 'x', presence_penalty: 1 }),
    400,
    'invalid_value',
  );
  await rejects(
    client.completions.create({ model: 'base', prompt: '1'.repeat(250), max_tokens: 10 }),
    400,
    'invalid_value',
  );
  const big = await rejects(
    client.completions.create({ model: 'base', prompt: 'x'.repeat(BODY_LIMIT * 2) }),
    413,
    'body_too_large',
  );
  assert.match(big.message, /limit/);
  await assertHealthy();
});

test('API key: missing or wrong → 401 authentication_error; /health needs none', async () => {
  const wrong = openaiClient(url, 'sk-wrong');
  const e = await rejects(wrong.models.list(), 401, 'invalid_api_key');
  assert.equal(e.type, 'authentication_error');
  await rejects(wrong.completions.create({ model: 'base', prompt: 'x' }), 401, 'invalid_api_key');
  assert.equal((await fetch(`${url}/v1/models`)).status, 401);
  assert.equal((await fetch(`${url}/health`)).status, 200);
  await assertHealthy();
});

test('client disconnects mid-stream: its sequence is cancelled, nothing leaks, server healthy', async () => {
  await assertHealthy(); // adapters used below are loaded: the tensor count is steady
  const tensors = tf.memory().numTensors;
  const abort = new AbortController();
  // chat streams open with a role chunk at the first token: the client leaves right then
  const stream = await client.chat.completions.create(
    {
      model: 'lora_a',
      messages: [{ role: 'user', content: '1+2' }],
      max_tokens: 64,
      temperature: 0,
      stream: true,
    },
    { signal: abort.signal },
  );
  let chunks = 0;
  try {
    for await (const _ of stream) {
      chunks++;
      abort.abort(); // the client ends the iteration (or throws an abort error)
    }
  } catch (e) {
    assert.ok(e instanceof Error && /abort/i.test(`${e.name} ${e.message}`), String(e));
  }
  assert.equal(chunks, 1);
  assert.ok(server.engine.running > 0 || /reason="disconnect"/.test(server.metrics.render()));
  for (let i = 0; i < 200 && server.engine.running > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(server.engine.running, 0, 'the sequence was cancelled');
  assert.match(server.metrics.render(), /lowrank_cancelled_total\{reason="disconnect"\} 1/);
  assert.match(
    server.metrics.render(),
    /lowrank_requests_total\{route="\/v1\/chat\/completions",status="client_closed"\} 1/,
  );
  assert.equal(tf.memory().numTensors, tensors, 'its KV cache was freed');
  await assertHealthy();
});

test('/metrics is Prometheus text with requests, tokens, queue, batch, adapter cache and latency', async () => {
  const r = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await r.text();
  for (const name of [
    'lowrank_requests_total',
    'lowrank_generated_tokens_total',
    'lowrank_tokens_per_second',
    'lowrank_queue_depth',
    'lowrank_batch_size_bucket',
    'lowrank_adapter_cache_hits_total',
    'lowrank_adapter_cache_misses_total',
    'lowrank_request_duration_seconds_bucket',
    'lowrank_time_to_first_token_seconds_bucket',
  ])
    assert.match(text, new RegExp(`^${name}`, 'm'), name);
  assert.match(text, /lowrank_requests_total\{route="\/v1\/completions",status="401"\} [1-9]/);
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('#')))
    assert.match(line, /^[a-z_]+(\{[^}]*\})? [-+0-9.eInfNa]+$/, line);
});

test('a list of prompts × n: choice p·n + i answers prompt p; greedy choices equal the single-prompt answer', async () => {
  const r = await client.completions.create({
    model: 'lora_b',
    prompt: ['1+1=', '22-9='],
    n: 2,
    max_tokens: 8,
    temperature: 0,
  });
  assert.deepEqual(
    r.choices.map((c) => c.index),
    [0, 1, 2, 3],
  );
  for (const [p, prompt] of ['1+1=', '22-9='].entries()) {
    const one = await client.completions.create({ model: 'lora_b', prompt, max_tokens: 8, temperature: 0 });
    assert.equal(r.choices[2 * p]!.text, one.choices[0]!.text);
    assert.equal(r.choices[2 * p + 1]!.text, one.choices[0]!.text);
  }
  assert.equal(r.usage!.completion_tokens, 32);
});
