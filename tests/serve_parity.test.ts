/**
 * Greedy output through the server equals `lowrank generate` (the library's `generate` on the adapter
 * merged into the base) token for token: each adapter alone, and all of them decoding in one batch
 * with prompts of different lengths. Also n > 1 sampling: choice 0 equals `generate` with the seed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { initBackend } from '../src/tensor/backend.js';
import type { LowrankServer } from '../src/serve/index.js';
import { loadTokenizer } from '../src/io/tokenizer.js';
import { loadModel } from '../src/models/load.js';
import { generate } from '../src/models/generate.js';
import { cli } from '../src/testing/cli_runner.js';
import {
  libraryGreedy,
  serveWorld,
  serverGreedy,
  startServer,
  type World,
} from '../src/testing/serve_world.js';

const ADAPTERS = ['base', 'lora_a', 'lora_b', 'lora_norm', 'dora', 'adalora'];
let world: World;
let server: LowrankServer;
let client: OpenAI;

before(async () => {
  await initBackend('auto');
  world = await serveWorld();
  let url: string;
  ({ server, client, url } = await startServer(world));
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
});

after(async () => {
  await server.close();
  fs.rmSync(world.dir, { recursive: true, force: true });
});

/** Greedy ids and text of one completion through the server, and its usage. */
async function greedy(model: string, prompt: string, maxTokens: number) {
  const r = await serverGreedy(client, model, prompt, maxTokens);
  return { ...r.choices[0]!, usage: r.usage };
}

test('each adapter alone: server greedy ids = library generate on the merged adapter', async () => {
  const outputs = new Set<string>();
  for (const a of ADAPTERS) {
    const want = await libraryGreedy(world, a === 'base' ? null : a, '12+30=', 24);
    const got = await greedy(a, '12+30=', 24);
    assert.deepEqual(got.ids, want.ids, a);
    assert.equal(got.text, want.text, a);
    assert.equal(got.usage.completion_tokens, want.ids.length);
    outputs.add(JSON.stringify(got.ids));
  }
  assert.equal(outputs.size, ADAPTERS.length, 'every adapter changes the output (so routing is tested)');
});

test('all adapters in one continuous batch (ragged prompts): same ids as each alone', async () => {
  const jobs = [...ADAPTERS, ...ADAPTERS].map((a, i) => ({
    a,
    prompt: `${i}+${'7'.repeat(i)}=`,
    n: 10 + 2 * i,
  }));
  const want: Awaited<ReturnType<typeof libraryGreedy>>[] = [];
  for (const j of jobs) want.push(await libraryGreedy(world, j.a === 'base' ? null : j.a, j.prompt, j.n));
  const multi = () => {
    const text = server.metrics.render();
    const ones = Number(/lowrank_batch_size_bucket\{le="1"\} (\d+)/.exec(text)?.[1] ?? 0);
    const all = Number(/lowrank_batch_size_count (\d+)/.exec(text)?.[1] ?? 0);
    return all - ones;
  };
  const stepsBefore = multi();
  const got = await Promise.all(jobs.map((j) => greedy(j.a, j.prompt, j.n)));
  jobs.forEach((j, i) => assert.deepEqual(got[i]!.ids, want[i]!.ids, `${j.a} ${j.prompt}`));
  assert.ok(multi() - stepsBefore >= 5, 'the requests really decoded together (steps with > 1 sequence)');
});

test('`lowrank generate --adapter` prints the prompt + the server completion', async () => {
  const tok = await loadTokenizer(path.join(world.model, 'tok.bin'));
  for (const a of ['lora_a', 'adalora']) {
    const got = await greedy(a, '5+5=', 16);
    const r = await cli(
      'generate',
      '-m',
      world.model,
      '--adapter',
      path.join(world.adapters, a),
      '-p',
      '5+5=',
      '-n',
      '16',
    );
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, tok.decode([...tok.encode('5+5='), ...got.ids], { skipSpecialTokens: true }));
  }
});

