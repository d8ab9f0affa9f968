/**
 * Starting the worker's compute backend so that the page never hangs at "backend: starting…".
 *
 * A cross-origin isolated page (served with COOP/COEP headers) makes tfjs pick its threaded wasm
 * binary, whose threads are extra Web Workers started from the bundled code. If they fail (a crashed
 * worker, or no answer within {@link INIT_TIMEOUT_MS}), the worker is replaced by a fresh one that is
 * told not to use threads, and the page says that it runs single-threaded and why.
 */
import type { WorkerClient } from '../client.js';
import type { BackendName, Replies } from '../protocol.js';

/** Longest wait for the backend to start: WebGL/WebGPU shader set-up on a loaded 2-core machine takes seconds. */
export const INIT_TIMEOUT_MS = 60_000;

export interface StartedBackend {
  /** The worker to use from now on (a new one after a fallback). */
  client: WorkerClient;
  reply: Replies['init'];
  /** How the backend runs, for the header: threads, or why it is single-threaded. */
  note: string;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
    p.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

/** What the header says about threads (wasm) for an init reply. */
export function threadingNote(reply: Replies['init']): string {
  if (reply.backend !== 'wasm') return '';
  const n = reply.wasm.threads;
  if (reply.wasm.threadedBinary) return `threaded · ${n} thread${n === 1 ? '' : 's'}`;
  return reply.wasm.isolated
    ? 'single-threaded'
    : 'single-threaded (serve the page with COOP/COEP headers for wasm threads)';
}

/**
 * Initialises the backend in `first`; when that fails on a cross-origin isolated page, retries in a
 * new worker from `makeClient` without wasm threads. Rejects only when the single-threaded start
 * fails too (or, on a page that is not isolated, with the first error).
 *
 * @example
 * const { client, reply, note } = await startBackend(worker, makeClient, 'auto', wasmPaths);
 */
export async function startBackend(
  first: WorkerClient,
  makeClient: () => WorkerClient,
  backend: BackendName,
  wasmPaths: Record<string, string>,
  timeoutMs = INIT_TIMEOUT_MS,
): Promise<StartedBackend> {
  try {
    const reply = await withTimeout(
      first.call('init', { backend, wasmPaths, wasmThreads: true }),
      timeoutMs,
      `the "${backend}" backend`,
    );
    return { client: first, reply, note: threadingNote(reply) };
  } catch (err) {
    first.terminate();
    if (!globalThis.crossOriginIsolated) throw err;
    const why = err instanceof Error ? err.message : String(err);
    console.warn(`threaded wasm failed (${why}); starting single-threaded`);
    const client = makeClient();
    const reply = await withTimeout(
      client.call('init', { backend, wasmPaths, wasmThreads: false }),
      timeoutMs,
      `the "${backend}" backend (single-threaded)`,
    );
    return { client, reply, note: `single-threaded: starting with wasm threads failed (${why})` };
  }
}
