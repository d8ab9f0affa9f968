/**
 * `createServer`: one base model, many PEFT adapters, an OpenAI-compatible HTTP API (fastify).
 *
 * Routes: `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`, `POST /v1/classify`
 * (classification models), `POST /v1/adapters/load|unload`, `GET /health`, `GET /metrics`.
 * Safe by default: binds 127.0.0.1, optional bearer key (all routes but /health), body and max_tokens
 * limits, adapter names checked against the folder, OpenAI-shaped JSON errors, structured (pino) logs,
 * graceful `close()`.
 *
 * @example
 * const server = await createServer({ model: 'models/stories260K', adapters: 'adapters', apiKey: 'k' });
 * const url = await server.listen(); // http://127.0.0.1:8000
 * // … new OpenAI({ baseURL: `${url}/v1`, apiKey: 'k' }).completions.create({ model: 'shakespeare', prompt: 'ROMEO:' })
 * await server.close();
 */
import { timingSafeEqual } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { ConfigError } from '../errors.js';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import type { PreTrainedModel } from '../models/base.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { AdapterStore, BASE_MODEL_NAME } from './adapters.js';
import { readChatTemplate, type ChatTemplate } from './chat.js';
import { Engine } from './engine.js';
import { ApiError, badRequest, toApiError } from './errors.js';
import { handleGeneration, type GenerationContext } from './generation.js';
import { Metrics } from './metrics.js';
import { classify } from './classify.js';
import { asBody, type Limits } from './requests.js';

