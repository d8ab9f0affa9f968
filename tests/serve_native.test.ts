/**
 * The server on the native decode engine (issue 17 item 1): on the native backend every adapter the
 * kernel covers (LoRA, DoRA, AdaLoRA, the base) decodes on native rows — one addon call per turn for
 * all of them, adapters unmerged per row — and an adapter it does not cover (`lora_norm`, with a
 * modules_to_save copy of the final norm) on the tfjs path, side by side in one server. Greedy ids
 * equal the library's `generate` on the merged adapter either way. With LOWRANK_NATIVE_DECODE=0 the
 * whole server decodes on tfjs (its mixed-adapter batch and the single-adapter shortcut), same ids.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';
import { initBackend } from '../src/tensor/backend.js';
import { nativeRowsSkip } from '../src/testing/backend_parity.js';
import type { LowrankServer } from '../src/serve/index.js';
import {
  libraryGreedy,
  serveWorld,
  serverGreedy,
  startServer,
  type World,
} from '../src/testing/serve_world.js';

const skip = nativeRowsSkip();
const NATIVE = ['base', 'lora_a', 'lora_b', 'dora', 'adalora'];
const TFJS = ['lora_norm'];

let world: World;

before(async () => {
  await initBackend('native').catch(() => undefined);
  world = await serveWorld();
});

after(() => fs.rmSync(world.dir, { recursive: true, force: true }));

/** Each choice's greedy ids through the server. */
const greedy = async (client: OpenAI, model: string, prompt: string, maxTokens: number, n = 1) =>
  (await serverGreedy(client, model, prompt, maxTokens, n)).choices.map((c) => c.ids);

const rowsBy = (server: LowrankServer, engine: string) =>
  Number(
    new RegExp(`lowrank_decode_rows_total\\{engine="${engine}"\\} (\\d+)`).exec(
      server.metrics.render(),
    )?.[1] ?? 0,
  );

test(
  'native backend: covered adapters decode on native rows, lora_norm on tfjs, all = generate',
  { skip },
  async () => {
    const { server, client, url } = await startServer(world);
    try {
      const health = (await (await fetch(`${url}/health`)).json()) as { decode_engine: string };
      assert.equal(health.decode_engine, 'native');
      for (const a of [...NATIVE, ...TFJS]) {
        const want = await libraryGreedy(world, a === 'base' ? null : a, '3+4=', 12);
        const [nat, tfjs] = [rowsBy(server, 'native'), rowsBy(server, 'tfjs')];
        const [got] = await greedy(client, a, '3+4=', 12);
        assert.deepEqual(got, want.ids, a);
        const steps = want.ids.length - 1; // the first token comes from the prefill
        const [dn, dt] = [rowsBy(server, 'native') - nat, rowsBy(server, 'tfjs') - tfjs];
        assert.deepEqual(
          TFJS.includes(a) ? [dn, dt] : [dt, dn],
          [0, steps],
          `${a} decodes on ${TFJS.includes(a) ? 'tfjs' : 'native'}`,
        );
      }
      // everything at once, ragged prompts, n = 2 (the second choice copies the first one's row)
      const jobs = [...NATIVE, ...TFJS].map((a, i) => ({
        a,
        prompt: `${i}+${'8'.repeat(i)}=`,
        n: 6 + 3 * i,
      }));
      const want: { ids: number[] }[] = [];
      for (const j of jobs) want.push(await libraryGreedy(world, j.a === 'base' ? null : j.a, j.prompt, j.n));
      const got = await Promise.all(jobs.map((j) => greedy(client, j.a, j.prompt, j.n, 2)));
      jobs.forEach((j, i) => assert.deepEqual(got[i], [want[i]!.ids, want[i]!.ids], `${j.a} ${j.prompt}`));
    } finally {
      await server.close();
    }
  },
);

test('LOWRANK_NATIVE_DECODE=0: the server decodes on tfjs with the same ids', { skip }, async () => {
  process.env.LOWRANK_NATIVE_DECODE = '0';
  let s: Awaited<ReturnType<typeof startServer>>;
  try {
    s = await startServer(world);
  } finally {
    delete process.env.LOWRANK_NATIVE_DECODE;
  }
  const { server, client, url } = s;
  try {
    const health = (await (await fetch(`${url}/health`)).json()) as { decode_engine: string };
    assert.match(health.decode_engine, /^tfjs \(disabled by LOWRANK_NATIVE_DECODE=0\)$/);
    const jobs = ['lora_a', 'lora_a', 'lora_b', 'base'].map((a, i) => ({ a, prompt: `${i}*${i}=`, n: 8 }));
    const want: { ids: number[] }[] = [];
    for (const j of jobs) want.push(await libraryGreedy(world, j.a === 'base' ? null : j.a, j.prompt, j.n));
    const alone = await greedy(client, 'lora_a', jobs[0]!.prompt, 8); // the single-adapter shortcut
    assert.deepEqual(alone[0], want[0]!.ids);
    const got = await Promise.all(jobs.map((j) => greedy(client, j.a, j.prompt, j.n)));
    jobs.forEach((j, i) => assert.deepEqual(got[i]![0], want[i]!.ids, `${j.a} ${j.prompt}`));
    assert.equal(rowsBy(server, 'native'), 0);
    assert.ok(rowsBy(server, 'tfjs') > 0);
  } finally {
    await server.close();
  }
});
