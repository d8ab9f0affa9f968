/**
 * Typed errors. User errors read `where: rule (got actual). fix.` (docs/design.md "Errors, memory,
 * determinism"); a broken invariant throws `internal: …` through {@link internal}.
 *
 * @example
 * throw new ConfigError('AdaLoraConfig.targetR', 'must be smaller than initR', 12, 'lower targetR or raise initR');
 */
export class LowrankError extends Error {
  constructor(
    readonly where: string,
    readonly rule: string,
    readonly got?: unknown,
    readonly fix?: string,
  ) {
    super(formatMessage(where, rule, got, fix));
    this.name = new.target.name;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(describe).join(', ')}]`;
  if (value instanceof Map) return `Map(${value.size})`;
  if (value !== null && typeof value === 'object') {
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}

function formatMessage(where: string, rule: string, got: unknown, fix: string | undefined): string {
  let msg = `${where}: ${rule}`;
  if (got !== undefined) msg += ` (got ${describe(got)})`;
  msg += '.';
  if (fix) msg += ` ${fix.endsWith('.') ? fix : fix + '.'}`;
  return msg;
}

/** A configuration value breaks a rule. */
export class ConfigError extends LowrankError {}
/** Tensor shapes do not fit together. */
export class ShapeError extends LowrankError {}
/** A checkpoint, adapter or data file is missing, malformed or does not match the model. */
export class CheckpointError extends LowrankError {}
/** A data file (TSV, JSONL, text) has a bad row or column. */
export class DataError extends LowrankError {}
/** A path the library cannot take yet; never a silent fallback. */
export class NotSupportedError extends LowrankError {
  constructor(where: string, what: string, fix?: string) {
    super(where, `${what} is not supported yet`, undefined, fix);
  }
}

/** Broken internal invariant: a bug in lowrank, not in the caller's input. */
export class InternalError extends Error {
  constructor(message: string) {
    super(`internal: ${message}`);
    this.name = 'InternalError';
  }
}

export function internal(message: string): never {
  throw new InternalError(message);
}

/** Throws {@link InternalError} unless `cond` holds. */
export function invariant(cond: unknown, message: string): asserts cond {
  if (!cond) internal(message);
}
