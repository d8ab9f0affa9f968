/**
 * `POST /v1/completions` and `/v1/chat/completions`: a validated request becomes one engine job per
 * prompt (n choices each); the answer is one JSON body, or server-sent events as OpenAI streams them
 * (`data: {chunk}\n\n` per token, a last chunk per choice with `finish_reason`, an optional usage chunk,
 * then `data: [DONE]`). A client that disconnects cancels its sequences; a request past its timeout
 * ends with 504 (or an error event when streaming).
 *
 * @example await handleGeneration(ctx, request, reply, 'chat');
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Tokenizer } from '../io/tokenizer.js';
import type { AdapterStore } from './adapters.js';
import type { ChatTemplate } from './chat.js';
import { renderChat } from './chat.js';
import type { ChoiceResult, Engine, FinishReason } from './engine.js';
import { ApiError, badRequest, toApiError } from './errors.js';
import { LATENCY_BUCKETS, type Metrics } from './metrics.js';
import { parseChat, parseCompletion, type Limits } from './requests.js';
import { TextAssembler, tokenLogprobs } from './text.js';

/** What the generation routes share with the server. */
export interface GenerationContext {
  engine: Engine;
  store: AdapterStore;
  tokenizer: Tokenizer;
  chatTemplate: ChatTemplate | undefined;
  limits: Limits;
  requestTimeoutMs: number;
  metrics: Metrics;
  /** Tokens generated per recent second (for the tokens/s gauge). */
  onTokens(n: number): void;
}

type Kind = 'completion' | 'chat';

interface TokenLog {
  token: string;
  logprob: number;
  top: { token: string; logprob: number }[];
}

interface ChoiceState {
  index: number;
  text: TextAssembler;
  logs: TokenLog[];
  /** Logprob entries not yet sent in a stream chunk. */
  unsent: number;
  started: boolean;
}

const bytesOf = (s: string) => Array.from(new TextEncoder().encode(s));

function completionLogprobs(logs: TokenLog[]) {
  let offset = 0;
  const textOffset = logs.map((l) => {
    const o = offset;
    offset += l.token.length;
    return o;
  });
  return {
    tokens: logs.map((l) => l.token),
    token_logprobs: logs.map((l) => l.logprob),
    top_logprobs: logs.map((l) => Object.fromEntries(l.top.map((t) => [t.token, t.logprob]))),
    text_offset: textOffset,
  };
}

function chatLogprobs(logs: TokenLog[]) {
  return {
    content: logs.map((l) => ({
      token: l.token,
      logprob: l.logprob,
      bytes: bytesOf(l.token),
      top_logprobs: l.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytesOf(t.token) })),
    })),
  };
}

