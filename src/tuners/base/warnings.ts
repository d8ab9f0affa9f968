/**
 * Warnings from tuners (PEFT's `warnings.warn`). They go to `console.warn` unless a handler is set,
 * so tests and the CLI can collect them.
 *
 * @example
 * const seen: string[] = [];
 * const restore = setWarningHandler((m) => seen.push(m));
 * try { new LoraConfig({ loftqConfig: { bits: 4 } }); } finally { restore(); }
 */
export type WarningHandler = (message: string) => void;

let handler: WarningHandler = (m) => console.warn(`lowrank warning: ${m}`);

/** Emits a tuner warning through the current handler. */
export function tunerWarn(message: string): void {
  handler(message);
}

/** Replaces the warning handler; returns a function restoring the previous one. */
export function setWarningHandler(h: WarningHandler): () => void {
  const prev = handler;
  handler = h;
  return () => {
    handler = prev;
  };
}

/** Runs `fn` and returns its result with the warnings it emitted. */
export function collectWarnings<T>(fn: () => T): { result: T; warnings: string[] } {
  const warnings: string[] = [];
  const restore = setWarningHandler((m) => warnings.push(m));
  try {
    return { result: fn(), warnings };
  } finally {
    restore();
  }
}
