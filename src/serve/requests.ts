/**
 * Validation of OpenAI request bodies (`/v1/completions`, `/v1/chat/completions`): every field is
 * checked for type and range, and unsupported fields that would change the answer (penalties,
 * logit_bias, tools, echo, suffix, best_of) are refused with a 400 naming them rather than ignored.
 *
 * @example const r = parseCommon(body, limits); // { model, maxTokens, n, stop, sampling, stream, … }
 */
import { badRequest } from './errors.js';
import type { Sampling } from './engine.js';

export interface Limits {
  /** Largest `max_tokens` accepted. */
  maxTokens: number;
  /** Largest `n`. */
  maxN: number;
  /** Prompt + completion positions the model can hold. */
  contextLength: number;
}

export interface CommonRequest {
  model: string;
  maxTokens: number;
  n: number;
  stop: string[];
  sampling: Sampling;
  stream: boolean;
  includeUsage: boolean;
}

type Body = Record<string, unknown>;

/** The body must be a JSON object. */
export function asBody(body: unknown): Body {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw badRequest('body', 'must be a JSON object', Array.isArray(body) ? 'array' : typeof body);
  return body as Body;
}

function num(b: Body, key: string, lo: number, hi: number, int: boolean): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v)) || v < lo || v > hi)
    throw badRequest(key, `must be ${int ? 'an integer' : 'a number'} in [${lo}, ${hi}]`, v);
  return v;
}

function refuse(b: Body, key: string, isDefault: (v: unknown) => boolean, why: string): void {
  if (b[key] !== undefined && b[key] !== null && !isDefault(b[key])) throw badRequest(key, why, b[key]);
}

/** Fields both endpoints share. */
export function parseCommon(b: Body, limits: Limits, maxTokensKeys: string[]): CommonRequest {
  if (typeof b.model !== 'string' || b.model === '')
    throw badRequest('model', 'is required: "base" or an adapter name from GET /v1/models', b.model);
  let maxTokens = 16; // OpenAI's default for completions
  for (const k of maxTokensKeys) maxTokens = num(b, k, 1, limits.maxTokens, true) ?? maxTokens;
  const n = num(b, 'n', 1, limits.maxN, true) ?? 1;
  const temperature = num(b, 'temperature', 0, 2, false) ?? 1;
  const topP = num(b, 'top_p', Number.MIN_VALUE, 1, false) ?? 1;
  const topK = num(b, 'top_k', -1, 1_000_000, true) ?? 0;
  const seed = num(b, 'seed', -(2 ** 31), 2 ** 31 - 1, true) ?? 0;
  let stop: string[] = [];
  if (typeof b.stop === 'string') stop = [b.stop];
  else if (Array.isArray(b.stop)) stop = b.stop as string[];
  else if (b.stop !== undefined && b.stop !== null)
    throw badRequest('stop', 'must be a string or a list of strings', b.stop);
  if (stop.length > 4 || stop.some((s) => typeof s !== 'string' || s === ''))
    throw badRequest('stop', 'must hold at most 4 non-empty strings', b.stop);
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean')
    throw badRequest('stream', 'must be true or false', b.stream);
  const so = b.stream_options as Body | undefined | null;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so)))
    throw badRequest('stream_options', 'must be an object', so);
  const zero = (v: unknown) => v === 0;
  refuse(b, 'presence_penalty', zero, 'is not supported (only 0)');
  refuse(b, 'frequency_penalty', zero, 'is not supported (only 0)');
  refuse(
    b,
    'logit_bias',
    (v) => typeof v === 'object' && Object.keys(v as object).length === 0,
    'is not supported',
  );
  return {
    model: b.model,
    maxTokens,
    n,
    stop,
    sampling: { temperature, topP, topK: topK < 0 ? 0 : topK, seed },
    stream: b.stream === true,
    includeUsage: so?.include_usage === true,
  };
}

export interface CompletionRequest extends CommonRequest {
  /** Text prompts (or token-id prompts) — one choice group of n per prompt. */
  prompts: (string | number[])[];
  /** Top log-probabilities per token (0–5), or undefined for none. */
  logprobs: number | undefined;
}

/** `/v1/completions` body. */
export function parseCompletion(body: unknown, limits: Limits): CompletionRequest {
  const b = asBody(body);
  const common = parseCommon(b, limits, ['max_tokens']);
  const p = b.prompt;
  const isIds = (x: unknown) =>
    Array.isArray(x) && x.length > 0 && x.every((i) => Number.isInteger(i) && i >= 0);
  let prompts: (string | number[])[];
  if (typeof p === 'string') prompts = [p];
  else if (isIds(p)) prompts = [p as number[]];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string' || isIds(x)))
    prompts = p as (string | number[])[];
  else
    throw badRequest(
      'prompt',
      'must be a string, a list of strings, or token ids',
      p === undefined ? 'nothing' : p,
    );
  if (prompts.length * common.n > limits.maxN)
    throw badRequest('prompt', `prompts × n must not exceed ${limits.maxN}`, prompts.length * common.n);
  refuse(b, 'echo', (v) => v === false, 'is not supported');
  refuse(b, 'suffix', (v) => v === '', 'is not supported');
  refuse(b, 'best_of', (v) => v === 1 || v === common.n, 'is not supported (best_of must equal n)');
  return { ...common, prompts, logprobs: num(b, 'logprobs', 0, 5, true) };
}

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatRequest extends CommonRequest {
  messages: ChatMessage[];
  /** Whether to return log-probabilities, and how many alternatives per token. */
  logprobs: boolean;
  topLogprobs: number;
}

/** `/v1/chat/completions` body. */
export function parseChat(body: unknown, limits: Limits): ChatRequest {
  const b = asBody(body);
  const common = parseCommon(b, limits, ['max_tokens', 'max_completion_tokens']);
  if (!Array.isArray(b.messages) || b.messages.length === 0)
    throw badRequest('messages', 'must be a non-empty list of {role, content}', b.messages);
  const messages = b.messages.map((m: unknown, i): ChatMessage => {
    const msg = m as Body;
    if (!msg || typeof msg !== 'object' || typeof msg.role !== 'string')
      throw badRequest(`messages[${i}].role`, 'must be a string (system, user, assistant)', msg?.role);
    let content = msg.content;
    if (Array.isArray(content)) {
      // content parts: text only
      content = content
        .map((part: Body, j) => {
          if (part?.type !== 'text' || typeof part.text !== 'string')
            throw badRequest(`messages[${i}].content[${j}]`, 'only text parts are supported', part?.type);
          return part.text;
        })
        .join('');
    }
    if (typeof content !== 'string')
      throw badRequest(`messages[${i}].content`, 'must be a string or a list of text parts', content);
    return { role: msg.role, content };
  });
  if (b.logprobs !== undefined && b.logprobs !== null && typeof b.logprobs !== 'boolean')
    throw badRequest('logprobs', 'must be true or false', b.logprobs);
  const topLogprobs = num(b, 'top_logprobs', 0, 20, true) ?? 0;
  refuse(b, 'tools', (v) => Array.isArray(v) && v.length === 0, 'is not supported');
  refuse(b, 'response_format', (v) => (v as Body)?.type === 'text', 'is not supported (text only)');
  return { ...common, messages, logprobs: b.logprobs === true, topLogprobs };
}
