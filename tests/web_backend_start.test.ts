// The page's backend start (web/ui/backend.ts) with stand-in workers: a threaded start that crashes
// or never answers falls back to a new single-threaded worker on an isolated page, and never waits
// forever; on a page that is not isolated the first error is the answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, threadingNote } from '../web/ui/backend.js';
import type { WorkerClient } from '../web/client.js';
import type { Replies } from '../web/protocol.js';

const WASM_PATHS = { 'tfjs-backend-wasm.wasm': 'x.wasm' };
/** Short enough for a test, long enough that an answering stand-in always answers first. */
const TIMEOUT_MS = 200;

function reply(threadedBinary: boolean, threads: number, isolated = true): Replies['init'] {
  return {
    backend: 'wasm',
    tried: [{ name: 'wasm', ok: true }],
    wasm: { isolated, threadedBinary, threads },
  };
}

/** A stand-in worker whose `init` does what `behaviour` says; records requests and termination. */
function fake(behaviour: 'ok' | 'crash' | 'hang', r: Replies['init'] = reply(false, 1)) {
  const state = { requests: [] as unknown[], terminated: false };
  const client = {
    call(type: string, payload: unknown) {
      state.requests.push({ type, ...(payload as object) });
      if (behaviour === 'ok') return Promise.resolve(r);
      if (behaviour === 'crash') return Promise.reject(new Error('worker crashed: e is not defined'));
      return new Promise(() => undefined);
    },
    terminate() {
      state.terminated = true;
    },
  } as unknown as WorkerClient;
  return { client, state };
}

async function isolated<T>(value: boolean, fn: () => Promise<T>): Promise<T> {
  const g = globalThis as { crossOriginIsolated?: boolean };
  const before = g.crossOriginIsolated;
  g.crossOriginIsolated = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete g.crossOriginIsolated;
    else g.crossOriginIsolated = before;
  }
}

test('a threaded start that answers is kept, and the note says how wasm runs', async () => {
  const first = fake('ok', reply(true, 4));
  const started = await isolated(true, () =>
    startBackend(first.client, () => assert.fail('no second worker'), 'wasm', WASM_PATHS, TIMEOUT_MS),
  );
  assert.equal(started.client, first.client);
  assert.equal(started.note, 'threaded · 4 threads');
  assert.deepEqual(first.state.requests, [
    { type: 'init', backend: 'wasm', wasmPaths: WASM_PATHS, wasmThreads: true },
  ]);
  assert.equal(
    threadingNote(reply(false, 1, false)),
    'single-threaded (serve the page with COOP/COEP headers for wasm threads)',
  );
  assert.equal(threadingNote({ ...reply(false, 0), backend: 'webgl' }), '');
});

for (const behaviour of ['crash', 'hang'] as const) {
  test(`isolated page, threaded start ${behaviour === 'crash' ? 'crashes' : 'never answers'}: a new worker runs single-threaded`, async () => {
    const first = fake(behaviour);
    const second = fake('ok', reply(false, 1));
    const started = await isolated(true, () =>
      startBackend(first.client, () => second.client, 'wasm', WASM_PATHS, TIMEOUT_MS),
    );
    assert.equal(first.state.terminated, true, 'the failed worker is stopped');
    assert.equal(started.client, second.client);
    assert.deepEqual(second.state.requests, [
      { type: 'init', backend: 'wasm', wasmPaths: WASM_PATHS, wasmThreads: false },
    ]);
    assert.match(
      started.note,
      behaviour === 'crash'
        ? /^single-threaded: starting with wasm threads failed \(worker crashed: e is not defined\)$/
        : /^single-threaded: starting with wasm threads failed \(the "wasm" backend did not answer within 0\.2 s\)$/,
    );
  });
}

test('not isolated: threads were not involved, so the first error is reported; a hang still ends', async () => {
  const crash = fake('crash');
  await assert.rejects(
    isolated(false, () =>
      startBackend(crash.client, () => assert.fail('no retry'), 'wasm', WASM_PATHS, TIMEOUT_MS),
    ),
    /e is not defined/,
  );
  const hang = fake('hang');
  await assert.rejects(
    isolated(false, () =>
      startBackend(hang.client, () => assert.fail('no retry'), 'auto', WASM_PATHS, TIMEOUT_MS),
    ),
    /the "auto" backend did not answer within 0\.2 s/,
  );
  assert.equal(hang.state.terminated, true);
});

test('isolated page where the single-threaded start fails too: rejects, never hangs', async () => {
  await assert.rejects(
    isolated(true, () =>
      startBackend(fake('crash').client, () => fake('hang').client, 'wasm', WASM_PATHS, TIMEOUT_MS),
    ),
    /single-threaded\) did not answer within 0\.2 s/,
  );
});