test('n > 1 with a seed: choice i samples with seed + i like generate; same request, same answer', async () => {
  const req = {
    model: 'lora_a',
    prompt: '9-4=',
    max_tokens: 12,
    temperature: 0.9,
    top_p: 0.95,
    top_k: 40,
    seed: 7,
    n: 3,
    logprobs: 0,
    return_tokens_as_token_ids: true,
  };
  const r1 = await client.completions.create(req as never);
  const r2 = await client.completions.create(req as never);
  assert.deepEqual(
    r1.choices.map((c) => c.index),
    [0, 1, 2],
  );
  assert.deepEqual(
    r1.choices.map((c) => c.text),
    r2.choices.map((c) => c.text),
  );
  const tok = await loadTokenizer(path.join(world.model, 'tok.bin'));
  const { PeftModel } = await import('../src/tuners/index.js');
  const merged = (
    await PeftModel.fromPretrained(
      await loadModel(world.model, { seed: 0 }),
      path.join(world.adapters, 'lora_a'),
    )
  ).mergeAndUnload();
  for (let i = 0; i < 3; i++) {
    const want = await generate(merged as never, tok.encode('9-4='), {
      maxNewTokens: 12,
      temperature: 0.9,
      topP: 0.95,
      topK: 40,
      seed: 7 + i,
      eosTokenId: tok.eosTokenId,
    });
    assert.deepEqual(
      r1.choices[i]!.logprobs!.tokens!.map((t) => Number(t.slice(9))),
      want,
      `choice ${i}`,
    );
  }
  merged.dispose();
  assert.equal(
    r1.usage!.completion_tokens,
    r1.choices.reduce((s, c) => s + c.logprobs!.tokens!.length, 0),
  );
  assert.ok(new Set(r1.choices.map((c) => c.text)).size > 1, 'different seeds sample different text');
});

const STORIES = path.resolve(import.meta.dirname, '../../shared/data/models/stories260K');
const haveStories = fs.existsSync(path.join(STORIES, 'stories260K.bin'));

test(
  'stories260K: base and two LoRA adapters batched through the server = generate on each merged adapter',
  { skip: haveStories ? false : `needs ../shared/data/models/stories260K (absent at ${STORIES})` },
  async () => {
    const { getPeftModel } = await import('../src/tuners/index.js');
    const { LoraConfig } = await import('../src/tuners/lora/index.js');
    const { perturbAdapter } = await import('../src/testing/tuner_matrix.js');
    const bin = path.join(STORIES, 'stories260K.bin');
    const dir = fs.mkdtempSync(path.join(world.dir, 'stories-'));
    for (const [name, targets, seed] of [
      ['tales', ['q_proj', 'v_proj'], 1],
      ['fables', ['gate_proj', 'down_proj'], 2],
    ] as const) {
      const peft = getPeftModel(
        await loadModel(bin),
        new LoraConfig({ r: 4, loraAlpha: 8, targetModules: [...targets] }),
      );
      perturbAdapter(peft as never, seed, 0.05);
      await peft.savePretrained(path.join(dir, name));
      peft.dispose();
    }
    const { server: s, client: c } = await startServer({ model: bin, adapters: dir });
    const tok = await loadTokenizer(path.join(STORIES, 'tok512.bin'));
    const jobs = [
      ['base', 'Once upon a time', 40],
      ['tales', 'Lily had a cat', 32],
      ['fables', 'The sun', 48],
      ['tales', 'One day', 24],
    ] as const;
    try {
      const got = await Promise.all(jobs.map(([model, prompt, n]) => serverGreedy(c, model, prompt, n)));
      const { PeftModel } = await import('../src/tuners/index.js');
      for (const [i, [model, prompt, n]] of jobs.entries()) {
        const base = await loadModel(bin);
        const m =
          model === 'base'
            ? base
            : (await PeftModel.fromPretrained(base, path.join(dir, model))).mergeAndUnload();
        const want = await generate(m as never, tok.encode(prompt), {
          maxNewTokens: n,
          temperature: 0,
          eosTokenId: tok.eosTokenId,
        });
        m.dispose();
        assert.deepEqual(got[i]!.choices[0]!.ids, want, `${model}: ${prompt}`);
      }
    } finally {
      await s.close();
    }
  },
);