export interface ServeOptions {
  /** A model path (Hugging Face folder or llama2.c .bin, tokenizer beside it), or a loaded model. */
  model: string | { model: PreTrainedModel; tokenizer: Tokenizer; chatTemplate?: ChatTemplate; id?: string };
  /** Tokenizer path when `model` is a path and the tokenizer is elsewhere. */
  tokenizer?: string;
  /** Folder of PEFT adapter folders; each subfolder name is a model name. */
  adapters?: string;
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** Require `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Sequences decoding together (default 16). */
  maxActive?: number;
  /** Requests waiting for a slot before 429 (default 64). */
  maxQueue?: number;
  /** Largest max_tokens (default 512). */
  maxTokens?: number;
  /** Largest n / prompts × n (default 8). */
  maxN?: number;
  /** Request body limit in bytes (default 1 MiB → 413 beyond). */
  bodyLimit?: number;
  /** Per-request timeout (default 120 s → 504). */
  requestTimeoutMs?: number;
  /** Adapter cache in bytes (default 256 MiB). */
  adapterCacheBytes?: number;
  /** Model context when the config gives none (default 2048). */
  contextLength?: number;
  /** fastify/pino logger options (default: info-level JSON to stdout); false for none. */
  logger?: FastifyServerOptions['logger'];
  /** Compute backend when `model` is a path (default 'auto'). */
  backend?: string;
}

export interface LowrankServer {
  app: FastifyInstance;
  engine: Engine;
  adapters: AdapterStore;
  metrics: Metrics;
  /** Starts listening; returns the base URL. */
  listen(): Promise<string>;
  /** Graceful shutdown: stop accepting, let running requests finish for `graceMs` (default 10 s), cancel the rest. */
  close(graceMs?: number): Promise<void>;
}

function contextOf(model: PreTrainedModel, fallback: number): number {
  const c = model.config as Record<string, unknown>;
  for (const k of ['max_position_embeddings', 'n_positions', 'max_seq_len']) {
    if (typeof c[k] === 'number' && (c[k] as number) > 0) return c[k] as number;
  }
  return fallback;
}

async function loadFromPath(o: ServeOptions & { model: string }) {
  const { initBackend } = await import('../tensor/backend.js');
  await initBackend(o.backend ?? 'auto');
  const { loadModel } = await import('../models/load.js');
  const { loadTokenizer } = await import('../io/tokenizer.js');
  const { tokenizerPathFor } = await import('../run/data.js');
  const tokenizer = await loadTokenizer(tokenizerPathFor(o.model, o.tokenizer));
  const model = await loadModel(o.model, { seed: 0 });
  return { model, tokenizer, chatTemplate: await readChatTemplate(o.model), id: o.model };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Builds the server (model loaded, routes registered, not yet listening).
 */
export async function createServer(opts: ServeOptions): Promise<LowrankServer> {
  if (opts.adapters !== undefined && !(await stat(opts.adapters).catch(() => null))?.isDirectory()) {
    throw new ConfigError(
      'createServer.adapters',
      'must be an existing folder of adapter folders',
      opts.adapters,
      'create it or fix the path',
    );
  }
  const owned = typeof opts.model === 'string';
  const m =
    typeof opts.model === 'string'
      ? await loadFromPath(opts as ServeOptions & { model: string })
      : opts.model;
  const metrics = new Metrics();
  // fastify is loaded here, not at import: `import 'lowrank'` (which exports createServer) should not
  // pay the HTTP stack's ~19 MB resident unless a server is built.
  const { default: Fastify } = await import('fastify');
  const app = Fastify({
    logger: opts.logger ?? true,
    bodyLimit: opts.bodyLimit ?? 1 << 20,
  });
  const store = new AdapterStore(m.model, {
    dir: opts.adapters,
    maxBytes: opts.adapterCacheBytes ?? 256 << 20,
    metrics,
    log: (o, msg) => app.log.info(o, msg),
  });
  const limits: Limits = {
    maxTokens: opts.maxTokens ?? 512,
    maxN: opts.maxN ?? 8,
    contextLength: contextOf(m.model, opts.contextLength ?? 2048),
  };
  const engine = new Engine(store, {
    maxActive: opts.maxActive ?? 16,
    maxQueue: opts.maxQueue ?? 64,
    metrics,
    maxSeq: limits.contextLength,
  });
  app.log.info({ decodeEngine: engine.decodeEngine }, 'decode engine');
  const recent: number[] = []; // generation timestamps (ms) of the last 10 s
  const WINDOW_MS = 10_000;
  const trim = (now: number) => {
    while (recent.length > 0 && recent[0]! < now - WINDOW_MS) recent.shift();
  };
  metrics.gauge('lowrank_tokens_per_second', 'Tokens generated per second over the last 10 s').set(() => {
    trim(performance.now());
    return recent.length / (WINDOW_MS / 1000);
  });
  metrics.gauge('lowrank_adapter_cache_bytes', 'Bytes of adapter weights loaded').set(() => store.bytes);
  metrics.gauge('lowrank_adapters_loaded', 'Adapters loaded').set(() => store.loaded().length);
  const ctx: GenerationContext = {
    engine,
    store,
    tokenizer: m.tokenizer,
    chatTemplate: m.chatTemplate,
    limits,
    requestTimeoutMs: opts.requestTimeoutMs ?? 120_000,
    metrics,
    onTokens: (n) => {
      const now = performance.now();
      for (let i = 0; i < n; i++) recent.push(now);
      if (recent.length > 100_000) trim(now);
    },
  };
  let closing = false;
  const requests = metrics.counter('lowrank_requests_total', 'HTTP requests by route and status');

  // counted when the socket side ends, so streamed (hijacked) and abandoned requests count too
  app.addHook('onRequest', async (request, reply) => {
    reply.raw.once('close', () =>
      requests.inc({
        route: request.routeOptions.url ?? 'unknown',
        status: reply.raw.writableFinished ? String(reply.raw.statusCode) : 'client_closed',
      }),
    );
  });
  app.addHook('onRequest', async (request) => {
    if (closing && request.url !== '/health')
      throw new ApiError(
        503,
        'the server is shutting down',
        'service_unavailable_error',
        null,
        'shutting_down',
      );
    if (!opts.apiKey || request.url === '/health') return;
    const h = request.headers.authorization ?? '';
    const key = h.startsWith('Bearer ') ? h.slice(7) : '';
    if (!safeEqual(key, opts.apiKey)) {
      throw new ApiError(
        401,
        'Incorrect API key provided: send Authorization: Bearer <the --api-key the server was started with>.',
        'authentication_error',
        null,
        'invalid_api_key',
      );
    }
  });
  app.setErrorHandler(async (error, request, reply) => {
    const e = error as Error & { statusCode?: number; code?: string; validation?: unknown };
    let api: ApiError;
    if (e instanceof ApiError) api = e;
    else if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      api = new ApiError(
        413,
        `request body exceeds the ${opts.bodyLimit ?? 1 << 20}-byte limit`,
        'invalid_request_error',
        null,
        'body_too_large',
      );
    else if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      api = new ApiError(
        415,
        'send Content-Type: application/json',
        'invalid_request_error',
        null,
        'unsupported_media_type',
      );
    else if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500)
      api = new ApiError(
        e.statusCode,
        `invalid request: ${e.message}`,
        'invalid_request_error',
        null,
        e.code ?? 'invalid_request',
      );
    else api = toApiError(e);
    if (api.status >= 500) request.log.error({ err: e }, 'request failed');
    else request.log.info({ status: api.status, code: api.code }, api.message);
    return reply.status(api.status).send(api.body());
  });
  app.setNotFoundHandler(async (request, reply) =>
    reply
      .status(404)
      .send(
        new ApiError(
          404,
          `no route ${request.method} ${request.url}`,
          'invalid_request_error',
          null,
          'unknown_url',
        ).body(),
      ),
  );

  app.get('/health', async () => ({
    status: closing ? 'shutting_down' : 'ok',
    model: m.id ?? m.model.architecture,
    active: engine.running,
    queued: engine.queued,
    adapters_loaded: store.loaded(),
    decode_engine: engine.decodeEngine,
  }));
  app.get('/metrics', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render()),
  );
  app.get('/v1/models', async () => {
    const created = Math.floor(Date.now() / 1000);
    const names = [BASE_MODEL_NAME, ...(await store.list())];
    const loaded = new Set(store.loaded());
    return {
      object: 'list',
      data: names.map((id) => ({
        id,
        object: 'model',
        created,
        owned_by: 'lowrank',
        ...(id === BASE_MODEL_NAME
          ? { root: m.id ?? null }
          : { parent: BASE_MODEL_NAME, loaded: loaded.has(id) }),
      })),
    };
  });
  const adapterName = (body: unknown) => {
    const b = asBody(body);
    const n = b.name ?? b.model;
    if (typeof n !== 'string' || n === '' || n === BASE_MODEL_NAME)
      throw badRequest('name', 'must name an adapter folder', n);
    return n;
  };
  app.post('/v1/adapters/load', async (request) => {
    const name = adapterName(request.body);
    return { name, loaded: true, bytes: await store.load(name) };
  });
  app.post('/v1/adapters/unload', async (request) => {
    const name = adapterName(request.body);
    if (!store.unload(name))
      throw new ApiError(
        404,
        `adapter "${name}" is not loaded`,
        'invalid_request_error',
        'name',
        'model_not_found',
      );
    return { name, loaded: false };
  });
  const causal = () => {
    if (m.model.taskType !== 'CAUSAL_LM')
      throw new ApiError(
        400,
        `this server's model is ${m.model.architecture}, not a causal LM: use POST /v1/classify`,
        'invalid_request_error',
        null,
        'wrong_model_kind',
      );
  };
  app.post('/v1/completions', async (request, reply) => {
    causal();
    await handleGeneration(ctx, request, reply, 'completion');
  });
  app.post('/v1/chat/completions', async (request, reply) => {
    causal();
    await handleGeneration(ctx, request, reply, 'chat');
  });
  app.post('/v1/classify', async (request) => classify(ctx, request.body));

  let url = '';
  return {
    app,
    engine,
    adapters: store,
    metrics,
    async listen() {
      url = await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 8000 });
      return url;
    },
    async close(graceMs = 10_000) {
      if (closing) return;
      closing = true;
      app.log.info({ graceMs, active: engine.running, queued: engine.queued }, 'shutting down');
      await engine.close(graceMs);
      await app.close();
      store.dispose();
      if (owned) m.model.dispose();
    },
  };
}
