/**
 * HTTP errors in OpenAI's shape: `{ "error": { "message", "type", "param", "code" } }` with the status
 * an OpenAI client expects (400 bad request, 401 key, 404 unknown model, 413 body too large, 422 an
 * adapter folder that cannot be loaded, 429 queue full, 503 shutting down, 504 timeout, 500 bug).
 * Library errors keep their typed message (`where: rule (got X). fix.`).
 *
 * @example throw new ApiError(404, 'The model "x" does not exist', 'invalid_request_error', 'model', 'model_not_found');
 */
import {
  CheckpointError,
  ConfigError,
  DataError,
  LowrankError,
  NotSupportedError,
  ShapeError,
} from '../errors.js';

export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'service_unavailable_error'
  | 'timeout_error';

/** An error answered as JSON with `status`; `param` names the request field at fault. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ApiErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The response body. */
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 naming the request field: `bad('max_tokens', 'must be a positive integer', 0)`. */
export function badRequest(param: string, rule: string, got?: unknown): ApiError {
  const shown = got === undefined ? '' : ` (got ${JSON.stringify(got)})`;
  return new ApiError(400, `${param}: ${rule}${shown}.`, 'invalid_request_error', param, 'invalid_value');
}

/**
 * Maps anything thrown while serving a request to an {@link ApiError}: typed input errors are the
 * client's (400), a broken adapter folder 422 (`adapter_load_failed`, never retried by clients),
 * anything else 500 without internals beyond the message.
 */
export function toApiError(e: unknown, context: { adapter?: string } = {}): ApiError {
  if (e instanceof ApiError) return e;
  if (context.adapter !== undefined && (e instanceof CheckpointError || e instanceof LowrankError)) {
    return new ApiError(
      422,
      `adapter "${context.adapter}" cannot be loaded: ${e.name}: ${e.message}`,
      'invalid_request_error',
      'model',
      'adapter_load_failed',
    );
  }
  if (e instanceof ConfigError || e instanceof ShapeError || e instanceof DataError) {
    return new ApiError(400, `${e.name}: ${e.message}`, 'invalid_request_error', null, 'invalid_value');
  }
  if (e instanceof NotSupportedError) {
    return new ApiError(400, `${e.name}: ${e.message}`, 'invalid_request_error', null, 'not_supported');
  }
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError(500, `internal server error: ${message}`, 'server_error', null, 'internal_error');
}