/** Handles one completions or chat request end to end. */
export async function handleGeneration(
  ctx: GenerationContext,
  request: FastifyRequest,
  reply: FastifyReply,
  kind: Kind,
): Promise<void> {
  const t0 = performance.now();
  const endpoint = kind === 'chat' ? 'chat_completions' : 'completions';
  const { tokenizer: tok, limits } = ctx;
  const req = kind === 'chat' ? parseChat(request.body, limits) : parseCompletion(request.body, limits);
  const topLogprobs =
    kind === 'chat'
      ? (req as ReturnType<typeof parseChat>).logprobs
        ? (req as ReturnType<typeof parseChat>).topLogprobs
        : -1
      : ((req as ReturnType<typeof parseCompletion>).logprobs ?? -1);
  const prompts: number[][] =
    kind === 'chat'
      ? [
          tok.encode(renderChat(ctx.chatTemplate, (req as ReturnType<typeof parseChat>).messages), {
            addSpecialTokens: false,
          }),
        ]
      : (req as ReturnType<typeof parseCompletion>).prompts.map((p) =>
          typeof p === 'string' ? tok.encode(p) : p,
        );
  for (const [i, p] of prompts.entries()) {
    if (p.length === 0) throw badRequest('prompt', 'encodes to no tokens', '');
    if (p.some((id) => id >= tok.vocabSize))
      throw badRequest('prompt', `token ids must be < ${tok.vocabSize}`, p);
    if (p.length + req.maxTokens > limits.contextLength) {
      throw badRequest(
        kind === 'chat' ? 'messages' : 'prompt',
        `prompt${prompts.length > 1 ? ` ${i}` : ''} (${p.length} tokens) + max_tokens (${req.maxTokens}) exceed the model's context of ${limits.contextLength}`,
        p.length + req.maxTokens,
      );
    }
  }
  // vLLM's extension: logprob tokens as "token_id:<id>" (exact ids, e.g. for byte tokens)
  const asIds = (request.body as Record<string, unknown>).return_tokens_as_token_ids === true;
  const tokenText = (tokenId: number) => (asIds ? `token_id:${tokenId}` : tok.decode([tokenId]));
  const handle = await ctx.store.acquire(req.model);
  const abort = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) abort.abort('disconnect');
  };
  reply.raw.on('close', onClose);
  const timer = setTimeout(() => abort.abort('timeout'), ctx.requestTimeoutMs);
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const base = {
    id,
    object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
    created,
    model: req.model,
  };
  const states: ChoiceState[] = prompts.flatMap((_, p) =>
    Array.from({ length: req.n }, (_, c) => ({
      index: p * req.n + c,
      text: new TextAssembler(tok, req.stop),
      logs: [],
      unsent: 0,
      started: false,
    })),
  );
  let firstToken = true;
  const send = (s: ChoiceState, delta: string, finish: FinishReason | null) => {
    if (!req.stream) return;
    const logs = s.logs.slice(s.logs.length - s.unsent);
    if (delta === '' && finish === null && logs.length === 0 && s.started) return;
    s.unsent = 0;
    const lp = topLogprobs < 0 ? null : kind === 'chat' ? chatLogprobs(logs) : completionLogprobs(logs);
    const choice =
      kind === 'chat'
        ? {
            index: s.index,
            delta:
              finish !== null ? {} : s.started ? { content: delta } : { role: 'assistant', content: delta },
            logprobs: lp,
            finish_reason: finish,
          }
        : { index: s.index, text: delta, logprobs: lp, finish_reason: finish };
    s.started = true;
    writeEvent({ ...base, choices: [choice], ...(req.includeUsage ? { usage: null } : {}) });
  };
  const writeEvent = (obj: unknown) => {
    if (!reply.raw.destroyed) reply.raw.write(`data: ${JSON.stringify(obj)}\n\n`);
  };
  const refused = ctx.engine.admissionError(prompts.map(() => req.n));
  if (refused) {
    clearTimeout(timer);
    reply.raw.off('close', onClose);
    handle.release();
    throw refused;
  }
  if (req.stream) {
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': String(request.id),
    });
  }
  let results: ChoiceResult[][];
  try {
    results = await Promise.all(
      prompts.map((promptIds, p) =>
        ctx.engine.submit({
          promptIds,
          adapter: handle,
          n: req.n,
          maxTokens: req.maxTokens,
          eos: tok.eosTokenId === undefined ? [] : [tok.eosTokenId],
          sampling: req.sampling,
          signal: abort.signal,
          onToken: (c, tokenId, logits) => {
            if (firstToken) {
              firstToken = false;
              ctx.metrics
                .histogram('lowrank_time_to_first_token_seconds', 'Time to the first token', LATENCY_BUCKETS)
                .observe((performance.now() - t0) / 1000, { endpoint });
            }
            ctx.onTokens(1);
            const s = states[p * req.n + c]!;
            if (topLogprobs >= 0) {
              const lp = tokenLogprobs(logits, tokenId, topLogprobs);
              s.logs.push({
                token: tokenText(tokenId),
                logprob: lp.logprob,
                top: lp.top.map((t) => ({ token: tokenText(t.id), logprob: t.logprob })),
              });
              s.unsent++;
            }
            const { delta, stopped } = s.text.push(tokenId);
            send(s, delta, null);
            return !stopped;
          },
        }),
      ),
    );
  } catch (e) {
    abort.abort('error'); // the request's other prompts stop too
    const err = toApiError(e);
    if (req.stream) {
      writeEvent(err.body());
      reply.raw.end();
      return;
    }
    throw err;
  } finally {
    clearTimeout(timer);
    reply.raw.off('close', onClose);
    handle.release();
  }
  const flat = results.flat();
  const completionTokens = flat.reduce((s, r) => s + r.tokens, 0);
  const usage = {
    prompt_tokens: prompts.reduce((s, p) => s + p.length, 0),
    completion_tokens: completionTokens,
    total_tokens: prompts.reduce((s, p) => s + p.length, 0) + completionTokens,
  };
  const log = { model: req.model, n: req.n, ...usage, ms: Math.round(performance.now() - t0) };
  if (abort.signal.aborted || flat.some((r) => r.finishReason === 'cancelled')) {
    const reason = abort.signal.aborted ? String(abort.signal.reason) : 'shutdown';
    request.log.info({ ...log, cancelled: reason }, 'generation cancelled');
    ctx.metrics
      .counter('lowrank_cancelled_total', 'Requests cancelled (disconnect, timeout, shutdown)')
      .inc({ reason });
    const err =
      reason === 'timeout'
        ? new ApiError(
            504,
            `the request took longer than ${ctx.requestTimeoutMs} ms and was cancelled`,
            'timeout_error',
            null,
            'timeout',
          )
        : new ApiError(
            503,
            'the request was cancelled (server shutting down)',
            'service_unavailable_error',
            null,
            'cancelled',
          );
    if (reason === 'disconnect') {
      if (!req.stream) reply.hijack(); // nobody to answer
      reply.raw.destroy();
      return;
    }
    if (req.stream) {
      writeEvent(err.body());
      reply.raw.end();
      return;
    }
    throw err;
  }
  const finish = (r: ChoiceResult) => (r.finishReason === 'length' ? 'length' : 'stop');
  ctx.metrics
    .histogram('lowrank_request_duration_seconds', 'Request latency', LATENCY_BUCKETS)
    .observe((performance.now() - t0) / 1000, { endpoint });
  request.log.info(log, 'generation done');
  if (req.stream) {
    states.forEach((s, i) => {
      send(s, s.text.flush(), null);
      send(s, '', finish(flat[i]!));
    });
    if (req.includeUsage) writeEvent({ ...base, choices: [], usage });
    reply.raw.write('data: [DONE]\n\n');
    reply.raw.end();
    return;
  }
  const choices = states.map((s, i) => {
    const text = s.text.output + s.text.flush();
    const lp = topLogprobs < 0 ? null : kind === 'chat' ? chatLogprobs(s.logs) : completionLogprobs(s.logs);
    return kind === 'chat'
      ? {
          index: s.index,
          message: { role: 'assistant', content: text },
          logprobs: lp,
          finish_reason: finish(flat[i]!),
        }
      : { index: s.index, text, logprobs: lp, finish_reason: finish(flat[i]!) };
  });
  await reply.send({
    ...base,
    object: kind === 'chat' ? 'chat.completion' : 'text_completion',
    choices,
    usage,
  });
}
