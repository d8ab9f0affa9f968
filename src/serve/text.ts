/**
 * From generated ids to the text a client sees: incremental decoding (held back while the last bytes
 * are an incomplete UTF-8 character), `stop` strings (the text ends before the first one, and text
 * that could still become a stop string is held back while streaming), and log-probabilities.
 *
 * @example
 * const t = new TextAssembler(tok, ['\n\n']);
 * for (const id of ids) { const { delta, stopped } = t.push(id); send(delta); if (stopped) break; }
 * send(t.flush());
 */
import type { Tokenizer } from '../io/tokenizer.js';

const REPLACEMENT = '\uFFFD';

export class TextAssembler {
  private readonly ids: number[] = [];
  private sent = 0;
  private text = '';
  stopped = false;

  constructor(
    private readonly tok: Tokenizer,
    private readonly stops: string[],
  ) {}

  /** All text released so far. */
  get output(): string {
    return this.text.slice(0, this.sent);
  }

  /** Adds one generated id; returns the text that is now final and whether a stop string ended it. */
  push(id: number): { delta: string; stopped: boolean } {
    if (this.stopped) return { delta: '', stopped: true };
    this.ids.push(id);
    this.text = this.tok.decode(this.ids, { skipSpecialTokens: true });
    const from = Math.max(0, this.sent - Math.max(0, ...this.stops.map((s) => s.length)));
    let cut = -1;
    for (const s of this.stops) {
      const i = this.text.indexOf(s, from);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      this.text = this.text.slice(0, cut);
      return { delta: this.release(Math.max(cut, this.sent)), stopped: true };
    }
    let safe = this.text.length;
    while (safe > this.sent && this.text[safe - 1] === REPLACEMENT) safe--; // maybe half a character
    safe -= this.heldForStop(safe);
    return { delta: this.release(Math.max(safe, this.sent)), stopped: false };
  }

  /** Releases what is left (end of generation). */
  flush(): string {
    return this.release(this.text.length);
  }

  private release(upTo: number): string {
    const d = this.text.slice(this.sent, upTo);
    this.sent = upTo;
    return d;
  }

  /** Length of the longest end of `text[0, end)` that starts some stop string. */
  private heldForStop(end: number): number {
    let held = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, end - this.sent); k > held; k--) {
        if (this.text.slice(end - k, end) === s.slice(0, k)) {
          held = k;
          break;
        }
      }
    }
    return held;
  }
}

/**
 * log softmax of one logits row at `id`, and the `top` most likely tokens with theirs (float64).
 * @example tokenLogprobs(Float32Array.of(2, 1, 0), 0, 2); // { logprob: -0.41, top: [{ id: 0, … }, { id: 1, … }] }
 */
export function tokenLogprobs(
  logits: ArrayLike<number>,
  id: number,
  top: number,
): { logprob: number; top: { id: number; logprob: number }[] } {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  const best: { id: number; logprob: number }[] = [];
  if (top > 0) {
    const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]!);
    for (const i of order.slice(0, top)) best.push({ id: i, logprob: logits[i]! - lse });
  }
  return { logprob: logits[id]! - lse, top: best };
}
